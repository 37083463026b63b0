// Package storebench measures a finchreauth.Store, for BENCHMARKS.md and so
// that the store modules' benchmarks share one definition of what they
// measure:
//
//   - Latency: each Store method (Get, Put, Lookup, List), one call at a
//     time, on a store holding many connections, with p50 and p99.
//
//   - Storm: the detection storm of the root package's
//     BenchmarkDetectionStorm against the store: 10,000 callers of one
//     broken token, on one Transport or several sharing the store, with
//     exactly one /introspect call, one episode and one notification per
//     storm.
//
//   - Reconnect: 1,000 broken connections whose employers all come back
//     from Finch Connect at once, through CallbackHandler, with each
//     callback's latency.
//
//   - Mass: stormfinch.RunMass, the mass breakage of 10,000 connections
//     with 3 tokens each on one Transport, with the store's calls timed.
//
// Each part has a function that runs it once and returns what it saw or an
// error (the package's own tests run them small), and a Bench function that
// runs it under a *testing.B and reports the figures with b.ReportMetric.
// The store modules call the Bench functions from their bench_test.go:
//
//	cd store/sqlstore && FINCHREAUTH_POSTGRES_DSN=... go test -run '^$' -bench . -benchtime=1x .
//
// which is what .ci/bench-smoke runs. The MemoryStore's figures, the
// baseline, come from this package's own benchmarks.
package storebench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// EnvConnections names the variable that sets how many connections Latency
// preloads; if unset, DefaultConnections.
const EnvConnections = "FINCHREAUTH_BENCH_CONNECTIONS"

// DefaultConnections is how many connections BenchLatency preloads unless
// EnvConnections says otherwise: enough for the indexes to be several levels
// deep, few enough for CI to load them in seconds.
const DefaultConnections = 10_000

// Connections returns how many connections BenchLatency preloads.
func Connections(tb testing.TB) int {
	v := os.Getenv(EnvConnections)
	if v == "" {
		return DefaultConnections
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 {
		tb.Fatalf("storebench: %s=%q: want a number of at least 100", EnvConnections, v)
	}
	return n
}

// Dist is a latency distribution.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

// distOf sorts d and returns its distribution.
func distOf(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Dist{N: len(d), P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

func (d Dist) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s (%d samples)", round(d.P50), round(d.P99), round(d.Max), d.N)
}

// report adds d to b's figures, in unit (a time.Duration: Microsecond or
// Millisecond), as p50-, p99- and max-<suffix>.
func (d Dist) report(b *testing.B, unit time.Duration, suffix string) {
	b.ReportMetric(float64(d.P50)/float64(unit), "p50-"+suffix)
	b.ReportMetric(float64(d.P99)/float64(unit), "p99-"+suffix)
	b.ReportMetric(float64(d.Max)/float64(unit), "max-"+suffix)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
