package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
)

// SaveToken saves tok as the connection's token in the Store, for every
// process that shares it. Call it to import the tokens the application holds
// (a token the Store knows is one the Transport can tell apart from its old
// copies), and when the application obtains a token another way than
// through CallbackHandler.
//
// Which token wins does not depend on clocks or on the episode: tok replaces
// the saved token only if Finch accepts it (asked at GET /introspect, and
// with a data call, when it matters); otherwise SaveToken returns
// ErrStaleToken and keeps the saved one. When the connection's
// episode is open, tok ends it only if Finch accepts it (OnReconnected is
// then called); if Finch cannot be asked, tok is kept and checked later.
func (t *Transport) SaveToken(ctx context.Context, connectionID string, tok Token) error {
	t.init()
	if err := checkID(connectionID); err != nil {
		return err
	}
	if tok == "" {
		return errors.New("finchreauth: SaveToken needs a token")
	}
	_, _, err := t.save(ctx, connectionID, saved{token: tok, via: "save", holder: rand.Text()}, carrier{})
	return err
}

// Token returns the connection's saved token: the one the application must
// use. It is the token of the last reconnect on any replica, the one the
// application saved, or the one its calls carried when Finch first refused
// them. It returns ErrNotFound when the Store holds none.
func (t *Transport) Token(ctx context.Context, connectionID string) (Token, error) {
	t.init()
	if err := checkID(connectionID); err != nil {
		return "", err
	}
	r, err := storeCall(t, ctx, subject{conn: connectionID}, func(ctx context.Context, s Store) (Record, error) {
		return s.Get(ctx, connectionID)
	})
	if err == nil && r.Token == "" {
		err = ErrNotFound
	}
	return r.Token, err
}

// save offers in.token as conn's token. When the rules need Finch's word on
// the offered token it asks, and steps again. What the save owes (its announcement) is carried out detached; the
// outcome's run says what that was.
func (t *Transport) save(ctx context.Context, conn string, in saved, c carrier) (life, outcome, error) {
	var askErr error
	for range 2 {
		l, o, err := t.apply(ctx, conn, in)
		if !errors.Is(err, errNeedCheck) {
			if err == nil && len(o.run) > 0 {
				t.goTell(ctx, func(ctx context.Context) { t.carry(ctx, conn, l, o.run, c) })
			}
			return l, o, err
		}
		if askErr != nil {
			return l, o, askErr // Finch could not say, and the rules need it to
		}
		v, conn2, err := t.verdict(ctx, conn, in.token)
		if err != nil {
			askErr, in.unverified = err, in.offered == nil
			continue
		}
		in.offered, in.conn = v, conn2
	}
	return life{}, outcome{}, errors.New("finchreauth: the save of a token could not settle which token works")
}

// verdict asks Finch whether it accepts tok: /introspect, and a data call
// made with tok unless /introspect refused it (/introspect may answer for a
// token a reconnect replaced). The verdict's Via is "inconclusive" when
// Finch's answers say nothing of the token: a connection in
// error_no_account_setup or error_permissions refuses every token alike.
// It returns what /introspect said of the connection too.
func (t *Transport) verdict(ctx context.Context, conn string, tok Token) (*verdict, *Connection, error) {
	r, ok := t.reading(ctx, t.base(), conn, tok, -1, "")
	switch {
	case !ok:
		return nil, nil, errors.New("finchreauth: Finch could not be asked about token " + tok.Fingerprint())
	case r.refused, needOf(r.conn.Status) == statusReauth:
		return &verdict{FP: r.fp, At: r.at, Via: "introspect"}, r.conn, nil
	}
	v := &verdict{FP: r.fp, Works: needOf(r.conn.Status) == "", At: r.at, Via: "introspect"}
	switch works := t.probe(ctx, t.base(), conn, tok, r.conn.Products); {
	case works != nil:
		v.Works, v.Via = *works, "probe"
	case !v.Works:
		v.Via = "inconclusive"
	}
	return v, r.conn, nil
}
