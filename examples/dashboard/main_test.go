package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startDemo runs the demo on a free port until the test ends, and checks
// that Serve shut everything down.
func startDemo(t *testing.T) *demo {
	t.Helper()
	d, err := newDemo(config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
	return d
}

// noRedirects is a client that hands every redirect back.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

func request(t *testing.T, method, u string) (status int, location, body string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestDemoOverHTTP walks the main path without a browser: break, sync,
// the notification, Connect (approved by the fake, as a click would), and
// the success page. The browser test does it all by clicking.
func TestDemoOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	if st, _, body := request(t, "GET", d.URL+"/"); st != 200 || !strings.Contains(body, `id="status-acme">Healthy<`) {
		t.Fatalf("dashboard: %d\n%s", st, body)
	}
	if st, loc, _ := request(t, "POST", d.URL+"/customers/acme/break"); st != 303 || loc != "/#customer-acme" {
		t.Fatalf("break: %d %q", st, loc)
	}
	request(t, "POST", d.URL+"/customers/acme/sync")
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-acme">Reconnect needed<`, "Finchreauth: detected", "Finchreauth: latched"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	mails := d.inbox.all()
	if len(mails) != 1 || mails[0].Event.ReconnectURL == "" {
		t.Fatalf("inbox: %+v", mails)
	}
	if _, _, body := request(t, "GET", d.URL+"/inbox"); !strings.Contains(body, `id="msg-1-kind">Notification<`) {
		t.Errorf("inbox page:\n%s", body)
	}
	// Pages name tokens by fingerprint only.
	tok, err := d.tr.Token(t.Context(), d.customer("acme").ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/inbox", "/customers/acme/status"} {
		if _, _, body := request(t, "GET", d.URL+path); strings.Contains(body, string(tok)) {
			t.Errorf("%s shows the token", path)
		}
	}

	// The start endpoint hands out the link the customer was sent.
	st, loc, _ := request(t, "POST", d.URL+"/customers/acme/reconnect")
	if st != 303 || loc != mails[0].Event.ReconnectURL {
		t.Errorf("start endpoint: %d %q, want the notified link", st, loc)
	}
	callback, err := d.finch.Approve(mails[0].Event.ReconnectURL)
	if err != nil {
		t.Fatal(err)
	}
	st, loc, _ = request(t, "GET", callback)
	if u, _ := url.Parse(loc); st != 303 || u == nil || u.Path != "/connect/success" {
		t.Fatalf("callback: %d %q", st, loc)
	}
	_, _, body = request(t, "GET", loc)
	for _, want := range []string{`id="outcome-title">Success<`, `id="status-acme">Healthy<`} {
		if !strings.Contains(body, want) {
			t.Errorf("success page lacks %q", want)
		}
	}
}

// eventually polls cond until it holds, for at most 10 seconds, and fails
// the test with what cond last said otherwise. The demo waits for the
// Transport (Flush) before it answers; what Transport.Run does in the
// background at the same moment it cannot wait for.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 10s", what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusedCounts is Status.Refused by "METHOD path".
func refusedCounts(rs []finchreauth.Refusal) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.Method+" "+r.Path] += r.Count
	}
	return m
}

// TestResumeOverHTTP walks what follows a reconnect (issue 18, item 7): the
// requests that failed while the connection was broken are listed; the next
// sync, through tr.Client, carries the new token (by fingerprint on the
// card) and succeeds without a restart; Finch's data sync job shows pending,
// then running, then complete on the demo clock, and the data fresh; the
// ended episode's failures stay listed. No page or hook line holds a token.
func TestResumeOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	ctx := t.Context()
	conn := d.customer("acme").ConnectionID
	saved := func() finchreauth.Token {
		t.Helper()
		tok, err := d.tr.Token(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	status := func() finchreauth.Status {
		t.Helper()
		st, err := d.tr.Status(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	lastSync := func() syncResult {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.syncs["acme"]
	}
	oldTok := saved()

	// Broken: two syncs fail, every request with the old token.
	request(t, "POST", d.URL+"/customers/acme/break")
	request(t, "POST", d.URL+"/customers/acme/sync")
	request(t, "POST", d.URL+"/customers/acme/sync")
	res := lastSync()
	if len(res.Calls) != 2 || res.OK() {
		t.Fatalf("a sync of a broken connection: %+v", res.Calls)
	}
	for _, c := range res.Calls {
		if c.Status != 401 || c.Token != oldTok.String() {
			t.Errorf("%s %s: %d with %s, want 401 with the saved %s", c.Method, c.Path, c.Status, c.Token, oldTok)
		}
	}
	// Every call of both syncs is listed: the company calls (Finch's
	// refusal, then the latch's answer) and the directory calls (the
	// latch's answers, the first while the detection's handling had not
	// yet found whose token it is).
	failed := refusedCounts(status().Refused)
	if failed["GET /employer/company"] != 2 || failed["GET /employer/directory"] != 2 || len(failed) != 2 {
		t.Errorf("the failed requests listed while broken: %v, want GET /employer/company 2 and GET /employer/directory 2", failed)
	}
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="refused-acme"`, "<code>GET /employer/company</code> ×2", "<code>GET /employer/directory</code> ×2",
		"while it is broken: the app runs these again", `id="sync-token-acme">` + oldTok.String() + `<`} {
		if !strings.Contains(body, want) {
			t.Errorf("the broken card lacks %q", want)
		}
	}

	// Reconnect through Connect: a new token, the data sync job started.
	mails := d.inbox.all()
	if len(mails) != 1 {
		t.Fatalf("%d messages, want 1", len(mails))
	}
	callback, err := d.finch.Approve(mails[0].Event.ReconnectURL)
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ := request(t, "GET", callback)
	if u, _ := url.Parse(loc); u == nil || u.Path != "/connect/success" {
		t.Fatalf("callback went to %q", loc)
	}
	_, _, body = request(t, "GET", loc)
	newTok := saved()
	if newTok == oldTok {
		t.Fatal("the reconnect saved no new token")
	}
	jobs := d.finch.Jobs(conn)
	if len(jobs) != 1 {
		t.Fatalf("%d data sync jobs at Finch after the reconnect, want 1", len(jobs))
	}
	job := jobs[0]
	st := status()
	if st.NeedsReauth || st.Resync != "pending" || st.ResyncJobID != job.ID {
		t.Errorf("after the reconnect: needs %v, resync %q job %q, want pending job %s", st.NeedsReauth, st.Resync, st.ResyncJobID, job.ID)
	}
	if got := refusedCounts(st.Refused); !maps.Equal(got, failed) {
		t.Errorf("the ended episode's failed requests: %v, want %v", got, failed)
	}
	for _, want := range []string{`id="status-acme">Healthy<`, `id="resync-acme">queued at Finch (pending)<`, `id="resync-job-acme">` + job.ID + `<`,
		"<code>GET /employer/company</code> ×2", "while it was broken: the app runs these again once the data is fresh", `id="minute-later-acme"`, `id="finish-job-acme"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the card after the reconnect lacks %q", want)
		}
	}

	// The next sync: the new token, no restart, and it works.
	request(t, "POST", d.URL+"/customers/acme/sync")
	res = lastSync()
	if !res.OK() {
		t.Errorf("the sync after the reconnect: %+v", res.Calls)
	}
	if got := res.Tokens(); len(got) != 1 || got[0] != newTok.String() {
		t.Errorf("the sync after the reconnect went out with %v, want the new %s (the old was %s)", got, newTok, oldTok)
	}
	if _, _, body = request(t, "GET", d.URL+"/"); !strings.Contains(body, `id="sync-token-acme">`+newTok.String()+`<`) {
		t.Errorf("the card does not name the new token as the one the sync sent")
	}

	// A minute later the Transport looks at the job: Finch runs it.
	if st, loc, _ := request(t, "POST", d.URL+"/clock/next-minute?back=acme"); st != 303 || loc != "/#customer-acme" {
		t.Fatalf("a minute later: %d %q", st, loc)
	}
	eventually(t, "the job a minute later", func() (bool, string) {
		st := status()
		return st.Resync == "in_progress", st.Resync
	})
	if _, _, body = request(t, "GET", d.URL+"/"); !strings.Contains(body, `id="resync-acme">running (in_progress)<`) {
		t.Errorf("the card does not show the job running")
	}
	// Another minute: Finch's job has ended (jobQueued + jobRunning).
	request(t, "POST", d.URL+"/clock/next-minute?back=acme")
	eventually(t, "the job two minutes later", func() (bool, string) {
		st := status()
		return st.Resync == "complete", st.Resync
	})
	job = d.finch.Jobs(conn)[0]
	st = status()
	if job.Status != "complete" || st.DataFreshAt.Before(job.CompletedAt) {
		t.Errorf("Finch's job %s at %v; the data fresh as of %v, want it no earlier", job.Status, job.CompletedAt, st.DataFreshAt)
	}
	_, _, body = request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="resync-acme">complete<`, `id="fresh-acme">` + when(st.DataFreshAt) + `<`,
		"while it was broken: the data is fresh now, run these again"} {
		if !strings.Contains(body, want) {
			t.Errorf("the card once the job is complete lacks %q", want)
		}
	}
	if strings.Contains(body, `id="finish-job-acme"`) {
		t.Error("the card offers to finish a job that is complete")
	}
	eventually(t, "OnDataSynced", func() (bool, string) {
		for _, e := range d.activity.recent() {
			if e.Hook == "OnDataSynced" && strings.Contains(e.Text, "job "+job.ID+" is complete") {
				return true, ""
			}
		}
		return false, "not called"
	})

	// No page, JSON or hook line holds a token.
	for _, path := range []string{"/", "/inbox", "/customers/acme/status"} {
		_, _, body := request(t, "GET", d.URL+path)
		for _, tok := range []finchreauth.Token{oldTok, newTok} {
			if strings.Contains(body, string(tok)) {
				t.Errorf("%s shows the token %s", path, tok)
			}
		}
	}
	for _, e := range d.activity.recent() {
		for _, tok := range []finchreauth.Token{oldTok, newTok} {
			if strings.Contains(e.Text, string(tok)) {
				t.Errorf("the activity line of %s holds the token %s", e.Hook, tok)
			}
		}
	}
}

// TestAssistedOverHTTP: an assisted connection whose admin user loses its
// permissions needs the employer in the payroll system: the card says so,
// the message says what to do and carries no link, the start endpoint makes
// none; restoring the permissions ends the episode, and the timeline says
// how long it lasted.
func TestAssistedOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	if st, loc, _ := request(t, "POST", d.URL+"/customers/umbrella/finch-status/error_permissions"); st != 303 || loc != "/#customer-umbrella" {
		t.Fatalf("lose permissions: %d %q", st, loc)
	}
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-umbrella">Action needed in the payroll system<`, "add Finch back as an admin with the permissions it needs in TriNet", `id="restore-umbrella"`} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(body, `id="reconnect-umbrella"`) {
		t.Error("the card has a Reconnect button")
	}
	mails := d.inbox.all()
	if len(mails) != 1 || mails[0].Event.Status != "error_permissions" || mails[0].Event.ReconnectURL != "" {
		t.Fatalf("inbox: %+v", mails)
	}
	if want := "Action needed in your TriNet account for Umbrella Corp"; mails[0].Subject != want {
		t.Errorf("subject %q, want %q", mails[0].Subject, want)
	}
	if st, loc, _ := request(t, "POST", d.URL+"/customers/umbrella/reconnect"); st != 303 || !strings.Contains(loc, "reason=link_failed") {
		t.Errorf("start endpoint: %d %q, want no link", st, loc)
	}

	request(t, "POST", d.URL+"/customers/umbrella/finch-status/connected")
	st, err := d.tr.Status(t.Context(), d.customer("umbrella").ConnectionID)
	if err != nil || st.NeedsReauth || st.FinchStatus != "connected" || st.LastDowntime <= 0 {
		t.Fatalf("after the permissions were restored: %+v, %v", st, err)
	}
	if h := st.History; len(h) == 0 || h[len(h)-1].What != "ended" || !strings.Contains(h[len(h)-1].Detail, " after ") {
		t.Errorf("history does not end with the episode's end: %+v", h)
	}
	_, _, body = request(t, "GET", d.URL+"/customers/umbrella/status")
	if !strings.Contains(body, `"what":"ended"`) || strings.Contains(body, "tok_") {
		t.Errorf("status JSON: %s", body)
	}

	// Set up again, and the admin user Finch was promised is never made.
	request(t, "POST", d.URL+"/customers/umbrella/finch-status/pending")
	request(t, "POST", d.URL+"/customers/umbrella/finch-status/error_no_account_setup")
	_, _, body = request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-umbrella">Action needed in the payroll system<`, "create the admin user you promised Finch in TriNet", "Admin user created"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if mails = d.inbox.all(); len(mails) != 2 || !strings.Contains(mails[0].Text, "Please create the admin user you promised Finch in TriNet.") {
		t.Errorf("inbox: %+v", mails)
	}
}

// TestPendingOverHTTP: a connection Finch is still setting up is neither
// broken nor notified; its syncs are accepted (202) until it is done.
func TestPendingOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	request(t, "POST", d.URL+"/customers/globex/finch-status/pending")
	request(t, "POST", d.URL+"/customers/globex/sync")
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-globex">Setting up<`, "Setting up (pending)", "accepted: the first sync is not done yet", `id="setup-done-globex"`} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if n := d.inbox.count(); n != 0 {
		t.Errorf("%d messages for a connection being set up", n)
	}
	if st, _, _ := request(t, "POST", d.URL+"/customers/globex/finch-status/made_up"); st != 404 {
		t.Errorf("an unknown status: %d, want 404", st)
	}
}

// TestFailurePages: each Reason has a banner, and the success page does not
// believe a URL that anyone can type.
func TestFailurePages(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	for reason, title := range map[string]string{"cancelled": "Cancelled", "connection_mismatch": "Mismatch", "expired": "Reconnect failed", "something_new": "Reconnect failed"} {
		_, _, body := request(t, "GET", d.URL+"/connect/failure?reason="+reason)
		if !strings.Contains(body, `id="outcome-title">`+title+`<`) || !strings.Contains(body, "reason="+reason) {
			t.Errorf("reason %s: no %q banner", reason, title)
		}
	}
	_, _, body := request(t, "GET", d.URL+"/connect/success?connection_id=made-up")
	if !strings.Contains(body, `id="outcome-title">Not reconnected<`) {
		t.Errorf("a made-up success was believed")
	}
}

// TestHowItWorksReferences: every file and function the panel names exists
// in the library's source as built (a rename in the library fails here).
func TestHowItWorksReferences(t *testing.T) {
	x := newSourceIndex()
	for _, pkg := range []string{pkgRoot, pkgMessage, pkgDemo} {
		if x.dirs[pkg] == "" {
			t.Skipf("the source of package %s is not at hand (a -trimpath build?)", pkg)
		}
	}
	for _, s := range howItWorks {
		for _, r := range s.Refs {
			if _, _, err := x.locate(r); err != nil {
				t.Errorf("step %q: %v", s.Title, err)
			}
		}
	}
	if _, err := x.read(pkgRoot, "../go.mod"); err == nil {
		t.Error("the source page reads outside the package")
	}
}
