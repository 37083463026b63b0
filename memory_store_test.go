package finchreauth_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
)

func TestMemoryStore(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		storetest.Run(t, func(*testing.T) finchreauth.Store { return new(finchreauth.MemoryStore) })
	})
	t.Run("ZeroValue", func(t *testing.T) {
		storetest.Run(t, func(*testing.T) finchreauth.Store { return &finchreauth.MemoryStore{} })
	})
	t.Run("Shared", func(t *testing.T) {
		s := new(finchreauth.MemoryStore)
		storetest.Run(t, func(*testing.T) finchreauth.Store { return s })
	})
}

func BenchmarkMemoryStore(b *testing.B) { storetest.Bench(b, new(finchreauth.MemoryStore)) }

// listSizes are the store sizes BenchmarkMemoryStoreList measures a page at.
var listSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// fillDue puts n records into s, every one due at once at due and with an
// open episode since a second of its own after since.
func fillDue(tb testing.TB, s *finchreauth.MemoryStore, n int, since, due time.Time) {
	tb.Helper()
	for i := range n {
		r := finchreauth.Record{ConnectionID: fmt.Sprintf("conn_%07d", i), Since: since.Add(time.Duration(i) * time.Second), Due: due}
		if _, err := s.Put(context.Background(), r); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkMemoryStoreList measures one page of 100 records, of the due
// listing (everything due at once, as after a mass breakage) and of the
// Since listing, and a Put that moves a record in both, in stores of 1k to
// 1M records: neither should grow with the store.
func BenchmarkMemoryStoreList(b *testing.B) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	due := since.Add(24 * time.Hour)
	for _, size := range listSizes {
		b.Run("n="+size.name, func(b *testing.B) {
			s := new(finchreauth.MemoryStore)
			fillDue(b, s, size.n, since, due)
			for _, c := range []struct {
				name string
				q    finchreauth.Query
			}{
				{"due", finchreauth.Query{DueBy: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 100}},
				{"since", finchreauth.Query{Limit: 100}},
			} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						page, err := s.List(b.Context(), c.q)
						if err != nil || len(page) != c.q.Limit {
							b.Fatalf("List = %d records, %v", len(page), err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/page")
				})
			}
			// A Put that moves a record in both timelines.
			b.Run("put", func(b *testing.B) {
				b.ReportAllocs()
				r, err := s.Get(b.Context(), "conn_0000000")
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; b.Loop(); i++ {
					r.Since, r.Due = since.Add(time.Duration(i%2)*time.Hour), due.Add(time.Duration(i%2)*time.Hour)
					if r.Version, err = s.Put(b.Context(), r); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestMemoryStoreManyDue: 100,000 records due at once come back in 1,000
// pages of 100, each page the next 100 in (Due, ConnectionID) order; the
// Since listing likewise, in Since order.
func TestMemoryStoreManyDue(t *testing.T) {
	const n, limit = 100_000, 100
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	due := since.Add(24 * time.Hour)
	s := new(finchreauth.MemoryStore)
	fillDue(t, s, n, since, due)
	for _, q := range []finchreauth.Query{{DueBy: due, Limit: limit}, {Limit: limit}} {
		pages, next := 0, 0
		for {
			page, err := s.List(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				if want := fmt.Sprintf("conn_%07d", next); r.ConnectionID != want {
					t.Fatalf("page %d (DueBy %v): %q where %q was next", pages, q.DueBy, r.ConnectionID, want)
				}
				next++
			}
			if len(page) < limit {
				break
			}
			pages++
			last := page[len(page)-1]
			q.AfterTime, q.AfterID = last.Since, last.ConnectionID
			if !q.DueBy.IsZero() {
				q.AfterTime = last.Due
			}
		}
		if pages != n/limit || next != n {
			t.Errorf("DueBy %v: %d full pages, %d records; want %d and %d", q.DueBy, pages, next, n/limit, n)
		}
	}
}

// TestMemoryStoreListModel: after random Puts that set, move and clear the
// records' Since and Due (few distinct times, so many ties, in several
// locations), every page of both listings is what sorting every record in
// Go gives.
func TestMemoryStoreListModel(t *testing.T) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("east", 9*3600), time.FixedZone("west", -5*3600)}
	at := func() time.Time {
		if rng.IntN(4) == 0 {
			return time.Time{}
		}
		return base.Add(time.Duration(rng.IntN(40)) * time.Second).In(zones[rng.IntN(len(zones))])
	}
	s := new(finchreauth.MemoryStore)
	recs := map[string]finchreauth.Record{}
	for range 30_000 {
		id := fmt.Sprintf("c%04d", rng.IntN(3000))
		r := recs[id]
		r.ConnectionID, r.Since, r.Due = id, at(), at()
		v, err := s.Put(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		r.Version = v
		recs[id] = r
	}
	checkListings(t, s, recs, base)
	// Most episodes end: chunks empty and join.
	for id, r := range recs {
		if rng.IntN(10) > 0 {
			r.Since, r.Due = time.Time{}, time.Time{}
			v, err := s.Put(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			r.Version = v
			recs[id] = r
		}
	}
	checkListings(t, s, recs, base)
}

// checkListings compares every listing of s, in pages of several sizes,
// with recs sorted in Go.
func checkListings(t *testing.T, s *finchreauth.MemoryStore, recs map[string]finchreauth.Record, base time.Time) {
	t.Helper()
	ctx := t.Context()
	for _, dueBy := range []time.Time{{}, base.Add(20 * time.Second), base.Add(time.Hour)} {
		var want []string
		for _, r := range slices.SortedFunc(maps.Values(recs), func(a, b finchreauth.Record) int {
			ta, tb := a.Since, b.Since
			if !dueBy.IsZero() {
				ta, tb = a.Due, b.Due
			}
			return cmp.Or(ta.Compare(tb), cmp.Compare(a.ConnectionID, b.ConnectionID))
		}) {
			at := r.Since
			if !dueBy.IsZero() {
				at = r.Due
			}
			if !at.IsZero() && (dueBy.IsZero() || !at.After(dueBy)) {
				want = append(want, r.ConnectionID)
			}
		}
		for _, limit := range []int{1, 7, 100, 5000} {
			q := finchreauth.Query{DueBy: dueBy, Limit: limit}
			var got []string
			for {
				page, err := s.List(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page {
					if r.Version != recs[r.ConnectionID].Version {
						t.Fatalf("%s listed at version %d; want %d", r.ConnectionID, r.Version, recs[r.ConnectionID].Version)
					}
					got = append(got, r.ConnectionID)
				}
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				q.AfterTime, q.AfterID = last.Since, last.ConnectionID
				if !dueBy.IsZero() {
					q.AfterTime = last.Due
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("DueBy %v, pages of %d: %d records listed, want %d (first difference at %d)", dueBy, limit, len(got), len(want), firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
