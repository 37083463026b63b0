package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultyStore fails one of its calls (Get, Put or Lookup) as told.
type faultyStore struct {
	finchreauth.Store
	mu   sync.Mutex
	op   string       // the call that fails
	fail func() error // nil: pass through; may panic or sleep
	busy sync.WaitGroup
}

func (s *faultyStore) hit(op string) error {
	s.mu.Lock()
	fail := s.fail
	match := s.op == op && fail != nil
	if match {
		s.busy.Add(1)
	}
	s.mu.Unlock()
	if !match {
		return nil
	}
	defer s.busy.Done()
	return fail()
}

func (s *faultyStore) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	if err := s.hit("Get"); err != nil {
		return finchreauth.Record{}, err
	}
	return s.Store.Get(ctx, id)
}

func (s *faultyStore) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	if err := s.hit("Put"); err != nil {
		return 0, err
	}
	return s.Store.Put(ctx, r)
}

func (s *faultyStore) Lookup(ctx context.Context, fp string) (string, error) {
	if err := s.hit("Lookup"); err != nil {
		return "", err
	}
	return s.Store.Lookup(ctx, fp)
}

func (s *faultyStore) set(op string, fail func() error) {
	s.mu.Lock()
	s.op, s.fail = op, fail
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
		store: &faultyStore{Store: new(finchreauth.MemoryStore)}}
	r.ff.add("tok", "conn_1")
	r.ff.setBroken("tok", true)
	r.tr = &finchreauth.Transport{
		Base: r.ff, Store: r.store, Notifier: r.notes, ErrorHandler: r.errs.handle,
		Now: r.clk.Now, Timeout: 50 * time.Millisecond, RetryInterval: 30 * time.Second,
	}
	t.Cleanup(func() { r.tr.Close() })
	return r
}

// call sends one request with the broken token, checks the caller got
// Finch's 401 whatever the hooks did, and waits for the handling it
// started (the caller itself waits at most Timeout for it).
func (r *hookRig) call(t *testing.T) {
	t.Helper()
	resp, err := r.tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", "tok", nil))
	require.NoError(t, err)
	assert.Equal(t, 401, resp.StatusCode)
	assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
	readAll(t, resp)
	waitIdle(t, r.tr)
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
			var failing atomic.Bool
			failing.Store(true)
			r.notes.fn = func(ctx context.Context, e finchreauth.Event) error {
				if failing.Load() {
					return tc.fail(ctx)
				}
				return nil
			}
			r.call(t) // returns: a failing hook blocks nobody past the Timeout
			hes := r.hookErrors(t, "notify")
			require.Len(t, hes, 1)
			assert.Equal(t, "conn_1", hes[0].ConnectionID)
			assert.Equal(t, finchreauth.Token("tok").Fingerprint(), hes[0].TokenFingerprint)
			tc.check(t, hes[0])
			assert.Empty(t, r.notes.delivered())

			// Within RetryInterval the token stays latched: nothing new.
			r.clk.advance(29 * time.Second)
			r.call(t)
			assert.EqualValues(t, 1, r.notes.n.Load())
			assert.EqualValues(t, 1, r.ff.count("/employer/directory"), "latched: Finch was not called")

			// After it, the next detection retries the notification.
			failing.Store(false)
			r.clk.advance(time.Second)
			r.call(t)
			assert.EqualValues(t, 2, r.notes.n.Load())
			require.Len(t, r.notes.delivered(), 1)

			// Delivered: never again for this episode.
			r.clk.advance(time.Hour)
			r.call(t)
			assert.EqualValues(t, 2, r.notes.n.Load())
			assert.Len(t, r.hookErrors(t, "notify"), 1)
			// The first detection asks who the token is; the second, which
			// notifies, asks Finch for the connection's details; the third
			// has nothing to send and needs no /introspect: the Store knows
			// the token.
			assert.EqualValues(t, 2, r.ff.count("/introspect"))
			assert.EqualValues(t, 3, r.ff.count("/employer/directory"), "one per detection that reached Finch")
		})
	}
}

func TestStoreFailures(t *testing.T) {
	kinds := []struct {
		name string
		fail func() error
	}{
		{"error", func() error { return errors.New("pq: connection refused") }},
		{"panic", func() error { panic(fmt.Sprintf("store bug %d", 7)) }},
		{"hang", func() error { time.Sleep(200 * time.Millisecond); return nil }},
	}
	for _, op := range []string{"Lookup", "Get", "Put"} {
		for _, kind := range kinds {
			t.Run(op+"/"+kind.name, func(t *testing.T) {
				r := newHookRig(t)
				t.Cleanup(r.store.busy.Wait) // the hang's abandoned call finishes before goleak looks
				r.store.set(op, kind.fail)
				r.call(t)
				hes := r.hookErrors(t, "store")
				require.Len(t, hes, 1, "errors: %v", r.errs.all())
				switch kind.name {
				case "panic":
					assert.Equal(t, "store bug 7", hes[0].Panic)
				case "hang":
					assert.ErrorIs(t, hes[0], context.DeadlineExceeded)
				default:
					assert.ErrorContains(t, hes[0], "pq: connection refused")
				}
				assert.EqualValues(t, 0, r.notes.n.Load(), "no notification without the store's say-so")

				r.store.set("", nil)
				r.clk.advance(30 * time.Second)
				r.call(t)
				assert.EqualValues(t, 1, r.notes.n.Load(), "the detection was not lost")
				st, err := r.tr.Status(context.Background(), "conn_1")
				require.NoError(t, err)
				assert.True(t, st.NeedsReauth)
				assert.Equal(t, 1, st.Notifications)
				assert.Len(t, r.hookErrors(t, "store"), 1)
			})
		}
	}
}

// TestLinkBuilderFailureHoldsTheNotification: a notification without its
// link is no use to the customer. It waits, the failure is reported, and it
// goes out with its link after RetryInterval.
func TestLinkBuilderFailureHoldsTheNotification(t *testing.T) {
	r := newHookRig(t)
	var failing atomic.Bool
	failing.Store(true)
	r.tr.Links = finchreauth.LinkBuilderFunc(func(_ context.Context, e finchreauth.Event) (string, error) {
		if failing.Load() {
			return "", errors.New("finch: 503")
		}
		return "https://connect.example/reconnect?connection_id=" + e.Connection.ConnectionID, nil
	})
	r.call(t)
	hes := r.hookErrors(t, "link")
	require.Len(t, hes, 1)
	assert.Equal(t, "conn_1", hes[0].ConnectionID)
	assert.ErrorContains(t, hes[0], "finch: 503")
	assert.Zero(t, r.notes.n.Load(), "not sent without its link")
	st, err := r.tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Zero(t, st.Notifications)

	failing.Store(false)
	r.clk.advance(29 * time.Second)
	r.call(t) // latched
	assert.Zero(t, r.notes.n.Load())
	r.clk.advance(time.Second)
	r.call(t)
	events := r.notes.delivered()
	require.Len(t, events, 1)
	assert.Equal(t, "https://connect.example/reconnect?connection_id=conn_1", events[0].ReconnectURL)
	assert.Len(t, r.hookErrors(t, "link"), 1)
}

// TestIntrospectFailure: a token the Store does not know can be named only
// by /introspect; without an answer nothing is recorded and nobody is told,
// and the next detection asks again. A token the Store knows needs no
// /introspect to be notified.
func TestIntrospectFailure(t *testing.T) {
	t.Run("unknown token", func(t *testing.T) {
		r := newHookRig(t)
		r.ff.introspectStatus = 400 // not retried
		r.call(t)
		assert.Zero(t, r.notes.n.Load(), "nobody is told of a token nobody can name")
		hes := r.hookErrors(t, "introspect")
		require.Len(t, hes, 1)
		assert.Equal(t, finchreauth.Token("tok").Fingerprint(), hes[0].TokenFingerprint)
		assert.Empty(t, hes[0].ConnectionID)
		var apiErr *finchreauth.APIError
		require.ErrorAs(t, hes[0], &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		_, err := r.store.Lookup(context.Background(), finchreauth.Token("tok").Fingerprint())
		assert.ErrorIs(t, err, finchreauth.ErrNotFound, "nothing recorded")
		_, err = r.store.Get(context.Background(), "conn_1")
		assert.ErrorIs(t, err, finchreauth.ErrNotFound, "nothing recorded")

		r.ff.mu.Lock()
		r.ff.introspectStatus = 0
		r.ff.mu.Unlock()
		r.clk.advance(29 * time.Second)
		r.call(t) // latched: not asked again yet
		assert.EqualValues(t, 1, r.ff.count("/introspect"))
		r.clk.advance(time.Second)
		r.call(t)
		assert.EqualValues(t, 2, r.ff.count("/introspect"), "asked again after RetryInterval")
		events := r.notes.delivered()
		require.Len(t, events, 1)
		assert.Equal(t, "conn_1", events[0].Connection.ConnectionID)
		assert.Equal(t, "Acme conn_1", events[0].Connection.CustomerName)
	})
	t.Run("token the Store knows", func(t *testing.T) {
		r := newHookRig(t)
		require.NoError(t, r.tr.SaveToken(context.Background(), "conn_1", "tok"))
		r.ff.introspectStatus = 400
		r.call(t)
		events := r.notes.delivered()
		require.Len(t, events, 1, "errors: %v", r.errs.all())
		assert.Equal(t, "conn_1", events[0].Connection.ConnectionID)
		assert.Empty(t, events[0].Connection.CustomerName, "Finch could not say more")
		require.Len(t, r.hookErrors(t, "introspect"), 1, "the failure is reported")
	})
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
	waitIdle(t, tr)
	require.Len(t, notes.delivered(), 1)
	assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID, "identity recovered after the 503s")
	assert.GreaterOrEqual(t, ff.count("/introspect"), int64(2))
}

func TestErrorHandlerPanicIsContained(t *testing.T) {
	r := newHookRig(t)
	var handled atomic.Int64
	r.tr.ErrorHandler = func(context.Context, error) { handled.Add(1); panic("handler bug") }
	r.notes.fn = func(context.Context, finchreauth.Event) error { return errors.New("no") }
	r.call(t)
	assert.EqualValues(t, 1, r.notes.n.Load())
	assert.EqualValues(t, 1, handled.Load(), "the ErrorHandler ran, and its panic went no further")
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
	waitIdle(t, r.tr)
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

// TestNoSecretsAnywhere runs a detection through failures with loggers that
// record everything, and looks for the token in all the library said.
func TestNoSecretsAnywhere(t *testing.T) {
	const token = "tok-SECRET-6f1c0de2b8a94e7d"
	var logs bytes.Buffer
	logw := lockedWriter{b: &logs, mu: new(sync.Mutex)}
	ff := newFakeFinch()
	ff.add(token, "conn_1")
	ff.setBroken(token, true)
	errs := &errorLog{}
	notes := &recorder{fn: func(context.Context, finchreauth.Event) error { return errors.New("notifier down") }}
	var mu sync.Mutex
	var dumps []string
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	tr := &finchreauth.Transport{
		Base: ff, Notifier: notes, ErrorHandler: errs.handle, Timeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewMultiHandler(slog.NewJSONHandler(logw, opts), slog.NewTextHandler(logw, opts))),
		Links: finchreauth.LinkBuilderFunc(func(_ context.Context, e finchreauth.Event) (string, error) {
			b, err := json.Marshal(e)
			mu.Lock()
			dumps = append(dumps, fmt.Sprintf("%v|%+v|%#v|%s|%v", e, e, e, b, err))
			mu.Unlock()
			return "", errors.New("no link")
		}),
	}
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", token, nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	tr.Close()
	tok := finchreauth.Token(token)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		dumps = append(dumps, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, []finchreauth.Token{tok}))
	}
	for _, err := range errs.all() {
		dumps = append(dumps, err.Error(), fmt.Sprintf("%+v", err))
	}
	dumps = append(dumps, logs.String())
	require.NotEmpty(t, errs.all())
	require.Len(t, dumps, 1+24+2*len(errs.all())+1, "the LinkBuilder saw the event")
	require.Contains(t, logs.String(), finchreauth.Token(token).Fingerprint(), "logs name the token by fingerprint")
	for i, d := range dumps {
		if strings.Contains(d, "SECRET") {
			t.Errorf("dump %d contains the access token (fingerprint %s)", i, finchreauth.Token(token).Fingerprint())
		}
	}
}

// lockedWriter serialises writes to a buffer shared by log handlers.
type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// countingMetrics records what a Transport counts.
type countingMetrics struct {
	mu       sync.Mutex
	counts   map[string]int64
	observed []float64
}

func (m *countingMetrics) Count(_ context.Context, name, outcome string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int64{}
	}
	if outcome != "" {
		name += "{" + outcome + "}"
	}
	m.counts[name] += n
}

func (m *countingMetrics) Observe(_ context.Context, name string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observed = append(m.observed, v)
}

// TestMetrics: the counts a Transport reports through its Metrics hook, for
// one episode from detection to reconnect.
func TestMetrics(t *testing.T) {
	m := &countingMetrics{}
	r := newReconnectRig(t, func(r *reconnectRig) { r.tr.Metrics = m; r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	r.call(t, r.token) // latched
	r.call(t, r.token) // latched
	r.clk.advance(time.Hour)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	r.hooks()
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Equal(t, map[string]int64{
		"finchreauth.detections":           1,
		"finchreauth.latched":              2,
		"finchreauth.notifications{sent}":  1,
		"finchreauth.reconnects{callback}": 1,
		"finchreauth.finch_calls{ok}":      4, // /introspect, /auth/token, /introspect of the new token, the data_sync_all job
	}, m.counts)
	assert.Equal(t, []float64{3600}, m.observed, "time to reconnect, in seconds")
}

// TestLoggerKeepsTheCause (issue 18 #6): a failure's log line carries the
// whole error, cause included, made safe for a terminal; it was cut to 64
// characters, which lost the cause behind the library's own words.
func TestLoggerKeepsTheCause(t *testing.T) {
	var logs bytes.Buffer
	logw := lockedWriter{b: &logs, mu: new(sync.Mutex)}
	cause := "pq: could not serialize access due to read/write dependencies among transactions\x1b[31m"
	ff := newFakeFinch()
	ff.add("tok-1", "conn_1")
	ff.setBroken("tok-1", true)
	store := lookupFails{Store: new(finchreauth.MemoryStore), err: errors.New(cause)}
	tr := &finchreauth.Transport{Store: store, Base: ff, Logger: slog.New(slog.NewTextHandler(logw, nil))}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", "tok-1", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	out := logs.String()
	assert.Contains(t, out, "pq: could not serialize access due to read/write dependencies among transactions", "the cause, whole")
	assert.NotContains(t, out, "\x1b", "nothing a terminal would interpret")
}

// lookupFails is a Store whose Lookup fails with err.
type lookupFails struct {
	finchreauth.Store
	err error
}

func (s lookupFails) Lookup(context.Context, string) (string, error) { return "", s.err }
