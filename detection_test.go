package finchreauth_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoreKnowsEveryToken: the Store maps every token it saved or was told
// about to its connection. A known token needs no /introspect; after a
// reconnect, old copies of the connection's tokens are stale, whether Finch
// still answers /introspect for them or not.
func TestStoreKnowsEveryToken(t *testing.T) {
	ctx := context.Background()
	newRig := func() (*fakeFinch, *finchreauth.Transport, *recorder, *clock) {
		ff := newFakeFinch()
		for _, tok := range []string{"old-a", "old-b", "new"} {
			ff.add(tok, "conn_1")
		}
		ff.setBroken("old-a", true)
		ff.setBroken("old-b", true)
		notes := &recorder{}
		clk := newClock()
		tr := &finchreauth.Transport{Base: ff, Notifier: notes, Now: clk.Now}
		t.Cleanup(func() { tr.Close() })
		return ff, tr, notes, clk
	}
	get := func(tr *finchreauth.Transport, token string) {
		t.Helper()
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", token, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
	}

	t.Run("a saved token needs no /introspect to be identified", func(t *testing.T) {
		ff, tr, notes, _ := newRig()
		require.NoError(t, tr.SaveToken(ctx, "conn_1", "old-a"))
		ff.introspectStatus = 500 // Finch cannot say
		get(tr, "old-a")
		require.EqualValues(t, 1, notes.n.Load(), "identified from the Store, notified")
		assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID)
	})

	t.Run("a second old token after a reconnect is stale", func(t *testing.T) {
		ff, tr, notes, clk := newRig()
		get(tr, "old-a") // identified by /introspect, recorded
		require.EqualValues(t, 1, notes.n.Load())
		clk.advance(time.Minute)
		require.NoError(t, tr.SaveToken(ctx, "conn_1", "new"))
		n := ff.count("/introspect")

		get(tr, "old-b") // another worker's copy, never seen before
		st, err := tr.Status(ctx, "conn_1")
		require.NoError(t, err)
		assert.False(t, st.NeedsReauth, "no new episode right after the reconnect")
		assert.EqualValues(t, 1, notes.n.Load(), "nobody asked to reconnect again")
		assert.Equal(t, n+1, ff.count("/introspect"), "identified once")

		clk.advance(time.Hour) // the latch expired
		ff.introspectStatus = 500
		get(tr, "old-b")
		get(tr, "old-a")
		assert.EqualValues(t, 1, notes.n.Load(), "known tokens stay stale even when Finch refuses /introspect")
		assert.Equal(t, n+1, ff.count("/introspect"), "known tokens need no /introspect")
	})

	t.Run("a failed /introspect is retried on a later detection", func(t *testing.T) {
		ff, tr, notes, clk := newRig()
		ff.introspectStatus = 500
		get(tr, "old-a")
		assert.Zero(t, notes.n.Load(), "nobody notified by fingerprint alone")
		_, err := tr.Token(ctx, "conn_1")
		assert.ErrorIs(t, err, finchreauth.ErrNotFound)
		ff.introspectStatus = 0
		get(tr, "old-a")
		assert.Zero(t, notes.n.Load(), "still latched for RetryInterval")
		clk.advance(31 * time.Second)
		get(tr, "old-a")
		require.EqualValues(t, 1, notes.n.Load())
		assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID)
	})
}

// TestCallerWaitsAtMostTimeout: Timeout bounds each step of a handling, and
// the caller's whole wait: after Timeout the caller gets Finch's 401 while
// the handling goes on (here: a link that takes half the Timeout, then a
// Notifier that waits for the test) and notifies.
func TestCallerWaitsAtMostTimeout(t *testing.T) {
	const timeout = time.Second
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	release := make(chan struct{})
	notes := &recorder{fn: func(ctx context.Context, _ finchreauth.Event) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	tr := &finchreauth.Transport{Base: ff, Notifier: notes, Timeout: timeout,
		Links: finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) {
			time.Sleep(timeout / 2)
			return "https://connect.example/x", nil
		})}
	defer tr.Close()
	done := make(chan int)
	go func() {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
		if err != nil {
			t.Error(err)
		}
		readAll(t, resp)
		done <- resp.StatusCode
	}()
	select {
	case status := <-done:
		assert.Equal(t, 401, status)
		assert.Zero(t, len(notes.delivered()), "the caller returned before the notification went out")
	case <-time.After(30 * time.Second):
		t.Fatal("the caller waited for the Notifier")
	}
	close(release) // the Notifier started half a Timeout ago: it has as long again
	assert.Eventually(t, func() bool { return len(notes.delivered()) == 1 }, 10*time.Second, time.Millisecond,
		"the handling went on and the notification went out")
}

// manyTokensFinch refuses every token with reauthenticate_user and names a
// connection of its own for each at /introspect: a mass breakage of
// distinct connections, as cheap as a fake can be.
type manyTokensFinch struct{}

func (manyTokensFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if req.URL.Path == "/introspect" {
		return jsonResponse(req, 200, `{"connection_id":"conn-`+tok+`","connection_status":{"status":"reauth"}}`), nil
	}
	return jsonResponse(req, 401, reauthJSON), nil
}

// TestQueueIsBounded: detections that wait for a handling are data in a
// bounded queue, not goroutines. 2,000 distinct broken tokens behind a
// Notifier that hangs leave MaxHandlings workers and MaxQueued waiting
// detections; the others are dropped, counted, and their tokens stay
// latched (no second call reaches Finch). Each used to wait in a goroutine
// of its own: 20,000 tokens left about 20,000 goroutines.
func TestQueueIsBounded(t *testing.T) {
	const tokens, handlings, queued = 2000, 4, 100
	release := make(chan struct{})
	m := &countingMetrics{}
	tr := &finchreauth.Transport{Base: manyTokensFinch{}, MaxHandlings: handlings, MaxQueued: queued, Metrics: m,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, _ finchreauth.Event) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})}
	before := runtime.NumGoroutine()
	for i := range tokens {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", fmt.Sprintf("tok%05d", i), nil))
		require.NoError(t, err)
		readAll(t, resp)
	}
	require.Eventually(t, func() bool { return finchreauth.InFlight(tr) == handlings+queued }, 10*time.Second, time.Millisecond)
	// Each handling holds its worker and the Notifier's hook goroutine.
	assert.LessOrEqual(t, runtime.NumGoroutine()-before, 3*handlings+8, "goroutines for %d queued detections", queued)
	m.mu.Lock()
	dropped := m.counts["finchreauth.detections.dropped"]
	m.mu.Unlock()
	assert.EqualValues(t, tokens-handlings-queued, dropped)
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", fmt.Sprintf("tok%05d", tokens-1), nil))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, "latched", resp.Header.Get("Finchreauth"), "a dropped detection's token stays latched")
	close(release)
	tr.Close()
}
