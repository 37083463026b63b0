package storebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// ReconnectSize is how many callbacks BenchReconnect fires at once.
const ReconnectSize = 1_000

// Where the reconnect's Connect sends the employer.
const (
	callbackPath = "/finch/callback"
	successURL   = "https://app.example/reconnected"
)

// Reconnects is a store with broken connections whose employers have been
// through Finch Connect and are about to come back: each connection's token
// was saved (Transport.SaveToken), Finch broke it, a call through the
// Transport detected it (so its episode is open and its customer was sent a
// link), and the link was approved at the fake Finch Connect, which gave a
// callback URL with a code and the link's state. Fire sends all the
// callbacks at once.
//
// The links are the seed flow's authorize URLs (Connect.AuthorizeURLs):
// the Transport builds them itself, where a Connect session costs a call to
// Finch per connection (POST /connect/sessions/reauthenticate) while the
// episodes open. The callbacks are the same in either flow: verify the state,
// claim it in the Store, exchange the code at POST /auth/token, save the
// token.
type Reconnects struct {
	fake   *finchtest.Server
	tr     *finchreauth.Transport
	ids    []string
	old    []string // each connection's broken token
	query  []string // each callback's query: code and state
	failed atomic.Value

	mu          sync.Mutex
	reconnected map[string]finchreauth.Token // connection -> the token OnReconnected saw
	links       map[string]string            // connection -> the link of its notification
}

// PrepareReconnects sets up n broken connections on s, workers at a time.
func PrepareReconnects(ctx context.Context, s finchreauth.Store, n, workers int) (*Reconnects, error) {
	fake := finchtest.NewServer()
	r := &Reconnects{fake: fake, ids: make([]string, n), old: make([]string, n), query: make([]string, n),
		reconnected: map[string]finchreauth.Token{}, links: map[string]string{}}
	r.tr = &finchreauth.Transport{
		Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: s,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.links[e.Connection.ConnectionID] = e.ReconnectURL
			return nil
		}),
		Connect: &finchreauth.Connect{
			ClientID: fake.ClientID, ClientSecret: fake.ClientSecret,
			StateKeys:   [][]byte{[]byte("storebench-state-key-of-32-bytes")},
			RedirectURI: "https://app.example" + callbackPath, SuccessURL: successURL,
			AuthorizeURLs: true, ConnectBaseURL: fake.URL,
		},
		OnReconnected: func(_ context.Context, rc finchreauth.Reconnection) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if _, twice := r.reconnected[rc.ConnectionID]; twice {
				r.failed.CompareAndSwap(nil, fmt.Errorf("storebench: %s reconnected twice", rc.ConnectionID))
			}
			r.reconnected[rc.ConnectionID] = rc.Token
		},
		ErrorHandler: func(_ context.Context, err error) { r.failed.CompareAndSwap(nil, err) },
	}
	prefix := "rc_" + randHex(4) + "_"
	err := each(n, workers, func(i int) error {
		return r.prepare(ctx, i, fmt.Sprintf("%s%04d", prefix, i))
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := r.err(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// prepare breaks the i-th connection and takes its employer through Connect.
func (r *Reconnects) prepare(ctx context.Context, i int, id string) error {
	tok := r.fake.AddConnection(finchtest.Connection{ID: id, CustomerName: "Customer " + id, ProviderID: "gusto"})
	r.ids[i], r.old[i] = id, tok
	if err := r.tr.SaveToken(ctx, id, finchreauth.Token(tok)); err != nil {
		return err
	}
	r.fake.Break(id)
	// The caller has its 401 at once; once the handling is done, the
	// episode is open and the notification, with its link, went out.
	status, err := r.call(ctx, tok)
	if err != nil {
		return err
	}
	if err := r.tr.Flush(ctx); err != nil {
		return err
	}
	if status != http.StatusUnauthorized {
		return fmt.Errorf("storebench: a call on broken %s got %d", id, status)
	}
	r.mu.Lock()
	link := r.links[id]
	r.mu.Unlock()
	if link == "" {
		return fmt.Errorf("storebench: %s was not notified with a link", id)
	}
	if u, err := r.tr.ReconnectURL(ctx, id); err != nil || u != link {
		return fmt.Errorf("storebench: ReconnectURL of %s is not the link its customer was sent (%v)", id, err)
	}
	cb, err := r.fake.Approve(link)
	if err != nil {
		return err
	}
	u, err := url.Parse(cb)
	if err != nil {
		return err
	}
	r.query[i] = u.RawQuery
	return nil
}

// call makes a data call through the Transport with tok and returns the
// status; a 401 must be a re-authentication.
func (r *Reconnects) call(ctx context.Context, tok string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.fake.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := r.tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusUnauthorized && !finchreauth.ParseAPIError(resp).IsReauth() {
		return 0, errors.New("storebench: a 401 that is not a re-authentication")
	}
	return resp.StatusCode, nil
}

func (r *Reconnects) err() error {
	err, _ := r.failed.Load().(error)
	return err
}

// ReconnectResult is what Fire measured.
type ReconnectResult struct {
	Callbacks int
	Latency   Dist          // of each callback, from its start to its answer
	Wall      time.Duration // from the start until the last answer

	lat []time.Duration
}

func (r ReconnectResult) String() string {
	return fmt.Sprintf("%d callbacks at once: %s; all answered in %s", r.Callbacks, r.Latency, round(r.Wall))
}

// Fire sends every callback at once through the Transport's
// CallbackHandler (on a recorder: the handler's own time, without a
// browser's connection) and times each. Every callback must answer 303 to
// the success URL.
func (r *Reconnects) Fire() (ReconnectResult, error) {
	h := r.tr.CallbackHandler()
	n := len(r.ids)
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			req := httptest.NewRequest(http.MethodGet, callbackPath+"?"+r.query[i], nil)
			rec := httptest.NewRecorder()
			ready.Done()
			<-start
			t0 := time.Now()
			h.ServeHTTP(rec, req)
			lat[i] = time.Since(t0)
			want := successURL + "?connection_id=" + url.QueryEscape(r.ids[i])
			if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || loc != want {
				errs <- fmt.Errorf("storebench: the callback of %s answered %d to %q, want 303 to %q", r.ids[i], rec.Code, loc, want)
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	res := ReconnectResult{Callbacks: n, Wall: time.Since(t0), lat: lat}
	res.Latency = distOf(slices.Clone(lat))
	close(errs)
	if err := <-errs; err != nil {
		return res, fmt.Errorf("%w (and %d more)", err, len(errs))
	}
	return res, r.err()
}

// Check fails unless every connection reconnected: its episode ended
// (OnReconnected was called once, and Status says it is healthy and when it
// reconnected), the token Finch issued at the callback is the one saved,
// and a call with it succeeds.
func (r *Reconnects) Check(ctx context.Context) error {
	n := len(r.ids)
	// OnReconnected is called after the callback answered.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		got := len(r.reconnected)
		r.mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("storebench: OnReconnected was called for %d of %d connections", got, n)
		}
	}
	for i, id := range r.ids {
		st, err := r.tr.Status(ctx, id)
		if err != nil {
			return err
		}
		if st.NeedsReauth || st.LastReconnected.IsZero() {
			return fmt.Errorf("storebench: %s after its callback: needs reauth %v, last reconnected %v", id, st.NeedsReauth, st.LastReconnected)
		}
		tok, err := r.tr.Token(ctx, id)
		if err != nil {
			return err
		}
		r.mu.Lock()
		want := r.reconnected[id]
		r.mu.Unlock()
		if tok != want || string(tok) == r.old[i] {
			return fmt.Errorf("storebench: %s holds token %s, want %s, the one its callback brought", id, tok, want)
		}
		if c, ok := r.fake.ConnectionForToken(string(tok)); !ok || c.ID != id {
			return fmt.Errorf("storebench: the token saved for %s is not one Finch issued for it", id)
		}
		if status, err := r.call(ctx, string(tok)); err != nil || status != http.StatusOK {
			return fmt.Errorf("storebench: a call with %s's new token got %d (%v)", id, status, err)
		}
	}
	return r.err()
}

// Close stops the Transport and the fake Finch.
func (r *Reconnects) Close() {
	r.tr.Close()
	r.fake.Close()
}

// BenchReconnect prepares ReconnectSize broken connections on s (outside
// the timer), fires their callbacks at once and checks that every one
// reconnected, once per iteration. It reports the callbacks' latency over
// all iterations (p50-ms, p99-ms, max-ms), wall-ms (from the start until
// the last answer, averaged) and callbacks/s, and the Store's calls made
// while the callbacks ran: how many per callback, their p50 and p99, and
// how many were in flight at most.
func BenchReconnect(b *testing.B, s finchreauth.Store, workers int) {
	var lat []time.Duration
	var wall time.Duration
	var iters int
	m := NewMeter(s)
	var calls []time.Duration // the store's, during the callbacks
	var peak int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r, err := PrepareReconnects(b.Context(), m, ReconnectSize, workers)
		if err != nil {
			b.Fatal(err)
		}
		m.Reset()
		b.StartTimer()
		res, err := r.Fire()
		b.StopTimer()
		m.mu.Lock()
		calls = append(calls, m.lat...)
		m.mu.Unlock()
		peak = max(peak, m.peak.Load())
		b.Logf("%s", m)
		if err == nil {
			err = r.Check(b.Context())
		}
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s", res)
		lat = append(lat, res.lat...)
		wall += res.Wall
		iters++
		b.StartTimer()
	}
	distOf(lat).report(b, time.Millisecond, "ms")
	b.ReportMetric(float64(wall)/float64(iters)/1e6, "wall-ms")
	b.ReportMetric(float64(ReconnectSize*iters)/wall.Seconds(), "callbacks/s")
	sd := distOf(calls)
	b.ReportMetric(float64(sd.N)/float64(ReconnectSize*iters), "store-calls/callback")
	b.ReportMetric(float64(sd.P50)/1e6, "store-p50-ms")
	b.ReportMetric(float64(sd.P99)/1e6, "store-p99-ms")
	b.ReportMetric(float64(peak), "store-peak-calls")
}
