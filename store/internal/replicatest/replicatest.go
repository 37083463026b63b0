// Package replicatest checks, with real OS processes, that a shared
// finchreauth.Store makes "one notification per broken connection" hold
// across replicas: each replica is the test binary run again, with its own
// Transport and its own singleflight, all calling one fake Finch and sharing
// one store.
//
// A store module wires it in twice. Its TestMain turns the process into a
// replica when the parent asked for one:
//
//	func TestMain(m *testing.M) {
//		replicatest.Main(openFromEnv) // returns at once in a normal run
//		os.Exit(m.Run())
//	}
//
// and a test runs the scenario:
//
//	replicatest.Run(t, replicatest.Config{Store: s, Env: []string{"MYSTORE_DSN=..."}})
//
// The replicas find the store through Env; openFromEnv reads it.
package replicatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// The environment a replica is started with.
const (
	envIndex       = "FINCHREAUTH_REPLICA"              // the replica's number; its presence makes a replica
	envFinch       = "FINCHREAUTH_REPLICA_FINCH"        // the fake Finch's URL
	envConn        = "FINCHREAUTH_REPLICA_CONNECTION"   // the connection id
	envClient      = "FINCHREAUTH_REPLICA_CLIENT"       // client_id:client_secret for /auth/token
	envNotifyFile  = "FINCHREAUTH_REPLICA_NOTIFY_FILE"  // where the Notifier appends a line per notification
	envNotifyDelay = "FINCHREAUTH_REPLICA_NOTIFY_DELAY" // how long Notify takes
	envCallers     = "FINCHREAUTH_REPLICA_CALLERS"      // goroutines calling Finch in each replica
)

// Config describes a run.
type Config struct {
	// Store is the parent's handle on the shared store: it saves the first
	// token and checks the state at the end.
	Store finchreauth.Store
	// Env is added to each replica's environment: what its Main's open
	// function needs to reach the same store.
	Env []string
	// Replicas is how many processes to start. If zero, 4.
	Replicas int
	// Callers is how many goroutines call Finch in each replica. If zero, 8.
	Callers int
	// NotifyDelay is how long each Notify takes, so that other replicas
	// detect the break while the notification is under way. If zero,
	// 200ms.
	NotifyDelay time.Duration
	// Timeout bounds the whole run. If zero, 2 minutes.
	Timeout time.Duration
}

// Run starts the replicas and plays the scenario: every replica calls Finch
// with the connection's token from the store, from Callers goroutines at
// once; the parent breaks the connection while they call; then it checks
// that exactly one notification went out in all; sends each replica a
// callback with the episode's link state and a fresh code, and checks that
// exactly one reconnects; and checks that every replica reads the new token
// from the store and calls Finch with it successfully.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Replicas == 0 {
		cfg.Replicas = 4
	}
	if cfg.Callers == 0 {
		cfg.Callers = 8
	}
	if cfg.NotifyDelay == 0 {
		cfg.NotifyDelay = 200 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), cfg.Timeout)
	defer cancel()

	fake := finchtest.NewServer()
	defer fake.Close()
	first := fake.AddConnection(finchtest.Connection{CustomerName: "Replica Corp"})
	conn, _ := fake.ConnectionForToken(first)
	firstFP := finchreauth.Token(first).Fingerprint()
	// The parent's own Transport on the shared store saves the first token
	// and reads the connection's status; it never calls Finch itself.
	parent := &finchreauth.Transport{Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: cfg.Store,
		Connect: connectFor(fake.URL, fake.ClientID, fake.ClientSecret)}
	defer parent.Close()
	if err := parent.SaveToken(ctx, conn.ID, finchreauth.Token(first)); err != nil {
		t.Fatalf("saving the first token %s: %v", firstFP, err)
	}
	notifyFile := t.TempDir() + "/notifications"

	env := append(os.Environ(), cfg.Env...)
	env = append(env,
		envFinch+"="+fake.URL,
		envConn+"="+conn.ID,
		envClient+"="+fake.ClientID+":"+fake.ClientSecret,
		envNotifyFile+"="+notifyFile,
		envNotifyDelay+"="+cfg.NotifyDelay.String(),
		envCallers+"="+strconv.Itoa(cfg.Callers),
	)
	reps := make([]*replica, cfg.Replicas)
	for i := range reps {
		reps[i] = start(ctx, t, i, env)
	}
	defer func() {
		for _, r := range reps {
			r.stop(t)
		}
	}()
	all := func(cmd, want string) []string {
		t.Helper()
		out := make([]string, len(reps))
		for _, r := range reps {
			if cmd != "" {
				r.send(t, cmd)
			}
		}
		for i, r := range reps {
			out[i] = r.expect(ctx, t, want)
		}
		return out
	}

	all("", "ready")
	all("call", "calling") // every caller of every replica had a 200
	fake.Break(conn.ID)
	broken := all("", "broken") // every caller saw the re-authentication
	for i, line := range broken {
		t.Logf("replica %d: %s", i, line)
	}
	notes := readNotes(t, notifyFile)
	if len(notes) != 1 {
		t.Fatalf("%d notifications across %d replicas: %q; want exactly 1", len(notes), len(reps), notes)
	}
	t.Logf("the one notification: %s (introspect calls: %d)", notes[0], fake.Calls("GET", "/introspect"))
	if !strings.Contains(notes[0], " connection="+conn.ID+" ") || !strings.Contains(notes[0], " reminder=0 ") {
		t.Errorf("the notification %q is not the first one of connection %s", notes[0], conn.ID)
	}
	if st, err := parent.Status(ctx, conn.ID); err != nil || !st.NeedsReauth || st.Notifications != 1 {
		t.Fatalf("status after the break: NeedsReauth %t, Notifications %d, %v; want true, 1", st.NeedsReauth, st.Notifications, err)
	}
	if r, err := cfg.Store.Get(ctx, conn.ID); err != nil || r.Since.IsZero() || r.Token.Fingerprint() != firstFP {
		t.Fatalf("record after the break: Since %v, token %v, %v; want an open episode and token %s", r.Since, r.Token, err, firstFP)
	}

	// The employer went through Connect once per replica with the one
	// link (the same state, a fresh code each time), and each callback
	// reaches another replica at once: the state completes one reconnect
	// in all.
	link, err := parent.ReconnectURL(ctx, conn.ID)
	if err != nil {
		t.Fatalf("the episode's link: %v", err)
	}
	exchanges := fake.Calls("POST", "/auth/token")
	for _, r := range reps {
		cb, err := fake.Approve(link)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(cb)
		r.send(t, "callback "+u.RawQuery)
	}
	// One attempt spends its code; a callback that came while it ran waits
	// for it and is told its outcome (the same token), one that came after
	// is refused: one code exchanged, one token saved.
	var saved string
	for i, r := range reps {
		line := r.expect(ctx, t, "callback")
		switch reason, fp, _ := strings.Cut(strings.TrimPrefix(line, "callback "), " "); reason {
		case "ok":
			if saved != "" && fp != saved {
				t.Fatalf("replica %d completed a second reconnect with the one state: token %s after %s", i, fp, saved)
			}
			saved = fp
		case string(finchreauth.ReasonInvalidState), string(finchreauth.ReasonUnavailable): // spent, or in use
		default:
			t.Fatalf("replica %d: %q", i, line)
		}
	}
	if n := fake.Calls("POST", "/auth/token") - exchanges; saved == "" || n != 1 {
		t.Fatalf("%d codes exchanged for one state across %d replicas (saved %q); want 1", n, len(reps), saved)
	}
	if saved == finchreauth.Token(first).Fingerprint() {
		t.Fatal("the reconnect saved the broken token again")
	}
	for i, line := range all("recall", "recalled") {
		if want := "recalled " + saved + " 200"; line != want {
			t.Errorf("replica %d after the reconnect: %q; want %q (the new token, and Finch's 200)", i, line, want)
		}
	}
	if notes := readNotes(t, notifyFile); len(notes) != 1 {
		t.Errorf("%d notifications after the reconnect; want still 1: %q", len(notes), notes)
	}
	if st, err := parent.Status(ctx, conn.ID); err != nil || st.NeedsReauth {
		t.Errorf("status after the reconnect: NeedsReauth %t, %v; want false", st.NeedsReauth, err)
	}
	r, err := cfg.Store.Get(ctx, conn.ID)
	switch {
	case err != nil:
		t.Errorf("record after the reconnect: %v", err)
	case !r.Since.IsZero() || r.Token.Fingerprint() != saved || len(r.Fingerprints) < 2 || r.Fingerprints[0] != saved || !slices.Contains(r.Fingerprints, firstFP):
		t.Errorf("record after the reconnect: Since %v, token %v, fingerprints %q; want zero, token:%s, [%s ... %s ...]",
			r.Since, r.Token, r.Fingerprints, saved, saved, firstFP)
	}
	for _, fp := range []string{firstFP, saved} {
		if id, err := cfg.Store.Lookup(ctx, fp); err != nil || id != conn.ID {
			t.Errorf("Lookup(%s) after the reconnect = %q, %v; want %s", fp, id, err, conn.ID)
		}
	}
	all("exit", "bye")
}

func readNotes(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		lines = append(lines, strings.TrimSuffix(l, "\n"))
	}
	return lines
}

// replica is the parent's view of one child process.
type replica struct {
	i      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
}

func start(ctx context.Context, t *testing.T, i int, env []string) *replica {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(env, envIndex+"="+strconv.Itoa(i))
	cmd.WaitDelay = 5 * time.Second
	r := &replica{i: i, cmd: cmd, lines: make(chan string, 16), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = r.stderr
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting replica %d: %v", i, err)
	}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	go func() {
		cmd.Wait()
		close(r.done)
	}()
	return r
}

func (r *replica) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(r.stdin, cmd+"\n"); err != nil {
		t.Fatalf("replica %d: sending %q: %v\nits stderr:\n%s", r.i, strings.Fields(cmd)[0], err, r.stderr)
	}
}

// expect returns the replica's next line, which must start with want.
func (r *replica) expect(ctx context.Context, t *testing.T, want string) string {
	t.Helper()
	select {
	case line, ok := <-r.lines:
		if !ok {
			<-r.done
			t.Fatalf("replica %d exited (%v) waiting for %q; its stderr:\n%s", r.i, r.cmd.ProcessState, want, r.stderr)
		}
		if !strings.HasPrefix(line, want) {
			t.Fatalf("replica %d said %q; want %q; its stderr:\n%s", r.i, line, want, r.stderr)
		}
		return line
	case <-ctx.Done():
		t.Fatalf("replica %d: no %q before the deadline; its stderr:\n%s", r.i, want, r.stderr)
	}
	return ""
}

// stop ends the replica: it closes its stdin, which makes it exit, and
// kills it if it has not within 10 seconds.
func (r *replica) stop(t *testing.T) {
	r.stdin.Close()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	switch {
	case r.cmd.ProcessState != nil && !r.cmd.ProcessState.Success() && !t.Failed():
		t.Errorf("replica %d ended with %v; its stderr:\n%s", r.i, r.cmd.ProcessState, r.stderr)
	case r.stderr.String() != "":
		// What its ErrorHandler reported: failures the scenario survived.
		t.Logf("replica %d's stderr:\n%s", r.i, r.stderr)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Main runs this process as a replica if the parent started it as one, and
// exits; otherwise it returns at once. open opens the shared store from the
// environment the parent passed (Config.Env) and returns a function that
// closes it.
func Main(open func(ctx context.Context) (finchreauth.Store, func(), error)) {
	idx, ok := os.LookupEnv(envIndex)
	if !ok {
		return
	}
	if err := runReplica(idx, open); err != nil {
		fmt.Printf("error %v\n", err)
		fmt.Fprintf(os.Stderr, "replica %s: %v\n", idx, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runReplica(idx string, open func(ctx context.Context) (finchreauth.Store, func(), error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	finchURL, connID := os.Getenv(envFinch), os.Getenv(envConn)
	clientID, clientSecret, _ := strings.Cut(os.Getenv(envClient), ":")
	callers, err := strconv.Atoi(os.Getenv(envCallers))
	if err != nil {
		return fmt.Errorf("%s: %v", envCallers, err)
	}
	delay, err := time.ParseDuration(os.Getenv(envNotifyDelay))
	if err != nil {
		return fmt.Errorf("%s: %v", envNotifyDelay, err)
	}
	store, closeStore, err := open(ctx)
	if err != nil {
		return fmt.Errorf("opening the store: %v", err)
	}
	defer closeStore()

	notifyFile := os.Getenv(envNotifyFile)
	base := &http.Transport{MaxConnsPerHost: callers, MaxIdleConnsPerHost: callers}
	defer base.CloseIdleConnections()
	tr := &finchreauth.Transport{
		Base:       base,
		APIBaseURL: finchURL,
		Store:      store,
		Connect:    connectFor(finchURL, clientID, clientSecret),
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			f, err := os.OpenFile(notifyFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			// One write with O_APPEND: lines from replicas never interleave.
			_, err = fmt.Fprintf(f, "replica=%s connection=%s episode=%s reminder=%d token=%s\n",
				idx, e.Connection.ConnectionID, e.Episode, e.Reminder, e.TokenFingerprint)
			return err
		}),
		ErrorHandler: func(ctx context.Context, err error) {
			fmt.Fprintf(os.Stderr, "replica %s: handling failed: %v\n", idx, err)
		},
	}
	defer tr.Close()
	client := tr.WrapClient(&http.Client{Timeout: 30 * time.Second})

	get := func(token string) (status int, mark string, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, finchURL+"/employer/company", nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(finchreauth.Header), nil
	}

	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "call":
			tok, err := tr.Token(ctx, connID)
			if err != nil {
				return fmt.Errorf("reading the token: %v", err)
			}
			var healthy sync.WaitGroup
			healthy.Add(callers)
			var wg sync.WaitGroup
			var detected, latched, calls atomic.Int64
			errs := make(chan error, callers)
			for range callers {
				wg.Go(func() {
					first := true
					for {
						status, mark, err := get(string(tok))
						calls.Add(1)
						switch {
						case err != nil:
							errs <- err
							if first {
								healthy.Done()
							}
							return
						case status == http.StatusOK:
							if first {
								first = false
								healthy.Done()
							}
							continue
						case status == http.StatusUnauthorized && mark == finchreauth.Detected:
							detected.Add(1)
						case status == http.StatusUnauthorized && mark == finchreauth.Latched:
							latched.Add(1)
						default:
							errs <- fmt.Errorf("Finch answered %d (mark %q)", status, mark)
						}
						if first {
							healthy.Done() // broken before its first 200: still calling
						}
						return
					}
				})
			}
			healthy.Wait()
			fmt.Println("calling")
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				return err
			}
			if detected.Load() == 0 {
				return errors.New("no caller saw a detection")
			}
			if err := tr.Flush(ctx); err != nil { // the handlings run on their own
				return err
			}
			fmt.Printf("broken detected=%d latched=%d calls=%d\n", detected.Load(), latched.Load(), calls.Load())
		case "callback":
			rec := httptest.NewRecorder()
			tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/finch/callback?"+arg, nil))
			loc, err := url.Parse(rec.Header().Get("Location"))
			if err != nil || rec.Code != http.StatusSeeOther {
				return fmt.Errorf("the callback answered %d", rec.Code)
			}
			if reason := loc.Query().Get("reason"); reason != "" {
				fmt.Println("callback " + reason)
				continue
			}
			tok, err := tr.Token(ctx, connID)
			if err != nil {
				return fmt.Errorf("reading the token: %v", err)
			}
			fmt.Println("callback ok " + tok.Fingerprint())
		case "recall":
			tok, err := tr.Token(ctx, connID)
			if err != nil {
				return fmt.Errorf("reading the token: %v", err)
			}
			status, _, err := get(string(tok))
			if err != nil {
				return err
			}
			fmt.Printf("recalled %s %d\n", tok.Fingerprint(), status)
		case "exit":
			fmt.Println("bye")
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}

// connectFor is the Connect of the parent and of every replica: one
// application, so one state key.
func connectFor(finchURL, clientID, clientSecret string) *finchreauth.Connect {
	return &finchreauth.Connect{
		ClientID: clientID, ClientSecret: clientSecret,
		RedirectURI: "https://app.example/finch/callback", SuccessURL: "https://app.example/settings",
		StateKeys: [][]byte{[]byte("replicatest-state-key-0123456789")}, AuthorizeURLs: true, ConnectBaseURL: finchURL,
	}
}
