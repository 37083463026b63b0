package sqlstore_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/finchkit/finchreauth/store/internal/storebench"
	"github.com/finchkit/finchreauth/store/sqlstore"
)

// TestFigures measures the store for BENCHMARKS.md (its "Shared stores" section), when
// FINCHREAUTH_FIGURES is set: latency with 100,000 connections, and the
// storm of 10,000 callers. Tokens are sealed, as in production.
//
//	FINCHREAUTH_FIGURES=1 FINCHREAUTH_POSTGRES_DSN=... go test -run '^TestFigures$' -v -timeout 30m .
func TestFigures(t *testing.T) {
	if os.Getenv(storebench.Env) == "" {
		t.Skip(storebench.Env + " is not set: the figures run only when asked for")
	}
	t.Run("SQLite", func(t *testing.T) {
		// synchronous(NORMAL) is the usual setting with WAL: a commit
		// does not wait for fsync, and the database stays consistent.
		dsn := "file:" + filepath.Join(t.TempDir(), "figures.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		storebench.Run(t, "sqlite", newStore(t, db, sqlstore.SQLite, testSealer(t)), 4)
	})
	t.Run("Postgres", func(t *testing.T) {
		storebench.Run(t, "postgres", newStore(t, openPostgres(t), sqlstore.Postgres, testSealer(t)), 16)
	})
}
