package finchreauth

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finchkit/finchreauth/internal/finchapi"
	"golang.org/x/sync/singleflight"
)

// Defaults for the Transport's zero-valued fields.
const (
	defaultAPIBaseURL    = "https://api.tryfinch.com"
	defaultLatchTTL      = 10 * time.Minute
	defaultRetryInterval = 30 * time.Second
	defaultTimeout       = 10 * time.Second
	defaultFinchCalls    = 16
	defaultHandlings     = 64
	defaultQueued        = 100_000
	defaultRetryCap      = time.Hour
	orderSkew            = time.Minute // what clocks may disagree by
)

// The header a Transport sets on the 401 responses it recognises as
// re-authentication errors: Detected on Finch's own answer, Latched on an
// answer it gave without calling Finch. ParseAPIError reads it.
const (
	Header   = "Finchreauth"
	Detected = "detected"
	Latched  = "latched"
)

// Transport is an http.RoundTripper for calls to the Finch API that notices
// when Finch answers 401 with finch_code reauthenticate_user, and runs the
// episode that follows: it tells the customer once (and reminds them), keeps
// the reconnect link, takes the employer back from Finch Connect, saves the
// new token, and tells the application when the connection works again.
//
// Only requests to APIBaseURL are watched, and not the calls that heal a
// connection (/auth/token, /introspect, /connect/..., /sandbox/...): every
// other request passes through untouched. When Finch refuses a token, the
// caller gets Finch's 401 (body intact, header "Finchreauth: detected"), and
// requests carrying that token are answered locally for LatchTTL with the
// same kind of 401 ("Finchreauth: latched").
//
// # A connection's life
//
// Everything the Transport knows of a connection is in the connection's
// Record, and every signal about it goes through one state machine: a call
// Finch refused, a webhook, an answer of /introspect, a job's result, a
// token saved, the callback's claim of a link, a lease, a notification
// sent or failed. The connection needs its employer (an episode is open)
// exactly when Finch's newest statuses say so, at the connection, an
// authentication method or an entity, or when Finch refuses the saved token
// itself; and what it needs is Event.Status's: "reauth" (Finch Connect) or,
// for assisted connections, "error_no_account_setup" or "error_permissions"
// (the payroll system: no link is made). "pending" and "processing" tell
// nobody; "disconnected" ends the episode (OnDisconnected).
//
// Order: Finch's webhooks arrive late, twice and out of order, and each
// replica's clock is its own. A status older than the last one Finch sent
// for the same connection or entity does nothing; a reauth older than the
// end of the last episode (by more than a minute) does nothing; and a
// signal whose order cannot be told, or that contradicts the saved token's
// last verdict, is checked with Finch (/introspect, and a data call made
// with the saved token) before it opens or ends anything. A token replaces
// the saved one only if Finch accepts it. What the record owes
// (notifications, OnReconnected, checks) is written in it before it is
// carried out, under a lease: a process that dies leaves it owed, and
// Remind, on any replica, carries it out.
//
// The zero value is ready to use. Set the fields before the first request and
// do not change them afterwards. A Transport is safe for concurrent use.
type Transport struct {
	// Base sends the requests. If nil, http.DefaultTransport is used.
	Base http.RoundTripper

	// APIBaseURL is the Finch API this Transport watches and calls, such
	// as a finchtest.Server's URL in tests. If empty,
	// https://api.tryfinch.com.
	APIBaseURL string

	// Store keeps each connection's episode and token. If nil, a
	// MemoryStore private to this Transport is used; share one Store
	// between processes so that each episode is notified once in all.
	Store Store

	// Notifier tells the customer. If nil, nobody is told; episodes and
	// links are still kept.
	Notifier Notifier

	// Connect makes the reconnect links (unless Links is set) and serves
	// the callback (CallbackHandler). If nil, neither is available.
	Connect *Connect

	// Links builds the reconnect links instead of Connect. If both are
	// nil, events carry no link.
	Links LinkBuilder

	// OnReconnected, if set, is called when an episode ends because the
	// connection works again, whatever ended it: the callback, SaveToken,
	// Finch's account.updated webhook, or Finch's answer at /introspect.
	// It is called once per episode, and again (with the same
	// Reconnection.Episode) only if the call failed (a panic, or no return
	// within Timeout) or its process died first: the end is recorded in the
	// Store before the call, and Remind finds what is owed. It runs
	// detached from the request that ended the episode, under Timeout.
	// OnDisconnected is the same for an episode that ended because Finch
	// says the connection is gone (status "disconnected"): a new connection
	// is needed.
	OnReconnected  func(ctx context.Context, r Reconnection)
	OnDisconnected func(ctx context.Context, r Reconnection)
	// OnAnswered, if set, is told that the employer answered a request
	// made while the connection worked (RequestProducts, StartCampaign): a
	// token was saved after it. For an upgrade, ProductsMissing lists what
	// Finch did not grant. At least once per request, like OnReconnected.
	OnAnswered func(ctx context.Context, r Reconnection)

	// After a reconnect, Finch serves the connection's last successful
	// sync until its next daily run. So, unless SkipResync is set, the end
	// of an episode starts Finch's data_sync_all job (POST /jobs/automated,
	// with the working token; never for an assisted connection), at once
	// across replicas: Finch runs one job per connection (the one under
	// way is reused) and allows one forced refresh an hour (a refusal waits
	// for Finch's retry_at). The job is followed until it ends (polled,
	// 30 s then doubling up to 10 minutes, and read at once on Finch's
	// job.data_sync_all.completed webhook), and OnDataSynced, if set, is
	// told (Reconnection.SyncStatus, DataFreshAt), as Status is. Set
	// SkipResync if the application refreshes the data itself.
	SkipResync   bool
	OnDataSynced func(ctx context.Context, r Reconnection)

	// EscalateAfter and EscalateAfterReminders, if set, make one
	// notification of an episode its escalation (Event.Escalation): the
	// first due once the episode is EscalateAfter old (it goes out that
	// day, between reminders if need be) or has had EscalateAfterReminders
	// reminders, whichever comes first. Status.EscalatedAt says when; a
	// digest for an account manager is NeedsReauth's list of those. If both
	// are zero, nothing escalates.
	EscalateAfter          time.Duration
	EscalateAfterReminders int

	// AbandonAfter, if set, gives up on connections broken that long: the
	// customer gets a last notice (Event.LastNotice), and AbandonNotice
	// (default 7 days) later the connection is disconnected at Finch (POST
	// /disconnect: Finch bills every connection until then; there is no
	// undo), and OnDisconnected is told. Never a connection that was
	// repaired meanwhile, nor one whose token Finch accepts, checked right
	// before. Finch advises against disconnecting a connection only in
	// reauth (a reconnect repairs it): set it to what the application can
	// afford to wait, in weeks. Abandon does the same for one connection
	// now. If zero, nothing is abandoned.
	AbandonAfter  time.Duration
	AbandonNotice time.Duration

	// SweepEvery, if set, has every connection whose token the Store holds
	// checked at /introspect once per SweepEvery (a day, say), each at its
	// own time in the period, once across replicas, by Sweep (which Run
	// calls every minute): a status that needs the employer, at any level,
	// opens an episode and notifies the customer before any sync fails, and
	// an episode repaired elsewhere ends. The checks are paced: at most
	// SweepRate in any rolling minute in a process (default 30; Finch's
	// limits are per application and endpoint over a rolling minute, so
	// divide by the replicas that run Sweep), and a 429 pauses them for its
	// Retry-After (a minute if none, at most 10). If zero, nothing is swept.
	SweepEvery time.Duration
	SweepRate  int

	// StaleAfter is how old a connection's data may be (Finch's
	// last_successful_sync, or the resync after a reconnect) before Status
	// says DataStale. If zero, 48 hours: two of Finch's daily syncs missed.
	StaleAfter time.Duration

	// Reminders are when, after an episode began, the customer is
	// reminded; after the last, every RemindEvery, MaxReminders in all.
	// Reminders go out from Remind or Run. If nil: 24h, 72h and 168h; if
	// RemindEvery is zero, 168h; if MaxReminders is zero, 8, and if it is
	// negative, none.
	Reminders    []time.Duration
	RemindEvery  time.Duration
	MaxReminders int

	// MaxFinchCalls bounds the library's own calls to Finch in flight
	// (/introspect, Connect sessions, code exchanges), so that a storm
	// cannot trip Finch's rate limits. If zero, 16. MaxHandlings bounds
	// the handlings of detections in flight, so that a storm of broken
	// tokens reaches the Store a few at a time: the others wait in a
	// queue, as data (about 200 bytes each), their callers long answered.
	// If zero, 64. MaxQueued bounds that queue; a detection that finds it
	// full is dropped (counted as finchreauth.detections.dropped) and its
	// token stays latched for RetryInterval, after which the next 401 is
	// detected again. If zero, 100,000.
	MaxFinchCalls int
	MaxHandlings  int
	MaxQueued     int

	// LatchTTL is how long a refused token is answered locally after a
	// handling; if zero, 10 minutes; if negative, never. While it is, the
	// connection's record is looked at every RetryInterval, so that a heal
	// or a new token saved on any replica releases the latch here too.
	// RetryInterval is also how long a token is latched when its first
	// notification is still owed, and the first wait after a failed
	// notification, doubling with each failure in a row up to an hour; if
	// zero, 30 seconds.
	LatchTTL      time.Duration
	RetryInterval time.Duration

	// Timeout bounds each step (a call to Finch, retries included; a Store
	// call; each hook) and how long a caller waits for the handling of its
	// detection. If zero, 10 seconds.
	Timeout time.Duration

	// ErrorHandler receives what went wrong, mostly as a *HookError, from
	// the goroutine where it happened. If nil, errors are only logged, when
	// Logger is set.
	ErrorHandler func(ctx context.Context, err error)

	// Logger, if set, receives a record of each handling and failure,
	// tokens by fingerprint only. Metrics, if set, receives counts.
	Logger  *slog.Logger
	Metrics Metrics

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time

	initOnce sync.Once
	group    singleflight.Group
	latch    *latch
	store    Store
	pol      policy
	limit    finchapi.Limiter
	api      *url.URL // APIBaseURL, parsed; nil if it does not parse
	apiErr   error
	stop     context.Context // done at Close: work in flight stops
	cancel   context.CancelFunc
	// spend is done when Close gives up waiting for the callbacks that
	// are spending a code (see Shutdown).
	spend       context.Context
	cancelSpend context.CancelFunc

	stateless  statelessBudget // see reconnectStateless
	tokens     tokenCache      // Client's tokens
	lastError  errorMemo       // the last error body read
	sweeper    sweeper         // paces Sweep
	suspects   suspicions      // recent 500s, per token
	hinted     atomic.Bool     // see hintUnwatched
	latchedLen string          // len(latchedBody), in decimal

	unlisted finchapi.Unlisted // unlisted fields Finch refused (a session's state)

	qmu     sync.Mutex  // guards queue and workers
	queue   []detection // detections waiting for a worker
	workers int

	mu       sync.Mutex // guards closed and the Add side of running and spending
	closed   bool
	running  sync.WaitGroup
	spending sync.WaitGroup // callbacks between their claim and their answer
	inFlight atomic.Int64   // queued and running work, for tests to wait on
}

var _ http.RoundTripper = (*Transport)(nil)

// String describes t without its secrets or its state.
func (t *Transport) String() string {
	return fmt.Sprintf("finchreauth.Transport{APIBaseURL:%q Connect:%v}", t.APIBaseURL, t.Connect)
}

// Format implements fmt.Formatter: every verb prints t.String(), so that
// printing a Transport never walks into its Store, its latch or its
// Connect's secrets.
func (t *Transport) Format(f fmt.State, verb rune) { io.WriteString(f, t.String()) }

// LogValue implements slog.LogValuer.
func (t *Transport) LogValue() slog.Value { return slog.StringValue(t.String()) }

func (t *Transport) init() {
	t.initOnce.Do(func() {
		t.latch = newLatch(t.now, max(t.latchTTL(), t.retryInterval()))
		t.latchedLen = strconv.Itoa(len(latchedBody))
		t.suspects.seed = maphash.MakeSeed()
		t.store = t.Store
		if t.store == nil {
			t.store = new(MemoryStore)
		}
		n := t.MaxFinchCalls
		if n <= 0 {
			n = defaultFinchCalls
		}
		t.limit = finchapi.NewLimiter(n)
		t.pol = t.policy()
		t.api, t.apiErr = t.apiURL()
		t.stop, t.cancel = context.WithCancel(context.Background())
		t.spend, t.cancelSpend = context.WithCancel(context.Background())
	})
}

// apiURL is APIBaseURL, parsed.
func (t *Transport) apiURL() (*url.URL, error) {
	raw := strings.TrimSuffix(t.APIBaseURL, "/")
	if raw == "" {
		raw = defaultAPIBaseURL
	}
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.RawQuery == "" {
		return u, nil
	}
	return nil, errors.New("finchreauth: Transport.APIBaseURL is not an absolute http(s) URL")
}

// Validate reports what in the Transport's configuration cannot work:
// APIBaseURL, and Connect (see Connect.Validate) when it is set. So that a
// misconfigured Transport fails when the application starts, not when a
// customer's connection breaks and nobody hears: Run returns this error at
// once, and CallbackHandler, StartHandler and WebhookHandler panic when what
// they need is missing or invalid, as http.ServeMux panics on a bad pattern.
func (t *Transport) Validate() error {
	var errs []error
	if _, err := t.apiURL(); err != nil {
		errs = append(errs, err)
	}
	if t.Connect != nil {
		errs = append(errs, t.Connect.Validate())
	}
	return errors.Join(errs...)
}

// mustConnect panics, for a handler's constructor, unless the Transport is
// valid and has a Connect (or, when links is true, a LinkBuilder instead).
func (t *Transport) mustConnect(handler string, links bool) {
	err := t.Validate()
	if err == nil && t.Connect == nil && !(links && t.Links != nil) {
		err = errNilConnect
	}
	if err != nil {
		panic(fmt.Sprintf("%v (%s)", err, handler))
	}
}

// policy is the configuration the state machine reads.
func (t *Transport) policy() policy {
	p := policy{
		lease:        t.leaseFor(),
		retry:        t.retryInterval(),
		retryCap:     max(t.retryInterval(), defaultRetryCap),
		reminders:    t.Reminders,
		remindEvery:  orDefault(t.RemindEvery, defaultRemindEvery),
		maxReminders: t.MaxReminders,
		notify:       t.Notifier != nil,
		resync:       !t.SkipResync,
		sweep:        max(t.SweepEvery, 0),
		escalate:     max(t.EscalateAfter, 0),
		escalateN:    max(t.EscalateAfterReminders, 0),
		abandon:      max(t.AbandonAfter, 0),
		abandonNote:  orDefault(t.AbandonNotice, defaultAbandonNotice),
		skew:         orderSkew,
		attempts:     maxAttempts,
	}
	if p.reminders == nil {
		p.reminders = defaultReminders[:]
	}
	if p.maxReminders == 0 {
		p.maxReminders = defaultMaxReminders
	}
	return p
}

// Reminder defaults.
var defaultReminders = [...]time.Duration{24 * time.Hour, 72 * time.Hour, 168 * time.Hour}

const (
	defaultRemindEvery  = 168 * time.Hour
	defaultMaxReminders = 8
)

// leaseFor is how long a lease lasts: the holder's whole path once it holds
// it (a call to Finch, the link, the renewal, Notify, recording the outcome:
// each bounded by Timeout), and a minute for clocks that disagree.
func (t *Transport) leaseFor() time.Duration { return 4*t.timeout() + time.Minute }

func (t *Transport) maxHandlings() int {
	if t.MaxHandlings > 0 {
		return t.MaxHandlings
	}
	return defaultHandlings
}

func (t *Transport) maxQueued() int {
	if t.MaxQueued > 0 {
		return t.MaxQueued
	}
	return defaultQueued
}

// recheckEvery is how often the latch looks at the record of a connection
// whose tokens it answers.
func (t *Transport) recheckEvery() time.Duration {
	return min(t.retryInterval(), max(t.latchTTL(), time.Second))
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

func (t *Transport) timeout() time.Duration { return orDefault(t.Timeout, defaultTimeout) }

func (t *Transport) latchTTL() time.Duration {
	if t.LatchTTL < 0 {
		return 0
	}
	return orDefault(t.LatchTTL, defaultLatchTTL)
}

func (t *Transport) retryInterval() time.Duration {
	return orDefault(t.RetryInterval, defaultRetryInterval)
}

// retryLatch is how long a token is latched while something is owed.
func (t *Transport) retryLatch() time.Duration { return min(t.retryInterval(), t.latchTTL()) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, t.base())
}

// Middleware has the shape of the official Finch Go SDK's middleware, so
// that option.WithMiddleware(tr.Middleware) puts the Transport in the SDK's
// chain. Its own calls to Finch (/introspect) go out through next.
func (t *Transport) Middleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	return t.roundTrip(req, roundTripperFunc(next))
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

var errNoResponse = errors.New("finchreauth: base RoundTripper returned neither a response nor an error")

func (t *Transport) roundTrip(req *http.Request, base http.RoundTripper) (*http.Response, error) {
	t.init()
	watched := t.watches(req)
	if watched && t.latch.n.Load() > 0 {
		if token := bearer(req.Header); token != "" {
			if ok, recheck := t.latch.latched(token, t.recheckEvery(), req.Method, req.URL.Path); ok {
				if req.Body != nil {
					req.Body.Close()
				}
				if recheck != nil {
					t.recheck(req.Context(), recheck)
				}
				t.count(req.Context(), "finchreauth.latched", "")
				return latchedResponse(req, t.latchedLen), nil
			}
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
		if resp.StatusCode == http.StatusInternalServerError && watched {
			t.on500(req)
		}
		return resp, nil
	case !watched:
		t.hintUnwatched(req, resp)
		return resp, nil
	}
	return t.on401(req, resp, base), nil
}

// hintUnwatched reports, once, a re-authentication 401 from a host this
// Transport does not watch: Finch's answer on another base URL (a
// finchtest.Server's, a proxy's) that passes unnoticed until APIBaseURL
// names it. Only the first such 401 is read; resp's body reads the same
// bytes after it.
func (t *Transport) hintUnwatched(req *http.Request, resp *http.Response) {
	if t.hinted.Load() || t.api == nil || req.URL == nil || req.URL.Host == t.api.Host {
		return // told already, or the watched host's own heal calls
	}
	e, body := peekAPIError(resp, nil)
	resp.Body = body
	if e.IsReauth() && t.hinted.CompareAndSwap(false, true) {
		err := fmt.Errorf("finchreauth: Finch's reauthenticate_user came from %s, which this Transport does not watch (APIBaseURL is %s): set Transport.APIBaseURL to the API the application calls",
			terminalSafe(req.URL.Scheme+"://"+req.URL.Host, 256), t.api.Scheme+"://"+t.api.Host)
		t.goDetached(req.Context(), func(ctx context.Context) { t.report(ctx, err) }) // the caller does not wait
	}
}

// watches reports whether req is a data call to the Finch API this
// Transport is for: not another host, and not one of the calls that heal a
// connection, which carry the broken token too (the official SDK sends its
// token even to /auth/token). It does not allocate.
func (t *Transport) watches(req *http.Request) bool {
	u := req.URL
	if t.api == nil || u == nil || u.Scheme != t.api.Scheme || (u.Host != t.api.Host && !strings.EqualFold(u.Host, t.api.Host)) {
		return false
	}
	p, ok := strings.CutPrefix(u.Path, t.api.Path)
	if !ok || (t.api.Path != "" && p != "" && p[0] != '/') {
		return false
	}
	switch {
	case p == "/auth/token", p == "/introspect", strings.HasPrefix(p, "/connect/"), strings.HasPrefix(p, "/sandbox/"):
		return false
	}
	return true
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
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

// WrapClient returns a new *http.Client that sends its requests through t and
// t through c's Transport (or, when that is nil, t's Base), with c's
// CheckRedirect, Jar and Timeout. c itself is not modified. A nil c is
// treated as a zero http.Client.
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

func (c clientTransport) CloseIdleConnections() { closeIdle(c.base) }

// CloseIdleConnections forwards to Base, so that http.Client's method of that
// name reaches it.
func (t *Transport) CloseIdleConnections() { closeIdle(t.base()) }

func closeIdle(rt http.RoundTripper) {
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Flush waits until the work the Transport runs in the background is done
// (the detections queued so far and their handlings, notifications,
// announcements), or ctx is done, and returns ctx's error then; and it
// writes to the records the requests the latch answered that are not in
// them yet (see Status.Refused). A caller that got Finch's 401 never waits
// for its handling: a test calls Flush before it looks at what the handling
// did.
func (t *Transport) Flush(ctx context.Context) error {
	t.init()
	for wait := 100 * time.Microsecond; t.inFlight.Load() > 0; wait = min(2*wait, 10*time.Millisecond) {
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	for _, c := range t.latch.pending() {
		t.lookAgain(ctx, c)
	}
	return ctx.Err()
}

// recheck looks at the connection's record, off the caller's path, and
// releases the latch of its tokens if its episode ended (on any replica).
func (t *Transport) recheck(ctx context.Context, c *latchConn) {
	t.goDetached(ctx, func(ctx context.Context) {
		t.group.Do("recheck:"+c.id, func() (any, error) {
			t.lookAgain(ctx, c)
			return nil, nil
		})
	})
}

// lookAgain reads the record of c's connection, counting in it the requests
// the latch answered, and forgets c's tokens if the connection works.
func (t *Transport) lookAgain(ctx context.Context, c *latchConn) {
	var l life
	var err error
	if a := c.take(); len(a) > 0 {
		l, _, err = t.apply(ctx, c.id, answered{refused: a})
	} else {
		_, l, err = t.load(ctx, c.id)
	}
	if err == nil && l.Episode == nil {
		t.latch.forget(c.id)
	}
}

// Close is Shutdown with the deadline a callback's exchange and save have
// anyway (the exchange's Timeout, then 4 tries to save, each bounded by
// Timeout).
func (t *Transport) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), (saveAttempts+1)*t.timeout()+2*time.Second)
	defer cancel()
	return t.Shutdown(ctx)
}

// Shutdown stops the Transport, as http.Server.Shutdown stops a server:
//
//   - Nothing new starts: a detection is not queued (its token is still
//     latched), and a callback that has not spent its code yet answers
//     "unavailable" (nothing was spent: the employer may try again).
//   - Work that can be redone is cancelled and not waited for past its
//     hooks' Timeout: detections queued or in their handling, and
//     notifications (what they owe stays owed in the Store, and Remind on
//     any replica carries it out).
//   - A callback that has claimed its state goes on: its code exchange and
//     the save of the token run to the end, and Shutdown waits for them
//     until ctx is done. Then they are cancelled; a token Finch issued that
//     could not be saved goes to Connect.OnUnsaved.
//   - OnReconnected calls under way are waited for (each is bounded by
//     Timeout).
//
// Shutdown returns ctx's error if it gave up waiting for a callback. After
// Shutdown, requests still pass through and latched tokens are still
// answered.
func (t *Transport) Shutdown(ctx context.Context) error {
	t.init()
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	spent := make(chan struct{})
	go func() { t.spending.Wait(); close(spent) }()
	var err error
	select {
	case <-spent:
	case <-ctx.Done():
		err = ctx.Err()
		t.cancelSpend()
		<-spent
	}
	t.running.Wait()
	return err
}

// beginSpend registers a callback about to spend a code; false after Close.
func (t *Transport) beginSpend() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.spending.Add(1)
	return true
}

// spendContext is the context a callback spends its code under: the
// request's values, cancelled only when Shutdown gives up waiting.
func (t *Transport) spendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(t.spend, cancel)
	return ctx, func() { stop(); cancel() }
}

// begin registers work that Close must wait for; false after Close.
func (t *Transport) begin() bool {
	if !t.beginWorker() {
		return false
	}
	t.inFlight.Add(1)
	return true
}

// beginWorker registers a worker goroutine that Close must wait for; the
// detections it handles are counted as work in flight, not the worker.
func (t *Transport) beginWorker() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.running.Add(1)
	return true
}

// end is the counterpart of begin.
func (t *Transport) end() {
	t.inFlight.Add(-1)
	t.running.Done()
}

// detach returns a context for work that outlives its caller: ctx's values
// without its cancellation, cancelled by Close.
func (t *Transport) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(t.stop, cancel)
	return ctx, func() { stop(); cancel() }
}

// goDetached runs fn in a goroutine that Close waits for, with a context
// that Close cancels.
func (t *Transport) goDetached(ctx context.Context, fn func(context.Context)) {
	if !t.begin() {
		return
	}
	go func() {
		defer t.end()
		ctx, cancel := t.detach(ctx)
		defer cancel()
		fn(ctx)
	}()
}

// goTell runs fn, which tells the application something that happened, in
// a goroutine that Close waits for but does not cancel (fn is bounded by
// Timeout): what happened stays told.
func (t *Transport) goTell(ctx context.Context, fn func(context.Context)) {
	t.mu.Lock()
	t.running.Add(1)
	t.inFlight.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.end()
		fn(context.WithoutCancel(ctx))
	}()
}
