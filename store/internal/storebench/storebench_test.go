package storebench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/storebench"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The MemoryStore's figures: the baseline for the shared stores.

func BenchmarkLatency(b *testing.B) {
	storebench.BenchLatency(b, new(finchreauth.MemoryStore), 2)
}

func BenchmarkDetectionStorm(b *testing.B) {
	for _, transports := range []int{1, 4} {
		b.Run(fmt.Sprintf("transports=%d", transports), func(b *testing.B) {
			storebench.BenchStorm(b, new(finchreauth.MemoryStore), 10_000, transports)
		})
	}
}

func BenchmarkReconnect(b *testing.B) {
	storebench.BenchReconnect(b, new(finchreauth.MemoryStore), 16)
}

// BenchmarkMassBreakage is the root package's, with the store's calls
// timed as the shared stores' are.
func BenchmarkMassBreakage(b *testing.B) {
	storebench.BenchMass(b, func(testing.TB) finchreauth.Store { return new(finchreauth.MemoryStore) })
}

// TestLatency runs every measured call on a small fixture, so that the
// harness is tested on every run.
func TestLatency(t *testing.T) {
	ctx := t.Context()
	f, _, err := storebench.Preload(ctx, new(finchreauth.MemoryStore), 1_000, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2_500 { // past the end of the sequence: it wraps
		for name, call := range map[string]func() error{
			"Get":        func() error { return f.Get(ctx, i) },
			"Put":        func() error { return f.Put(ctx, i) },
			"Lookup":     func() error { return f.Lookup(ctx, i) },
			"List/Since": func() error { return f.List(ctx, i, false) },
			"List/DueBy": func() error { return f.List(ctx, i, true) },
		} {
			if err := call(); err != nil {
				t.Fatalf("%s %d: %v", name, i, err)
			}
		}
	}
}

// TestStorm runs small storms, on one Transport and on three sharing the
// store: each must count one /introspect call, one episode and one
// notification, and its callers must all have their answers while the
// Notifier waits for them (a gated storm: no duration is asserted, so a
// busy machine cannot fail it).
func TestStorm(t *testing.T) {
	s := new(finchreauth.MemoryStore)
	for _, transports := range []int{1, 3} {
		for range 2 {
			r, err := storebench.Storm(t.Context(), s, 300, transports, true)
			if err != nil {
				t.Fatal(err)
			}
			if r.CallersWaited {
				t.Errorf("the callers waited for the Notifier: %s", r)
			}
		}
	}
}

// TestReconnect reconnects a few connections at once and checks them.
func TestReconnect(t *testing.T) {
	r, err := storebench.PrepareReconnects(t.Context(), new(finchreauth.MemoryStore), 50, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Fire()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res.Latency.N != 50 || res.Latency.Max <= 0 || res.Latency.Max > res.Wall+time.Millisecond {
		t.Errorf("implausible figures: %s", res)
	}
}

// BenchmarkSweep: one pass of the health sweep over 10,000 connections (and
// 100,000 with FINCHREAUTH_BENCH_LARGE=1), every one due: see BenchSweep.
func BenchmarkSweep(b *testing.B) {
	for _, n := range storebench.SweepSizes() {
		b.Run(fmt.Sprintf("connections=%d", n), func(b *testing.B) {
			storebench.BenchSweep(b, n, 4, func(testing.TB) finchreauth.Store { return new(finchreauth.MemoryStore) })
		})
	}
}

// TestSweep sweeps a few hundred connections: each checked once, no 429,
// the store read page by page.
func TestSweep(t *testing.T) {
	r, err := storebench.PrepareSweep(t.Context(), new(finchreauth.MemoryStore), 350, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The listing of every record and that of the due ones: 4 pages each.
	if res.Checks != 350 || res.PerWindow != 350 || res.Pages != 8 || res.MaxPage != 100 || res.PeakHeap == 0 {
		t.Errorf("implausible figures: %s", res)
	}
}
