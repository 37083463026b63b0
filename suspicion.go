package finchreauth

import (
	"context"
	"crypto/rand"
	"hash/maphash"
	"net/http"
	"sync"
	"time"
)

// Suspected revocation. Finch sometimes answers a revoked connection with
// 500 server_error instead of a 401 (FINCH.md): repeated 500s on one token
// while Finch answers the others are a reason to ask /introspect about its
// connection, never a re-authentication by themselves. The 500s are
// counted per token in memory (by a keyed hash; never the token); when one
// token has had suspectAfter of them within suspectWindow, and fewer than
// outageTokens tokens had any (more is Finch's own trouble, not one
// connection's), its connection owes a check (the same check a
// contradicting webhook owes), at most once per suspectEvery per token.

const (
	suspectAfter  = 3
	suspectWindow = 10 * time.Minute
	suspectEvery  = time.Hour
	outageTokens  = 5
	maxSuspects   = 1024
)

// suspicions counts recent 500s per token.
type suspicions struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64]*suspect
}

type suspect struct {
	first, last time.Time // of the 500s counted
	n           int
	asked       time.Time
}

// note counts a 500 for the token hashed as h at now, and reports whether
// its connection should be asked about now.
func (s *suspicions) note(h uint64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]*suspect{}
	}
	recent := 0
	for k, x := range s.m {
		if now.Sub(x.last) > suspectWindow && now.Sub(x.asked) > suspectEvery {
			delete(s.m, k) // forgotten: nothing recent, not asked lately
			continue
		}
		if k != h && now.Sub(x.last) <= suspectWindow {
			recent++
		}
	}
	x := s.m[h]
	if x == nil {
		if len(s.m) >= maxSuspects {
			return false
		}
		x = &suspect{}
		s.m[h] = x
	}
	if now.Sub(x.first) > suspectWindow {
		x.first, x.n = now, 0
	}
	x.n++
	x.last = now
	if x.n < suspectAfter || recent >= outageTokens-1 || now.Sub(x.asked) < suspectEvery {
		return false
	}
	x.asked = now
	return true
}

// on500 takes in a 500 Finch answered on a watched call: the suspicion may
// queue a check of the token's connection. The caller gets the response as
// it came, unread.
func (t *Transport) on500(req *http.Request) {
	token := bearer(req.Header)
	if token == "" || !t.suspects.note(maphash.String(t.suspects.seed, token), t.now()) {
		return
	}
	t.count(req.Context(), "finchreauth.suspicions", "")
	t.enqueue(req.Context(), detection{token: token, at: t.now(), method: req.Method, path: req.URL.Path, base: t.base(), ctx: req.Context(), suspect: true})
}

// suspected: Finch answered the saved token's calls with repeated 500s; its
// connection owes a check.
type suspected struct {
	fp     string
	holder string
}

func (suspected) isInput() {}

func (l *life) onSuspected(in suspected, now time.Time, p policy) outcome {
	if l.Token == "" || in.fp != l.savedFP() {
		return outcome{} // not the token the application uses
	}
	var o outcome
	l.verify(&o, "repeated 500s from Finch", nil, in.holder, now, p)
	return o
}

// handleSuspicion asks about the connection of a token Finch answered with
// repeated 500s, if the Store knows it as the connection's token.
func (t *Transport) handleSuspicion(ctx context.Context, d detection) {
	fp := Token(d.token).Fingerprint()
	conn, err := storeCall(t, ctx, subject{fp: fp}, func(ctx context.Context, s Store) (string, error) { return s.Lookup(ctx, fp) })
	if err != nil {
		return // unknown: no connection of the application's to ask about
	}
	l, o, err := t.apply(ctx, conn, suspected{fp: fp, holder: rand.Text()})
	if err == nil {
		t.carry(ctx, conn, l, o.run, carrier{base: d.base})
	}
}
