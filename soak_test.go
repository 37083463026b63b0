package finchreauth_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoak is a bounded soak on loopback: thousands of goroutines call Finch
// across a hundred connections while others break connections and reconnect
// them through Connect. At the end: exactly one notification per broken
// episode, no unexpected answer, and goroutines and memory back where they
// were. It runs for FINCHREAUTH_SOAK (a duration; CI uses the short
// default of 3s, or 1s with -short).
func TestSoak(t *testing.T) {
	duration := 3 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	if v := os.Getenv("FINCHREAUTH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "FINCHREAUTH_SOAK")
		duration = d
	}
	const (
		connections = 100
		workers     = 2000
		chaos       = 4 // goroutines breaking and reconnecting
	)

	s := finchtest.NewServer()
	defer s.Close()
	store := new(finchreauth.MemoryStore)
	ctx := context.Background()
	var (
		mu       sync.Mutex
		notified = map[string]int{}                 // connection -> notifications
		lastLink = map[string]string{}              // connection -> the link of its last notification
		arrived  = map[string]chan struct{}{}       // connection -> closed on its next notification
		episodes = map[string]map[string]struct{}{} // connection -> episodes notified
	)
	tr := &finchreauth.Transport{
		Base: s.Client().Transport, Store: store, APIBaseURL: s.URL,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			mu.Lock()
			defer mu.Unlock()
			id := e.Connection.ConnectionID
			notified[id]++
			lastLink[id] = e.ReconnectURL
			if episodes[id] == nil {
				episodes[id] = map[string]struct{}{}
			}
			episodes[id][e.Episode] = struct{}{}
			if ch := arrived[id]; ch != nil {
				close(ch)
				delete(arrived, id)
			}
			return nil
		}),
	}
	tr.Connect = &finchreauth.Connect{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret, StateKeys: [][]byte{stateKey},
		RedirectURI: "https://app.example/cb", SuccessURL: "https://app.example/ok",
		ConnectBaseURL: s.URL, AuthorizeURLs: true,
	}
	ids := make([]string, connections)
	for i := range ids {
		tok := s.AddConnection(finchtest.Connection{})
		conn, _ := s.ConnectionForToken(tok)
		ids[i] = conn.ID
		require.NoError(t, tr.SaveToken(ctx, conn.ID, finchreauth.Token(tok)))
	}
	call := func(id string) (int, error) {
		tok, err := tr.Token(ctx, id)
		if err != nil {
			return 0, err
		}
		resp, err := tr.RoundTrip(newRequest(t, "GET", s.URL+"/employer/company", string(tok), nil))
		if err != nil {
			return 0, err
		}
		readAll(t, resp)
		if resp.StatusCode == 401 && !finchreauth.ParseAPIError(resp).IsReauth() {
			return resp.StatusCode, fmt.Errorf("a 401 that is not a re-authentication")
		}
		return resp.StatusCode, nil
	}
	for _, id := range ids { // warm up: connections, the latch's shards
		_, err := call(id)
		require.NoError(t, err)
	}
	goroutinesBefore := runtime.NumGoroutine()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	deadline := time.Now().Add(duration)
	var calls, ok200, got401, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				status, err := call(ids[rand.IntN(connections)])
				calls.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				case status == 200:
					ok200.Add(1)
				case status == 401:
					got401.Add(1)
				}
			}
		})
	}

	// Each chaos goroutine owns a quarter of the connections: it breaks
	// one, waits for its notification, reconnects it through Connect.
	var breaks [chaos]int
	var chaosErr [chaos]error
	var heapMid uint64
	handler := tr.CallbackHandler()
	for g := range chaos {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				id := ids[g+chaos*rand.IntN(connections/chaos)]
				ch := make(chan struct{})
				mu.Lock()
				arrived[id] = ch
				mu.Unlock()
				s.Break(id)
				breaks[g]++
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					chaosErr[g] = fmt.Errorf("no notification for %s 10s after it broke", id)
					return
				}
				mu.Lock()
				link := lastLink[id]
				mu.Unlock()
				cb, err := s.Approve(link)
				if err != nil {
					chaosErr[g] = err
					return
				}
				u, _ := url.Parse(cb)
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+u.RawQuery, nil))
				if loc := rec.Header().Get("Location"); loc != "https://app.example/ok?connection_id="+url.QueryEscape(id) {
					chaosErr[g] = fmt.Errorf("reconnect of %s ended at %s", id, loc)
					return
				}
			}
		})
	}
	time.AfterFunc(duration/2, func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		atomic.StoreUint64(&heapMid, m.HeapAlloc)
	})
	wg.Wait()
	for g := range chaos {
		require.NoError(t, chaosErr[g])
	}

	total := 0
	for _, b := range breaks {
		total += b
	}
	mu.Lock()
	sum := 0
	for id, n := range notified {
		sum += n
		assert.Equal(t, n, len(episodes[id]), "one notification per episode of %s", id)
	}
	mu.Unlock()
	assert.Equal(t, total, sum, "exactly one notification per broken episode")
	assert.Zero(t, failures.Load(), "unexpected answers; first: %v", firstFailure.Load())
	assert.Positive(t, got401.Load())
	// Every episode was reconnected, and the old tokens still in flight
	// after it (stale) opened none.
	open, err := tr.NeedsReauth(ctx, finchreauth.Status{}, connections)
	require.NoError(t, err)
	assert.Empty(t, open, "connections still broken at the end")

	require.NoError(t, tr.Close())
	s.Client().CloseIdleConnections()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+5 }, 10*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", goroutinesBefore, runtime.NumGoroutine())
	runtime.GC()
	runtime.GC() // a second cycle empties the sync.Pools' victim caches
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("soak %s: %d calls (%d × 200, %d × 401), %d episodes, %d notifications; goroutines %d → %d; heap before %.1f MiB, mid-run %.1f MiB, after %.1f MiB",
		duration, calls.Load(), ok200.Load(), got401.Load(), total, sum, goroutinesBefore, runtime.NumGoroutine(),
		float64(m0.HeapAlloc)/(1<<20), float64(atomic.LoadUint64(&heapMid))/(1<<20), float64(m.HeapAlloc)/(1<<20))
	// What legitimately stays: a few hundred bytes per episode (the latch's
	// voided entries until they expire, the fake Finch's dead tokens).
	assert.Less(t, m.HeapAlloc, m0.HeapAlloc+uint64(total)*4096+4<<20, "heap after the soak, against before it")
}
