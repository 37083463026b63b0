package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/replicatest"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"go.uber.org/goleak"
)

// How a replica finds the store the parent test made.
const (
	envReplicaDialect = "FINCHREAUTH_TEST_SQL_DIALECT" // "postgres" or "sqlite"
	envReplicaDriver  = "FINCHREAUTH_TEST_SQL_DRIVER"
	envReplicaDSN     = "FINCHREAUTH_TEST_SQL_DSN"
	envReplicaTable   = "FINCHREAUTH_TEST_SQL_TABLE"
)

func TestMain(m *testing.M) {
	replicatest.Main(openReplicaStore) // a replica of TestReplicas runs and exits here
	killChildMain()                    // so does the child of TestKilledBetweenExchangeAndSave
	goleak.VerifyTestMain(m)
}

// openReplicaStore opens, in a replica, the store its parent described.
func openReplicaStore(ctx context.Context) (finchreauth.Store, func(), error) {
	db, err := sql.Open(os.Getenv(envReplicaDriver), os.Getenv(envReplicaDSN))
	if err != nil {
		return nil, nil, err
	}
	d := sqlstore.SQLite
	if os.Getenv(envReplicaDialect) == "postgres" {
		d = sqlstore.Postgres
	}
	s := &sqlstore.Store{DB: db, Dialect: d, Table: os.Getenv(envReplicaTable), Sealer: testSealer(nil)}
	// Every replica migrates at start-up, as an application would.
	if err := s.Migrate(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	return s, func() { db.Close() }, nil
}

// TestReplicas runs four processes, each with its own Transport, on one
// shared store, breaks the token they all call with, and checks that one
// notification went out in all and that after a reconnect through one of
// them every one uses the new token (see package replicatest).
func TestReplicas(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		// Processes on one host share a file.
		dsn := sqliteDSN(filepath.Join(t.TempDir(), "shared.db"))
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		runReplicas(t, db, sqlstore.SQLite, "sqlite", "sqlite", dsn)
	})
	t.Run("Postgres", func(t *testing.T) {
		db := openPostgres(t)
		runReplicas(t, db, sqlstore.Postgres, "postgres", "pgx", os.Getenv(envPostgres))
	})
}

func runReplicas(t *testing.T, db *sql.DB, d sqlstore.Dialect, dialect, driver, dsn string) {
	s := newStore(t, db, d, testSealer(t))
	replicatest.Run(t, replicatest.Config{
		Store: s,
		Env: []string{
			envReplicaDialect + "=" + dialect,
			envReplicaDriver + "=" + driver,
			envReplicaDSN + "=" + dsn,
			envReplicaTable + "=" + s.Table,
		},
	})
}

// TestTokens: two Transports on one shared table, with clocks two hours
// apart and with answers in reverse order: a live token is never replaced
// by a dead one (see replicatest.Tokens).
func TestTokens(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		replicatest.Tokens(t, newStore(t, db, d, testSealer(t)))
	})
}
