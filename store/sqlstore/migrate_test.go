package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/sqlstore"
)

// v1DDL is the table of schema version 1, as the Migrate of earlier
// releases created it (their dialect.go), with the types of each dialect.
const v1DDL = `CREATE TABLE IF NOT EXISTS {T} (
	key             TEXT PRIMARY KEY,
	connection_id   TEXT NOT NULL DEFAULT '',
	needs_reauth    {bool} NOT NULL DEFAULT FALSE,
	episode         TEXT NOT NULL DEFAULT '',
	since           {time},
	notified        {bool} NOT NULL DEFAULT FALSE,
	lease_until     {time},
	lease_holder    TEXT NOT NULL DEFAULT '',
	token           {bytes},
	token_fp        TEXT NOT NULL DEFAULT '',
	token_issued_at {time},
	superseded      TEXT NOT NULL DEFAULT ''
)`

// rebind turns $1 into SQLite's ?1.
func rebind(d sqlstore.Dialect, s string) string {
	if d == sqlstore.SQLite {
		return regexp.MustCompile(`\$(\d+)`).ReplaceAllString(s, "?$1")
	}
	return s
}

// createV1 creates table at schema version 1, as an earlier release left it.
func createV1(t *testing.T, db *sql.DB, d sqlstore.Dialect, table string) {
	t.Helper()
	ddl := strings.NewReplacer("{T}", table, "{bool}", "BOOLEAN", "{time}", "TIMESTAMPTZ", "{bytes}", "BYTEA")
	if d == sqlstore.SQLite {
		ddl = strings.NewReplacer("{T}", table, "{bool}", "INTEGER", "{time}", "INTEGER", "{bytes}", "BLOB")
	}
	for _, stmt := range []string{
		ddl.Replace(v1DDL),
		`CREATE TABLE IF NOT EXISTS ` + table + `_schema (version INTEGER NOT NULL)`,
		`INSERT INTO ` + table + `_schema (version) VALUES (1)`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

// v1Row is a row of the version-1 table.
type v1Row struct {
	key, conn      string
	needsReauth    bool
	episode        string
	since          time.Time
	notified       bool
	leaseUntil     time.Time
	leaseHolder    string
	token          []byte
	fp, superseded string
	issuedAt       time.Time
}

func insertV1(t *testing.T, db *sql.DB, d sqlstore.Dialect, table string, r v1Row) {
	t.Helper()
	tm := func(x time.Time) any {
		switch {
		case x.IsZero():
			return nil
		case d == sqlstore.SQLite:
			return x.UnixMicro()
		}
		return x
	}
	var token any
	if r.token != nil {
		token = r.token
	}
	_, err := db.ExecContext(t.Context(), rebind(d, `INSERT INTO `+table+` (key, connection_id, needs_reauth, episode, since, notified,
	lease_until, lease_holder, token, token_fp, token_issued_at, superseded)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
		r.key, r.conn, r.needsReauth, r.episode, tm(r.since), r.notified, tm(r.leaseUntil), r.leaseHolder, token, r.fp, tm(r.issuedAt), r.superseded)
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromV1 fills a version-1 table the way the earlier release
// did, migrates it, and reads every record back through the Store: tokens
// (plaintext and sealed), fingerprints, open episodes in the Transport's
// format, and the rows of detections that were dropped.
func TestMigrateFromV1(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		schemas := []string{""}
		switch d {
		case sqlstore.Postgres:
			schemas = append(schemas, "finch_test_"+randHex(4)+".")
		case sqlstore.SQLite:
			schemas = append(schemas, "main.")
		}
		for _, schema := range schemas {
			t.Run("schema="+strings.TrimSuffix(schema, "."), func(t *testing.T) {
				if d == sqlstore.Postgres && schema != "" {
					if _, err := db.ExecContext(t.Context(), `CREATE SCHEMA `+strings.TrimSuffix(schema, ".")); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						db.ExecContext(context.Background(), `DROP SCHEMA `+strings.TrimSuffix(schema, ".")+` CASCADE`)
					})
				}
				testMigrateFromV1(t, db, d, schema+testTable())
			})
		}
	})
}

func testMigrateFromV1(t *testing.T, db *sql.DB, d sqlstore.Dialect, table string) {
	ctx := t.Context()
	createV1(t, db, d, table)
	plain := &sqlstore.Store{DB: db, Dialect: d, Table: table}
	dropAfter(t, plain)

	tokPlain := "tok-plain-" + randHex(16)
	tokSealed := "tok-sealed-" + randHex(16)
	tokBroken := "tok-broken-" + randHex(16)
	fpPlain, fpSealed, fpBroken := finchreauth.Token(tokPlain).Fingerprint(), finchreauth.Token(tokSealed).Fingerprint(), finchreauth.Token(tokBroken).Fingerprint()
	sealedBytes, err := testSealer(t).Seal([]byte(tokSealed), []byte("conn_sealed"))
	if err != nil {
		t.Fatal(err)
	}
	since1 := time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
	since2 := time.Date(2025, 3, 2, 11, 0, 0, 654321000, time.UTC)
	for _, r := range []v1Row{
		// A healthy connection, its token in plaintext, with two
		// replaced tokens.
		{key: "conn_plain", conn: "conn_plain", token: []byte(tokPlain), fp: fpPlain, superseded: "aaaa000000000001 aaaa000000000002", issuedAt: since1},
		// A healthy connection, its token sealed.
		{key: "conn_sealed", conn: "conn_sealed", token: sealedBytes, fp: fpSealed, issuedAt: since1},
		// An open episode that was notified, lease given back.
		{key: "conn_notified", conn: "conn_notified", needsReauth: true, episode: "EPNOTIFIED", since: since1, notified: true,
			token: []byte(tokBroken), fp: fpBroken, superseded: "bbbb000000000001", issuedAt: since1.Add(-time.Hour)},
		// An open episode nobody notified yet, its lease held, no token
		// saved: the fingerprint is the one the detection named.
		{key: "conn_unnotified", conn: "conn_unnotified", needsReauth: true, episode: "EPUNNOTIFIED", since: since2,
			leaseUntil: since2.Add(time.Minute), leaseHolder: "nonce:start", fp: "cccc000000000001"},
		// Detections keyed by fingerprint: one whose connection is
		// known, one whose is not, and one naming a fingerprint that
		// conn_plain replaced (conn_plain keeps it).
		{key: "fp:dddd000000000001", conn: "conn_plain", needsReauth: true, episode: "EPSTRAY", since: since2, fp: "dddd000000000001"},
		{key: "fp:eeee000000000001", needsReauth: true, episode: "EPUNKNOWN", since: since2, fp: "eeee000000000001"},
		{key: "fp:aaaa000000000002", conn: "conn_other", needsReauth: true, episode: "EPOTHER", since: since2, fp: "aaaa000000000002"},
	} {
		insertV1(t, db, d, table, r)
	}

	if err := plain.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	want := []finchreauth.Record{
		{ConnectionID: "conn_plain", Version: 1, Token: finchreauth.Token(tokPlain),
			Fingerprints: []string{fpPlain, "aaaa000000000001", "aaaa000000000002"},
			Data:         []byte(`{"current":"` + fpPlain + `"}`)},
		{ConnectionID: "conn_sealed", Version: 1, Token: finchreauth.Token(tokSealed), Fingerprints: []string{fpSealed},
			Data: []byte(`{"current":"` + fpSealed + `"}`)},
		{ConnectionID: "conn_notified", Version: 1, Token: finchreauth.Token(tokBroken), Fingerprints: []string{fpBroken, "bbbb000000000001"},
			Since: since1, Due: since1,
			Data: []byte(`{"current":"` + fpBroken + `","episode":{"id":"EPNOTIFIED","source":"detection","sent":1}}`)},
		{ConnectionID: "conn_unnotified", Version: 1, Fingerprints: []string{"cccc000000000001"}, Since: since2, Due: since2,
			Data: []byte(`{"current":"cccc000000000001","episode":{"id":"EPUNNOTIFIED","source":"detection"}}`)},
	}
	sealed := &sqlstore.Store{DB: db, Dialect: d, Table: table, Sealer: testSealer(t)}
	check := func(t *testing.T, when string, sealedDone bool) {
		t.Helper()
		for _, w := range want {
			s := plain
			if w.ConnectionID == "conn_sealed" || sealedDone {
				s = sealed
			}
			got, err := s.Get(ctx, w.ConnectionID)
			if err != nil {
				t.Errorf("%s: Get(%s): %v", when, w.ConnectionID, err)
				continue
			}
			if diff := sameRecord(got, w); diff != "" {
				t.Errorf("%s: Get(%s): %s", when, w.ConnectionID, diff)
			}
		}
		for _, id := range []string{"fp:dddd000000000001", "fp:eeee000000000001", "fp:aaaa000000000002", "conn_other"} {
			if _, err := sealed.Get(ctx, id); !errors.Is(err, finchreauth.ErrNotFound) {
				t.Errorf("%s: Get(%s): %v; want ErrNotFound", when, id, err)
			}
		}
		for fp, conn := range map[string]string{
			fpPlain: "conn_plain", "aaaa000000000001": "conn_plain", "aaaa000000000002": "conn_plain",
			fpSealed: "conn_sealed", fpBroken: "conn_notified", "bbbb000000000001": "conn_notified",
			"cccc000000000001": "conn_unnotified", "dddd000000000001": "conn_plain", "eeee000000000001": "",
		} {
			got, err := plain.Lookup(ctx, fp)
			if conn == "" {
				if !errors.Is(err, finchreauth.ErrNotFound) {
					t.Errorf("%s: Lookup(%s) = %q, %v; want ErrNotFound", when, fp, got, err)
				}
			} else if err != nil || got != conn {
				t.Errorf("%s: Lookup(%s) = %q, %v; want %s", when, fp, got, err, conn)
			}
		}
		if !sealedDone {
			return
		}
		for _, q := range []finchreauth.Query{{Limit: 10}, {DueBy: time.Now(), Limit: 10}} {
			got, err := sealed.List(ctx, q)
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ConnectionID)
			}
			if err != nil || !slices.Equal(ids, []string{"conn_notified", "conn_unnotified"}) {
				t.Errorf("%s: List(%+v) = %q, %v; want the two open episodes", when, q, ids, err)
			}
		}
		// The Transport reads the records as its own.
		tr := &finchreauth.Transport{Store: sealed}
		defer tr.Close()
		for id, n := range map[string]int{"conn_notified": 1, "conn_unnotified": 0} {
			st, err := tr.Status(ctx, id)
			if err != nil || !st.NeedsReauth || !st.Since.Equal(map[string]time.Time{"conn_notified": since1, "conn_unnotified": since2}[id]) || st.Notifications != n {
				t.Errorf("%s: Transport.Status(%s) = NeedsReauth %t, Since %v, Notifications %d, %v; want true, the old since, %d",
					when, id, st.NeedsReauth, st.Since, st.Notifications, err, n)
			}
		}
		for _, id := range []string{"conn_plain", "conn_sealed"} {
			if tok, err := tr.Token(ctx, id); err != nil || tok == "" {
				t.Errorf("%s: Transport.Token(%s): %v, %v", when, id, tok, err)
			}
		}
	}
	check(t, "after Migrate", false)
	// Without a Sealer, the sealed token is refused, not returned.
	if r, err := plain.Get(ctx, "conn_sealed"); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("Get(conn_sealed) without a Sealer: token %v, %v; want an error", r.Token, err)
	}
	if err := plain.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check(t, "after a second Migrate", false)
	// Migrate with the Sealer seals the plaintext tokens; a second one
	// changes nothing.
	for i := range 2 {
		if err := sealed.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, fmt.Sprintf("after Migrate %d with the Sealer", i+1), true)
	}
	var version, tables int
	if err := db.QueryRowContext(ctx, `SELECT MAX(version), COUNT(*) FROM `+table+`_schema`).Scan(&version, &tables); err != nil || version != 2 || tables != 1 {
		t.Errorf("schema table: version %d in %d rows, %v; want 2 in 1", version, tables, err)
	}

	// The episodes are due: the Transport's Remind takes them up at once.
	// A minute after conn_unnotified's episode began, it owes its first
	// notification; conn_notified, notified more than a day before, its
	// first reminder.
	fake := finchtest.NewServer()
	defer fake.Close()
	var mu sync.Mutex
	sent := map[string]string{}
	tr := &finchreauth.Transport{
		Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: sealed,
		Now: func() time.Time { return since2.Add(time.Minute) },
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			mu.Lock()
			defer mu.Unlock()
			sent[e.Connection.ConnectionID] = fmt.Sprintf("%s %d %s", e.Episode, e.Reminder, e.Source)
			return nil
		}),
	}
	defer tr.Close()
	if err := tr.Remind(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]string{"conn_unnotified": "EPUNNOTIFIED 0 detection", "conn_notified": "EPNOTIFIED 1 reminder"}; !maps.Equal(sent, want) {
		t.Errorf("Remind after the upgrade sent %q; want %q", sent, want)
	}
}

// TestMigrateNewer: a table at a version this package does not know is
// left as it is.
func TestMigrateNewer(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		ctx := t.Context()
		table := testTable()
		s := &sqlstore.Store{DB: db, Dialect: d, Table: table, Sealer: testSealer(t)}
		dropAfter(t, s)
		for _, stmt := range []string{
			`CREATE TABLE ` + table + ` (future TEXT)`,
			`INSERT INTO ` + table + ` (future) VALUES ('kept')`,
			`CREATE TABLE ` + table + `_schema (version INTEGER NOT NULL)`,
			`INSERT INTO ` + table + `_schema (version) VALUES (3)`,
		} {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate of a version-3 table: %v", err)
		}
		var future string
		var version int
		if err := db.QueryRowContext(ctx, `SELECT future FROM `+table).Scan(&future); err != nil || future != "kept" {
			t.Errorf("the version-3 table after Migrate: %q, %v", future, err)
		}
		if err := db.QueryRowContext(ctx, `SELECT version FROM `+table+`_schema`).Scan(&version); err != nil || version != 3 {
			t.Errorf("its version after Migrate: %d, %v; want 3", version, err)
		}
	})
}

// TestMigrateConcurrently: replicas starting at once all migrate, from
// nothing and from version 1; one upgrades, the others wait and find
// nothing to do.
func TestMigrateConcurrently(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		for _, from := range []int{0, 1} {
			t.Run(fmt.Sprint("from=", from), func(t *testing.T) {
				ctx := t.Context()
				table := testTable()
				if from == 1 {
					createV1(t, db, d, table)
					insertV1(t, db, d, table, v1Row{key: "conn_a", conn: "conn_a", token: []byte("tok-a"), fp: finchreauth.Token("tok-a").Fingerprint()})
				}
				var wg sync.WaitGroup
				errs := make([]error, 8)
				for i := range errs {
					wg.Go(func() {
						s := &sqlstore.Store{DB: db, Dialect: d, Table: table}
						errs[i] = s.Migrate(ctx)
					})
				}
				wg.Wait()
				s := &sqlstore.Store{DB: db, Dialect: d, Table: table}
				dropAfter(t, s)
				for i, err := range errs {
					if err != nil {
						t.Errorf("Migrate %d: %v", i, err)
					}
				}
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+`_schema`).Scan(&n); err != nil || n != 1 {
					t.Errorf("schema table has %d rows, %v; want 1", n, err)
				}
				if from == 1 {
					if r, err := s.Get(ctx, "conn_a"); err != nil || r.Token != "tok-a" {
						t.Errorf("Get(conn_a) after the upgrade: %v, %v", r.Token, err)
					}
				}
			})
		}
	})
}
