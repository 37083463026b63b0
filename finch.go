package finchreauth

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/finchkit/finchreauth/internal/finchapi"
)

// The library's own calls to Finch: /introspect and the code exchange (the
// Connect sessions are Connect's). Each is a hook step: bounded by Timeout,
// its failure reported.

// finch returns the client for the library's own calls to Finch through
// base, sharing the Transport's bound on calls in flight.
func (t *Transport) finch(ctx context.Context, base http.RoundTripper) finchapi.Client {
	c := finchapi.Client{Base: base, Limit: t.limit, Unlisted: &t.unlisted}
	if t.api != nil {
		c.BaseURL = t.api.String()
	}
	if t.Metrics != nil {
		c.Observe = func(_, outcome string) { t.Metrics.Count(ctx, "finchreauth.finch_calls", outcome, 1) }
	}
	return c
}

// introspect asks Finch about token: whose it is and how the connection is.
func (t *Transport) introspect(ctx context.Context, base http.RoundTripper, token string, s subject) (Connection, error) {
	return callHook(t, ctx, "introspect", s, func(ctx context.Context) (Connection, error) {
		if t.apiErr != nil {
			return Connection{}, t.apiErr
		}
		c := t.finch(ctx, base)
		c.NoRateLimitRetry = s.paced
		in, err := c.Introspect(ctx, token)
		if err != nil {
			return Connection{}, apiErrorOf(err)
		}
		if in.ConnectionID == "" {
			return Connection{}, errors.New("finchreauth: /introspect answered without a connection_id")
		}
		return connectionOf(in), nil
	})
}

// exchange trades a Connect code for a token.
func (t *Transport) exchange(ctx context.Context, code string, embedded bool) (finchapi.TokenResponse, error) {
	c := t.Connect
	req := finchapi.TokenRequest{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Code: code}
	if !embedded {
		req.RedirectURI = c.RedirectURI
	}
	return callHook(t, ctx, "exchange", subject{}, func(ctx context.Context) (finchapi.TokenResponse, error) {
		if t.apiErr != nil {
			return finchapi.TokenResponse{}, t.apiErr
		}
		tok, err := t.finch(ctx, t.base()).Exchange(ctx, req)
		return tok, apiErrorOf(err)
	})
}

// apiErrorOf turns an answer of Finch that is not a success into an
// *APIError.
func apiErrorOf(err error) error {
	var he *finchapi.HTTPError
	if !errors.As(err, &he) {
		return err
	}
	e := &APIError{StatusCode: he.StatusCode, RequestID: he.Header.Get("Finch-Request-Id"), Body: he.Body}
	e.parseBody(he.Body)
	e.retryAfter = retryAfter(he.Header.Get("Retry-After"))
	return e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0)
	}
	return 0
}
