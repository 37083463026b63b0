package finchreauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fault matrix: every external step the library drives, under every
// fault, with what the caller gets, whether the detection survives, and that
// nothing that succeeded runs twice. goleak (TestMain) checks every cell for
// leaked goroutines.

type faultKind string

const (
	faultError  faultKind = "error"
	faultPanic  faultKind = "panic"
	faultHang   faultKind = "hang"   // past the Timeout, ignoring its context: the worst case
	faultSlow   faultKind = "slow"   // slower than usual, within the Timeout
	faultCancel faultKind = "cancel" // the caller cancels while the step runs
	// faultLost is a step that takes effect and then hangs past the
	// Timeout: its answer is lost, not its work.
	faultLost faultKind = "lost"
)

var allFaults = []faultKind{faultError, faultPanic, faultHang, faultSlow, faultCancel}

// injector makes one named step misbehave, a given number of times.
type injector struct {
	mu        sync.Mutex
	step      string
	kind      faultKind
	remaining int
	release   chan struct{} // closed by releaseAll: ends hangs
	once      sync.Once
	entered   chan struct{} // a cancel fault says it is running
	proceed   chan struct{} // and waits for this
	done      sync.WaitGroup
}

func newInjector(t *testing.T, step string, kind faultKind, times int) *injector {
	in := &injector{step: step, kind: kind, remaining: times,
		release: make(chan struct{}), entered: make(chan struct{}, 1), proceed: make(chan struct{})}
	t.Cleanup(in.releaseAll) // abandoned steps finish before goleak looks
	return in
}

// releaseAll ends every hang and waits until the abandoned steps have
// finished, the work they do after the hang included.
func (in *injector) releaseAll() {
	in.once.Do(func() { close(in.release) })
	in.done.Wait()
}

// arm sets how many more times the fault applies.
func (in *injector) arm(times int) {
	in.mu.Lock()
	in.remaining = times
	in.mu.Unlock()
}

func (in *injector) clear() { in.arm(0) }

// do runs call as the step named step, misbehaving first if step is the
// faulty one. honourCtx makes a hang or a cancel end with the context, as
// a transport must (the Base is not guarded by the Transport). A hang that
// ignores its context goes on with the call afterwards, without the
// context's cancellation, as a step that ignores its context does.
func (in *injector) do(ctx context.Context, step string, honourCtx bool, call func(context.Context) error) error {
	in.mu.Lock()
	match := in.step == step && in.remaining > 0
	if match {
		in.remaining--
		in.done.Add(1)
	}
	in.mu.Unlock()
	if !match {
		return call(ctx)
	}
	defer in.done.Done()
	switch in.kind {
	case faultError:
		return fmt.Errorf("injected %s failure", step)
	case faultPanic:
		panic("injected " + step + " panic")
	case faultHang:
		if honourCtx {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-in.release:
			}
		}
		<-in.release
		return call(context.WithoutCancel(ctx))
	case faultLost:
		err := call(context.WithoutCancel(ctx))
		if honourCtx {
			select {
			case <-ctx.Done():
				return ctx.Err() // it took effect; its answer is lost
			case <-in.release:
			}
		}
		<-in.release
		return err
	case faultSlow:
		time.Sleep(20 * time.Millisecond)
	case faultCancel:
		in.entered <- struct{}{}
		<-in.proceed
		if honourCtx && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return call(ctx)
}

// faultRT puts an injector in front of a RoundTripper: /introspect is the
// "introspect" step, /auth/token "exchange", anything else "base". A request
// abandoned by a hang goes on, once released, with its own context, which
// the Transport has cancelled by then.
type faultRT struct {
	in   *injector
	next http.RoundTripper
}

func (f faultRT) RoundTrip(req *http.Request) (*http.Response, error) {
	step := "base"
	switch req.URL.Path {
	case "/introspect":
		step = "introspect"
	case "/auth/token":
		step = "exchange"
	}
	var resp *http.Response
	sent := false
	err := f.in.do(req.Context(), step, step == "base", func(context.Context) error {
		sent = true
		var err error
		resp, err = f.next.RoundTrip(req)
		return err
	})
	if !sent && req.Body != nil {
		req.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// faultStore puts an injector in front of a Store: "lookup", "get", and for
// Put "save" when it replaces the connection's saved token, "put"
// otherwise. A Store honours its context (rule 5 of the Store contract): the
// Transport calls it inline, under Timeout, so a hang ends with the context.
// It counts transitions: the Puts that open an episode (set Since on a
// record whose stored Since is zero).
type faultStore struct {
	finchreauth.Store
	in          *injector
	transitions atomic.Int64
}

func (s *faultStore) Lookup(ctx context.Context, fp string) (id string, err error) {
	err = s.in.do(ctx, "lookup", true, func(ctx context.Context) error {
		id, err = s.Store.Lookup(ctx, fp)
		return err
	})
	return id, err
}

func (s *faultStore) Get(ctx context.Context, connID string) (r finchreauth.Record, err error) {
	err = s.in.do(ctx, "get", true, func(ctx context.Context) error {
		r, err = s.Store.Get(ctx, connID)
		return err
	})
	return r, err
}

func (s *faultStore) Put(ctx context.Context, rec finchreauth.Record) (v int64, err error) {
	prev, _ := s.Store.Get(context.Background(), rec.ConnectionID)
	step := "put"
	if prev.Token != "" && rec.Token != prev.Token {
		step = "save"
	}
	err = s.in.do(ctx, step, true, func(ctx context.Context) error {
		was, _ := s.Store.Get(context.Background(), rec.ConnectionID)
		v, err = s.Store.Put(ctx, rec)
		if err == nil && was.Since.IsZero() && !rec.Since.IsZero() {
			s.transitions.Add(1)
		}
		return err
	})
	return v, err
}

// waitIdle waits until tr runs nothing in the background: a caller never
// waits for the handling of its detection, so a test waits here before it
// looks at what the handling did. Abandoned steps (a hook that ignores its
// context) are not waited for.
func waitIdle(t *testing.T, tr *finchreauth.Transport) {
	t.Helper()
	require.Eventually(t, func() bool { return finchreauth.InFlight(tr) == 0 }, 10*time.Second, time.Millisecond, "a handling is still running")
}

// TestWaitIdleSeesAHandling: waitIdle can fail; it sees a handling that is
// still running after its caller has gone.
func TestWaitIdleSeesAHandling(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	gate := make(chan struct{})
	tr := &finchreauth.Transport{Base: ff, Timeout: time.Minute, Notifier: finchreauth.NotifierFunc(func(context.Context, finchreauth.Event) error {
		<-gate
		return nil
	})}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the caller does not wait for the handling
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil).WithContext(ctx))
	require.NoError(t, err)
	readAll(t, resp)
	require.Eventually(t, func() bool { return finchreauth.InFlight(tr) == 1 }, 10*time.Second, time.Millisecond,
		"the handling is seen while it waits for its Notifier")
	close(gate)
	waitIdle(t, tr)
	assert.Zero(t, finchreauth.InFlight(tr))
}

// hookNames is the HookError.Hook a step's failure is reported as.
var hookNames = map[string]string{"introspect": "introspect", "lookup": "store", "get": "store", "put": "store", "link": "link", "notify": "notify"}

func TestFaultMatrixDetection(t *testing.T) {
	for _, step := range []string{"base", "introspect", "lookup", "get", "put", "link", "notify"} {
		for _, kind := range allFaults {
			t.Run(step+"/"+string(kind), func(t *testing.T) {
				runDetectionFault(t, step, kind)
			})
		}
	}
}

func runDetectionFault(t *testing.T, step string, kind faultKind) {
	const timeout = 200 * time.Millisecond
	times := 1
	if step == "introspect" && kind == faultError {
		times = 100 // a transport error is retried: make it last past the Timeout
	}
	in := newInjector(t, step, kind, times)
	ff := newFakeFinch()
	ff.add("tok", "conn_1") // a token the Store does not know: /introspect names its connection
	ff.setBroken("tok", true)
	mem := new(finchreauth.MemoryStore)
	store := &faultStore{Store: mem, in: in}
	notes := &recorder{}
	errs := &errorLog{}
	clk := newClock()
	t0 := clk.Now()
	tr := &finchreauth.Transport{
		Base: faultRT{in, ff}, Store: store, ErrorHandler: errs.handle,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			return in.do(ctx, "notify", false, func(ctx context.Context) error { return notes.Notify(ctx, e) })
		}),
		Links: finchreauth.LinkBuilderFunc(func(ctx context.Context, e finchreauth.Event) (u string, err error) {
			err = in.do(ctx, "link", false, func(context.Context) error {
				u = "https://connect.example/reconnect?connection_id=" + e.Connection.ConnectionID
				return nil
			})
			return u, err
		}),
		Now: clk.Now, Timeout: timeout, RetryInterval: 30 * time.Second,
	}
	defer tr.Close()

	call := func(ctx context.Context) (*http.Response, error) {
		req := newRequest(t, "GET", api+"/employer/directory", "tok", nil).WithContext(ctx)
		return tr.RoundTrip(req)
	}
	// handled is a later call with the token, after which the handling it
	// started (if any) has finished.
	handled := func() {
		t.Helper()
		resp, err := call(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 401, resp.StatusCode)
		readAll(t, resp)
		waitIdle(t, tr)
	}

	// The first call, under the fault.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if step == "base" && kind == faultHang {
		ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
	}
	type answer struct {
		resp     *http.Response
		err      error
		panicked any
		took     time.Duration
	}
	got := make(chan answer, 1)
	go func() {
		var a answer
		start := time.Now()
		defer func() {
			a.panicked = recover()
			a.took = time.Since(start)
			got <- a
		}()
		a.resp, a.err = call(ctx)
	}()
	if kind == faultCancel {
		<-in.entered
		cancel()
		if step != "base" {
			// The caller is released by its own cancellation, with the 401
			// in hand, while the step it started is still running.
			a := <-got
			require.NoError(t, a.err)
			assert.Equal(t, 401, a.resp.StatusCode)
			readAll(t, a.resp)
		}
		close(in.proceed)
	}

	if step == "base" {
		a := <-got
		// Faults of the Base are the caller's: passed through unchanged,
		// nothing handled, nothing latched.
		switch kind {
		case faultPanic:
			assert.Equal(t, "injected base panic", a.panicked, "a panicking Base panics in the caller, as in net/http")
		case faultError:
			assert.ErrorContains(t, a.err, "injected base failure")
			assert.Nil(t, a.resp)
		case faultHang:
			assert.ErrorIs(t, a.err, context.DeadlineExceeded)
		case faultCancel:
			assert.ErrorIs(t, a.err, context.Canceled)
		case faultSlow:
			require.NoError(t, a.err)
			assert.Equal(t, 401, a.resp.StatusCode)
			readAll(t, a.resp)
		}
		waitIdle(t, tr)
		if kind != faultSlow {
			assert.Zero(t, notes.n.Load())
			assert.Zero(t, ff.count("/introspect"))
		}
		// The next call works and is handled.
		handled()
		assert.Len(t, notes.delivered(), 1)
		assert.EqualValues(t, 1, store.transitions.Load())
		assert.Empty(t, errs.all())
		return
	}

	if kind != faultCancel {
		// A hook's fault never reaches the caller: Finch's 401, after at
		// most Timeout.
		a := <-got
		require.Nil(t, a.panicked)
		require.NoError(t, a.err)
		assert.Equal(t, 401, a.resp.StatusCode)
		assert.True(t, finchreauth.ParseAPIError(a.resp).IsReauth())
		readAll(t, a.resp)
		assert.Less(t, a.took, timeout+2*time.Second, "the caller is not held by the step")
	}
	waitIdle(t, tr)

	failed := kind == faultError || kind == faultPanic || kind == faultHang
	if failed {
		var he *finchreauth.HookError
		require.NotEmpty(t, errs.all(), "the failure is reported")
		require.ErrorAs(t, errs.all()[0], &he)
		assert.Equal(t, hookNames[step], he.Hook)
		switch kind {
		case faultPanic:
			assert.Equal(t, "injected "+step+" panic", he.Panic)
		case faultHang:
			assert.ErrorIs(t, he, context.DeadlineExceeded)
		}
	} else {
		assert.Empty(t, errs.all())
	}

	// What the first handling achieved, and what the next detection (after
	// RetryInterval) must complete.
	in.clear()
	switch {
	case !failed:
		require.Len(t, notes.delivered(), 1)
		assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID)
	case step == "introspect", step == "lookup", step == "get", step == "put":
		// Nobody can say whose the token is, or the Store did not take
		// the episode: nothing is recorded, nobody is told.
		assert.Empty(t, notes.delivered())
		_, err := mem.Lookup(context.Background(), finchreauth.Token("tok").Fingerprint())
		assert.ErrorIs(t, err, finchreauth.ErrNotFound)
		_, err = mem.Get(context.Background(), "conn_1")
		assert.ErrorIs(t, err, finchreauth.ErrNotFound)
	default: // link, notify: the episode is open, its notification owed
		assert.Empty(t, notes.delivered(), "no notification without its link, or it failed")
		st, err := tr.Status(context.Background(), "conn_1")
		require.NoError(t, err)
		assert.True(t, st.NeedsReauth)
		assert.Zero(t, st.Notifications)
		rec, err := mem.Get(context.Background(), "conn_1")
		require.NoError(t, err)
		assert.True(t, rec.Due.Equal(t0.Add(30*time.Second)), "due again after RetryInterval: %v", rec.Due.Sub(t0))
	}
	clk.advance(30 * time.Second)
	handled()
	require.Len(t, notes.delivered(), 1, "delivered: not lost; errors: %v", errs.all())
	e := notes.delivered()[0]
	assert.Equal(t, "conn_1", e.Connection.ConnectionID)
	assert.Equal(t, "https://connect.example/reconnect?connection_id=conn_1", e.ReconnectURL, "with its link")
	clk.advance(time.Hour)
	handled()
	require.Len(t, notes.delivered(), 1, "delivered exactly once: not lost, never twice")
	assert.EqualValues(t, 1, store.transitions.Load(), "one episode")

	// The abandoned steps of a hang may now finish: late, they change
	// nothing in the store. A Notifier that ignored its context and
	// completes now has sent a message the Transport gave up on and
	// retried: the one duplicate a hook that ignores its context can cause,
	// and the reason Event.Episode exists (an idempotency key).
	in.releaseAll()
	wantDelivered := 1
	if step == "notify" && kind == faultHang {
		wantDelivered = 2
		events := notes.delivered()
		require.Len(t, events, 2)
		assert.Equal(t, events[0].Episode, events[1].Episode, "both carry the same Episode")
	}
	require.Len(t, notes.delivered(), wantDelivered)
	assert.EqualValues(t, 1, store.transitions.Load())
	st, err := tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Equal(t, 1, st.Notifications)
}

// reconnectFaultRig is a broken connection whose customer was notified, with
// a fault ready for the callback's steps.
type reconnectFaultRig struct {
	s        *finchtest.Server
	in       *injector
	mem      *finchreauth.MemoryStore
	store    *faultStore
	tr       *finchreauth.Transport
	errs     *errorLog
	notes    *recorder
	connID   string
	oldToken string
	link     string

	mu                   sync.Mutex
	reconnected, unsaved []finchreauth.Reconnection
}

func newReconnectFaultRig(t *testing.T, step string, kind faultKind) *reconnectFaultRig {
	r := &reconnectFaultRig{s: finchtest.NewServer(), in: newInjector(t, step, kind, 0), mem: new(finchreauth.MemoryStore),
		errs: &errorLog{}, notes: &recorder{}}
	t.Cleanup(r.s.Close)
	r.oldToken = r.s.AddConnection(finchtest.Connection{ProviderID: "gusto"})
	conn, _ := r.s.ConnectionForToken(r.oldToken)
	r.connID = conn.ID
	r.store = &faultStore{Store: r.mem, in: r.in}
	r.tr = &finchreauth.Transport{
		Base: faultRT{r.in, r.s.Client().Transport}, APIBaseURL: r.s.URL, Store: r.store, Notifier: r.notes,
		ErrorHandler: r.errs.handle, Timeout: 250 * time.Millisecond,
		Connect: &finchreauth.Connect{
			ClientID: r.s.ClientID, ClientSecret: r.s.ClientSecret, StateKeys: [][]byte{stateKey},
			RedirectURI: "https://app.example/cb", SuccessURL: "https://app.example/ok", FailureURL: "https://app.example/failed",
			AuthorizeURLs: true, ConnectBaseURL: r.s.URL,
			OnUnsaved: func(_ context.Context, rec finchreauth.Reconnection) {
				r.mu.Lock()
				r.unsaved = append(r.unsaved, rec)
				r.mu.Unlock()
			},
		},
		OnReconnected: func(_ context.Context, rec finchreauth.Reconnection) {
			r.mu.Lock()
			r.reconnected = append(r.reconnected, rec)
			r.mu.Unlock()
		},
	}
	t.Cleanup(func() { r.tr.Close() })
	ctx := context.Background()
	require.NoError(t, r.tr.SaveToken(ctx, r.connID, finchreauth.Token(r.oldToken)))
	r.s.Break(r.connID)
	resp, err := r.tr.RoundTrip(newRequest(t, "GET", r.s.URL+"/employer/company", r.oldToken, nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, r.tr)
	require.Len(t, r.notes.delivered(), 1, "errors: %v", r.errs.all())
	r.link = r.notes.delivered()[0].ReconnectURL
	require.NotEmpty(t, r.link)
	require.Empty(t, r.errs.all())
	return r
}

// callback goes through Connect with the link again and brings the code
// back to the callback handler; it returns the failure reason, "" for
// success.
func (r *reconnectFaultRig) callback(t *testing.T, ctx context.Context) string {
	cb, err := r.s.Approve(r.link)
	require.NoError(t, err)
	u, _ := url.Parse(cb)
	rec := httptest.NewRecorder()
	r.tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+u.RawQuery, nil).WithContext(ctx))
	require.Equal(t, http.StatusSeeOther, rec.Code)
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if loc.Query().Get("reason") == "" {
		assert.Equal(t, "https://app.example/ok?connection_id="+url.QueryEscape(r.connID), loc.String())
	}
	return loc.Query().Get("reason")
}

func (r *reconnectFaultRig) savedToken(t *testing.T) finchreauth.Token {
	tok, err := r.tr.Token(context.Background(), r.connID)
	require.NoError(t, err)
	return tok
}

// hooks waits for the detached hooks (Close) and returns what they got.
func (r *reconnectFaultRig) hooks() (reconnected, unsaved []finchreauth.Reconnection) {
	r.tr.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]finchreauth.Reconnection(nil), r.reconnected...), append([]finchreauth.Reconnection(nil), r.unsaved...)
}

// hookError returns the first *HookError of that hook the ErrorHandler got.
func hookError(errs []error, hook string) *finchreauth.HookError {
	for _, err := range errs {
		var he *finchreauth.HookError
		if errors.As(err, &he) && he.Hook == hook {
			return he
		}
	}
	return nil
}

// TestFaultMatrixReconnect: the callback's steps, the code exchange and the
// token save, under every fault.
func TestFaultMatrixReconnect(t *testing.T) {
	for _, step := range []string{"exchange", "save"} {
		for _, kind := range allFaults {
			t.Run(step+"/"+string(kind), func(t *testing.T) {
				runReconnectFault(t, step, kind)
			})
		}
	}
}

func runReconnectFault(t *testing.T, step string, kind faultKind) {
	r := newReconnectFaultRig(t, step, kind)
	ctx := context.Background()
	failed := kind == faultError || kind == faultPanic || kind == faultHang
	switch {
	case step == "exchange" && kind == faultError:
		r.in.arm(100) // a transport error is retried: make it last past the Timeout
	case step == "save" && failed:
		r.in.arm(4) // the callback tries the save at most 4 times: make every attempt fail
	default:
		r.in.arm(1)
	}

	switch kind {
	case faultSlow:
		assert.Equal(t, "", r.callback(t, ctx), "errors: %v", r.errs.all())
	case faultCancel:
		// The employer closes the tab while the step runs: the code is
		// being spent, so the exchange and the save go on.
		reqCtx, cancel := context.WithCancel(ctx)
		done := make(chan string)
		go func() { done <- r.callback(t, reqCtx) }()
		<-r.in.entered
		cancel()
		close(r.in.proceed)
		assert.Equal(t, "", <-done, "errors: %v", r.errs.all())
	default:
		want := map[string]finchreauth.Reason{"exchange": finchreauth.ReasonExchangeFailed, "save": finchreauth.ReasonSaveFailed}[step]
		assert.Equal(t, string(want), r.callback(t, ctx))
		assert.Equal(t, finchreauth.Token(r.oldToken), r.savedToken(t), "nothing saved")
		st, err := r.tr.Status(ctx, r.connID)
		require.NoError(t, err)
		assert.True(t, st.NeedsReauth, "the episode is still open")
		errs := r.errs.all()
		require.NotEmpty(t, errs)
		assert.ErrorIs(t, errs[len(errs)-1], want, "the callback's failure is reported with its reason")
		he := hookError(errs, map[string]string{"exchange": "exchange", "save": "store"}[step])
		require.NotNil(t, he, "the step's failure is reported: %v", errs)
		switch kind {
		case faultPanic:
			assert.Equal(t, "injected "+step+" panic", he.Panic)
		case faultHang:
			assert.ErrorIs(t, he, context.DeadlineExceeded)
		}
		r.mu.Lock()
		unsaved := append([]finchreauth.Reconnection(nil), r.unsaved...)
		r.mu.Unlock()
		if step == "save" {
			// Finch issued a token that could not be kept: the
			// application gets it.
			require.Len(t, unsaved, 1)
			assert.Equal(t, finchreauth.ReasonSaveFailed, unsaved[0].Reason)
			assert.Equal(t, r.connID, unsaved[0].ConnectionID)
			assert.NotEmpty(t, unsaved[0].Token)
			assert.NotEqual(t, finchreauth.Token(r.oldToken), unsaved[0].Token)
		} else {
			assert.Empty(t, unsaved, "no token was issued")
		}
		r.in.clear()
		// Not lost: the state was not spent, the employer goes through
		// Connect again with the same link, and this time it works.
		assert.Equal(t, "", r.callback(t, ctx), "errors: %v", r.errs.all())
	}
	tok := r.savedToken(t)
	assert.NotEqual(t, finchreauth.Token(r.oldToken), tok, "the new token is saved")
	if kind == faultHang {
		// Release the abandoned steps. A hung save finishing now carries a
		// token issued before the one just saved: it must not replace it.
		r.in.releaseAll()
		assert.Equal(t, tok, r.savedToken(t), "an older token never replaces a newer one")
	}
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1, "OnReconnected once")
	assert.Equal(t, tok, reconnected[0].Token)
	assert.Equal(t, "callback", reconnected[0].Via)
	assert.Equal(t, 1, reconnected[0].Notifications)
	assert.Len(t, r.notes.delivered(), 1, "one notification")
	assert.EqualValues(t, 1, r.store.transitions.Load(), "one episode")

	resp, err := r.tr.RoundTrip(newRequest(t, "GET", r.s.URL+"/employer/company", string(tok), nil))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
}

// TestSaveRetried: a save that fails once is tried again, detached from the
// browser, and the reconnect completes. A save whose answer was lost (the
// Store took the token, then hung past the Timeout) is found by the retry,
// the token already there, and reported as the success it was.
func TestSaveRetried(t *testing.T) {
	for _, kind := range []faultKind{faultError, faultPanic, faultHang, faultLost} {
		t.Run(string(kind), func(t *testing.T) {
			r := newReconnectFaultRig(t, "save", kind)
			r.in.arm(1)
			brokenSince := r.notes.delivered()[0].Since
			assert.Equal(t, "", r.callback(t, context.Background()), "errors: %v", r.errs.all())
			tok := r.savedToken(t)
			assert.NotEqual(t, finchreauth.Token(r.oldToken), tok)
			require.NotNil(t, hookError(r.errs.all(), "store"), "the failed attempt is reported")
			for _, err := range r.errs.all() {
				assert.NotErrorIs(t, err, finchreauth.ReasonSaveFailed)
			}
			st, err := r.tr.Status(context.Background(), r.connID)
			require.NoError(t, err)
			assert.False(t, st.NeedsReauth, "the episode ended")
			r.in.releaseAll()
			assert.Equal(t, tok, r.savedToken(t), "the abandoned attempt changes nothing")

			reconnected, unsaved := r.hooks()
			assert.Empty(t, unsaved)
			require.Len(t, reconnected, 1, "OnReconnected once for the episode")
			assert.Equal(t, tok, reconnected[0].Token)
			assert.True(t, reconnected[0].BrokenSince.Equal(brokenSince))
			assert.Equal(t, 1, reconnected[0].Notifications)
		})
	}
}
