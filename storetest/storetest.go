// Package storetest checks that a finchreauth.Store keeps the rules written
// on the interface: one subtest, or a few, per rule. A store module runs the
// suite from its own tests, under -race:
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
// A store whose records can become unreadable (a token sealed under a key it
// no longer holds, a hash evicted from under its index) checks each way with
// Unreadable, through a Transport, given a function that spoils a record
// that way:
//
//	storetest.Unreadable(t, newEmptyStore(t), func(ctx context.Context, id string) error {
//		return dropKeyOf(ctx, id)
//	})
//
// The suite needs no empty store. It writes under random connection ids and
// fingerprints, and puts the records it lists at times no Transport uses: a
// random second between the years 2100 and 2200, different for every
// subtest. It checks every record List returns against the rules, and the
// records it wrote exactly: all there, in order, as stored. So a store backed
// by a shared database can run it as often as it likes, from several
// processes at once, and keeps what the suite wrote (drop it afterwards if
// you like). The suite never sleeps, and its failures name a token only by
// its fingerprint, even when a store's error holds the token.
//
// Where the rules leave room, the suite reads them so. Connection ids and
// fingerprints are any valid UTF-8 without NUL bytes (the suite's hold
// quotes, spaces, '%', '*', '\' and non-ASCII letters), and ids that differ
// only in case or by a trailing space are different connections. Times fall
// between 1900 and 2200, at microsecond precision, in various locations.
// Data is any bytes, up to 64 KiB; nil and empty slices are the same. A
// refused Put (a conflict, a done context, an empty id or fingerprint)
// changes nothing, its fingerprints included. A fingerprint leads to the
// connection whose Put listed it last. List returns whole records, as Get
// does, and a page shorter than the Limit only at the end of the listing;
// "ordered by ConnectionID" is Go's string order, byte by byte, whatever a
// database's collation says; and a Limit that is not positive is an error.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

const (
	// usec is the precision to which a store keeps times.
	usec = time.Microsecond
	// goroutines is how many callers the race tests release together.
	goroutines = 64
)

// Run runs the conformance suite against the stores newStore returns.
//
// newStore is called once by every subtest, with that subtest's t; it may
// register t.Cleanup to close what it opened. It may return a new store each
// time or the same one: every subtest uses connection ids, fingerprints and
// times of its own, and assumes nothing about what else the store holds.
func Run(t *testing.T, newStore func(t *testing.T) finchreauth.Store) {
	t.Helper()
	if newStore == nil {
		t.Fatal("storetest: Run needs a newStore function")
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T, func(*testing.T) finchreauth.Store)
	}{
		// Rule 1: Get.
		{"Get/NotFound", testGetNotFound},
		{"Get/RoundTrip", testRoundTrip},
		{"Get/Copies", testCopies},
		{"Independent", testIndependent},
		// Rule 2: Put.
		{"Put/Versions", testVersions},
		{"Put/Conflict", testConflict},
		{"Put/Race", testRace},
		// Rule 3: Lookup.
		{"Lookup/NotFound", testLookupNotFound},
		{"Lookup/Fingerprints", testLookupFingerprints},
		{"Lookup/Connections", testLookupConnections},
		// Rule 4: List.
		{"List/Since", testListSince},
		{"List/DueBy", testListDueBy},
		{"List/Pages", testListPages},
		{"List/Every", testListEvery},
		{"List/Start", testListStart},
		{"List/Updates", testListUpdates},
		{"List/Limit", testListLimit},
		// Rule 5: done contexts and empty ids.
		{"Context", testContext},
		{"Invalid", testInvalid},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore) })
	}
}

// fixture is one subtest's store, context, times and connection ids.
type fixture struct {
	t    *testing.T
	s    finchreauth.Store
	ctx  context.Context
	base time.Time // the start of the subtest's own stretch of time
	// prefix starts the subtest's connection ids, so that failures can name
	// them by what follows it.
	prefix string
}

func start(t *testing.T, newStore func(*testing.T) finchreauth.Store) *fixture {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("storetest: newStore returned nil")
	}
	return &fixture{t: t, s: s, ctx: t.Context(), base: newBase(), prefix: newID()}
}

// newBase returns a random whole second between 2100 and 2200, plus
// 0.123456s: a stretch of time that no Transport and, but by a rare chance,
// no other subtest uses, with a part below the millisecond that a store
// keeping milliseconds loses, and room to add a few microseconds within the
// same millisecond.
func newBase() time.Time {
	from := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	return from.Add(rand.N(100*365*24*time.Hour).Truncate(time.Second) + 123456*usec)
}

// at returns the instant d after the fixture's base.
func (f *fixture) at(d time.Duration) time.Time { return f.base.Add(d) }

// id returns the connection id made of the fixture's prefix and suffix.
func (f *fixture) id(suffix string) string { return f.prefix + suffix }

// newID returns a connection id no other subtest uses.
func newID() string { return fmt.Sprintf("storetest_%016x", rand.Uint64()) }

// newFP returns a fingerprint no other subtest uses.
func newFP() string {
	return finchreauth.Token(fmt.Sprintf("storetest-fp-%016x", rand.Uint64())).Fingerprint()
}

// newToken returns a new access token. Every token of the suite matches
// secretPattern, so that redact can hide it.
func newToken() finchreauth.Token {
	return finchreauth.Token(fmt.Sprintf("storetest-secret-%016x%016x", rand.Uint64(), rand.Uint64()))
}

var secretPattern = regexp.MustCompile(`storetest-secret-[0-9a-f]{32}`)

// redact returns err's message with every token of the suite's in it
// replaced by the token's fingerprint, so that a store's error can be
// printed safely.
func redact(err error) string {
	if err == nil {
		return "<nil>"
	}
	return secretPattern.ReplaceAllStringFunc(err.Error(), func(s string) string {
		return "[" + finchreauth.Token(s).String() + ", whose secret the error holds]"
	})
}

// put stores rec, fails the test unless Put succeeds with the Version after
// rec's, and returns rec as stored.
func (f *fixture) put(rec finchreauth.Record) finchreauth.Record {
	f.t.Helper()
	v, err := f.s.Put(f.ctx, rec)
	if err != nil {
		f.t.Fatalf("Put(%s): %s", f.fmtRecord(rec), redact(err))
	}
	if v != rec.Version+1 {
		f.t.Fatalf("Put(%s) = version %d, want %d", f.fmtRecord(rec), v, rec.Version+1)
	}
	rec.Version = v
	return rec
}

// get returns the record of id and fails the test if Get fails.
func (f *fixture) get(id string) finchreauth.Record {
	f.t.Helper()
	r, err := f.s.Get(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Get(%q): %s", id, redact(err))
	}
	return r
}

// wantRecord checks that Get returns want, every field.
func (f *fixture) wantRecord(what string, want finchreauth.Record) {
	f.t.Helper()
	got, err := f.s.Get(f.ctx, want.ConnectionID)
	if err != nil {
		f.t.Errorf("%s: Get(%q): %s; want %s", what, want.ConnectionID, redact(err), f.fmtRecord(want))
		return
	}
	if d := f.diff(got, want); len(d) > 0 {
		f.t.Errorf("%s: Get(%q):\n\t%s", what, want.ConnectionID, strings.Join(d, "\n\t"))
	}
}

// wantNotFound checks that Get(id) fails with ErrNotFound.
func (f *fixture) wantNotFound(what, id string) {
	f.t.Helper()
	if got, err := f.s.Get(f.ctx, id); !errors.Is(err, finchreauth.ErrNotFound) {
		f.t.Errorf("%s: Get(%q) = %s, %s; want ErrNotFound", what, id, f.fmtRecord(got), redact(err))
	}
}

// wantLookup checks that Lookup(fp) returns id.
func (f *fixture) wantLookup(what, fp, id string) {
	f.t.Helper()
	if got, err := f.s.Lookup(f.ctx, fp); err != nil || got != id {
		f.t.Errorf("%s: Lookup(%q) = %q, %s; want %q", what, fp, got, redact(err), id)
	}
}

// wantNoLookup checks that Lookup(fp) fails with ErrNotFound.
func (f *fixture) wantNoLookup(what, fp string) {
	f.t.Helper()
	if got, err := f.s.Lookup(f.ctx, fp); !errors.Is(err, finchreauth.ErrNotFound) {
		f.t.Errorf("%s: Lookup(%q) = %q, %s; want ErrNotFound", what, fp, got, redact(err))
	}
}

// diff lists the fields in which got differs from want. Times are compared
// as instants, nil and empty slices as equal.
func (f *fixture) diff(got, want finchreauth.Record) []string {
	var d []string
	add := func(field, got, want string) { d = append(d, fmt.Sprintf("%s = %s, want %s", field, got, want)) }
	if got.ConnectionID != want.ConnectionID {
		add("ConnectionID", fmt.Sprintf("%q", got.ConnectionID), fmt.Sprintf("%q", want.ConnectionID))
	}
	if got.Version != want.Version {
		add("Version", fmt.Sprint(got.Version), fmt.Sprint(want.Version))
	}
	if got.Token != want.Token {
		add("Token", fmtToken(got.Token), fmtToken(want.Token))
	}
	if !slices.Equal(got.Fingerprints, want.Fingerprints) {
		add("Fingerprints", fmt.Sprintf("%q", got.Fingerprints), fmt.Sprintf("%q", want.Fingerprints))
	}
	if !got.Since.Equal(want.Since) {
		add("Since", f.rel(got.Since), f.rel(want.Since))
	}
	if !got.Due.Equal(want.Due) {
		add("Due", f.rel(got.Due), f.rel(want.Due))
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("Data", fmtData(got.Data), fmtData(want.Data))
	}
	return d
}

// fmtRecord formats r for a failure message, its token by fingerprint.
func (f *fixture) fmtRecord(r finchreauth.Record) string {
	return fmt.Sprintf("{ConnectionID:%q Version:%d Token:%s Fingerprints:%q Since:%s Due:%s Data:%s}",
		r.ConnectionID, r.Version, fmtToken(r.Token), r.Fingerprints, f.rel(r.Since), f.rel(r.Due), fmtData(r.Data))
}

// fmtToken names tok by its fingerprint, or says it is empty.
func fmtToken(tok finchreauth.Token) string {
	if tok == "" {
		return `""`
	}
	return tok.String()
}

func fmtData(b []byte) string {
	if len(b) <= 40 {
		return fmt.Sprintf("%q", b)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("(%d bytes, sha256 %x...)", len(b), sum[:4])
}

// rel formats tm relative to the base when it is near, else as UTC.
func (f *fixture) rel(tm time.Time) string {
	if tm.IsZero() {
		return "zero"
	}
	if d := tm.Sub(f.base); d > -24*time.Hour && d < 24*time.Hour {
		if d < 0 {
			return "base" + d.String()
		}
		return "base+" + d.String()
	}
	return tm.UTC().Format(time.RFC3339Nano)
}

// summary joins the first few of lines for a failure message.
func summary(lines []string) string {
	const few = 5
	if len(lines) <= few {
		return strings.Join(lines, "\n\t")
	}
	return fmt.Sprintf("%s\n\t... and %d more", strings.Join(lines[:few], "\n\t"), len(lines)-few)
}

// clone returns r with slices of its own.
func clone(r finchreauth.Record) finchreauth.Record {
	r.Fingerprints = slices.Clone(r.Fingerprints)
	r.Data = slices.Clone(r.Data)
	return r
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
