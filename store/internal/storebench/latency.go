package storebench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Fixture is a store preloaded with connections, one record each, as a
// Transport leaves them: a token, its fingerprint, about 600 bytes of Data,
// and for one connection in ten an open episode (Since and Due set), so that
// List has records to page through. Its methods each make one call on the
// i-th connection of a sequence that visits the whole key space, so that
// successive calls do not touch neighbouring rows.
type Fixture struct {
	s        finchreauth.Store
	ids, fps []string
	versions []int64 // the stored Version of each record
	open     []int   // the connections with an open episode, in List's order
	base     time.Time
	data     []byte
	puts     int
}

// pageSize is what the List calls ask for: a dashboard's page.
const pageSize = 50

// Preload writes n connections into s, workers at once, and returns the
// fixture with the time it took.
func Preload(ctx context.Context, s finchreauth.Store, n, workers int) (*Fixture, time.Duration, error) {
	if n < 10*pageSize {
		return nil, 0, fmt.Errorf("storebench: Preload needs at least %d connections", 10*pageSize)
	}
	prefix := "bench_" + randHex(4) + "_"
	f := &Fixture{s: s, ids: make([]string, n), fps: make([]string, n), versions: make([]int64, n),
		base: time.Now().UTC().Truncate(time.Microsecond),
		data: []byte(`{"identity":{"connection_id":"` + prefix + `","customer_id":"cust","customer_name":"Customer",` +
			`"provider_id":"gusto","products":["company","directory","individual","employment","payment","pay_statement"],` +
			`"status":"reauth"},"current":"0123456789abcdef","episode":{"id":"` + strings.Repeat("E", 26) + `","source":"detection",` +
			`"sent":1},"link":{"url":"https://connect.tryfinch.com/authorize?client_id=client&connection_id=` + prefix +
			`&products=company+directory&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=` + strings.Repeat("s", 180) + `"}}`)}
	for i := range n {
		f.ids[i] = fmt.Sprintf("%s%06d", prefix, i)
		f.fps[i] = finchreauth.Token("bench-token-" + f.ids[i]).Fingerprint()
		if i%10 == 0 {
			f.open = append(f.open, i)
		}
	}
	start := time.Now()
	err := each(n, workers, func(i int) error {
		v, err := s.Put(ctx, f.record(i))
		if err != nil {
			return fmt.Errorf("storebench: preloading %s: %w", f.ids[i], err)
		}
		f.versions[i] = v
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return f, time.Since(start), nil
}

// record is the i-th connection's record at its stored Version.
func (f *Fixture) record(i int) finchreauth.Record {
	r := finchreauth.Record{ConnectionID: f.ids[i], Version: f.versions[i],
		Token: finchreauth.Token("bench-token-" + f.ids[i]), Fingerprints: []string{f.fps[i]}, Data: f.data}
	if i%10 == 0 {
		r.Since = f.base.Add(time.Duration(i) * time.Millisecond)
		r.Due = r.Since.Add(24 * time.Hour)
	}
	return r
}

// pick is the i-th connection of a sequence that visits every connection
// once per len(ids) calls, in an order that jumps across the key space
// (104,729 is a prime, so it is coprime to any count below it).
func pick(i, n int) int { return int((int64(i)*104_729 + 17) % int64(n)) }

// Get reads the i-th connection's record.
func (f *Fixture) Get(ctx context.Context, i int) error {
	k := pick(i, len(f.ids))
	r, err := f.s.Get(ctx, f.ids[k])
	if err == nil && r.Version != f.versions[k] {
		err = fmt.Errorf("storebench: Get %s: Version %d, want %d", f.ids[k], r.Version, f.versions[k])
	}
	return err
}

// Put rewrites the i-th connection's record, a compare-and-set on its
// Version that changes its Data (as every write of the Transport does) and
// indexes its fingerprint again; for an open episode it moves Due, as a
// lease or a reminder does.
func (f *Fixture) Put(ctx context.Context, i int) error {
	k := pick(i, len(f.ids))
	r := f.record(k)
	f.puts++
	r.Data = append(append([]byte(nil), f.data...), strconv.Itoa(f.puts)...)
	if !r.Since.IsZero() {
		// Less than the records' spacing (10ms): List's order stays.
		r.Due = r.Due.Add(time.Duration(f.puts%1000) * time.Microsecond)
	}
	v, err := f.s.Put(ctx, r)
	if err != nil {
		return err
	}
	f.versions[k] = v
	return nil
}

// Lookup finds the i-th connection by its token's fingerprint.
func (f *Fixture) Lookup(ctx context.Context, i int) error {
	k := pick(i, len(f.ids))
	id, err := f.s.Lookup(ctx, f.fps[k])
	if err == nil && id != f.ids[k] {
		err = fmt.Errorf("storebench: Lookup of %s's fingerprint found %s", f.ids[k], id)
	}
	return err
}

// List reads a page of the open episodes, by Since (NeedsReauth's listing)
// or, with due, by Due (Remind's), after a cursor chosen across the open
// records.
func (f *Fixture) List(ctx context.Context, i int, due bool) error {
	// A cursor with a full page after it.
	j := f.open[pick(i, len(f.open)-pageSize)]
	r := f.record(j)
	q := finchreauth.Query{AfterTime: r.Since, AfterID: r.ConnectionID, Limit: pageSize}
	if due {
		// Due is a day after Since, moved by Put by under a millisecond.
		q.DueBy, q.AfterTime = f.base.Add(1000*24*time.Hour), r.Since.Add(24*time.Hour-time.Millisecond)
	}
	page, err := f.s.List(ctx, q)
	switch {
	case err != nil:
		return err
	case len(page) != pageSize:
		return fmt.Errorf("storebench: List after %s returned %d records, want %d", r.ConnectionID, len(page), pageSize)
	case !due && page[0].ConnectionID == r.ConnectionID:
		return fmt.Errorf("storebench: List after %s returned it again", r.ConnectionID)
	}
	return nil
}

// BenchLatency preloads Connections(b) connections into s (workers at once)
// and runs one sub-benchmark per Store method, each iteration one call on
// another connection, timed alone: ns/op is the mean, and p50-us, p99-us and
// max-us the distribution. preload-s is how long the preload took.
func BenchLatency(b *testing.B, s finchreauth.Store, workers int) {
	ctx := b.Context()
	n := Connections(b)
	f, took, err := Preload(ctx, s, n, workers)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d connections preloaded in %s (%d workers)", n, round(took), workers)
	// The sub-benchmarks run once per -count; the calls go on through the
	// sequence rather than start it again.
	var next int
	for _, c := range []struct {
		name string
		call func(ctx context.Context, i int) error
	}{
		{"Get", f.Get},
		{"Put", f.Put},
		{"Lookup", f.Lookup},
		{"List/Since", func(ctx context.Context, i int) error { return f.List(ctx, i, false) }},
		{"List/DueBy", func(ctx context.Context, i int) error { return f.List(ctx, i, true) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var d []time.Duration
			for b.Loop() {
				t0 := time.Now()
				err := c.call(ctx, next)
				d = append(d, time.Since(t0))
				next++
				if err != nil {
					b.Fatal(redact(err))
				}
			}
			distOf(d).report(b, time.Microsecond, "us")
			b.ReportMetric(float64(n), "connections")
			b.ReportMetric(took.Seconds(), "preload-s")
		})
	}
}

// redact keeps tokens out of a failure message: a store's error must not
// hold one, and the fixture's tokens all start with "bench-token-".
func redact(err error) error {
	if msg := err.Error(); strings.Contains(msg, "bench-token-") {
		return errors.New("storebench: an error that holds a token (redacted)")
	}
	return err
}
