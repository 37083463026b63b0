package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/quote"
	"github.com/redis/go-redis/v9"
)

// schemaVersion is the key layout this package writes. Migrate records it
// at Prefix + "{finchreauth}:schema". Version 2 added the index of every
// record (Prefix + "{finchreauth}:all"), which version 1's Puts did not
// keep.
const schemaVersion = 2

// maxFingerprints is how many fingerprints a migrated record lists, as the
// Transport keeps them; Lookup finds the older ones too.
const maxFingerprints = 16

// Migrate converts what an earlier redisstore wrote under the Prefix to the
// current layout, and records the layout's version. Call it at start-up,
// before the Transport uses the Store, once every process of the earlier
// version has stopped: it is quick when there is nothing to do, and safe
// when several processes run it at once, or again after a failure.
//
// The earlier layout kept a hash per key: Prefix + connection id, and
// Prefix + "fp:" + fingerprint while a token's connection was unknown.
// Migrate turns each connection's hash into its record: the saved token
// (as it was: a sealed token stays sealed, under the key that sealed it),
// every fingerprint the hash knew, indexed for Lookup, and the open
// episode, if any, which the Transport takes up at once (its Since and Due
// are the episode's start). Then it deletes the earlier hashes, "fp:" ones
// included (they knew no connection). A record the Transport has written
// since is kept as it is. Hashes whose fields are not the earlier
// layout's, and keys that are not hashes, are left alone. A schema version
// newer than this package's is an error, and Migrate changes nothing.
//
// Layout version 1 had no index of every record, which the listing of the
// whole Store (finchreauth.Query.Every: the health sweep's first checks,
// the campaigns) reads: Migrate adds every record to it, scanning the
// records' keys once. Until then such a listing misses the records written
// by version 1; and a process still running version 1 writes records the
// index does not name, so stop those before Migrate, as for the earlier
// layout.
//
// With a Sealer, Migrate also seals every token stored in plaintext (saved
// by a Store without a Sealer, or converted from an earlier plaintext
// hash), each time it runs: to turn sealing on, set the Sealer in every
// replica and call Migrate. The plaintext set
// (Prefix + "{finchreauth}:plaintext") lists those records, so this costs
// nothing when there are none.
func (s *Store) Migrate(ctx context.Context) error {
	k, err := s.layout(ctx)
	if err != nil {
		return err
	}
	switch v, err := s.Client.Get(ctx, k.schema()).Result(); {
	case errors.Is(err, redis.Nil):
		if err := s.convert(ctx, k); err != nil {
			return s.fail(ctx, "migrate", err)
		}
	case err != nil:
		return s.fail(ctx, "migrate", err)
	case v == "1":
		if err := s.indexAll(ctx, k); err != nil {
			return s.fail(ctx, "migrate", err)
		}
	case v != strconv.Itoa(schemaVersion):
		return fmt.Errorf("redisstore: migrate: %s holds schema version %q; this redisstore writes version %d", k.schema(), v, schemaVersion)
	}
	if s.Sealer != nil {
		if err := s.sealPlaintext(ctx, k); err != nil {
			return s.fail(ctx, "migrate", err)
		}
	}
	return nil
}

// convert converts every earlier key, then indexes every record (those
// written by a Store of layout version 1 that never ran Migrate too) and
// records the schema version.
func (s *Store) convert(ctx context.Context, k layout) error {
	now := time.Now()
	if err := s.scan(ctx, matchPrefix(s.prefix()), func(ctx context.Context, key string) error {
		return s.migrateKey(ctx, k, key, now)
	}); err != nil {
		return err
	}
	return s.indexAll(ctx, k)
}

// indexAll adds every record to the index of every record, then records
// the schema version: layout version 1 did not keep that index. A record
// already there stays; one whose hash is gone by the time its batch is
// indexed is left out.
func (s *Store) indexAll(ctx context.Context, k layout) error {
	prefix := k.record("")
	if err := s.scanBatches(ctx, matchPrefix(prefix), func(ctx context.Context, keys []string) error {
		args := make([]any, 0, 1+len(keys))
		args = append(args, prefix)
		for _, key := range keys {
			args = append(args, strings.TrimPrefix(key, prefix))
		}
		return indexAllScript.Run(ctx, s.Client, []string{k.allIndex()}, args...).Err()
	}); err != nil {
		return fmt.Errorf("index every record: %w", err)
	}
	return s.Client.Set(ctx, k.schema(), schemaVersion, 0).Err()
}

// sealPlaintext seals the tokens the plaintext set lists: those a Store
// without a Sealer saved, or Migrate converted.
func (s *Store) sealPlaintext(ctx context.Context, k layout) error {
	iter := s.Client.SScan(ctx, k.plaintext(), 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		id := iter.Val()
		v, err := s.Client.HMGet(ctx, k.record(id), fToken, fSealed).Result()
		if err != nil {
			return err
		}
		tok, ok := v[0].(string)
		if !ok || v[1] == "1" {
			continue // changed since: Put keeps the set
		}
		sealed, err := s.Sealer.Seal([]byte(tok), []byte(id))
		if err != nil {
			return fmt.Errorf("seal the token of %s: %w", quote.ID(id), err)
		}
		if err := sealScript.Run(ctx, s.Client, []string{k.record(id), k.plaintext()}, id, tok, sealed).Err(); err != nil {
			return fmt.Errorf("seal the token of %s: %w", quote.ID(id), err)
		}
	}
	return iter.Err()
}

// oldFields are the fields of the earlier layout's hashes: connection id,
// needs re-auth ("1"), episode, its start (microseconds), notified ("1"),
// lease, token, its fingerprint, its IssuedAt, the superseded
// fingerprints (newest first, space-separated).
var oldFields = []string{"conn", "nr", "ep", "since", "ntf", "lease", "tok", "fp", "iat", "sup"}

// migrateKey converts one key under the Prefix, if it is an earlier hash.
func (s *Store) migrateKey(ctx context.Context, k layout, key string, now time.Time) error {
	name, ok := strings.CutPrefix(key, s.prefix())
	if !ok || name == "" || strings.HasPrefix(key, k.base) {
		return nil // the current layout's, or not the earlier one's
	}
	if t, err := s.Client.Type(ctx, key).Result(); err != nil || t != "hash" {
		return err
	}
	h, err := s.Client.HGetAll(ctx, key).Result()
	if err != nil {
		return err
	}
	if len(h) == 0 {
		return nil // deleted meanwhile, by another Migrate
	}
	for f := range h {
		if !slices.Contains(oldFields, f) {
			return nil // not a hash the earlier layout wrote
		}
	}
	if strings.HasPrefix(name, "fp:") {
		// A token whose connection was unknown: its fingerprint is
		// indexed only if a later call named the connection.
		if conn := h["conn"]; conn != "" && h["fp"] != "" {
			if err := s.Client.SetNX(ctx, k.fingerprint(h["fp"]), conn, 0).Err(); err != nil {
				return err
			}
		}
	} else if err := s.migrateRecord(ctx, k, name, h, now); err != nil {
		return fmt.Errorf("%s: %w", quote.ID(key), err)
	}
	return s.Client.Unlink(ctx, key).Err()
}

// migrateRecord writes the record of connection id from its earlier hash h,
// unless the connection has a record already, and indexes the hash's
// fingerprints that no record claims yet.
func (s *Store) migrateRecord(ctx context.Context, k layout, id string, h map[string]string, now time.Time) error {
	var fps []string
	for _, fp := range append([]string{h["fp"]}, strings.Fields(h["sup"])...) {
		if fp != "" && !slices.Contains(fps, fp) {
			fps = append(fps, fp)
		}
	}
	w := write{id: id, fingerprints: fps[:min(len(fps), maxFingerprints)]}
	if tok, ok := h["tok"]; ok && tok != "" {
		w.token, w.sealed = []byte(tok), looksSealed(tok)
	}
	var d migratedData
	d.Current = h["fp"]
	if h["nr"] == "1" {
		since, err := strconv.ParseInt(h["since"], 10, 64)
		if err != nil || since <= -maxScore || since >= maxScore {
			since = now.UnixMicro()
		}
		w.since = strconv.FormatInt(since, 10)
		w.due = w.since
		d.Episode = &migratedEpisode{ID: h["ep"], Source: "detection"}
		if h["ntf"] == "1" {
			d.Episode.Sent = 1
		}
	}
	if d != (migratedData{}) {
		var err error
		if w.data, err = json.Marshal(d); err != nil {
			return err
		}
	}
	if _, err := s.put(ctx, k, w); err != nil && !errors.Is(err, finchreauth.ErrConflict) {
		return err
	}
	// The record's own fingerprints are indexed if put wrote it; these
	// are the older ones, or all of them if a record was there already.
	for _, fp := range fps {
		if err := s.Client.SetNX(ctx, k.fingerprint(fp), id, 0).Err(); err != nil {
			return err
		}
	}
	return nil
}

// migratedData is the Transport's record data (finchreauth's recordData,
// as JSON) for what the earlier layout knew: the current token's
// fingerprint and the open episode, opened by a detection, notified once
// (Sent 1) or not yet.
type migratedData struct {
	Current string           `json:"current,omitempty"`
	Episode *migratedEpisode `json:"episode,omitempty"`
}

type migratedEpisode struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Sent   int    `json:"sent,omitempty"`
}

// looksSealed reports whether an earlier token is a tokenseal value: its
// format byte (1), a key id, a 12-byte nonce and a 16-byte tag at least.
// The earlier layout did not say, and an access token is printable text.
func looksSealed(tok string) bool { return len(tok) >= 2+12+16 && tok[0] == 1 }

// scan calls fn with every key matching match, on every node that holds
// keys: all the masters of a Cluster, all the shards of a Ring. fn may be
// called from several goroutines at once.
func (s *Store) scan(ctx context.Context, match string, fn func(ctx context.Context, key string) error) error {
	return s.scanBatches(ctx, match, func(ctx context.Context, keys []string) error {
		for _, key := range keys {
			if err := fn(ctx, key); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanBatches is scan, calling fn with each batch of keys SCAN returns
// (about 1000). SCAN may return a key twice.
func (s *Store) scanBatches(ctx context.Context, match string, fn func(ctx context.Context, keys []string) error) error {
	each := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := fn(ctx, keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	node := func(ctx context.Context, c *redis.Client) error { return each(ctx, c) }
	switch c := s.Client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, node)
	case *redis.Ring:
		return c.ForEachShard(ctx, node)
	}
	return each(ctx, s.Client)
}

// matchPrefix returns the SCAN pattern of the keys that start with prefix.
func matchPrefix(prefix string) string {
	var b strings.Builder
	for i := 0; i < len(prefix); i++ {
		if strings.IndexByte(`*?[]\`, prefix[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(prefix[i])
	}
	return b.String() + "*"
}
