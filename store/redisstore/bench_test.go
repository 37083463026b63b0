package redisstore_test

import (
	"fmt"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/storebench"
)

// The store's figures for BENCHMARKS.md ("Shared stores"), each under a
// key prefix of its own with tokens sealed, as in production, through a
// client with a pool of 64 connections (openRedis). .ci/bench-smoke runs
// each once; for figures:
//
//	FINCHREAUTH_REDIS_ADDR=127.0.0.1:6379 go test -run '^$' -bench . -benchtime=1x -count=5 -timeout 60m .
//
// (-benchtime=5000x for the latencies; FINCHREAUTH_BENCH_CONNECTIONS=100000
// preloads more connections; FINCHREAUTH_BENCH_LARGE=1 adds the sweep of
// 100,000 connections, which .ci/bench-smoke leaves out.)

// BenchmarkLatency times Get, Put, Lookup and List, one call at a time,
// with 10,000 connections stored: p50-us, p99-us, max-us.
func BenchmarkLatency(b *testing.B) {
	storebench.BenchLatency(b, newStore(b, openRedis(b), testSealer(b)), 16)
}

// BenchmarkDetectionStorm is the root package's storm against the store:
// 10,000 callers of one broken token on one Transport, and on four sharing
// the store; exactly 1 /introspect call, 1 episode and 1 notification per
// storm, or it fails.
func BenchmarkDetectionStorm(b *testing.B) {
	s := newStore(b, openRedis(b), testSealer(b))
	for _, transports := range []int{1, 4} {
		b.Run(fmt.Sprintf("transports=%d", transports), func(b *testing.B) {
			storebench.BenchStorm(b, s, 10_000, transports)
		})
	}
}

// BenchmarkReconnect sends 1,000 employers back from Finch Connect at once,
// through CallbackHandler: each callback's latency (p50-ms, p99-ms,
// max-ms), and a failure unless all 1,000 reconnected.
func BenchmarkReconnect(b *testing.B) {
	storebench.BenchReconnect(b, newStore(b, openRedis(b), testSealer(b)), 16)
}

// BenchmarkMassBreakage: a provider change breaks 10,000 connections, 3
// tokens each, within one second, on one Transport (MaxFinchCalls 16,
// Timeout 10s) under a fresh prefix: see storebench.BenchMass.
func BenchmarkMassBreakage(b *testing.B) {
	c := openRedis(b)
	storebench.BenchMass(b, func(tb testing.TB) finchreauth.Store { return newStore(tb, c, testSealer(tb)) })
}

// BenchmarkSweep: one pass of the health sweep over 10,000 connections
// (and 100,000 with FINCHREAUTH_BENCH_LARGE=1) under a fresh prefix, every
// one due: each checked once at Finch, never a 429, the store read in
// pages: see storebench.BenchSweep.
func BenchmarkSweep(b *testing.B) {
	c := openRedis(b)
	for _, n := range storebench.SweepSizes() {
		b.Run(fmt.Sprintf("connections=%d", n), func(b *testing.B) {
			storebench.BenchSweep(b, n, 16, func(tb testing.TB) finchreauth.Store { return newStore(tb, c, testSealer(tb)) })
		})
	}
}
