package finchreauth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReminders: with a fake clock, the customer is reminded on the
// cadence (1, 3 and 7 days, then weekly, up to the limit), each reminder
// once across two replicas sharing the Store, carrying its number and the
// episode's age; none after the episode ends.
func TestReminders(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	store := new(finchreauth.MemoryStore)
	clk := newClock()
	notes := &recorder{}
	replica := func() *finchreauth.Transport {
		tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes, Now: clk.Now, MaxReminders: 5,
			Links: finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) { return "https://connect.example/x", nil })}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a, b := replica(), replica()
	ctx := context.Background()
	remind := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, tr := range []*finchreauth.Transport{a, b, a, b} {
			wg.Go(func() { require.NoError(t, tr.Remind(ctx)) })
		}
		wg.Wait()
	}
	resp, err := a.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, a)
	require.EqualValues(t, 1, notes.n.Load())
	start := clk.Now()

	type sent struct {
		reminder int
		age      time.Duration
	}
	var got []sent
	for hour := 1; hour <= 40*24; hour++ {
		clk.advance(time.Hour)
		remind()
		for _, e := range notes.delivered()[1+len(got):] {
			got = append(got, sent{e.Reminder, e.Age()})
			assert.Equal(t, "reminder", e.Source)
			assert.Equal(t, "https://connect.example/x", e.ReconnectURL, "the episode's link")
			assert.True(t, e.Since.Equal(start))
		}
	}
	day := 24 * time.Hour
	assert.Equal(t, []sent{{1, day}, {2, 3 * day}, {3, 7 * day}, {4, 14 * day}, {5, 21 * day}}, got,
		"1, 3, 7 days, then weekly, up to MaxReminders, each once across the replicas")
	st, err := a.Status(ctx, "conn_1")
	require.NoError(t, err)
	assert.Equal(t, 6, st.Notifications)
	assert.True(t, st.NextReminder.IsZero(), "none planned after the last")

	t.Run("none after the episode ends", func(t *testing.T) {
		ff.setBroken("tok", false)
		ff.add("tok2", "conn_1")
		require.NoError(t, a.SaveToken(ctx, "conn_1", "tok2"))
		n := notes.n.Load()
		clk.advance(30 * day)
		remind()
		assert.Equal(t, n, notes.n.Load())
	})
}

// TestRemindRetriesTheFirstNotification: a first notification that failed
// is sent by Remind after RetryInterval, even if no call sees the broken
// token again; so is one whose sender vanished while holding the lease.
func TestRemindRetriesTheFirstNotification(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	clk := newClock()
	fail := true
	var mu sync.Mutex
	notes := &recorder{fn: func(context.Context, finchreauth.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return assert.AnError
		}
		return nil
	}}
	tr := &finchreauth.Transport{Base: ff, Notifier: notes, Now: clk.Now}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	require.EqualValues(t, 1, notes.n.Load())
	require.Empty(t, notes.delivered())
	mu.Lock()
	fail = false
	mu.Unlock()
	require.NoError(t, tr.Remind(context.Background()))
	assert.Empty(t, notes.delivered(), "not before RetryInterval")
	clk.advance(30 * time.Second)
	require.NoError(t, tr.Remind(context.Background()))
	require.Len(t, notes.delivered(), 1)
	assert.Zero(t, notes.delivered()[0].Reminder, "the first notification, not a reminder")
	assert.Equal(t, "detection", notes.delivered()[0].Source)
}

// TestRunStops: Run calls Remind until its context is done.
func TestRunStops(t *testing.T) {
	tr := &finchreauth.Transport{RetryInterval: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tr.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	tr.Close()
}
