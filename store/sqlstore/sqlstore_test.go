package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
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

// sqliteDSN is how the tests open SQLite files, as the package
// documentation asks: WAL, so that readers do not block the writer, and a
// busy timeout of 20 seconds, so that a writer waits for the write lock
// rather than fail with SQLITE_BUSY (the tests race 64 writers).
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)"
}

// openSQLite opens a new SQLite database in t's temporary directory.
//
// It connects once before it returns: the first connection to a new file
// switches it to WAL, which lasts, and needs the file to itself. Connections
// that open the new file at that moment can fail with SQLITE_BUSY, the busy
// timeout notwithstanding; once the file is in WAL, they do not.
func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "finch.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

// openPostgres opens the server named by FINCHREAUTH_POSTGRES_DSN, or skips.
func openPostgres(t testing.TB) *sql.DB { return openPostgresWith(t, "") }

// openPostgresWith opens the server with run-time parameters added to the
// DSN's query, such as "default_transaction_isolation=serializable".
func openPostgresWith(t testing.TB, params string) *sql.DB {
	t.Helper()
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL tests (.ci/stores sets it, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envPostgres)
	}
	if params != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + params
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

// dialects are the databases every test runs on.
var dialects = []struct {
	name string
	open func(testing.TB) *sql.DB
	d    sqlstore.Dialect
}{
	{"SQLite", openSQLite, sqlstore.SQLite},
	{"Postgres", openPostgres, sqlstore.Postgres},
}

// forEachDialect runs f as a subtest on each database.
func forEachDialect(t *testing.T, f func(t *testing.T, db *sql.DB, d sqlstore.Dialect)) {
	for _, c := range dialects {
		t.Run(c.name, func(t *testing.T) { f(t, c.open(t), c.d) })
	}
}

// testTable is a new table name, for a test of its own.
func testTable() string { return "finchreauth_test_" + randHex(6) }

// newStore returns a migrated Store in a table of its own, dropped when the
// test ends.
func newStore(t testing.TB, db *sql.DB, d sqlstore.Dialect, sealer tokenseal.Sealer) *sqlstore.Store {
	t.Helper()
	s := &sqlstore.Store{DB: db, Dialect: d, Table: testTable(), Sealer: sealer}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	dropAfter(t, s)
	return s
}

func dropAfter(t testing.TB, s *sqlstore.Store) {
	t.Cleanup(func() {
		if err := s.DropTables(context.Background()); err != nil {
			t.Errorf("dropping the test tables: %v", err)
		}
	})
}

// usec is a time near now, to the microsecond, as the Transport writes.
func usec(d time.Duration) time.Time { return time.Now().Add(d).Truncate(time.Microsecond) }

// sameRecord reports how got differs from want, tokens by fingerprint.
func sameRecord(got, want finchreauth.Record) string {
	var diffs []string
	if got.ConnectionID != want.ConnectionID {
		diffs = append(diffs, fmt.Sprintf("ConnectionID %q, want %q", got.ConnectionID, want.ConnectionID))
	}
	if got.Version != want.Version {
		diffs = append(diffs, fmt.Sprintf("Version %d, want %d", got.Version, want.Version))
	}
	if got.Token != want.Token {
		diffs = append(diffs, fmt.Sprintf("Token %v, want %v", got.Token, want.Token))
	}
	if !slices.Equal(got.Fingerprints, want.Fingerprints) || (got.Fingerprints == nil) != (want.Fingerprints == nil) {
		diffs = append(diffs, fmt.Sprintf("Fingerprints %#v, want %#v", got.Fingerprints, want.Fingerprints))
	}
	if !got.Since.Equal(want.Since) || !got.Due.Equal(want.Due) {
		diffs = append(diffs, fmt.Sprintf("Since, Due %v, %v; want %v, %v", got.Since, got.Due, want.Since, want.Due))
	}
	if !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
		diffs = append(diffs, fmt.Sprintf("Data %q, want %q", got.Data, want.Data))
	}
	return strings.Join(diffs, "; ")
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
		{&sqlstore.Store{DB: &sql.DB{}, Dialect: sqlstore.Postgres, Table: strings.Repeat("t", 51)}, `sqlstore: Store's Table "ttt`},
	} {
		for _, err := range []error{
			c.s.Migrate(ctx),
			func() error { _, err := c.s.Get(ctx, "k"); return err }(),
			func() error { _, err := c.s.Put(ctx, finchreauth.Record{ConnectionID: "k"}); return err }(),
			func() error { _, err := c.s.Lookup(ctx, "k"); return err }(),
			func() error { _, err := c.s.List(ctx, finchreauth.Query{Limit: 1}); return err }(),
		} {
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error = %v; want %q", err, c.want)
			}
		}
	}
}

// TestRoundTrip: what Put stores, Get and List return as it was, tokens
// sealed or not, nil and empty slices apart, times in any location.
func TestRoundTrip(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		for _, sealer := range []tokenseal.Sealer{nil, testSealer(t)} {
			t.Run(fmt.Sprintf("sealed=%t", sealer != nil), func(t *testing.T) {
				ctx := t.Context()
				s := newStore(t, db, d, sealer)
				tokyo := time.FixedZone("Tokyo", 9*3600)
				for i, rec := range []finchreauth.Record{
					{ConnectionID: "conn_full", Token: finchreauth.Token("tok-" + randHex(16)), Fingerprints: []string{"fp2", "fp1"},
						Since: usec(-time.Hour).In(tokyo), Due: usec(time.Minute), Data: []byte(`{"b":1,  "a":[2]}`)},
					{ConnectionID: "conn_empty"},
					{ConnectionID: "conn_empties", Fingerprints: []string{}, Data: []byte{}},
					{ConnectionID: "conn_far", Since: time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC), Due: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
					{ConnectionID: "conn ünïcode 'quoted'", Token: "t\x00ok", Data: []byte{0, 1, 2, 255}},
				} {
					v, err := s.Put(ctx, rec)
					if err != nil || v != 1 {
						t.Fatalf("%d: Put = %d, %v; want 1", i, v, err)
					}
					rec.Version = 1
					got, err := s.Get(ctx, rec.ConnectionID)
					if err != nil {
						t.Fatalf("%d: Get: %v", i, err)
					}
					if diff := sameRecord(got, rec); diff != "" {
						t.Errorf("%d: Get: %s", i, diff)
					}
					rec.Data = append(rec.Data, 'x')
					rec.Token += "2"
					if v, err := s.Put(ctx, rec); err != nil || v != 2 {
						t.Fatalf("%d: second Put = %d, %v; want 2", i, v, err)
					}
					rec.Version = 2
					if got, err := s.Get(ctx, rec.ConnectionID); err != nil || sameRecord(got, rec) != "" {
						t.Errorf("%d: Get after the second Put: %v %s", i, err, sameRecord(got, rec))
					}
				}
				if _, err := s.Get(ctx, "conn_none"); !errors.Is(err, finchreauth.ErrNotFound) {
					t.Errorf("Get of nothing: %v; want ErrNotFound", err)
				}
			})
		}
	})
}

// TestPutConflict: a Put with the wrong version changes nothing, and
// fingerprints stay indexed after a later Put drops them.
func TestPutConflict(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		s := newStore(t, db, d, nil)
		rec := finchreauth.Record{ConnectionID: "conn_a", Token: "tok-a", Fingerprints: []string{"fp_a"}}
		if _, err := s.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
		for _, v := range []int64{0, 2, -1} {
			bad := finchreauth.Record{ConnectionID: "conn_a", Version: v, Token: "tok-b", Fingerprints: []string{"fp_b"}}
			if _, err := s.Put(ctx, bad); !errors.Is(err, finchreauth.ErrConflict) {
				t.Errorf("Put with version %d over version 1: %v; want ErrConflict", v, err)
			}
		}
		if _, err := s.Put(ctx, finchreauth.Record{ConnectionID: "conn_new", Version: 1}); !errors.Is(err, finchreauth.ErrConflict) {
			t.Errorf("Put with version 1 of nothing: %v; want ErrConflict", err)
		}
		if _, err := s.Lookup(ctx, "fp_b"); !errors.Is(err, finchreauth.ErrNotFound) {
			t.Errorf("Lookup of a refused Put's fingerprint: %v; want ErrNotFound", err)
		}
		got, _ := s.Get(ctx, "conn_a")
		rec.Version = 1
		if diff := sameRecord(got, rec); diff != "" {
			t.Errorf("after the refused Puts: %s", diff)
		}
		// A later Put without fp_a, and another connection taking fp_a.
		if _, err := s.Put(ctx, finchreauth.Record{ConnectionID: "conn_a", Version: 1, Fingerprints: []string{"fp_c"}}); err != nil {
			t.Fatal(err)
		}
		if id, err := s.Lookup(ctx, "fp_a"); err != nil || id != "conn_a" {
			t.Errorf("Lookup(fp_a) after a Put without it = %q, %v; want conn_a", id, err)
		}
		if _, err := s.Put(ctx, finchreauth.Record{ConnectionID: "conn_b", Fingerprints: []string{"fp_a", "fp_a", "fp_d"}}); err != nil {
			t.Fatal(err)
		}
		if id, err := s.Lookup(ctx, "fp_a"); err != nil || id != "conn_b" {
			t.Errorf("Lookup(fp_a) after conn_b's Put = %q, %v; want conn_b", id, err)
		}
		for _, c := range []struct {
			name string
			err  error
		}{
			{"Get", func() error { _, err := s.Get(ctx, ""); return err }()},
			{"Put", func() error { _, err := s.Put(ctx, finchreauth.Record{}); return err }()},
			{"Put empty fingerprint", func() error {
				_, err := s.Put(ctx, finchreauth.Record{ConnectionID: "c", Fingerprints: []string{""}})
				return err
			}()},
			{"Lookup", func() error { _, err := s.Lookup(ctx, ""); return err }()},
		} {
			if c.err == nil || errors.Is(c.err, finchreauth.ErrNotFound) {
				t.Errorf("%s of an empty id: %v; want an error other than ErrNotFound", c.name, c.err)
			}
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Get(done, "conn_a"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a done context: %v", err)
		}
		if _, err := s.Put(done, finchreauth.Record{ConnectionID: "conn_z"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a done context: %v", err)
		}
	})
}

// TestPutRace: of N concurrent Puts with one version, exactly one wins and
// the others get ErrConflict, for the first write (an insert: on
// PostgreSQL's READ COMMITTED, not a unique violation) and later ones. On
// PostgreSQL it runs again with SERIALIZABLE as the sessions' default, where
// the losers get serialization failures instead of waiting.
func TestPutRace(t *testing.T) {
	forEachDialect(t, testPutRace)
	t.Run("PostgresSerializable", func(t *testing.T) {
		db := openPostgresWith(t, "default_transaction_isolation=serializable")
		var level string
		if err := db.QueryRowContext(t.Context(), `SHOW transaction_isolation`).Scan(&level); err != nil || level != "serializable" {
			t.Fatalf("transaction_isolation = %q, %v", level, err)
		}
		testPutRace(t, db, sqlstore.Postgres)
	})
}

func testPutRace(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
	{
		s := newStore(t, db, d, testSealer(t))
		const n = 64
		db.SetMaxOpenConns(n)
		for round := range 3 {
			conn := "conn_race_" + randHex(4)
			for version := int64(0); version < 3; version++ {
				var wg sync.WaitGroup
				gate := make(chan struct{})
				errs := make([]error, n)
				for i := range n {
					wg.Go(func() {
						<-gate
						_, errs[i] = s.Put(t.Context(), finchreauth.Record{ConnectionID: conn, Version: version,
							Token: finchreauth.Token(fmt.Sprint("tok-", i)), Fingerprints: []string{fmt.Sprint("fp-", round, "-", version, "-", i)}})
					})
				}
				close(gate)
				wg.Wait()
				won := -1
				for i, err := range errs {
					switch {
					case err == nil && won >= 0:
						t.Fatalf("round %d, version %d: Puts %d and %d both won", round, version, won, i)
					case err == nil:
						won = i
					case !errors.Is(err, finchreauth.ErrConflict):
						t.Fatalf("round %d, version %d: Put %d: %v; want ErrConflict", round, version, i, err)
					}
				}
				if won < 0 {
					t.Fatalf("round %d, version %d: no Put won", round, version)
				}
				got, err := s.Get(t.Context(), conn)
				if err != nil || got.Version != version+1 || got.Token != finchreauth.Token(fmt.Sprint("tok-", won)) {
					t.Fatalf("round %d: after version %d: version %d, token %v, %v; want the winner's", round, version, got.Version, got.Token, err)
				}
				for i := range n {
					id, err := s.Lookup(t.Context(), fmt.Sprint("fp-", round, "-", version, "-", i))
					if (i == won) != (err == nil) || (err == nil && id != conn) {
						t.Errorf("round %d, version %d: Lookup of Put %d's fingerprint: %q, %v (winner %d)", round, version, i, id, err, won)
					}
				}
			}
		}
	}
}

// TestList: order, filters and keyset pagination, against a listing
// computed in Go.
func TestList(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		s := newStore(t, db, d, nil)
		base := usec(0)
		var recs []finchreauth.Record
		for i := range 40 {
			r := finchreauth.Record{ConnectionID: fmt.Sprintf("conn_%02d%s", (i*7)%40, []string{"", "_", "B", "a"}[i%4])}
			if i%3 != 0 {
				r.Since = base.Add(time.Duration(i%5) * time.Second) // ties
			}
			if i%4 != 0 {
				r.Due = base.Add(time.Duration(i%6-2) * time.Second)
			}
			v, err := s.Put(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			r.Version = v
			recs = append(recs, r)
		}
		want := func(q finchreauth.Query) []string {
			var out []finchreauth.Record
			for _, r := range recs {
				at := r.Since
				if !q.DueBy.IsZero() {
					at = r.Due
				}
				if at.IsZero() || (!q.DueBy.IsZero() && at.After(q.DueBy)) {
					continue
				}
				if at.Before(q.AfterTime) || (at.Equal(q.AfterTime) && r.ConnectionID <= q.AfterID) {
					continue
				}
				out = append(out, r)
			}
			slices.SortFunc(out, func(a, b finchreauth.Record) int {
				ta, tb := a.Since, b.Since
				if !q.DueBy.IsZero() {
					ta, tb = a.Due, b.Due
				}
				if c := ta.Compare(tb); c != 0 {
					return c
				}
				return strings.Compare(a.ConnectionID, b.ConnectionID)
			})
			var ids []string
			for _, r := range out[:min(len(out), q.Limit)] {
				ids = append(ids, r.ConnectionID)
			}
			return ids
		}
		ids := func(rs []finchreauth.Record) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.ConnectionID)
			}
			return out
		}
		for _, dueBy := range []time.Time{{}, base, base.Add(time.Second + 500*time.Nanosecond), base.Add(time.Hour)} {
			for _, limit := range []int{1, 3, 7, 100} {
				q := finchreauth.Query{DueBy: dueBy, Limit: limit}
				var all []string
				for page := 0; ; page++ {
					got, err := s.List(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if w := want(q); !slices.Equal(ids(got), w) {
						t.Fatalf("List(%+v) = %q; want %q", q, ids(got), w)
					}
					all = append(all, ids(got)...)
					if len(got) < limit {
						break
					}
					last := got[len(got)-1]
					q.AfterTime, q.AfterID = last.Since, last.ConnectionID
					if !dueBy.IsZero() {
						q.AfterTime = last.Due
					}
				}
				if w := want(finchreauth.Query{DueBy: dueBy, Limit: 1000}); !slices.Equal(all, w) {
					t.Errorf("pages of %d, DueBy %v: %q; want %q", limit, dueBy, all, w)
				}
			}
		}
		// A cursor between two microseconds, and one past the end.
		for _, q := range []finchreauth.Query{
			{AfterTime: base.Add(time.Second - time.Nanosecond), AfterID: "zzz", Limit: 100},
			{AfterTime: base.Add(time.Second + time.Nanosecond), AfterID: "", Limit: 100},
			{AfterTime: base.Add(time.Second), AfterID: "conn_1", Limit: 100},
			{AfterTime: base.Add(time.Hour), Limit: 100},
		} {
			got, err := s.List(ctx, q)
			if err != nil || !slices.Equal(ids(got), want(q)) {
				t.Errorf("List(%+v) = %q, %v; want %q", q, ids(got), err, want(q))
			}
		}
		if _, err := s.List(ctx, finchreauth.Query{}); err == nil {
			t.Error("List with Limit 0 succeeded")
		}
	})
}

// TestSealedAtRest reads the table behind the Store's back: with a Sealer
// the token column never holds the token, a sealed token moved to another
// connection's row does not open, and a Store without the Sealer refuses
// the sealed rows rather than return their ciphertext as the token.
func TestSealedAtRest(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		s := newStore(t, db, d, testSealer(t))
		ph := "$1"
		if d == sqlstore.SQLite {
			ph = "?"
		}
		a := finchreauth.Record{ConnectionID: "conn_a", Token: finchreauth.Token("secret-a-" + randHex(16)), Since: usec(0)}
		b := finchreauth.Record{ConnectionID: "conn_b", Token: finchreauth.Token("secret-b-" + randHex(16))}
		for _, r := range []finchreauth.Record{a, b} {
			if _, err := s.Put(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		var raw []byte
		if err := db.QueryRowContext(ctx, `SELECT token FROM `+s.Table+` WHERE connection_id = 'conn_a'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(a.Token)) {
			t.Fatalf("the token column holds token %v in clear", a.Token)
		}
		// A Store without the Sealer: a clear error, never the ciphertext.
		plain := &sqlstore.Store{DB: db, Dialect: d, Table: s.Table}
		r, err := plain.Get(ctx, "conn_a")
		if err == nil || r.Token != "" {
			t.Errorf("a Store without the Sealer read a sealed record: token %v, %v", r.Token, err)
		} else if msg := err.Error(); !strings.Contains(msg, "conn_a") || !strings.Contains(msg, "sealed") || !strings.Contains(msg, "no Sealer") {
			t.Errorf("error = %q; want one naming conn_a and saying the token is sealed and there is no Sealer", msg)
		}
		// List returns it in its place, unread: its id, its Since and why.
		if recs, err := plain.List(ctx, finchreauth.Query{Limit: 10}); err != nil || len(recs) != 1 || recs[0].Err == nil || recs[0].Token != "" || !recs[0].Since.Equal(a.Since) {
			t.Errorf("List without the Sealer = %d records, %v; want conn_a, unread, with Err set", len(recs), err)
		} else if !strings.Contains(recs[0].Err.Error(), "no Sealer") {
			t.Errorf("List's Err = %q; want one saying there is no Sealer", recs[0].Err)
		}
		// A rotated keyring still opens it.
		next, _ := tokenseal.NewAESGCM(tokenseal.Key{ID: 2, Secret: bytes.Repeat([]byte{8}, 32)}, tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
		rotated := &sqlstore.Store{DB: db, Dialect: d, Table: s.Table, Sealer: next}
		if got, err := rotated.Get(ctx, "conn_a"); err != nil || got.Token != a.Token {
			t.Errorf("Get after a key rotation: token %v, %v; want %v", got.Token, err, a.Token)
		}
		// Move a's sealed token into b's row.
		if _, err := db.ExecContext(ctx, `UPDATE `+s.Table+` SET token = `+ph+` WHERE connection_id = 'conn_b'`, raw); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "conn_b"); !errors.Is(err, tokenseal.ErrOpen) {
			t.Errorf("Get of a row holding another connection's sealed token: %v; want tokenseal.ErrOpen", err)
		}
		for _, err := range []error{err, func() error { _, err := plain.Get(ctx, "conn_a"); return err }()} {
			if err != nil && (strings.Contains(err.Error(), string(a.Token)) || strings.Contains(err.Error(), string(b.Token))) {
				t.Errorf("an error holds a token: %s", strings.ReplaceAll(err.Error(), string(a.Token), "<token a>"))
			}
		}
	})
}

// TestSealOnMigrate: tokens saved in plaintext are refused by a Store with
// a Sealer until Migrate, run with the Sealer, seals them.
func TestSealOnMigrate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		plain := newStore(t, db, d, nil)
		rec := finchreauth.Record{ConnectionID: "conn_a", Token: finchreauth.Token("secret-" + randHex(16)), Fingerprints: []string{"fp"}, Data: []byte("{}")}
		if _, err := plain.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
		rec.Version = 1
		if got, err := plain.Get(ctx, "conn_a"); err != nil || sameRecord(got, rec) != "" {
			t.Fatalf("plaintext Get: %v %s", err, sameRecord(got, rec))
		}
		sealed := &sqlstore.Store{DB: db, Dialect: d, Table: plain.Table, Sealer: testSealer(t)}
		if _, err := sealed.Get(ctx, "conn_a"); err == nil || !strings.Contains(err.Error(), "plaintext") {
			t.Errorf("Get of a plaintext token with a Sealer: %v; want an error saying it is plaintext", err)
		}
		for range 2 {
			if err := sealed.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := sealed.Get(ctx, "conn_a"); err != nil || sameRecord(got, rec) != "" {
			t.Errorf("after Migrate with the Sealer: %v %s", err, sameRecord(got, rec))
		}
		var raw []byte
		if err := db.QueryRowContext(ctx, `SELECT token FROM `+plain.Table).Scan(&raw); err != nil || bytes.Contains(raw, []byte(rec.Token)) {
			t.Errorf("after Migrate with the Sealer the column holds the token in clear (%v)", err)
		}
	})
}

// TestExplain shows the plans of List's three queries: the listings by
// Since and by Due each read their partial index, and the listing of every
// record (Query.Every) the primary key, in order, with no sort. PostgreSQL's planner picks the
// index once the table is big enough to make it worth it, so the test fills
// one with 20,000 records (10% with Since, 5% with Due) and ANALYZEs it.
func TestExplain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		s := newStore(t, db, d, nil)
		fill := `INSERT INTO ` + s.Table + ` (connection_id, version, sealed, since, due)
SELECT 'conn_' || i, 1, FALSE,
	CASE WHEN i % 10 = 0 THEN now() - i * interval '1 second' END,
	CASE WHEN i % 20 = 0 THEN now() + i * interval '1 second' END
FROM generate_series(1, 20000) AS i`
		explain, sortsWith, scansWith := "EXPLAIN ", "Sort", "Index Scan using "
		pkey := s.Table + "_pkey"
		args := func(at time.Time) any { return at }
		if d == sqlstore.SQLite {
			fill = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO ` + s.Table + ` (connection_id, version, sealed, since, due)
SELECT 'conn_' || i, 1, 0,
	CASE WHEN i % 10 = 0 THEN 1700000000000000 - i * 1000000 END,
	CASE WHEN i % 20 = 0 THEN 1700000000000000 + i * 1000000 END
FROM n`
			explain, sortsWith, scansWith = "EXPLAIN QUERY PLAN ", "TEMP B-TREE", "USING INDEX "
			pkey = "sqlite_autoindex_" + s.Table + "_1"
			args = func(at time.Time) any { return at.UnixMicro() }
		}
		if _, err := db.ExecContext(ctx, fill); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `ANALYZE `+s.Table); err != nil {
			t.Fatal(err)
		}
		since, due, every, err := sqlstore.ListQueries(s)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, c := range []struct {
			name, query string
			args        []any
			index       string
		}{
			{"since", since, []any{args(time.Time{}), "", 100}, s.Table + "_since"},
			{"due", due, []any{args(now), "conn_1", 100, args(now.Add(time.Hour))}, s.Table + "_due"},
			{"every", every, []any{"conn_1", 100}, pkey},
		} {
			rows, err := db.QueryContext(ctx, explain+c.query, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			var plan []string
			for rows.Next() {
				vals := make([]any, len(cols))
				for i := range vals {
					vals[i] = new(any)
				}
				if err := rows.Scan(vals...); err != nil {
					t.Fatal(err)
				}
				line := fmt.Sprint(*vals[len(vals)-1].(*any)) // the plan line, or SQLite's detail
				plan = append(plan, line)
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			t.Logf("%s of List (%s):\n%s", strings.TrimSpace(explain), c.name, text)
			if !strings.Contains(text, scansWith+c.index) || strings.Contains(text, sortsWith) {
				t.Errorf("List (%s) does not read %s in order", c.name, c.index)
			}
		}
	})
}
