package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// The fixture: the earlier layout, written by the earlier redisstore's own
// scripts (copied from its scripts.go as they were), one hash per key at
// prefix + key, where key is a connection id or "fp:" + fingerprint.

// oldMarkScript decided MarkReauth. KEYS[1]: the hash. ARGV: connection id,
// token fingerprint, episode, At and LeaseUntil (microseconds; "" for the
// zero time).
var oldMarkScript = redis.NewScript(`
local h = KEYS[1]
local conn, fp, episode, at, until_ = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local f = redis.call('HMGET', h, 'nr', 'ntf', 'lease', 'conn', 'sup', 'fp')
if fp ~= '' and f[5] and string.find(' ' .. f[5] .. ' ', ' ' .. fp .. ' ', 1, true) then
	return {'stale'}
end
local outcome = 'none'
if f[1] ~= '1' then
	redis.call('HSET', h, 'nr', '1', 'ep', episode, 'since', at, 'ntf', '0')
	outcome = 'start'
elseif f[2] ~= '1' and (not f[3] or f[3] == '' or at == '' or tonumber(f[3]) <= tonumber(at)) then
	outcome = 'lease'
end
if outcome ~= 'none' then
	if until_ == '' then
		redis.call('HDEL', h, 'lease')
	else
		redis.call('HSET', h, 'lease', until_)
	end
end
if (not f[4] or f[4] == '') and conn ~= '' then
	redis.call('HSET', h, 'conn', conn)
end
-- A key that knows no token takes the marked one's fingerprint, so that
-- the SaveToken ending the episode supersedes it.
if (not f[6] or f[6] == '') and fp ~= '' then
	redis.call('HSET', h, 'fp', fp)
end
local r = redis.call('HMGET', h, 'ep', 'since', 'ntf')
return {outcome, r[1] or '', r[2] or '', r[3] or '0'}
`)

// oldNotifiedScript was MarkNotified. KEYS[1]: the hash. ARGV[1]: the episode.
var oldNotifiedScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'nr', 'ep')
if f[1] == '1' and f[2] == ARGV[1] then
	redis.call('HSET', KEYS[1], 'ntf', '1')
	redis.call('HDEL', KEYS[1], 'lease')
end
return 1
`)

// oldSaveScript was SaveToken's compare-and-set. KEYS[1]: the hash. ARGV:
// connection id, token (sealed or not), fingerprint, IssuedAt
// (microseconds, "" for the zero time), how many superseded fingerprints
// to keep.
var oldSaveScript = redis.NewScript(`
local h = KEYS[1]
local conn, tok, fp, iat, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local p = redis.call('HMGET', h, 'conn', 'nr', 'ep', 'since', 'ntf', 'lease', 'fp', 'iat', 'sup')
local exists = redis.call('EXISTS', h) == 1
local oldfp = p[7] or ''
-- "" is the zero time, before every other.
local function num(t) if not t or t == '' then return -math.huge end return tonumber(t) end
if oldfp ~= '' and num(p[8]) > num(iat) then
	return {'stale'}
end
local sup = {}
if oldfp ~= '' and oldfp ~= fp then
	table.insert(sup, oldfp)
end
for s in string.gmatch(p[9] or '', '%S+') do
	if #sup >= keep then break end
	if s ~= fp and s ~= oldfp then table.insert(sup, s) end
end
redis.call('DEL', h)
redis.call('HSET', h, 'conn', conn, 'tok', tok, 'fp', fp, 'iat', iat, 'sup', table.concat(sup, ' '))
if not exists then
	return {'new'}
end
for i = 1, 9 do
	if not p[i] then p[i] = '' end
end
return {'ok', p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]}
`)

// oldStore writes the earlier layout as the earlier Store did.
type oldStore struct {
	t      *testing.T
	c      *redis.Client
	prefix string
	sealer tokenseal.Sealer
}

func us(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// save is the earlier SaveToken: it returns what it stored as tok.
func (o oldStore) save(conn, token string, issuedAt time.Time) []byte {
	stored := []byte(token)
	if o.sealer != nil {
		var err error
		if stored, err = o.sealer.Seal(stored, []byte(conn)); err != nil {
			o.t.Fatal(err)
		}
	}
	if err := oldSaveScript.Run(context.Background(), o.c, []string{o.prefix + conn},
		conn, stored, finchreauth.Token(token).Fingerprint(), us(issuedAt), 16).Err(); err != nil {
		o.t.Fatal(err)
	}
	return stored
}

// mark is the earlier MarkReauth; key is conn, or "fp:" + fp when conn is "".
func (o oldStore) mark(conn, fp, episode string, at time.Time) {
	key := conn
	if key == "" {
		key = "fp:" + fp
	}
	if err := oldMarkScript.Run(context.Background(), o.c, []string{o.prefix + key},
		conn, fp, episode, us(at), us(at.Add(time.Minute))).Err(); err != nil {
		o.t.Fatal(err)
	}
}

// notified is the earlier MarkNotified.
func (o oldStore) notified(key, episode string) {
	if err := oldNotifiedScript.Run(context.Background(), o.c, []string{o.prefix + key}, episode).Err(); err != nil {
		o.t.Fatal(err)
	}
}

// fixture is what the earlier layout holds, and what Migrate must make of
// it.
type fixture struct {
	want       map[string]finchreauth.Record // by connection id; Version 1
	lookups    map[string]string             // fingerprint -> connection id
	unknown    []string                      // fingerprints Lookup does not find
	stored     map[string][]byte             // connection id -> the earlier token field, byte for byte
	foreign    map[string]string             // keys under the prefix that are not the store's -> their TYPE
	oldKeys    []string
	kept       finchreauth.Record // a record Put before Migrate, which it keeps
	keptHidden string             // a fingerprint of kept's earlier hash that a Put gave another connection
}

// writeFixture fills prefix with the earlier layout: sealed is whether the
// earlier Store had a Sealer.
func writeFixture(t *testing.T, c *redis.Client, prefix string, sealed bool, base time.Time) fixture {
	ctx := context.Background()
	o := oldStore{t: t, c: c, prefix: prefix}
	if sealed {
		o.sealer = testSealer(t)
	}
	f := fixture{want: map[string]finchreauth.Record{}, lookups: map[string]string{}, stored: map[string][]byte{}, foreign: map[string]string{}}
	tok := func(name string) string { return "secret-" + name + "-" + randHex(8) }
	fp := func(tok string) string { return finchreauth.Token(tok).Fingerprint() }
	data := func(current, episode string, sent bool) []byte {
		if episode == "" {
			return []byte(`{"current":"` + current + `"}`)
		}
		if sent {
			return []byte(`{"current":"` + current + `","episode":{"id":"` + episode + `","source":"detection","sent":1}}`)
		}
		return []byte(`{"current":"` + current + `","episode":{"id":"` + episode + `","source":"detection"}}`)
	}
	record := func(conn, token string, fps []string, since time.Time, d []byte) {
		f.want[conn] = finchreauth.Record{ConnectionID: conn, Version: 1, Token: finchreauth.Token(token), Fingerprints: fps, Since: since, Due: since, Data: d}
		for _, x := range fps {
			f.lookups[x] = conn
		}
		f.oldKeys = append(f.oldKeys, prefix+conn)
	}

	// A connection whose token was replaced twice; no episode.
	t1, t2, t3 := tok("saved1"), tok("saved2"), tok("saved3")
	o.save("conn_saved", t1, base.Add(-3*time.Hour))
	o.save("conn_saved", t2, base.Add(-2*time.Hour))
	stored := o.save("conn_saved", t3, base.Add(-1*time.Hour))
	record("conn_saved", t3, []string{fp(t3), fp(t2), fp(t1)}, time.Time{}, data(fp(t3), "", false))
	f.stored["conn_saved"] = stored

	// An open episode, notified.
	t4 := tok("notified")
	stored = o.save("conn_notified", t4, base.Add(-time.Hour))
	o.mark("conn_notified", fp(t4), "ep-notified", base.Add(-30*time.Minute))
	o.mark("conn_notified", fp(t4), "ep-ignored", base.Add(-29*time.Minute)) // a later detection: the same episode
	o.notified("conn_notified", "ep-notified")
	record("conn_notified", t4, []string{fp(t4)}, base.Add(-30*time.Minute), data(fp(t4), "ep-notified", true))
	f.stored["conn_notified"] = stored

	// An open episode not yet notified, on a connection that never saved
	// a token through the store: it knows the detected token's fingerprint.
	t5 := tok("pending")
	o.mark("conn_pending", fp(t5), "ep-pending", base.Add(-20*time.Minute))
	record("conn_pending", "", []string{fp(t5)}, base.Add(-20*time.Minute), data(fp(t5), "ep-pending", false))

	// Two connections whose episodes began at the same microsecond, and one
	// with a superseded token that kept only its last 16 fingerprints.
	for _, conn := range []string{"conn_tie_b", "conn_tie_a"} {
		tk := tok(conn)
		stored = o.save(conn, tk, base.Add(-time.Hour))
		o.mark(conn, fp(tk), "ep-"+conn, base.Add(-10*time.Minute))
		record(conn, tk, []string{fp(tk)}, base.Add(-10*time.Minute), data(fp(tk), "ep-"+conn, false))
		f.stored[conn] = stored
	}
	var toks []string
	for i := range 20 {
		toks = append(toks, tok(fmt.Sprint("many", i)))
		stored = o.save("conn_many", toks[i], base.Add(time.Duration(i-30)*time.Minute))
	}
	var fps []string
	for i := 19; i >= 0; i-- {
		fps = append(fps, fp(toks[i]))
	}
	// The earlier layout knew the current fingerprint and 16 superseded
	// ones: the record lists 16, Lookup finds all 17.
	record("conn_many", toks[19], fps[:16], time.Time{}, data(fps[0], "", false))
	f.lookups[fps[16]] = "conn_many"
	f.unknown = append(f.unknown, fps[17:]...)
	f.stored["conn_many"] = stored

	// A detection whose connection was unknown: an "fp:" key, dropped.
	t6 := tok("unknown")
	o.mark("", fp(t6), "ep-unknown", base.Add(-5*time.Minute))
	f.unknown = append(f.unknown, fp(t6))
	f.oldKeys = append(f.oldKeys, prefix+"fp:"+fp(t6))

	// A connection whose record the current Store wrote before Migrate
	// ran: it is kept. Its earlier hash's fingerprints are indexed, except
	// one a Put gave another connection meanwhile.
	t7, t8 := tok("kept-old"), tok("kept-old2")
	o.save("conn_kept", t7, base.Add(-2*time.Hour))
	o.save("conn_kept", t8, base.Add(-time.Hour))
	f.oldKeys = append(f.oldKeys, prefix+"conn_kept")
	f.kept = finchreauth.Record{ConnectionID: "conn_kept", Token: "secret-kept-new", Fingerprints: []string{"fp-kept-new"}, Data: []byte(`{"current":"fp-kept-new"}`)}
	f.lookups[fp(t8)] = "conn_kept"
	f.lookups["fp-kept-new"] = "conn_kept"
	f.keptHidden = fp(t7)
	f.lookups[fp(t7)] = "conn_other"

	// Keys under the prefix that the earlier Store did not write.
	c.Set(ctx, prefix+"app-string", "x", 0)
	c.HSet(ctx, prefix+"app-hash", "conn", "c", "name", "not ours")
	c.RPush(ctx, prefix+"fp:app-list", "x")
	f.foreign = map[string]string{prefix + "app-string": "string", prefix + "app-hash": "hash", prefix + "fp:app-list": "list"}
	return f
}

// prepare writes kept and the record that took keptHidden, as Puts by the
// current Store before Migrate.
func (f fixture) prepare(t *testing.T, s *redisstore.Store) {
	mustPut(t, s, f.kept)
	mustPut(t, s, finchreauth.Record{ConnectionID: "conn_other", Fingerprints: []string{f.keptHidden}})
}

// check verifies everything Migrate made of the fixture, through the
// Store's methods; sealed is a Store with the Sealer. earlierSealed is
// whether the earlier Store sealed its tokens, resealed whether Migrate
// sealed the plaintext ones.
func (f fixture) check(t *testing.T, c *redis.Client, sealed *redisstore.Store, earlierSealed, resealed bool) {
	t.Helper()
	ctx := context.Background()
	reader := sealed // the Store that reads the tokens as they are now
	if !earlierSealed && !resealed {
		reader = &redisstore.Store{Client: c, Prefix: sealed.Prefix}
	}
	for id, want := range f.want {
		got, err := reader.Get(ctx, id)
		if err != nil || !equalRecords(got, want) {
			t.Errorf("Get(%s) = %s, %v;\nwant %s", id, show(got), err, show(want))
		}
		h, _ := c.HGetAll(ctx, sealed.Prefix+"{finchreauth}:rec:"+id).Result()
		old, ok := f.stored[id]
		switch {
		case !ok:
		case resealed:
			if h["sealed"] != "1" || strings.Contains(h["token"], string(want.Token)) {
				t.Errorf("record %s: Migrate with a Sealer did not seal its plaintext token", id)
			}
		case !bytes.Equal([]byte(h["token"]), old) || (h["sealed"] == "1") != earlierSealed:
			t.Errorf("record %s holds a token of %d bytes, sealed %q; want the earlier %d bytes, sealed %v", id, len(h["token"]), h["sealed"], len(old), earlierSealed)
		}
	}
	kept := f.kept // Put with the Sealer
	kept.Version = 1
	if got, err := sealed.Get(ctx, kept.ConnectionID); err != nil || !equalRecords(got, kept) {
		t.Errorf("Get(%s) = %s, %v; want the record Put before Migrate, %s", kept.ConnectionID, show(got), err, show(kept))
	}
	for fp, want := range f.lookups {
		if got, err := reader.Lookup(ctx, fp); err != nil || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", fp, got, err, want)
		}
	}
	for _, fp := range f.unknown {
		if got, err := reader.Lookup(ctx, fp); !errors.Is(err, finchreauth.ErrNotFound) {
			t.Errorf("Lookup(%s) = %q, %v; want ErrNotFound", fp, got, err)
		}
	}
	open := []string{"conn_notified", "conn_pending", "conn_tie_a", "conn_tie_b"} // by Since, then id
	for _, q := range []finchreauth.Query{{Limit: 100}, {DueBy: time.Now(), Limit: 100}} {
		recs, err := reader.List(ctx, q)
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ConnectionID)
		}
		if err != nil || !slices.Equal(ids, open) {
			t.Errorf("List(DueBy %v) = %q, %v; want %q", !q.DueBy.IsZero(), ids, err, open)
		}
	}
	for _, k := range f.oldKeys {
		if n, _ := c.Exists(ctx, k).Result(); n != 0 {
			t.Errorf("Migrate left the earlier key %s", k)
		}
	}
	for k, typ := range f.foreign {
		if got, _ := c.Type(ctx, k).Result(); got != typ {
			t.Errorf("key %s, not the store's, is now of type %q; want %q, untouched", k, got, typ)
		}
	}
	// The listing of every record: the converted ones, and those Put
	// before Migrate, by id.
	all := slices.Sorted(maps.Keys(f.want))
	all = append(all, f.kept.ConnectionID, "conn_other")
	slices.Sort(all)
	if ids, err := listEvery(ctx, reader, 2); err != nil || !slices.Equal(ids, all) {
		t.Errorf("List(Every) = %q, %v; want %q", ids, err, all)
	}
	if v, err := c.Get(ctx, sealed.Prefix+"{finchreauth}:schema").Result(); err != nil || v != "2" {
		t.Errorf("schema version %q, %v; want 2", v, err)
	}
}

// dump returns every key under prefix with its TYPE and content.
func dump(t *testing.T, c *redis.Client, prefix string) map[string]string {
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range keysUnder(t, c, prefix) {
		typ, _ := c.Type(ctx, k).Result()
		var v any
		switch typ {
		case "hash":
			v, _ = c.HGetAll(ctx, k).Result()
		case "zset":
			v, _ = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "string":
			v, _ = c.Get(ctx, k).Result()
		case "list":
			v, _ = c.LRange(ctx, k, 0, -1).Result()
		}
		out[k] = fmt.Sprintf("%s %v", typ, v)
	}
	return out
}

// TestMigrate converts the earlier layout, written by the earlier
// scripts, with and without a Sealer on either side, and checks every
// record through the Store's methods; a second Migrate changes nothing.
func TestMigrate(t *testing.T) {
	c := openRedis(t)
	base := time.Now().Truncate(time.Microsecond)
	for _, tc := range []struct {
		name                   string
		earlierSealed, migrate bool // the earlier Store had a Sealer; Migrate runs with one
	}{
		{"plain", false, false},
		{"sealed", true, true},
		{"sealed, migrated without the Sealer", true, false},
		{"plain, migrated with a Sealer", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			withSealer := newStore(t, c, testSealer(t))
			migrator := &redisstore.Store{Client: c, Prefix: withSealer.Prefix}
			if tc.migrate {
				migrator.Sealer = testSealer(t)
			}
			f := writeFixture(t, c, withSealer.Prefix, tc.earlierSealed, base)
			f.prepare(t, withSealer)
			if err := migrator.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			resealed := !tc.earlierSealed && tc.migrate
			f.check(t, c, withSealer, tc.earlierSealed, resealed)

			// The other Store refuses the tokens, with a clear error.
			plain := &redisstore.Store{Client: c, Prefix: withSealer.Prefix}
			other, wantErr := plain, "is sealed and the Store has no Sealer"
			if !tc.earlierSealed && !resealed {
				other, wantErr = withSealer, "is stored in plaintext and the Store has a Sealer"
			}
			if _, err := other.Get(ctx, "conn_saved"); err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("Get of a migrated token by the other Store: %v; want %q", err, wantErr)
			}

			before := dump(t, c, withSealer.Prefix)
			if err := migrator.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			c.Del(ctx, withSealer.Prefix+"{finchreauth}:schema") // and once more, from the start
			if err := migrator.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if after := dump(t, c, withSealer.Prefix); !maps.Equal(before, after) {
				t.Errorf("Migrate again changed the keys:\n%v\n%v", before, after)
			}
		})
	}
}

// TestMigrateConcurrent: replicas that run Migrate at once make what one
// does.
func TestMigrateConcurrent(t *testing.T) {
	c := openRedis(t)
	base := time.Now().Truncate(time.Microsecond)
	for range 5 {
		s := newStore(t, c, testSealer(t))
		f := writeFixture(t, c, s.Prefix, true, base)
		f.prepare(t, s)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				// Each replica has its own client, as processes do.
				rc := redis.NewClient(&redis.Options{Addr: c.Options().Addr})
				defer rc.Close()
				if err := (&redisstore.Store{Client: rc, Prefix: s.Prefix, Sealer: testSealer(t)}).Migrate(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		f.check(t, c, s, true, false)
	}
}

// TestMigrateNewerSchema: a schema version this package does not know is
// an error, and nothing is converted.
func TestMigrateNewerSchema(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, nil)
	o := oldStore{t: t, c: c, prefix: s.Prefix}
	o.save("conn", "secret-"+randHex(8), time.Now())
	c.Set(t.Context(), s.Prefix+"{finchreauth}:schema", "3", 0)
	if err := s.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Errorf("Migrate over schema version 3: %v; want an error", err)
	}
	if n, _ := c.Exists(t.Context(), s.Prefix+"conn").Result(); n != 1 {
		t.Errorf("Migrate over schema version 3 converted the earlier hash")
	}
}

// listEvery lists every record of s, limit at a time, and returns their
// ids, those of records it cannot read (listed with Err) included.
func listEvery(ctx context.Context, s *redisstore.Store, limit int) ([]string, error) {
	var ids []string
	q := finchreauth.Query{Every: true, Limit: limit}
	for {
		recs, err := s.List(ctx, q)
		if err != nil {
			return ids, err
		}
		for _, r := range recs {
			ids = append(ids, r.ConnectionID)
		}
		if len(recs) < limit {
			return ids, nil
		}
		q.AfterID = recs[len(recs)-1].ConnectionID
	}
}

// TestMigrateIndexesEveryRecord: records written by layout version 1,
// whose Puts kept no index of every record, are listed by Query.Every once
// Migrate has run, whether version 1's Migrate had run (schema "1") or
// not (no schema key); an evicted hash is not indexed; a second Migrate
// changes nothing. A store of version 1 is the current one without the
// index: its Puts wrote the same hashes and the same other keys.
func TestMigrateIndexesEveryRecord(t *testing.T) {
	c := openRedis(t)
	for _, schema := range []string{"1", ""} {
		t.Run("schema "+strconv.Quote(schema), func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t, c, testSealer(t))
			at := time.Now().Truncate(time.Microsecond)
			var want []string
			for i := range 25 {
				r := finchreauth.Record{ConnectionID: fmt.Sprintf("conn_%02d", (i*7)%25), Token: finchreauth.Token("secret-" + randHex(8))}
				if i%3 == 0 {
					r.Since, r.Due = at, at.Add(time.Hour)
				}
				mustPut(t, s, r)
				want = append(want, r.ConnectionID)
			}
			slices.Sort(want)
			mustPut(t, s, finchreauth.Record{ConnectionID: "conn_evicted"})
			// Back to version 1: no index of every record; an evicted hash.
			c.Del(ctx, s.Prefix+"{finchreauth}:all", s.Prefix+"{finchreauth}:rec:conn_evicted")
			if schema == "" {
				c.Del(ctx, s.Prefix+"{finchreauth}:schema")
			} else {
				c.Set(ctx, s.Prefix+"{finchreauth}:schema", schema, 0)
			}
			if ids, err := listEvery(ctx, s, 4); err != nil || len(ids) != 0 {
				t.Fatalf("List(Every) before Migrate = %q, %v; want none: the fixture is not version 1's", ids, err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, limit := range []int{1, 4, 100} {
				if ids, err := listEvery(ctx, s, limit); err != nil || !slices.Equal(ids, want) {
					t.Errorf("List(Every, pages of %d) after Migrate = %q, %v; want %q", limit, ids, err, want)
				}
			}
			if v, _ := c.Get(ctx, s.Prefix+"{finchreauth}:schema").Result(); v != "2" {
				t.Errorf("schema version %q after Migrate; want 2", v)
			}
			before := dump(t, c, s.Prefix)
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if after := dump(t, c, s.Prefix); !maps.Equal(before, after) {
				t.Errorf("Migrate again changed the keys:\n%v\n%v", before, after)
			}
		})
	}
}
