package sqlstore_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/storebench"
	"github.com/finchkit/finchreauth/store/sqlstore"
)

// The store's figures for BENCHMARKS.md ("Shared stores"), on SQLite and
// PostgreSQL, each on tables of its own with tokens sealed, as in
// production. .ci/bench-smoke runs each once; for figures:
//
//	FINCHREAUTH_POSTGRES_DSN=... go test -run '^$' -bench . -benchtime=1x -count=5 -timeout 60m .
//
// (-benchtime=5000x for the latencies; FINCHREAUTH_BENCH_CONNECTIONS=100000
// preloads more connections; FINCHREAUTH_BENCH_LARGE=1 adds the sweep of
// 100,000 connections, which .ci/bench-smoke leaves out.)

// benchPool bounds each benchmark's connections to the database, as an
// application bounds its pool: a mass breakage has tens of thousands of
// Store calls in flight, and without a bound PostgreSQL refuses clients
// past its max_connections (100 by default) and SQLite runs out of file
// descriptors.
const benchPool = 32

// benchDBs are the databases the benchmarks run on, opened as an
// application would: SQLite in WAL mode with synchronous(NORMAL) (see the
// README), both with a bounded pool.
var benchDBs = []struct {
	name    string
	open    func(testing.TB) *sql.DB
	d       sqlstore.Dialect
	workers int // how many preload at once
}{
	{"SQLite", openBenchSQLite, sqlstore.SQLite, 4},
	{"Postgres", func(tb testing.TB) *sql.DB {
		db := openPostgres(tb)
		db.SetMaxOpenConns(benchPool)
		db.SetMaxIdleConns(benchPool)
		return db
	}, sqlstore.Postgres, 16},
}

func openBenchSQLite(tb testing.TB) *sql.DB {
	tb.Helper()
	dsn := sqliteDSN(filepath.Join(tb.TempDir(), "bench.db")) + "&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.PingContext(tb.Context()); err != nil { // WAL, before the writers
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(benchPool)
	db.SetMaxIdleConns(benchPool)
	return db
}

func forEachBenchDB(b *testing.B, f func(b *testing.B, s *sqlstore.Store, workers int)) {
	for _, c := range benchDBs {
		b.Run(c.name, func(b *testing.B) { f(b, newStore(b, c.open(b), c.d, testSealer(b)), c.workers) })
	}
}

// BenchmarkLatency times Get, Put, Lookup and List, one call at a time, on
// a table of 10,000 connections: p50-us, p99-us, max-us.
func BenchmarkLatency(b *testing.B) {
	forEachBenchDB(b, func(b *testing.B, s *sqlstore.Store, workers int) { storebench.BenchLatency(b, s, workers) })
}

// BenchmarkDetectionStorm is the root package's storm against the store:
// 10,000 callers of one broken token on one Transport, and on four sharing
// the store; exactly 1 /introspect call, 1 episode and 1 notification per
// storm, or it fails.
func BenchmarkDetectionStorm(b *testing.B) {
	forEachBenchDB(b, func(b *testing.B, s *sqlstore.Store, _ int) {
		for _, transports := range []int{1, 4} {
			b.Run(fmt.Sprintf("transports=%d", transports), func(b *testing.B) {
				storebench.BenchStorm(b, s, 10_000, transports)
			})
		}
	})
}

// BenchmarkReconnect sends 1,000 employers back from Finch Connect at once,
// through CallbackHandler: each callback's latency (p50-ms, p99-ms,
// max-ms), and a failure unless all 1,000 reconnected.
func BenchmarkReconnect(b *testing.B) {
	forEachBenchDB(b, func(b *testing.B, s *sqlstore.Store, workers int) { storebench.BenchReconnect(b, s, workers) })
}

// BenchmarkMassBreakage: a provider change breaks 10,000 connections, 3
// tokens each, within one second, on one Transport (MaxFinchCalls 16,
// Timeout 10s) over a fresh table: see storebench.BenchMass.
func BenchmarkMassBreakage(b *testing.B) {
	for _, c := range benchDBs {
		b.Run(c.name, func(b *testing.B) {
			db := c.open(b)
			storebench.BenchMass(b, func(tb testing.TB) finchreauth.Store { return newStore(tb, db, c.d, testSealer(tb)) })
		})
	}
}

// BenchmarkSweep: one pass of the health sweep over 10,000 connections
// (and 100,000 with FINCHREAUTH_BENCH_LARGE=1) on a fresh table, every one
// due: each checked once at Finch, never a 429, the table read in pages:
// see storebench.BenchSweep.
func BenchmarkSweep(b *testing.B) {
	for _, c := range benchDBs {
		b.Run(c.name, func(b *testing.B) {
			db := c.open(b)
			for _, n := range storebench.SweepSizes() {
				b.Run(fmt.Sprintf("connections=%d", n), func(b *testing.B) {
					storebench.BenchSweep(b, n, c.workers, func(tb testing.TB) finchreauth.Store { return newStore(tb, db, c.d, testSealer(tb)) })
				})
			}
		})
	}
}
