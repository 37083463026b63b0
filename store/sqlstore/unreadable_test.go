package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
)

// sealerWith seals under a key of the given id (its secret made of it).
func sealerWith(t testing.TB, id byte) *tokenseal.AESGCM {
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: id, Secret: bytes.Repeat([]byte{id}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUnreadable: a record the Store cannot read costs that record alone,
// through a Transport (see storetest.Unreadable), whichever makes it
// unreadable: a replica without the Sealer writes its token in plaintext
// (while sealing is rolled out); a replica seals it under a key this Store
// does not hold (a key dropped too early); a replica with a Sealer seals it
// where this Store has none.
func TestUnreadable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		for _, c := range []struct {
			name           string
			store, replica tokenseal.Sealer
			says           string
			is             error
		}{
			{"plaintext by a replica without the Sealer", sealerWith(t, 1), nil, "stored in plaintext and the Store has a Sealer", nil},
			{"sealed under a dropped key", sealerWith(t, 1), sealerWith(t, 9), "unknown key id 9", tokenseal.ErrUnknownKey},
			{"sealed where the Store has no Sealer", nil, sealerWith(t, 1), "is sealed and the Store has no Sealer", nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := newStore(t, db, d, c.store)
				replica := &sqlstore.Store{DB: db, Dialect: d, Table: s.Table, Sealer: c.replica}
				var spoiled string
				storetest.Unreadable(t, s, func(ctx context.Context, id string) error {
					spoiled = id
					return rewrite(ctx, s, replica, id)
				})
				_, err := s.Get(t.Context(), spoiled)
				if err == nil || errors.Is(err, finchreauth.ErrNotFound) || !strings.Contains(err.Error(), c.says) || (c.is != nil && !errors.Is(err, c.is)) {
					t.Errorf("Get of the spoiled record: %v; want an error saying %q", err, c.says)
				}
			})
		}
	})
}

// rewrite has replica write the record of id again, as s reads it: with
// replica's Sealer, or in plaintext if it has none.
func rewrite(ctx context.Context, s, replica finchreauth.Store, id string) error {
	r, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	_, err = replica.Put(ctx, r)
	return err
}

// hostileID is a connection id that would write to a terminal, reverse
// the text after it, and fill n bytes.
func hostileID(n int) string {
	id := "conn\x1b]0;owned\x07\x1b[2J\u202egnp.exe\r\n"
	return id + strings.Repeat("x", n-len(id))
}

// checkHostileError checks that err, about a hostile id, is short and
// carries no control or format (bidi) character.
func checkHostileError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	msg := err.Error()
	if len(msg) > 400 {
		t.Errorf("%s: the error is %d bytes: %.200q...", what, len(msg), msg)
	}
	for _, r := range msg {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s: the error holds %U: %.200q", what, r, msg)
			break
		}
	}
}

// TestHostileIDs: the errors that name a connection quote its id, cut
// short, with its control and bidi characters escaped: a 1 MiB id (2,000
// bytes on PostgreSQL, whose index entries are smaller) makes a short
// error that cannot reach a terminal as escape sequences.
func TestHostileIDs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		n := 1 << 20
		if d == sqlstore.Postgres {
			n = 2000
		}
		id := hostileID(n)
		sealed := newStore(t, db, d, sealerWith(t, 1))
		if _, err := sealed.Put(ctx, finchreauth.Record{ConnectionID: id, Token: "tok-" + finchreauth.Token(randHex(8)), Since: usec(0)}); err != nil {
			t.Fatal(err)
		}
		plain := &sqlstore.Store{DB: db, Dialect: d, Table: sealed.Table}
		_, err := plain.Get(ctx, id)
		checkHostileError(t, "Get", err)
		recs, err := plain.List(ctx, finchreauth.Query{Limit: 10})
		if err != nil || len(recs) != 1 {
			t.Fatalf("List = %d records, %.200q; want the unreadable one", len(recs), fmt.Sprint(err))
		}
		checkHostileError(t, "List's Err", recs[0].Err)
		_, err = plain.Put(ctx, finchreauth.Record{ConnectionID: id, Version: 7})
		if !errors.Is(err, finchreauth.ErrConflict) {
			t.Errorf("Put at a wrong Version: %v; want ErrConflict", err)
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		for _, fail := range []struct {
			what string
			err  error
		}{
			{"Get, cancelled", func() error { _, err := sealed.Get(done, id); return err }()},
			{"Lookup of a bad fingerprint", func() error {
				_, err := (&sqlstore.Store{DB: db, Dialect: d, Table: "nope_" + randHex(4)}).Lookup(ctx, id)
				return err
			}()},
		} {
			checkHostileError(t, fail.what, fail.err)
		}
	})
}
