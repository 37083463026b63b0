package finchreauth_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const day = 24 * time.Hour

// sweepRig is a reconnectRig whose Transport sweeps daily.
func sweepRig(t *testing.T) *reconnectRig {
	t.Helper()
	return newReconnectRig(t, func(r *reconnectRig) {
		r.tr.SweepEvery = day
		r.tr.SweepRate = 1000
	})
}

func sweep(t *testing.T, tr *finchreauth.Transport) {
	t.Helper()
	require.NoError(t, tr.Sweep(context.Background()))
	waitIdle(t, tr)
}

// TestSweepFindsABreakBeforeAnySync (issue 19 #1): Finch's status turns
// reauth with no webhook and no call from the application; the day's check
// finds it, and the customer is told, before any sync failed. Before, the
// library learnt of a break only from a refused call or a webhook.
func TestSweepFindsABreakBeforeAnySync(t *testing.T) {
	r := sweepRig(t)
	sweep(t, r.tr) // schedules the first check, somewhere in the day
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	require.False(t, st.NextCheck.IsZero())
	assert.False(t, st.NextCheck.After(r.clk.Now().Add(day)))
	assert.Zero(t, r.finch.Calls("GET", "/introspect"), "nothing is due yet")

	r.finch.SetStatus(r.connID, "reauth") // no webhook is registered
	r.clk.advance(day)
	sweep(t, r.tr)
	assert.Equal(t, 1, r.finch.Calls("GET", "/introspect"))
	require.Len(t, r.notes.delivered(), 1, "errors: %v", r.errs.all())
	assert.Equal(t, "reauth", r.notes.delivered()[0].Status)
	assert.Zero(t, r.finch.Calls("GET", "/employer/company")+r.finch.Calls("GET", "/employer/directory"), "no data call: no sync failed, none was made")
	st, err = r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Equal(t, r.clk.Now().Add(day), st.NextCheck, "the next check, a day later")

	sweep(t, r.tr)
	assert.Equal(t, 1, r.finch.Calls("GET", "/introspect"), "once a day")
}

// TestSweepEndsAnEpisodeRepairedElsewhere (issue 19 #1): the employer fixed
// the connection in Finch's own dashboard and no webhook came; the check
// finds the connection works, a data call confirms the saved token does,
// and the episode ends (Plaid's "login repaired").
func TestSweepEndsAnEpisodeRepairedElsewhere(t *testing.T) {
	r := sweepRig(t)
	r.breakAndNotify(t)
	r.finch.SetStatus(r.connID, "connected") // heals the same token, silently
	r.clk.advance(day)
	sweep(t, r.tr)
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1, "errors: %v", r.errs.all())
	assert.Equal(t, "introspect", reconnected[0].Via)
	assert.False(t, r.needsReauth(t))
}

// TestSweepKeepsTheTimelineQuiet: a daily check of a healthy connection adds
// no line to its timeline (48 lines would be gone in 48 days).
func TestSweepKeepsTheTimelineQuiet(t *testing.T) {
	r := sweepRig(t)
	sweep(t, r.tr)
	before, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	for range 3 {
		r.clk.advance(day)
		sweep(t, r.tr)
	}
	assert.Equal(t, 3, r.finch.Calls("GET", "/introspect"))
	after, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Len(t, after.History, len(before.History)+1, "one line: the first check that read Finch's status")
}

// TestSweepOnceAcrossReplicas (issue 19 #1): three replicas sweep the same
// Store at once; each connection is asked about once per period, and the
// checks are spread over the period.
func TestSweepOnceAcrossReplicas(t *testing.T) {
	finch := finchtest.NewServer()
	defer finch.Close()
	clk := newClock()
	finch.SetClock(clk.Now)
	store := new(finchreauth.MemoryStore)
	replicas := make([]*finchreauth.Transport, 3)
	for i := range replicas {
		replicas[i] = &finchreauth.Transport{Base: finch.Client().Transport, APIBaseURL: finch.URL, Store: store,
			Now: clk.Now, SweepEvery: day, SweepRate: 10_000}
		defer replicas[i].Close()
	}
	const n = 200
	for i := range n {
		tok := finch.AddConnection(finchtest.Connection{CustomerName: fmt.Sprint("c", i)})
		c, _ := finch.ConnectionForToken(tok)
		require.NoError(t, replicas[0].SaveToken(context.Background(), c.ID, finchreauth.Token(tok)))
	}
	base := finch.Calls("GET", "/introspect") // SaveToken's own checks
	all := func() {
		var wg sync.WaitGroup
		for _, tr := range replicas {
			wg.Go(func() { require.NoError(t, tr.Sweep(context.Background())) })
		}
		wg.Wait()
	}
	all()
	assert.Equal(t, base, finch.Calls("GET", "/introspect"), "nothing due at once")
	statuses, err := replicas[0].NeedsReauth(context.Background(), finchreauth.Status{}, 1)
	require.NoError(t, err)
	require.Empty(t, statuses)

	// The first checks fall all over the day: every quarter has some.
	quarters := [4]int{}
	err = finchreauth.EachStatus(replicas[0], context.Background(), func(s finchreauth.Status) {
		at := s.NextCheck.Sub(clk.Now())
		require.True(t, at >= 0 && at < day, "within the period: %s", at)
		quarters[at/(day/4)]++
	})
	require.NoError(t, err)
	for q, k := range quarters {
		assert.Greater(t, k, n/4/2, "quarter %d has %d of %d", q, k, n)
	}

	clk.advance(day / 2)
	all()
	half := finch.Calls("GET", "/introspect") - base
	assert.InDelta(t, n/2, half, n/5, "about half are due after half the day")
	clk.advance(day / 2)
	all()
	assert.Equal(t, n, finch.Calls("GET", "/introspect")-base, "each connection asked once in the period, by one replica")
	all()
	assert.Equal(t, n, finch.Calls("GET", "/introspect")-base)
	clk.advance(day)
	all()
	assert.Equal(t, 2*n, finch.Calls("GET", "/introspect")-base, "and once in the next")
}

// TestSweepIsPaced (issue 19 #1): at most SweepRate checks in any rolling
// window, in real time whatever the Transport's clock; a 429 pauses the
// sweep for its Retry-After, and is not retried at once.
func TestSweepIsPaced(t *testing.T) {
	var mu sync.Mutex
	var calls []time.Time
	var refuse atomic.Int32
	ff := newFakeFinch()
	base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
		if req.URL.Path == "/introspect" {
			mu.Lock()
			calls = append(calls, time.Now())
			mu.Unlock()
			if refuse.Add(-1) >= 0 {
				r := jsonResponse(req, 429, `{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_application_rl"}`)
				r.Header.Set("Retry-After", "1")
				return r, nil
			}
		}
		return ff.RoundTrip(req)
	}}
	clk := newClock()
	tr := &finchreauth.Transport{Base: base, Now: clk.Now, SweepEvery: day, SweepRate: 4}
	defer tr.Close()
	const window = 300 * time.Millisecond
	finchreauth.SetSweepWindow(tr, window)
	const n = 12
	for i := range n {
		tok := fmt.Sprintf("tok-%d", i)
		ff.add(tok, fmt.Sprintf("conn_%d", i))
		require.NoError(t, tr.SaveToken(context.Background(), fmt.Sprintf("conn_%d", i), finchreauth.Token(tok)))
	}
	require.NoError(t, tr.Sweep(context.Background())) // schedules
	clk.advance(day)
	mu.Lock()
	calls = nil
	mu.Unlock()
	refuse.Store(1)
	start := time.Now()
	require.NoError(t, tr.Sweep(context.Background()))
	waitIdle(t, tr)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, n, "n-1 checks and the one refused; the refused one is retried later, not now")
	sort.Slice(calls, func(i, j int) bool { return calls[i].Before(calls[j]) })
	for i := range calls {
		inWindow := 0
		for j := i; j < len(calls) && calls[j].Sub(calls[i]) < window; j++ {
			inWindow++
		}
		assert.LessOrEqual(t, inWindow, 4, "checks in the window from call %d", i)
	}
	assert.GreaterOrEqual(t, calls[1].Sub(calls[0]), time.Second-50*time.Millisecond, "the 429's Retry-After: 1 s")
	assert.GreaterOrEqual(t, time.Since(start), time.Second)
}

// TestDataStale (issue 19 #1): Finch's last_successful_sync older than
// StaleAfter is flagged in Status, though every call works.
func TestDataStale(t *testing.T) {
	r := sweepRig(t)
	sweep(t, r.tr)
	r.clk.advance(day)
	sweep(t, r.tr)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.False(t, st.DataStale, "synced %s ago", r.clk.Now().Sub(st.DataFreshAt))
	r.clk.advance(2 * day)
	sweep(t, r.tr)
	st, err = r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.True(t, st.DataStale, "synced %s ago", r.clk.Now().Sub(st.DataFreshAt))
	assert.False(t, st.NeedsReauth, "stale is not broken")
}

// TestNoSweepWithoutSweepEvery: Sweep does nothing, and no record owes a
// check.
func TestNoSweepWithoutSweepEvery(t *testing.T) {
	r := newReconnectRig(t, nil)
	before := r.finch.Calls("GET", "/introspect")
	r.clk.advance(30 * day)
	sweep(t, r.tr)
	assert.Equal(t, before, r.finch.Calls("GET", "/introspect"))
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.True(t, st.NextCheck.IsZero())
}

// TestSweepStaysUnderFinchsLimit (issue 19 #1, #8): against finchtest's
// own rolling window (3 a minute on /introspect), a sweep with SweepRate 3
// and 6 checks due makes 3 calls and waits for the window: Finch never
// answers 429.
func TestSweepStaysUnderFinchsLimit(t *testing.T) {
	finch := finchtest.NewServer() // its window in real time
	defer finch.Close()
	finch.SetRateLimit("/introspect", 3)
	clk := newClock()
	tr := &finchreauth.Transport{Base: finch.Client().Transport, APIBaseURL: finch.URL, Now: clk.Now, SweepEvery: day, SweepRate: 3}
	defer tr.Close()
	for range 6 {
		tok := finch.AddConnection(finchtest.Connection{})
		c, _ := finch.ConnectionForToken(tok)
		require.NoError(t, tr.SaveToken(context.Background(), c.ID, finchreauth.Token(tok)))
	}
	require.NoError(t, tr.Sweep(context.Background()))
	clk.advance(day)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := tr.Sweep(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the sweep waits for Finch's window")
	assert.Equal(t, 3, finch.Calls("GET", "/introspect"))
	assert.Zero(t, finch.RateLimited("/introspect"), "never a 429")
}
