package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// target is a Store the import writes into: the Store as the application
// opens it, and how the command is told of it.
type target struct {
	store finchreauth.Store
	args  []string          // -store and the flags that name it
	env   map[string]string // FINCHREAUTH_SEAL_KEYS, when sealed
	name  string            // as the summary names it
}

// sealEnv holds testSealer's key as FINCHREAUTH_SEAL_KEYS.
var sealEnv = map[string]string{envKeys: "1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}

func sqliteTarget(t *testing.T, sealed bool) target {
	var sealer tokenseal.Sealer
	tg := target{}
	if sealed {
		sealer, tg.args, tg.env = testSealer(), []string{"-sealed"}, sealEnv
	}
	s, path := sqliteStore(t, sealer)
	tg.store, tg.name = s, "sqlite:"+path+" (table finchreauth)"
	tg.args = append(tg.args, "-store", "sqlite:"+path)
	return tg
}

func postgresTarget(t *testing.T, sealed bool) target {
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL test", envPostgres)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &sqlstore.Store{DB: db, Dialect: sqlstore.Postgres, Table: "finchreauth_import_" + randHex(6)}
	tg := target{store: s, name: dsn + " (table " + s.Table + ")", args: []string{"-store", dsn, "-table", s.Table}}
	if sealed {
		s.Sealer, tg.env = testSealer(), sealEnv
		tg.args = append(tg.args, "-sealed")
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DropTables(context.Background()) })
	return tg
}

func redisTarget(t *testing.T, sealed bool) target {
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("%s is not set: skipping the Redis test", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	s := &redisstore.Store{Client: c, Prefix: "finchreauth-import-" + randHex(6) + ":"}
	spec := "redis://" + addr + "/0"
	tg := target{store: s, name: spec + " (prefix " + s.Prefix + ")", args: []string{"-store", spec, "-prefix", s.Prefix}}
	if sealed {
		s.Sealer, tg.env = testSealer(), sealEnv
		tg.args = append(tg.args, "-sealed")
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Unlink(ctx, iter.Val())
		}
		c.Close()
	})
	return tg
}

// imp runs the import command on tg with input as stdin and args after
// tg's, at now, and checks that no token of tokens is in its output and
// that the output is safe for a terminal.
func (tg target) imp(t *testing.T, now func() time.Time, tokens []string, input string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append(append([]string{"import"}, tg.args...), args...), func(k string) string { return tg.env[k] },
		strings.NewReader(input), &out, &errOut, now)
	noSecrets(t, out.String()+errOut.String(), tokens)
	checkTerminalSafe(t, "the output", out.String()+errOut.String())
	return code, out.String(), errOut.String()
}

// tokensIn checks that the Store holds want[id] for each id of want ("":
// none), read through a Transport as the application reads them.
func (tg target) tokensIn(t *testing.T, want map[string]string) {
	t.Helper()
	tr := &finchreauth.Transport{Store: tg.store, Base: offline{}}
	defer tr.Close()
	for id, w := range want {
		tok, err := tr.Token(t.Context(), id)
		switch {
		case w == "" && !errors.Is(err, finchreauth.ErrNotFound):
			t.Errorf("the Store holds a token for %q (%v); want none", id, err)
		case w != "" && (err != nil || string(tok) != w):
			t.Errorf("the Store holds %s for %q (%v); want %s", tok, id, err, finchreauth.Token(w))
		}
	}
}

func tokenFor(name string) string { return "tok_" + name + "_" + randHex(8) }

// testImport runs the command's scenarios on tg: the import of a CSV file
// with lines to refuse, its second run, JSON lines, a dry run, a held
// token left without -check, and Finch deciding with -check.
func testImport(t *testing.T, tg target) {
	a, b, e1, e2, g := tokenFor("a"), tokenFor("b"), tokenFor("e1"), tokenFor("e2"), tokenFor("g")
	tokens := []string{a, b, e1, e2, g}
	hostile := "conn-e\x1b[2J\u202e"
	csvIn := "connection_id,access_token\r\nconn-a," + a + "\r\nconn-b," + b + "\n\nconn-c," + g + ",extra\n" +
		strings.Repeat("x", 300) + "," + g + "\n" + hostile + "," + e1 + "\n" + hostile + "," + e2 + "\nconn-a," + a + "\n"
	code, out, errOut := tg.imp(t, fixedNow, tokens, csvIn)
	wantErr := "finchreauth: line 5: refused: 3 fields; want 2, connection_id and access_token\n" +
		"finchreauth: line 6 (connection \"" + strings.Repeat("x", 64) + "... (300 bytes)\"): refused: the connection id is 300 bytes; a Transport takes at most 256\n" +
		"finchreauth: line 7 (connection \"conn-e\\x1b[2J\\u202e\"): refused: the connection has different tokens on lines 7, 8: the input must give one token per connection\n" +
		"finchreauth: line 8 (connection \"conn-e\\x1b[2J\\u202e\"): refused: the connection has different tokens on lines 7, 8: the input must give one token per connection\n"
	if code != 1 || out != "Into "+tg.name+": imported 2, unchanged 1, skipped 0, refused 4, failed 0.\n" || errOut != wantErr {
		t.Errorf("first run: exit %d\n%s%s\nwant 1 and\n%s", code, out, errOut, wantErr)
	}
	tg.tokensIn(t, map[string]string{"conn-a": a, "conn-b": b, "conn-c": "", hostile: ""})

	code, out, errOut = tg.imp(t, fixedNow, tokens, csvIn)
	if code != 1 || out != "Into "+tg.name+": imported 0, unchanged 3, skipped 0, refused 4, failed 0.\n" || errOut != wantErr {
		t.Errorf("second run: exit %d\n%s%s", code, out, errOut)
	}
	jsonIn := fmt.Sprintf("{\"connection_id\": \"conn-a\", \"access_token\": %q}\n{\"connection_id\": \"conn-b\", \"access_token\": %q}\n", a, b)
	code, out, errOut = tg.imp(t, fixedNow, tokens, jsonIn+`{"connection_id": "conn-g", "access_token": "`+g+`"}`, "-format", "jsonl", "-concurrency", "1")
	if code != 0 || out != "Into "+tg.name+": imported 1, unchanged 2, skipped 0, refused 0, failed 0.\n" || errOut != "" {
		t.Errorf("JSON lines: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = tg.imp(t, fixedNow, tokens, jsonIn, "-format", "jsonl")
	if code != 0 || out != "Into "+tg.name+": imported 0, unchanged 2, skipped 0, refused 0, failed 0.\n" || errOut != "" {
		t.Errorf("JSON lines again: exit %d\n%s%s", code, out, errOut)
	}
	t.Run("dry run", func(t *testing.T) { testDryRun(t, tg) })
	t.Run("held", func(t *testing.T) { testHeld(t, tg) })
	t.Run("check", func(t *testing.T) { testCheck(t, tg) })
}

// testDryRun: a dry run says what a run would do and writes nothing.
func testDryRun(t *testing.T, tg target) {
	h, n := tokenFor("h"), tokenFor("n")
	app := &finchreauth.Transport{Store: tg.store, Base: offline{}}
	defer app.Close()
	if err := app.SaveToken(t.Context(), "conn-dry-held", finchreauth.Token(h)); err != nil {
		t.Fatal(err)
	}
	in := "connection_id,access_token\nconn-dry-held," + h + "\nconn-dry-new," + n + "\nconn-dry-bad,\n"
	code, out, errOut := tg.imp(t, fixedNow, []string{h, n}, in, "-dry-run")
	if code != 1 || out != "Dry run, nothing written to "+tg.name+": would import 1, unchanged 1, would skip 0, refused 1, failed 0.\n" ||
		errOut != "finchreauth: line 4 (connection \"conn-dry-bad\"): refused: the access token is empty\n" {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	tg.tokensIn(t, map[string]string{"conn-dry-new": "", "conn-dry-held": h})
	code, out, _ = tg.imp(t, fixedNow, []string{h, n}, "connection_id,access_token\nconn-dry-new,"+n+"\n", "-dry-run")
	if code != 0 || !strings.Contains(out, "would import 1,") {
		t.Errorf("a dry run that would import every line: exit %d, %s", code, out)
	}
	tg.tokensIn(t, map[string]string{"conn-dry-new": ""})
}

// testHeld: without -check, a connection whose Store holds another token
// is skipped and keeps it; Finch is never called.
func testHeld(t *testing.T, tg target) {
	old, other := tokenFor("old"), tokenFor("other")
	app := &finchreauth.Transport{Store: tg.store, Base: offline{}}
	defer app.Close()
	if err := app.SaveToken(t.Context(), "conn-held", finchreauth.Token(old)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := tg.imp(t, fixedNow, []string{old, other}, "connection_id,access_token\nconn-held,"+other+"\n")
	want := fmt.Sprintf("finchreauth: line 2 (connection \"conn-held\"): skipped: the Store holds another token for it (%s; this line's is %s): -check lets Finch decide which works\n",
		finchreauth.Token(old).Fingerprint(), finchreauth.Token(other).Fingerprint())
	if code != 1 || out != "Into "+tg.name+": imported 0, unchanged 0, skipped 1, refused 0, failed 0.\n" || errOut != want {
		t.Errorf("exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	tg.tokensIn(t, map[string]string{"conn-held": old})
}

// testCheck: with -check, Finch (a finchtest server, at -api) decides
// between the token the Store holds and the line's: a live token replaces
// one a reconnect killed; a killed one is refused; a connection the Store
// does not know gets its token without asking.
func testCheck(t *testing.T, tg target) {
	fake := finchtest.NewServer()
	defer fake.Close()
	app := &finchreauth.Transport{Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: tg.store}
	defer app.Close()
	save := func(id, tok string) {
		if err := app.SaveToken(t.Context(), id, finchreauth.Token(tok)); err != nil {
			t.Fatal(err)
		}
	}
	liveOld := fake.AddConnection(finchtest.Connection{ID: "conn-live"})
	save("conn-live", liveOld)
	liveNew := reconnect(t, fake, "conn-live") // liveOld dies
	deadOld := fake.AddConnection(finchtest.Connection{ID: "conn-dead"})
	deadNew := reconnect(t, fake, "conn-dead")
	save("conn-dead", deadNew)
	fresh := fake.AddConnection(finchtest.Connection{ID: "conn-fresh"})
	tokens := []string{liveOld, liveNew, deadOld, deadNew, fresh}
	in := "connection_id,access_token\nconn-live," + liveNew + "\nconn-dead," + deadOld + "\nconn-fresh," + fresh + "\n"

	code, out, errOut := tg.imp(t, fixedNow, tokens, in, "-check", "-api", fake.URL, "-dry-run")
	if code != 1 || out != "Dry run, nothing written to "+tg.name+": would import 1, unchanged 0, would ask Finch about 2, refused 0, failed 0.\n" ||
		strings.Count(errOut, ": Finch would be asked: the Store holds another token for it") != 2 {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	tg.tokensIn(t, map[string]string{"conn-live": liveOld, "conn-dead": deadNew, "conn-fresh": ""})

	code, out, errOut = tg.imp(t, fixedNow, tokens, in, "-check", "-api", fake.URL)
	want := fmt.Sprintf("finchreauth: line 3 (connection \"conn-dead\"): refused: Finch refuses this line's token (%s): the Store keeps the one it holds (%s)\n",
		finchreauth.Token(deadOld).Fingerprint(), finchreauth.Token(deadNew).Fingerprint())
	if code != 1 || out != "Into "+tg.name+": imported 2, unchanged 0, skipped 0, refused 1, failed 0.\n" || errOut != want {
		t.Errorf("exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	tg.tokensIn(t, map[string]string{"conn-live": liveNew, "conn-dead": deadNew, "conn-fresh": fresh})
}

// reconnect reconnects the connection at the fake as Finch Connect's
// embedded flow and the code exchange do: every earlier token of it dies.
// It returns the new token.
func reconnect(t *testing.T, fake *finchtest.Server, id string) string {
	t.Helper()
	body := fmt.Sprintf(`{"client_id": %q, "client_secret": %q, "code": %q}`, fake.ClientID, fake.ClientSecret, fake.IssueCode(id))
	resp, err := fake.Client().Post(fake.URL+"/auth/token", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("reconnecting %s: %d %v", id, resp.StatusCode, err)
	}
	return tok.AccessToken
}

func TestImportSQLite(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testImport(t, sqliteTarget(t, false)) })
	t.Run("sealed", func(t *testing.T) { testImport(t, sqliteTarget(t, true)) })
}

func TestImportPostgres(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testImport(t, postgresTarget(t, false)) })
	t.Run("sealed", func(t *testing.T) { testImport(t, postgresTarget(t, true)) })
}

func TestImportRedis(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testImport(t, redisTarget(t, false)) })
	t.Run("sealed", func(t *testing.T) { testImport(t, redisTarget(t, true)) })
}

// TestImportMany: 300 connections through 32 saves at a time; the
// second run finds every one unchanged.
func TestImportMany(t *testing.T) {
	tg := sqliteTarget(t, false)
	var in strings.Builder
	in.WriteString("connection_id,access_token\n")
	want := map[string]string{}
	for i := range 300 {
		id, tok := fmt.Sprintf("conn-%04d", i), tokenFor(fmt.Sprint(i))
		want[id] = tok
		fmt.Fprintf(&in, "%s,%s\n", id, tok)
	}
	for _, w := range []string{"imported 300, unchanged 0", "imported 0, unchanged 300"} {
		code, out, errOut := tg.imp(t, fixedNow, nil, in.String(), "-concurrency", "32")
		if code != 0 || out != "Into "+tg.name+": "+w+", skipped 0, refused 0, failed 0.\n" || errOut != "" {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
	}
	tg.tokensIn(t, want)
}

// TestImportFile: -file names the input; a file that cannot be opened
// stops the command before the Store is opened.
func TestImportFile(t *testing.T) {
	tg := sqliteTarget(t, false)
	tok := tokenFor("f")
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte(`{"connection_id": "conn-f", "access_token": "`+tok+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := tg.imp(t, fixedNow, []string{tok}, "", "-file", path, "-format", "jsonl")
	if code != 0 || !strings.Contains(out, "imported 1,") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	tg.tokensIn(t, map[string]string{"conn-f": tok})
	code, _, errOut = tg.imp(t, fixedNow, nil, "", "-file", path+".missing")
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("a missing file: exit %d, %s", code, errOut)
	}
}

// TestImportSealing: without -sealed, a Store whose tokens are sealed gets
// nothing written in plaintext; with -sealed and the keys, the tokens are
// sealed as the application's Store seals them.
func TestImportSealing(t *testing.T) {
	sealed := sqliteTarget(t, true)
	held, fresh := tokenFor("held"), tokenFor("fresh")
	app := &finchreauth.Transport{Store: sealed.store, Base: offline{}}
	defer app.Close()
	if err := app.SaveToken(t.Context(), "conn-held", finchreauth.Token(held)); err != nil {
		t.Fatal(err)
	}
	in := "connection_id,access_token\nconn-held," + held + "\nconn-fresh," + fresh + "\n"
	plain := sealed
	plain.args, plain.env = plain.args[1:], nil // without -sealed
	code, out, errOut := plain.imp(t, fixedNow, []string{held, fresh}, in)
	if code != 1 || !strings.HasSuffix(out, "imported 0, unchanged 0, skipped 0, refused 0, failed 2.\n") ||
		!strings.Contains(errOut, "line 2 (connection \"conn-held\"): failed: reading the Store: ") ||
		!strings.Contains(errOut, "(add -sealed, with the keys in FINCHREAUTH_SEAL_KEYS)") ||
		!strings.Contains(errOut, "line 3 (connection \"conn-fresh\"): failed: not written: the Store's tokens are sealed (line 2): add -sealed") {
		t.Errorf("without -sealed: exit %d\n%s%s", code, out, errOut)
	}
	sealed.tokensIn(t, map[string]string{"conn-fresh": ""})

	code, out, errOut = sealed.imp(t, fixedNow, []string{held, fresh}, in)
	if code != 0 || !strings.HasSuffix(out, "imported 1, unchanged 1, skipped 0, refused 0, failed 0.\n") {
		t.Errorf("with -sealed: exit %d\n%s%s", code, out, errOut)
	}
	sealed.tokensIn(t, map[string]string{"conn-fresh": fresh, "conn-held": held})
	if n, _, err := sealed.store.(*sqlstore.Store).Verify(t.Context()); err != nil || n != 0 {
		t.Errorf("%d tokens are not sealed under the current key (%v)", n, err)
	}
}

// TestImportHandBack: a save that ends an open episode owes OnReconnected;
// the import leaves it to the application, whose Remind calls it once.
func TestImportHandBack(t *testing.T) {
	tg := sqliteTarget(t, false)
	clk := &clock{t: t0}
	fake := finchtest.NewServer()
	defer fake.Close()
	fake.SetClock(clk.now)
	notified := make(chan string, 4)
	reconnected := make(chan finchreauth.Reconnection, 4)
	app := &finchreauth.Transport{Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: tg.store, Now: clk.now,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			notified <- e.Connection.ConnectionID
			return nil
		}),
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) { reconnected <- r },
		ErrorHandler:  func(_ context.Context, err error) { t.Error(err) },
	}
	defer app.Close()
	old := fake.AddConnection(finchtest.Connection{ID: "conn-x"})
	if err := app.SaveToken(t.Context(), "conn-x", finchreauth.Token(old)); err != nil {
		t.Fatal(err)
	}
	fake.Break("conn-x")
	refused(t, app, fake.URL, old)
	<-notified
	app.Flush(t.Context())

	// The employer reconnected elsewhere; the application has the token.
	clk.set(t0.Add(time.Hour))
	tok := reconnect(t, fake, "conn-x")
	code, out, errOut := tg.imp(t, clk.now, []string{old, tok}, "connection_id,access_token\nconn-x,"+tok+"\n", "-check", "-api", fake.URL)
	if code != 0 || !strings.HasSuffix(out, "imported 1, unchanged 0, skipped 0, refused 0, failed 0.\n") ||
		errOut != "finchreauth: 1 call the saves owe the application (OnReconnected, or a customer's notification) is left to its Transport, whose Remind or Run makes it\n" {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	if st, err := app.Status(t.Context(), "conn-x"); err != nil || st.NeedsReauth {
		t.Errorf("after the import, the episode is open: %+v, %v", st, err)
	}
	if len(reconnected) != 0 {
		t.Fatal("OnReconnected was called before the application's Remind")
	}
	clk.set(t0.Add(time.Hour + handBackAfter))
	if err := app.Remind(t.Context()); err != nil {
		t.Fatal(err)
	}
	app.Flush(t.Context())
	select {
	case r := <-reconnected:
		if r.ConnectionID != "conn-x" || string(r.Token) != tok {
			t.Errorf("OnReconnected got %s, %s", r.ConnectionID, r.Token)
		}
	default:
		t.Fatal("the application's Remind did not call OnReconnected")
	}
	app.Remind(t.Context())
	app.Flush(t.Context())
	if len(reconnected) != 0 || len(notified) != 0 {
		t.Error("OnReconnected or the Notifier was called again")
	}
}

// refused makes a call with tok through app, which Finch refuses.
func refused(t *testing.T, app *finchreauth.Transport, api, tok string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := app.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Finch answered %d; want 401", resp.StatusCode)
	}
}

// TestImportUsage: the flags' mistakes are usage errors; no message shows
// an argument, which may be a token pasted where it does not belong.
func TestImportUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		says string
	}{
		{[]string{}, nil, "-store is required"},
		{[]string{"-store", "sqlite:x", "tok_secret"}, nil, "import takes no argument"},
		{[]string{"-store", "sqlite:x", "-format", "tok_secret"}, nil, "-format must be csv or jsonl"},
		{[]string{"-store", "sqlite:x", "-concurrency", "0"}, nil, "-concurrency must be from 1 to 256"},
		{[]string{"-store", "sqlite:x", "-api", "http://127.0.0.1:1"}, nil, "add -check"},
		{[]string{"-store", "sqlite:x", "-check", "-api", "tok_secret"}, nil, "-api must be an http:// or https:// URL"},
		{[]string{"-store", "sqlite:x", "-sealed"}, nil, envKeys + " is not set"},
		{[]string{"-store", "sqlite:x"}, sealEnv, envKeys + " is set: add -sealed"},
		{[]string{"-store", "sqlite:x", "-sealed"}, map[string]string{envKeys: "1:tok_secret"}, envKeys + ": key 1: not base64"},
	} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), append([]string{"import"}, c.args...), func(k string) string { return c.env[k] }, strings.NewReader(""), &out, &errOut, fixedNow)
		all := out.String() + errOut.String()
		if code != 2 || !strings.Contains(all, c.says) || strings.Contains(all, "tok_secret") || !strings.Contains(all, "usage: finchreauth import") {
			t.Errorf("%q: exit %d, %q; want 2 and %q", c.args, code, all, c.says)
		}
	}
	var out bytes.Buffer
	if code := run(t.Context(), []string{"import", "-h"}, noEnv, nil, &out, &out, fixedNow); code != 0 || !strings.Contains(out.String(), "-dry-run") {
		t.Errorf("-h: exit %d, %s", code, out.String())
	}
}

// TestImportInterrupted: once the command's context is done, the lines not
// started fail, and nothing is written for them: a second run goes on.
func TestImportInterrupted(t *testing.T) {
	tg := sqliteTarget(t, false)
	im := newImporter(tg.store.(store), &importOptions{store: &storeConfig{}, concurrency: 2}, fixedNow)
	defer im.tr.Close()
	es, err := readEntries(strings.NewReader("connection_id,access_token\nconn-a,tok_a\nconn-b,tok_b\n"), "csv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	im.run(ctx, es)
	for _, e := range es {
		if e.res != (result{kind: lineFailed, why: "not done: context canceled"}) {
			t.Errorf("line %d: %s: %s", e.line, kindNames[e.res.kind], e.res.why)
		}
	}
	tg.tokensIn(t, map[string]string{"conn-a": "", "conn-b": ""})
}
