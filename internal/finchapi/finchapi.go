// Package finchapi makes the library's own calls to Finch: GET /introspect,
// POST /connect/sessions/reauthenticate and POST /auth/token. Each goes
// through go-retryablehttp with its default retry policy (transport errors,
// 429 and 5xx other than 501; never another 4xx), with its logger off, a
// backoff that caps Retry-After, and a bound on how many calls run at once.
package finchapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// APIVersion is the Finch-API-Version every request to Finch carries.
const APIVersion = "2020-09-17"

// The retry schedule: capped exponential backoff with jitter; a Retry-After
// header is honoured up to MaxRetryAfter. Every wait also ends with the
// call's context.
const (
	retryMax      = 3
	retryWaitMin  = 200 * time.Millisecond
	retryWaitMax  = 5 * time.Second
	MaxRetryAfter = 30 * time.Second
	maxJSONBody   = 1 << 20
	maxErrorBody  = 64 << 10
)

// Client calls Finch. The zero value is not usable: Base and BaseURL are
// required.
type Client struct {
	Base    http.RoundTripper // carries the requests
	BaseURL string            // such as https://api.tryfinch.com, no trailing slash

	// Limit, if not nil, bounds the calls in flight: each call holds one
	// slot from before its first attempt until its answer is read.
	Limit Limiter

	// Observe, if set, is told the path and outcome of every call: "ok",
	// "client_error", "rate_limited", "server_error", "network" or
	// "cancelled".
	Observe func(path, outcome string)

	// NoRateLimitRetry leaves a 429 to the caller, who paces itself (the
	// sweep), instead of retrying it here.
	NoRateLimitRetry bool

	// Unlisted, if not nil, remembers the fields Finch's API reference does
	// not list that Finch refused, across the calls of every Client given
	// it. If nil, each call sends them and falls back again.
	Unlisted *Unlisted
}

// Unlisted remembers which of the fields the library sends that Finch's API
// reference does not list (only a session's state, for now) Finch refused,
// so that later calls leave them out. The zero value has seen no refusal;
// it is safe for concurrent use and must not be copied after first use.
type Unlisted struct {
	sessionState atomic.Bool // POST /connect/sessions/reauthenticate refused state
}

// Limiter is a counting semaphore: a channel whose capacity is the limit.
type Limiter chan struct{}

// NewLimiter returns a Limiter for n calls at once.
func NewLimiter(n int) Limiter { return make(Limiter, n) }

func (l Limiter) acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l Limiter) release() {
	if l != nil {
		<-l
	}
}

// InFlight reports how many calls hold a slot.
func (l Limiter) InFlight() int { return len(l) }

// HTTPError is an answer from Finch whose status is not 2xx. Body holds at
// most 64 KiB of it.
type HTTPError struct {
	Path       string
	StatusCode int
	Header     http.Header
	Body       []byte
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("finchreauth: %s: Finch answered %d", e.Path, e.StatusCode)
}

// do sends one call, with retries, and decodes a 2xx answer into out.
func (c Client) do(ctx context.Context, method, path string, body []byte, header http.Header, out any) error {
	if err := c.Limit.acquire(ctx); err != nil {
		c.observe(path, "cancelled")
		return fmt.Errorf("finchreauth: %s: %w", path, err)
	}
	defer c.Limit.release()
	var raw any
	if body != nil {
		raw = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.BaseURL+path, raw)
	if err != nil {
		return fmt.Errorf("finchreauth: %s: %w", path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Finch-API-Version", APIVersion)
	req.Header.Set("Accept", "application/json")
	rc := &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: c.Base,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // never follow a redirect with credentials
			},
		},
		Logger:       nil, // go-retryablehttp logs at DEBUG by default
		RetryWaitMin: retryWaitMin,
		RetryWaitMax: retryWaitMax,
		RetryMax:     retryMax,
		CheckRetry:   checkRetry(path, c.NoRateLimitRetry),
		Backoff:      Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	resp, err := rc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		c.observe(path, outcomeOf(ctx, 0))
		return fmt.Errorf("finchreauth: %s: %w", path, err)
	}
	defer resp.Body.Close()
	c.observe(path, outcomeOf(ctx, resp.StatusCode))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return &HTTPError{Path: path, StatusCode: resp.StatusCode, Header: resp.Header, Body: b}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	if err != nil {
		return fmt.Errorf("finchreauth: %s: reading the answer: %w", path, err)
	}
	if len(b) > maxJSONBody {
		return fmt.Errorf("finchreauth: %s: answer larger than %d bytes", path, maxJSONBody)
	}
	// A field of an unexpected JSON type leaves that field zero and the
	// rest decoded: Finch adds fields and values over time.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(b, out); err != nil && !errors.As(err, &typeErr) {
		return fmt.Errorf("finchreauth: %s: malformed JSON from Finch: %w", path, err)
	}
	return nil
}

// checkRetry is go-retryablehttp's default policy, but for the jobs API's
// 429: that one is Finch's quota of forced refreshes (one an hour), with
// retry_at in its body, an answer rather than a failure to retry.
func checkRetry(path string, noRateLimitRetry bool) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests && (noRateLimitRetry || strings.HasPrefix(path, "/jobs/")) {
			return false, nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
}

func (c Client) observe(path, outcome string) {
	if c.Observe != nil {
		c.Observe(path, outcome)
	}
}

func outcomeOf(ctx context.Context, status int) string {
	switch {
	case status >= 200 && status <= 299:
		return "ok"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "server_error"
	case status >= 400:
		return "client_error"
	case ctx.Err() != nil:
		return "cancelled"
	}
	return "network"
}

// Backoff waits as retryablehttp.DefaultBackoff does (doubling from min,
// capped at max; a Retry-After header on a 429 or 503 first), plus up to a
// quarter more at random, so that many calls refused at once do not come
// back at once; never more than MaxRetryAfter.
func Backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	d := retryablehttp.DefaultBackoff(min, max, attempt, resp)
	if d <= 0 {
		return 0
	}
	d = minDuration(d, MaxRetryAfter)
	return minDuration(d+rand.N(d/4+1), MaxRetryAfter)
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// Introspection is Finch's answer to GET /introspect, as sent.
type Introspection struct {
	ID               string `json:"id"`
	ClientID         string `json:"client_id"`
	ClientType       string `json:"client_type"`
	ConnectionID     string `json:"connection_id"`
	ConnectionType   string `json:"connection_type"`
	ConnectionStatus struct {
		Status             string `json:"status"`
		Message            string `json:"message"`
		LastSuccessfulSync string `json:"last_successful_sync"`
	} `json:"connection_status"`
	Products          []string `json:"products"`
	ProviderID        string   `json:"provider_id"`
	PayrollProviderID string   `json:"payroll_provider_id"` // deprecated by Finch
	CompanyID         string   `json:"company_id"`
	CustomerID        string   `json:"customer_id"`
	CustomerName      string   `json:"customer_name"`
	CustomerEmail     string   `json:"customer_email"`
	Entities          []struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		SourceID string `json:"source_id"`
		Status   string `json:"status"`
	} `json:"entities"`
	AuthenticationMethods []struct {
		Type             string `json:"type"`
		ConnectionStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"connection_status"`
		Products []string `json:"products"`
	} `json:"authentication_methods"`
	Username string `json:"username"`
	Manual   bool   `json:"manual"` // deprecated by Finch, still sent: an assisted connection
}

// Introspect asks Finch whom token belongs to.
func (c Client) Introspect(ctx context.Context, token string) (Introspection, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	var in Introspection
	if err := c.do(ctx, http.MethodGet, "/introspect", nil, h, &in); err != nil {
		return Introspection{}, err
	}
	if in.ProviderID == "" {
		in.ProviderID = in.PayrollProviderID
	}
	return in, nil
}

// Probe asks Finch whether a data call made with token works, for the
// products the connection has: GET /employer/company, or, without the
// company product, GET /employer/directory?limit=1. /introspect answers for
// the connection, and may answer for a token Finch refuses on data calls (one
// a reconnect replaced); this answers for the token. It returns true for a
// 2xx (202 included: an assisted connection's first sync), false for a 401
// (reauthenticate_user, or a token Finch does not know), and ok false when
// the answer says neither (no such product, 5xx, 429 after retries).
func (c Client) Probe(ctx context.Context, token string, products []string) (works, ok bool, err error) {
	path := "/employer/company"
	if len(products) > 0 && !slices.Contains(products, "company") {
		if !slices.Contains(products, "directory") {
			return false, false, nil
		}
		path = "/employer/directory?limit=1"
	}
	h := http.Header{"Authorization": {"Bearer " + token}}
	var discard json.RawMessage
	err = c.do(ctx, http.MethodGet, path, nil, h, &discard)
	var he *HTTPError
	switch {
	case err == nil:
		return true, true, nil
	case errors.As(err, &he) && he.StatusCode == http.StatusUnauthorized:
		// reauthenticate_user, or a token Finch does not know: about the
		// token. account_setup_required (an assisted connection's) is
		// about the connection: every token gets it.
		var body struct {
			FinchCode string `json:"finch_code"`
		}
		json.Unmarshal(he.Body, &body)
		return false, body.FinchCode != "account_setup_required", nil
	case errors.As(err, &he):
		return false, false, nil
	}
	return false, false, err
}

// SessionRequest is the body of POST /connect/sessions/reauthenticate.
// State is not in Finch's API reference for this endpoint, but its Connect
// guide lists state among a session's parameters: it is sent here and on
// the connect_url (see FINCH.md). Finch may refuse it: see ReauthSession.
type SessionRequest struct {
	ConnectionID    string   `json:"connection_id"`
	MinutesToExpire int      `json:"minutes_to_expire,omitempty"`
	Products        []string `json:"products,omitempty"`
	RedirectURI     string   `json:"redirect_uri,omitempty"`
	State           string   `json:"state,omitempty"`
}

// ReauthSession mints a Connect session for an existing connection and
// returns its connect_url. Minting twice only makes two sessions, so it is
// retried like any idempotent call.
//
// An unconfirmed field must not cost the application its links: if Finch
// refuses a request that carries State as invalid (400 or 422), the session
// is minted again without it, and if that succeeds c.Unlisted remembers to
// leave State out from then on (a request Finch refuses for another reason
// is refused again, and nothing is remembered). Any other 4xx is Finch's
// answer, returned as it came, with no second request.
func (c Client) ReauthSession(ctx context.Context, clientID, clientSecret string, body SessionRequest) (string, error) {
	if c.Unlisted != nil && c.Unlisted.sessionState.Load() {
		body.State = ""
	}
	u, err := c.reauthSession(ctx, clientID, clientSecret, body)
	if body.State == "" || !invalid(err) {
		return u, err
	}
	body.State = ""
	u, err = c.reauthSession(ctx, clientID, clientSecret, body)
	if err == nil && c.Unlisted != nil {
		c.Unlisted.sessionState.Store(true)
	}
	return u, err
}

// invalid reports whether err is Finch refusing a request as invalid: 400
// or 422. Finch's error may or may not name the field it refused.
func invalid(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.StatusCode == http.StatusBadRequest || he.StatusCode == http.StatusUnprocessableEntity)
}

func (c Client) reauthSession(ctx context.Context, clientID, clientSecret string, body SessionRequest) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	h := http.Header{"Content-Type": {"application/json"}}
	req := &http.Request{Header: h}
	req.SetBasicAuth(clientID, clientSecret)
	var out struct {
		SessionID  string `json:"session_id"`
		ConnectURL string `json:"connect_url"`
	}
	if err := c.do(ctx, http.MethodPost, "/connect/sessions/reauthenticate", b, h, &out); err != nil {
		return "", err
	}
	if out.ConnectURL == "" {
		return "", errors.New("finchreauth: /connect/sessions/reauthenticate: Finch returned no connect_url")
	}
	return out.ConnectURL, nil
}

// TokenRequest is the body of POST /auth/token. RedirectURI is omitted for
// the embedded flow, where sending it makes the exchange fail.
type TokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Code         string `json:"code"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
}

// TokenResponse is Finch's answer to a code exchange.
type TokenResponse struct {
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
}

// Format keeps the access token out of every fmt verb.
func (t TokenResponse) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "finchapi.TokenResponse{ConnectionID:%q}", t.ConnectionID)
}

// Exchange trades a Connect code for a token.
//
// A code is single-use, so a retry must never cost the application a token
// it could have had. It cannot: go-retryablehttp retries only after an
// attempt ended without a token (429, 5xx, or no answer), never after a 4xx
// (invalid_grant is final), and no attempt is cut short by a deadline of its
// own: the only deadline is the caller's, for the whole exchange. So when a
// retry is sent, a token the earlier attempt may have been issued was lost
// already; the retry either obtains the token (Finch had not spent the code)
// or gets invalid_grant (it had), the failure there would have been anyway.
func (c Client) Exchange(ctx context.Context, body TokenRequest) (TokenResponse, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return TokenResponse{}, err
	}
	h := http.Header{"Content-Type": {"application/json"}}
	var out TokenResponse
	if err := c.do(ctx, http.MethodPost, "/auth/token", b, h, &out); err != nil {
		return TokenResponse{}, err
	}
	if out.AccessToken == "" || out.ConnectionID == "" {
		return TokenResponse{}, errors.New("finchreauth: /auth/token: Finch's answer lacks access_token or connection_id")
	}
	return out, nil
}

// Job is Finch's data_sync_all job, as POST /jobs/automated and GET
// /jobs/automated/{job_id} tell it.
type Job struct {
	ID     string `json:"job_id"`
	Status string `json:"status"` // pending, in_progress, complete, error, reauth_error, permissions_error
	// RetryAt is when Finch allows the next forced refresh (one an hour),
	// set when it refused one.
	RetryAt time.Time
}

// StartJob asks Finch to refresh the connection's data (POST /jobs/automated
// {"type": "data_sync_all"}). Finch runs one job per connection at a time:
// a job under way is returned as it is. Over its quota of forced refreshes
// it answers 429 with retry_at: StartJob returns a Job with RetryAt set and
// no ID.
func (c Client) StartJob(ctx context.Context, token string) (Job, error) {
	h := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	var out struct {
		JobID   string `json:"job_id"`
		RetryAt string `json:"retry_at"`
	}
	err := c.do(ctx, http.MethodPost, "/jobs/automated", []byte(`{"type":"data_sync_all"}`), h, &out)
	var he *HTTPError
	if errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests {
		json.Unmarshal(he.Body, &out)
		at, perr := time.Parse(time.RFC3339, out.RetryAt)
		if perr != nil {
			return Job{}, err // a 429 of another kind: Finch's rate limit
		}
		return Job{RetryAt: at}, nil
	}
	if err != nil {
		return Job{}, err
	}
	if out.JobID == "" {
		return Job{}, errors.New("finchreauth: /jobs/automated: Finch answered without a job_id")
	}
	return Job{ID: out.JobID, Status: "pending"}, nil
}

// Disconnect disconnects the token's connection for good (POST
// /disconnect): every token of the employer and provider is revoked.
func (c Client) Disconnect(ctx context.Context, token string) error {
	h := http.Header{"Authorization": {"Bearer " + token}}
	var out struct {
		Status string `json:"status"`
	}
	return c.do(ctx, http.MethodPost, "/disconnect", nil, h, &out)
}

// ReadJob reads a job (GET /jobs/automated/{job_id}).
func (c Client) ReadJob(ctx context.Context, token, id string) (Job, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	var j Job
	if err := c.do(ctx, http.MethodGet, "/jobs/automated/"+url.PathEscape(id), nil, h, &j); err != nil {
		return Job{}, err
	}
	if j.ID == "" {
		j.ID = id
	}
	return j, nil
}
