package finchreauth

import (
	"context"
	"time"
)

// InFlight reports the work t runs in the background: handlings, webhook
// notifications, OnReconnected. Tests wait for it to be 0 before they look
// at what that work did.
func InFlight(t *Transport) int64 { return t.inFlight.Load() }

// EachStatus calls fn with the Status of every connection in the Store.
func EachStatus(t *Transport, ctx context.Context, fn func(Status)) error {
	t.init()
	return t.each(ctx, Query{Every: true, Limit: 100}, func(r Record, l life) bool {
		fn(t.statusOf(r, l))
		return true
	})
}

// SetSweepWindow shortens the sweep's rolling window, for a test in real time.
func SetSweepWindow(t *Transport, d time.Duration) {
	t.sweeper.mu.Lock()
	defer t.sweeper.mu.Unlock()
	t.sweeper.window = d
}
