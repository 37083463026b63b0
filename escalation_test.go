package finchreauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// escalations lists, for each notification delivered, its reminder number
// and whether it was the escalation.
func escalations(r *reconnectRig) (reminders []int, escalated []int) {
	for _, e := range r.notes.delivered() {
		reminders = append(reminders, e.Reminder)
		if e.Escalation {
			escalated = append(escalated, e.Reminder)
		}
	}
	return reminders, escalated
}

func remindDaily(t *testing.T, r *reconnectRig, days int) {
	t.Helper()
	for range days {
		r.clk.advance(24 * time.Hour)
		require.NoError(t, r.tr.Remind(context.Background()))
		waitIdle(t, r.tr)
	}
}

// TestEscalationAfterDays (issue 19 #5): with EscalateAfter 5 days, the
// customer's notification on day 5 is the escalation, though no reminder
// was due that day; exactly one per episode, and none after it ended.
// Before, nothing ever escalated.
func TestEscalationAfterDays(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.tr.EscalateAfter = 5 * 24 * time.Hour })
	link := r.breakAndNotify(t)
	remindDaily(t, r, 20)
	reminders, escalated := escalations(r)
	assert.Equal(t, []int{0, 1, 2, 3, 4}, reminders, "day 0, 1, 3, then the escalation on day 5, then a week later")
	assert.Equal(t, []int{3}, escalated)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, newClock().Now().Add(5*24*time.Hour), st.EscalatedAt)

	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	browse(t, callback)
	waitIdle(t, r.tr)
	remindDaily(t, r, 10)
	after, _ := escalations(r)
	assert.Len(t, after, len(reminders), "nothing after the episode ended")
}

// TestEscalationAfterReminders: with EscalateAfterReminders 2, the second
// reminder is the escalation, and only it.
func TestEscalationAfterReminders(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.tr.EscalateAfterReminders = 2 })
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	reminders, escalated := escalations(r)
	require.GreaterOrEqual(t, len(reminders), 4)
	assert.Equal(t, []int{2}, escalated)
}

// TestNoEscalationByDefault.
func TestNoEscalationByDefault(t *testing.T) {
	r := newReconnectRig(t, nil)
	r.breakAndNotify(t)
	remindDaily(t, r, 30)
	_, escalated := escalations(r)
	assert.Empty(t, escalated)
}
