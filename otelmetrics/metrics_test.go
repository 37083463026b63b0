package otelmetrics_test

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/otelmetrics"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestTransport drives a real Transport against a fake Finch whose
// connection is broken: the first call is Finch's 401 (one detection, one
// /introspect, one notification), the next ones are answered from the
// latch. Two hours later a new token is saved: one reconnect, and two hours
// in the histogram.
func TestTransport(t *testing.T) {
	m, reader := newMetrics(t)
	s := finchtest.NewServer()
	defer s.Close()
	tok := s.AddConnection(finchtest.Connection{})
	c, _ := s.ConnectionForToken(tok)
	s.Break(c.ID)

	var notified atomic.Int64
	reconnected := make(chan finchreauth.Reconnection, 1)
	var now atomic.Int64 // Unix seconds
	now.Store(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC).Unix())
	tr := &finchreauth.Transport{
		Base:       s.Client().Transport,
		APIBaseURL: s.URL,
		Metrics:    m,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			notified.Add(1)
			return nil
		}),
		OnReconnected: func(ctx context.Context, r finchreauth.Reconnection) { reconnected <- r },
		Now:           func() time.Time { return time.Unix(now.Load(), 0) },
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}

	const calls = 3
	for i := range calls {
		req, err := http.NewRequest("GET", s.URL+"/employer/company", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := finchreauth.Latched
		if i == 0 {
			want = finchreauth.Detected
		}
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get(finchreauth.Header) != want {
			t.Fatalf("call %d: %d %s: %q, want 401 %q", i, res.StatusCode, finchreauth.Header, res.Header.Get(finchreauth.Header), want)
		}
	}
	if err := tr.Flush(context.Background()); err != nil { // the handling runs on its own
		t.Fatal(err)
	}
	if n := notified.Load(); n != 1 {
		t.Fatalf("Notify called %d times, want 1", n)
	}
	now.Add(2 * 3600)
	// The employer reconnects (another way than the callback): Finch issues
	// a token that works, and the application saves it.
	newTok := s.AddConnection(finchtest.Connection{ID: c.ID})
	if err := tr.SaveToken(context.Background(), c.ID, finchreauth.Token(newTok)); err != nil {
		t.Fatal(err)
	}
	// OnReconnected runs detached: wait for it, since Close would cancel it.
	select {
	case r := <-reconnected:
		if r.Via != "save" || r.Downtime() != 2*time.Hour {
			t.Errorf("OnReconnected: Via %q, Downtime %v; want save, 2h", r.Via, r.Downtime())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnReconnected was not called")
	}
	tr.Close()

	ms := collect(t, reader)
	got := counts(t, ms)
	want := map[string]int64{
		"finchreauth.detections":                 1,
		"finchreauth.latched":                    calls - 1,
		"finchreauth.notifications outcome=sent": 1,
		"finchreauth.finch_calls outcome=ok":     4, // /introspect of the broken token; of the new one, and a call with it; the data_sync_all job
		"finchreauth.reconnects outcome=save":    1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("counts:\n%s\nwant:\n%s", strings.Join(lines(got), "\n"), strings.Join(lines(want), "\n"))
	}
	h, ok := ms["finchreauth.time_to_reconnect"].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 || h.DataPoints[0].Sum != 2*3600 {
		t.Errorf("finchreauth.time_to_reconnect: %+v, want one observation of 7200s", ms["finchreauth.time_to_reconnect"].Data)
	}
}

// TestCountOutcomes counts every listed name with each of its outcomes and
// checks that the outcome is the attribute "outcome", absent when empty,
// and that each instrument carries its description and unit.
func TestCountOutcomes(t *testing.T) {
	m, reader := newMetrics(t)
	ctx := context.Background()
	listed := map[string][]string{
		"finchreauth.detections":           {""},
		"finchreauth.detections.collapsed": {""},
		"finchreauth.latched":              {""},
		"finchreauth.notifications":        {"sent", "failed"},
		"finchreauth.reminders":            {"sent", "failed"},
		"finchreauth.reconnects":           {"callback", "save", "webhook"},
		"finchreauth.finch_calls":          {"ok", "client_error", "rate_limited", "server_error", "network", "cancelled"},
	}
	want := make(map[string]int64)
	var n int64
	for name, outcomes := range listed {
		for _, o := range outcomes {
			n++
			m.Count(ctx, name, o, n)
			m.Count(ctx, name, o, 1)
			key := name
			if o != "" {
				key += " outcome=" + o
			}
			want[key] = n + 1
		}
	}
	ms := collect(t, reader)
	if got := counts(t, ms); !maps.Equal(got, want) {
		t.Errorf("counts:\n%s\nwant:\n%s", strings.Join(lines(got), "\n"), strings.Join(lines(want), "\n"))
	}
	for name := range listed {
		if ms[name].Description == "" || !strings.HasPrefix(ms[name].Unit, "{") {
			t.Errorf("%s: description %q, unit %q", name, ms[name].Description, ms[name].Unit)
		}
	}
}

// TestObserve records reconnect times straight into the histogram and
// reads back its unit, buckets, count and sum.
func TestObserve(t *testing.T) {
	m, reader := newMetrics(t)
	ctx := context.Background()
	const minute, hour, day = 60.0, 3600.0, 86400.0
	for _, s := range []float64{30, 4 * minute, 2 * hour, 3*day + 1, 40 * day} {
		m.Observe(ctx, "finchreauth.time_to_reconnect", s)
	}
	got := collect(t, reader)["finchreauth.time_to_reconnect"]
	if got.Unit != "s" || got.Description == "" {
		t.Errorf("unit %q, description %q", got.Unit, got.Description)
	}
	h, ok := got.Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("data %#v, want one histogram data point", got.Data)
	}
	dp := h.DataPoints[0]
	bounds := []float64{
		minute, 5 * minute, 15 * minute, 30 * minute,
		hour, 3 * hour, 6 * hour, 12 * hour,
		day, 2 * day, 3 * day, 7 * day, 14 * day, 28 * day,
	}
	if !slices.Equal(dp.Bounds, bounds) {
		t.Errorf("bounds %v, want %v", dp.Bounds, bounds)
	}
	// (..1m] (1m..5m] ... (2h..3h] is index 5, (3d..7d] index 11, (28d..) index 14.
	buckets := make([]uint64, len(bounds)+1)
	buckets[0], buckets[1], buckets[5], buckets[11], buckets[14] = 1, 1, 1, 1, 1
	if !slices.Equal(dp.BucketCounts, buckets) {
		t.Errorf("bucket counts %v, want %v", dp.BucketCounts, buckets)
	}
	if want := 30 + 4*minute + 2*hour + 3*day + 1 + 40*day; dp.Count != 5 || dp.Sum != want {
		t.Errorf("count %d, sum %v; want 5, %v", dp.Count, dp.Sum, want)
	}
	if dp.Attributes.Len() != 0 {
		t.Errorf("attributes %v, want none", dp.Attributes.ToSlice())
	}
}

// TestUnlisted uses names and an outcome that finchreauth.Metrics does not
// list, from many goroutines at once: each name gets one instrument, and no
// measurement is lost.
func TestUnlisted(t *testing.T) {
	m, reader := newMetrics(t)
	ctx := context.Background()
	const goroutines, each = 16, 100
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				m.Count(ctx, "finchreauth.future", "", 1)
				m.Count(ctx, "finchreauth.future", "maybe", 2)
				m.Count(ctx, "finchreauth.notifications", "bounced", 1)
				m.Observe(ctx, "finchreauth.future_seconds", 90)
			}
		})
	}
	wg.Wait()
	m.Count(ctx, "not a valid instrument name!", "", 1) // refused by the SDK: dropped
	m.Observe(ctx, "not a valid instrument name!", 1)

	ms := collect(t, reader)
	want := map[string]int64{
		"finchreauth.future":                        goroutines * each,
		"finchreauth.future outcome=maybe":          2 * goroutines * each,
		"finchreauth.notifications outcome=bounced": goroutines * each,
	}
	if got := counts(t, ms); !maps.Equal(got, want) {
		t.Errorf("counts:\n%s\nwant:\n%s", strings.Join(lines(got), "\n"), strings.Join(lines(want), "\n"))
	}
	h, ok := ms["finchreauth.future_seconds"].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != goroutines*each || ms["finchreauth.future_seconds"].Unit != "s" {
		t.Errorf("finchreauth.future_seconds: %+v", ms["finchreauth.future_seconds"])
	}
	if _, ok := ms["not a valid instrument name!"]; ok {
		t.Errorf("a refused name was recorded")
	}
}

func TestNewNilMeter(t *testing.T) {
	if _, err := otelmetrics.New(nil); err == nil || !strings.HasPrefix(err.Error(), "otelmetrics: ") {
		t.Fatalf("New(nil) = %v, want an otelmetrics error", err)
	}
}

// TestCountAllocs checks what BenchmarkCount shows: a listed name with a
// listed outcome, or none, costs no allocation, with the SDK or the no-op
// Meter.
func TestCountAllocs(t *testing.T) {
	sdk, _ := newMetrics(t)
	nop, err := otelmetrics.New(noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []*otelmetrics.Metrics{sdk, nop} {
		for _, c := range [][2]string{{"finchreauth.latched", ""}, {"finchreauth.finch_calls", "ok"}} {
			if n := testing.AllocsPerRun(1000, func() { m.Count(ctx, c[0], c[1], 1) }); n != 0 {
				t.Errorf("Count(%q, %q): %v allocations, want 0", c[0], c[1], n)
			}
		}
	}
}

func BenchmarkCount(b *testing.B) {
	for _, bc := range []struct{ label, name, outcome string }{
		{"latched", "finchreauth.latched", ""},
		{"listed-outcome", "finchreauth.finch_calls", "ok"},
		{"unlisted-outcome", "finchreauth.finch_calls", "teapot"},
		{"unlisted-name", "finchreauth.future", ""},
	} {
		b.Run(bc.label, func(b *testing.B) {
			m, _ := newMetrics(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				m.Count(ctx, bc.name, bc.outcome, 1)
			}
		})
	}
}
