package finchreauth

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/finchkit/finchreauth/internal/finchapi"
	"github.com/finchkit/finchreauth/internal/hook"
)

// Reason says why a reconnect through the callback did not complete: it is
// the reason parameter of Connect.FailureURL, the error of the embedded
// flow's JSON answer, and Reconnection.Reason for Connect.OnUnsaved.
type Reason string

// Error makes a Reason an error, so that errors.Is(err, ReasonSaveFailed)
// tells what the ErrorHandler received about a failed callback.
func (r Reason) Error() string { return "finchreauth: " + string(r) }

// Format prints the reason as it is, under every verb.
func (r Reason) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", string(r))
		return
	}
	io.WriteString(f, string(r))
}

// The reasons.
const (
	ReasonCancelled          Reason = "cancelled"           // the employer cancelled, or Connect sent no code
	ReasonInvalidState       Reason = "invalid_state"       // a state forged, foreign, spent or tried too often; or none, and no link of ours open
	ReasonExpired            Reason = "expired"             // the link's state expired
	ReasonInvalidRequest     Reason = "invalid_request"     // a malformed callback
	ReasonUnavailable        Reason = "unavailable"         // the Store could not record the attempt; nothing was spent: try again
	ReasonExchangeFailed     Reason = "exchange_failed"     // Finch did not exchange the code
	ReasonConnectionMismatch Reason = "connection_mismatch" // the employer connected another account
	ReasonSuperseded         Reason = "superseded"          // Finch refuses the new token; the saved one is kept
	ReasonSaveFailed         Reason = "save_failed"         // the Store did not take the token, after retries
	ReasonLinkFailed         Reason = "link_failed"         // no link could be made (the start endpoint)
	ReasonMisconfigured      Reason = "misconfigured"       // Transport.Connect is missing or invalid
	ReasonForbidden          Reason = "forbidden"           // Connect.Authorize refused the signed-in user: nothing was spent
)

// Limits on what the callback accepts and how hard it tries.
const (
	maxCallbackBody   = 16 << 10
	maxCodeLen        = 512
	maxAttempts       = 3 // codes exchanged with one link state
	saveAttempts      = 4 // tries to save a token Finch issued
	statelessPerMin   = 10
	maxConnectErrorLn = 64
)

// CallbackHandler returns the handler that takes the employer back from
// Finch Connect. Mount it at the path of Connect.RedirectURI, under any
// router: it reads only its query and body.
//
// Redirect flow: GET ?code=...&state=... (?error=... when the employer
// cancelled). It verifies the state (signature, expiry), claims it in the
// Store (a state is tried at most 3 times and completes at most one
// reconnect, across every process), exchanges the code at POST /auth/token,
// checks that Finch issued the token for the link's connection, and saves
// it (see SaveToken), retrying the save with backoff, detached from the
// browser. It answers 303 to Connect.SuccessURL, or to Connect.FailureURL
// with a Reason; a token or code never appears in a URL. A token Finch
// issued that is not saved goes to Connect.OnUnsaved.
//
// Embedded flow: POST with a JSON body {"code": ..., "state": ...} from the
// application's page. The exchange leaves redirect_uri out, as Finch
// requires, and the answer is JSON: 200 {"connection_id": ...}, or 4xx/5xx
// {"error": reason}.
//
// A code that comes back without a state (a Connect session may not echo
// one) is exchanged only while some connection has an open episode, at most
// 10 failed exchanges a minute, and its token is saved only if its
// connection has an open episode with a link this Transport made.
//
// It panics if the Transport has no Connect or Validate refuses it: a
// misconfigured callback is refused when the application starts.
func (t *Transport) CallbackHandler() http.Handler {
	t.mustConnect("CallbackHandler", false)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.init()
		noStore(w)
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query()
			rec, cerr := t.reconnect(r, q.Get("code"), q.Get("state"), q.Get("error"), false)
			t.redirectOutcome(w, r, rec, cerr)
		case http.MethodPost:
			code, state, cerr := readEmbedded(w, r)
			var rec Reconnection
			if cerr == nil {
				rec, cerr = t.reconnect(r, code, state, "", true)
			}
			t.jsonOutcome(w, r, rec, cerr)
		default:
			// Not even HEAD: a callback spends a code.
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// callbackError is a failed callback: the reason the employer is told, and
// the cause the ErrorHandler is told.
type callbackError struct {
	reason Reason
	conn   string
	status int // for the embedded flow's JSON answer
	err    error
}

func (e *callbackError) Error() string {
	who := ""
	if e.conn != "" {
		who = " for " + quoteID(e.conn)
	}
	return fmt.Sprintf("finchreauth: callback%s: %s: %v", who, e.reason, e.err)
}

func (e *callbackError) Unwrap() error { return e.err }

// Is matches the callback's Reason.
func (e *callbackError) Is(target error) bool { r, ok := target.(Reason); return ok && r == e.reason }

func fail(reason Reason, status int, conn string, err error) *callbackError {
	return &callbackError{reason: reason, status: status, conn: conn, err: err}
}

// readEmbedded reads the embedded flow's {"code", "state"} body.
func readEmbedded(w http.ResponseWriter, r *http.Request) (code, state string, _ *callbackError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", "", fail(ReasonInvalidRequest, http.StatusUnsupportedMediaType, "", errors.New("Content-Type is not application/json"))
	}
	var body struct{ Code, State string }
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCallbackBody))
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", "", fail(ReasonInvalidRequest, http.StatusRequestEntityTooLarge, "", errors.New("body too large"))
		}
		return "", "", fail(ReasonInvalidRequest, http.StatusBadRequest, "", errors.New("malformed JSON body"))
	}
	if dec.More() {
		return "", "", fail(ReasonInvalidRequest, http.StatusBadRequest, "", errors.New("trailing data after the JSON body"))
	}
	return body.Code, body.State, nil
}

// reconnect is the whole callback, whichever flow brought it.
func (t *Transport) reconnect(r *http.Request, code, state, connectErr string, embedded bool) (Reconnection, *callbackError) {
	ctx := r.Context()
	c := t.Connect
	if c == nil {
		return Reconnection{}, fail(ReasonMisconfigured, http.StatusInternalServerError, "", errors.New("Transport.Connect is nil"))
	}
	if err := c.Validate(); err != nil {
		return Reconnection{}, fail(ReasonMisconfigured, http.StatusInternalServerError, "", err)
	}
	p, stateErr := verifyState(c.verifyKeys(), state, t.now())
	switch {
	case connectErr != "" || code == "":
		// The employer cancelled, or Connect failed: the state stays
		// unspent, so the same link still works.
		why := "no code"
		if connectErr != "" {
			why = "Connect answered error=" + sanitize(connectErr)
		}
		if stateErr != nil {
			p.connectionID = ""
		}
		return Reconnection{}, fail(ReasonCancelled, http.StatusBadRequest, p.connectionID, errors.New(why))
	case len(code) > maxCodeLen:
		return Reconnection{}, fail(ReasonInvalidRequest, http.StatusBadRequest, "", errors.New("code too long"))
	case state == "":
		return t.reconnectStateless(r, code, embedded)
	case errors.Is(stateErr, errExpiredState):
		return Reconnection{}, fail(ReasonExpired, http.StatusBadRequest, p.connectionID, stateErr)
	case stateErr != nil:
		return Reconnection{}, fail(ReasonInvalidState, http.StatusBadRequest, "", stateErr)
	}
	if cerr := t.authorizeCallback(r, p.connectionID); cerr != nil {
		t.apply(ctx, p.connectionID, linkSpent{nonce: p.nonce})
		return Reconnection{}, cerr
	}
	if !t.beginSpend() {
		return Reconnection{}, fail(ReasonUnavailable, http.StatusServiceUnavailable, p.connectionID, errors.New("the Transport is shutting down"))
	}
	defer t.spending.Done()
	if rec, cerr, spend := t.claim(ctx, p); !spend {
		return rec, cerr
	}
	// From here on the code is being spent: the work runs detached from
	// the browser's request (closing the tab cannot lose a token), and
	// Shutdown waits for it.
	ctx, cancel := t.spendContext(ctx)
	defer cancel()
	tok, err := t.exchange(ctx, code, embedded)
	var rec Reconnection
	var cerr *callbackError
	if err != nil {
		cerr = fail(ReasonExchangeFailed, http.StatusBadGateway, p.connectionID, err)
	} else {
		rec, cerr = t.keep(ctx, tok, saved{nonce: p.nonce}, p.connectionID, embedded)
	}
	if cerr != nil {
		t.apply(ctx, p.connectionID, unclaimed{nonce: p.nonce}) // the state may be tried again, up to maxAttempts
	}
	return rec, cerr
}

// authorizeCallback asks Connect.Authorize whether the signed-in user may
// reconnect conn.
func (t *Transport) authorizeCallback(r *http.Request, conn string) *callbackError {
	f := t.Connect.Authorize
	if f == nil {
		return nil
	}
	err := hook.Do(r.Context(), t.timeout(), func(context.Context) error { return f(r, conn) })
	if p, ok := err.(hook.Panic); ok {
		t.report(r.Context(), &HookError{Hook: "authorize", ConnectionID: conn, Panic: p.Value, Err: errPanicked})
	}
	if err != nil {
		return fail(ReasonForbidden, http.StatusForbidden, conn, errors.New("Connect.Authorize refused the signed-in user"))
	}
	return nil
}

// claim records one attempt to spend a code with p's state. spend is false
// when the attempt must not go on; then rec and cerr are the answer. A
// state another attempt is spending (a second tab) waits for that attempt:
// its reconnect is this one's, and its failure frees the state again.
func (t *Transport) claim(ctx context.Context, p statePayload) (rec Reconnection, cerr *callbackError, spend bool) {
	waited := false
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, _, err := t.apply(ctx, p.connectionID, claimed{nonce: p.nonce, expires: p.expires})
		switch {
		case err == nil:
			return Reconnection{}, nil, true
		case errors.Is(err, errSpent):
			if rec, ok := t.reconnectedWith(ctx, p); ok && waited {
				return rec, nil, false
			}
			return Reconnection{}, fail(ReasonInvalidState, http.StatusConflict, p.connectionID, err), false
		case !errors.Is(err, errBusy):
			return Reconnection{}, fail(ReasonUnavailable, http.StatusServiceUnavailable, p.connectionID, err), false
		}
		if !sleep(ctx, wait) {
			return Reconnection{}, fail(ReasonUnavailable, http.StatusConflict, p.connectionID, errBusy), false
		}
		waited = true
	}
}

// reconnectedWith reports whether p's state completed a reconnect that
// still holds: the answer for a second tab that waited while its first
// completed. (A state used again later is refused as spent.)
func (t *Transport) reconnectedWith(ctx context.Context, p statePayload) (Reconnection, bool) {
	_, l, err := t.load(ctx, p.connectionID)
	c := l.claim(p.nonce)
	if err != nil || c == nil || !c.Done || l.Episode != nil || l.Token == "" || t.now().Sub(c.Started) > t.leaseFor() {
		return Reconnection{}, false
	}
	rec := Reconnection{ConnectionID: p.connectionID, Expected: p.connectionID, Token: l.Token, Via: "callback"}
	if e := l.Ended; e != nil {
		rec.Episode, rec.BrokenSince, rec.At, rec.Notifications = e.ID, e.Since, e.At, e.Sent
	}
	return rec, true
}

// reconnectStateless is the callback for a code that came back without a
// state.
func (t *Transport) reconnectStateless(r *http.Request, code string, embedded bool) (Reconnection, *callbackError) {
	ctx := r.Context()
	if t.Connect.AuthorizeURLs {
		return Reconnection{}, fail(ReasonInvalidState, http.StatusBadRequest, "", errors.New("no state, and this application's links all carry one"))
	}
	anyOpen := false
	err := t.each(ctx, Query{Limit: 16}, func(Record, life) bool {
		anyOpen = true
		return false
	})
	switch {
	case err != nil:
		return Reconnection{}, fail(ReasonUnavailable, http.StatusServiceUnavailable, "", err)
	case !anyOpen:
		return Reconnection{}, fail(ReasonInvalidState, http.StatusBadRequest, "", errors.New("no state, and no connection awaits a reconnect"))
	case !t.stateless.reserve(t.now()):
		return Reconnection{}, fail(ReasonUnavailable, http.StatusTooManyRequests, "", errors.New("too many exchanges without a state this minute"))
	}
	if !t.beginSpend() {
		t.stateless.refund()
		return Reconnection{}, fail(ReasonUnavailable, http.StatusServiceUnavailable, "", errors.New("the Transport is shutting down"))
	}
	defer t.spending.Done()
	ctx, cancel := t.spendContext(ctx)
	defer cancel()
	tok, err := t.exchange(ctx, code, embedded)
	if err != nil {
		return Reconnection{}, fail(ReasonExchangeFailed, http.StatusBadGateway, "", err)
	}
	t.stateless.refund() // a code Finch exchanged was no garbage
	if cerr := t.authorizeCallback(r, tok.ConnectionID); cerr != nil {
		return t.unsaved(ctx, reconnectionOf(tok, "", embedded, t.now()), cerr)
	}
	return t.keep(ctx, tok, saved{stateless: true}, tok.ConnectionID, embedded)
}

func reconnectionOf(tok finchapi.TokenResponse, expected string, embedded bool, at time.Time) Reconnection {
	return Reconnection{
		ConnectionID: tok.ConnectionID,
		Expected:     expected,
		CustomerID:   tok.CustomerID,
		CustomerName: tok.CustomerName,
		CompanyID:    tok.CompanyID,
		ProviderID:   tok.ProviderID,
		Products:     tok.Products,
		Token:        Token(tok.AccessToken),
		Via:          "callback",
		At:           at,
		Embedded:     embedded,
	}
}

// keep saves the token Finch issued, or hands it to OnUnsaved. in carries
// the callback's claim; expected is the connection the link was for.
//
// The employer may connect another account than the link's (connection Y
// through X's link). Finch's exchange then gives Y a new token, which may
// have made Y's saved token stop working. The token is Finch's for Y, so if
// the Store knows Y it is offered to Y as any token is (it wins only if it
// works, or if Y's does not either): leaving Y broken with a working token
// in a hook would be worse. X's link is not spent, and the browser is told
// connection_mismatch. A Y the Store does not know is not this
// application's to adopt: its token goes to OnUnsaved.
func (t *Transport) keep(ctx context.Context, tok finchapi.TokenResponse, in saved, expected string, embedded bool) (Reconnection, *callbackError) {
	rec := reconnectionOf(tok, expected, embedded, t.now())
	conn := tok.ConnectionID
	var mismatch *callbackError
	if conn != expected {
		mismatch = fail(ReasonConnectionMismatch, http.StatusConflict, expected,
			fmt.Errorf("Finch issued the token for connection %s", quoteID(conn)))
		if checkID(conn) != nil || !t.knows(ctx, conn) {
			return t.unsaved(ctx, rec, mismatch)
		}
		in = saved{}
	}
	in.token, in.via, in.holder = rec.Token, "callback", crand.Text()
	// Finch just issued the token for this connection: it works, on the
	// exchange's word (save asks Finch more if a saved token may work
	// too). What /introspect says with it describes the connection now.
	in.offered = &verdict{FP: rec.Token.Fingerprint(), Works: true, At: t.now(), Via: "exchange"}
	if r, ok := t.reading(ctx, t.base(), conn, rec.Token, -1, ""); ok && r.conn != nil {
		in.conn = r.conn
	}
	// The retries are bounded as a whole too: the browser waits for them.
	ctx, cancel := context.WithTimeout(ctx, saveAttempts*t.timeout()+2*time.Second) // and the backoff
	defer cancel()
	var o outcome
	var err error
	for attempt := range saveAttempts {
		if _, o, err = t.save(ctx, conn, in, carrier{details: &rec}); err == nil || errors.Is(err, ErrStaleToken) || errors.Is(err, errSpent) || errors.Is(err, errNoLink) {
			break
		}
		if attempt < saveAttempts-1 && !sleep(ctx, backoff(attempt)) {
			break
		}
	}
	switch {
	case errors.Is(err, ErrStaleToken):
		return t.unsaved(ctx, rec, fail(ReasonSuperseded, http.StatusConflict, expected, err))
	case errors.Is(err, errSpent), errors.Is(err, errNoLink):
		return t.unsaved(ctx, rec, fail(ReasonInvalidState, http.StatusConflict, expected, err))
	case err != nil:
		return t.unsaved(ctx, rec, fail(ReasonSaveFailed, http.StatusInternalServerError, expected,
			fmt.Errorf("saving token %s: %w", rec.Token.Fingerprint(), err)))
	case mismatch != nil:
		rec.Reason = mismatch.reason
		return rec, mismatch // saved for its own connection
	}
	for _, ow := range o.run {
		if ow.Kind == owedAnnounce {
			rec.Episode, rec.BrokenSince, rec.Notifications = ow.Ended.ID, ow.Ended.Since, ow.Ended.Sent
		}
	}
	return rec, nil
}

// knows reports whether the Store holds a token or an episode for conn.
func (t *Transport) knows(ctx context.Context, conn string) bool {
	_, l, err := t.load(ctx, conn)
	return err == nil && (l.Token != "" || l.Episode != nil)
}

// unsaved hands a token that was not saved to OnUnsaved.
func (t *Transport) unsaved(ctx context.Context, rec Reconnection, cerr *callbackError) (Reconnection, *callbackError) {
	rec.Reason = cerr.reason
	if f := t.Connect.OnUnsaved; f != nil {
		// Under its own Timeout, whatever is left of ctx: the token must
		// reach the application.
		callHook(t, context.WithoutCancel(ctx), "unsaved", subject{conn: rec.ConnectionID, fp: rec.Token.Fingerprint()}, func(ctx context.Context) (struct{}, error) {
			f(ctx, rec)
			return struct{}{}, nil
		})
	}
	return rec, cerr
}

// backoff is the wait before the save attempt after attempt: 250ms, 500ms,
// 1s, with up to a quarter more at random.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << attempt
	return d + rand.N(d/4)
}

func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// statelessBudget bounds the exchanges of codes that came back without a
// state: anybody can send one, and each costs a call to Finch. An exchange
// reserves its place before it is sent, and gives it back if Finch issued a
// token, so that at most statelessPerMin garbage codes a minute reach Finch
// however many arrive at once.
type statelessBudget struct {
	mu     sync.Mutex
	minute time.Time
	used   int
}

func (b *statelessBudget) reserve(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.minute) >= time.Minute {
		b.minute, b.used = now, 0
	}
	if b.used >= statelessPerMin {
		return false
	}
	b.used++
	return true
}

func (b *statelessBudget) refund() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = max(b.used-1, 0)
}

// sanitize makes text from outside (Connect's error parameter, a webhook's
// id) safe for a log line: at most 64 runes of valid UTF-8, control
// characters (CR and LF included) replaced by spaces.
func sanitize(s string) string { return terminalSafe(s, maxConnectErrorLn) }

// terminalSafe is s as valid UTF-8 with control characters (CR and LF
// included, and the line and paragraph separators) replaced by spaces, cut
// to at most limit runes.
func terminalSafe(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == limit {
			b.WriteString("...")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// redirectOutcome answers the redirect flow: 303 to SuccessURL or FailureURL.
func (t *Transport) redirectOutcome(w http.ResponseWriter, r *http.Request, rec Reconnection, cerr *callbackError) {
	if cerr != nil {
		t.report(r.Context(), cerr)
		t.redirectFailure(w, r, cerr.reason, cerr.conn)
		return
	}
	if t.Connect.SuccessURL == "" {
		http.Error(w, "reconnected", http.StatusOK)
		return
	}
	http.Redirect(w, r, withQuery(t.Connect.SuccessURL, "connection_id", rec.ConnectionID), http.StatusSeeOther)
}

func (t *Transport) redirectFailure(w http.ResponseWriter, r *http.Request, reason Reason, conn string) {
	target := ""
	if c := t.Connect; c != nil {
		target = c.FailureURL
		if target == "" {
			target = c.SuccessURL
		}
	}
	if target == "" {
		http.Error(w, "reconnect failed: "+string(reason), http.StatusBadRequest)
		return
	}
	u := withQuery(target, "reason", string(reason))
	if conn != "" {
		u = withQuery(u, "connection_id", conn)
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
func (t *Transport) jsonOutcome(w http.ResponseWriter, r *http.Request, rec Reconnection, cerr *callbackError) {
	w.Header().Set("Content-Type", "application/json")
	if cerr != nil {
		t.report(r.Context(), cerr)
		w.WriteHeader(cerr.status)
		json.NewEncoder(w).Encode(map[string]string{"error": string(cerr.reason)})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"connection_id": rec.ConnectionID})
}
