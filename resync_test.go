package finchreauth_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// resyncRig is the webhook rig with OnDataSynced recorded, broken,
// notified, and reconnected through Connect.
func resyncRig(t *testing.T, configure func(r *reconnectRig)) (*reconnectRig, func() []finchreauth.Reconnection) {
	t.Helper()
	var mu sync.Mutex
	var synced []finchreauth.Reconnection
	r := webhookRig(t, func(r *reconnectRig, _ *finchtest.Webhook) {
		r.tr.OnDataSynced = func(_ context.Context, rec finchreauth.Reconnection) {
			mu.Lock()
			synced = append(synced, rec)
			mu.Unlock()
		}
		if configure != nil {
			configure(r)
		}
	})
	return r, func() []finchreauth.Reconnection {
		waitIdle(t, r.tr)
		mu.Lock()
		defer mu.Unlock()
		return append([]finchreauth.Reconnection(nil), synced...)
	}
}

// reconnectThroughConnect breaks the connection, follows the notification's
// link through Connect and the callback, and waits for what follows.
func reconnectThroughConnect(t *testing.T, r *reconnectRig) {
	t.Helper()
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	waitIdle(t, r.tr)
}

// TestResyncAfterReconnect: a reconnect starts Finch's data_sync_all job
// with the new token, once; the job's completion (Finch's webhook) is read
// at once, the application is told its data is fresh, and Status says so.
// Nothing did: the data stayed stale until Finch's next daily run.
func TestResyncAfterReconnect(t *testing.T) {
	r, synced := resyncRig(t, nil)
	reconnectThroughConnect(t, r)
	jobs := r.finch.Jobs(r.connID)
	require.Len(t, jobs, 1, "one job after the reconnect; errors: %v", r.errs.all())
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, jobs[0].ID, st.ResyncJobID)
	assert.Contains(t, []string{"pending", "in_progress"}, st.Resync)

	r.clk.advance(5 * time.Minute)
	require.NoError(t, r.finch.SetJobStatus(jobs[0].ID, "complete")) // Finch's webhook follows
	got := synced()
	require.Len(t, got, 1, "errors: %v", r.errs.all())
	assert.Equal(t, "complete", got[0].SyncStatus)
	assert.Equal(t, jobs[0].ID, got[0].JobID)
	assert.True(t, got[0].DataFreshAt.Equal(r.clk.Now()), "fresh as of the job's end")
	assert.Equal(t, r.savedToken(t), got[0].Token)
	st, err = r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, "complete", st.Resync)
	assert.False(t, st.DataFreshAt.IsZero())
	assert.Len(t, r.finch.Jobs(r.connID), 1, "one job, not one per replica or per retry")
}

// TestResyncFollowsWithoutWebhook: without Finch's webhook, the job is
// polled (30 s, then doubling) by Remind until it ends.
func TestResyncFollowsWithoutWebhook(t *testing.T) {
	r, synced := resyncRig(t, nil)
	r.finch.SetJobDuration(time.Minute, 5*time.Minute)
	reconnectThroughConnect(t, r)
	require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{})) // no webhooks from now on
	for range 20 {
		r.clk.advance(time.Minute)
		require.NoError(t, r.tr.Remind(context.Background()))
	}
	got := synced()
	require.Len(t, got, 1, "errors: %v", r.errs.all())
	assert.Equal(t, "complete", got[0].SyncStatus)
	reads := r.finch.Calls("GET", "/jobs/automated/{job_id}")
	assert.LessOrEqual(t, reads, 6, "polled backing off, not every minute")
}

// TestResyncWaitsForFinchsQuota: Finch allows one forced refresh an hour;
// a second reconnect within the hour waits for Finch's retry_at, then
// starts its job.
func TestResyncWaitsForFinchsQuota(t *testing.T) {
	r, _ := resyncRig(t, nil)
	reconnectThroughConnect(t, r)
	first := r.finch.Jobs(r.connID)
	require.Len(t, first, 1)
	require.NoError(t, r.finch.SetJobStatus(first[0].ID, "complete"))
	r.clk.advance(10 * time.Minute)
	reconnectThroughConnect(t, r)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, "owed", st.Resync, "refused for now: history %v", st.History)
	assert.Len(t, r.finch.Jobs(r.connID), 1)
	r.clk.advance(51 * time.Minute) // past retry_at
	require.NoError(t, r.tr.Remind(context.Background()))
	waitIdle(t, r.tr)
	assert.Len(t, r.finch.Jobs(r.connID), 2, "started once Finch allows it")
}

// TestResyncEndsInReauthError: a job that ends in reauth_error is Finch
// saying the connection needs its employer, as a webhook would.
func TestResyncEndsInReauthError(t *testing.T) {
	r, synced := resyncRig(t, nil)
	reconnectThroughConnect(t, r)
	jobs := r.finch.Jobs(r.connID)
	require.Len(t, jobs, 1)
	require.NoError(t, r.finch.SetJobStatus(jobs[0].ID, "reauth_error"))
	got := synced()
	require.Len(t, got, 1)
	assert.Equal(t, "reauth_error", got[0].SyncStatus)
	assert.True(t, got[0].DataFreshAt.IsZero())
	assert.True(t, r.needsReauth(t), "the episode opens again")
}

// TestNoResync: SkipResync starts no job; nor does a reconnect of an
// assisted connection, for which Finch runs none.
func TestNoResync(t *testing.T) {
	r, _ := resyncRig(t, func(r *reconnectRig) { r.tr.SkipResync = true })
	reconnectThroughConnect(t, r)
	assert.Empty(t, r.finch.Jobs(r.connID))
	assert.Zero(t, r.finch.Calls(http.MethodPost, "/jobs/automated"))
}

// TestFailedRequestsAreListed (issue 18 #3): the requests that failed during
// the episode, those Finch refused and those the latch answered without
// calling Finch, are in Status while it lasts and in the Reconnection at its
// end, by method and path, so the application knows what to run again.
// Before, only the one detection per latch period was counted: the sync's
// other calls, answered by the latch, were missing.
func TestFailedRequestsAreListed(t *testing.T) {
	r, _ := resyncRig(t, nil)
	link := r.breakAndNotify(t) // GET /employer/company, refused by Finch
	client := r.tr.WrapClient(http.DefaultClient)
	do := func(method, path string) {
		req, _ := http.NewRequest(method, r.finch.URL+path+"?secret=no", nil)
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	for range 3 {
		do("GET", "/employer/directory")
	}
	do("POST", "/employer/individual")
	require.NoError(t, r.tr.Flush(context.Background()))

	want := map[string]int{"GET /employer/company": 1, "GET /employer/directory": 3, "POST /employer/individual": 1}
	listed := func(rs []finchreauth.Refusal) map[string]int {
		m := map[string]int{}
		for _, x := range rs {
			m[x.Method+" "+x.Path] += x.Count
			assert.False(t, x.First.IsZero() || x.Last.Before(x.First))
		}
		return m
	}
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, want, listed(st.Refused), "errors: %v", r.errs.all())

	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	waitIdle(t, r.tr)
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.Equal(t, want, listed(reconnected[0].Refused))
	st, err = r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, want, listed(st.Refused), "the last episode's, once it ended")
}

// gatedLookup is a Store whose Lookup waits for gate while held.
type gatedLookup struct {
	finchreauth.Store
	held atomic.Bool
	gate chan struct{}
}

func (s *gatedLookup) Lookup(ctx context.Context, fp string) (string, error) {
	if s.held.Load() {
		<-s.gate
	}
	return s.Store.Lookup(ctx, fp)
}

// TestRequestsLatchedBeforeTheHandlingAreListed: the requests the latch
// answers while the detection's handling has not found the connection yet
// are counted too (the dashboard demo found them dropped).
func TestRequestsLatchedBeforeTheHandlingAreListed(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok-1", "conn_1")
	store := &gatedLookup{Store: new(finchreauth.MemoryStore), gate: make(chan struct{})}
	tr := &finchreauth.Transport{Base: ff, Store: store}
	defer tr.Close()
	require.NoError(t, tr.SaveToken(context.Background(), "conn_1", "tok-1"))
	store.held.Store(true)
	release := sync.OnceFunc(func() { close(store.gate) })
	defer release()
	ff.setBroken("tok-1", true)
	call := func(path string) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+path, "tok-1", nil))
		require.NoError(t, err)
		readAll(t, resp)
		require.Equal(t, 401, resp.StatusCode)
	}
	call("/employer/company") // Finch's 401: the handling waits in Lookup
	call("/employer/directory")
	call("/employer/directory") // latched, the connection not known yet
	assert.Zero(t, ff.count("/employer/directory"), "answered by the latch")
	release()
	require.NoError(t, tr.Flush(context.Background()))
	st, err := tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	got := map[string]int{}
	for _, r := range st.Refused {
		got[r.Method+" "+r.Path] = r.Count
	}
	assert.Equal(t, map[string]int{"GET /employer/company": 1, "GET /employer/directory": 2}, got)
}
