// Package storetest checks that a finchreauth.Store keeps the contract
// written on the interface's methods. A store module runs the suite from its
// own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) finchreauth.Store {
//			return newStore(t) // may register t.Cleanup to close it
//		})
//	}
//
// and may measure the store with Bench:
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore(b)) }
//
// The suite works on random connection ids, so a store backed by a shared
// database can run it as often as it likes, and names tokens by their
// fingerprint only: a failure never prints an access token.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

const (
	// lease is the length of the notification leases the suite asks for.
	lease = time.Minute
	// usec is the precision the suite expects a store to keep times to.
	usec = time.Microsecond
	// minSuperseded is how many replaced fingerprints the contract says a
	// store remembers, at least.
	minSuperseded = 8
	// goroutines is how many callers the concurrency tests race.
	goroutines = 64
)

// Run runs the conformance suite against the stores newStore returns, one
// subtest per clause of the contract.
//
// newStore is called once by every subtest, with that subtest's t; it may
// register t.Cleanup to close what it opened. It may return a new store each
// time or the same one: every subtest uses keys of its own (random
// connection ids) and assumes nothing about what else the store holds.
//
// The suite passes times near the current time, truncated to the
// microsecond, which the store must give back as the same instants
// (time.Time.Equal); their location may change. It never sleeps: leases run
// on the Mark's At, not on the clock.
func Run(t *testing.T, newStore func(t *testing.T) finchreauth.Store) {
	t.Helper()
	if newStore == nil {
		t.Fatal("storetest: Run needs a newStore function")
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T, func(*testing.T) finchreauth.Store)
	}{
		{"MarkReauth/StartsEpisode", testStartsEpisode},
		{"MarkReauth/Lease", testLease},
		{"MarkReauth/Stale", testStale},
		{"MarkNotified", testMarkNotified},
		{"SaveToken/EndsEpisode", testSaveEndsEpisode},
		{"SaveToken/IssuedAt", testSaveIssuedAt},
		{"SaveToken/Invalid", testSaveInvalid},
		{"SaveToken/Superseded", testSuperseded},
		{"Token", testToken},
		{"State/NotFound", testStateNotFound},
		{"KeysIndependent", testKeysIndependent},
		{"CancelledContext", testCancelled},
		{"Concurrent/MarkReauthNewEpisode", testConcurrentStart},
		{"Concurrent/MarkReauthLeaseExpired", testConcurrentLease},
		{"Concurrent/SaveToken", testConcurrentSave},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore) })
	}
}

// fixture is one subtest's store, context and time base.
type fixture struct {
	t    *testing.T
	s    finchreauth.Store
	ctx  context.Context
	base time.Time
}

func start(t *testing.T, newStore func(*testing.T) finchreauth.Store) *fixture {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("storetest: newStore returned nil")
	}
	return &fixture{t: t, s: s, ctx: t.Context(), base: newBase()}
}

// newBase returns a time near now with a microsecond part, so that a store
// keeping only milliseconds fails.
func newBase() time.Time { return time.Now().UTC().Truncate(time.Second).Add(123456 * usec) }

// at returns the instant d after the fixture's base.
func (f *fixture) at(d time.Duration) time.Time { return f.base.Add(d) }

// rel formats tm relative to the base, for failure messages.
func (f *fixture) rel(tm time.Time) string {
	if tm.IsZero() {
		return "zero"
	}
	return "base" + signed(tm.Sub(f.base))
}

func signed(d time.Duration) string {
	if d < 0 {
		return d.String()
	}
	return "+" + d.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// newKey returns a connection id no other subtest uses.
func newKey() string { return "conn_" + randHex(8) }

// newFPKey returns a key of the form used when /introspect did not answer,
// and the fingerprint it names.
func newFPKey() (key, fp string) {
	fp = finchreauth.Fingerprint("storetest-unknown-" + randHex(16))
	return "fp:" + fp, fp
}

// randomFP returns the fingerprint of a token no store has seen.
func randomFP() string { return finchreauth.Fingerprint("storetest-unseen-" + randHex(16)) }

// token returns a new token for conn issued d after the base.
func (f *fixture) token(conn string, d time.Duration) finchreauth.Token {
	return finchreauth.Token{
		ConnectionID: conn,
		AccessToken:  "storetest-secret-" + randHex(16),
		IssuedAt:     f.at(d),
	}
}

// connOf returns the connection id a Transport would put in a Mark for key.
func connOf(key string) string {
	if strings.HasPrefix(key, "fp:") {
		return ""
	}
	return key
}

func (f *fixture) newMark(key, fp, episode string, at, leaseUntil time.Duration) finchreauth.Mark {
	return finchreauth.Mark{
		Key:              key,
		ConnectionID:     connOf(key),
		TokenFingerprint: fp,
		Episode:          episode,
		At:               f.at(at),
		LeaseUntil:       f.at(leaseUntil),
	}
}

// mark calls MarkReauth and fails the test if it returns an error.
func (f *fixture) mark(key, fp, episode string, at, leaseUntil time.Duration) finchreauth.MarkResult {
	f.t.Helper()
	res, err := f.s.MarkReauth(f.ctx, f.newMark(key, fp, episode, at, leaseUntil))
	if err != nil {
		f.t.Fatalf("MarkReauth(key %s, episode %q, At %s): %v", key, episode, f.rel(f.at(at)), err)
	}
	return res
}

// notified calls MarkNotified and fails the test if it returns an error.
func (f *fixture) notified(key, episode string) {
	f.t.Helper()
	if err := f.s.MarkNotified(f.ctx, key, episode); err != nil {
		f.t.Fatalf("MarkNotified(%s, %q): %v", key, episode, err)
	}
}

// save calls SaveToken and fails the test if it returns an error.
func (f *fixture) save(tok finchreauth.Token) finchreauth.State {
	f.t.Helper()
	prev, err := f.s.SaveToken(f.ctx, tok)
	if err != nil {
		f.t.Fatalf("SaveToken(token %s of %s, IssuedAt %s): %s", tok.Fingerprint(), tok.ConnectionID, f.rel(tok.IssuedAt), redact(err, tok))
	}
	return prev
}

// state calls State and fails the test if it returns an error.
func (f *fixture) state(key string) finchreauth.State {
	f.t.Helper()
	st, err := f.s.State(f.ctx, key)
	if err != nil {
		f.t.Fatalf("State(%s): %v", key, err)
	}
	return st
}

// wantNoState checks that State(key) fails with ErrNotFound.
func (f *fixture) wantNoState(key string) {
	f.t.Helper()
	if st, err := f.s.State(f.ctx, key); !errors.Is(err, finchreauth.ErrNotFound) {
		f.t.Errorf("State(%s) = %s, %v; want ErrNotFound", key, f.fmtState(st), err)
	}
}

// wantNoToken checks that Token(conn) fails with ErrNotFound.
func (f *fixture) wantNoToken(conn string) {
	f.t.Helper()
	if tok, err := f.s.Token(f.ctx, conn); !errors.Is(err, finchreauth.ErrNotFound) {
		f.t.Errorf("Token(%s) = token %s, %v; want ErrNotFound", conn, fpOf(tok), err)
	}
}

// wantToken checks that Token(want.ConnectionID) returns want.
func (f *fixture) wantToken(want finchreauth.Token) {
	f.t.Helper()
	got, err := f.s.Token(f.ctx, want.ConnectionID)
	if err != nil {
		f.t.Errorf("Token(%s): %v; want token %s", want.ConnectionID, err, want.Fingerprint())
		return
	}
	if got.ConnectionID != want.ConnectionID || got.AccessToken != want.AccessToken || !got.IssuedAt.Equal(want.IssuedAt) {
		f.t.Errorf("Token(%s) = token %s of %q issued %s; want token %s of %q issued %s",
			want.ConnectionID, fpOf(got), got.ConnectionID, f.rel(got.IssuedAt),
			want.Fingerprint(), want.ConnectionID, f.rel(want.IssuedAt))
	}
}

// fpOf names tok by fingerprint, or says it is empty.
func fpOf(tok finchreauth.Token) string {
	if tok.AccessToken == "" {
		return "(empty)"
	}
	return tok.Fingerprint()
}

// redact returns err's message with tok's access token replaced by its
// fingerprint, so that a store's error can be printed safely.
func redact(err error, tok finchreauth.Token) string {
	if err == nil {
		return "<nil>"
	}
	msg := err.Error()
	if tok.AccessToken != "" && strings.Contains(msg, tok.AccessToken) {
		msg = strings.ReplaceAll(msg, tok.AccessToken, "[access token "+tok.Fingerprint()+"]")
		msg += " (the store's error contains the access token)"
	}
	return msg
}

func (f *fixture) fmtResult(r finchreauth.MarkResult) string {
	return fmt.Sprintf("{Transitioned:%t Notify:%t Notified:%t Stale:%t Episode:%q Since:%s}",
		r.Transitioned, r.Notify, r.Notified, r.Stale, r.Episode, f.rel(r.Since))
}

func (f *fixture) fmtState(s finchreauth.State) string {
	return fmt.Sprintf("{Key:%q ConnectionID:%q NeedsReauth:%t Episode:%q Since:%s Notified:%t LeaseUntil:%s TokenFingerprint:%q TokenIssuedAt:%s Superseded:%q}",
		s.Key, s.ConnectionID, s.NeedsReauth, s.Episode, f.rel(s.Since), s.Notified, f.rel(s.LeaseUntil),
		s.TokenFingerprint, f.rel(s.TokenIssuedAt), s.Superseded)
}

// checkResult compares every field of a MarkResult.
func (f *fixture) checkResult(what string, got, want finchreauth.MarkResult) {
	f.t.Helper()
	if got.Transitioned != want.Transitioned || got.Notify != want.Notify || got.Notified != want.Notified ||
		got.Stale != want.Stale || got.Episode != want.Episode || !got.Since.Equal(want.Since) {
		f.t.Errorf("%s: MarkReauth = %s, want %s", what, f.fmtResult(got), f.fmtResult(want))
	}
}

// stale is MarkReauth's whole answer for a superseded token.
func stale() finchreauth.MarkResult { return finchreauth.MarkResult{Stale: true} }

// checkState compares got with want. The contract leaves open what a store
// keeps of an ended episode and of a lease no longer held, so, unless
// strict, Episode, Since, Notified and LeaseUntil are compared only when
// want.NeedsReauth, and LeaseUntil only while the episode is not notified.
func (f *fixture) checkState(what string, got, want finchreauth.State, strict bool) {
	f.t.Helper()
	var diffs []string
	diff := func(field string, ok bool, g, w any) {
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
		}
	}
	diff("Key", got.Key == want.Key, fmt.Sprintf("%q", got.Key), fmt.Sprintf("%q", want.Key))
	diff("ConnectionID", got.ConnectionID == want.ConnectionID, fmt.Sprintf("%q", got.ConnectionID), fmt.Sprintf("%q", want.ConnectionID))
	diff("NeedsReauth", got.NeedsReauth == want.NeedsReauth, got.NeedsReauth, want.NeedsReauth)
	if strict || want.NeedsReauth {
		diff("Episode", got.Episode == want.Episode, fmt.Sprintf("%q", got.Episode), fmt.Sprintf("%q", want.Episode))
		diff("Since", got.Since.Equal(want.Since), f.rel(got.Since), f.rel(want.Since))
		diff("Notified", got.Notified == want.Notified, got.Notified, want.Notified)
		if strict || !want.Notified {
			diff("LeaseUntil", got.LeaseUntil.Equal(want.LeaseUntil), f.rel(got.LeaseUntil), f.rel(want.LeaseUntil))
		}
	}
	diff("TokenFingerprint", got.TokenFingerprint == want.TokenFingerprint, fmt.Sprintf("%q", got.TokenFingerprint), fmt.Sprintf("%q", want.TokenFingerprint))
	diff("TokenIssuedAt", got.TokenIssuedAt.Equal(want.TokenIssuedAt), f.rel(got.TokenIssuedAt), f.rel(want.TokenIssuedAt))
	diff("Superseded", slices.Equal(got.Superseded, want.Superseded), fmt.Sprintf("%q", got.Superseded), fmt.Sprintf("%q", want.Superseded))
	if len(diffs) > 0 {
		f.t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// checkUnchanged checks that key's state is exactly before.
func (f *fixture) checkUnchanged(what, key string, before finchreauth.State) {
	f.t.Helper()
	f.checkState(what+": State changed", f.state(key), before, true)
}

// episodeState is the state of a key with no saved token in episode ep,
// which MarkReauth started with the token of fingerprint fp: that
// fingerprint becomes the key's TokenFingerprint.
func episodeState(key, fp, ep string, since, leaseUntil time.Time) finchreauth.State {
	return finchreauth.State{Key: key, ConnectionID: connOf(key), NeedsReauth: true, Episode: ep, Since: since, LeaseUntil: leaseUntil, TokenFingerprint: fp}
}

// tokenState is the state of a connection whose saved token is tok, with no
// episode.
func tokenState(tok finchreauth.Token, superseded ...string) finchreauth.State {
	return finchreauth.State{
		Key: tok.ConnectionID, ConnectionID: tok.ConnectionID,
		TokenFingerprint: tok.Fingerprint(), TokenIssuedAt: tok.IssuedAt, Superseded: superseded,
	}
}

// checkZeroState checks that prev is the zero State.
func (f *fixture) checkZeroState(what string, prev finchreauth.State) {
	f.t.Helper()
	f.checkState(what, prev, finchreauth.State{}, true)
}

func testStartsEpisode(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name string
		// setup prepares key and returns the fingerprint to mark and
		// the state expected before the mark.
		setup func(f *fixture, key string) (fp string, before finchreauth.State)
		fpKey bool
	}{
		{name: "unknown key", setup: func(f *fixture, key string) (string, finchreauth.State) {
			fp := randomFP()
			return fp, finchreauth.State{Key: key, ConnectionID: key, TokenFingerprint: fp}
		}},
		{name: "fp key", fpKey: true, setup: func(f *fixture, key string) (string, finchreauth.State) {
			fp := strings.TrimPrefix(key, "fp:")
			return fp, finchreauth.State{Key: key, TokenFingerprint: fp}
		}},
		{name: "saved token", setup: func(f *fixture, key string) (string, finchreauth.State) {
			tok := f.token(key, -time.Hour)
			f.save(tok)
			return tok.Fingerprint(), tokenState(tok)
		}},
		{name: "ended episode", setup: func(f *fixture, key string) (string, finchreauth.State) {
			old := f.token(key, -2*time.Hour)
			f.save(old)
			f.mark(key, old.Fingerprint(), "ep0", -90*time.Minute, -89*time.Minute)
			f.notified(key, "ep0")
			tok := f.token(key, -time.Hour)
			f.save(tok)
			return tok.Fingerprint(), tokenState(tok, old.Fingerprint())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			key := newKey()
			if c.fpKey {
				key, _ = newFPKey()
			}
			fp, want := c.setup(f, key)
			res := f.mark(key, fp, "ep1", 0, lease)
			f.checkResult("first mark", res, finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep1", Since: f.at(0)})
			want.NeedsReauth, want.Episode, want.Since, want.Notified, want.LeaseUntil = true, "ep1", f.at(0), false, f.at(lease)
			f.checkState("after the first mark", f.state(key), want, false)

			// A second detection joins the episode: it neither starts
			// another nor takes the lease still held.
			res = f.mark(key, fp, "ep2", time.Second, time.Second+lease)
			f.checkResult("second mark, lease held", res, finchreauth.MarkResult{Episode: "ep1", Since: f.at(0)})
			f.checkState("after the second mark", f.state(key), want, false)
		})
	}
}

func testLease(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	type call struct {
		at, until  time.Duration
		wantNotify bool
	}
	// Every case starts an episode at base with a lease until base+lease,
	// then makes these calls in order.
	for _, c := range []struct {
		name  string
		calls []call
	}{
		{"held until it ends", []call{{lease - usec, 2 * lease, false}}},
		{"ends exactly at At", []call{{lease, 2 * lease, true}}},
		{"expired", []call{{5 * lease, 6 * lease, true}}},
		{"caller clock behind Since", []call{{-time.Second, lease, false}}},
		{"renewed lease is held until it ends", []call{
			{2 * lease, 4 * lease, true},
			{3 * lease, 5 * lease, false},
			{4*lease - usec, 5 * lease, false},
			{4 * lease, 5 * lease, true},
			{4 * lease, 6 * lease, false},
		}},
		{"only one caller per expiry", []call{
			{2 * lease, 3 * lease, true},
			{2 * lease, 3 * lease, false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			key := newKey()
			fp := randomFP()
			f.mark(key, fp, "ep1", 0, lease)
			want := episodeState(key, fp, "ep1", f.at(0), f.at(lease))
			for i, call := range c.calls {
				what := fmt.Sprintf("call %d at %s", i+1, f.rel(f.at(call.at)))
				res := f.mark(key, fp, fmt.Sprintf("ep%d", i+2), call.at, call.until)
				f.checkResult(what, res, finchreauth.MarkResult{Notify: call.wantNotify, Episode: "ep1", Since: f.at(0)})
				if call.wantNotify {
					want.LeaseUntil = f.at(call.until)
				}
				f.checkState(what, f.state(key), want, false)
			}
		})
	}
}

func testStale(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	t.Run("replaced token", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -2*time.Hour), f.token(key, -time.Hour)
		f.save(a)
		f.save(b)
		before := f.state(key)
		f.checkResult("mark of the replaced token", f.mark(key, a.Fingerprint(), "ep1", 0, lease), stale())
		f.checkUnchanged("mark of the replaced token", key, before)
		f.checkResult("mark of the current token", f.mark(key, b.Fingerprint(), "ep2", 0, lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep2", Since: f.at(0)})
	})
	t.Run("episode the new token ended", func(t *testing.T) {
		// The common case: requests in flight with the broken token
		// come back after the reconnect.
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -2*time.Hour), f.token(key, lease/2)
		f.save(a)
		f.mark(key, a.Fingerprint(), "ep1", 0, lease)
		f.notified(key, "ep1")
		f.save(b)
		before := f.state(key)
		for _, at := range []time.Duration{lease / 2, lease, 10 * lease} {
			f.checkResult("late mark of the replaced token at "+f.rel(f.at(at)), f.mark(key, a.Fingerprint(), "ep2", at, at+lease), stale())
		}
		f.checkUnchanged("late marks of the replaced token", key, before)
	})
	t.Run("during an episode", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -2*time.Hour), f.token(key, -time.Hour)
		f.save(a)
		f.save(b)
		f.mark(key, b.Fingerprint(), "ep1", 0, lease)
		before := f.state(key)
		f.checkResult("mark of the replaced token after the lease", f.mark(key, a.Fingerprint(), "ep2", 2*lease, 3*lease), stale())
		f.checkUnchanged("mark of the replaced token", key, before)
		// The stale call took no lease: the next caller gets it.
		f.checkResult("mark of the current token after the lease", f.mark(key, b.Fingerprint(), "ep3", 2*lease, 3*lease),
			finchreauth.MarkResult{Notify: true, Episode: "ep1", Since: f.at(0)})
	})
	t.Run("unknown token", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		f.save(f.token(key, -2*time.Hour))
		f.save(f.token(key, -time.Hour))
		f.checkResult("mark of a token never saved", f.mark(key, randomFP(), "ep1", 0, lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep1", Since: f.at(0)})
	})
	t.Run("token saved twice", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a := f.token(key, -time.Hour)
		f.save(a)
		f.save(a)
		f.checkResult("mark of the token saved twice", f.mark(key, a.Fingerprint(), "ep1", 0, lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep1", Since: f.at(0)})
	})
	t.Run("token saved again after another", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -3*time.Hour), f.token(key, -2*time.Hour)
		a2 := a
		a2.IssuedAt = f.at(-time.Hour)
		f.save(a)
		f.save(b)
		f.save(a2)
		f.checkState("after saving A, B, then A again", f.state(key), tokenState(a2, b.Fingerprint()), false)
		f.checkResult("mark of B", f.mark(key, b.Fingerprint(), "ep1", 0, lease), stale())
		f.checkResult("mark of A, current again", f.mark(key, a.Fingerprint(), "ep2", 0, lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep2", Since: f.at(0)})
	})
}

func testMarkNotified(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name string
		// setup prepares key and returns the episode to pass to
		// MarkNotified and the one that must be current afterwards
		// ("" for none).
		setup   func(f *fixture, key string) (notify, current string)
		wantHit bool // whether MarkNotified marks the current episode
	}{
		{name: "current episode", wantHit: true, setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", 0, lease)
			return "ep1", "ep1"
		}},
		{name: "current episode after its lease", wantHit: true, setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", -2*lease, -lease)
			return "ep1", "ep1"
		}},
		{name: "other episode", setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", 0, lease)
			return "ep2", "ep1"
		}},
		{name: "empty episode", setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", 0, lease)
			return "", "ep1"
		}},
		{name: "ended episode, then a new one", setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", -3*lease, -2*lease)
			f.save(f.token(key, -time.Hour))
			f.mark(key, randomFP(), "ep2", 0, lease)
			return "ep1", "ep2"
		}},
		{name: "ended episode", setup: func(f *fixture, key string) (string, string) {
			f.mark(key, randomFP(), "ep1", -3*lease, -2*lease)
			f.save(f.token(key, -time.Hour))
			return "ep1", ""
		}},
		{name: "no episode, empty id", setup: func(f *fixture, key string) (string, string) {
			f.save(f.token(key, -time.Hour))
			return "", ""
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			key := newKey()
			ep, current := c.setup(f, key)
			before := f.state(key)
			f.notified(key, ep)
			want := before
			if c.wantHit {
				want.Notified = true
			}
			f.checkState(fmt.Sprintf("after MarkNotified(%q)", ep), f.state(key), want, false)

			// A detection after the lease ended is told whether the
			// episode is notified, and gets the lease only if not.
			res := f.mark(key, randomFP(), "ep9", 2*lease, 3*lease)
			wantRes := finchreauth.MarkResult{Notified: c.wantHit, Notify: !c.wantHit, Episode: current, Since: before.Since}
			if current == "" {
				wantRes = finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep9", Since: f.at(2 * lease)}
			}
			f.checkResult(fmt.Sprintf("mark after MarkNotified(%q)", ep), res, wantRes)
		})
	}
	t.Run("twice", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		fp := randomFP()
		f.mark(key, fp, "ep1", 0, lease)
		f.notified(key, "ep1")
		f.notified(key, "ep1")
		want := episodeState(key, fp, "ep1", f.at(0), time.Time{})
		want.Notified = true
		f.checkState("after MarkNotified twice", f.state(key), want, false)
	})
	t.Run("unknown key", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		f.notified(key, "ep1")
		f.wantNoState(key)
		f.checkResult("mark after MarkNotified of an unknown key", f.mark(key, randomFP(), "ep1", 0, lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep1", Since: f.at(0)})
	})
}

func testSaveEndsEpisode(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	t.Run("first token", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		tok := f.token(key, 0)
		f.checkZeroState("SaveToken's previous state of a new connection", f.save(tok))
		f.checkState("after the first SaveToken", f.state(key), tokenState(tok), false)
	})
	t.Run("notified episode", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -time.Hour), f.token(key, 2*lease)
		f.save(a)
		f.mark(key, a.Fingerprint(), "ep1", 0, lease)
		f.notified(key, "ep1")
		prev := f.save(b)
		wantPrev := tokenState(a)
		wantPrev.NeedsReauth, wantPrev.Episode, wantPrev.Since, wantPrev.Notified = true, "ep1", f.at(0), true
		f.checkState("SaveToken's previous state", prev, wantPrev, false)
		f.checkState("after SaveToken", f.state(key), tokenState(b, a.Fingerprint()), false)
		f.checkResult("mark after SaveToken", f.mark(key, b.Fingerprint(), "ep2", 3*lease, 4*lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep2", Since: f.at(3 * lease)})
	})
	t.Run("episode not notified", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, -time.Hour), f.token(key, lease/2)
		f.save(a)
		f.mark(key, a.Fingerprint(), "ep1", 0, lease)
		prev := f.save(b)
		wantPrev := tokenState(a)
		wantPrev.NeedsReauth, wantPrev.Episode, wantPrev.Since, wantPrev.LeaseUntil = true, "ep1", f.at(0), f.at(lease)
		f.checkState("SaveToken's previous state", prev, wantPrev, false)
		f.checkState("after SaveToken", f.state(key), tokenState(b, a.Fingerprint()), false)
		// The ended episode's lease does not outlive it.
		f.checkResult("mark after SaveToken, within the old lease", f.mark(key, b.Fingerprint(), "ep2", lease/2, lease/2+lease),
			finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep2", Since: f.at(lease / 2)})
	})
	t.Run("episode without a saved token", func(t *testing.T) {
		// The application never saved the broken token through the
		// store: MarkReauth remembered its fingerprint, and the reconnect
		// supersedes it, so requests still in flight with it come back
		// Stale instead of starting a second episode (and a second
		// notification) on a connection just repaired.
		f := start(t, newStore)
		key := newKey()
		fp := randomFP()
		f.mark(key, fp, "ep1", 0, lease)
		tok := f.token(key, lease/2)
		prev := f.save(tok)
		f.checkState("SaveToken's previous state", prev, episodeState(key, fp, "ep1", f.at(0), f.at(lease)), false)
		f.checkState("after SaveToken", f.state(key), tokenState(tok, fp), false)
		f.checkResult("late mark of the broken token", f.mark(key, fp, "ep2", lease, 2*lease), stale())
	})
	t.Run("previous state lists superseded", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b, c := f.token(key, -3*time.Hour), f.token(key, -2*time.Hour), f.token(key, -time.Hour)
		f.save(a)
		f.save(b)
		prev := f.save(c)
		f.checkState("SaveToken's previous state", prev, tokenState(b, a.Fingerprint()), false)
		f.checkState("after SaveToken", f.state(key), tokenState(c, b.Fingerprint(), a.Fingerprint()), false)
	})
}

func testSaveIssuedAt(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	t.Run("older token refused", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		newer, older := f.token(key, time.Hour), f.token(key, time.Hour-usec)
		f.save(f.token(key, 0))
		f.save(newer)
		f.mark(key, newer.Fingerprint(), "ep1", 0, lease)
		before := f.state(key)
		prev, err := f.s.SaveToken(f.ctx, older)
		if !errors.Is(err, finchreauth.ErrStaleToken) {
			t.Errorf("SaveToken(token issued 1usec before the saved one) = %s, %s; want ErrStaleToken", f.fmtState(prev), redact(err, older))
		}
		if err != nil && strings.Contains(err.Error(), older.AccessToken) {
			t.Errorf("SaveToken's error contains the access token %s", older.Fingerprint())
		}
		f.checkUnchanged("refused SaveToken", key, before)
		f.wantToken(newer)
		// The refused token was never current: it is not superseded.
		f.checkResult("mark of the refused token after the lease", f.mark(key, older.Fingerprint(), "ep2", 2*lease, 3*lease),
			finchreauth.MarkResult{Notify: true, Episode: "ep1", Since: f.at(0)})
	})
	t.Run("equal IssuedAt accepted", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a, b := f.token(key, 0), f.token(key, 0)
		f.save(a)
		f.checkState("SaveToken's previous state", f.save(b), tokenState(a), false)
		f.checkState("after SaveToken", f.state(key), tokenState(b, a.Fingerprint()), false)
		f.wantToken(b)
	})
	t.Run("same token again", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		a := f.token(key, 0)
		f.save(a)
		f.checkState("SaveToken's previous state", f.save(a), tokenState(a), false)
		f.checkState("after saving the same token twice", f.state(key), tokenState(a), false)
		f.wantToken(a)
	})
}

func testSaveInvalid(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name     string
		conn     string
		access   string
		hasToken bool // the connection already has a saved token
	}{
		{name: "no connection id", access: "storetest-secret-" + randHex(16)},
		{name: "no access token", conn: newKey()},
		{name: "no access token, token saved", conn: newKey(), hasToken: true},
		{name: "neither"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			var before finchreauth.State
			var saved finchreauth.Token
			if c.hasToken {
				saved = f.token(c.conn, -time.Hour)
				f.save(saved)
				f.mark(c.conn, saved.Fingerprint(), "ep1", 0, lease)
				before = f.state(c.conn)
			}
			tok := finchreauth.Token{ConnectionID: c.conn, AccessToken: c.access, IssuedAt: f.at(0)}
			_, err := f.s.SaveToken(f.ctx, tok)
			if err == nil {
				t.Fatalf("SaveToken(token %s of %q) succeeded; want an error", fpOf(tok), c.conn)
			}
			if c.access != "" && strings.Contains(err.Error(), c.access) {
				t.Errorf("SaveToken's error contains the access token %s", tok.Fingerprint())
			}
			switch {
			case c.hasToken:
				f.checkUnchanged("refused SaveToken", c.conn, before)
				f.wantToken(saved)
			case c.conn != "":
				f.wantNoState(c.conn)
				f.wantNoToken(c.conn)
			}
		})
	}
}

func testSuperseded(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	key := newKey()
	const n = minSuperseded + 4
	var replaced []string // newest first
	var cur finchreauth.Token
	for i := range n {
		cur = f.token(key, time.Duration(i-n)*time.Second)
		f.save(cur)
		got := f.state(key).Superseded
		if !checkSupersededList(t, fmt.Sprintf("after %d saves", i+1), got, replaced) {
			return
		}
		replaced = slices.Insert(replaced, 0, cur.Fingerprint())
	}
	before := f.state(key)
	for i, fp := range replaced[1 : 1+minSuperseded] {
		f.checkResult(fmt.Sprintf("mark of the token replaced %d saves ago", i+1), f.mark(key, fp, "ep1", 0, lease), stale())
	}
	f.checkUnchanged("marks of replaced tokens", key, before)
	f.checkResult("mark of the current token", f.mark(key, cur.Fingerprint(), "ep1", 0, lease),
		finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "ep1", Since: f.at(0)})
}

// checkSupersededList checks that got is the newest part of all (newest
// first), and holds all of it or at least minSuperseded entries.
func checkSupersededList(t *testing.T, what string, got, all []string) bool {
	t.Helper()
	if len(got) < min(len(all), minSuperseded) || len(got) > len(all) || !slices.Equal(got, all[:len(got)]) {
		t.Errorf("%s: Superseded = %q, want the first %d or more of %q", what, got, min(len(all), minSuperseded), all)
		return false
	}
	return true
}

func testToken(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	t.Run("round trip", func(t *testing.T) {
		f := start(t, newStore)
		for _, d := range []time.Duration{0, usec, -365 * 24 * time.Hour, 999999 * usec} {
			tok := f.token(newKey(), d)
			f.save(tok)
			f.wantToken(tok)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		f.save(f.token(key, 0))
		b := f.token(key, time.Second)
		f.save(b)
		f.wantToken(b)
	})
	t.Run("unknown connection", func(t *testing.T) {
		f := start(t, newStore)
		f.wantNoToken(newKey())
	})
	t.Run("state without a token", func(t *testing.T) {
		f := start(t, newStore)
		key := newKey()
		f.mark(key, randomFP(), "ep1", 0, lease)
		f.wantNoToken(key)
	})
}

func testStateNotFound(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	key, _ := newFPKey()
	f.wantNoState(newKey())
	f.wantNoState(key)
}

func testKeysIndependent(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	a, b := newKey(), newKey()
	c, cfp := newFPKey()
	ta1, ta2 := f.token(a, -2*time.Hour), f.token(a, -time.Hour)
	tb := f.token(b, -time.Hour)
	f.save(ta1)
	f.save(ta2)
	f.save(tb)

	f.checkResult("mark of a", f.mark(a, ta2.Fingerprint(), "epA", 0, lease),
		finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "epA", Since: f.at(0)})
	f.checkState("b after a's mark", f.state(b), tokenState(tb), false)
	f.wantNoState(c)

	// A fingerprint superseded on a is not stale on another key.
	f.checkResult("mark of b with a's replaced token", f.mark(b, ta1.Fingerprint(), "epB", time.Second, time.Second+lease),
		finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "epB", Since: f.at(time.Second)})
	f.checkResult("mark of c", f.mark(c, cfp, "epC", 2*time.Second, 2*time.Second+lease),
		finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "epC", Since: f.at(2 * time.Second)})

	f.notified(a, "epB") // b's episode id on a: nothing
	f.notified(b, "epB")
	wantA := tokenState(ta2, ta1.Fingerprint())
	wantA.NeedsReauth, wantA.Episode, wantA.Since, wantA.LeaseUntil = true, "epA", f.at(0), f.at(lease)
	f.checkState("a after b's MarkNotified", f.state(a), wantA, false)

	ta3 := f.token(a, 0)
	f.save(ta3)
	wantB := tokenState(tb)
	wantB.NeedsReauth, wantB.Episode, wantB.Since, wantB.Notified = true, "epB", f.at(time.Second), true
	f.checkState("b after a's SaveToken", f.state(b), wantB, false)
	f.checkState("c after a's SaveToken", f.state(c), episodeState(c, cfp, "epC", f.at(2*time.Second), f.at(2*time.Second+lease)), false)
	f.wantToken(ta3)
	f.wantToken(tb)
	f.wantNoToken(c)

	// Leases are per key: c's is held, a's new episode grants its own.
	f.checkResult("mark of c within its lease", f.mark(c, cfp, "epC2", 3*time.Second, 3*time.Second+lease),
		finchreauth.MarkResult{Episode: "epC", Since: f.at(2 * time.Second)})
	f.checkResult("mark of a after SaveToken", f.mark(a, ta3.Fingerprint(), "epA2", 3*time.Second, 3*time.Second+lease),
		finchreauth.MarkResult{Transitioned: true, Notify: true, Episode: "epA2", Since: f.at(3 * time.Second)})
}

func testCancelled(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name string
		call func(f *fixture, ctx context.Context, key string) error
	}{
		{"MarkReauth new key", func(f *fixture, ctx context.Context, _ string) error {
			key := newKey()
			_, err := f.s.MarkReauth(ctx, f.newMark(key, randomFP(), "ep1", 0, lease))
			f.wantNoState(key)
			return err
		}},
		{"MarkReauth after the lease", func(f *fixture, ctx context.Context, key string) error {
			_, err := f.s.MarkReauth(ctx, f.newMark(key, randomFP(), "ep2", 2*lease, 3*lease))
			return err
		}},
		{"MarkNotified", func(f *fixture, ctx context.Context, key string) error {
			return f.s.MarkNotified(ctx, key, "ep1")
		}},
		{"SaveToken", func(f *fixture, ctx context.Context, key string) error {
			tok := f.token(key, time.Hour)
			_, err := f.s.SaveToken(ctx, tok)
			if err != nil && strings.Contains(err.Error(), tok.AccessToken) {
				f.t.Errorf("SaveToken's error contains the access token %s", tok.Fingerprint())
				err = errors.New(redact(err, tok))
			}
			return err
		}},
		{"SaveToken new connection", func(f *fixture, ctx context.Context, _ string) error {
			tok := f.token(newKey(), 0)
			_, err := f.s.SaveToken(ctx, tok)
			f.wantNoState(tok.ConnectionID)
			f.wantNoToken(tok.ConnectionID)
			if err != nil {
				err = errors.New(redact(err, tok))
			}
			return err
		}},
		{"Token", func(f *fixture, ctx context.Context, key string) error {
			_, err := f.s.Token(ctx, key)
			return err
		}},
		{"State", func(f *fixture, ctx context.Context, key string) error {
			_, err := f.s.State(ctx, key)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			key := newKey()
			tok := f.token(key, -time.Hour)
			f.save(tok)
			f.mark(key, tok.Fingerprint(), "ep1", 0, lease)
			before := f.state(key)
			ctx, cancel := context.WithCancel(f.ctx)
			cancel()
			if err := c.call(f, ctx, key); err == nil {
				t.Errorf("%s with a cancelled context succeeded; want an error", c.name)
			}
			f.checkUnchanged(c.name+" with a cancelled context", key, before)
			f.wantToken(tok)
		})
	}
}

// race runs fn(i) for i in [0, goroutines) in as many goroutines, released
// together, and waits for them.
func race(fn func(i int)) {
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-gate
			fn(i)
		})
	}
	close(gate)
	wg.Wait()
}

func testConcurrentStart(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	key := newKey()
	fp := randomFP()
	results := make([]finchreauth.MarkResult, goroutines)
	errs := make([]error, goroutines)
	race(func(i int) {
		results[i], errs[i] = f.s.MarkReauth(f.ctx, f.newMark(key, fp, fmt.Sprintf("ep%d", i), 0, lease))
	})
	winner := -1
	var transitions, notifies int
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("MarkReauth #%d: %v", i, errs[i])
		}
		if r.Transitioned {
			transitions++
			winner = i
		}
		if r.Notify {
			notifies++
		}
	}
	if transitions != 1 || notifies != 1 {
		t.Fatalf("%d concurrent MarkReauth on a new key: %d Transitioned, %d Notify; want exactly 1 each", goroutines, transitions, notifies)
	}
	ep := fmt.Sprintf("ep%d", winner)
	for i, r := range results {
		f.checkResult(fmt.Sprintf("MarkReauth #%d", i), r, finchreauth.MarkResult{Transitioned: i == winner, Notify: i == winner, Episode: ep, Since: f.at(0)})
	}
	f.checkState("after the race", f.state(key), episodeState(key, fp, ep, f.at(0), f.at(lease)), false)
}

func testConcurrentLease(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	key := newKey()
	fp := randomFP()
	f.mark(key, fp, "ep1", 0, lease)
	results := make([]finchreauth.MarkResult, goroutines)
	errs := make([]error, goroutines)
	race(func(i int) {
		results[i], errs[i] = f.s.MarkReauth(f.ctx, f.newMark(key, fp, fmt.Sprintf("ep%d", i+2), 2*lease, 3*lease))
	})
	var notifies int
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("MarkReauth #%d: %v", i, errs[i])
		}
		if r.Notify {
			notifies++
		}
		f.checkResult(fmt.Sprintf("MarkReauth #%d", i), r, finchreauth.MarkResult{Notify: r.Notify, Episode: "ep1", Since: f.at(0)})
	}
	if notifies != 1 {
		t.Errorf("%d concurrent MarkReauth after the lease ended: %d Notify; want exactly 1", goroutines, notifies)
	}
	f.checkState("after the race", f.state(key), episodeState(key, fp, "ep1", f.at(0), f.at(3*lease)), false)
}

func testConcurrentSave(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	key := newKey()
	broken := randomFP()
	f.mark(key, broken, "ep1", 0, lease)
	toks := make([]finchreauth.Token, goroutines)
	for i := range toks {
		toks[i] = f.token(key, time.Duration(i)*time.Millisecond)
	}
	errs := make([]error, goroutines)
	race(func(i int) {
		// Start the newest first, so that it is not simply the last.
		j := goroutines - 1 - i
		_, errs[j] = f.s.SaveToken(f.ctx, toks[j])
	})
	var accepted []string // newest first
	for i := goroutines - 1; i >= 0; i-- {
		switch err := errs[i]; {
		case err == nil:
			accepted = append(accepted, toks[i].Fingerprint())
		case !errors.Is(err, finchreauth.ErrStaleToken):
			t.Errorf("SaveToken(token %d of %d): %s; want nil or ErrStaleToken", i, goroutines, redact(err, toks[i]))
		}
	}
	last := toks[goroutines-1]
	if errs[goroutines-1] != nil {
		t.Errorf("SaveToken of the newest token failed: %s", redact(errs[goroutines-1], last))
	}
	f.wantToken(last)
	st := f.state(key)
	f.checkState("after the race", st, tokenState(last, st.Superseded...), false)
	// Saves succeed in IssuedAt order, so the accepted ones but the newest
	// are the superseded ones, newest first, followed by the broken token
	// that MarkReauth recorded.
	if len(accepted) > 0 && accepted[0] == last.Fingerprint() {
		checkSupersededList(t, "after the race", st.Superseded, append(accepted[1:], broken))
	}
}

// Bench measures s: MarkReauth starting an episode on a new key, MarkReauth
// on a key whose episode's lease is held (a repeated detection), and
// SaveToken replacing a connection's token. It works on random keys, so s
// need not be empty, and leaves what it wrote in s.
func Bench(b *testing.B, s finchreauth.Store) {
	ctx := b.Context()
	base := newBase()
	prefix := newKey() + "_"
	fp := randomFP()
	// The counters live outside the sub-benchmarks, which run once per
	// -count: keys stay new and IssuedAt keeps growing.
	var newKeys, saves int
	b.Run("MarkReauth/NewKey", func(b *testing.B) {
		b.ReportAllocs()
		m := finchreauth.Mark{TokenFingerprint: fp, Episode: "ep", At: base, LeaseUntil: base.Add(lease)}
		for b.Loop() {
			m.Key = prefix + "new_" + strconv.Itoa(newKeys)
			m.ConnectionID = m.Key
			newKeys++
			if _, err := s.MarkReauth(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MarkReauth/LeaseHeld", func(b *testing.B) {
		b.ReportAllocs()
		key := prefix + "held"
		m := finchreauth.Mark{Key: key, ConnectionID: key, TokenFingerprint: fp, Episode: "ep", At: base, LeaseUntil: base.Add(lease)}
		if _, err := s.MarkReauth(ctx, m); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.MarkReauth(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SaveToken", func(b *testing.B) {
		b.ReportAllocs()
		key := prefix + "save"
		toks := make([]finchreauth.Token, 2*minSuperseded)
		for i := range toks {
			toks[i] = finchreauth.Token{ConnectionID: key, AccessToken: "storetest-secret-" + randHex(16)}
		}
		for b.Loop() {
			tok := toks[saves%len(toks)]
			tok.IssuedAt = base.Add(time.Duration(saves) * usec)
			saves++
			if _, err := s.SaveToken(ctx, tok); err != nil {
				b.Fatal(redact(err, tok))
			}
		}
	})
}
