package finchreauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Abandonment. Finch bills every connection until the application calls
// POST /disconnect, which revokes every token of the employer and has no
// undo. With AbandonAfter set, an episode that old owes the customer a last
// notice (Event.LastNotice, with the date of the disconnect); AbandonNotice
// later, the connection owes its disconnect. Both are owed effects of the
// record: once across replicas, at least once. The disconnect is guarded:
// it is dropped if the episode ended or a token was saved since the last
// notice, and right before it Finch is asked again (/introspect and a data
// call with the saved token): a token that works is never disconnected.
// Then POST /disconnect; Finch's 401 for a token already revoked (a replica
// that died after disconnecting) counts as done. The episode ends as
// disconnected and OnDisconnected is told (Reconnection.Via "abandoned").

const (
	owedLastNotice = "last_notice"
	owedDisconnect = "disconnect"

	viaAbandoned         = "abandoned"
	defaultAbandonNotice = 7 * 24 * time.Hour
)

// abandonNow: the application abandons the connection now (Abandon).
type abandonNow struct{}

// disconnecting: the holder of the owed disconnect is about to call POST
// /disconnect; the step says whether it still may. disconnected: Finch
// disconnected it.
type disconnecting struct{ holder string }
type disconnected struct{ holder string }

func (abandonNow) isInput()    {}
func (disconnecting) isInput() {}
func (disconnected) isInput()  {}

// scheduleAbandon makes the abandonment agree with the policy and the
// episode: an open episode owes its last notice at Since+abandon (or has
// given it, and owes its disconnect); nothing else does. It reports whether
// it changed l.
func (l *life) scheduleAbandon(now time.Time, p policy) bool {
	e := l.Episode
	changed := false
	for _, kind := range []string{owedLastNotice, owedDisconnect} {
		if ow := l.owedItem(kind, ""); ow != nil && (e == nil || ow.Episode != e.ID) {
			l.drop(kind, "") // its episode ended: nothing is abandoned
			changed = true
		}
	}
	if e == nil || !e.Noticed.IsZero() || p.abandon <= 0 && !e.Abandoning {
		return changed
	}
	if l.owedItem(owedLastNotice, e.ID) == nil {
		at := e.Since.Add(p.abandon)
		if e.Abandoning {
			at = now
		}
		l.Owed = append(l.Owed, owed{Kind: owedLastNotice, Episode: e.ID, NotBefore: at})
		changed = true
	}
	return changed
}

func (l *life) onAbandonNow(now time.Time, p policy) outcome {
	e := l.Episode
	if e == nil || e.Abandoning || !e.Noticed.IsZero() {
		return outcome{}
	}
	e.Abandoning = true
	l.drop(owedLastNotice, e.ID)
	l.note(now, "abandoning", "the application abandons the connection")
	l.scheduleAbandon(now, p)
	return outcome{changed: true}
}

// noticed records the last notice sent: no reminder after it, and the
// disconnect owed at the date it gave.
func (l *life) noticed(ow *owed, now time.Time) {
	e, at := l.Episode, ow.DisconnectAt
	e.Noticed = now
	l.drop(owedNotify, e.ID)
	l.drop(owedLastNotice, e.ID)
	l.Owed = append(l.Owed, owed{Kind: owedDisconnect, Episode: e.ID, NotBefore: at, FP: l.savedFP()})
	l.note(now, "last notice", "disconnect at "+at.Format(time.RFC3339))
}

// mayDisconnect reports whether the owed disconnect ow still stands: its
// episode is open, the token it would revoke is the one the last notice was
// about, and nothing says that token works.
func (l *life) mayDisconnect(ow *owed) bool {
	e := l.Episode
	works := l.Check != nil && l.Check.FP == l.savedFP() && l.Check.Works
	return e != nil && e.ID == ow.Episode && ow.FP == l.savedFP() && !works
}

func (l *life) onDisconnecting(in disconnecting, now time.Time) outcome {
	ow := l.owedItem(owedDisconnect, "")
	if ow == nil || ow.Holder != in.holder {
		return outcome{err: errNoLease}
	}
	if !l.mayDisconnect(ow) {
		l.drop(owedDisconnect, "")
		l.note(now, "disconnect cancelled", "the connection works, or a token was saved")
		return outcome{changed: true, err: errNoLease}
	}
	return outcome{}
}

func (l *life) onDisconnected(in disconnected, now time.Time) outcome {
	ow := l.owedItem(owedDisconnect, "")
	if ow == nil || ow.Holder != in.holder {
		return outcome{}
	}
	l.drop(owedDisconnect, "")
	l.setMark(mark{Level: levelConnection, Status: statusDisconnected, At: now, Via: viaAbandoned})
	l.note(now, "disconnected", "POST /disconnect")
	return outcome{changed: true}
}

// Abandon gives up on a broken connection now, as AbandonAfter does once
// an episode is that old: the customer's last notice goes out, and
// AbandonNotice later the connection is disconnected at Finch (POST
// /disconnect), unless it was repaired meanwhile. It is for a connection
// the application no longer wants to pay for (the customer left). It
// returns an error, and does nothing, for a connection that is not broken:
// a connection whose token works is never disconnected by the library.
func (t *Transport) Abandon(ctx context.Context, connectionID string) error {
	t.init()
	if err := checkID(connectionID); err != nil {
		return err
	}
	_, l, err := t.load(ctx, connectionID)
	if err != nil {
		return err
	}
	if l.Episode == nil {
		return fmt.Errorf("finchreauth: %s is not broken: only a broken connection is abandoned", quoteID(connectionID))
	}
	_, _, err = t.apply(ctx, connectionID, abandonNow{})
	return err
}

// disconnect carries out an owed disconnect: a last check with Finch, then
// POST /disconnect if it still stands.
func (t *Transport) disconnect(ctx context.Context, conn string, l life, ow owed, base http.RoundTripper) (life, []owed) {
	var more []owed
	if in, err := t.readingErr(ctx, base, conn, l.Token, l.Breaks, ow.Holder, false); err == nil {
		if in.conn != nil && needOf(in.conn.Status) == "" {
			in.probe = t.probe(ctx, base, conn, l.Token, in.conn.Products)
		}
		if next, o, err := t.apply(ctx, conn, in); err == nil {
			l, more = next, o.run
		}
	}
	if _, _, err := t.apply(ctx, conn, disconnecting{holder: ow.Holder}); err != nil {
		return l, more // it no longer stands, or another holds it
	}
	_, err := callHook(t, ctx, "disconnect", subject{conn: conn, fp: l.savedFP()}, func(ctx context.Context) (struct{}, error) {
		if t.apiErr != nil {
			return struct{}{}, t.apiErr
		}
		return struct{}{}, apiErrorOf(t.finch(ctx, base).Disconnect(ctx, string(l.Token)))
	})
	var apiErr *APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized && !apiErr.IsReauth()) {
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedDisconnect, episode: ow.Episode})
		return l, more
	}
	next, o, err := t.apply(context.WithoutCancel(ctx), conn, disconnected{holder: ow.Holder})
	if err != nil {
		return l, more
	}
	return next, append(more, o.run...)
}
