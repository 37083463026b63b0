package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/finchkit/finchreauth/store/internal/quote"
	"github.com/finchkit/finchreauth/store/internal/reseal"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// maxReseals is how many times Reseal tries a record that other writes
// keep changing.
const maxReseals = 10

// verifyFirst is how many connection ids Verify returns at most.
const verifyFirst = 10

// Reseal seals again, under the Sealer's current key, every token that is
// not sealed under it: sealed under an older key the Sealer still opens, or
// stored in plaintext. It returns how many tokens it sealed again. After a
// key rotation (tokenseal.NewAESGCM(newKey, oldKey) deployed to every
// replica), run it, then check with Verify that no token is left under the
// old key before dropping it.
//
// Reseal walks the records' keys with SCAN, a batch of about 1000 at a
// time, and writes each token it seals again with a script that checks the
// record's version and token first: a Put that came since it read the record
// wins (Reseal reads the record again), and the record's version stays, so
// that the Transport's own compare-and-sets do not fail because of it. Every
// replica may run it at once. Interrupted, it leaves every record readable;
// run it again and it finishes, skipping the tokens already sealed under the
// current key.
//
// A token Reseal cannot open (sealed under a key the Sealer does not hold)
// is left as it is; once every other record is done, Reseal returns an error
// naming how many there were and wrapping the first one's. The Sealer must
// be a tokenseal.Rotator, as tokenseal.AESGCM is.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	k, rot, err := s.rotator(ctx)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex // scan's fn may run on several nodes at once
	var tally reseal.Tally
	err = s.eachToken(ctx, k, func(ctx context.Context, h tokenHash) error {
		done, err := s.resealHash(ctx, k, rot, h)
		mu.Lock()
		defer mu.Unlock()
		return tally.Add(done, err)
	})
	if err != nil {
		return tally.Resealed, s.fail(ctx, "reseal", err)
	}
	return tally.Resealed, tally.Err("redisstore")
}

// Verify counts the records whose token is not sealed under the Sealer's
// current key (sealed under another key, or stored in plaintext), and
// returns the connection ids of the first verifyFirst of them, in id order.
// Zero means that the Sealer's current key alone opens every token: older
// keys can be dropped. It walks the keys as Reseal does, and writes
// nothing.
func (s *Store) Verify(ctx context.Context) (int, []string, error) {
	k, rot, err := s.rotator(ctx)
	if err != nil {
		return 0, nil, err
	}
	var mu sync.Mutex
	stale := map[string]bool{} // SCAN may return a key twice
	err = s.eachToken(ctx, k, func(_ context.Context, h tokenHash) error {
		if reseal.Stale(rot, []byte(h.token), h.sealed) {
			mu.Lock()
			defer mu.Unlock()
			stale[h.id] = true
		}
		return nil
	})
	if err != nil {
		return 0, nil, s.fail(ctx, "verify", err)
	}
	first := slices.Sorted(func(yield func(string) bool) {
		for id := range stale {
			if !yield(id) {
				return
			}
		}
	})
	return len(stale), first[:min(len(first), verifyFirst)], nil
}

// rotator returns the Store's keys and its Sealer as a Rotator.
func (s *Store) rotator(ctx context.Context) (layout, tokenseal.Rotator, error) {
	k, err := s.layout(ctx)
	if err != nil {
		return layout{}, nil, err
	}
	rot, ok := s.Sealer.(tokenseal.Rotator)
	if !ok {
		return layout{}, nil, fmt.Errorf("redisstore: Reseal and Verify need a Sealer that tells its current key (a tokenseal.Rotator, as tokenseal.AESGCM is); the Store's is %T", s.Sealer)
	}
	return k, rot, nil
}

// tokenHash is a record's token as its hash holds it.
type tokenHash struct {
	id, version, token string
	sealed             bool
}

// eachToken calls fn with every record that holds a token, reading the
// hashes of each batch of keys SCAN returns in one pipeline.
func (s *Store) eachToken(ctx context.Context, k layout, fn func(context.Context, tokenHash) error) error {
	prefix := k.record("")
	return s.scanBatches(ctx, matchPrefix(prefix), func(ctx context.Context, keys []string) error {
		cmds, err := s.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, key := range keys {
				p.HMGet(ctx, key, fVersion, fToken, fSealed)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, cmd := range cmds {
			v, _ := cmd.(*redis.SliceCmd).Result()
			h := tokenHash{id: strings.TrimPrefix(keys[i], prefix)}
			if len(v) == 3 {
				h.version, _ = v[0].(string)
				h.token, _ = v[1].(string)
				h.sealed = v[2] == "1"
			}
			if h.token == "" {
				continue // no token, or gone since SCAN named it
			}
			if err := fn(ctx, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// resealHash seals h's token again under rot's current key, unless it is
// already, and reports whether it did. It returns a *reseal.OpenError for a
// token it cannot open.
func (s *Store) resealHash(ctx context.Context, k layout, rot tokenseal.Rotator, h tokenHash) (bool, error) {
	for range maxReseals {
		if !reseal.Stale(rot, []byte(h.token), h.sealed) {
			return false, nil
		}
		sealed, err := reseal.Token("redisstore", rot, h.id, []byte(h.token), h.sealed)
		if err != nil {
			return false, err
		}
		n, err := resealScript.Run(ctx, s.Client, []string{k.record(h.id), k.plaintext()}, h.id, h.version, h.token, sealed).Int()
		if err != nil || n == 1 {
			return n == 1, err
		}
		// Another write came first: read the token again.
		v, err := s.Client.HMGet(ctx, k.record(h.id), fVersion, fToken, fSealed).Result()
		if err != nil {
			return false, err
		}
		h.version, _ = v[0].(string)
		h.token, _ = v[1].(string)
		h.sealed = v[2] == "1"
	}
	return false, fmt.Errorf("reseal %s: %d other writes came first", quote.ID(h.id), maxReseals)
}
