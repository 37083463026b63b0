package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// Resealer is a store that seals tokens with a tokenseal.Sealer and can seal
// them again under the Sealer's current key after a key rotation, as
// sqlstore.Store and redisstore.Store do.
type Resealer interface {
	finchreauth.Store
	// Reseal seals again, under the Sealer's current key, every token
	// that is not sealed under it, and returns how many it sealed.
	Reseal(ctx context.Context) (resealed int, err error)
	// Verify counts the records whose token is not sealed under the
	// Sealer's current key, and returns the connection ids of the first
	// few.
	Verify(ctx context.Context) (stale int, first []string, err error)
}

// rotationRecords is how many records Rotation seals: more than a page of
// the stores' Reseal.
const rotationRecords = 1100

// Rotation checks a key rotation on a store of its own: open returns a
// handle on the store with the given Sealer (nil for none), every handle on
// the same data.
//
// It seals tokens under key 1 (and writes one in plaintext, as a replica
// without the Sealer does), rotates to NewAESGCM(key 2, key 1), and runs
// Reseal: first one that is interrupted halfway by its context, then two at
// once while the records are rewritten by Puts. Verify must then count
// nothing left, and a store with key 2 alone must read every token back,
// through Transport.Token and Get, with the data of the last Put: no write
// lost. A token Reseal cannot open is left as it is, and Reseal says so.
func Rotation(t *testing.T, open func(tokenseal.Sealer) Resealer) {
	t.Helper()
	key1, key2 := rotationKey(1), rotationKey(2)
	f := &rotation{fixture: fixture{t: t, ctx: t.Context(), base: newBase(), prefix: newID()}, open: open}
	f.fill(newAESGCM(t, key1))
	f.rotated = open(newAESGCM(t, key2, key1))
	f.s = f.rotated
	f.wantStale("after the rotation", len(f.tokens))
	f.interrupted(key1, key2)
	f.concurrent()
	f.wantStale("after Reseal", 0)
	if n, err := f.rotated.Reseal(f.ctx); n != 0 || err != nil {
		t.Errorf("Reseal again = %d, %s; want 0, nil", n, redact(err))
	}
	f.readBack(open(newAESGCM(t, key2)))
	f.refusals(key2)
}

func rotationKey(id byte) tokenseal.Key {
	return tokenseal.Key{ID: id, Secret: bytes.Repeat([]byte{0x40 + id}, 32)}
}

func newAESGCM(t *testing.T, current tokenseal.Key, previous ...tokenseal.Key) *tokenseal.AESGCM {
	s, err := tokenseal.NewAESGCM(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rotation is Rotation's state: the tokens saved, and the data each
// record's last Put wrote.
type rotation struct {
	fixture
	open    func(tokenseal.Sealer) Resealer
	rotated Resealer // under NewAESGCM(key 2, key 1)
	ids     []string
	tokens  map[string]finchreauth.Token
	data    map[string]string
	puts    int // by rewrite
}

// fill writes rotationRecords records with tokens sealed by sealer, one
// with its token in plaintext, and one without a token.
func (f *rotation) fill(sealer tokenseal.Sealer) {
	f.t.Helper()
	f.tokens, f.data = map[string]finchreauth.Token{}, map[string]string{}
	s := f.open(sealer)
	for i := range rotationRecords + 2 {
		id := f.id(fmt.Sprintf("_%04d", i))
		r := finchreauth.Record{ConnectionID: id, Token: newToken(), Data: []byte("first")}
		switch i {
		case rotationRecords:
			s = f.open(nil) // a replica without the Sealer
		case rotationRecords + 1:
			r.Token = ""
		}
		if _, err := s.Put(f.ctx, r); err != nil {
			f.t.Fatalf("Put(%q): %s", id, redact(err))
		}
		f.ids = append(f.ids, id)
		f.data[id] = "first"
		if r.Token != "" {
			f.tokens[id] = r.Token
		}
	}
}

// wantStale checks that Verify counts n stale tokens.
func (f *rotation) wantStale(when string, n int) {
	f.t.Helper()
	stale, first, err := f.rotated.Verify(f.ctx)
	if err != nil || stale != n || (n == 0) != (len(first) == 0) || len(first) > n {
		f.t.Fatalf("%s: Verify = %d, %q, %s; want %d", when, stale, first, redact(err), n)
	}
}

// interrupted runs a Reseal whose context is cancelled halfway: it fails
// with the context's error, having sealed some tokens again and not others.
func (f *rotation) interrupted(key1, key2 tokenseal.Key) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	s := f.open(&cancelling{AESGCM: newAESGCM(f.t, key2, key1), after: len(f.tokens) / 2, cancel: cancel})
	if _, err := s.Reseal(ctx); !errors.Is(err, context.Canceled) {
		f.t.Fatalf("Reseal cancelled halfway: %s; want context.Canceled", redact(err))
	}
	stale, _, err := f.rotated.Verify(f.ctx)
	if err != nil || stale == 0 || stale >= len(f.tokens) {
		f.t.Fatalf("Verify after an interrupted Reseal = %d, %s; want some of %d", stale, redact(err), len(f.tokens))
	}
	f.t.Logf("a Reseal cancelled at its %dth seal left %d of %d tokens to seal again", len(f.tokens)/2, stale, len(f.tokens))
}

// cancelling is a Sealer that cancels a context at its after-th Seal.
type cancelling struct {
	*tokenseal.AESGCM
	after  int
	n      atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelling) Seal(plaintext, additionalData []byte) ([]byte, error) {
	if c.n.Add(1) == int64(c.after) {
		c.cancel()
	}
	return c.AESGCM.Seal(plaintext, additionalData)
}

// concurrent runs two Reseals at once, as replicas do, while Puts rewrite
// the first hundred records; both finish without error.
func (f *rotation) concurrent() {
	f.t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { f.rewrite(done) })
	errs, counts := make([]error, 2), make([]int, 2)
	var resealers sync.WaitGroup
	for i := range errs {
		resealers.Go(func() { counts[i], errs[i] = f.rotated.Reseal(f.ctx) })
	}
	resealers.Wait()
	close(done)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			f.t.Fatalf("two Reseals at once: %s", redact(err))
		}
	}
	f.t.Logf("two Reseals at once sealed %d and %d tokens again, while %d Puts rewrote records", counts[0], counts[1], f.puts)
}

// rewrite puts the first hundred records again with new data, in turn,
// until done is closed, and keeps the data of each one's last Put.
func (f *rotation) rewrite(done chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		default:
		}
		id := f.ids[i%100]
		r, err := f.s.Get(f.ctx, id)
		if err != nil {
			f.t.Errorf("Get(%q) during Reseal: %s", id, redact(err))
			return
		}
		r.Data = fmt.Appendf(nil, "put %d", i)
		switch _, err := f.s.Put(f.ctx, r); {
		case errors.Is(err, finchreauth.ErrConflict):
		case err != nil:
			f.t.Errorf("Put(%q) during Reseal: %s", id, redact(err))
			return
		default:
			f.data[id] = string(r.Data)
			f.puts++
		}
	}
}

// readBack reads every token and record through s, which holds key 2
// alone.
func (f *rotation) readBack(s Resealer) {
	f.t.Helper()
	tr := &finchreauth.Transport{Store: s}
	defer tr.Close()
	bad := 0
	for _, id := range f.ids {
		tok, err := tr.Token(f.ctx, id)
		if want := f.tokens[id]; tok != want || (want != "" && err != nil) {
			bad++
			if bad <= 5 {
				f.t.Errorf("with key 2 alone, Transport.Token(%q) = %s, %s; want %s", id, fmtToken(tok), redact(err), fmtToken(want))
			}
		}
		r, err := s.Get(f.ctx, id)
		if err != nil || string(r.Data) != f.data[id] {
			bad++
			if bad <= 5 {
				f.t.Errorf("with key 2 alone, Get(%q) = data %q, %s; want data %q (a Put lost?)", id, r.Data, redact(err), f.data[id])
			}
		}
	}
	if bad > 0 {
		f.t.Errorf("%d reads failed of %d records", bad, len(f.ids))
	}
}

// refusals: Reseal and Verify refuse a Sealer that cannot tell its
// current key; a token sealed under a key the Sealer lacks is left as it
// is, and counted by Verify.
func (f *rotation) refusals(key2 tokenseal.Key) {
	f.t.Helper()
	for _, sealer := range []tokenseal.Sealer{nil, opaque{newAESGCM(f.t, key2)}} {
		s := f.open(sealer)
		if _, err := s.Reseal(f.ctx); err == nil {
			f.t.Errorf("Reseal with a Sealer of type %T succeeded", sealer)
		}
		if _, _, err := s.Verify(f.ctx); err == nil {
			f.t.Errorf("Verify with a Sealer of type %T succeeded", sealer)
		}
	}
	lost := f.id("_lost")
	if _, err := f.open(newAESGCM(f.t, rotationKey(9))).Put(f.ctx, finchreauth.Record{ConnectionID: lost, Token: newToken()}); err != nil {
		f.t.Fatal(redact(err))
	}
	s := f.open(newAESGCM(f.t, key2))
	if n, err := s.Reseal(f.ctx); n != 0 || !errors.Is(err, tokenseal.ErrUnknownKey) {
		f.t.Errorf("Reseal with a token under a key it lacks = %d, %s; want 0 and ErrUnknownKey", n, redact(err))
	}
	if stale, first, err := s.Verify(f.ctx); stale != 1 || len(first) != 1 || first[0] != lost || err != nil {
		f.t.Errorf("Verify with a token under a key it lacks = %d, %q, %s; want 1, [%q]", stale, first, redact(err), lost)
	}
}

// opaque hides a Sealer's IsCurrent.
type opaque struct{ tokenseal.Sealer }
