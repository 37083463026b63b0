package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"time"
)

// errSpent is a callback's link state that completed a reconnect, or was
// tried too often; errNoLink a callback without a state whose connection has
// no open episode with a link of this application.
var (
	errSpent  = errors.New("finchreauth: the link's state is spent")
	errNoLink = errors.New("finchreauth: no link of this application is open for the connection")
)

// saving is one save of a token.
type saving struct {
	conn      string
	token     Token
	via       string       // "save" or "callback"
	nonce     string       // the callback's link state
	stateless bool         // a callback that came back without a state
	details   Reconnection // what the callback knows, for OnReconnected
	// by names this save in the record, so that a retry of it finds its
	// own earlier attempt whose answer was lost.
	by string
}

// SaveToken saves tok as the connection's token in the Store, for every
// process that shares it, and ends the connection's episode if one is open
// (OnReconnected is then called). Call it when the application obtains a
// token another way than through CallbackHandler.
//
// Which token wins does not depend on clocks: when the Store holds another
// token and no episode is open (so that token may still work), both are
// asked about at GET /introspect, and tok is refused with ErrStaleToken if
// Finch refuses it but still accepts the saved one.
func (t *Transport) SaveToken(ctx context.Context, connectionID string, tok Token) error {
	t.init()
	if connectionID == "" || tok == "" {
		return errors.New("finchreauth: SaveToken needs a connection id and a token")
	}
	_, err := t.save(ctx, saving{conn: connectionID, token: tok, via: "save"})
	return err
}

// Token returns the connection's saved token, or ErrNotFound.
func (t *Transport) Token(ctx context.Context, connectionID string) (Token, error) {
	t.init()
	r, err := storeStep(t, ctx, subject{conn: connectionID}, func(ctx context.Context, s Store) (Record, error) {
		return s.Get(ctx, connectionID)
	})
	if err == nil && r.Token == "" {
		err = ErrNotFound
	}
	return r.Token, err
}

// save writes s.token and ends the open episode, in one compare-and-set. It
// returns the episode it ended, if any.
func (t *Transport) save(ctx context.Context, s saving) (*ended, error) {
	fp := s.token.Fingerprint()
	by := s.by
	if by == "" {
		by = rand.Text()
	}
	for range maxConflicts {
		r, d, err := t.load(ctx, s.conn)
		if err != nil {
			return nil, err
		}
		if r.Token == s.token {
			// Saved already: by an attempt of this save whose answer was
			// lost, or by another. The attempt that ended the episode
			// announces it.
			if d.Ended != nil && d.Ended.By == by {
				t.reconnected(ctx, s, *d.Ended)
				return d.Ended, nil
			}
			return nil, nil
		}
		if err := d.admit(s); err != nil {
			return nil, err
		}
		if r.Token != "" && d.Episode == nil {
			// The saved token may still work: keep the live one.
			keep, err := t.compete(ctx, s, r.Token)
			if err != nil {
				return nil, err
			}
			if !keep {
				return nil, ErrStaleToken
			}
		}
		r.Token = s.token
		addFingerprint(&r, fp)
		d.Link = nil
		var end *ended
		if e := d.Episode; e != nil {
			end = &ended{Since: r.Since, At: t.now(), Via: s.via, Sent: e.Sent, By: by}
			d.Episode, d.Ended, r.Since, r.Due = nil, end, time.Time{}, time.Time{}
		}
		if _, err := t.put(ctx, r, d); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		t.latch.forget(s.conn)
		if end != nil {
			t.reconnected(ctx, s, *end)
		}
		return end, nil
	}
	return nil, errors.New("finchreauth: the record of " + s.conn + " kept changing")
}

// admit checks that a callback may complete a reconnect with its state, and
// marks the state done.
func (d *recordData) admit(s saving) error {
	switch {
	case s.nonce != "":
		c := d.claim(s.nonce)
		if c == nil || c.Done {
			return errSpent
		}
		c.Done, c.Busy = true, false
	case s.stateless:
		if d.Episode == nil || d.Link == nil {
			return errNoLink
		}
	}
	return nil
}

// compete reports whether tok should replace saved: unless Finch refuses tok
// and still accepts saved.
func (t *Transport) compete(ctx context.Context, s saving, saved Token) (bool, error) {
	alive, err := t.alive(ctx, s.conn, s.token)
	if err != nil || alive {
		return alive, err
	}
	old, err := t.alive(ctx, s.conn, saved)
	return !old, err
}

// alive asks /introspect whether Finch accepts tok.
func (t *Transport) alive(ctx context.Context, conn string, tok Token) (bool, error) {
	c, err := t.introspect(ctx, t.base(), string(tok), subject{conn: conn, fp: tok.Fingerprint()})
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		return false, nil
	case err != nil:
		return false, err
	}
	return c.Status != "reauth", nil
}

// reconnected tells the application, once per episode, that it ended.
func (t *Transport) reconnected(ctx context.Context, s saving, e ended) {
	t.latch.forget(s.conn)
	t.count(ctx, "finchreauth.reconnects", e.Via)
	if t.Metrics != nil {
		t.Metrics.Observe(ctx, "finchreauth.time_to_reconnect", e.At.Sub(e.Since).Seconds())
	}
	if t.OnReconnected == nil {
		return
	}
	r := s.details
	r.ConnectionID, r.Token, r.Via, r.BrokenSince, r.At, r.Notifications = s.conn, s.token, e.Via, e.Since, e.At, e.Sent
	t.goTell(ctx, func(ctx context.Context) {
		step(t, ctx, "reconnected", subject{conn: s.conn}, func(ctx context.Context) (struct{}, error) {
			t.OnReconnected(ctx, r)
			return struct{}{}, nil
		})
	})
}
