package sqlstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/sqlstore"
)

// What the killed child is given.
const (
	envKillChild    = "FINCHREAUTH_TEST_KILL_CHILD" // its presence makes a child
	envKillDSN      = "FINCHREAUTH_TEST_KILL_DSN"
	envKillTable    = "FINCHREAUTH_TEST_KILL_TABLE"
	envKillFinch    = "FINCHREAUTH_TEST_KILL_FINCH"
	envKillCallback = "FINCHREAUTH_TEST_KILL_CALLBACK" // the callback's query
	envKillAfter    = "FINCHREAUTH_TEST_KILL_AFTER"    // kill after the write that ends the episode
	killMarker      = "saving the new token"
	endedMarker     = "the episode ended in the Store"
)

var killStateKey = []byte("kill-test-state-key-0123456789ab")

// killConnect is the Connect of the parent and of the child.
func killConnect(finchURL string) *finchreauth.Connect {
	return &finchreauth.Connect{
		ClientID:       "client_test_1",
		ClientSecret:   "secret_test_1",
		RedirectURI:    "https://app.example/finch/callback",
		SuccessURL:     "https://app.example/settings",
		StateKeys:      [][]byte{killStateKey},
		AuthorizeURLs:  true,
		ConnectBaseURL: finchURL,
	}
}

// TestKilledBetweenExchangeAndSave kills, with SIGKILL, a process that has
// exchanged a Connect code for a token and is saving it: the one window in
// which a token Finch issued can still be lost (milliseconds: the Store's
// commit). It shows what the next process sees: the episode still open (the
// dashboard says "needs reconnecting", with when the reconnect started), the
// old token still saved, the state's attempt not done, which Remind reports
// once through the ErrorHandler, and the customer reminded with a fresh link
// (the first one's session is spent).
func TestKilledBetweenExchangeAndSave(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	dsn := sqliteDSN(path)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: "finchreauth"}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)

	var mu sync.Mutex
	var links []string
	var reported []error
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	parent := &finchreauth.Transport{
		Base: finch.Client().Transport, APIBaseURL: finch.URL, Store: store, Connect: killConnect(finch.URL), Now: clock,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			mu.Lock()
			links = append(links, e.ReconnectURL)
			mu.Unlock()
			return nil
		}),
		ErrorHandler: func(_ context.Context, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() },
	}
	defer parent.Close()
	if err := parent.SaveToken(ctx, conn.ID, finchreauth.Token(token)); err != nil {
		t.Fatal(err)
	}
	finch.Break(conn.ID)
	req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := parent.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.Flush(ctx) // the handling runs on its own
	if len(links) != 1 {
		t.Fatalf("%d notifications before the reconnect, want 1", len(links))
	}
	callback, err := finch.Approve(links[0])
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(callback)

	// The child takes the callback and is killed while it saves.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envKillChild+"=1", envKillDSN+"="+dsn, envKillTable+"="+store.Table,
		envKillFinch+"="+finch.URL, envKillCallback+"="+u.RawQuery)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.Contains(lines.Text(), killMarker) {
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred function runs
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("the child ended with %v, want killed by a signal", err)
	}

	// Finch issued the new token; the old one is dead there.
	if c, _ := finch.Connection(conn.ID); c.Status != "connected" {
		t.Fatalf("Finch says %q: the child did not exchange the code", c.Status)
	}

	// What the next process sees.
	next := &finchreauth.Transport{
		Base: finch.Client().Transport, APIBaseURL: finch.URL, Store: store, Connect: killConnect(finch.URL), Now: clock,
		Notifier: parent.Notifier, ErrorHandler: parent.ErrorHandler,
	}
	defer next.Close()
	st, err := next.Status(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.NeedsReauth || st.ReconnectStarted.IsZero() {
		t.Fatalf("status %+v: want needs reconnecting, with the reconnect's start", st)
	}
	if saved, _ := next.Token(ctx, conn.ID); saved != finchreauth.Token(token) {
		t.Fatal("the saved token changed")
	}

	mu.Lock()
	now = now.Add(25 * time.Hour) // the first reminder is due
	mu.Unlock()
	if err := next.Remind(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	var abandoned int
	for _, err := range reported {
		if strings.Contains(err.Error(), "never saved") {
			abandoned++
		}
	}
	if abandoned != 1 {
		mu.Unlock()
		t.Fatalf("%d reports of the abandoned reconnect, want 1: %v", abandoned, reported)
	}
	if len(links) != 2 || links[1] == "" || links[1] == links[0] {
		defer mu.Unlock()
		t.Fatalf("links %q: want a reminder with a fresh link", links)
	}
	fresh := links[1]
	mu.Unlock()
	callback, err = finch.Approve(fresh)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	u, _ = url.Parse(callback)
	next.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/finch/callback?"+u.RawQuery, nil))
	if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "https://app.example/settings?connection_id=") {
		t.Fatalf("the reconnect after the kill: %d %s", rec.Code, loc)
	}
}

// killChildMain is the child of TestKilledBetweenExchangeAndSave: it takes
// the callback and blocks in the save, after saying so, until it is killed.
func killChildMain() {
	if os.Getenv(envKillChild) == "" {
		return
	}
	db, err := sql.Open("sqlite", os.Getenv(envKillDSN))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	store := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: os.Getenv(envKillTable)}
	finchURL := os.Getenv(envKillFinch)
	var s finchreauth.Store = blockingSave{store}
	if os.Getenv(envKillAfter) != "" {
		s = blockingAfterEnd{store}
	}
	tr := &finchreauth.Transport{
		APIBaseURL: finchURL,
		Store:      s,
		Connect:    killConnect(finchURL),
		Timeout:    time.Hour,
		OnReconnected: func(context.Context, finchreauth.Reconnection) {
			fmt.Println("the child's OnReconnected was called")
		},
	}
	rec := httptest.NewRecorder()
	tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/finch/callback?"+os.Getenv(envKillCallback), nil))
	fmt.Fprintln(os.Stderr, "the child was not killed:", rec.Code, rec.Header().Get("Location"))
	os.Exit(3)
}

// blockingSave is a Store whose save of a new token announces itself on
// standard output and never completes.
type blockingSave struct{ *sqlstore.Store }

func (s blockingSave) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	if prev, err := s.Store.Get(ctx, r.ConnectionID); err == nil && r.Token != prev.Token {
		fmt.Println(killMarker)
		select {}
	}
	return s.Store.Put(ctx, r)
}

// blockingAfterEnd is a Store whose write that ends an episode commits,
// announces itself on standard output and never returns: the process is
// killed between the write and what it owes.
type blockingAfterEnd struct{ *sqlstore.Store }

func (s blockingAfterEnd) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	prev, err := s.Store.Get(ctx, r.ConnectionID)
	v, perr := s.Store.Put(ctx, r)
	if perr == nil && err == nil && !prev.Since.IsZero() && r.Since.IsZero() {
		fmt.Println(endedMarker)
		select {}
	}
	return v, perr
}

// TestKilledAfterTheEndingWrite kills, with SIGKILL, the process whose
// callback has just written the end of the episode, before it told the
// application: OnReconnected is owed in the Store, and the next process's
// Remind calls it, once, with the episode and the working token. (No process
// ever called it: the call was not recorded as owed.)
func TestKilledAfterTheEndingWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	dsn := sqliteDSN(path)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: "finchreauth"}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)
	var mu sync.Mutex
	var links []string
	var reconnected []finchreauth.Reconnection
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	parent := &finchreauth.Transport{
		Base: finch.Client().Transport, APIBaseURL: finch.URL, Store: store, Connect: killConnect(finch.URL), Now: clock,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			mu.Lock()
			links = append(links, e.ReconnectURL)
			mu.Unlock()
			return nil
		}),
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) {
			mu.Lock()
			reconnected = append(reconnected, r)
			mu.Unlock()
		},
	}
	defer parent.Close()
	if err := parent.SaveToken(ctx, conn.ID, finchreauth.Token(token)); err != nil {
		t.Fatal(err)
	}
	finch.Break(conn.ID)
	req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := parent.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.Flush(ctx)
	if len(links) != 1 {
		t.Fatalf("%d notifications, want 1", len(links))
	}
	callback, err := finch.Approve(links[0])
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(callback)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envKillChild+"=1", envKillAfter+"=1", envKillDSN+"="+dsn, envKillTable+"="+store.Table,
		envKillFinch+"="+finch.URL, envKillCallback+"="+u.RawQuery)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	var said []string
	for lines.Scan() && !strings.Contains(lines.Text(), endedMarker) {
		said = append(said, lines.Text())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, l := range said {
		if strings.Contains(l, "OnReconnected") {
			t.Fatalf("the child called OnReconnected before its ending write: %q", said)
		}
	}
	st, err := parent.Status(ctx, conn.ID)
	if err != nil || st.NeedsReauth {
		t.Fatalf("status after the child's write: %+v, %v; want the episode ended", st, err)
	}
	newTok, err := parent.Token(ctx, conn.ID)
	if err != nil || newTok == finchreauth.Token(token) {
		t.Fatalf("the saved token %v, %v: want the new one", newTok, err)
	}

	mu.Lock()
	now = now.Add(5 * time.Hour) // past the dead child's lease (4 times its Timeout of an hour, and a minute)
	mu.Unlock()
	for range 2 {
		if err := parent.Remind(ctx); err != nil {
			t.Fatal(err)
		}
	}
	parent.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(reconnected) != 1 {
		t.Fatalf("OnReconnected called %d times after the kill, want 1", len(reconnected))
	}
	r := reconnected[0]
	if r.Via != "callback" || r.Token != newTok || r.Episode == "" || r.Downtime() < 0 {
		t.Errorf("OnReconnected got Via %q, token %v, episode %q, downtime %s; want callback, the new token, the episode", r.Via, r.Token, r.Episode, r.Downtime())
	}
}
