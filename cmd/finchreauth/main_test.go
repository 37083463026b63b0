package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The servers the tests use when they are given; unset, those tests skip.
const (
	envPostgres = "FINCHREAUTH_POSTGRES_DSN"
	envRedis    = "FINCHREAUTH_REDIS_ADDR"
)

// t0 is when the scenario's first connection broke; now is when the
// command runs.
var (
	t0  = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	now = t0.Add(3*24*time.Hour + 2*time.Hour + 30*time.Minute)
)

func fixedNow() time.Time { return now }

// wantTable is the table status prints for the scenario at now.
const wantTable = `CONNECTION  CUSTOMER        PROVIDER      NEEDS RECONNECTING SINCE  AGE    NOTIFICATIONS  NEXT REMINDER                  BROKEN ENTITIES
conn-acme   Acme Corp       gusto         2026-11-20 09:00:00 UTC   3d2h   2              2026-11-23 09:00:00 UTC (due)  all
conn-bolt   Bolt Logistics  adp_run       2026-11-21 11:00:00 UTC   2d0h   1              2026-11-22 11:00:00 UTC (due)  all
conn-cedar  Cedar Bakery    paychex_flex  2026-11-23 09:00:00 UTC   2h30m  1              2026-11-24 09:00:00 UTC        ent-west
`

// want is what status prints for the scenario at now, reading the Store
// that store names.
func want(store string) string {
	return wantTable + "\n3 connections need re-authentication in " + store + ".\n"
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func testSealer() tokenseal.Sealer {
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err) // a constant key of the right length
	}
	return s
}

// clock is the scenario's time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// populate plays the scenario on s, through a Transport and a fake Finch,
// and returns every token it saved or broke (none may be printed):
//
//   - conn-acme breaks at t0 (a call detects it); its reminder goes out a
//     day later;
//   - conn-bolt breaks at t0+26h;
//   - one entity of conn-cedar breaks at t0+3d (Finch's webhook says so);
//   - conn-dune is healthy, and conn-echo broke and was reconnected: the
//     command lists neither.
func populate(t *testing.T, s finchreauth.Store) []string {
	t.Helper()
	ctx := t.Context()
	clk := &clock{t: t0.Add(-10 * 24 * time.Hour)}
	fake := finchtest.NewServer()
	defer fake.Close()
	fake.SetClock(clk.now)
	notified := make(chan string, 16)
	tr := &finchreauth.Transport{
		Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: s, Now: clk.now,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			notified <- e.Connection.ConnectionID
			return nil
		}),
		ErrorHandler: func(_ context.Context, err error) { t.Error(err) },
	}
	defer tr.Close()
	var tokens []string
	add := func(c finchtest.Connection) string {
		tok := fake.AddConnection(c)
		tokens = append(tokens, tok)
		if err := tr.SaveToken(ctx, c.ID, finchreauth.Token(tok)); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wait := func(id string) {
		t.Helper()
		select {
		case got := <-notified:
			if got != id {
				t.Fatalf("notified %s, want %s", got, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not notified", id)
		}
	}
	// detect breaks the connection and makes a call that Finch refuses.
	detect := func(id, tok string) {
		t.Helper()
		fake.Break(id)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fake.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !finchreauth.ParseAPIError(resp).IsReauth() {
			t.Fatalf("a call on broken %s got %d", id, resp.StatusCode)
		}
		wait(id)
		tr.Flush(ctx) // the handling records the notification on its own: before the clock moves
	}

	acme := add(finchtest.Connection{ID: "conn-acme", CustomerName: "Acme Corp", ProviderID: "gusto"})
	bolt := add(finchtest.Connection{ID: "conn-bolt", CustomerName: "Bolt Logistics", ProviderID: "adp_run"})
	add(finchtest.Connection{ID: "conn-cedar", CustomerName: "Cedar\tBakery\x1b", ProviderID: "paychex_flex",
		Entities: []finchtest.Entity{{ID: "ent-east", Name: "Cedar East"}, {ID: "ent-west", Name: "Cedar West"}}})
	add(finchtest.Connection{ID: "conn-dune", CustomerName: "Dune Co", ProviderID: "gusto"})
	echo := add(finchtest.Connection{ID: "conn-echo", CustomerName: "Echo Ltd", ProviderID: "gusto"})

	clk.set(t0.Add(-2 * time.Hour))
	detect("conn-echo", echo)
	clk.set(t0.Add(-time.Hour))
	if err := tr.SaveToken(ctx, "conn-echo", finchreauth.Token(add(finchtest.Connection{ID: "conn-echo"}))); err != nil {
		t.Fatal(err)
	}

	clk.set(t0)
	detect("conn-acme", acme)
	clk.set(t0.Add(26 * time.Hour))
	detect("conn-bolt", bolt)
	if err := tr.Remind(ctx); err != nil { // acme's first reminder
		t.Fatal(err)
	}
	wait("conn-acme")

	clk.set(t0.Add(3 * 24 * time.Hour))
	secret := base64.StdEncoding.EncodeToString([]byte("webhook-secret-of-the-test-32-b!"))
	wh := httptest.NewServer(tr.WebhookHandler(secret))
	defer wh.Close()
	if err := fake.SetWebhook(finchtest.Webhook{URL: wh.URL, Secrets: []string{secret}}); err != nil {
		t.Fatal(err)
	}
	fake.BreakEntity("conn-cedar", "ent-west")
	wait("conn-cedar")
	// The webhook's notification is recorded after Notify returns.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, err := tr.Status(ctx, "conn-cedar")
		if err != nil {
			t.Fatal(err)
		}
		if st.Notifications == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("conn-cedar's notification was not recorded")
		}
	}
	return tokens
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// runStatus runs the status command at now and returns its output.
func runStatus(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"status"}, args...), noEnv, nil, &out, &errOut, fixedNow)
	return code, out.String(), errOut.String()
}

// check runs status with args and compares its output with want(store).
func check(t *testing.T, tokens []string, store string, args ...string) {
	t.Helper()
	code, out, errOut := runStatus(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	if out != want(store) {
		t.Errorf("status printed:\n%s\nwant:\n%s", out, want(store))
	}
	noSecrets(t, out+errOut, tokens)
}

func noSecrets(t *testing.T, out string, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(out, tok) {
			t.Errorf("the output holds token %s", finchreauth.Token(tok).Fingerprint())
		}
	}
}

// sqliteStore makes a migrated SQLite file in t's temporary directory.
func sqliteStore(t *testing.T, sealer tokenseal.Sealer) (*sqlstore.Store, string) {
	t.Helper()
	return sqliteStoreAt(t, filepath.Join(t.TempDir(), "finch.db"), sealer)
}

// sqliteStoreAt opens the SQLite file at path as a Store with sealer, in
// table (or the default table), and migrates it.
func sqliteStoreAt(t *testing.T, path string, sealer tokenseal.Sealer, table ...string) (*sqlstore.Store, string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Sealer: sealer}
	if len(table) > 0 {
		s.Table = table[0]
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestStatusSQLite(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		s, path := sqliteStore(t, nil)
		tokens := populate(t, s)
		check(t, tokens, "sqlite:"+path+" (table finchreauth)", "-store", "sqlite:"+path)
		spec := "sqlite:file:" + path + "?_pragma=busy_timeout(5000)"
		check(t, tokens, spec+" (table finchreauth)", "-store", spec)
	})
	t.Run("sealed", func(t *testing.T) {
		s, path := sqliteStore(t, testSealer())
		tokens := populate(t, s)
		check(t, tokens, "sqlite:"+path+" (table finchreauth)", "-store", "sqlite:"+path, "-sealed")
		// Without -sealed, no record can be read: each is named on
		// stderr, with a hint.
		code, out, errOut := runStatus(t, "-store", "sqlite:"+path)
		if code != 1 || out != "No readable connection needs re-authentication in sqlite:"+path+" (table finchreauth).\n" ||
			!strings.Contains(errOut, "add -sealed") || strings.Count(errOut, "cannot read the record of") != 3 {
			t.Errorf("without -sealed: exit %d, stdout %q, stderr %q; want 1, the three records named and a hint", code, out, errOut)
		}
		noSecrets(t, out+errOut, tokens)
	})
	t.Run("empty", func(t *testing.T) {
		_, path := sqliteStore(t, nil)
		code, out, _ := runStatus(t, "-store", "sqlite:"+path)
		if code != 0 || out != "No connection needs re-authentication in sqlite:"+path+" (table finchreauth).\n" {
			t.Errorf("exit %d, printed %q", code, out)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "typo.db")
		code, _, errOut := runStatus(t, "-store", "sqlite:"+path)
		if code != 1 || errOut == "" {
			t.Errorf("exit %d, stderr %q; want 1 and an error", code, errOut)
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("status created the file")
		}
	})
	t.Run("wrong table", func(t *testing.T) {
		_, path := sqliteStore(t, nil)
		code, _, errOut := runStatus(t, "-store", "sqlite:"+path, "-table", "nope")
		if code != 1 || !strings.Contains(errOut, "-table") {
			t.Errorf("exit %d, stderr %q; want 1 and a hint about -table", code, errOut)
		}
	})
}

func TestStatusPostgres(t *testing.T) {
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL test", envPostgres)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &sqlstore.Store{DB: db, Dialect: sqlstore.Postgres, Table: "finchreauth_cmd_" + randHex(6), Sealer: testSealer()}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.DropTables(context.Background())
	tokens := populate(t, s)
	check(t, tokens, dsn+" (table "+s.Table+")", "-store", dsn, "-table", s.Table, "-sealed")
}

func TestStatusRedis(t *testing.T) {
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("%s is not set: skipping the Redis test", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s := &redisstore.Store{Client: c, Prefix: "finchreauth-cmd-" + randHex(6) + ":", Sealer: testSealer()}
	defer func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Unlink(ctx, iter.Val())
		}
	}()
	tokens := populate(t, s)
	check(t, tokens, "redis://"+addr+"/0 (prefix "+s.Prefix+")", "-store", "redis://"+addr+"/0", "-prefix", s.Prefix, "-sealed")
}

// TestPaging cuts the listing with -limit and continues it with -after,
// and pages through NeedsReauth a record at a time.
func TestPaging(t *testing.T) {
	s, path := sqliteStore(t, nil)
	tokens := populate(t, s)
	const cursor = "2026-11-21T11:00:00Z/conn-bolt"
	name := "sqlite:" + path + " (table finchreauth)"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-limit", "2"}, `CONNECTION  CUSTOMER        PROVIDER  NEEDS RECONNECTING SINCE  AGE   NOTIFICATIONS  NEXT REMINDER                  BROKEN ENTITIES
conn-acme   Acme Corp       gusto     2026-11-20 09:00:00 UTC   3d2h  2              2026-11-23 09:00:00 UTC (due)  all
conn-bolt   Bolt Logistics  adp_run   2026-11-21 11:00:00 UTC   2d0h  1              2026-11-22 11:00:00 UTC (due)  all

The first 2 connections need re-authentication in ` + name + `; for the next ones: -after ` + cursor + "\n"},
		{[]string{"-after", cursor}, `CONNECTION  CUSTOMER      PROVIDER      NEEDS RECONNECTING SINCE  AGE    NOTIFICATIONS  NEXT REMINDER            BROKEN ENTITIES
conn-cedar  Cedar Bakery  paychex_flex  2026-11-23 09:00:00 UTC   2h30m  1              2026-11-24 09:00:00 UTC  ent-west

1 connection needs re-authentication in ` + name + `.
`},
		{[]string{"-limit", "3"}, want(name)},
		{[]string{"-after", "2026-11-23T09:00:00Z/conn-cedar"}, "No connection needs re-authentication in " + name + ".\n"},
	} {
		code, out, errOut := runStatus(t, append([]string{"-store", "sqlite:" + path}, c.args...)...)
		if code != 0 || out != c.want {
			t.Errorf("%q: exit %d (%s), printed:\n%s\nwant:\n%s", c.args, code, errOut, out, c.want)
		}
		noSecrets(t, out, tokens)
	}

	// A page size of 1: the same listing as in one page.
	tr := &finchreauth.Transport{Store: s, Now: fixedNow}
	defer tr.Close()
	for _, limit := range []int{0, 3, 4} {
		var b bytes.Buffer
		l := &listing{tr: tr, page: 1, now: now, name: name}
		if err := l.print(t.Context(), finchreauth.Status{}, limit, &b); err != nil {
			t.Fatal(err)
		}
		if b.String() != want(name) {
			t.Errorf("page size 1, limit %d:\n%s", limit, b.String())
		}
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"status"}, 2, "-store is required"},
		{[]string{"status", "-store", "sqlite:x", "extra"}, 2, "unexpected argument"},
		{[]string{"status", "-store", "sqlite:x", "-limit", "-1"}, 2, "-limit"},
		{[]string{"status", "-store", "sqlite:x", "-after", "yesterday"}, 2, "-after"},
		{[]string{"status", "-store", "mysql://db/app"}, 1, "want postgres://"},
		{[]string{"status", "-store", "sqlite:"}, 1, "needs a file path"},
	} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), c.args, noEnv, nil, &out, &errOut, fixedNow)
		if code != c.code || !strings.Contains(out.String()+errOut.String(), c.says) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", c.args, code, out.String()+errOut.String(), c.code, c.says)
		}
	}
}

// TestNoPassword: a store that does not answer is reported without the
// password of its URL.
func TestNoPassword(t *testing.T) {
	for _, spec := range []string{
		"postgres://app:s3cr3t-pw@127.0.0.1:1/app?connect_timeout=2",
		"redis://:s3cr3t-pw@127.0.0.1:1/0",
		"postgres://app:s3cr3t-pw@[::1/app", // malformed
		"redis://:s3cr3t-pw@127.0.0.1:1/notadb",
	} {
		code, out, errOut := runStatus(t, "-store", spec)
		if code != 1 || errOut == "" {
			t.Errorf("exit %d, stderr %q; want 1 and an error", code, errOut)
		}
		if strings.Contains(out+errOut, "s3cr3t") {
			t.Errorf("the output names the password: %s", errOut)
		}
	}
}
