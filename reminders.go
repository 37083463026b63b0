package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// remindPage is how many due records Remind reads at a time.
const remindPage = 100

// Remind sends what is due now: the reminders of open episodes (Reminders,
// RemindEvery, MaxReminders), and the first notifications that failed or
// whose sender vanished. Each goes out once across every process sharing
// the Store: the Store's lease decides who sends it. Call it from the
// application's own scheduler, or use Run. A record the Store cannot read is
// skipped and reported to the ErrorHandler; Remind returns the error of a
// listing that failed as a whole.
func (t *Transport) Remind(ctx context.Context) error {
	t.init()
	now := t.now()
	return t.each(ctx, Query{DueBy: now, Limit: remindPage}, func(r Record, _ recordData) bool {
		t.remind(ctx, r.ConnectionID, now)
		return true
	})
}

// Run calls Remind every minute (or every RetryInterval, if shorter) until
// ctx is done, and returns ctx's error. Failures reach the ErrorHandler.
func (t *Transport) Run(ctx context.Context) error {
	tick := time.NewTicker(min(time.Minute, t.retryInterval()))
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

// remind takes the lease of one due episode and sends what it owes.
func (t *Transport) remind(ctx context.Context, conn string, now time.Time) {
	var holder string
	var abandoned *claim
	r, d, err := t.update(ctx, conn, func(r *Record, d *recordData) (bool, error) {
		holder, abandoned = "", nil
		e := d.Episode
		if e == nil || r.Due.IsZero() || now.Before(r.Due) || (e.Holder != "" && now.Before(e.Until)) {
			return false, nil
		}
		// A code came back for this episode and was never saved: the
		// process that spent it may have died. Say so once.
		for i := range d.Claims {
			c := &d.Claims[i]
			if c.Busy && !c.Reported && !c.Started.Before(r.Since) && now.Sub(c.Started) > t.leaseFor() {
				c.Reported, abandoned = true, c
			}
		}
		if e.Sent > 0 && t.nextReminder(r.Since, e).IsZero() {
			r.Due = time.Time{} // nothing more to send
			return true, nil
		}
		holder = rand.Text()
		e.Holder, e.Until = holder, now.Add(t.leaseFor())
		r.Due = e.Until
		return true, nil
	})
	if err != nil {
		return
	}
	if abandoned != nil {
		t.report(ctx, &HookError{Hook: "exchange", ConnectionID: conn, Err: fmt.Errorf(
			"%w: a code came back at %s and its token was never saved; the customer is still reminded",
			errAbandoned, abandoned.Started.Format(time.RFC3339))})
	}
	if holder == "" {
		return
	}
	source := "reminder"
	if d.Episode.Sent == 0 {
		source = d.Episode.Source
	}
	if tok := r.Token; tok != "" && d.Identity == nil {
		if in, err := t.introspect(ctx, t.base(), string(tok), subject{conn: conn}); err == nil {
			d.Identity = &in
		}
	}
	t.deliver(ctx, holder, t.event(r, d, source), d)
}

var errAbandoned = errors.New("finchreauth: reconnect abandoned")
