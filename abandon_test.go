package finchreauth_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// abandonRig is a reconnectRig that abandons connections broken 30 days,
// 7 days after their last notice, and records OnDisconnected.
func abandonRig(t *testing.T) (*reconnectRig, func() []finchreauth.Reconnection) {
	t.Helper()
	var mu sync.Mutex
	var gone []finchreauth.Reconnection
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.tr.AbandonAfter = 30 * day
		r.tr.AbandonNotice = 7 * day
		r.tr.OnDisconnected = func(_ context.Context, rec finchreauth.Reconnection) {
			mu.Lock()
			gone = append(gone, rec)
			mu.Unlock()
		}
	})
	return r, func() []finchreauth.Reconnection {
		waitIdle(t, r.tr)
		mu.Lock()
		defer mu.Unlock()
		return append([]finchreauth.Reconnection(nil), gone...)
	}
}

func lastNotices(r *reconnectRig) []finchreauth.Event {
	var out []finchreauth.Event
	for _, e := range r.notes.delivered() {
		if e.LastNotice {
			out = append(out, e)
		}
	}
	return out
}

// TestAbandonAfter (issue 19 #6): a connection broken 30 days gets its last
// notice, no reminder after it, and 7 days later is disconnected at Finch,
// once; OnDisconnected says it was abandoned. Before, a broken connection
// was billed for ever.
func TestAbandonAfter(t *testing.T) {
	r, gone := abandonRig(t)
	start := r.clk.Now()
	r.breakAndNotify(t)
	remindDaily(t, r, 29)
	assert.Empty(t, lastNotices(r))
	remindDaily(t, r, 1)
	notices := lastNotices(r)
	require.Len(t, notices, 1, "errors: %v", r.errs.all())
	assert.Equal(t, start.Add(37*day), notices[0].DisconnectAt)
	assert.Positive(t, notices[0].Reminder, "its own idempotency key, not the first notification's")
	sent := len(r.notes.delivered())
	remindDaily(t, r, 6)
	assert.Equal(t, sent, len(r.notes.delivered()), "no reminder after the last notice")
	assert.Zero(t, r.finch.Calls("POST", "/disconnect"))

	remindDaily(t, r, 1)
	assert.Equal(t, 1, r.finch.Calls("POST", "/disconnect"), "errors: %v", r.errs.all())
	g := gone()
	require.Len(t, g, 1)
	assert.Equal(t, "abandoned", g[0].Via)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	assert.Equal(t, "disconnected", st.FinchStatus)
	remindDaily(t, r, 10)
	assert.Equal(t, 1, r.finch.Calls("POST", "/disconnect"))
	assert.Len(t, gone(), 1)
	assert.Empty(t, r.finch.Jobs(r.connID), "no resync of a disconnected connection")
}

// TestAbandonNeverDisconnectsAWorkingToken: the employer repaired the
// connection after the last notice and nobody said so; the check right
// before the disconnect finds the token works: nothing is disconnected, and
// the episode ends.
func TestAbandonNeverDisconnectsAWorkingToken(t *testing.T) {
	r, gone := abandonRig(t)
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	require.Len(t, lastNotices(r), 1)
	r.finch.SetStatus(r.connID, "connected") // no webhook is registered
	remindDaily(t, r, 8)
	assert.Zero(t, r.finch.Calls("POST", "/disconnect"))
	assert.Empty(t, gone())
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.False(t, r.needsReauth(t))
}

// TestAbandonStopsAtAReconnect: a reconnect after the last notice drops
// the disconnect.
func TestAbandonStopsAtAReconnect(t *testing.T) {
	r, gone := abandonRig(t)
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	require.Len(t, lastNotices(r), 1)
	link, err := r.tr.ReconnectURL(context.Background(), r.connID)
	require.NoError(t, err)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	remindDaily(t, r, 10)
	assert.Zero(t, r.finch.Calls("POST", "/disconnect"))
	assert.Empty(t, gone())
}

// TestAbandonOnceAcrossReplicas: three replicas run Remind when the
// disconnect is due; one POST /disconnect, one OnDisconnected. A replica
// that died after Finch disconnected (the next one finds the token revoked)
// also counts as done.
func TestAbandonOnceAcrossReplicas(t *testing.T) {
	r, gone := abandonRig(t)
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	replicas := []*finchreauth.Transport{r.tr}
	for range 2 {
		tr := &finchreauth.Transport{Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store,
			Notifier: r.notes, Connect: r.connect, Now: r.clk.Now, AbandonAfter: 30 * day, AbandonNotice: 7 * day,
			OnDisconnected: r.tr.OnDisconnected}
		defer tr.Close()
		replicas = append(replicas, tr)
	}
	r.clk.advance(7 * day)
	var wg sync.WaitGroup
	for _, tr := range replicas {
		wg.Go(func() { tr.Remind(context.Background()) })
	}
	wg.Wait()
	for _, tr := range replicas {
		waitIdle(t, tr)
	}
	assert.Equal(t, 1, r.finch.Calls("POST", "/disconnect"))
	assert.Len(t, gone(), 1)
}

// TestAbandonAfterADisconnectNobodyRecorded: Finch disconnected the
// connection (a replica died before writing it down); the next try finds
// the token revoked and takes that as done.
func TestAbandonAfterADisconnectNobodyRecorded(t *testing.T) {
	r, gone := abandonRig(t)
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	req, _ := http.NewRequest("POST", r.finch.URL+"/disconnect", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.finch.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	remindDaily(t, r, 7)
	g := gone()
	require.Len(t, g, 1, "errors: %v", r.errs.all())
	assert.Contains(t, []string{"abandoned", "disconnected"}, g[0].Via)
}

// TestAbandonNow: the application abandons a broken connection now; a
// working one is refused.
func TestAbandonNow(t *testing.T) {
	r, gone := abandonRig(t)
	require.Error(t, r.tr.Abandon(context.Background(), r.connID), "it works")
	r.breakAndNotify(t)
	require.NoError(t, r.tr.Abandon(context.Background(), r.connID))
	require.NoError(t, r.tr.Remind(context.Background()))
	waitIdle(t, r.tr)
	notices := lastNotices(r)
	require.Len(t, notices, 1)
	assert.Equal(t, r.clk.Now().Add(7*day), notices[0].DisconnectAt)
	remindDaily(t, r, 7)
	assert.Equal(t, 1, r.finch.Calls("POST", "/disconnect"))
	assert.Len(t, gone(), 1)
	_ = time.Second
}
