package finchreauth

import (
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
)

// latchShards spreads the latch over several go-cache instances, each with
// its own lock, so that concurrent lookups of different tokens seldom touch
// the same lock word. A power of two.
const latchShards = 64

// sweepEvery is how often each shard drops its expired entries. go-cache only
// does that from its janitor goroutine, which this package never starts.
const sweepEvery = time.Minute

// latch remembers, for a while, the tokens Finch said need re-authentication,
// so that requests carrying them are answered without calling Finch.
//
// Tokens are never stored: an entry is keyed by a 128-bit keyed hash of the
// token (two maphash values with seeds private to the Transport), so a dump
// of the latch reveals nothing, and a collision between two tokens is out of
// reach.
type latch struct {
	seedA, seedB maphash.Seed
	shards       [latchShards]latchShard
	// n counts entries in all shards, expired ones not yet swept included.
	// While it is zero, lookups cost one atomic load.
	n atomic.Int64
	// seq orders additions and forgets: an entry added before a forget of
	// its connection is void.
	seq atomic.Uint64
	// forgotten maps a connection id to a forgetting (set by forget, dropped
	// by sweeps once no entry can predate it). nForgotten is its size.
	forgotten  sync.Map
	nForgotten atomic.Int64
	nextSweep  atomic.Int64 // unix nanoseconds
	sweepShard atomic.Uint32
	maxTTL     time.Duration
}

type latchShard struct {
	mu sync.Mutex // serialises writers so that n stays exact; readers use c's own lock
	c  *cache.Cache
}

type latchEntry struct {
	connectionID string
	// handled is false while the detection that added the entry is being
	// handled, true once a handling has finished.
	handled bool
	seq     uint64
	// expires is when the entry ends by the Transport's clock (unix
	// nanoseconds). go-cache's own expiry, by the wall clock, only frees
	// the memory.
	expires int64
}

type forgetting struct {
	seq uint64
	at  time.Time
}

type latchKey [16]byte

func newLatch(maxTTL time.Duration) *latch {
	l := &latch{seedA: maphash.MakeSeed(), seedB: maphash.MakeSeed(), maxTTL: maxTTL}
	for i := range l.shards {
		// No default expiry, no janitor: every entry gets its own TTL and
		// sweeps run inline (see maybeSweep).
		l.shards[i].c = cache.New(cache.NoExpiration, 0)
	}
	return l
}

func (l *latch) key(token string) (latchKey, *latchShard) {
	var k latchKey
	a := maphash.String(l.seedA, token)
	binary.LittleEndian.PutUint64(k[:8], a)
	binary.LittleEndian.PutUint64(k[8:], maphash.String(l.seedB, token))
	return k, &l.shards[a%latchShards]
}

// empty reports whether nothing is latched: the common case, one atomic load.
func (l *latch) empty() bool { return l.n.Load() == 0 }

// get returns token's entry, or nil if token is not latched.
func (l *latch) get(token string, now time.Time) *latchEntry {
	k, sh := l.key(token)
	v, ok := sh.c.Get(string(k[:]))
	if rand.Uint32()%1024 == 0 {
		l.maybeSweep(now)
	}
	if !ok {
		return nil
	}
	e := v.(*latchEntry)
	if now.UnixNano() >= e.expires {
		return nil
	}
	if l.nForgotten.Load() > 0 && e.connectionID != "" {
		if f, ok := l.forgotten.Load(e.connectionID); ok && f.(forgetting).seq > e.seq {
			sh.mu.Lock()
			if v2, ok := sh.c.Get(string(k[:])); ok && v2 == v {
				sh.c.Delete(string(k[:]))
				l.n.Add(-1)
			}
			sh.mu.Unlock()
			return nil
		}
	}
	return e
}

// add latches token for ttl, naming its connection when known. An entry that
// is not handled (added when a handling starts) never replaces an existing
// one; a handled entry replaces whatever is there.
func (l *latch) add(token, connectionID string, handled bool, ttl time.Duration, now time.Time) {
	if ttl <= 0 {
		return
	}
	k, sh := l.key(token)
	e := &latchEntry{connectionID: connectionID, handled: handled, seq: l.seq.Add(1), expires: now.Add(ttl).UnixNano()}
	sh.mu.Lock()
	before := sh.c.ItemCount()
	if handled {
		sh.c.Set(string(k[:]), e, ttl)
	} else {
		sh.c.Add(string(k[:]), e, ttl) // fails, harmlessly, when an entry is there
	}
	l.n.Add(int64(sh.c.ItemCount() - before))
	sh.mu.Unlock()
	l.maybeSweep(now)
}

// forget voids every entry of the connection added before now.
func (l *latch) forget(connectionID string, now time.Time) {
	if connectionID == "" {
		return
	}
	if _, loaded := l.forgotten.Swap(connectionID, forgetting{seq: l.seq.Add(1), at: now}); !loaded {
		l.nForgotten.Add(1)
	}
}

// maybeSweep drops the expired entries of one shard, in turn, when a sweep is
// due: shards are swept every sweepEvery, spread over that interval, from
// whichever goroutine comes by. It also drops forgettings older than the
// longest TTL, which no live entry can predate.
func (l *latch) maybeSweep(now time.Time) {
	due := l.nextSweep.Load()
	if now.UnixNano() < due || !l.nextSweep.CompareAndSwap(due, now.Add(sweepEvery/latchShards).UnixNano()) {
		return
	}
	sh := &l.shards[l.sweepShard.Add(1)%latchShards]
	sh.mu.Lock()
	before := sh.c.ItemCount()
	sh.c.DeleteExpired()
	l.n.Add(int64(sh.c.ItemCount() - before))
	sh.mu.Unlock()

	if l.nForgotten.Load() > 0 {
		l.forgotten.Range(func(k, v any) bool {
			if now.Sub(v.(forgetting).at) > l.maxTTL && l.forgotten.CompareAndDelete(k, v) {
				l.nForgotten.Add(-1)
			}
			return true
		})
	}
}
