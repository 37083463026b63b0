package finchreauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultyStore fails MarkReauth as told.
type faultyStore struct {
	finchreauth.Store
	mu   sync.Mutex
	fail func() error // nil: pass through; may panic
}

func (s *faultyStore) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(); err != nil {
			return finchreauth.MarkResult{}, err
		}
	}
	return s.Store.MarkReauth(ctx, m)
}

func (s *faultyStore) set(fail func() error) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// hookRig is a broken token behind a Transport with a settable clock.
type hookRig struct {
	ff    *fakeFinch
	clk   *clock
	notes *recorder
	store *faultyStore
	errs  *errorLog
	tr    *finchreauth.Transport
}

func newHookRig(t *testing.T) *hookRig {
	r := &hookRig{ff: newFakeFinch(), clk: newClock(), notes: &recorder{}, errs: &errorLog{},
		store: &faultyStore{Store: finchreauth.NewMemoryStore()}}
	r.ff.add("tok", "conn_1")
	r.ff.setBroken("tok", true)
	r.tr = &finchreauth.Transport{
		Base: r.ff, Store: r.store, Notifier: r.notes, ErrorHandler: r.errs.handle,
		Now: r.clk.Now, Timeout: 50 * time.Millisecond, RetryInterval: 30 * time.Second,
	}
	t.Cleanup(func() { r.tr.Close() })
	return r
}

// call sends one request with the broken token and checks the caller got
// Finch's 401 whatever the hooks did.
func (r *hookRig) call(t *testing.T) {
	t.Helper()
	resp, err := r.tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", "tok", nil))
	require.NoError(t, err)
	assert.Equal(t, 401, resp.StatusCode)
	assert.True(t, finchreauth.IsReauthResponse(resp))
	readAll(t, resp)
}

func (r *hookRig) hookErrors(t *testing.T, hook string) []*finchreauth.HookError {
	var out []*finchreauth.HookError
	for _, err := range r.errs.all() {
		var he *finchreauth.HookError
		require.ErrorAs(t, err, &he)
		if he.Hook == hook {
			out = append(out, he)
		}
	}
	return out
}

func TestNotifierFailures(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	cases := []struct {
		name  string
		fail  func(ctx context.Context) error
		check func(t *testing.T, he *finchreauth.HookError)
	}{
		{"error", func(context.Context) error { return errors.New("smtp: 451 try later") },
			func(t *testing.T, he *finchreauth.HookError) { assert.ErrorContains(t, he, "smtp: 451") }},
		{"panic", func(context.Context) error { panic("nil map") },
			func(t *testing.T, he *finchreauth.HookError) {
				assert.Equal(t, "nil map", he.Panic)
				assert.ErrorContains(t, he, "panicked")
			}},
		{"hangs, honouring its context", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			func(t *testing.T, he *finchreauth.HookError) { assert.ErrorIs(t, he, context.DeadlineExceeded) }},
		{"hangs, ignoring its context", func(context.Context) error { <-release; return nil },
			func(t *testing.T, he *finchreauth.HookError) { assert.ErrorIs(t, he, context.DeadlineExceeded) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHookRig(t)
			var failing = true
			var mu sync.Mutex
			r.notes.fn = func(ctx context.Context, e finchreauth.Event) error {
				mu.Lock()
				f := failing
				mu.Unlock()
				if f {
					return tc.fail(ctx)
				}
				return nil
			}
			r.call(t) // returns: a failing hook blocks nobody past the Timeout
			hes := r.hookErrors(t, "notify")
			require.Len(t, hes, 1)
			assert.Equal(t, "conn_1", hes[0].ConnectionID)
			assert.Equal(t, finchreauth.Fingerprint("tok"), hes[0].TokenFingerprint)
			tc.check(t, hes[0])
			assert.Empty(t, r.notes.delivered())

			// Within RetryInterval the token stays latched: nothing new.
			r.clk.advance(29 * time.Second)
			r.call(t)
			assert.EqualValues(t, 1, r.notes.n.Load())

			// After it, the next detection retries the notification.
			mu.Lock()
			failing = false
			mu.Unlock()
			r.clk.advance(time.Second)
			r.call(t)
			assert.EqualValues(t, 2, r.notes.n.Load())
			require.Len(t, r.notes.delivered(), 1)

			// Delivered: never again for this episode.
			r.clk.advance(time.Hour)
			r.call(t)
			assert.EqualValues(t, 2, r.notes.n.Load())
			assert.EqualValues(t, 3, r.ff.count("/introspect"), "one per detection that reached Finch")
		})
	}
}

func TestStoreFailures(t *testing.T) {
	cases := []struct {
		name string
		fail func() error
	}{
		{"error", func() error { return errors.New("pq: connection refused") }},
		{"panic", func() error { panic(fmt.Sprintf("store bug %d", 7)) }},
		{"hang", func() error { time.Sleep(200 * time.Millisecond); return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHookRig(t)
			r.store.set(tc.fail)
			r.call(t)
			require.Len(t, r.hookErrors(t, "store"), 1)
			assert.EqualValues(t, 0, r.notes.n.Load(), "no notification without the store's say-so")

			r.store.set(nil)
			r.clk.advance(30 * time.Second)
			r.call(t)
			assert.EqualValues(t, 1, r.notes.n.Load(), "the detection was not lost")
			st, err := r.store.State(context.Background(), "conn_1")
			require.NoError(t, err)
			assert.True(t, st.Notified)
		})
	}
	// Let the "hang" hook's abandoned goroutine finish before goleak looks.
	time.Sleep(250 * time.Millisecond)
}

func TestLinkBuilderFailureStillNotifies(t *testing.T) {
	r := newHookRig(t)
	r.tr.Links = finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) {
		return "", errors.New("finch: 503")
	})
	r.call(t)
	require.Len(t, r.hookErrors(t, "link"), 1)
	events := r.notes.delivered()
	require.Len(t, events, 1)
	assert.Empty(t, events[0].ReconnectURL)
}

func TestIntrospectFailureFallsBackToFingerprint(t *testing.T) {
	r := newHookRig(t)
	r.ff.introspectStatus = 400 // not retried
	r.call(t)
	events := r.notes.delivered()
	require.Len(t, events, 1)
	assert.Empty(t, events[0].Connection.ConnectionID)
	assert.Equal(t, "fp:"+finchreauth.Fingerprint("tok"), events[0].Key)
	hes := r.hookErrors(t, "introspect")
	require.Len(t, hes, 1)
	var apiErr *finchreauth.APIError
	require.ErrorAs(t, hes[0], &apiErr)
	assert.Equal(t, 400, apiErr.StatusCode)
}

func TestIntrospectRetries5xx(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	ff.introspectStatus = 503
	notes := &recorder{}
	tr := &finchreauth.Transport{Base: ff, Notifier: notes, Timeout: 2 * time.Second}
	defer tr.Close()
	go func() {
		for ff.count("/introspect") < 2 {
			time.Sleep(time.Millisecond)
		}
		ff.mu.Lock()
		ff.introspectStatus = 0
		ff.mu.Unlock()
	}()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	require.Len(t, notes.delivered(), 1)
	assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID, "identity recovered after the 503s")
	assert.GreaterOrEqual(t, ff.count("/introspect"), int64(2))
}

func TestErrorHandlerPanicIsContained(t *testing.T) {
	r := newHookRig(t)
	r.tr.ErrorHandler = func(context.Context, error) { panic("handler bug") }
	r.notes.fn = func(context.Context, finchreauth.Event) error { return errors.New("no") }
	r.call(t)
	assert.EqualValues(t, 1, r.notes.n.Load())
}

func TestCallerCancellationFailsNobodyElse(t *testing.T) {
	r := newHookRig(t)
	r.tr.Timeout = 5 * time.Second
	entered := make(chan struct{})
	release := make(chan struct{})
	r.notes.fn = func(ctx context.Context, e finchreauth.Event) error {
		close(entered)
		<-release
		return ctx.Err() // nil unless the Transport cancelled it
	}
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan *http.Response)
	go func() {
		req := newRequest(t, "GET", api+"/employer/directory", "tok", nil).WithContext(ctx)
		resp, err := r.tr.RoundTrip(req)
		assert.NoError(t, err)
		leader <- resp
	}()
	<-entered
	cancel()
	resp := <-leader // the leader's caller is released by its own cancellation...
	assert.Equal(t, 401, resp.StatusCode)
	readAll(t, resp)
	close(release)
	// ...while the handling it started goes on, undisturbed, to the end.
	require.Eventually(t, func() bool { return len(r.notes.delivered()) == 1 }, 5*time.Second, time.Millisecond)
	assert.Empty(t, r.errs.all())
}

func TestCloseCancelsHandlings(t *testing.T) {
	r := newHookRig(t)
	r.tr.Timeout = time.Minute
	entered := make(chan struct{})
	r.notes.fn = func(ctx context.Context, e finchreauth.Event) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.call(t)
	}()
	<-entered
	require.NoError(t, r.tr.Close())
	<-done
	hes := r.hookErrors(t, "notify")
	require.Len(t, hes, 1)
	assert.ErrorIs(t, hes[0], context.Canceled)
}

// TestNoSecretsAnywhere runs detections through every failure with a logger
// that records everything, and looks for the token in all the library said.
func TestNoSecretsAnywhere(t *testing.T) {
	const token = "tok-SECRET-6f1c0de2b8a94e7d"
	var logs bytes.Buffer
	ff := newFakeFinch()
	ff.add(token, "conn_1")
	ff.setBroken(token, true)
	errs := &errorLog{}
	notes := &recorder{fn: func(context.Context, finchreauth.Event) error { return errors.New("notifier down") }}
	var dumps []string
	tr := &finchreauth.Transport{
		Base: ff, Notifier: notes, ErrorHandler: errs.handle, Timeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Links: finchreauth.LinkBuilderFunc(func(_ context.Context, e finchreauth.Event) (string, error) {
			dumps = append(dumps, fmt.Sprintf("%v|%+v|%#v", e, e, e))
			return "", errors.New("no link")
		}),
	}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", token, nil))
	require.NoError(t, err)
	readAll(t, resp)
	tok := finchreauth.Token{ConnectionID: "conn_1", AccessToken: token}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		dumps = append(dumps, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, []finchreauth.Token{tok}))
	}
	for _, err := range errs.all() {
		dumps = append(dumps, err.Error(), fmt.Sprintf("%+v", err))
	}
	dumps = append(dumps, logs.String())
	require.NotEmpty(t, errs.all())
	require.Contains(t, logs.String(), finchreauth.Fingerprint(token), "logs name the token by fingerprint")
	for i, d := range dumps {
		if strings.Contains(d, "SECRET") {
			t.Errorf("dump %d contains the access token (fingerprint %s)", i, finchreauth.Fingerprint(token))
		}
	}
}
