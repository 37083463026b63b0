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
// entries: go-cache does that only from a janitor goroutine, which this
// package never starts.
const sweepEvery = time.Minute

// latch remembers, for a while, the tokens Finch refused, so that requests
// carrying them are answered without calling Finch. It never holds a token:
// entries are keyed by a 128-bit keyed hash of it, with seeds private to the
// Transport. Entries expire by the Transport's clock; go-cache's own expiry,
// by the wall clock, frees their memory.
type latch struct {
	seeds [2]maphash.Seed
	c     *cache.Cache // key -> *latchEntry
	n     atomic.Int64 // entries in c, expired ones not yet swept included
	now   func() time.Time

	mu        sync.Mutex          // serialises writers
	byConn    map[string][]string // connection id -> keys of its entries
	lastSweep time.Time
}

type latchEntry struct {
	conn  string    // the token's connection, "" while unknown
	until time.Time // by the Transport's clock
	// handled is false while the detection that added the entry is being
	// handled, true once a handling finished.
	handled bool
	// queued, for an entry that is not handled, is closed when its
	// handling has to wait for a slot: its callers need not wait behind
	// the queue.
	queued chan struct{}
}

func newLatch(now func() time.Time) *latch {
	l := &latch{
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		c:      cache.New(cache.NoExpiration, 0), // no janitor
		now:    now,
		byConn: map[string][]string{},
	}
	l.c.OnEvicted(l.evicted) // called with l.mu held: only writers delete
	return l
}

// key is the token's 128-bit keyed hash.
func (l *latch) key(token string) [16]byte {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], maphash.String(l.seeds[0], token))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(l.seeds[1], token))
	return k
}

// get returns token's live entry, or nil. It does not allocate.
func (l *latch) get(token string) *latchEntry {
	if l.n.Load() == 0 {
		return nil
	}
	k := l.key(token)
	v, ok := l.c.Get(string(k[:]))
	if !ok {
		return nil
	}
	if e := v.(*latchEntry); l.now().Before(e.until) {
		return e
	}
	return nil
}

// add latches token until now+ttl, and returns the token's entry. An
// unhandled entry (added when a handling starts) never replaces a live one;
// a handled one replaces whatever is there.
func (l *latch) add(token, conn string, handled bool, ttl time.Duration) *latchEntry {
	if ttl <= 0 {
		return nil
	}
	now := l.now()
	key := l.key(token)
	k := string(key[:])
	e := &latchEntry{conn: conn, until: now.Add(ttl), handled: handled}
	if !handled {
		e.queued = make(chan struct{})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if live := l.get(token); !handled && live != nil {
		return live
	}
	l.c.Set(k, e, ttl)
	if conn != "" {
		l.byConn[conn] = append(l.byConn[conn], k)
	}
	if now.Sub(l.lastSweep) > sweepEvery {
		l.c.DeleteExpired()
		l.lastSweep = now
	}
	l.n.Store(int64(l.c.ItemCount()))
	return e
}

// forget drops every entry of the connection.
func (l *latch) forget(conn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := l.byConn[conn]
	delete(l.byConn, conn) // before the deletes: evicted finds nothing left to edit
	for _, k := range keys {
		l.c.Delete(k)
	}
	l.n.Store(int64(l.c.ItemCount()))
}

// evicted keeps byConn in step with the cache.
func (l *latch) evicted(k string, v any) {
	conn := v.(*latchEntry).conn
	if keys := l.byConn[conn]; len(keys) > 0 {
		keys = deleteKey(keys, k)
		if len(keys) == 0 {
			delete(l.byConn, conn)
		} else {
			l.byConn[conn] = keys
		}
	}
}

func deleteKey(keys []string, k string) []string {
	out := keys[:0]
	for _, x := range keys {
		if x != k {
			out = append(out, x)
		}
	}
	return out
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
