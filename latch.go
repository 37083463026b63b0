package finchreauth

import (
	"encoding/binary"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
)

// sweepEvery is how often adding to the latch also drops its expired
// entries.
const sweepEvery = time.Minute

// latch remembers, for a while, the tokens Finch refused, so that requests
// carrying them are answered without calling Finch. It never holds a token:
// an entry is found by a keyed hash of the token and checked with a second
// one, with seeds private to the Transport. Entries hold no pointer, so that
// a latch of a million tokens costs the garbage collector nothing to scan,
// and a lookup of a healthy token (the common case) costs one hash and a map
// read under a read lock.
type latch struct {
	seeds [2]maphash.Seed
	now   func() time.Time
	n     atomic.Int64 // len(m), read without the lock

	mu    sync.RWMutex
	m     map[uint64]latchSlot // by the token's first hash
	conns map[uint64]*latchConn
	seq   uint64 // orders additions and forgets
	// forgotten maps a connection (by hash) to the seq of its latest
	// forget: its entries added before are void. An expiring set: a
	// forget older than the longest TTL can void nothing, and go-cache
	// drops it.
	forgotten *cache.Cache
	lastSweep time.Time

	// early counts the requests answered for a token whose handling has
	// not yet found its connection (by the token's first hash); the
	// handling's add moves them to the connection.
	earlyMu sync.Mutex
	early   map[uint64][]refusal
}

// latchSlot is what the latch keeps per token: no pointer.
type latchSlot struct {
	check uint64 // the token's second hash
	conn  uint64 // the connection id's hash; 0 while unknown
	seq   uint64
	until int64 // unix nanoseconds, by the Transport's clock
	// handled is false while the detection that added the entry waits for
	// its handling, true once a handling finished.
	handled bool
}

// latchConn is a connection with latched tokens: its id, and when the
// latch next looks at its record (unix nanoseconds), so that a heal or a
// save on another replica reaches this one's latch.
type latchConn struct {
	id      string
	checkAt atomic.Int64

	mu sync.Mutex
	// answered are the requests the latch answered for the connection
	// since its record was last looked at (by method and path, at most
	// maxRefused): they failed as Finch's refusals did, and go to the
	// record with the next look.
	answered []refusal
}

// answer counts a request the latch answered at now.
func (c *latchConn) answer(method, path string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answered = countRefusal(c.answered, refusal{Method: method, Path: path, Count: 1, First: now, Last: now})
}

// take returns the answered requests and forgets them.
func (c *latchConn) take() []refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.answered
	c.answered = nil
	return a
}

// latchEntry is a token's slot as a lookup returns it.
type latchEntry struct{ latchSlot }

func newLatch(now func() time.Time, maxTTL time.Duration) *latch {
	return &latch{
		seeds:     [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		now:       now,
		m:         map[uint64]latchSlot{},
		conns:     map[uint64]*latchConn{},
		forgotten: cache.New(max(maxTTL, time.Minute), 0), // no janitor: swept by add
	}
}

// key is the token's 128-bit keyed hash, for singleflight.
func (l *latch) key(token string) [16]byte {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], maphash.String(l.seeds[0], token))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(l.seeds[1], token))
	return k
}

func (l *latch) connKey(conn string) uint64 {
	if conn == "" {
		return 0
	}
	return maphash.String(l.seeds[0], conn) | 1
}

func forgetKey(c uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], c)
	return string(b[:])
}

// get returns token's live entry. It does not allocate.
func (l *latch) get(token string) (latchEntry, bool) {
	if l.n.Load() == 0 {
		return latchEntry{}, false
	}
	h := maphash.String(l.seeds[0], token)
	l.mu.RLock()
	slot, ok := l.m[h]
	l.mu.RUnlock()
	if !ok || !l.live(slot, token) {
		return latchEntry{}, false
	}
	return latchEntry{slot}, true
}

// latched reports whether token is latched, for the request path, and
// counts the request (method and path) with its connection's; recheck is
// the connection whose record is due a look (see latchConn), or nil.
func (l *latch) latched(token string, every time.Duration, method, path string) (ok bool, recheck *latchConn) {
	h := maphash.String(l.seeds[0], token)
	l.mu.RLock()
	slot, ok := l.m[h]
	var c *latchConn
	if ok && slot.conn != 0 {
		c = l.conns[slot.conn]
	}
	l.mu.RUnlock()
	if !ok || !l.live(slot, token) {
		return false, nil
	}
	now := l.now()
	if c == nil {
		l.earlyMu.Lock()
		if l.early == nil {
			l.early = map[uint64][]refusal{}
		}
		l.early[h] = countRefusal(l.early[h], refusal{Method: method, Path: path, Count: 1, First: now, Last: now})
		l.earlyMu.Unlock()
		return true, nil
	}
	c.answer(method, path, now)
	if at := c.checkAt.Load(); now.UnixNano() >= at && c.checkAt.CompareAndSwap(at, now.UnixNano()+int64(every)) {
		return true, c
	}
	return true, nil
}

// pending returns the connections with answered requests not yet in their
// records.
func (l *latch) pending() []*latchConn {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []*latchConn
	for _, c := range l.conns {
		c.mu.Lock()
		if len(c.answered) > 0 {
			out = append(out, c)
		}
		c.mu.Unlock()
	}
	return out
}

// live reports whether slot, found for token, is token's and still holds.
func (l *latch) live(slot latchSlot, token string) bool {
	if slot.check != maphash.String(l.seeds[1], token) || l.now().UnixNano() >= slot.until {
		return false
	}
	if slot.conn != 0 {
		if v, forgot := l.forgotten.Get(forgetKey(slot.conn)); forgot && v.(uint64) > slot.seq {
			return false
		}
	}
	return true
}

// add latches token for ttl, and reports whether it did. An unhandled
// entry (added when a detection is queued) never replaces a live one: of
// concurrent adds of one token, one reports true. A handled one replaces
// whatever is there; its connection's record is looked at again after
// every (see latched).
func (l *latch) add(token, conn string, handled bool, ttl, every time.Duration) bool {
	if ttl <= 0 {
		return true // no latch: every detection is handled
	}
	now := l.now()
	h := maphash.String(l.seeds[0], token)
	slot := latchSlot{check: maphash.String(l.seeds[1], token), conn: l.connKey(conn), until: now.Add(ttl).UnixNano(), handled: handled}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.m[h]; !handled && ok && l.live(old, token) {
		return false
	}
	l.seq++
	slot.seq = l.seq
	l.m[h] = slot
	if slot.conn != 0 {
		c := l.conns[slot.conn]
		if c == nil {
			c = &latchConn{id: conn}
			l.conns[slot.conn] = c
		}
		c.checkAt.Store(now.Add(every).UnixNano())
		l.earlyMu.Lock()
		early := l.early[h]
		delete(l.early, h)
		l.earlyMu.Unlock()
		if len(early) > 0 {
			c.mu.Lock()
			for _, r := range early {
				c.answered = countRefusal(c.answered, r)
			}
			c.mu.Unlock()
		}
	}
	if now.Sub(l.lastSweep) > sweepEvery {
		l.sweep(now)
	}
	l.n.Store(int64(len(l.m)))
	return true
}

// sweep drops the expired entries. l.mu must be held.
func (l *latch) sweep(now time.Time) {
	live := map[uint64]bool{}
	for h, e := range l.m {
		if now.UnixNano() >= e.until {
			delete(l.m, h)
		} else {
			live[e.conn] = true
		}
	}
	for c := range l.conns {
		if !live[c] {
			delete(l.conns, c)
		}
	}
	l.earlyMu.Lock()
	for h := range l.early {
		if _, ok := l.m[h]; !ok {
			delete(l.early, h) // its token's entry expired before a handling knew its connection
		}
	}
	l.earlyMu.Unlock()
	l.forgotten.DeleteExpired()
	l.lastSweep = now
}

// forget voids every entry of the connection added before now.
func (l *latch) forget(conn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.forgotten.SetDefault(forgetKey(l.connKey(conn)), l.seq)
}

// latchedBody is the body of the answer to a latched token: Finch's own
// re-authentication error, so that code reading it (the official SDK's error
// parser, say) cannot tell it from the real thing.
const latchedBody = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`

// latchedAnswer is a latched response, its body and its header values in
// one allocation (the header map is the other).
type latchedAnswer struct {
	resp http.Response
	body nopCloser
	vals [3]string
}

type nopCloser struct{ strings.Reader }

func (*nopCloser) Close() error { return nil }

// latchedResponse is the 401 a latched request gets. length is
// len(latchedBody) in decimal.
func latchedResponse(req *http.Request, length string) *http.Response {
	a := &latchedAnswer{vals: [3]string{"application/json", length, Latched}}
	a.body.Reset(latchedBody)
	a.resp = http.Response{
		Status:     "401 Unauthorized",
		StatusCode: http.StatusUnauthorized,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   a.vals[0:1:1],
			"Content-Length": a.vals[1:2:2],
			Header:           a.vals[2:3:3],
		},
		Body:          &a.body,
		ContentLength: int64(len(latchedBody)),
		Request:       req,
	}
	return &a.resp
}
