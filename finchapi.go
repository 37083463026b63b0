package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// apiVersion is the Finch-API-Version every request to Finch carries.
const apiVersion = "2020-09-17"

// The retry schedule for the library's own calls to Finch: capped exponential
// backoff with jitter, and a Retry-After header honoured up to maxRetryAfter.
// Every wait also ends when the call's context does.
const (
	retryMax      = 3
	retryWaitMin  = 200 * time.Millisecond
	retryWaitMax  = 5 * time.Second
	maxRetryAfter = 30 * time.Second
	maxJSONBody   = 1 << 20
)

// finchAPI makes the library's own calls to Finch (/introspect here; the token
// exchange and Connect sessions in the reconnect code) through go-retryablehttp,
// with its logger off.
type finchAPI struct {
	base http.RoundTripper
}

// hideIdle hides the base RoundTripper's CloseIdleConnections method:
// go-retryablehttp calls it on the client it is given whenever a call fails,
// and the base usually belongs to the application.
type hideIdle struct{ rt http.RoundTripper }

func (h hideIdle) RoundTrip(req *http.Request) (*http.Response, error) { return h.rt.RoundTrip(req) }

// do sends req, retrying as retry decides. It returns the final response
// whatever its status, or an error; never both.
func (f finchAPI) do(req *retryablehttp.Request, retry retryablehttp.CheckRetry) (*http.Response, error) {
	c := &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: hideIdle{f.base},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // Finch's API does not redirect; never follow one with credentials
			},
		},
		Logger:       nil, // go-retryablehttp logs at DEBUG by default, query strings included
		RetryWaitMin: retryWaitMin,
		RetryWaitMax: retryWaitMax,
		RetryMax:     retryMax,
		CheckRetry:   retry,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	resp, err := c.Do(req)
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	return resp, nil
}

// retryIdempotent retries what an idempotent call may always retry: transport
// errors, 429 and 5xx other than 501. Never another 4xx.
func retryIdempotent(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return true, nil
	}
	return retryableStatus(resp.StatusCode), nil
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}

// backoff waits retryWaitMin·2^attempt with up to 50% jitter, capped at max;
// a Retry-After header on the response, in seconds or as an HTTP date, takes
// precedence, capped at maxRetryAfter.
func backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return d
		}
	}
	d := min << attempt
	if d <= 0 || d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// readJSON decodes a successful response into v, or turns an error response
// into an *APIError. It always closes the body.
func readJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ParseAPIError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxJSONBody {
		return fmt.Errorf("finchreauth: response larger than %d bytes", maxJSONBody)
	}
	// A field of an unexpected JSON type leaves that field zero but the
	// rest decoded: Finch adds fields and values over time, and knowing who
	// a token belongs to matters more than one odd field.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(body, v); err != nil && !errors.As(err, &typeErr) {
		return fmt.Errorf("finchreauth: malformed JSON from Finch: %w", err)
	}
	return nil
}

// introspect asks Finch who a token belongs to.
func (f finchAPI) introspect(ctx context.Context, baseURL, token string) (Introspection, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/introspect", nil)
	if err != nil {
		return Introspection{}, fmt.Errorf("finchreauth: introspect: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Finch-API-Version", apiVersion)
	req.Header.Set("Accept", "application/json")
	resp, err := f.do(req, retryIdempotent)
	if err != nil {
		return Introspection{}, fmt.Errorf("finchreauth: introspect: %w", err)
	}
	var in Introspection
	if err := readJSON(resp, &in); err != nil {
		return Introspection{}, fmt.Errorf("finchreauth: introspect: %w", err)
	}
	if in.ProviderID == "" {
		in.ProviderID = in.PayrollProviderID
	}
	return in, nil
}

// Introspection is Finch's answer to GET /introspect: who a token belongs to.
// Unknown fields and unknown enumeration values are accepted as they come.
type Introspection struct {
	ID             string           `json:"id"`
	ClientID       string           `json:"client_id"`
	ClientType     string           `json:"client_type"` // production, development or sandbox
	ConnectionID   string           `json:"connection_id"`
	ConnectionType string           `json:"connection_type"` // provider or finch
	Status         ConnectionStatus `json:"connection_status"`
	Products       []string         `json:"products"`
	// ProviderID is the payroll provider (the seed page's payroll_provider);
	// filled from the deprecated payroll_provider_id when Finch sends only that.
	ProviderID    string   `json:"provider_id"`
	CompanyID     string   `json:"company_id"`
	CustomerID    string   `json:"customer_id"`
	CustomerName  string   `json:"customer_name"`
	CustomerEmail string   `json:"customer_email"`
	Entities      []Entity `json:"entities"`
	Username      string   `json:"username"`

	// Deprecated by Finch, still sent.
	AccountID         string `json:"account_id"`
	PayrollProviderID string `json:"payroll_provider_id"`
	Manual            bool   `json:"manual"`
}

// ConnectionStatus is the status of a connection or of one of its entities.
// Status is one of pending, processing, connected, error_no_account_setup,
// error_permissions, reauth (entities also disconnected), or a value Finch
// adds later.
type ConnectionStatus struct {
	Status             string `json:"status"`
	Message            string `json:"message"`
	LastSuccessfulSync string `json:"last_successful_sync"` // RFC 3339, as Finch sent it
}

// Entity is one employer entity of a multi-entity connection.
type Entity struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	SourceID string `json:"source_id"`
	Status   string `json:"status"`
}

// reauthSessionRequest is the body of POST /connect/sessions/reauthenticate.
type reauthSessionRequest struct {
	ConnectionID    string   `json:"connection_id"`
	MinutesToExpire int      `json:"minutes_to_expire,omitempty"`
	Products        []string `json:"products,omitempty"`
	RedirectURI     string   `json:"redirect_uri,omitempty"`
}

// reauthSession mints a Connect session for an existing connection and
// returns its connect_url. Minting twice only makes two sessions, so every
// failure without a session is retried as for an idempotent call.
func (f finchAPI) reauthSession(ctx context.Context, baseURL, clientID, clientSecret string, body reauthSessionRequest) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/connect/sessions/reauthenticate", b)
	if err != nil {
		return "", fmt.Errorf("finchreauth: connect session: %w", err)
	}
	req.SetBasicAuth(clientID, clientSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Finch-API-Version", apiVersion)
	resp, err := f.do(req, retryIdempotent)
	if err != nil {
		return "", fmt.Errorf("finchreauth: connect session: %w", err)
	}
	var out struct {
		SessionID  string `json:"session_id"`
		ConnectURL string `json:"connect_url"`
	}
	if err := readJSON(resp, &out); err != nil {
		return "", fmt.Errorf("finchreauth: connect session: %w", err)
	}
	if out.ConnectURL == "" {
		return "", errors.New("finchreauth: connect session: Finch returned no connect_url")
	}
	return out.ConnectURL, nil
}

// tokenRequest is the body of POST /auth/token. RedirectURI is omitted for
// the embedded flow, where sending it makes the exchange fail.
type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Code         string `json:"code"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
}

// tokenResponse is Finch's answer to a code exchange.
type tokenResponse struct {
	AccessToken    string   `json:"access_token"`
	TokenType      string   `json:"token_type"`
	ConnectionID   string   `json:"connection_id"`
	CustomerID     string   `json:"customer_id"`
	CustomerName   string   `json:"customer_name"`
	CompanyID      string   `json:"company_id"`
	ProviderID     string   `json:"provider_id"`
	Products       []string `json:"products"`
	EntityIDs      []string `json:"entity_ids"`
	ClientType     string   `json:"client_type"`
	ConnectionType string   `json:"connection_type"`
	AccountID      string   `json:"account_id"` // deprecated by Finch
}

// Format keeps the access token out of every fmt verb.
func (t tokenResponse) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "tokenResponse{ConnectionID:%q Token:%s}", t.ConnectionID, Fingerprint(t.AccessToken))
}

// retryExchange is the retry policy of the code exchange. A code is
// single-use, so a retry must never cost the application a token it could
// have had. It cannot:
//
//   - it retries only after an attempt has ended without a token: Finch
//     answered 429 (refused before doing anything) or 5xx, or the
//     connection failed. It never retries a 4xx: invalid_grant is final.
//   - no attempt is cut short by a timeout of its own: the only deadline is
//     the caller's, for the whole exchange, so a retry never races an
//     attempt that might still come back with the token.
//
// So when a retry is sent, the earlier attempt's token, if Finch issued one,
// was already lost (its answer never arrived, or was an error), with or
// without the retry; the retry either obtains the token (Finch had not
// consumed the code) or gets invalid_grant (it had), which is the failure
// the application would have had anyway.
func retryExchange(ctx context.Context, resp *http.Response, err error) (bool, error) {
	return retryIdempotent(ctx, resp, err)
}

// exchange trades a Connect code for a token.
func (f finchAPI) exchange(ctx context.Context, baseURL string, body tokenRequest) (tokenResponse, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return tokenResponse{}, err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/auth/token", b)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("finchreauth: code exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Finch-API-Version", apiVersion)
	resp, err := f.do(req, retryExchange)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("finchreauth: code exchange: %w", err)
	}
	var out tokenResponse
	if err := readJSON(resp, &out); err != nil {
		return tokenResponse{}, fmt.Errorf("finchreauth: code exchange: %w", err)
	}
	if out.AccessToken == "" || out.ConnectionID == "" {
		return tokenResponse{}, errors.New("finchreauth: code exchange: Finch's answer lacks access_token or connection_id")
	}
	return out, nil
}
