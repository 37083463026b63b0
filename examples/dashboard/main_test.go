package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
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

// tokenFree fails the test if a page of the demo, its JSON or a hook line
// holds one of the tokens (it names them by fingerprint in the failure).
func tokenFree(t *testing.T, d *demo, customer string, toks ...finchreauth.Token) {
	t.Helper()
	for _, path := range []string{"/", "/inbox", "/customers/" + customer + "/status"} {
		_, _, body := request(t, "GET", d.URL+path)
		for _, tok := range toks {
			if strings.Contains(body, string(tok)) {
				t.Errorf("%s shows the token %s", path, tok)
			}
		}
	}
	for _, e := range d.activity.recent() {
		for _, tok := range toks {
			if strings.Contains(e.Text, string(tok)) {
				t.Errorf("the activity line of %s holds the token %s", e.Hook, tok)
			}
		}
	}
}

// TestSweepOverHTTP walks issue 19's first item: Finch puts Globex in reauth
// and tells nobody (no webhook, no API call); an hour later the health
// sweep's look at /introspect finds it: the card needs reconnecting, the
// notification is in the inbox, and no data call failed, because none was
// made.
func TestSweepOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	ctx := t.Context()
	conn := d.customer("globex").ConnectionID
	dataCalls := func() int {
		return d.finch.Calls("GET", "/employer/company") + d.finch.Calls("GET", "/employer/directory")
	}
	before := dataCalls()

	if st, loc, _ := request(t, "POST", d.URL+"/customers/globex/break-quietly"); st != 303 || loc != "/#customer-globex" {
		t.Fatalf("break quietly: %d %q", st, loc)
	}
	if c, _ := d.finch.Connection(conn); c.Status != "reauth" {
		t.Fatalf("Finch says %q, want reauth", c.Status)
	}
	for _, h := range append(d.finch.Webhooks(), d.finch.HeldWebhooks()...) {
		if h.ConnectionID == conn && h.Status == "reauth" {
			t.Errorf("a webhook for the silent break: %s %s", h.EventType, h.EventID)
		}
	}
	st, err := d.tr.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	// Unless the sweep's first check of Globex fell in the first moments
	// of the demo (its place in the hour is fixed by the token), nobody
	// knows yet.
	if st.NextCheck.After(d.clock.Now()) {
		_, _, body := request(t, "GET", d.URL+"/")
		for _, want := range []string{`id="status-globex">Healthy<`, `id="finch-globex">reauth<`} {
			if !strings.Contains(body, want) {
				t.Errorf("before the sweep, the dashboard lacks %q", want)
			}
		}
		if n := d.inbox.count(); n != 0 {
			t.Errorf("%d messages before the sweep", n)
		}
	}

	// An hour later every connection's check is due: the sweep runs.
	if st, loc, _ := request(t, "POST", d.URL+"/clock/next-hour"); st != 303 || loc != "/" {
		t.Fatalf("an hour later: %d %q", st, loc)
	}
	st, err = d.tr.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !st.NeedsReauth || st.Need != "reauth" || st.Notifications != 1 || len(st.Refused) != 0 {
		t.Errorf("after the sweep: needs %v %q, %d notifications, refused %v; want reauth, 1, none", st.NeedsReauth, st.Need, st.Notifications, st.Refused)
	}
	if n := dataCalls() - before; n != 0 {
		t.Errorf("%d data calls reached Finch, want none", n)
	}
	mails := d.inbox.all()
	if len(mails) != 1 || mails[0].Event.Connection.ConnectionID != conn || mails[0].Event.Source != "introspect" || mails[0].Event.ReconnectURL == "" {
		t.Fatalf("inbox: %+v", mails)
	}
	if want := "Reconnect your ADP Workforce Now payroll connection for Globex Corporation"; mails[0].Subject != want {
		t.Errorf("subject %q, want %q", mails[0].Subject, want)
	}
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-globex">Reconnect needed<`, `id="notifications-globex">1 `, `id="reconnect-globex"`} {
		if !strings.Contains(body, want) {
			t.Errorf("after the sweep, the dashboard lacks %q", want)
		}
	}
	for _, unwanted := range []string{`id="refused-globex"`, `id="sync-globex"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("after the sweep, the dashboard has %s: a data call failed?", unwanted)
		}
	}
	// Every other connection was checked and found as it was.
	for _, c := range d.customers {
		if c.Key == "globex" {
			continue
		}
		if st, _ := d.tr.Status(ctx, c.ConnectionID); st.NeedsReauth || !st.NextCheck.After(d.clock.Now()) {
			t.Errorf("%s after the sweep: needs %v, next check %v", c.Name, st.NeedsReauth, st.NextCheck)
		}
	}

	// The employer follows the link: healthy again.
	callback, err := d.finch.Approve(mails[0].Event.ReconnectURL)
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ := request(t, "GET", callback)
	if _, _, body = request(t, "GET", loc); !strings.Contains(body, `id="outcome-title">Success<`) || !strings.Contains(body, `id="status-globex">Healthy<`) {
		t.Errorf("the success page after the sweep's episode:\n%s", body)
	}
}

// TestUpgradeOverHTTP walks issue 19's second item: the application asks
// Hooli for the payroll products its token lacks (RequestProducts); the
// saved token keeps working meanwhile; at Connect the employer grants
// payments but not pay statements; OnAnswered's ProductsMissing shows on
// the card and the success page.
func TestUpgradeOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	ctx := t.Context()
	conn := d.customer("hooli").ConnectionID
	oldTok, err := d.tr.Token(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	lastSync := func() syncResult {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.syncs["hooli"]
	}
	_, _, body := request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="request-products-hooli">Ask for payroll payments, pay statements<`,
		`id="products-hooli">company information, employee directory, employee personal details, employment and income details<`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard lacks %q", want)
		}
	}
	if strings.Contains(body, `id="request-products-acme"`) {
		t.Error("Acme, which has every product, is offered an upgrade")
	}

	if st, loc, _ := request(t, "POST", d.URL+"/customers/hooli/request-products"); st != 303 || loc != "/#customer-hooli" {
		t.Fatalf("request products: %d %q", st, loc)
	}
	st, err := d.tr.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if st.NeedsReauth || len(st.Requests) != 1 || st.Requests[0].Kind != "upgrade" || st.Requests[0].ReconnectURL == "" ||
		!slices.Contains(st.Requests[0].Products, "payment") || !slices.Contains(st.Requests[0].Products, "pay_statement") {
		t.Fatalf("after the request: needs %v, requests %+v", st.NeedsReauth, st.Requests)
	}
	mails := d.inbox.all()
	if len(mails) != 1 || mails[0].Kind() != "Upgrade request" || mails[0].Event.ReconnectURL != st.Requests[0].ReconnectURL {
		t.Fatalf("inbox: %+v", mails)
	}
	if want := "Grant access to payroll payments and pay statements in your Gusto payroll connection for Hooli"; mails[0].Subject != want {
		t.Errorf("subject %q, want %q", mails[0].Subject, want)
	}
	for _, want := range []string{"keeps working", "Please grant access to:\n  - payroll payments\n  - pay statements\n", st.Requests[0].ReconnectURL} {
		if !strings.Contains(mails[0].Text, want) {
			t.Errorf("the message lacks %q:\n%s", want, mails[0].Text)
		}
	}
	for _, wrong := range []string{"broken", "stopped syncing", "can't sync"} {
		if strings.Contains(mails[0].Text, wrong) {
			t.Errorf("the upgrade's message says %q of a working connection:\n%s", wrong, mails[0].Text)
		}
	}
	_, _, body = request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="status-hooli">Healthy<`, `id="upgrade-hooli">payroll payments, pay statements `, `id="grant-partly-hooli"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard with the upgrade open lacks %q", want)
		}
	}

	// The old token keeps working while the employer has not answered.
	request(t, "POST", d.URL+"/customers/hooli/sync")
	if res := lastSync(); !res.OK() || len(res.Tokens()) != 1 || res.Tokens()[0] != oldTok.String() {
		t.Errorf("the sync while the upgrade is open: %+v, want success with the saved %s", res.Calls, oldTok)
	}

	// At Connect, the employer unticks pay statements.
	st2, loc, _ := request(t, "POST", d.URL+"/customers/hooli/grant-partly")
	if st2 != 303 || loc != st.Requests[0].ReconnectURL {
		t.Fatalf("grant partly: %d, to the upgrade's link? %v", st2, loc == st.Requests[0].ReconnectURL)
	}
	callback, err := d.finch.Approve(loc)
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ = request(t, "GET", callback)
	if u, _ := url.Parse(loc); u == nil || u.Path != "/connect/success" {
		t.Fatalf("callback went to %q", loc)
	}
	_, _, body = request(t, "GET", loc)
	for _, want := range []string{`id="outcome-title">Success<`, "Hooli answered the upgrade, partly: Finch did not grant pay statements"} {
		if !strings.Contains(body, want) {
			t.Errorf("the success page lacks %q", want)
		}
	}
	a := d.answerOf("hooli")
	if a == nil || a.Request != "upgrade" || !slices.Equal(a.ProductsMissing, []string{"pay_statement"}) || !slices.Contains(a.Products, "payment") {
		t.Fatalf("OnAnswered: %+v", a)
	}
	newTok, err := d.tr.Token(ctx, conn)
	if err != nil || newTok == oldTok || a.Token != newTok {
		t.Fatalf("after the answer: the saved token %s (old %s, answered with %s), %v", newTok, oldTok, a.Token, err)
	}
	if st, _ := d.tr.Status(ctx, conn); len(st.Requests) != 0 || st.NeedsReauth || !slices.Contains(st.Products, "payment") || slices.Contains(st.Products, "pay_statement") {
		t.Errorf("after the answer: requests %+v, needs %v, products %v", st.Requests, st.NeedsReauth, st.Products)
	}
	_, _, body = request(t, "GET", d.URL+"/")
	for _, want := range []string{`id="answered-hooli">the upgrade, `, "not granted: pay statements", `id="request-products-hooli">Ask for pay statements<`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard after the answer lacks %q", want)
		}
	}
	if strings.Contains(body, `id="upgrade-hooli"`) {
		t.Error("the card still shows the upgrade open")
	}
	// The next sync carries the new token.
	request(t, "POST", d.URL+"/customers/hooli/sync")
	if res := lastSync(); !res.OK() || len(res.Tokens()) != 1 || res.Tokens()[0] != newTok.String() {
		t.Errorf("the sync after the answer: %+v, want success with the new %s", res.Calls, newTok)
	}
	tokenFree(t, d, "hooli", oldTok, newTok)
}

// TestCampaignOverHTTP walks issue 19's third item: a campaign asks both
// Gusto connections (Acme, Hooli) to reconnect within three days, the
// links paced; CampaignProgress moves as Acme reconnects through its link,
// and counts Hooli overdue past the deadline.
func TestCampaignOverHTTP(t *testing.T) {
	d := startDemo(t)
	defer noRedirects.CloseIdleConnections()
	ctx := t.Context()
	acme := d.customer("acme").ConnectionID
	oldTok, err := d.tr.Token(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	progress := func() finchreauth.CampaignProgress {
		t.Helper()
		p, err := d.tr.CampaignProgress(ctx, campaignName)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	panel := func(asked, done, overdue string) {
		t.Helper()
		_, _, body := request(t, "GET", d.URL+"/")
		for _, want := range []string{`id="campaign-asked">` + asked + `<`, `id="campaign-done">` + done + `<`, `id="campaign-overdue">` + overdue + `<`} {
			if !strings.Contains(body, want) {
				t.Errorf("the campaign panel lacks %q", want)
			}
		}
	}
	campaignMails := func() map[string]mail {
		out := map[string]mail{}
		for _, m := range d.inbox.all() {
			if m.Event.Request == "campaign" && m.Event.Reminder == 0 {
				out[m.To] = m
			}
		}
		return out
	}
	if _, _, body := request(t, "GET", d.URL+"/"); !strings.Contains(body, `id="start-campaign"`) {
		t.Fatal("no button starts the campaign")
	}

	if st, loc, _ := request(t, "POST", d.URL+"/campaign"); st != 303 || loc != "/#campaign" {
		t.Fatalf("start the campaign: %d %q", st, loc)
	}
	if p := progress(); p != (finchreauth.CampaignProgress{Asked: 2}) {
		t.Errorf("progress after the start: %+v, want 2 asked", p)
	}
	panel("2", "0", "0")
	// At most 60 links an hour: one message now, the other a minute later.
	if got := campaignMails(); len(got) != 1 {
		t.Errorf("%d campaign messages at the start, want 1", len(got))
	}
	if st, loc, _ := request(t, "POST", d.URL+"/clock/next-minute?back=campaign"); st != 303 || loc != "/#campaign" {
		t.Fatalf("a minute later: %d %q", st, loc)
	}
	mails := campaignMails()
	m, ok := mails["payroll@acme.example"]
	if len(mails) != 2 || !ok || mails["payroll@hooli.example"].Event.Campaign != campaignName {
		t.Fatalf("campaign messages a minute later: %+v", mails)
	}
	if !strings.HasPrefix(m.Subject, "Reconnect your Gusto payroll connection for Acme Corp before ") || m.Kind() != "Campaign" {
		t.Errorf("Acme's campaign message: %q (%s)", m.Subject, m.Kind())
	}
	if st, _ := d.tr.Status(ctx, acme); st.NeedsReauth || len(st.Requests) != 1 || st.Requests[0].Campaign != campaignName {
		t.Errorf("Acme while asked: needs %v, requests %+v", st.NeedsReauth, st.Requests)
	}
	if _, _, body := request(t, "GET", d.URL+"/"); !strings.Contains(body, `id="campaign-acme">`+campaignName+`: reconnect by `) || !strings.Contains(body, `id="status-acme">Healthy<`) {
		t.Errorf("Acme's card does not show the campaign, healthy")
	}

	// Acme reconnects through its link: done.
	callback, err := d.finch.Approve(m.Event.ReconnectURL)
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ := request(t, "GET", callback)
	_, _, body := request(t, "GET", loc)
	for _, want := range []string{`id="outcome-title">Success<`, "Acme Corp answered the campaign"} {
		if !strings.Contains(body, want) {
			t.Errorf("the success page lacks %q", want)
		}
	}
	if p := progress(); p != (finchreauth.CampaignProgress{Asked: 1, Done: 1}) {
		t.Errorf("progress after Acme reconnected: %+v, want 1 asked, 1 done", p)
	}
	panel("1", "1", "0")
	if a := d.answerOf("acme"); a == nil || a.Request != "campaign" || a.Campaign != campaignName {
		t.Errorf("OnAnswered: %+v", a)
	}
	request(t, "POST", d.URL+"/customers/acme/sync")
	d.mu.Lock()
	res := d.syncs["acme"]
	d.mu.Unlock()
	if !res.OK() {
		t.Errorf("Acme's sync after the campaign's reconnect: %+v", res.Calls)
	}

	// Past the deadline, Hooli is overdue; it was reminded a day before.
	for range campaignDays {
		request(t, "POST", d.URL+"/clock/next-day")
	}
	request(t, "POST", d.URL+"/clock/next-minute")
	if p := progress(); p != (finchreauth.CampaignProgress{Asked: 1, Done: 1, Overdue: 1}) {
		t.Errorf("progress past the deadline: %+v, want 1 asked, 1 done, 1 overdue", p)
	}
	panel("1", "1", "1")
	var reminded bool
	for _, m := range d.inbox.all() {
		if m.To == "payroll@hooli.example" && m.Kind() == "Campaign, reminder 1" {
			reminded = true
			if m.Subject != "Reminder: 1 day left to reconnect your Gusto payroll connection for Hooli" || !strings.Contains(m.Text, "This is a reminder") {
				t.Errorf("Hooli's campaign reminder: %q\n%s", m.Subject, m.Text)
			}
		}
	}
	if !reminded {
		t.Error("Hooli was not reminded of the campaign")
	}
	// Starting it again changes nothing.
	request(t, "POST", d.URL+"/campaign")
	if p := progress(); p != (finchreauth.CampaignProgress{Asked: 1, Done: 1, Overdue: 1}) {
		t.Errorf("progress after a second start: %+v", p)
	}
	newTok, _ := d.tr.Token(ctx, acme)
	tokenFree(t, d, "acme", oldTok, newTok)
}
