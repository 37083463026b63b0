package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// Reconnection describes the outcome of an employer's trip through Finch
// Connect, as the callback handler gives it to Connect.OnReconnected and
// Connect.OnMismatch.
type Reconnection struct {
	// ConnectionID is the connection Finch issued the token for; Expected
	// is the one the link named. They differ only for OnMismatch.
	ConnectionID string
	Expected     string

	CustomerID   string
	CustomerName string
	CompanyID    string
	ProviderID   string
	Products     []string // the products the new token grants

	// Token is the new token; it formats without its secret.
	Token Token

	// BrokenSince is when the connection's re-authentication episode began,
	// zero if the Store knew of none.
	BrokenSince time.Time

	// Embedded is true when the code came from the embedded flow (a POST
	// from the application's page) rather than Connect's redirect.
	Embedded bool
}

// The reasons the callback gives the FailureURL, and the embedded flow's
// JSON answer.
const (
	reasonCancelled    = "cancelled"
	reasonInvalidState = "invalid_state"
	reasonExpired      = "expired"
	reasonInvalid      = "invalid_request"
	reasonExchange     = "exchange_failed"
	reasonMismatch     = "connection_mismatch"
	reasonSave         = "save_failed"
	reasonLink         = "link_failed"
	reasonConfig       = "misconfigured"
)

// Limits on what the callback reads from the employer's browser.
const (
	maxCallbackBody = 16 << 10
	maxCodeLen      = 512
)

// CallbackHandler returns the handler that takes the employer back from
// Finch Connect. Mount it at the path of Connect.RedirectURI, under any
// router; it reads only its query and body, never its path, and registers
// nothing anywhere.
//
// Redirect flow: GET ?code=...&state=... (or ?error=...&state=... when the
// employer cancelled). The handler verifies the state (signature, expiry,
// single use), exchanges the code at POST /auth/token with RedirectURI,
// checks that Finch issued the token for the connection the state names,
// saves it through Connect.Transport (which ends the episode and clears the
// latch), calls OnReconnected, and answers 303 See Other to SuccessURL. Any
// failure answers 303 to FailureURL with a reason; a token or code never
// appears in a URL.
//
// Embedded flow: POST with a JSON body {"code": ..., "state": ...} from the
// application's own page, where Finch Connect ran in place. The exchange
// then leaves redirect_uri out, as Finch requires, and the answer is JSON:
// 200 {"connection_id": ...}, or 4xx/5xx {"error": reason}.
func (c *Connect) CallbackHandler() http.Handler {
	return http.HandlerFunc(c.serveCallback)
}

// StartHandler returns an optional handler that launches Finch Connect from
// the application: for "log in to the dashboard and reconnect from there".
// It asks Connect.Authorize which connection the request's user may
// reconnect, mints a fresh link for it and answers 303 See Other to it. The
// link asks for Connect.Products or, if empty, the products (and provider)
// that GET /introspect reports for the connection's token in the Store. It
// answers 403 when Authorize refuses (or is nil), and 303 to FailureURL with
// reason=link_failed when no link could be minted. Mount it anywhere.
func (c *Connect) StartHandler() http.Handler {
	return http.HandlerFunc(c.serveStart)
}

func (c *Connect) report(ctx context.Context, err error) {
	if c.ErrorHandler == nil || err == nil {
		return
	}
	guard(context.WithoutCancel(ctx), c.timeout(), func(ctx context.Context) (struct{}, error) {
		c.ErrorHandler(ctx, err)
		return struct{}{}, nil
	})
}

// callbackError is a failed callback: the reason the employer is told, and
// the cause the ErrorHandler is told.
type callbackError struct {
	reason       string
	connectionID string
	status       int // for the embedded flow's JSON answer
	err          error
}

func (e *callbackError) Error() string {
	if e.connectionID != "" {
		return fmt.Sprintf("finchreauth: callback for %s: %s: %v", e.connectionID, e.reason, e.err)
	}
	return fmt.Sprintf("finchreauth: callback: %s: %v", e.reason, e.err)
}

func (e *callbackError) Unwrap() error { return e.err }

func fail(reason string, status int, connID string, err error) *callbackError {
	return &callbackError{reason: reason, status: status, connectionID: connID, err: err}
}

func (c *Connect) serveCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		rec, cerr := c.reconnect(r.Context(), q.Get("code"), q.Get("state"), q.Get("error"), false)
		c.redirectOutcome(w, r, rec, cerr)
	case http.MethodPost:
		code, state, cerr := readEmbedded(w, r)
		var rec Reconnection
		if cerr == nil {
			rec, cerr = c.reconnect(r.Context(), code, state, "", true)
		}
		c.jsonOutcome(w, r, rec, cerr)
	default:
		// Not even HEAD: a callback spends a code, and nothing but the
		// employer's browser (GET) or page (POST) should make it do that.
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// readEmbedded reads the embedded flow's {"code", "state"} body.
func readEmbedded(w http.ResponseWriter, r *http.Request) (code, state string, _ *callbackError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", "", fail(reasonInvalid, http.StatusUnsupportedMediaType, "", errors.New("Content-Type is not application/json"))
	}
	var body struct {
		Code  string `json:"code"`
		State string `json:"state"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCallbackBody))
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", "", fail(reasonInvalid, http.StatusRequestEntityTooLarge, "", errors.New("body too large"))
		}
		return "", "", fail(reasonInvalid, http.StatusBadRequest, "", errors.New("malformed JSON body"))
	}
	if dec.More() {
		return "", "", fail(reasonInvalid, http.StatusBadRequest, "", errors.New("trailing data after the JSON body"))
	}
	return body.Code, body.State, nil
}

// reconnect is the whole callback, whichever flow brought it.
func (c *Connect) reconnect(ctx context.Context, code, state, connectErr string, embedded bool) (Reconnection, *callbackError) {
	c.init()
	if err := c.checkCredentials(); err != nil {
		return Reconnection{}, fail(reasonConfig, http.StatusInternalServerError, "", err)
	}
	if c.Transport == nil {
		return Reconnection{}, fail(reasonConfig, http.StatusInternalServerError, "", errors.New("finchreauth: Connect.Transport is nil"))
	}
	now := c.now()
	p, stateErr := verifyState(c.StateKeys, state, now)

	// The employer cancelled, or Connect failed: nothing to do. The state
	// stays unused, so the same link still works.
	if connectErr != "" || code == "" {
		connID := ""
		if stateErr == nil {
			connID = p.connectionID
		}
		why := "no code"
		if connectErr != "" {
			why = "Connect answered error=" + truncate(connectErr, 64)
		}
		return Reconnection{}, fail(reasonCancelled, http.StatusBadRequest, connID, errors.New(why))
	}
	switch {
	case errors.Is(stateErr, ErrExpiredState):
		return Reconnection{}, fail(reasonExpired, http.StatusBadRequest, p.connectionID, stateErr)
	case stateErr != nil:
		return Reconnection{}, fail(reasonInvalidState, http.StatusBadRequest, "", stateErr)
	case len(code) > maxCodeLen:
		return Reconnection{}, fail(reasonInvalid, http.StatusBadRequest, p.connectionID, errors.New("code too long"))
	}
	if err := c.replay.claim(p, now); err != nil {
		return Reconnection{}, fail(reasonInvalidState, http.StatusConflict, p.connectionID, errors.New("state already used"))
	}
	// Whatever the exchange does, Connect has spent the link's session:
	// the next notification or start gets a freshly minted link.
	c.forgetLink(p.connectionID)

	req := tokenRequest{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Code: code}
	if !embedded {
		req.RedirectURI = c.RedirectURI
	}
	// From here on the code is being spent: the exchange and the save run
	// detached from the browser's request, so that an employer who closes
	// the tab cannot make the application lose the token Finch issues. Each
	// is bounded by the Timeout, and a panic in the Base or the Store is
	// contained, as for the Transport's hooks.
	detached := context.WithoutCancel(ctx)
	tok, err := guard(detached, c.timeout(), func(ctx context.Context) (tokenResponse, error) {
		return c.api().exchange(ctx, c.apiBaseURL(), req)
	})
	if p, ok := err.(panicked); ok {
		err = fmt.Errorf("finchreauth: code exchange panicked: %v", p.value)
	}
	if err != nil {
		c.replay.release(p) // the employer may go through Connect again with the same link
		return Reconnection{}, fail(reasonExchange, http.StatusBadGateway, p.connectionID, err)
	}

	issued := c.now()
	rec := Reconnection{
		ConnectionID: tok.ConnectionID,
		Expected:     p.connectionID,
		CustomerID:   tok.CustomerID,
		CustomerName: tok.CustomerName,
		CompanyID:    tok.CompanyID,
		ProviderID:   tok.ProviderID,
		Products:     tok.Products,
		Token:        Token{ConnectionID: tok.ConnectionID, AccessToken: tok.AccessToken, IssuedAt: issued},
		Embedded:     embedded,
	}
	if tok.ConnectionID != p.connectionID {
		// The employer connected another account. Its token is not this
		// connection's: saving it would point the old connection's jobs at
		// someone else's data. The application decides what to do with it.
		if c.OnMismatch != nil {
			c.runHook(ctx, "mismatch", rec, c.OnMismatch)
		}
		return rec, fail(reasonMismatch, http.StatusConflict, p.connectionID,
			fmt.Errorf("Finch issued the token for connection %s", tok.ConnectionID))
	}

	prev, err := guard(detached, c.timeout(), func(ctx context.Context) (State, error) {
		return c.Transport.SaveToken(ctx, rec.Token)
	})
	if p, ok := err.(panicked); ok {
		err = fmt.Errorf("finchreauth: SaveToken panicked: %v", p.value)
	}
	switch {
	case errors.Is(err, ErrStaleToken):
		// Another replica saved a token issued later (by its clock) for
		// this connection: the connection is reconnected either way.
		c.report(ctx, fmt.Errorf("finchreauth: callback for %s: a newer token was already saved: %w", rec.ConnectionID, err))
	case err != nil:
		c.replay.release(p)
		return rec, fail(reasonSave, http.StatusInternalServerError, p.connectionID,
			fmt.Errorf("saving token %s: %w", rec.Token.Fingerprint(), err))
	}
	if prev.NeedsReauth {
		rec.BrokenSince = prev.Since
	}
	if c.OnReconnected != nil {
		c.runHook(ctx, "reconnected", rec, c.OnReconnected)
	}
	return rec, nil
}

// runHook calls an application hook under the Timeout, containing a panic,
// and reports a failure.
func (c *Connect) runHook(ctx context.Context, name string, rec Reconnection, fn func(context.Context, Reconnection)) {
	_, err := guard(context.WithoutCancel(ctx), c.timeout(), func(ctx context.Context) (struct{}, error) {
		fn(ctx, rec)
		return struct{}{}, nil
	})
	if err != nil {
		he := &HookError{Hook: name, ConnectionID: rec.ConnectionID, TokenFingerprint: rec.Token.Fingerprint(), Err: err}
		if p, ok := err.(panicked); ok {
			he.Panic, he.Err = p.value, errHookPanicked
		}
		c.report(ctx, he)
	}
}

// describe finds the provider and products of a connection for a link the
// start endpoint mints: Connect.Products if set; otherwise what /introspect
// says of the token the Transport's Store holds for the connection (Finch
// answers /introspect for a token that needs re-authentication). Both are
// empty when nothing is known: a Connect session does without them.
func (c *Connect) describe(ctx context.Context, connID string) (providerID string, products []string) {
	if len(c.Products) > 0 || c.Transport == nil {
		return "", c.Products
	}
	c.Transport.init()
	tok, err := c.Transport.store.Token(ctx, connID)
	if err != nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	in, err := c.api().introspect(ctx, c.apiBaseURL(), tok.AccessToken)
	if err != nil || in.ConnectionID != connID {
		c.report(ctx, fmt.Errorf("finchreauth: start for %s: cannot describe the connection: %v", connID, err))
		return "", nil
	}
	return in.ProviderID, in.Products
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// redirectOutcome answers the redirect flow: 303 to SuccessURL or FailureURL.
func (c *Connect) redirectOutcome(w http.ResponseWriter, r *http.Request, rec Reconnection, cerr *callbackError) {
	if cerr != nil {
		c.report(r.Context(), cerr)
		c.redirectFailure(w, r, cerr.reason, cerr.connectionID)
		return
	}
	if c.SuccessURL == "" {
		c.report(r.Context(), errors.New("finchreauth: Connect.SuccessURL is empty"))
		http.Error(w, "reconnected", http.StatusOK)
		return
	}
	http.Redirect(w, r, withQuery(c.SuccessURL, "connection_id", rec.ConnectionID), http.StatusSeeOther)
}

func (c *Connect) redirectFailure(w http.ResponseWriter, r *http.Request, reason, connID string) {
	target := c.FailureURL
	if target == "" {
		target = c.SuccessURL
	}
	if target == "" {
		http.Error(w, "reconnect failed: "+reason, http.StatusBadRequest)
		return
	}
	u := withQuery(target, "reason", reason)
	if connID != "" {
		u = withQuery(u, "connection_id", connID)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// withQuery sets one query parameter on a configured URL.
func withQuery(target, key, value string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// jsonOutcome answers the embedded flow.
func (c *Connect) jsonOutcome(w http.ResponseWriter, r *http.Request, rec Reconnection, cerr *callbackError) {
	w.Header().Set("Content-Type", "application/json")
	if cerr != nil {
		c.report(r.Context(), cerr)
		w.WriteHeader(cerr.status)
		json.NewEncoder(w).Encode(map[string]string{"error": cerr.reason})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"connection_id": rec.ConnectionID})
}

func (c *Connect) serveStart(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if c.Authorize == nil {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	connID, err := c.Authorize(r)
	if err != nil || connID == "" {
		if err == nil {
			err = errors.New("Authorize returned no connection id")
		}
		c.report(r.Context(), fmt.Errorf("finchreauth: start refused: %w", err))
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	c.init()
	providerID, products := c.describe(r.Context(), connID)
	l, err := c.mint(r.Context(), connID, providerID, products)
	if err != nil {
		c.report(r.Context(), fmt.Errorf("finchreauth: start for %s: %w", connID, err))
		c.redirectFailure(w, r, reasonLink, connID)
		return
	}
	http.Redirect(w, r, l.url, http.StatusSeeOther)
}
