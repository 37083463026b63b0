package finchreauth

import (
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// Tokens are never stored: an entry is found by a 128-bit keyed hash of the
// token, two maphash values with seeds private to the Transport. The first,
// as 8 bytes, is the go-cache key and picks the shard; the second is kept in
// the entry and checked on a hit. A lookup of a healthy token (the common
// case) thus computes one hash, a dump of the latch reveals nothing, and a
// healthy token is never taken for a latched one. Two latched tokens whose
// first hashes collide (odds about n²/2⁶⁵ for n entries) share a slot: the
// later one displaces the earlier, which then merely reaches Finch again.
//
// Entries hold no pointer (connections are named by a hash of their id), so a
// large latch costs the garbage collector little to mark and nothing to scan.
//
// Each shard keeps a small Bloom filter of its keys (see latchFilter), read
// without a lock: a healthy token is told apart, in the common case, by one
// atomic load from a few bits per entry, which stay in the processor's cache
// however large the latch grows, instead of a lookup that takes go-cache's
// lock and, in a large latch, a trip to main memory.
type latch struct {
	seedA, seedB maphash.Seed
	// now is the Transport's clock. Lookups read it only on a hit.
	now    func() time.Time
	shards [latchShards]latchShard
	// n counts entries in all shards, expired ones not yet swept included.
	// While it is zero, lookups cost one atomic load.
	n atomic.Int64
	// seq orders additions and forgets: an entry added before a forget of
	// its connection is void.
	seq atomic.Uint64
	// forgotten maps a connection (by hash) to its latest forgetting; forget
	// sets it and sweeps drop it once no entry can predate it. nForgotten is
	// its size, read without the lock.
	forgotMu   sync.Mutex
	forgotten  map[uint64]forgetting
	nForgotten atomic.Int64
	nextSweep  atomic.Int64 // unix nanoseconds
	sweepShard atomic.Uint32
	maxTTL     time.Duration
}

type latchShard struct {
	mu sync.Mutex // serialises writers so that n stays exact; readers use c's own lock
	c  *cache.Cache
	// filter holds every key of c, and perhaps some deleted since it was
	// built; nil while c has never held an entry or is empty. Written under
	// mu, read without it.
	filter atomic.Pointer[latchFilter]
	// deleted counts entries deleted since filter was built (under mu).
	deleted int
}

// latchFilter is a blocked Bloom filter of a shard's keys: two bits per key,
// both in one 64-bit word, so that a test is one atomic load. Keys are only
// ever added; a sweep that deleted entries rebuilds the filter from go-cache,
// and so does an addition that would fill it beyond filterMinBits bits per
// key. A filter is sized at twice that, so it holds 8 to 32 bits per key and
// lets through 0.3% to 5% of healthy tokens to the go-cache lookup.
type latchFilter struct {
	mask  uint64 // len(words)-1, a power of two less one
	words []atomic.Uint64
}

const (
	filterMinBits   = 8  // per key, before the filter grows
	filterMinWords  = 8  // 512 bits: the smallest filter
	filterWordShift = 6  // the low bits of a key pick its shard
	filterBitA      = 46 // a key's bits 46..51 and 52..57 pick its two bits
	filterBitB      = 52 // (words are picked by bits 6..45)
	filterMaxWords  = 1 << (filterBitA - filterWordShift)
)

func newLatchFilter(keys int) *latchFilter {
	words := filterMinWords
	for words*64 < 2*filterMinBits*keys && words < filterMaxWords {
		words *= 2
	}
	return &latchFilter{mask: uint64(words - 1), words: make([]atomic.Uint64, words)}
}

func filterBits(h uint64) uint64 { return 1<<(h>>filterBitA&63) | 1<<(h>>filterBitB&63) }

func (f *latchFilter) word(h uint64) *atomic.Uint64 { return &f.words[h>>filterWordShift&f.mask] }

// has reports whether h may be a key of the filter's shard.
func (f *latchFilter) has(h uint64) bool {
	b := filterBits(h)
	return f.word(h).Load()&b == b
}

func (f *latchFilter) add(h uint64) { f.word(h).Or(filterBits(h)) }

// full reports whether adding a key to keys would take the filter below
// filterMinBits bits per key.
func (f *latchFilter) full(keys int) bool {
	return uint64(keys+1)*filterMinBits > (f.mask+1)*64 && f.mask+1 < filterMaxWords
}

// rebuild replaces the shard's filter with one built from the keys go-cache
// holds (wall-clock-expired ones, which go-cache no longer returns, left
// out), sized for extra more. sh.mu must be held.
func (sh *latchShard) rebuild(extra int) *latchFilter {
	items := sh.c.Items()
	if len(items)+extra == 0 {
		sh.filter.Store(nil)
		sh.deleted = 0
		return nil
	}
	f := newLatchFilter(len(items) + extra)
	for k := range items {
		f.add(binary.LittleEndian.Uint64([]byte(k)))
	}
	sh.filter.Store(f)
	sh.deleted = 0
	return f
}

// latchEntry is what the latch keeps per token: 40 bytes, no pointer, in one
// allocation with its go-cache key, whose string views key.
type latchEntry struct {
	key   latchKey
	check uint64 // the token's second hash (seedB)
	conn  uint64 // the connection id's hash (seedA), 0 when unknown
	// seq<<1 | handled. seq orders the entry against forgets; handled is 0
	// while the detection that added the entry is being handled, 1 once a
	// handling has finished.
	seqHandled uint64
	// expires is when the entry ends by the Transport's clock (unix
	// nanoseconds). go-cache's own expiry, by the wall clock, only frees
	// the memory.
	expires int64
}

func (e *latchEntry) handled() bool { return e.seqHandled&1 == 1 }
func (e *latchEntry) seq() uint64   { return e.seqHandled >> 1 }

type forgetting struct {
	seq uint64
	at  time.Time
}

// newLatch returns an empty latch whose entries live at most maxTTL and
// whose lookups read the time from now.
func newLatch(maxTTL time.Duration, now func() time.Time) *latch {
	l := &latch{
		seedA:     maphash.MakeSeed(),
		seedB:     maphash.MakeSeed(),
		now:       now,
		forgotten: map[uint64]forgetting{},
		maxTTL:    maxTTL,
	}
	for i := range l.shards {
		// No default expiry, no janitor: every entry gets its own TTL and
		// sweeps run inline (see maybeSweep).
		l.shards[i].c = cache.New(cache.NoExpiration, 0)
	}
	return l
}

// latchKey is the go-cache key of a token, as bytes: the first hash.
type latchKey [8]byte

// key hashes token: h is its go-cache key, as a number, and picks its shard.
func (l *latch) key(token string) (h uint64, sh *latchShard) {
	h = maphash.String(l.seedA, token)
	return h, &l.shards[h%latchShards]
}

// keyOf spells h as a go-cache key. Converting it to a string for a lookup
// costs no allocation: go-cache does not keep the key it is given.
func keyOf(h uint64) latchKey {
	var k latchKey
	binary.LittleEndian.PutUint64(k[:], h)
	return k
}

// flightKey names token for the Transport's singleflight: the same 128 bits
// of keyed hash that name its entry, so that the group's map, like the
// latch, never holds a token.
func (l *latch) flightKey(token string) string {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], maphash.String(l.seedA, token))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(l.seedB, token))
	return string(k[:])
}

// connHash names a connection in an entry; 0 means unknown.
func (l *latch) connHash(connectionID string) uint64 {
	if connectionID == "" {
		return 0
	}
	return maphash.String(l.seedA, connectionID) | 1
}

// empty reports whether nothing is latched: the common case, one atomic load.
func (l *latch) empty() bool { return l.n.Load() == 0 }

// get returns token's entry, or nil if token is not latched.
func (l *latch) get(token string) *latchEntry {
	h, sh := l.key(token)
	if rand.Uint32()%1024 == 0 {
		l.maybeSweep(l.now())
	}
	if f := sh.filter.Load(); f == nil || !f.has(h) {
		return nil
	}
	k := keyOf(h)
	v, ok := sh.c.Get(string(k[:]))
	if !ok {
		return nil
	}
	e := v.(*latchEntry)
	if e.check != maphash.String(l.seedB, token) || l.now().UnixNano() >= e.expires {
		return nil
	}
	if e.conn != 0 && l.nForgotten.Load() > 0 {
		l.forgotMu.Lock()
		f, ok := l.forgotten[e.conn]
		l.forgotMu.Unlock()
		if ok && f.seq > e.seq() {
			sh.mu.Lock()
			if v2, ok := sh.c.Get(string(k[:])); ok && v2 == v {
				sh.c.Delete(string(k[:]))
				l.n.Add(-1)
				sh.deleted++
			}
			sh.mu.Unlock()
			return nil
		}
	}
	return e
}

// add latches token for ttl, naming its connection when known. An entry that
// is not handled (added when a handling starts) never replaces an existing
// live one; a handled entry replaces whatever is there.
func (l *latch) add(token, connectionID string, handled bool, ttl time.Duration, now time.Time) {
	if ttl <= 0 {
		return
	}
	h, sh := l.key(token)
	e := &latchEntry{
		key:        keyOf(h),
		check:      maphash.String(l.seedB, token),
		conn:       l.connHash(connectionID),
		seqHandled: l.seq.Add(1) << 1,
		expires:    now.Add(ttl).UnixNano(),
	}
	if handled {
		e.seqHandled |= 1
	}
	// The map's key views the entry's own copy of the key, which never
	// changes: key and entry are one allocation, one object for the
	// garbage collector to mark and one trip to memory on a hit.
	k := unsafe.String(&e.key[0], len(e.key))
	sh.mu.Lock()
	before := sh.c.ItemCount()
	// The bit goes in before the entry: a lookup that finds the entry
	// cannot have been turned away by the filter a moment earlier.
	if f := sh.filter.Load(); f == nil || f.full(before) {
		sh.rebuild(1).add(h)
	} else {
		f.add(h)
	}
	if handled {
		sh.c.Set(k, e, ttl)
	} else {
		sh.c.Add(k, e, ttl) // fails, harmlessly, when an entry is there
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
	c := l.connHash(connectionID)
	l.forgotMu.Lock()
	if _, ok := l.forgotten[c]; !ok {
		l.nForgotten.Add(1)
	}
	l.forgotten[c] = forgetting{seq: l.seq.Add(1), at: now}
	l.forgotMu.Unlock()
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
	after := sh.c.ItemCount()
	l.n.Add(int64(after - before))
	if after < before || sh.deleted > 0 {
		sh.rebuild(0) // drop the deleted keys' bits; shrink if it may
	}
	sh.mu.Unlock()

	if l.nForgotten.Load() > 0 {
		l.forgotMu.Lock()
		for c, f := range l.forgotten {
			if now.Sub(f.at) > l.maxTTL {
				delete(l.forgotten, c)
				l.nForgotten.Add(-1)
			}
		}
		l.forgotMu.Unlock()
	}
}
