package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// envPostgres names the variable holding the DSN of the PostgreSQL server
// the tests use; unset, they skip. .ci/stores sets it.
const envPostgres = "FINCHREAUTH_POSTGRES_DSN"

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testSealer seals with a fixed test key.
func testSealer(testing.TB) tokenseal.Sealer {
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err) // a constant key of the right length
	}
	return s
}

// sqliteDSN is how the tests open SQLite files: WAL and a busy timeout, as
// the package documentation asks.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)"
}

// openSQLite opens a new SQLite database in t's temporary directory.
func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "finch.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPostgres opens the server named by FINCHREAUTH_POSTGRES_DSN, or skips.
func openPostgres(t testing.TB) *sql.DB {
	t.Helper()
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL tests (.ci/stores sets it, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envPostgres)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("%s is set but PostgreSQL does not answer: %v", envPostgres, err)
	}
	return db
}

// newStore returns a migrated Store in a table of its own, dropped when the
// test ends.
func newStore(t testing.TB, db *sql.DB, d sqlstore.Dialect, sealer tokenseal.Sealer) *sqlstore.Store {
	t.Helper()
	s := &sqlstore.Store{DB: db, Dialect: d, Table: "finchreauth_test_" + randHex(6), Sealer: sealer}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DropTables(context.Background()); err != nil {
			t.Errorf("dropping the test table: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(testing.TB) *sql.DB
		d    sqlstore.Dialect
	}{
		{"SQLite", openSQLite, sqlstore.SQLite},
		{"Postgres", openPostgres, sqlstore.Postgres},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			for _, sealed := range []bool{false, true} {
				name := "plain"
				var sealer tokenseal.Sealer
				if sealed {
					name, sealer = "sealed", testSealer(t)
				}
				t.Run(name, func(t *testing.T) {
					// One table for the whole suite, as an application
					// has: the suite's keys are random.
					s := newStore(t, db, c.d, sealer)
					storetest.Run(t, func(t *testing.T) finchreauth.Store { return s })
				})
			}
		})
	}
}

func TestZeroStore(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		s    *sqlstore.Store
		want string
	}{
		{&sqlstore.Store{}, "sqlstore: Store's DB is nil"},
		{&sqlstore.Store{DB: &sql.DB{}}, "sqlstore: Store's Dialect is Dialect(0); want Postgres or SQLite"},
		{&sqlstore.Store{DB: &sql.DB{}, Dialect: sqlstore.SQLite, Table: "x; DROP TABLE y"}, `sqlstore: Store's Table "x; DROP TABLE y" is not an identifier`},
	} {
		for _, err := range []error{
			c.s.Migrate(ctx),
			func() error { _, err := c.s.State(ctx, "k"); return err }(),
			func() error { _, err := c.s.MarkReauth(ctx, finchreauth.Mark{Key: "k"}); return err }(),
		} {
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error = %v; want %q", err, c.want)
			}
		}
	}
}

// TestSealedAtRest reads the table behind the Store's back: with a Sealer
// the token column never holds the token, and a sealed token moved to
// another connection's row does not open.
func TestSealedAtRest(t *testing.T) {
	ctx := t.Context()
	db := openSQLite(t)
	s := newStore(t, db, sqlstore.SQLite, testSealer(t))
	a := finchreauth.Token{ConnectionID: "conn_a", AccessToken: "secret-a-" + randHex(16)}
	b := finchreauth.Token{ConnectionID: "conn_b", AccessToken: "secret-b-" + randHex(16)}
	for _, tok := range []finchreauth.Token{a, b} {
		if _, err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	var raw []byte
	if err := db.QueryRowContext(ctx, `SELECT token FROM `+s.Table+` WHERE key = 'conn_a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(a.AccessToken)) {
		t.Fatalf("the token column holds token %s in clear", a.Fingerprint())
	}
	// Move a's sealed token into b's row.
	if _, err := db.ExecContext(ctx, `UPDATE `+s.Table+` SET token = ? WHERE key = 'conn_b'`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, "conn_b"); !errorsIs(err, tokenseal.ErrOpen) {
		t.Errorf("Token of a row holding another connection's sealed token: %v; want tokenseal.ErrOpen", err)
	}
	// A Store without the key cannot read it either; one with a rotated
	// keyring still can.
	plain := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: s.Table}
	if got, err := plain.Token(ctx, "conn_a"); err == nil && got.AccessToken == a.AccessToken {
		t.Error("a Store without the Sealer read the sealed token")
	}
	next, _ := tokenseal.NewAESGCM(tokenseal.Key{ID: 2, Secret: bytes.Repeat([]byte{8}, 32)}, tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	rotated := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: s.Table, Sealer: next}
	if got, err := rotated.Token(ctx, "conn_a"); err != nil || got.AccessToken != a.AccessToken {
		t.Errorf("Token after a key rotation: token %s, %v; want token %s", got.Fingerprint(), err, a.Fingerprint())
	}
}

// TestMigrateTwice: Migrate is idempotent and concurrent calls agree.
func TestMigrateTwice(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(testing.TB) *sql.DB
		d    sqlstore.Dialect
	}{
		{"SQLite", openSQLite, sqlstore.SQLite},
		{"Postgres", openPostgres, sqlstore.Postgres},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.open(t)
			s := newStore(t, db, c.d, nil)
			errs := make(chan error, 8)
			for range 8 {
				go func() {
					other := &sqlstore.Store{DB: db, Dialect: c.d, Table: s.Table}
					errs <- other.Migrate(t.Context())
				}()
			}
			for range 8 {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			var n int
			if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+s.Table+`_schema`).Scan(&n); err != nil || n != 1 {
				t.Errorf("schema table has %d rows, %v; want 1", n, err)
			}
		})
	}
}

func BenchmarkStore(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) { storetest.Bench(b, newStore(b, openSQLite(b), sqlstore.SQLite, nil)) })
	b.Run("Postgres", func(b *testing.B) { storetest.Bench(b, newStore(b, openPostgres(b), sqlstore.Postgres, nil)) })
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
