package redisstore_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// envRedis names the variable holding the address of the Redis server the
// tests use; unset, they skip. .ci/stores sets it.
const envRedis = "FINCHREAUTH_REDIS_ADDR"

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func testSealer(testing.TB) tokenseal.Sealer {
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err) // a constant key of the right length
	}
	return s
}

// openRedis connects to FINCHREAUTH_REDIS_ADDR, or skips.
func openRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("%s is not set: skipping the Redis tests (.ci/stores sets it, e.g. 127.0.0.1:6379)", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("%s is set but Redis does not answer: %v", envRedis, err)
	}
	return c
}

// newStore returns a Store under a prefix of its own, whose keys are deleted
// when the test ends.
func newStore(t testing.TB, c *redis.Client, sealer tokenseal.Sealer) *redisstore.Store {
	t.Helper()
	s := &redisstore.Store{Client: c, Prefix: "finchreauth-test-" + randHex(6) + ":", Sealer: sealer}
	t.Cleanup(func() { deletePrefix(t, c, s.Prefix) })
	return s
}

// keysUnder returns every key that starts with prefix (which holds no glob
// characters).
func keysUnder(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}

func deletePrefix(t testing.TB, c *redis.Client, prefix string) {
	if keys := keysUnder(t, c, prefix); len(keys) > 0 {
		if err := c.Unlink(context.Background(), keys...).Err(); err != nil {
			t.Errorf("deleting the test keys: %v", err)
		}
	}
}

// both runs f against a Store without a Sealer and one with.
func both(t *testing.T, f func(t *testing.T, c *redis.Client, s *redisstore.Store)) {
	c := openRedis(t)
	for _, sealed := range []bool{false, true} {
		name, sealer := "plain", tokenseal.Sealer(nil)
		if sealed {
			name, sealer = "sealed", testSealer(t)
		}
		t.Run(name, func(t *testing.T) { f(t, c, newStore(t, c, sealer)) })
	}
}

// equalRecords compares records as the contract does: times as instants.
func equalRecords(a, b finchreauth.Record) bool {
	return a.ConnectionID == b.ConnectionID && a.Version == b.Version && a.Token == b.Token &&
		slices.Equal(a.Fingerprints, b.Fingerprints) && a.Since.Equal(b.Since) && a.Due.Equal(b.Due) &&
		bytes.Equal(a.Data, b.Data)
}

// show prints a record without its token.
func show(r finchreauth.Record) string {
	return fmt.Sprintf("{%q v%d %v fps=%q since=%s due=%s data=%q}", r.ConnectionID, r.Version, r.Token,
		r.Fingerprints, r.Since.Format(time.RFC3339Nano), r.Due.Format(time.RFC3339Nano), r.Data)
}

func mustPut(t testing.TB, s finchreauth.Store, r finchreauth.Record) int64 {
	t.Helper()
	v, err := s.Put(context.Background(), r)
	if err != nil {
		t.Fatalf("Put %s: %v", show(r), err)
	}
	return v
}

// TestRoundTrip: Get gives back every field of the last Put, with its
// Version; a later Put that clears fields clears them.
func TestRoundTrip(t *testing.T) {
	both(t, func(t *testing.T, c *redis.Client, s *redisstore.Store) {
		ctx := t.Context()
		tokyo := time.FixedZone("JST", 9*3600)
		rec := finchreauth.Record{
			ConnectionID: "conn é\x00\xff " + randHex(4),
			Token:        finchreauth.Token("secret-" + randHex(16)),
			Fingerprints: []string{"fp1", "fp with space", "7:colon:", "\x00\xff"},
			Since:        time.Date(2026, 3, 1, 12, 0, 0, 123456000, tokyo),
			Due:          time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC).Add(-2 * time.Microsecond),
			Data:         []byte("{\"x\":1}\x00\xff\xfe invalid utf-8"),
		}
		if _, err := s.Get(ctx, rec.ConnectionID); !errors.Is(err, finchreauth.ErrNotFound) {
			t.Fatalf("Get before any Put: %v; want ErrNotFound", err)
		}
		rec.Version = mustPut(t, s, rec)
		if rec.Version != 1 {
			t.Errorf("first Put returned version %d; want 1", rec.Version)
		}
		got, err := s.Get(ctx, rec.ConnectionID)
		if err != nil || !equalRecords(got, rec) {
			t.Fatalf("Get = %s, %v; want %s", show(got), err, show(rec))
		}
		cleared := finchreauth.Record{ConnectionID: rec.ConnectionID, Version: rec.Version}
		cleared.Version = mustPut(t, s, cleared)
		if cleared.Version != 2 {
			t.Errorf("second Put returned version %d; want 2", cleared.Version)
		}
		got, err = s.Get(ctx, rec.ConnectionID)
		if err != nil || !equalRecords(got, cleared) {
			t.Fatalf("Get after clearing = %s, %v; want %s", show(got), err, show(cleared))
		}
		h, err := c.HGetAll(ctx, s.Prefix+"{finchreauth}:rec:"+rec.ConnectionID).Result()
		if err != nil || len(h) != 1 || h["version"] != "2" {
			t.Errorf("the cleared hash holds %d fields (%v); want only version 2", len(h), err)
		}
		for _, index := range []string{"since", "due"} {
			if n, err := c.ZCard(ctx, s.Prefix+"{finchreauth}:"+index).Result(); err != nil || n != 0 {
				t.Errorf("ZCARD %s after clearing = %d, %v; want 0", index, n, err)
			}
		}
	})
}

// TestConflict: a Put with a Version that is not the stored one changes
// nothing, and of concurrent Puts with one Version exactly one succeeds.
func TestConflict(t *testing.T) {
	both(t, func(t *testing.T, c *redis.Client, s *redisstore.Store) {
		ctx := t.Context()
		rec := finchreauth.Record{ConnectionID: "conn_" + randHex(4), Token: "tok-" + finchreauth.Token(randHex(8)), Fingerprints: []string{"a"}, Since: time.Now().Truncate(time.Microsecond)}
		rec.Version = mustPut(t, s, rec)
		before := keysUnder(t, c, s.Prefix)
		for _, v := range []int64{0, 2, -1} {
			bad := finchreauth.Record{ConnectionID: rec.ConnectionID, Version: v, Token: "other", Fingerprints: []string{"b"}, Due: time.Now()}
			if _, err := s.Put(ctx, bad); !errors.Is(err, finchreauth.ErrConflict) {
				t.Errorf("Put with version %d over version 1: %v; want ErrConflict", v, err)
			}
		}
		if got, err := s.Get(ctx, rec.ConnectionID); err != nil || !equalRecords(got, rec) {
			t.Errorf("after the conflicts Get = %s, %v; want %s", show(got), err, show(rec))
		}
		if after := keysUnder(t, c, s.Prefix); !slices.Equal(before, after) {
			t.Errorf("the conflicts changed the keys: %q, then %q", before, after)
		}

		for _, version := range []int64{0, 1} {
			conn := "race_" + randHex(4)
			if version == 1 {
				mustPut(t, s, finchreauth.Record{ConnectionID: conn})
			}
			const n = 64
			var won, lost atomic.Int64
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-gate
					v, err := s.Put(ctx, finchreauth.Record{ConnectionID: conn, Version: version, Data: fmt.Appendf(nil, "%d", i)})
					switch {
					case err == nil && v == version+1:
						won.Add(1)
					case errors.Is(err, finchreauth.ErrConflict):
						lost.Add(1)
					default:
						t.Errorf("Put = %d, %v", v, err)
					}
				})
			}
			close(gate)
			wg.Wait()
			if won.Load() != 1 || lost.Load() != n-1 {
				t.Errorf("%d concurrent Puts with version %d: %d won, %d conflicted; want 1 and %d", n, version, won.Load(), lost.Load(), n-1)
			}
		}
	})
}

// TestLookup: every fingerprint a Put listed finds its connection, after
// later Puts that no longer list it too.
func TestLookup(t *testing.T) {
	both(t, func(t *testing.T, c *redis.Client, s *redisstore.Store) {
		ctx := t.Context()
		a, b := "conn_a_"+randHex(4), "conn_b_"+randHex(4)
		v := mustPut(t, s, finchreauth.Record{ConnectionID: a, Fingerprints: []string{"f1", "f2"}})
		mustPut(t, s, finchreauth.Record{ConnectionID: a, Version: v, Fingerprints: []string{"f3"}})
		mustPut(t, s, finchreauth.Record{ConnectionID: b, Fingerprints: []string{"f4"}})
		for fp, want := range map[string]string{"f1": a, "f2": a, "f3": a, "f4": b} {
			if got, err := s.Lookup(ctx, fp); err != nil || got != want {
				t.Errorf("Lookup(%q) = %q, %v; want %q", fp, got, err, want)
			}
		}
		if got, err := s.Lookup(ctx, "never"); !errors.Is(err, finchreauth.ErrNotFound) {
			t.Errorf("Lookup of an unknown fingerprint = %q, %v; want ErrNotFound", got, err)
		}
	})
}

// TestList compares List with MemoryStore's on random records, many of
// them at the same instants, with ids whose byte order differs from other
// collations, over every page size.
func TestList(t *testing.T) {
	both(t, func(t *testing.T, c *redis.Client, s *redisstore.Store) {
		ctx := t.Context()
		oracle := new(finchreauth.MemoryStore)
		ids := []string{"B", "a", "b", "Z", "ä", "a\x00", "a\x00\x01", "\xff", "\x7f", "é", "e", "A", "aa", "a b", "_", "-", "0", "9"}
		for i := range 30 {
			ids = append(ids, fmt.Sprintf("conn_%02d", i))
		}
		base := time.Now().Truncate(time.Microsecond)
		at := func(r *mrand.Rand) time.Time {
			switch r.IntN(4) {
			case 0:
				return time.Time{}
			case 1:
				return base // a tie
			}
			return base.Add(time.Duration(r.IntN(5)-2) * time.Microsecond)
		}
		r := mrand.New(mrand.NewPCG(1, 2))
		versions := map[string]int64{}
		for range 3 { // each id written several times: the indexes follow
			for _, id := range ids {
				rec := finchreauth.Record{ConnectionID: id, Version: versions[id], Since: at(r), Due: at(r), Token: finchreauth.Token("t" + id)}
				v := mustPut(t, s, rec)
				if w, err := oracle.Put(ctx, rec); err != nil || w != v {
					t.Fatalf("MemoryStore.Put = %d, %v; Store.Put %d", w, err, v)
				}
				versions[id] = v
			}
		}
		queries := []finchreauth.Query{{}, {DueBy: base}, {DueBy: base.Add(time.Microsecond)}, {DueBy: base.Add(-3 * time.Microsecond)}, {DueBy: base.Add(time.Hour)}}
		for _, q := range queries {
			for limit := 1; limit <= len(ids)+1; limit++ {
				q := q
				q.Limit = limit
				var pages, want []finchreauth.Record
				for {
					got, err := s.List(ctx, q)
					if err != nil {
						t.Fatalf("List(%+v): %v", q, err)
					}
					exp, _ := oracle.List(ctx, q)
					if len(got) != len(exp) {
						t.Fatalf("List(DueBy %v, after %v %q, limit %d) returned %d records; MemoryStore %d",
							!q.DueBy.IsZero(), q.AfterTime, q.AfterID, limit, len(got), len(exp))
					}
					pages, want = append(pages, got...), append(want, exp...)
					if len(got) < limit {
						break
					}
					if len(pages) > len(ids) {
						t.Fatalf("paging by %d returned %d records of %d", limit, len(pages), len(ids))
					}
					last := got[len(got)-1]
					q.AfterTime, q.AfterID = last.Since, last.ConnectionID
					if !q.DueBy.IsZero() {
						q.AfterTime = last.Due
					}
				}
				if len(pages) != len(want) {
					t.Fatalf("paging by %d: %d records; want %d", limit, len(pages), len(want))
				}
				for i := range pages {
					if !equalRecords(pages[i], want[i]) {
						t.Fatalf("paging by %d (DueBy %v), record %d: %s; MemoryStore %s", limit, !q.DueBy.IsZero(), i, show(pages[i]), show(want[i]))
					}
				}
			}
		}
		// Cursors between the records and bounds between microseconds, and a
		// cursor past the DueBy.
		for _, q := range []finchreauth.Query{
			{AfterTime: base.Add(500 * time.Nanosecond), AfterID: "", Limit: 100},
			{AfterTime: base.Add(-500 * time.Nanosecond), AfterID: "zzz", Limit: 100},
			{DueBy: base.Add(500 * time.Nanosecond), Limit: 100},
			{DueBy: base.Add(-500 * time.Nanosecond), Limit: 100},
			{DueBy: base.Add(time.Microsecond), AfterTime: base.Add(time.Nanosecond), AfterID: "a", Limit: 100},
			{AfterTime: base, AfterID: "a\x00\x00", Limit: 100},
			{AfterTime: base.Add(-time.Microsecond), AfterID: "zzz", Limit: 100},
			{DueBy: base, AfterTime: base.Add(time.Microsecond), Limit: 100},
			{DueBy: base.Add(time.Microsecond), AfterTime: base, AfterID: "", Limit: 100},
		} {
			got, err := s.List(ctx, q)
			exp, _ := oracle.List(ctx, q)
			if err != nil || len(got) != len(exp) {
				t.Fatalf("List(%v %q) = %d records, %v; want %d", q.AfterTime, q.AfterID, len(got), err, len(exp))
			}
			for i := range got {
				if !equalRecords(got[i], exp[i]) {
					t.Errorf("List(%v %q)[%d] = %s; want %s", q.AfterTime, q.AfterID, i, show(got[i]), show(exp[i]))
				}
			}
		}
	})
}

// TestListConsistent: records rewritten while List runs come back as
// they are, in order, each once.
func TestListConsistent(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	base := time.Now().Truncate(time.Microsecond)
	const n = 50
	for i := range n {
		mustPut(t, s, finchreauth.Record{ConnectionID: fmt.Sprintf("c%02d", i), Since: base, Due: base})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("c%02d", i%n)
			r, err := s.Get(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			r.Since = base.Add(time.Duration(i%7) * time.Microsecond)
			r.Data = fmt.Appendf(nil, "%d", r.Since.UnixMicro())
			if _, err := s.Put(ctx, r); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 200 {
		recs, err := s.List(ctx, finchreauth.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != n {
			t.Fatalf("List returned %d records; want %d", len(recs), n)
		}
		for i, r := range recs {
			if len(r.Data) > 0 && string(r.Data) != fmt.Sprint(r.Since.UnixMicro()) {
				t.Fatalf("record %s has Since %d and data %q: not one write", r.ConnectionID, r.Since.UnixMicro(), r.Data)
			}
			if i > 0 && cmp.Or(recs[i-1].Since.Compare(r.Since), strings.Compare(recs[i-1].ConnectionID, r.ConnectionID)) >= 0 {
				t.Fatalf("List out of order at %d: %s then %s", i, show(recs[i-1]), show(r))
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestBadCalls: a done context fails with its error before Redis is asked;
// empty ids, a non-positive Limit and out-of-range times are errors.
func TestBadCalls(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, nil)
	done, cancel := context.WithCancel(t.Context())
	cancel()
	rec := finchreauth.Record{ConnectionID: "c"}
	_, err1 := s.Get(done, "c")
	_, err2 := s.Put(done, rec)
	_, err3 := s.Lookup(done, "f")
	_, err4 := s.List(done, finchreauth.Query{Limit: 1})
	err5 := s.Migrate(done)
	for i, err := range []error{err1, err2, err3, err4, err5} {
		if err != context.Canceled {
			t.Errorf("call %d with a cancelled context: %v; want context.Canceled", i+1, err)
		}
	}
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := s.Get(expired, "c"); err != context.DeadlineExceeded {
		t.Errorf("Get with an expired context: %v; want context.DeadlineExceeded", err)
	}

	ctx := t.Context()
	_, err1 = s.Get(ctx, "")
	_, err2 = s.Put(ctx, finchreauth.Record{})
	_, err3 = s.Put(ctx, finchreauth.Record{ConnectionID: "c", Fingerprints: []string{"f", ""}})
	_, err4 = s.Lookup(ctx, "")
	for i, err := range []error{err1, err2, err3, err4} {
		if err == nil || errors.Is(err, finchreauth.ErrNotFound) || !strings.HasPrefix(err.Error(), "redisstore: ") {
			t.Errorf("call %d with an empty id: %v; want a redisstore error other than ErrNotFound", i+1, err)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.List(ctx, finchreauth.Query{Limit: limit}); err == nil {
			t.Errorf("List with Limit %d succeeded", limit)
		}
	}
	for _, tm := range []time.Time{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := s.Put(ctx, finchreauth.Record{ConnectionID: "c", Due: tm}); err == nil || !strings.Contains(err.Error(), "outside the years") {
			t.Errorf("Put with Due %v: %v; want an error", tm, err)
		}
	}
	if keys := keysUnder(t, c, s.Prefix); len(keys) != 0 {
		t.Errorf("the failed calls wrote %q", keys)
	}
	// Far cursors and bounds are no error.
	for _, q := range []finchreauth.Query{
		{DueBy: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1},
		{DueBy: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1},
		{AfterTime: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1},
		{AfterTime: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1},
	} {
		if _, err := s.List(ctx, q); err != nil {
			t.Errorf("List(%+v): %v", q, err)
		}
	}
}

func TestZeroStore(t *testing.T) {
	var s redisstore.Store
	_, err1 := s.Get(t.Context(), "c")
	_, err2 := s.Put(t.Context(), finchreauth.Record{ConnectionID: "c"})
	_, err3 := s.Lookup(t.Context(), "f")
	_, err4 := s.List(t.Context(), finchreauth.Query{Limit: 1})
	err5 := s.Migrate(t.Context())
	for i, err := range []error{err1, err2, err3, err4, err5} {
		if err == nil || err.Error() != "redisstore: Store's Client is nil" {
			t.Errorf("call %d on the zero Store: %v", i+1, err)
		}
	}
}

// hashTagOf returns what Redis Cluster hashes of key: the bytes between the
// first "{" and the first "}" after it, if any, else the whole key.
func hashTagOf(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestLayout: every key of a Store is under its Prefix and in one Cluster
// slot; a Prefix's own hash tag picks the slot; an empty tag is refused.
func TestLayout(t *testing.T) {
	c := openRedis(t)
	ctx := t.Context()
	for _, tc := range []struct{ prefix, tag string }{
		{"finchreauth-test-" + randHex(6) + ":", "finchreauth"},
		{"finchreauth-test-" + randHex(6) + ":{mine}:", "mine"},
		{"finchreauth-test-" + randHex(6) + ":{", "{finchreauth"},
	} {
		s := &redisstore.Store{Client: c, Prefix: tc.prefix}
		t.Cleanup(func() { deletePrefix(t, c, strings.TrimSuffix(tc.prefix, "{")) })
		v := mustPut(t, s, finchreauth.Record{ConnectionID: "c{1}", Fingerprints: []string{"f}1", "f2"}, Since: time.Now(), Due: time.Now(), Token: "x"})
		mustPut(t, s, finchreauth.Record{ConnectionID: "c{1}", Version: v, Since: time.Now()})
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		base := tc.prefix + "{finchreauth}:"
		// The due index went with its last member.
		want := []string{base + "all", base + "fp:f2", base + "fp:f}1", base + "rec:c{1}", base + "schema", base + "since"}
		slices.Sort(want)
		got := keysUnder(t, c, strings.TrimSuffix(tc.prefix, "{"))
		if !slices.Equal(got, want) {
			t.Errorf("keys %q; want %q", got, want)
		}
		for _, k := range got {
			if tag := hashTagOf(k); tag != tc.tag {
				t.Errorf("key %q hashes %q; want %q", k, tag, tc.tag)
			}
		}
		if n, _ := c.ZCard(ctx, base+"due").Result(); n != 0 {
			t.Errorf("the due index holds %d members after Due was cleared", n)
		}
	}
	s := &redisstore.Store{Client: c, Prefix: "finchreauth-test-{}:"}
	if _, err := s.Put(ctx, finchreauth.Record{ConnectionID: "c"}); err == nil || !strings.Contains(err.Error(), "empty hash tag") {
		t.Errorf("Put with an empty hash tag in the Prefix: %v", err)
	}
}

// TestDefaultPrefix: with no Prefix, a connection's record is the hash
// "finchreauth:{finchreauth}:rec:<connection id>".
func TestDefaultPrefix(t *testing.T) {
	c := openRedis(t)
	s := &redisstore.Store{Client: c}
	conn, fp := "conn_test_"+randHex(8), "fp_test_"+randHex(8)
	key := "finchreauth:{finchreauth}:rec:" + conn
	t.Cleanup(func() { c.Del(context.Background(), key, "finchreauth:{finchreauth}:fp:"+fp) })
	if _, err := s.Put(t.Context(), finchreauth.Record{ConnectionID: conn, Fingerprints: []string{fp}}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(t.Context(), key).Result(); err != nil || n != 1 {
		t.Errorf("EXISTS %s = %d, %v; want 1", key, n, err)
	}
}

// TestSealedAtRest reads the hashes behind the Store's back.
func TestSealedAtRest(t *testing.T) {
	ctx := t.Context()
	c := openRedis(t)
	s := newStore(t, c, testSealer(t))
	rec := func(s *redisstore.Store, id string) string { return s.Prefix + "{finchreauth}:rec:" + id }
	a := finchreauth.Record{ConnectionID: "conn_a", Token: finchreauth.Token("secret-a-" + randHex(16))}
	b := finchreauth.Record{ConnectionID: "conn_b", Token: finchreauth.Token("secret-b-" + randHex(16))}
	for _, r := range []finchreauth.Record{a, b} {
		mustPut(t, s, r)
	}
	raw, err := c.HGet(ctx, rec(s, "conn_a"), "token").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(a.Token)) {
		t.Fatalf("Redis holds token %s in clear", a.Token.Fingerprint())
	}

	// Without the Sealer, the sealed token is not readable, and never
	// returned as the token.
	plain := &redisstore.Store{Client: c, Prefix: s.Prefix}
	if got, err := plain.Get(ctx, "conn_a"); err == nil || !strings.Contains(err.Error(), "sealed and the Store has no Sealer") || got.Token != "" {
		t.Errorf("Get of a sealed token without a Sealer = %v, %v; want an error", got.Token, err)
	}
	if _, err := plain.List(ctx, finchreauth.Query{Limit: 1}); err != nil {
		t.Errorf("List of no record: %v", err)
	}

	// A sealed token copied to another connection does not open.
	if err := c.HSet(ctx, rec(s, "conn_b"), "token", raw).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "conn_b"); !errors.Is(err, tokenseal.ErrOpen) {
		t.Errorf("Get of a record holding another connection's sealed token: %v; want tokenseal.ErrOpen", err)
	}

	// A token stored in plaintext is refused by a Store with a Sealer,
	// until Migrate seals it.
	c0 := finchreauth.Record{ConnectionID: "conn_c", Token: finchreauth.Token("secret-c-" + randHex(16)), Since: time.Now().Truncate(time.Microsecond)}
	c0.Version = mustPut(t, plain, c0)
	if _, err := s.Get(ctx, "conn_c"); err == nil || !strings.Contains(err.Error(), "stored in plaintext") {
		t.Errorf("Get of a plaintext token with a Sealer: %v; want an error", err)
	}
	// List returns it in its place, unread: its id, its Since and why.
	if recs, err := s.List(ctx, finchreauth.Query{Limit: 10}); err != nil || len(recs) != 1 || recs[0].Err == nil || recs[0].Token != "" ||
		!recs[0].Since.Equal(c0.Since) || !strings.Contains(recs[0].Err.Error(), "stored in plaintext") {
		t.Errorf("List of a plaintext token with a Sealer = %d records, %v; want conn_c, unread, with Err set", len(recs), err)
	}
	if n, _ := c.SCard(ctx, s.Prefix+"{finchreauth}:plaintext").Result(); n != 1 {
		t.Errorf("the plaintext set holds %d records; want 1", n)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "conn_c")
	if err != nil || !equalRecords(got, c0) {
		t.Fatalf("Get after Migrate sealed the token = %s, %v; want %s", show(got), err, show(c0))
	}
	if raw, _ := c.HGet(ctx, rec(s, "conn_c"), "token").Bytes(); bytes.Contains(raw, []byte(c0.Token)) {
		t.Errorf("Migrate with a Sealer left token %s in clear", c0.Token.Fingerprint())
	}
	if n, _ := c.Exists(ctx, s.Prefix+"{finchreauth}:plaintext").Result(); n != 0 {
		t.Errorf("the plaintext set outlived its last record")
	}
	if recs, err := plain.List(ctx, finchreauth.Query{Limit: 10}); err != nil || len(recs) != 1 || recs[0].Err == nil || recs[0].Token != "" ||
		!strings.Contains(recs[0].Err.Error(), "sealed and the Store has no Sealer") {
		t.Errorf("List of a sealed record without a Sealer = %d records, %v; want conn_c, unread, with Err set", len(recs), err)
	}
}

// failingSealer fails every call.
type failingSealer struct{}

func (failingSealer) Seal([]byte, []byte) ([]byte, error) { return nil, errors.New("no key") }
func (failingSealer) Open([]byte, []byte) ([]byte, error) { return nil, errors.New("no key") }

// TestErrorsHideTokens: an error about a token names it by fingerprint.
func TestErrorsHideTokens(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, failingSealer{})
	tok := finchreauth.Token("secret-" + randHex(16))
	_, err := s.Put(t.Context(), finchreauth.Record{ConnectionID: "c", Token: tok})
	if err == nil || strings.Contains(err.Error(), string(tok)) || !strings.Contains(err.Error(), tok.Fingerprint()) {
		t.Errorf("Put with a failing Sealer: %v; want an error naming the token by fingerprint", err)
	}
	plain := &redisstore.Store{Client: c, Prefix: s.Prefix}
	mustPut(t, plain, finchreauth.Record{ConnectionID: "c", Token: tok})
	if err := c.HSet(t.Context(), s.Prefix+"{finchreauth}:rec:c", "sealed", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "c"); err == nil || strings.Contains(err.Error(), string(tok)) {
		t.Errorf("Get with a failing Sealer: %v", err)
	}
}
