package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Rule 5: A call whose context is done fails with the context's error; an
// empty connection id or fingerprint is an error other than ErrNotFound.
//
// Both are refused calls: by rule 1 (Get returns what the last successful
// Put stored) and rule 2, a refused Put changes nothing, which the tests
// check with Get, Lookup and List.

// scene is what a refused call may try to change.
type scene struct {
	stored  finchreauth.Record // in the store
	changed finchreauth.Record // stored, every field changed, at its Version
	other   finchreauth.Record // of a connection the store does not hold
}

func (f *fixture) newScene() scene {
	f.t.Helper()
	stored := f.put(finchreauth.Record{
		ConnectionID: f.id("_stored"), Token: newToken(), Fingerprints: []string{newFP(), newFP()},
		Since: f.at(time.Second), Due: f.at(2 * time.Second), Data: []byte(`{"v":1}`),
	})
	return scene{
		stored: stored,
		changed: finchreauth.Record{
			ConnectionID: stored.ConnectionID, Version: stored.Version, Token: newToken(), Fingerprints: []string{newFP(), newFP()},
			Since: f.at(3 * time.Second), Due: f.at(4 * time.Second), Data: []byte(`{"v":2}`),
		},
		other: finchreauth.Record{
			ConnectionID: f.id("_other"), Token: newToken(), Fingerprints: []string{newFP(), newFP()},
			Since: f.at(5 * time.Second), Due: f.at(6 * time.Second), Data: []byte(`{"v":3}`),
		},
	}
}

// wantUnchanged checks that the store holds sc.stored, as it was, and
// nothing of sc.changed and sc.other.
func (f *fixture) wantUnchanged(what string, sc scene) {
	f.t.Helper()
	f.wantRecord(what, sc.stored)
	f.wantNotFound(what, sc.other.ConnectionID)
	for _, fp := range sc.stored.Fingerprints {
		f.wantLookup(what, fp, sc.stored.ConnectionID)
	}
	for _, fp := range slices.Concat(sc.changed.Fingerprints, sc.other.Fingerprints) {
		f.wantNoLookup(what, fp)
	}
	mine := map[string]finchreauth.Record{sc.stored.ConnectionID: sc.stored, sc.other.ConnectionID: {}}
	f.walk(what+": the Since list", finchreauth.Query{AfterTime: f.base, Limit: 10}, mine)
	f.walk(what+": the Due list", finchreauth.Query{DueBy: f.at(time.Hour), AfterTime: f.base, Limit: 10}, mine)
}

// refusal is a call to refuse.
type refusal struct {
	name string
	call func(ctx context.Context, s finchreauth.Store, sc scene) error
}

func testContext(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	calls := []refusal{
		{"Get/Stored", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Get(ctx, sc.stored.ConnectionID)
			return err
		}},
		{"Get/Unknown", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Get(ctx, sc.other.ConnectionID)
			return err
		}},
		{"Put/Update", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Put(ctx, sc.changed)
			return err
		}},
		{"Put/Create", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Put(ctx, sc.other)
			return err
		}},
		{"Put/Conflict", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			r := sc.changed
			r.Version++
			_, err := s.Put(ctx, r)
			return err
		}},
		{"Lookup/Stored", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Lookup(ctx, sc.stored.Fingerprints[0])
			return err
		}},
		{"Lookup/Unknown", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.Lookup(ctx, sc.other.Fingerprints[0])
			return err
		}},
		{"List/Since", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.List(ctx, finchreauth.Query{Limit: 10})
			return err
		}},
		{"List/DueBy", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			_, err := s.List(ctx, finchreauth.Query{DueBy: sc.stored.Due, Limit: 10})
			return err
		}},
	}
	for _, done := range []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
	}{
		{"Canceled", func(parent context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(parent)
			cancel()
			return ctx, cancel
		}},
		{"DeadlineExceeded", func(parent context.Context) (context.Context, context.CancelFunc) {
			return context.WithDeadline(parent, time.Unix(1, 0))
		}},
	} {
		for _, c := range calls {
			t.Run(done.name+"/"+c.name, func(t *testing.T) {
				f := start(t, newStore)
				sc := f.newScene()
				ctx, cancel := done.ctx(f.ctx)
				defer cancel()
				if err := c.call(ctx, f.s, sc); !errors.Is(err, ctx.Err()) {
					t.Errorf("%s with a done context: %s; want %v", c.name, redact(err), ctx.Err())
				}
				f.wantUnchanged("after "+c.name+" with a done context", sc)
			})
		}
	}
}

func testInvalid(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []refusal{
		{"Get", func(ctx context.Context, s finchreauth.Store, _ scene) error {
			_, err := s.Get(ctx, "")
			return err
		}},
		{"Lookup", func(ctx context.Context, s finchreauth.Store, _ scene) error {
			_, err := s.Lookup(ctx, "")
			return err
		}},
		{"Put/EmptyID", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			r := sc.other
			r.ConnectionID = ""
			_, err := s.Put(ctx, r)
			return err
		}},
		{"Put/EmptyFingerprint/Create", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			r := sc.other
			r.Fingerprints = []string{r.Fingerprints[0], "", r.Fingerprints[1]}
			_, err := s.Put(ctx, r)
			return err
		}},
		{"Put/EmptyFingerprint/Update", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			r := sc.changed
			r.Fingerprints = []string{"", r.Fingerprints[0], r.Fingerprints[1]}
			_, err := s.Put(ctx, r)
			return err
		}},
		{"Put/EmptyFingerprint/Only", func(ctx context.Context, s finchreauth.Store, sc scene) error {
			r := sc.changed
			r.Fingerprints = []string{""}
			_, err := s.Put(ctx, r)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			sc := f.newScene()
			err := c.call(f.ctx, f.s, sc)
			if err == nil || errors.Is(err, finchreauth.ErrNotFound) {
				t.Errorf("%s with an empty connection id or fingerprint: %s; want an error other than ErrNotFound", c.name, redact(err))
			}
			f.wantUnchanged("after "+c.name+" with an empty connection id or fingerprint", sc)
		})
	}
}
