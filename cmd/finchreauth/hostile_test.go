package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// breakAll saves a token for each connection of ids and breaks them in
// turn, an hour apart from t0 on, through a Transport on s and a fake
// Finch, waiting for each notification. It returns the tokens. A Transport
// refuses connection ids over 256 bytes, or not UTF-8: such a record can only come from
// elsewhere (another program writing the Store), so breakAll writes it
// there itself, as a copy of a stand-in's record.
func breakAll(t *testing.T, s finchreauth.Store, ids ...string) []string {
	t.Helper()
	clk := &clock{t: t0}
	fake := finchtest.NewServer()
	defer fake.Close()
	fake.SetClock(clk.now)
	notified := make(chan string, len(ids))
	tr := &finchreauth.Transport{Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: s, Now: clk.now,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			notified <- e.Connection.ConnectionID
			return nil
		}),
	}
	defer tr.Close()
	var tokens []string
	for i, id := range ids {
		clk.set(t0.Add(time.Duration(i) * time.Hour))
		hostile := id
		if len(id) > 256 || !utf8.ValidString(id) {
			id = fmt.Sprintf("standin-%d", i)
		}
		tok := fake.AddConnection(finchtest.Connection{ID: id, CustomerName: "Customer\x1b[5m \u202eblinks"})
		tokens = append(tokens, tok)
		if err := tr.SaveToken(t.Context(), id, finchreauth.Token(tok)); err != nil {
			t.Fatal(err)
		}
		fake.Break(id)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		select {
		case <-notified:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d was not notified", i)
		}
		tr.Flush(t.Context())
		if hostile != id {
			r, err := s.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			r.ConnectionID, r.Version, r.Fingerprints = hostile, 0, nil
			if _, err := s.Put(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if v, err := s.Get(t.Context(), id); err == nil { // the stand-in's episode ends: it is not listed
				v.Since, v.Due = time.Time{}, time.Time{}
				if _, err := s.Put(t.Context(), v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return tokens
}

// checkTerminalSafe fails the test if out holds anything a terminal
// interprets: an ASCII control but the newline and the tab, a C1 control, a format
// character (the bidi overrides and isolates), or a byte that is not UTF-8.
func checkTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		if r == '\uFFFD' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s holds %U at byte %d: %.120q", what, r, i, out[max(0, i-40):])
			return
		}
	}
}

var cursorLine = regexp.MustCompile(`for the next ones: -after (\S+)\n`)

// TestHostileIDs: connection ids with escape sequences and bidi overrides,
// and one of 1 MiB, reach the terminal escaped and cut short, in the rows,
// the cursor and the errors; the cursor takes the listing on through
// -after, page by page, to the end; a customer name's escape sequence
// becomes a space.
func TestHostileIDs(t *testing.T) {
	escape := "conn-a\x1b]0;owned\x07\x1b[2J\u202egnp.exe\u2066\x9b31m"
	bidi := "conn-b\u202e\u200f\r\nfake row"
	huge := "conn-c" + strings.Repeat("\x1b[31m", 1<<20/5)
	s, path := sqliteStore(t, testSealer())
	tokens := breakAll(t, s, escape, bidi, huge, "conn-d")

	var pages []string
	after := ""
	for range 10 {
		code, out, errOut := runStatus(t, "-store", "sqlite:"+path, "-sealed", "-limit", "1", "-after", after)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d: %.300q", code, errOut)
		}
		checkTerminalSafe(t, "a page", out)
		if len(out) > 2048 {
			t.Errorf("a page of one connection is %d bytes", len(out))
		}
		noSecrets(t, out, tokens)
		pages = append(pages, out)
		m := cursorLine.FindStringSubmatch(out)
		if m == nil {
			break
		}
		if len(m[1]) > 3*maxCursorID+40 {
			t.Errorf("the cursor is %d bytes", len(m[1]))
		}
		after = m[1]
	}
	if len(pages) != 4 {
		t.Fatalf("%d pages of -limit 1 for 4 connections:\n%s", len(pages), strings.Join(pages, "\n"))
	}
	// Each row shows its id escaped, cut to 40 characters.
	for i, prefix := range []string{`conn-a\x1b]0;owned\x07\x1b[2J\u202egnp.e...`, `conn-b\u202e\u200f\x0d\x0afake row `, `conn-c\x1b[31m\x1b[31m\x1b[31m\x1b[31m\x...`, "conn-d "} {
		if !strings.Contains(pages[i], "\n"+prefix) {
			t.Errorf("page %d does not show connection %d as %q:\n%s", i, i, prefix, pages[i])
		}
	}
	if !strings.Contains(pages[0], "Customer [5m  blinks") {
		t.Errorf("the customer's name is not cleaned:\n%q", pages[0])
	}

	// Without -sealed, each record is unreadable: each error is escaped
	// and short, the 1 MiB id's too.
	code, out, errOut := runStatus(t, "-store", "sqlite:"+path)
	checkTerminalSafe(t, "stdout", out)
	checkTerminalSafe(t, "stderr", errOut)
	if code != 1 || strings.Count(errOut, "cannot read the record of") != 4 || len(errOut) > 4096 {
		t.Errorf("without -sealed: exit %d, %d bytes of stderr: %.2000s", code, len(errOut), errOut)
	}
	noSecrets(t, out+errOut, tokens)
}

// TestHostileArguments: what the command line holds is escaped and cut
// too; a cursor whose id is over 256 bytes is a usage error.
func TestHostileArguments(t *testing.T) {
	long := "2026-11-20T09:00:00Z/" + strings.Repeat("x", maxCursorID+1)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"frob\x1b[2J\u202e" + strings.Repeat("x", 1<<20)}, 2, `unknown command "frob\x1b[2J\u202e`},
		{[]string{"status", "-store", "sqlite:x", "extra\x1b[2J"}, 2, `unexpected argument "extra\x1b[2J"`},
		{[]string{"status", "-st\x1bore", "sqlite:x"}, 2, `-st\x1bore`},
		{[]string{"status", "-store", "sqlite:x", "-after", long}, 2, "-after: the connection id is 257 bytes; a cursor holds at most 256"},
		{[]string{"status", "-store", "sqlite:x", "-after", "2026-11-20T09:00:00Z/%zz"}, 2, "-after: want TIME/CONNECTION_ID"},
		{[]string{"status", "-store", "sqlite:/nonexistent/\x1b[2J.db"}, 1, `/nonexistent/\x1b[2J.db`},
	} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), c.args, noEnv, nil, &out, &errOut, fixedNow)
		all := out.String() + errOut.String()
		checkTerminalSafe(t, "the output", all)
		if code != c.code || !strings.Contains(all, c.says) || len(all) > 4096 {
			t.Errorf("%.60q: exit %d, %d bytes: %.500q; want %d and %q", c.args, code, len(all), all, c.code, c.says)
		}
	}
}

// TestCursorRoundTrip: formatCursor and parseCursor give back the cursor
// of any id up to 256 bytes; a longer id's cursor sorts after it, and
// before any id that does not begin with its first 256 bytes.
func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 20, 9, 0, 0, 123456789, time.UTC)
	for _, id := range []string{"conn-a", "a/b%2Fc d+e", "\x00\xff\x1b\u202e", strings.Repeat("é", 128)} {
		got, err := parseCursor(formatCursor(finchreauth.Status{Since: at, ConnectionID: id}))
		if err != nil || got.ConnectionID != id || !got.Since.Equal(at) {
			t.Errorf("cursor of %q came back as %q, %v, %v", id, got.ConnectionID, got.Since, err)
		}
	}
	for _, id := range []string{strings.Repeat("a", 300), strings.Repeat("a", 255) + "\xff" + "zz", strings.Repeat("\xff", 300)} {
		got, err := parseCursor(formatCursor(finchreauth.Status{Since: at, ConnectionID: id}))
		if err != nil || len(got.ConnectionID) > maxCursorID {
			t.Fatalf("cursor of a %d-byte id: %d bytes, %v", len(id), len(got.ConnectionID), err)
		}
		if id == strings.Repeat("\xff", 300) {
			continue // no id of 256 bytes sorts after it: the cursor starts at it again
		}
		// The id's first bytes, the next one incremented: after id, and
		// after every id that begins with its first 256 bytes.
		c, n := got.ConnectionID, len(got.ConnectionID)
		if c <= id || !strings.HasPrefix(c, id[:n-1]) || c[n-1] != id[n-1]+1 {
			t.Errorf("cursor of a %d-byte id does not sort just after it: %q", len(id), c)
		}
	}
}

// TestUnreadableRecords: with one record stored in plaintext by a replica
// without the Sealer (the rollout of sealing), status -sealed prints the
// three others, names the unreadable one on stderr with why, counts it,
// and exits with 1.
func TestUnreadableRecords(t *testing.T) {
	s, path := sqliteStore(t, testSealer())
	tokens := breakAll(t, s, "conn-a", "conn-b", "conn-c", "conn-d")
	plain, _ := sqliteStoreAt(t, path, nil)
	r, err := s.Get(t.Context(), "conn-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runStatus(t, "-store", "sqlite:"+path, "-sealed")
	name := "sqlite:" + path + " (table finchreauth)"
	if code != 1 {
		t.Errorf("exit %d; want 1", code)
	}
	for _, id := range []string{"conn-a", "conn-c", "conn-d"} {
		if !strings.Contains(out, "\n"+id+" ") {
			t.Errorf("stdout does not list %s:\n%s", id, out)
		}
	}
	if strings.Contains(out, "conn-b") || !strings.HasSuffix(out, "3 connections need re-authentication in "+name+".\n") {
		t.Errorf("stdout:\n%s", out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], `finchreauth: cannot read the record of "conn-b": `) || !strings.Contains(lines[0], "stored in plaintext") ||
		!strings.HasPrefix(lines[1], "finchreauth: 1 record in "+name+" could not be read") {
		t.Errorf("stderr:\n%s", errOut)
	}
	noSecrets(t, out+errOut, tokens)
}

// TestNamesTheStore: a wrong -table or -prefix reads an empty Store; the
// output says which one it read.
func TestNamesTheStore(t *testing.T) {
	s, path := sqliteStore(t, nil)
	breakAll(t, s, "conn-a")
	sqliteStoreAt(t, path, nil, "other_app")
	code, out, errOut := runStatus(t, "-store", "sqlite:"+path, "-table", "other_app")
	if want := "No connection needs re-authentication in sqlite:" + path + " (table other_app).\n"; code != 0 || out != want {
		t.Errorf("a wrong -table: exit %d, %q (%s); want %q", code, out, errOut, want)
	}
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("%s is not set: skipping the Redis part", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	rs := &redisstore.Store{Client: c, Prefix: "finchreauth-cmd-" + randHex(6) + ":"} // nothing under it
	code, out, errOut = runStatus(t, "-store", "redis://"+addr+"/0", "-prefix", rs.Prefix)
	if want := "No connection needs re-authentication in redis://" + addr + "/0 (prefix " + rs.Prefix + ").\n"; code != 0 || out != want {
		t.Errorf("a wrong -prefix: exit %d, %q (%s); want %q", code, out, errOut, want)
	}
	// go-redis lets a server without a password ignore one.
	code, out, errOut = runStatus(t, "-store", "redis://:s3cr3t-pw@"+addr+"/0", "-prefix", rs.Prefix)
	if strings.Contains(out+errOut, "s3cr3t") || !strings.Contains(out+errOut, "redis://:xxxxx@"+addr+"/0 (prefix "+rs.Prefix+")") {
		t.Errorf("a URL with a password: exit %d, %q %q; want the URL named with the password redacted", code, out, errOut)
	}
}

// TestResealCommand: reseal and verify take the keys from
// FINCHREAUTH_SEAL_KEYS; after reseal, a Store with the new key alone reads
// every token.
func TestResealCommand(t *testing.T) {
	key1 := tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)} // testSealer's
	key2 := tokenseal.Key{ID: 2, Secret: bytes.Repeat([]byte{9}, 32)}
	b64 := func(k tokenseal.Key) string { return base64.StdEncoding.EncodeToString(k.Secret) }
	s, path := sqliteStore(t, testSealer())
	tokens := breakAll(t, s, "conn-a", "conn-b", "conn-c")
	env := map[string]string{envKeys: "2:" + b64(key2) + ", 1:" + b64(key1)}
	cmd := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(t.Context(), append(args, "-store", "sqlite:"+path), func(k string) string { return env[k] }, nil, &out, &errOut, fixedNow)
		noSecrets(t, out.String()+errOut.String(), tokens)
		for _, k := range []tokenseal.Key{key1, key2} {
			if strings.Contains(out.String()+errOut.String(), b64(k)) {
				t.Errorf("the output of %q holds key %d", args, k.ID)
			}
		}
		return code, out.String(), errOut.String()
	}
	name := "sqlite:" + path + " (table finchreauth)"
	if code, out, _ := cmd("verify"); code != 1 || !strings.HasPrefix(out, "In "+name+`, 3 tokens are not sealed under key 2; the first: "conn-a", "conn-b", "conn-c".`) {
		t.Errorf("verify before reseal: exit %d, %q", code, out)
	}
	if code, out, errOut := cmd("reseal"); code != 0 || out != "Sealed 3 tokens again under key 2 in "+name+".\nEvery token in "+name+" is sealed under key 2: the other keys can be dropped.\n" {
		t.Errorf("reseal: exit %d, %q %q", code, out, errOut)
	}
	env[envKeys] = "2:" + b64(key2)
	if code, out, _ := cmd("verify"); code != 0 || !strings.HasPrefix(out, "Every token") {
		t.Errorf("verify with key 2 alone: exit %d, %q", code, out)
	}
	only2, _ := tokenseal.NewAESGCM(key2)
	after, _ := sqliteStoreAt(t, path, only2)
	for i, id := range []string{"conn-a", "conn-b", "conn-c"} {
		if r, err := after.Get(t.Context(), id); err != nil || string(r.Token) != tokens[i] {
			t.Errorf("with key 2 alone, Get(%s): %v", id, err)
		}
	}
	// The failures name the case, never the value: it holds keys.
	for _, bad := range []struct{ name, value string }{
		{"unset", ""},
		{"no secret", "2"},
		{"not base64", "2:not base64!"},
		{"an id over 255", "300:" + b64(key2)},
		{"a short key", "2:" + base64.StdEncoding.EncodeToString([]byte("short"))},
	} {
		env[envKeys] = bad.value
		if code, _, errOut := cmd("reseal"); code != 2 || !strings.Contains(errOut, envKeys) {
			t.Errorf("%s %s: exit %d; want 2 and an error naming the variable", envKeys, bad.name, code)
		}
	}
}
