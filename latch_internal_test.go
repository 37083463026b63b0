package finchreauth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLatchHoldsNoToken dumps every latch entry, key and value, and looks
// for the token: the latch keys by a keyed hash and keeps no token.
func TestLatchHoldsNoToken(t *testing.T) {
	const token = "tok-SECRET-latch-0123456789"
	l := newLatch(time.Hour, time.Now)
	l.add(token, "conn_1", true, time.Hour, time.Now())
	if l.get(token) == nil {
		t.Fatal("token not latched")
	}
	for i := range l.shards {
		for k, v := range l.shards[i].c.Items() {
			dump := fmt.Sprintf("%q %+v %#v", k, v.Object, v.Object)
			if strings.Contains(dump, "SECRET") {
				t.Fatalf("latch entry holds the token (fingerprint %s)", Fingerprint(token))
			}
		}
	}
}

func TestLatchedBodyLen(t *testing.T) {
	if want := fmt.Sprint(len(latchedBody)); latchedBodyLen != want {
		t.Fatalf("latchedBodyLen = %s, want %s", latchedBodyLen, want)
	}
}

func TestLatchCountsAndSweeps(t *testing.T) {
	l := newLatch(time.Minute, time.Now)
	now := time.Now()
	for i := range 100 {
		l.add(fmt.Sprint("tok", i), "", true, time.Millisecond, now)
	}
	if n := l.n.Load(); n != 100 {
		t.Fatalf("n = %d, want 100", n)
	}
	time.Sleep(5 * time.Millisecond) // go-cache frees by the wall clock
	later := now.Add(time.Hour)
	for range latchShards {
		l.nextSweep.Store(0)
		l.maybeSweep(later)
	}
	if n := l.n.Load(); n != 0 {
		t.Fatalf("after sweeping every shard n = %d, want 0: the fast path would stay off", n)
	}
	if !l.empty() {
		t.Fatal("latch not empty")
	}
}

func TestBearer(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER  abc ", "abc"},
		{"Basic abc", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"", ""},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		if got := bearer(h); got != tc.want {
			t.Errorf("bearer(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

// TestLatchFilter latches enough tokens to make every shard's filter grow
// several times, expires some, sweeps, and checks that every live token is
// still found, that no healthy one is, and that the filters shrink back.
func TestLatchFilter(t *testing.T) {
	l := newLatch(time.Hour, time.Now)
	now := time.Now()
	const n = 20_000
	for i := range n {
		ttl := time.Hour
		if i%2 == 1 {
			ttl = time.Millisecond // go-cache frees by the wall clock
		}
		l.add(fmt.Sprint("tok", i), fmt.Sprint("conn", i), true, ttl, now)
	}
	for i := 0; i < n; i += 2 {
		if l.get(fmt.Sprint("tok", i)) == nil {
			t.Fatalf("token %d not found", i)
		}
		if l.get(fmt.Sprint("healthy", i)) != nil {
			t.Fatalf("healthy token %d found", i)
		}
	}
	time.Sleep(5 * time.Millisecond)
	later := now.Add(time.Minute)
	for range latchShards {
		l.nextSweep.Store(0)
		l.maybeSweep(later)
	}
	if got := l.n.Load(); got != n/2 {
		t.Fatalf("n = %d after the sweep, want %d", got, n/2)
	}
	for i := range n {
		if e := l.get(fmt.Sprint("tok", i)); (e != nil) != (i%2 == 0) {
			t.Fatalf("token %d: found %v after the sweep", i, e != nil)
		}
	}
	words := 0
	for i := range l.shards {
		if f := l.shards[i].filter.Load(); f != nil {
			words += len(f.words)
		}
	}
	if bits := words * 64; bits > 32*n/2 {
		t.Errorf("filters hold %d bits for %d keys: not rebuilt by the sweep", bits, n/2)
	}

	// A forgotten connection's entry is voided, and its bits go at the
	// next sweep of its shard.
	l.forget("conn0", later)
	if l.get("tok0") != nil {
		t.Fatal("forgotten token still latched")
	}
	if got := l.n.Load(); got != n/2-1 {
		t.Fatalf("n = %d after forget, want %d", got, n/2-1)
	}
}
