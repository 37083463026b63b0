package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"
)

// remindPage is how many due records Remind reads at a time.
const remindPage = 100

// Remind carries out what the Store's records owe now: the reminders of
// open episodes (Reminders, RemindEvery, MaxReminders; those missed while
// nothing ran are one reminder, the latest), first notifications that
// failed (backing off) or whose sender vanished, checks at /introspect that
// a webhook asked for, and OnReconnected calls owed by a process that died.
// Each goes out once across every process sharing the Store: a lease in the
// record decides who carries it. Call it from the application's own
// scheduler, or use Run. A record the Store cannot read is skipped and
// reported to the ErrorHandler; Remind returns the error of a listing that
// failed as a whole.
func (t *Transport) Remind(ctx context.Context) error {
	t.init()
	now := t.now()
	return t.each(ctx, Query{DueBy: now, Limit: remindPage}, func(r Record, _ life) bool {
		t.remind(ctx, r.ConnectionID)
		return true
	})
}

// Run calls Remind every minute (or every RetryInterval, if shorter) until
// ctx is done, and returns ctx's error; with SweepEvery set, it also calls
// Sweep, on its own (a sweep paced by Finch's limits never holds up a
// reminder), every minute. Failures reach the ErrorHandler. A Transport
// that Validate refuses is refused here at once: Run returns the error
// before doing anything.
func (t *Transport) Run(ctx context.Context) error {
	if err := t.Validate(); err != nil {
		return err
	}
	every := min(time.Minute, t.retryInterval())
	if t.SweepEvery > 0 {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { t.sweepLoop(ctx, every) })
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := t.Remind(ctx); err != nil && ctx.Err() == nil {
			t.report(ctx, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// remind takes the leases of what one record owes and carries it out.
func (t *Transport) remind(ctx context.Context, conn string) {
	l, o, err := t.apply(ctx, conn, due{holder: rand.Text()})
	if err != nil {
		return
	}
	for _, c := range o.abandoned {
		t.report(ctx, &HookError{Hook: "exchange", ConnectionID: conn, Err: fmt.Errorf(
			"%w: a code came back at %s and its token was never saved; the customer is still reminded",
			errAbandoned, c.Started.Format(time.RFC3339))})
	}
	t.carry(ctx, conn, l, o.run, carrier{})
}

var errAbandoned = errors.New("finchreauth: reconnect abandoned")

// sweepLoop calls Sweep every period until ctx is done.
func (t *Transport) sweepLoop(ctx context.Context, every time.Duration) {
	for {
		if err := t.Sweep(ctx); err != nil && ctx.Err() == nil {
			t.report(ctx, err)
		}
		if !sleep(ctx, every) {
			return
		}
	}
}
