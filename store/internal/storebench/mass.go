package storebench

import (
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/internal/stormfinch"
)

// The mass breakage of the issue: 10,000 connections, 3 tokens each, broken
// within one second on one Transport, with at most 16 calls to Finch in
// flight and a Timeout of 10 seconds.
const (
	MassConnections = 10_000
	MassTokens      = 3
	MassFinchCalls  = 16
	MassTimeout     = 10 * time.Second
)

// BenchMass runs stormfinch.RunMass, once per iteration, on a fresh store
// from newStore (outside the timer), and reports RunMass's figures with the
// store's (a Meter's: store-calls, store-p99-ms, store-peak-calls, ...).
// RunMass fails the benchmark unless there are exactly MassConnections
// notifications, at most MassFinchCalls calls to Finch in flight and every
// caller answered within MassTimeout, and its ErrorHandler fails it on any
// error the Transport reports. Since a failed benchmark prints no metrics,
// the figures of each run are logged too, even when RunMass stops the
// benchmark.
func BenchMass(b *testing.B, newStore func(testing.TB) finchreauth.Store) {
	var last stormfinch.MassResult
	var m *Meter
	for b.Loop() {
		b.StopTimer()
		m = NewMeter(newStore(b))
		start := time.Now()
		b.Cleanup(func() { b.Logf("after %s: %s", time.Since(start).Round(time.Millisecond), m) })
		b.StartTimer()
		last = stormfinch.RunMass(b, m, MassConnections, MassTokens, MassFinchCalls, MassTimeout)
		b.Logf("%d notifications, at most %d calls to Finch in flight, %d goroutines and %.0f MiB of heap at the peak; callers waited %s at most (p99 %s); settled after %s",
			last.Notifications, last.PeakCalls, last.PeakGoroutine, float64(last.PeakHeap)/(1<<20),
			last.MaxWait.Round(time.Millisecond), last.P99Wait.Round(time.Millisecond), last.Settled.Round(time.Millisecond))
	}
	last.Report(b)
	m.Report(b)
}
