package finchreauth_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaseCoversTheHolder: the notification lease covers the holder's
// whole path. Replica A holds it and is slow (its link and its Notifier each
// take most of a Timeout, its /introspect too); replica B sees the same
// breakage long after A took the lease, while A still notifies: B must not
// notify too. (A lease of "detection time + 3×Timeout" let B in.)
func TestLeaseCoversTheHolder(t *testing.T) {
	const timeout = 10 * time.Second
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	store := new(finchreauth.MemoryStore)
	clk := newClock()
	notifying := make(chan struct{})
	release := make(chan struct{})
	var sent atomic.Int64
	notifier := finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
		sent.Add(1)
		if sent.Load() == 1 {
			close(notifying)
			<-release
		}
		return nil
	})
	links := finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) {
		clk.advance(timeout - time.Second) // a slow link, by the clock the lease reads
		return "https://connect.example/x", nil
	})
	replica := func() *finchreauth.Transport {
		tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notifier, Links: links, Timeout: timeout, Now: clk.Now}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a, b := replica(), replica()
	get := func(tr *finchreauth.Transport) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
		require.NoError(t, err)
		readAll(t, resp)
	}
	aDone := make(chan struct{})
	go func() { get(a); close(aDone) }()
	<-notifying
	clk.advance(3*timeout + time.Second) // A's Notifier takes its time
	get(b)
	close(release)
	<-aDone
	waitIdle(t, a) // A's caller did not wait for A's handling; the test does
	a.Close()
	b.Close()
	assert.EqualValues(t, 1, sent.Load(), "one notification across both replicas")
	st, err := a.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Notifications)
}

// TestFinchCallsBounded: a storm of broken tokens never puts more than
// MaxFinchCalls of the library's own calls to Finch in flight.
func TestFinchCallsBounded(t *testing.T) {
	const tokens, limit = 200, 4
	ff := newFakeFinch()
	for i := range tokens {
		tok := "tok_" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ff.add(tok, "conn_"+tok)
		ff.setBroken(tok, true)
	}
	gauge := &inFlight{base: ff}
	tr := &finchreauth.Transport{Base: gauge, MaxFinchCalls: limit, Notifier: &recorder{}}
	defer tr.Close()
	var wg sync.WaitGroup
	ff.mu.Lock()
	toks := make([]string, 0, tokens)
	for tok := range ff.conns {
		toks = append(toks, tok)
	}
	ff.mu.Unlock()
	for _, tok := range toks {
		wg.Go(func() {
			resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", tok, nil))
			if err == nil {
				readAll(t, resp)
			}
		})
	}
	wg.Wait()
	waitIdle(t, tr) // callers of queued handlings do not wait for them
	assert.EqualValues(t, tokens, ff.count("/introspect"), "every token identified")
	assert.LessOrEqual(t, gauge.peak.Load(), int64(limit), "never more than MaxFinchCalls at once")
	assert.Greater(t, gauge.peak.Load(), int64(1), "and they do run concurrently")
}

// inFlight measures the peak of concurrent /introspect calls.
type inFlight struct {
	base      http.RoundTripper
	now, peak atomic.Int64
}

func (g *inFlight) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/introspect" {
		return g.base.RoundTrip(req)
	}
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	time.Sleep(time.Millisecond)
	return g.base.RoundTrip(req)
}
