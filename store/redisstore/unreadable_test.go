package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
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
// where this Store has none; Redis evicts its hash (allkeys-lru) while the
// indexes still name it. Get of an evicted record is ErrNotFound: the Store
// holds no record of it.
func TestUnreadable(t *testing.T) {
	c := openRedis(t)
	for _, tc := range []struct {
		name           string
		store, replica tokenseal.Sealer
		evict          bool
		says           string
		is             error
	}{
		{"plaintext by a replica without the Sealer", sealerWith(t, 1), nil, false, "stored in plaintext and the Store has a Sealer", nil},
		{"sealed under a dropped key", sealerWith(t, 1), sealerWith(t, 9), false, "unknown key id 9", tokenseal.ErrUnknownKey},
		{"sealed where the Store has no Sealer", nil, sealerWith(t, 1), false, "is sealed and the Store has no Sealer", nil},
		{"evicted", sealerWith(t, 1), nil, true, "", finchreauth.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, c, tc.store)
			replica := &redisstore.Store{Client: c, Prefix: s.Prefix, Sealer: tc.replica}
			var spoiled string
			storetest.Unreadable(t, s, func(ctx context.Context, id string) error {
				spoiled = id
				if tc.evict {
					return c.Del(ctx, s.Prefix+"{finchreauth}:rec:"+id).Err()
				}
				r, err := s.Get(ctx, id)
				if err != nil {
					return err
				}
				_, err = replica.Put(ctx, r)
				return err
			})
			_, err := s.Get(t.Context(), spoiled)
			if err == nil || !strings.Contains(err.Error(), tc.says) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("Get of the spoiled record: %v; want an error saying %q", err, tc.says)
			}
			if !tc.evict && errors.Is(err, finchreauth.ErrNotFound) {
				t.Errorf("Get of the spoiled record: %v; want an error other than ErrNotFound", err)
			}
		})
	}
}

// TestEvictedThenPut: once the Transport writes the connection of an
// evicted record again (Get said ErrNotFound: a Put at Version 0), its
// index entries are right again, and List reads it.
func TestEvictedThenPut(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	at := time.Now().Truncate(time.Microsecond)
	mustPut(t, s, finchreauth.Record{ConnectionID: "conn_a", Since: at, Due: at})
	if err := c.Del(ctx, s.Prefix+"{finchreauth}:rec:conn_a").Err(); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(ctx, finchreauth.Query{DueBy: at, Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Err == nil || !recs[0].Due.Equal(at) || !strings.Contains(recs[0].Err.Error(), "evicted") {
		t.Fatalf("List of an evicted record = %d records, %v; want it with Err and its Due", len(recs), err)
	}
	if _, err := s.Get(ctx, "conn_a"); !errors.Is(err, finchreauth.ErrNotFound) {
		t.Fatalf("Get of an evicted record: %v; want ErrNotFound", err)
	}
	mustPut(t, s, finchreauth.Record{ConnectionID: "conn_a"})
	for _, q := range []finchreauth.Query{{Limit: 10}, {DueBy: at, Limit: 10}} {
		if recs, err := s.List(ctx, q); err != nil || len(recs) != 0 {
			t.Errorf("List(%+v) after the Put = %d records, %v; want none", q, len(recs), err)
		}
	}
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
// short, with its control and bidi characters escaped: a 1 MiB id makes a
// short error that cannot reach a terminal as escape sequences.
func TestHostileIDs(t *testing.T) {
	c := openRedis(t)
	ctx := t.Context()
	id := hostileID(1 << 20)
	sealed := newStore(t, c, testSealer(t))
	at := time.Now().Truncate(time.Microsecond)
	mustPut(t, sealed, finchreauth.Record{ConnectionID: id, Token: "tok-" + finchreauth.Token(randHex(8)), Since: at, Due: at})
	plain := &redisstore.Store{Client: c, Prefix: sealed.Prefix}
	_, err := plain.Get(ctx, id)
	checkHostileError(t, "Get", err)
	recs, err := plain.List(ctx, finchreauth.Query{Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %d records, %.200q; want the unreadable one", len(recs), fmt.Sprint(err))
	}
	checkHostileError(t, "List's Err", recs[0].Err)
	if err := c.Del(ctx, sealed.Prefix+"{finchreauth}:rec:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	recs, err = plain.List(ctx, finchreauth.Query{DueBy: at, Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %d records, %.200q; want the evicted one", len(recs), fmt.Sprint(err))
	}
	checkHostileError(t, "List's Err, evicted", recs[0].Err)
	_, err = plain.Put(ctx, finchreauth.Record{ConnectionID: id, Due: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)})
	checkHostileError(t, "Put out of range", err)
}
