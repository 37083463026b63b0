package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Rule 2: Put stores rec only if the connection's stored Version equals
// rec.Version (0 when nothing is stored), and returns the new Version,
// stored+1. Otherwise it changes nothing and returns ErrConflict: of
// concurrent Puts with one Version, exactly one succeeds.

func testVersions(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	r := finchreauth.Record{ConnectionID: f.id("_conn"), Data: []byte("0")}
	for i := int64(1); i <= 5; i++ {
		v, err := f.s.Put(f.ctx, r)
		if err != nil || v != i {
			t.Fatalf("Put #%d, with Version %d = %d, %s; want %d, nil", i, r.Version, v, redact(err), i)
		}
		r.Version = v
		f.wantRecord(fmt.Sprintf("after Put #%d", i), r)
		r.Data = []byte(strconv.FormatInt(i, 10))
	}
}

func testConflict(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name    string
		puts    int   // successful Puts before the refused one
		version int64 // the refused Put's
	}{
		{"New/Version1", 0, 1},
		{"New/Version5", 0, 5},
		{"New/Negative", 0, -1},
		{"Stale", 3, 2},
		{"Oldest", 3, 1},
		{"Future", 3, 4},
		{"Zero", 3, 0},
		{"Negative", 3, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			id := f.id("_conn")
			var stored finchreauth.Record // zero while nothing is stored
			for i := range c.puts {
				stored = f.put(finchreauth.Record{
					ConnectionID: id, Version: stored.Version,
					Token: newToken(), Fingerprints: []string{newFP()},
					Since: f.at(time.Second), Due: f.at(2 * time.Second),
					Data: []byte(strconv.Itoa(i)),
				})
			}
			refused := finchreauth.Record{
				ConnectionID: id, Version: c.version,
				Token: newToken(), Fingerprints: []string{newFP(), newFP()},
				Since: f.at(3 * time.Second), Due: f.at(time.Second),
				Data: []byte("refused"),
			}
			v, err := f.s.Put(f.ctx, refused)
			if !errors.Is(err, finchreauth.ErrConflict) {
				t.Errorf("Put with Version %d when the stored Version is %d = %d, %s; want ErrConflict", c.version, stored.Version, v, redact(err))
			}

			// It changed nothing.
			what := fmt.Sprintf("after the Put with Version %d", c.version)
			if c.puts > 0 {
				f.wantRecord(what, stored)
				f.wantLookup(what, stored.Fingerprints[0], id)
			} else {
				f.wantNotFound(what, id)
			}
			for _, fp := range refused.Fingerprints {
				f.wantNoLookup(what+", a fingerprint only it listed", fp)
			}
			mine := map[string]finchreauth.Record{id: stored}
			f.walk(what+": the Since list", finchreauth.Query{AfterTime: f.base, Limit: 10}, mine)
			f.walk(what+": the Due list", finchreauth.Query{DueBy: f.at(time.Hour), AfterTime: f.base, Limit: 10}, mine)

			// The stored Version still is the one to give.
			refused.Version = stored.Version
			f.wantRecord("after a Put with the stored Version", f.put(refused))
		})
	}
}

func testRace(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for _, c := range []struct {
		name string
		puts int // successful Puts before the race
	}{
		{"Create", 0},
		{"Update", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			id := f.id("_conn")
			var stored finchreauth.Record
			for range c.puts {
				stored = f.put(finchreauth.Record{ConnectionID: id, Version: stored.Version, Fingerprints: []string{newFP()}, Since: f.at(0)})
			}
			recs := make([]finchreauth.Record, goroutines)
			for i := range recs {
				recs[i] = finchreauth.Record{
					ConnectionID: id, Version: stored.Version,
					Token: newToken(), Fingerprints: []string{newFP()},
					Since: f.at(time.Duration(i+1) * time.Second),
					Data:  []byte(strconv.Itoa(i)),
				}
			}
			versions := make([]int64, goroutines)
			errs := make([]error, goroutines)
			race(func(i int) { versions[i], errs[i] = f.s.Put(f.ctx, recs[i]) })

			winner, wins := -1, 0
			var wrong []string
			for i, err := range errs {
				switch {
				case err == nil:
					winner, wins = i, wins+1
					if versions[i] != stored.Version+1 {
						wrong = append(wrong, fmt.Sprintf("Put #%d = version %d, nil; want %d", i, versions[i], stored.Version+1))
					}
				case !errors.Is(err, finchreauth.ErrConflict):
					wrong = append(wrong, fmt.Sprintf("Put #%d: %s; want nil or ErrConflict", i, redact(err)))
				}
			}
			if len(wrong) > 0 {
				t.Errorf("%d concurrent Puts with Version %d:\n\t%s", goroutines, stored.Version, summary(wrong))
			}
			if wins != 1 {
				t.Fatalf("%d concurrent Puts with Version %d: %d succeeded; want exactly 1", goroutines, stored.Version, wins)
			}
			want := recs[winner]
			want.Version = stored.Version + 1
			f.wantRecord(fmt.Sprintf("after the race, which Put #%d won", winner), want)
			for i, r := range recs {
				if i == winner {
					f.wantLookup("the fingerprint the winner listed", r.Fingerprints[0], id)
				} else {
					f.wantNoLookup(fmt.Sprintf("the fingerprint Put #%d listed, in vain", i), r.Fingerprints[0])
				}
			}
			f.walk("after the race: the Since list", finchreauth.Query{AfterTime: f.base, Limit: 100}, map[string]finchreauth.Record{id: want})
		})
	}
	t.Run("Increment", func(t *testing.T) { testIncrement(t, newStore) })
}

// testIncrement has every goroutine add one to a counter in Data, reading
// with Get and writing with Put until Put succeeds: a store whose
// compare-and-set is not one step loses increments.
func testIncrement(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	id := f.id("_counter")
	f.put(finchreauth.Record{ConnectionID: id, Data: []byte("0")})
	errs := make([]error, goroutines)
	race(func(i int) {
		// A Put refused means that another goroutine's Put succeeded
		// since this one's Get; each succeeds once, so a goroutine is
		// refused at most goroutines-1 times.
		for range goroutines {
			r, err := f.s.Get(f.ctx, id)
			if err != nil {
				errs[i] = err
				return
			}
			n, err := strconv.Atoi(string(r.Data))
			if err != nil {
				errs[i] = fmt.Errorf("storetest: Get returned Data %s, no counter", fmtData(r.Data))
				return
			}
			r.Data = []byte(strconv.Itoa(n + 1))
			if _, err := f.s.Put(f.ctx, r); !errors.Is(err, finchreauth.ErrConflict) {
				errs[i] = err
				return
			}
		}
		errs[i] = fmt.Errorf("storetest: Put refused %d times, more than the other goroutines' Puts", goroutines)
	})
	var wrong []string
	for i, err := range errs {
		if err != nil {
			wrong = append(wrong, fmt.Sprintf("goroutine %d: %s", i, redact(err)))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d goroutines incrementing a counter:\n\t%s", goroutines, summary(wrong))
	}
	want := finchreauth.Record{ConnectionID: id, Version: 1 + goroutines, Data: []byte(strconv.Itoa(goroutines))}
	f.wantRecord(fmt.Sprintf("after %d goroutines incremented the counter", goroutines), want)
}
