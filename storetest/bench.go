package storetest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Bench measures s: Get, Put replacing a record, Lookup, a page of 10
// records from each kind of List, and Put of a new connection (last, so
// that the records it adds do not weigh on the others). The records
// carry 1 KiB of Data, about what a Transport writes. Bench works on random
// connection ids at times of its own, so s need not be empty, and leaves
// what it wrote in s.
func Bench(b *testing.B, s finchreauth.Store) {
	ctx := b.Context()
	base := newBase()
	prefix := newID()
	data := []byte(`{"identity":{"company_id":"` + strings.Repeat("x", 1000) + `"}}`)
	rec := func(id string, i int) finchreauth.Record {
		at := base.Add(time.Duration(i) * time.Second)
		return finchreauth.Record{ConnectionID: id, Token: newToken(), Fingerprints: []string{id + "_fp"}, Since: at, Due: at, Data: data}
	}
	put := func(r finchreauth.Record) finchreauth.Record {
		b.Helper()
		v, err := s.Put(ctx, r)
		if err != nil {
			b.Fatal(redact(err))
		}
		r.Version = v
		return r
	}
	fixed := put(rec(prefix+"_fixed", 0))
	for i := range 100 {
		put(rec(prefix+"_list_"+strconv.Itoa(i), i))
	}

	// The counter lives outside the sub-benchmarks, which run once per
	// -count: the connections stay new.
	var created int
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, fixed.ConnectionID); err != nil {
				b.Fatal(redact(err))
			}
		}
	})
	b.Run("Put/Update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := s.Put(ctx, fixed)
			if err != nil {
				b.Fatal(redact(err))
			}
			fixed.Version = v
		}
	})
	b.Run("Lookup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Lookup(ctx, fixed.Fingerprints[0]); err != nil {
				b.Fatal(redact(err))
			}
		}
	})
	for _, c := range []struct {
		name string
		q    finchreauth.Query
	}{
		{"List/Since", finchreauth.Query{AfterTime: base.Add(time.Second), Limit: 10}},
		{"List/DueBy", finchreauth.Query{DueBy: base.Add(time.Hour), AfterTime: base.Add(time.Second), Limit: 10}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.List(ctx, c.q)
				if err != nil {
					b.Fatal(redact(err))
				}
				if len(page) != c.q.Limit {
					b.Fatalf("List returned %d records, want %d", len(page), c.q.Limit)
				}
			}
		})
	}
	b.Run("Put/Create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// Most connections have no open episode: the new
			// records stay out of the listings.
			r := rec(prefix+"_new_"+strconv.Itoa(created), 0)
			r.Since, r.Due = time.Time{}, time.Time{}
			created++
			if _, err := s.Put(ctx, r); err != nil {
				b.Fatal(redact(err))
			}
		}
	})
}
