package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for the Transport's zero-valued fields.
const (
	defaultLatchTTL      = 10 * time.Minute
	defaultRetryInterval = 30 * time.Second
	defaultTimeout       = 10 * time.Second
)

// HeaderMark is the header a Transport sets on the 401 responses it
// recognises as re-authentication errors: MarkDetected on Finch's own answer,
// MarkLatched on an answer the Transport gave without calling Finch.
// IsReauthResponse reads it; so can logs and metrics.
const (
	HeaderMark   = "Finchreauth"
	MarkDetected = "detected"
	MarkLatched  = "latched"
)

// latchedBody is the body of the answer to a latched token: Finch's own
// re-authentication error, so that code reading it (the official SDK's error
// parser, say) cannot tell it from the real thing.
const latchedBody = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`

// latchedBodyLen is len(latchedBody) in decimal, spelled out so that a latched
// answer costs no conversion (a test keeps the two in step).
const latchedBodyLen = "116"

// Transport is an http.RoundTripper for calls to the Finch API that notices
// when Finch answers HTTP 401 with finch_code reauthenticate_user, handles
// each broken token once however many requests see it, and tells the
// application through its hooks.
//
// For each such answer (a detection), the Transport:
//
//   - hands the caller Finch's 401 response, its body intact, marked with the
//     header "Finchreauth: detected";
//   - collapses concurrent detections of one token into one handling, which
//     runs detached from the callers' contexts: it asks GET /introspect whom
//     the token belongs to, records the episode in the Store, and, if the
//     Store grants it the notification, builds a reconnect link with the
//     LinkBuilder and calls the Notifier; every caller waits for that handling
//     for as long as its own request context allows;
//   - latches the token: for LatchTTL, requests carrying it are answered
//     locally, without calling Finch, with a 401 response carrying Finch's
//     re-authentication body and the header "Finchreauth: latched".
//
// A latched request gets a response, not an error, because that is what the
// first caller got: code that handles Finch's 401 (the official SDK turns it
// into its *finch.Error and does not retry it) handles both alike, whereas an
// error from the transport would look like a network failure, which the SDK
// retries.
//
// Every other response passes through untouched, its body unread, with no
// allocation added. The Transport never modifies the request it is given.
//
// The zero value is ready to use: it sends requests through
// http.DefaultTransport, records episodes in a MemoryStore of its own and
// notifies nobody. Set the fields before the first request and do not change
// them afterwards. A Transport is safe for concurrent use.
type Transport struct {
	// Base sends the requests. If nil, http.DefaultTransport is used.
	Base http.RoundTripper

	// Store records episodes and tokens. If nil, a MemoryStore private to
	// this Transport is used; set a shared Store when several processes
	// call Finch for the same connections, so that each episode is notified
	// once in all.
	Store Store

	// Notifier tells the customer. If nil, nobody is told, and episodes are
	// still recorded and tokens latched.
	Notifier Notifier

	// Links builds the reconnect link each Event carries. If nil, events
	// have no ReconnectURL.
	Links LinkBuilder

	// APIBaseURL is where GET /introspect is sent, such as
	// "https://api.tryfinch.com". If empty, the scheme and host of the
	// request Finch refused are used, which is right whether the request
	// went to Finch, to Finch's sandbox or to a fake Finch in tests.
	APIBaseURL string

	// LatchTTL is how long a token stays latched after a detection that was
	// handled. If zero, 10 minutes; if negative, tokens are never latched.
	LatchTTL time.Duration

	// RetryInterval is how long a token stays latched after a detection
	// whose handling failed (the Store or the Notifier failed, or a
	// notification is still owed): the first request after it reaches Finch
	// again and, if the token is still refused, retries what failed. If
	// zero, 30 seconds; never more than LatchTTL.
	RetryInterval time.Duration

	// Timeout bounds each step of a handling: the /introspect call
	// (retries included), each Store call, the LinkBuilder and the Notifier.
	// If zero, 10 seconds.
	Timeout time.Duration

	// ErrorHandler receives what went wrong in a handling, as a *HookError,
	// from the handling's goroutine, under the same Timeout. If nil, errors
	// are only logged, at level Warn, when Logger is set.
	ErrorHandler func(ctx context.Context, err error)

	// Logger, if set, receives a record of each handling and of each
	// failure. Records name tokens by fingerprint only. If nil, nothing is
	// logged.
	Logger *slog.Logger

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time

	initOnce sync.Once
	group    singleflight.Group
	latch    *latch
	store    Store // Store, or the private MemoryStore
	stop     context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex // guards closed and the Add side of handlers
	closed  bool
	running sync.WaitGroup // handlings in flight
}

var _ http.RoundTripper = (*Transport)(nil)

func (t *Transport) init() {
	t.initOnce.Do(func() {
		t.latch = newLatch(max(t.latchTTL(), t.retryInterval()), t.now)
		t.store = t.Store
		if t.store == nil {
			t.store = NewMemoryStore()
		}
		t.stop, t.cancel = context.WithCancel(context.Background())
	})
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Transport) latchTTL() time.Duration {
	switch {
	case t.LatchTTL < 0:
		return 0
	case t.LatchTTL == 0:
		return defaultLatchTTL
	}
	return t.LatchTTL
}

func (t *Transport) retryInterval() time.Duration {
	d := t.RetryInterval
	if d <= 0 {
		d = defaultRetryInterval
	}
	return min(d, t.latchTTL())
}

func (t *Transport) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return defaultTimeout
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, t.base())
}

func (t *Transport) roundTrip(req *http.Request, base http.RoundTripper) (*http.Response, error) {
	t.init()
	if !t.latch.empty() {
		if token := bearer(req.Header); token != "" && t.latch.get(token) != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return latchedResponse(req), nil
		}
	}
	resp, err := base.RoundTrip(req)
	switch {
	case err != nil:
		if resp != nil && resp.Body != nil {
			resp.Body.Close() // a base that returns both breaks the contract; we do not pass that on
		}
		return nil, err
	case resp == nil:
		return nil, errNoResponse
	case resp.StatusCode != http.StatusUnauthorized:
		return resp, nil
	}
	return t.on401(req, resp, base), nil
}

var errNoResponse = errors.New("finchreauth: base RoundTripper returned neither a response nor an error")

// bearer returns the token of an "Authorization: Bearer" header, or "".
// It does not allocate.
func bearer(h http.Header) string {
	v := h["Authorization"]
	if len(v) == 0 {
		return ""
	}
	const prefix = "Bearer "
	s := v[0]
	if len(s) <= len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(s[len(prefix):])
}

// latchedAnswer holds everything a latched answer needs in one allocation.
type latchedAnswer struct {
	resp http.Response
	body strings.Reader
	vals [3]string
}

// nopCloser is strings.Reader with a Close that does nothing.
type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func latchedResponse(req *http.Request) *http.Response {
	a := &latchedAnswer{vals: [3]string{"application/json", MarkLatched, latchedBodyLen}}
	a.body.Reset(latchedBody)
	a.resp = http.Response{
		Status:     "401 Unauthorized",
		StatusCode: http.StatusUnauthorized,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   a.vals[0:1:1],
			HeaderMark:       a.vals[1:2:2],
			"Content-Length": a.vals[2:3:3],
		},
		Body:          nopCloser{&a.body},
		ContentLength: int64(len(latchedBody)),
		Request:       req,
	}
	return &a.resp
}

// on401 examines a 401 from Finch and returns what the caller gets: a copy of
// resp whose body replays what was read, marked if it is a re-authentication.
// resp itself is left as the base returned it.
func (t *Transport) on401(req *http.Request, resp *http.Response, base http.RoundTripper) *http.Response {
	apiErr, body := peekAPIError(resp)
	out := *resp
	out.Body = body
	if !apiErr.IsReauth() {
		return &out
	}
	out.Header = resp.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Header.Set(HeaderMark, MarkDetected)

	token := bearer(req.Header)
	if token == "" {
		return &out // nothing names the connection: pass it on, marked
	}
	at := t.now()
	// A 401 that was in flight while a handling of its token ran, and
	// arrives after it finished, has nothing left to do (see handle).
	// One that arrives while a handling runs finds the token latched
	// already: in a storm, thousands do, and skip the latching.
	if e := t.latch.get(token); e != nil && e.handled() {
		return &out
	} else if e == nil {
		// Latch at once, briefly, so that requests sent from now on do not
		// reach Finch while the handling runs; the handling sets the real
		// TTL.
		t.latch.add(token, "", false, t.retryInterval(), at)
	}
	// Only the caller whose call starts the handling builds its detection;
	// the others (thousands, in a storm) join it for the cost of a map
	// lookup. The handling may outlive this call, so it gets copies of what
	// it needs from req, never req itself. The flight is keyed by the
	// latch's 128-bit keyed hash of the token: as cheap as the token, and
	// the group's map never holds a secret.
	method, path, scheme, host, requestID := req.Method, req.URL.Path, req.URL.Scheme, req.URL.Host, apiErr.RequestID
	ctx := req.Context()
	ch := t.group.DoChan(t.latch.flightKey(token), func() (any, error) {
		d := &detection{
			token:       token,
			fingerprint: Fingerprint(token),
			at:          at,
			method:      method,
			path:        path,
			requestID:   requestID,
			apiBase:     t.APIBaseURL,
			base:        base,
			ctx:         context.WithoutCancel(ctx),
		}
		if d.apiBase == "" {
			d.apiBase = scheme + "://" + host
		}
		t.handle(d)
		return nil, nil
	})
	if done := req.Context().Done(); done == nil {
		<-ch // a context that is never done: a plain receive wakes faster than a select
	} else {
		select {
		case <-ch:
		case <-done:
		}
	}
	return &out
}

// detection is what a handling knows of the request Finch refused.
type detection struct {
	token, fingerprint string
	at                 time.Time
	method, path       string
	requestID          string
	apiBase            string
	base               http.RoundTripper
	ctx                context.Context // the caller's context without its cancellation
}

// handle runs once per collapsed detection, in singleflight's goroutine.
func (t *Transport) handle(d *detection) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.running.Add(1)
	t.mu.Unlock()
	defer t.running.Done()

	// A request carrying a token that a finished handling latched cannot
	// reach Finch; its 401 was in flight while that handling ran, which
	// covered it. (Forgotten and expired entries do not count: get hides
	// them.) on401 checks the same, but a handling can finish between its
	// check and DoChan.
	if e := t.latch.get(d.token); e != nil && e.handled() {
		return
	}

	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	defer context.AfterFunc(t.stop, cancel)()

	ev := Event{
		TokenFingerprint: d.fingerprint,
		DetectedAt:       d.at,
		Method:           d.method,
		Path:             d.path,
		RequestID:        d.requestID,
	}
	in, err := step(t, ctx, "introspect", &ev, func(ctx context.Context) (Introspection, error) {
		return finchAPI{base: d.base}.introspect(ctx, d.apiBase, d.token)
	})
	if err == nil {
		ev.Connection = in
	}
	ev.Key = ev.Connection.ConnectionID
	if ev.Key == "" {
		ev.Key = "fp:" + d.fingerprint
	}

	mark := Mark{
		Key:              ev.Key,
		ConnectionID:     ev.Connection.ConnectionID,
		TokenFingerprint: d.fingerprint,
		Episode:          rand.Text(),
		At:               d.at,
		LeaseUntil:       d.at.Add(3 * t.timeout()), // link, notify, MarkNotified
	}
	res, err := step(t, ctx, "store", &ev, func(ctx context.Context) (MarkResult, error) {
		return t.store.MarkReauth(ctx, mark)
	})
	if err != nil {
		t.latch.add(d.token, ev.Connection.ConnectionID, true, t.retryInterval(), t.now())
		return
	}
	ev.Episode, ev.Since = res.Episode, res.Since
	t.log(ctx, slog.LevelInfo, "finchreauth: Finch asks for re-authentication",
		"connection_id", ev.Connection.ConnectionID, "token", d.fingerprint, "request_id", d.requestID,
		"transitioned", res.Transitioned, "notify", res.Notify, "stale", res.Stale)

	ttl := t.latchTTL()
	if res.Notify {
		notified := false
		if t.notifiedByFingerprint(ctx, &ev) {
			notified = t.markNotified(ctx, &ev)
		} else {
			notified = t.notify(ctx, &ev)
		}
		if !notified {
			ttl = t.retryInterval()
		}
	} else if !res.Stale && !res.Notified {
		ttl = t.retryInterval() // another caller holds the lease: check back soon
	}
	t.latch.add(d.token, ev.Connection.ConnectionID, true, ttl, t.now())
}

// notify builds the link, calls the Notifier and records success. It reports
// whether the notification went out.
func (t *Transport) notify(ctx context.Context, ev *Event) bool {
	if t.Links != nil {
		e := *ev
		link, err := step(t, ctx, "link", ev, func(ctx context.Context) (string, error) {
			return t.Links.ReconnectURL(ctx, e)
		})
		if err == nil {
			ev.ReconnectURL = link
		}
	}
	if t.Notifier != nil {
		e := *ev
		if _, err := step(t, ctx, "notify", ev, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, t.Notifier.Notify(ctx, e)
		}); err != nil {
			return false
		}
	}
	// The notification is out: should recording it fail, a later detection
	// may send it again, which beats losing it.
	t.markNotified(ctx, ev)
	return true
}

// markNotified records that ev's episode was notified. It reports success.
func (t *Transport) markNotified(ctx context.Context, ev *Event) bool {
	key, episode := ev.Key, ev.Episode
	_, err := step(t, ctx, "store", ev, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, t.store.MarkNotified(ctx, key, episode)
	})
	return err == nil
}

// notifiedByFingerprint reports whether an earlier handling of ev's token,
// which went on without /introspect's answer, already notified this breakage
// under the token's fingerprint key: then the connection's episode is the
// same breakage, and its customer was told. It is asked only when a
// connection's episode is about to be notified, so it costs one Store read per
// episode.
func (t *Transport) notifiedByFingerprint(ctx context.Context, ev *Event) bool {
	fpKey := "fp:" + ev.TokenFingerprint
	if ev.Key == fpKey {
		return false
	}
	st, err := step(t, ctx, "store", ev, func(ctx context.Context) (State, error) {
		st, err := t.store.State(ctx, fpKey)
		if errors.Is(err, ErrNotFound) {
			return State{}, nil
		}
		return st, err
	})
	return err == nil && st.NeedsReauth && st.Notified
}

// step runs one hook under the Transport's Timeout (see guard), and reports
// a failure to the ErrorHandler as a *HookError, which it also returns.
func step[T any](t *Transport, ctx context.Context, hook string, ev *Event, fn func(context.Context) (T, error)) (T, error) {
	v, err := guard(ctx, t.timeout(), fn)
	if err == nil {
		return v, nil
	}
	he := &HookError{Hook: hook, ConnectionID: ev.Connection.ConnectionID, TokenFingerprint: ev.TokenFingerprint}
	if p, ok := err.(panicked); ok {
		he.Panic, he.Err = p.value, errHookPanicked
	} else {
		he.Err = err
	}
	t.report(ctx, he)
	return v, he
}

type panicked struct{ value any }

func (p panicked) Error() string { return "panic" }

var errHookPanicked = errors.New("finchreauth: hook panicked")

// guard calls fn with a context bounded by timeout, in its own goroutine, so
// that a hook that ignores its context cannot hold the handling (and with it
// every waiting caller) beyond the timeout. It returns fn's result, a
// panicked error if fn panicked, or the context's error if fn outlived it.
// An abandoned fn writes only to its own buffered channel.
func guard[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: panicked{r}}
			}
		}()
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (t *Transport) report(ctx context.Context, err *HookError) {
	t.log(ctx, slog.LevelWarn, "finchreauth: handling failed",
		"hook", err.Hook, "connection_id", err.ConnectionID, "token", err.TokenFingerprint, "error", err.Error())
	if t.ErrorHandler == nil {
		return
	}
	// The handling's context may be what failed (Close cancels it): the
	// report still goes out, under its own Timeout.
	if _, herr := guard(context.WithoutCancel(ctx), t.timeout(), func(ctx context.Context) (struct{}, error) {
		t.ErrorHandler(ctx, err)
		return struct{}{}, nil
	}); herr != nil {
		t.log(ctx, slog.LevelError, "finchreauth: ErrorHandler failed", "error", herr.Error())
	}
}

func (t *Transport) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if t.Logger != nil {
		t.Logger.Log(ctx, level, msg, args...)
	}
}

// SaveToken saves tok through the Transport's Store, which ends the
// connection's episode, and voids this Transport's latch entries for the
// connection, so that no request is answered from the latch on its account.
// The callback handler calls it after a reconnect; call it yourself when you
// obtain a token another way. It returns the state the connection had.
func (t *Transport) SaveToken(ctx context.Context, tok Token) (State, error) {
	t.init()
	prev, err := t.store.SaveToken(ctx, tok)
	if err != nil {
		return State{}, err
	}
	t.latch.forget(tok.ConnectionID, t.now())
	return prev, nil
}

// WrapClient returns a new *http.Client that sends its requests through t and
// t through c's Transport (or, when that is nil, t's Base), with c's
// CheckRedirect, Jar and Timeout. c itself is not modified. A nil c is
// treated as a zero http.Client. Clients wrapped by one Transport share its
// latch and its handlings.
func (t *Transport) WrapClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{}
	}
	base := c.Transport
	if base == nil {
		base = t.base()
	}
	return &http.Client{
		Transport:     clientTransport{t: t, base: base},
		CheckRedirect: c.CheckRedirect,
		Jar:           c.Jar,
		Timeout:       c.Timeout,
	}
}

type clientTransport struct {
	t    *Transport
	base http.RoundTripper
}

func (c clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.t.roundTrip(req, c.base)
}

// CloseIdleConnections forwards to the base, as http.Client expects.
func (c clientTransport) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// CloseIdleConnections forwards to Base, so that http.Client's method of
// that name reaches it.
func (t *Transport) CloseIdleConnections() {
	if ci, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Close stops the handlings in flight (their hooks see their contexts
// cancelled) and waits for them to return. A hook that ignores its context
// is abandoned, not waited for. After Close, requests still pass through and
// latched tokens are still answered, but new detections are not handled.
func (t *Transport) Close() error {
	t.init()
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.running.Wait()
	return nil
}
