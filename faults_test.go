package finchreauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
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

// releaseAll ends every hang and waits for the abandoned steps to return.
func (in *injector) releaseAll() {
	in.once.Do(func() { close(in.release) })
	in.done.Wait()
}

func newInjector(t *testing.T, step string, kind faultKind, times int) *injector {
	in := &injector{step: step, kind: kind, remaining: times,
		release: make(chan struct{}), entered: make(chan struct{}, 1), proceed: make(chan struct{})}
	t.Cleanup(in.releaseAll) // abandoned hooks finish before goleak looks
	return in
}

func (in *injector) clear() {
	in.mu.Lock()
	in.remaining = 0
	in.mu.Unlock()
}

// hit applies the fault if step is the faulty one. honourCtx makes a hang
// end with the context, as a transport must (the Base is not guarded).
func (in *injector) hit(ctx context.Context, step string, honourCtx bool) error {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	match := in.step == step && in.remaining > 0
	if match {
		in.remaining--
		in.done.Add(1)
	}
	in.mu.Unlock()
	if !match {
		return nil
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
		return nil
	case faultSlow:
		time.Sleep(20 * time.Millisecond)
	case faultCancel:
		in.entered <- struct{}{}
		<-in.proceed
		if honourCtx {
			return ctx.Err()
		}
	}
	return nil
}

// faultRT puts an injector in front of a RoundTripper: /introspect is the
// "introspect" step, /auth/token "exchange", anything else "base".
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
	if err := f.in.hit(req.Context(), step, step == "base"); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return f.next.RoundTrip(req)
}

// faultStore puts an injector in front of a Store: "mark" and "save".
type faultStore struct {
	finchreauth.Store
	in          *injector
	mu          sync.Mutex
	nTransition int
}

func (s *faultStore) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	if err := s.in.hit(ctx, "mark", false); err != nil {
		return finchreauth.MarkResult{}, err
	}
	res, err := s.Store.MarkReauth(ctx, m)
	if res.Transitioned {
		s.mu.Lock()
		s.nTransition++
		s.mu.Unlock()
	}
	return res, err
}

func (s *faultStore) SaveToken(ctx context.Context, tok finchreauth.Token) (finchreauth.State, error) {
	if err := s.in.hit(ctx, "save", false); err != nil {
		return finchreauth.State{}, err
	}
	return s.Store.SaveToken(ctx, tok)
}

func (s *faultStore) transitionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nTransition
}

func TestFaultMatrixDetection(t *testing.T) {
	for _, step := range []string{"base", "introspect", "mark", "link", "notify"} {
		for _, kind := range allFaults {
			t.Run(step+"/"+string(kind), func(t *testing.T) {
				runDetectionFault(t, step, kind)
			})
		}
	}
}

func runDetectionFault(t *testing.T, step string, kind faultKind) {
	in := newInjector(t, step, kind, 1)
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	store := &faultStore{Store: finchreauth.NewMemoryStore(), in: in}
	notes := &recorder{fn: func(ctx context.Context, e finchreauth.Event) error { return in.hit(ctx, "notify", false) }}
	errs := &errorLog{}
	clk := newClock()
	tr := &finchreauth.Transport{
		Base: faultRT{in, ff}, Store: store, Notifier: notes, ErrorHandler: errs.handle,
		Links: finchreauth.LinkBuilderFunc(func(ctx context.Context, e finchreauth.Event) (string, error) {
			if err := in.hit(ctx, "link", false); err != nil {
				return "", err
			}
			return "https://connect.example/" + e.Key, nil
		}),
		Now: clk.Now, Timeout: 100 * time.Millisecond, RetryInterval: 30 * time.Second,
	}
	defer tr.Close()

	call := func(ctx context.Context) (*http.Response, error) {
		req := newRequest(t, "GET", api+"/employer/directory", "tok", nil).WithContext(ctx)
		return tr.RoundTrip(req)
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
	}
	got := make(chan answer, 1)
	go func() {
		var a answer
		defer func() {
			a.panicked = recover()
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
			close(in.proceed)
			require.Eventually(t, func() bool { return len(notes.delivered()) == 1 }, 5*time.Second, time.Millisecond,
				"the handling finished undisturbed; errors: %v", errs.all())
			assert.Equal(t, 1, store.transitionCount())
			return
		}
		close(in.proceed)
	}
	a := <-got

	if step == "base" {
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
		if kind != faultSlow {
			assert.Zero(t, notes.n.Load())
			assert.Zero(t, ff.count("/introspect"))
		}
		// The next call works and is handled.
		resp, err := call(context.Background())
		require.NoError(t, err)
		readAll(t, resp)
		assert.Len(t, notes.delivered(), 1)
		assert.Equal(t, 1, store.transitionCount())
		return
	}

	// A hook's fault never reaches the caller: Finch's 401, in bounded time.
	require.Nil(t, a.panicked)
	require.NoError(t, a.err)
	assert.Equal(t, 401, a.resp.StatusCode)
	assert.True(t, finchreauth.IsReauthResponse(a.resp))
	readAll(t, a.resp)

	failed := kind == faultError || kind == faultPanic || kind == faultHang
	if failed {
		var he *finchreauth.HookError
		require.NotEmpty(t, errs.all(), "the failure is reported")
		require.ErrorAs(t, errs.all()[0], &he)
		assert.Equal(t, map[string]string{"mark": "store"}[step]+map[bool]string{true: step}[step != "mark"], he.Hook)
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
	case !failed || step == "introspect":
		// Done: introspect failures go on with the fingerprint.
		require.Len(t, notes.delivered(), 1)
		e := notes.delivered()[0]
		if failed {
			assert.Equal(t, "fp:"+finchreauth.Fingerprint("tok"), e.Key)
		} else {
			assert.Equal(t, "conn_1", e.Key)
		}
	case step == "link":
		// The notification went out without its link: it is not sent again
		// to add one.
		require.Len(t, notes.delivered(), 1)
		assert.Empty(t, notes.delivered()[0].ReconnectURL)
	default: // mark, notify: nothing delivered yet
		assert.Empty(t, notes.delivered())
	}
	clk.advance(30 * time.Second)
	resp, err := call(context.Background())
	require.NoError(t, err)
	readAll(t, resp)
	clk.advance(time.Hour)
	resp, err = call(context.Background())
	require.NoError(t, err)
	readAll(t, resp)

	require.Len(t, notes.delivered(), 1, "delivered exactly once: not lost, never twice")
	wantTransitions := 1
	if step == "introspect" && failed {
		// One under the fingerprint key, then one under the connection
		// id once /introspect answered; the second is the same breakage
		// and is not notified again.
		wantTransitions = 2
	}
	assert.Equal(t, wantTransitions, store.transitionCount())

	// The abandoned hooks of a hang may now finish: late, they change
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
	assert.Equal(t, wantTransitions, store.transitionCount())
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
	in := newInjector(t, step, kind, 0) // armed after the setup's own calls
	s := finchtest.NewServer()
	defer s.Close()
	oldToken := s.AddConnection(finchtest.Connection{ProviderID: "gusto"})
	conn, _ := s.ConnectionForToken(oldToken)
	store := &faultStore{Store: finchreauth.NewMemoryStore(), in: in}
	errs := &errorLog{}
	tr := &finchreauth.Transport{Base: faultRT{in, s.Client().Transport}, Store: store, APIBaseURL: s.URL}
	defer tr.Close()
	var mu sync.Mutex
	var reconnected []finchreauth.Reconnection
	c := &finchreauth.Connect{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret, StateKeys: [][]byte{stateKey},
		RedirectURI: "https://app.example/cb", SuccessURL: "https://app.example/ok", FailureURL: "https://app.example/failed",
		AuthorizeURLs: true, ConnectBaseURL: s.URL, Transport: tr, ErrorHandler: errs.handle,
		Timeout: 300 * time.Millisecond,
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) {
			mu.Lock()
			reconnected = append(reconnected, r)
			mu.Unlock()
		},
	}
	ctx := context.Background()
	_, err := tr.SaveToken(ctx, finchreauth.Token{ConnectionID: conn.ID, AccessToken: oldToken, IssuedAt: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	in.mu.Lock()
	in.remaining = 1
	if kind == faultError && step == "exchange" {
		in.remaining = 100 // a transport error is retried: make it last past the Timeout
	}
	in.mu.Unlock()
	s.Break(conn.ID)
	link, err := c.ReconnectURL(ctx, finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: conn.ID, Products: []string{"company"}}})
	require.NoError(t, err)

	callback := func(reqCtx context.Context) string {
		cb, err := s.Approve(link)
		require.NoError(t, err)
		u, _ := url.Parse(cb)
		rec := httptest.NewRecorder()
		c.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+u.RawQuery, nil).WithContext(reqCtx))
		require.Equal(t, http.StatusSeeOther, rec.Code)
		loc, _ := url.Parse(rec.Header().Get("Location"))
		return loc.Query().Get("reason")
	}
	savedToken := func() finchreauth.Token {
		tok, err := store.Token(ctx, conn.ID)
		require.NoError(t, err)
		return tok
	}

	switch kind {
	case faultSlow:
		assert.Equal(t, "", callback(ctx))
	case faultCancel:
		// The employer closes the tab while the step runs: the code is
		// being spent, so the exchange and the save go on.
		reqCtx, cancel := context.WithCancel(ctx)
		done := make(chan string)
		go func() { done <- callback(reqCtx) }()
		<-in.entered
		cancel()
		close(in.proceed)
		assert.Equal(t, "", <-done)
	default:
		want := map[string]string{"exchange": "exchange_failed", "save": "save_failed"}[step]
		assert.Equal(t, want, callback(ctx))
		assert.Equal(t, finchreauth.Fingerprint(oldToken), savedToken().Fingerprint(), "nothing saved")
		require.NotEmpty(t, errs.all())
		in.clear()
		// Not lost: the state was released, the employer goes through
		// Connect again with the same link, and this time it works.
		assert.Equal(t, "", callback(ctx), "errors: %v", errs.all())
	}
	tok := savedToken()
	assert.NotEqual(t, finchreauth.Fingerprint(oldToken), tok.Fingerprint(), "the new token is saved")
	mu.Lock()
	assert.Len(t, reconnected, 1, "OnReconnected once")
	mu.Unlock()

	if kind == faultHang {
		// Release the abandoned step. A hung save finishing now carries a
		// token issued before the one just saved: it must not replace it.
		in.releaseAll()
		assert.Equal(t, tok.Fingerprint(), savedToken().Fingerprint(), "an older token never replaces a newer one")
	}
	resp, err := tr.RoundTrip(newRequest(t, "GET", s.URL+"/employer/company", tok.AccessToken, nil))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
}
