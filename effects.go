package finchreauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// What a connection's record owes, carried out: telling the application an
// episode ended, asking Finch before believing a signal, and notifying the
// customer. Each runs only for the holder of its lease, and ends with a
// step that records it done or failed; a failure is retried later, backing
// off, by whoever holds the lease then.

// carrier is what the flow carrying owed work knows beyond the record.
type carrier struct {
	base    http.RoundTripper // for /introspect: the Middleware's next, or Base
	det     *detected         // the detection that brought the work
	rid     string            // its Finch-Request-Id
	fresh   bool              // the record's identity was just read from Finch
	details *Reconnection     // what the callback knows, for OnReconnected
}

// carry carries out run, which a step leased to this process, and what
// carrying it leases in turn (a check's answer may end an episode, owing
// its announcement). Announcements first, then checks, then notifications.
func (t *Transport) carry(ctx context.Context, conn string, l life, run []owed, c carrier) {
	if c.base == nil {
		c.base = t.base()
	}
	for len(run) > 0 {
		next := 0
		for i, ow := range run {
			if rank(ow.Kind) < rank(run[next].Kind) {
				next = i
			}
		}
		ow := run[next]
		run = append(run[:next:next], run[next+1:]...)
		var more []owed
		switch ow.Kind {
		case owedAnnounce:
			more = t.announce(ctx, conn, l, ow, c.details)
		case owedVerify:
			l, more = t.check(ctx, conn, l, ow, c.base)
			c.fresh = true // a notification the check owes needs no second reading
		case owedNotify, owedLastNotice:
			l, more = t.notify(ctx, conn, l, ow, c)
			c.fresh = false
		case owedDisconnect:
			l, more = t.disconnect(ctx, conn, l, ow, c.base)
		case owedAsk:
			l = t.ask(ctx, conn, l, ow)
		case owedAnswered:
			more = t.answered(ctx, conn, l, ow)
		case owedResync:
			l, more = t.startJob(ctx, conn, l, ow)
		case owedFollow:
			l, more = t.followJob(ctx, conn, l, ow)
		case owedSynced:
			more = t.synced(ctx, conn, l, ow)
		case owedSweep:
			l, more = t.sweepCheck(ctx, conn, l, ow, c.base)
			c.fresh = true
		}
		run = append(run, more...)
	}
}

func rank(kind string) int {
	switch kind {
	case owedAnnounce, owedSynced, owedAnswered:
		return 0
	case owedVerify:
		return 1
	case owedNotify:
		return 2
	}
	return 3
}

// announce tells the application that an episode ended: OnReconnected, or
// OnDisconnected when Finch says the connection is gone.
func (t *Transport) announce(ctx context.Context, conn string, l life, ow owed, details *Reconnection) []owed {
	e := ow.Ended
	r := Reconnection{ConnectionID: conn, Token: l.Token, Via: e.Via, BrokenSince: e.Since, At: e.At,
		Notifications: e.Sent, Episode: e.ID, Status: e.Need, Refused: refusedOf(e.Refused), Drift: e.Drift}
	if id := l.Identity; id != nil {
		r.CustomerID, r.CustomerName, r.CompanyID, r.ProviderID, r.Products = id.CustomerID, id.CustomerName, id.CompanyID, id.ProviderID, id.Products
	}
	if d := details; d != nil && d.ConnectionID == conn {
		r.Expected, r.Embedded = d.Expected, d.Embedded
		r.CustomerID, r.CustomerName, r.CompanyID, r.ProviderID, r.Products = d.CustomerID, d.CustomerName, d.CompanyID, d.ProviderID, d.Products
	}
	name, fn := "reconnected", t.OnReconnected
	if e.Via == statusDisconnected || e.Via == viaAbandoned {
		name, fn = "disconnected", t.OnDisconnected
	}
	var err error
	if fn != nil {
		_, err = callHook(t, ctx, name, subject{conn: conn}, func(ctx context.Context) (struct{}, error) {
			fn(ctx, r)
			return struct{}{}, nil
		})
	}
	// What happened is recorded whatever Close does to ctx meanwhile.
	_, o, derr := t.apply(context.WithoutCancel(ctx), conn, done{holder: ow.Holder, kind: owedAnnounce, episode: ow.Episode, ok: err == nil})
	if err == nil && derr == nil && o.changed {
		if name == "reconnected" {
			t.count(ctx, "finchreauth.reconnects", e.Via)
			if t.Metrics != nil {
				t.Metrics.Observe(ctx, "finchreauth.time_to_reconnect", r.Downtime().Seconds())
			}
		} else {
			t.count(ctx, "finchreauth.disconnects", "")
		}
	}
	return o.run
}

// check asks /introspect about the saved token, for a signal the record
// would not believe without Finch's word.
func (t *Transport) check(ctx context.Context, conn string, l life, ow owed, base http.RoundTripper) (life, []owed) {
	if l.Token == "" {
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedVerify, ok: true})
		return l, nil
	}
	in, ok := t.reading(ctx, base, conn, l.Token, ow.Basis, ow.Holder)
	if !ok {
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedVerify})
		return l, nil
	}
	if in.conn != nil && needOf(in.conn.Status) == "" {
		// Finch says the connection works: before that ends anything, ask
		// whether the saved token does (/introspect may answer for a token
		// a reconnect replaced).
		in.probe = t.probe(ctx, base, conn, l.Token, in.conn.Products)
	}
	next, o, err := t.apply(ctx, conn, in)
	if err != nil {
		return l, nil
	}
	return next, o.run
}

// reading asks /introspect about tok and returns it as an input: Finch's
// answer, or its refusal of the token. ok is false when Finch could not be
// asked or answered otherwise (an error, reported).
func (t *Transport) reading(ctx context.Context, base http.RoundTripper, conn string, tok Token, basis int, holder string) (read, bool) {
	in, err := t.readingErr(ctx, base, conn, tok, basis, holder, false)
	return in, err == nil
}

// readingErr is reading, with the error that kept Finch's answer from being
// taken in. The sweep's readings leave a 429 to the sweep (no retry here).
func (t *Transport) readingErr(ctx context.Context, base http.RoundTripper, conn string, tok Token, basis int, holder string, paced bool) (read, error) {
	fp := tok.Fingerprint()
	c, err := t.introspect(ctx, base, string(tok), subject{conn: conn, fp: fp, paced: paced})
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		return read{fp: fp, refused: true, at: t.now(), basis: basis, holder: holder}, nil
	case err != nil:
		return read{}, err
	case conn != "" && c.ConnectionID != conn:
		err := errors.New("finchreauth: Finch says the token is another connection's: " + quoteID(c.ConnectionID))
		t.report(ctx, &HookError{Hook: "introspect", ConnectionID: conn, TokenFingerprint: fp, Err: err})
		return read{}, err
	}
	return read{fp: fp, conn: &c, at: t.now(), basis: basis, holder: holder}, nil
}

// probe asks Finch whether a data call with tok works (finchapi's Probe):
// true or false, or nil when Finch's answer says neither.
func (t *Transport) probe(ctx context.Context, base http.RoundTripper, conn string, tok Token, products []string) *bool {
	type answer struct{ works, ok bool }
	a, err := callHook(t, ctx, "probe", subject{conn: conn, fp: tok.Fingerprint()}, func(ctx context.Context) (answer, error) {
		if t.apiErr != nil {
			return answer{}, t.apiErr
		}
		works, ok, err := t.finch(ctx, base).Probe(ctx, string(tok), products)
		return answer{works, ok}, err
	})
	if err != nil || !a.ok {
		return nil
	}
	return &a.works
}

// notify sends the notification (or reminder) ow: it asks Finch about the
// connection first (its entities change), makes the link if the remedy is
// Finch Connect and the episode has none, renews the lease, calls the
// Notifier and records the outcome.
func (t *Transport) notify(ctx context.Context, conn string, l life, ow owed, c carrier) (life, []owed) {
	var more []owed
	if l.Token != "" && !c.fresh {
		if in, ok := t.reading(ctx, c.base, conn, l.Token, l.Breaks, ow.Holder); ok {
			next, o, err := t.apply(ctx, conn, in)
			if err == nil {
				l, more = next, o.run
			}
		}
		if mine := l.owedItem(ow.Kind, ow.Episode); mine == nil || mine.Holder != ow.Holder {
			return l, more // it ended meanwhile, or another holds it now
		}
	}
	if l.Episode == nil || l.Episode.ID != ow.Episode {
		return l, more
	}
	ev := t.event(conn, l, ow, c)
	var minted *link
	if ev.ReconnectURL == "" && connectHeals(l) && (t.Links != nil || t.Connect != nil) {
		k, err := t.mint(ctx, ev)
		if err != nil {
			l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: ow.Kind, episode: ow.Episode})
			return l, more
		}
		minted, ev.ReconnectURL = &k, k.URL
	}
	// Renew the lease before the notification, keeping the new link: if
	// another process took the lease meanwhile, this one stands down.
	l, _, err := t.apply(ctx, conn, renewed{holder: ow.Holder, kind: ow.Kind, link: minted})
	if err != nil {
		return l, more
	}
	metric := "finchreauth.notifications"
	if ow.Reminder > 0 {
		metric = "finchreauth.reminders"
	}
	if t.Notifier != nil {
		_, err = callHook(t, ctx, "notify", subject{conn: conn, fp: ev.TokenFingerprint}, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, t.Notifier.Notify(ctx, ev)
		})
	}
	if err == nil {
		t.count(ctx, metric, "sent")
	} else {
		t.count(ctx, metric, "failed")
	}
	// It is recorded whatever Close does to ctx meanwhile. Should
	// recording fail, the lease runs out and the notification goes out
	// again (with the same Episode and Reminder): at least once.
	l, _, _ = t.apply(context.WithoutCancel(ctx), conn, done{holder: ow.Holder, kind: ow.Kind, episode: ow.Episode, ok: err == nil})
	return l, more
}

// connectHeals reports whether going through Finch Connect is the remedy:
// a re-authentication, on a connection that is not assisted.
func connectHeals(l life) bool {
	return l.Episode != nil && l.Episode.Need == statusReauth && (l.Identity == nil || !l.Identity.Assisted)
}

// event is the Event for the notification ow of l's open episode.
func (t *Transport) event(conn string, l life, ow owed, c carrier) Event {
	e := l.Episode
	ev := Event{
		Connection: Connection{ConnectionID: conn},
		Episode:    e.ID,
		Since:      e.Since,
		At:         t.now(),
		Reminder:   ow.Reminder,
		Source:     e.Source,
		Status:     e.Need,
		Escalation: ow.Escalate,
	}
	if ow.Kind == owedLastNotice {
		ev.LastNotice, ev.DisconnectAt = true, ow.DisconnectAt
	}
	if l.Identity != nil {
		ev.Connection = l.Identity.clone()
		ev.Connection.ConnectionID = conn
	}
	for _, id := range e.Entities {
		markEntity(&ev.Connection, id, statusReauth)
	}
	if ow.Reminder > 0 {
		ev.Source = "reminder"
	} else if d := c.det; d != nil {
		ev.TokenFingerprint, ev.Method, ev.Path, ev.RequestID, ev.At = d.fp, d.method, d.path, c.rid, maxTime(d.at, e.Since)
	}
	if connectHeals(l) {
		ev.ReconnectURL = l.linkFor(t.now(), t.linkMargin())
	}
	if r := l.request(requestUpgrade); r != nil {
		// One trip through Connect for both: the episode's link asks for
		// the products of the open upgrade too.
		ev.Products = slices.Clone(r.Products)
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

// linkMargin is how long before its expiry a link stops being handed out:
// the employer needs time to click it.
func (t *Transport) linkMargin() time.Duration {
	if t.Connect == nil {
		return 0
	}
	return min(time.Hour, t.Connect.lifetime()/10)
}
