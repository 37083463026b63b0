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
	l := newLatch(time.Hour)
	l.add(token, "conn_1", true, time.Hour, time.Now())
	if l.get(token, time.Now()) == nil {
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
	l := newLatch(time.Minute)
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
