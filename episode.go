package finchreauth

import (
	"context"
	"crypto/rand"
	"reflect"
	"slices"
	"time"
)

// An episode is one broken spell of a connection: it opens when Finch first
// refuses one of its tokens, or says so in a webhook, and ends when a new
// token is saved or Finch says the connection works again. Its notification
// goes out under a lease taken in the Store, so that one process sends it,
// however many see the breakage.

// opening is what opens or joins an episode.
type opening struct {
	source   string      // "detection" or "webhook"
	fp       string      // the refused token; "" for a webhook
	identity *Connection // what Finch just said of the connection, if asked
	entity   string      // a webhook's entity_id
	event    string      // a webhook's event id
}

// opened is what open did.
type opened struct {
	rec    Record
	d      recordData
	stale  bool   // the refused token was replaced: nothing to do
	dup    bool   // the webhook event was seen before
	holder string // set when this call took the notification lease
	owed   bool   // the first notification is owed, by another holder or later
}

// leaseFor is how long a notification lease lasts: the holder's whole path
// once it holds it (the link, the renewal, Notify, recording the outcome:
// each bounded by Timeout), and a minute for clocks that disagree.
func (t *Transport) leaseFor() time.Duration { return 4*t.timeout() + time.Minute }

// open records that the connection needs re-authentication, and takes the
// notification lease if the first notification is due and nobody holds it.
func (t *Transport) open(ctx context.Context, conn string, o opening) (opened, error) {
	var res opened
	now := t.now()
	r, d, err := t.update(ctx, conn, func(r *Record, d *recordData) (bool, error) {
		res = opened{}
		changed, done := o.note(r, d, &res)
		if done {
			return changed, nil
		}
		if t.openEpisode(o, now, r, d) {
			changed = true
		}
		e := d.Episode
		if e.Sent > 0 {
			return changed, nil
		}
		if now.Before(r.Due) || (e.Holder != "" && now.Before(e.Until)) {
			res.owed = true
			return changed, nil
		}
		res.holder = rand.Text()
		e.Holder, e.Until = res.holder, now.Add(t.leaseFor())
		r.Due = e.Until // should the holder vanish, Remind takes over
		return true, nil
	})
	res.rec, res.d = r, d
	return res, err
}

// note records what o tells of the connection: the webhook event, the
// refused token, what Finch said. It reports whether it changed the record,
// and done when there is nothing more to do (a duplicate event, or a stale
// token).
func (o opening) note(r *Record, d *recordData, res *opened) (changed, done bool) {
	if o.event != "" {
		if slices.Contains(d.Events, o.event) {
			res.dup = true
			return false, true
		}
		d.Events, changed = slices.Insert(d.Events, 0, o.event), true
	}
	if o.fp != "" {
		if r.Token != "" && r.Token.Fingerprint() != o.fp {
			// A newer token was saved: this one is an old copy.
			res.stale = true
			if !knows(r, o.fp) {
				r.Fingerprints, changed = append(r.Fingerprints, o.fp), true
			}
			return changed, true
		}
		if !knows(r, o.fp) {
			addFingerprint(r, o.fp)
			changed = true
		}
	}
	if o.identity != nil && !reflect.DeepEqual(d.Identity, o.identity) {
		d.Identity, changed = o.identity, true
	}
	return changed, false
}

// openEpisode starts the connection's episode, or widens the open one to
// what o says is broken. It reports whether it changed the record.
func (t *Transport) openEpisode(o opening, now time.Time, r *Record, d *recordData) bool {
	e := d.Episode
	switch {
	case e == nil:
		e = &episode{ID: rand.Text(), Source: o.source}
		if o.entity != "" {
			e.Entities = []string{o.entity}
		}
		d.Episode, r.Since, r.Due = e, now, now
	case o.source == "webhook" && o.entity == "" && len(e.Entities) > 0:
		e.Entities = nil // the whole connection now
	case o.entity != "" && len(e.Entities) > 0 && !slices.Contains(e.Entities, o.entity):
		e.Entities = append(e.Entities, o.entity)
	default:
		return false
	}
	return true
}

// event is the Event for the open episode of r.
func (t *Transport) event(r Record, d recordData, source string) Event {
	ev := Event{
		Connection: Connection{ConnectionID: r.ConnectionID},
		Since:      r.Since,
		At:         t.now(),
		Source:     source,
	}
	if d.Identity != nil {
		ev.Connection = *d.Identity
		ev.Connection.ConnectionID = r.ConnectionID
	}
	if d.Episode != nil {
		ev.Episode, ev.Reminder = d.Episode.ID, d.Episode.Sent
		for _, id := range d.Episode.Entities {
			markEntity(&ev.Connection, id, "reauth")
		}
	}
	return ev
}

// markEntity sets the status of one entity of c, adding it if Finch never
// listed it.
func markEntity(c *Connection, id, status string) {
	for i := range c.Entities {
		if c.Entities[i].ID == id {
			c.Entities[i].Status = status
			return
		}
	}
	c.Entities = append(c.Entities, Entity{ID: id, Status: status})
}

// deliver sends the notification (or reminder) for which this process holds
// the lease: it makes the link if the episode has none, renews the lease,
// calls the Notifier and records the outcome. It reports success.
func (t *Transport) deliver(ctx context.Context, holder string, ev Event, d recordData) bool {
	conn := ev.Connection.ConnectionID
	s := subject{conn: conn, fp: ev.TokenFingerprint}
	ev.ReconnectURL = d.linkFor(t.now(), t.linkMargin())
	var minted *link
	if ev.ReconnectURL == "" && (t.Links != nil || t.Connect != nil) {
		l, err := t.mint(ctx, ev)
		if err != nil {
			t.release(ctx, conn, holder)
			return false
		}
		minted, ev.ReconnectURL = &l, l.URL
	}
	// Renew the lease before the notification, keeping the new link: if
	// another process took the lease meanwhile, this one stands down.
	if !t.withLease(ctx, conn, holder, func(r *Record, rd *recordData) {
		rd.Episode.Until = t.now().Add(t.leaseFor())
		r.Due = rd.Episode.Until
		if minted != nil {
			rd.Link = minted
		}
		if d.Identity != nil {
			rd.Identity = d.Identity
		}
	}) {
		return false
	}
	if t.Notifier == nil {
		t.finish(ctx, conn, holder, false)
		return true
	}
	metric := "finchreauth.notifications"
	if ev.Reminder > 0 {
		metric = "finchreauth.reminders"
	}
	_, err := step(t, ctx, "notify", s, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, t.Notifier.Notify(ctx, ev)
	})
	if err != nil {
		t.count(ctx, metric, "failed")
		t.release(ctx, conn, holder)
		return false
	}
	t.count(ctx, metric, "sent")
	// Should recording this fail, the lease runs out and the notification
	// goes out again (with the same Episode and Reminder): at least once.
	t.finish(ctx, conn, holder, true)
	return true
}

// withLease changes the open episode's record if holder still holds its
// lease, and reports whether it did.
func (t *Transport) withLease(ctx context.Context, conn, holder string, change func(r *Record, d *recordData)) bool {
	held := false
	_, _, err := t.update(ctx, conn, func(r *Record, d *recordData) (bool, error) {
		held = d.Episode != nil && d.Episode.Holder == holder
		if held {
			change(r, d)
		}
		return held, nil
	})
	return err == nil && held
}

// release gives the lease back after a failure: the notification is tried
// again after RetryInterval.
func (t *Transport) release(ctx context.Context, conn, holder string) {
	t.withLease(ctx, conn, holder, func(r *Record, d *recordData) {
		d.Episode.Holder, d.Episode.Until = "", time.Time{}
		r.Due = t.now().Add(t.retryInterval())
	})
}

// finish gives the lease back after the notification went out (sent) or
// was not needed, and schedules the next reminder.
func (t *Transport) finish(ctx context.Context, conn, holder string, sent bool) {
	t.withLease(ctx, conn, holder, func(r *Record, d *recordData) {
		e := d.Episode
		e.Holder, e.Until = "", time.Time{}
		if sent {
			e.Sent++
			e.LastSent = t.now()
		}
		r.Due = t.nextReminder(r.Since, e)
	})
}

// Reminder defaults.
var defaultReminders = [...]time.Duration{24 * time.Hour, 72 * time.Hour, 168 * time.Hour}

const (
	defaultRemindEvery  = 168 * time.Hour
	defaultMaxReminders = 8
)

// nextReminder is when the next reminder of an episode that began at since
// is due, or zero when none is.
func (t *Transport) nextReminder(since time.Time, e *episode) time.Time {
	max := t.MaxReminders
	if max == 0 {
		max = defaultMaxReminders
	}
	k := e.Sent // the number the next reminder will carry
	if t.Notifier == nil || e.Sent == 0 || k > max {
		return time.Time{}
	}
	offsets := t.Reminders
	if offsets == nil {
		offsets = defaultReminders[:]
	}
	if len(offsets) == 0 {
		return time.Time{}
	}
	var after time.Duration
	if k <= len(offsets) {
		after = offsets[k-1]
	} else {
		after = offsets[len(offsets)-1] + time.Duration(k-len(offsets))*orDefault(t.RemindEvery, defaultRemindEvery)
	}
	due := since.Add(after)
	// A first notification that went out late is not followed at once by
	// a reminder.
	if gap := min(offsets[0], time.Hour); due.Before(e.LastSent.Add(gap)) {
		due = e.LastSent.Add(gap)
	}
	return due
}

// linkMargin is how long before its expiry a link stops being handed out:
// the employer needs time to click it.
func (t *Transport) linkMargin() time.Duration {
	if t.Connect == nil {
		return 0
	}
	return min(time.Hour, t.Connect.lifetime()/10)
}
