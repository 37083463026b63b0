package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser test clicks through the demo in headless Chromium, asserts
// what each page shows, and saves a screenshot of each step.
//
// Environment:
//
//	FINCHREAUTH_SCREENSHOTS=dir    save the screenshots there (default: a temporary folder)
//	FINCHREAUTH_REQUIRE_BROWSER=1  fail, instead of skipping, when Chromium is missing (CI)
//	FINCHREAUTH_CHROMIUM=path      the browser to run (default: chromium on PATH, or /usr/bin/chromium)

// chromium returns the browser to run, or skips the test (fails it when a
// browser is required).
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{"chromium", "/usr/bin/chromium", "chromium-browser"}
	if c := os.Getenv("FINCHREAUTH_CHROMIUM"); c != "" {
		candidates = []string{c} // that one, or none
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no Chromium found (looked for %s): install it with `apt-get install -y chromium` to run the browser test", strings.Join(candidates, ", "))
	if os.Getenv("FINCHREAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; FINCHREAUTH_REQUIRE_BROWSER=1 makes that a failure")
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where the step screenshots go.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FINCHREAUTH_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", abs)
	return abs
}

// tab is one browser tab on the demo, with the test's assertions.
type tab struct {
	t     *testing.T
	ctx   context.Context
	app   string // the application's URL
	finch string // the fake Finch's URL
	shots string
	n     int
}

// stepTimeout bounds each browser action.
const stepTimeout = 20 * time.Second

func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to a path of the application.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.app+path))
}

// click clicks the element the CSS selector finds and waits for the page
// it leads to to load, through every redirect.
func (b *tab) click(css string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(css)))); err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
}

// text returns the text of the element with that id.
func (b *tab) text(id string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

func (b *tab) attr(id, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID(id), name))
	if err != nil {
		b.t.Fatalf("%s of #%s: %v", name, id, err)
	}
	return a.Value
}

func (b *tab) location() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("location: %v", err)
	}
	return u
}

// is asserts that the element's text is want.
func (b *tab) is(id, want string) {
	b.t.Helper()
	if got := b.text(id); got != want {
		b.t.Errorf("#%s = %q, want %q (page %s)", id, got, want, b.location())
	}
}

// has asserts that the element's text contains each of wants.
func (b *tab) has(id string, wants ...string) {
	b.t.Helper()
	got := b.text(id)
	for _, want := range wants {
		if !strings.Contains(got, want) {
			b.t.Errorf("#%s = %q, want it to contain %q (page %s)", id, got, want, b.location())
		}
	}
}

// absent asserts that the page has no element the CSS selector finds.
func (b *tab) absent(css string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	none, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) === null", css)))
	if err != nil {
		b.t.Fatalf("query %s: %v", css, err)
	}
	if !none {
		b.t.Errorf("the page has %s (page %s)", css, b.location())
	}
}

// eventually reloads the dashboard until the element's text contains want,
// for at most stepTimeout: for what Transport.Run may do in the background
// at the moment the demo waits for the Transport (Flush).
func (b *tab) eventually(id, want string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		b.open("/")
		got := b.text(id)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("#%s = %q after %s, want it to contain %q", id, got, stepTimeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toggle clicks the element the CSS selector finds, for what changes the
// page without loading another (a <details>' summary).
func (b *tab) toggle(css string) {
	b.t.Helper()
	b.do("click "+css, chromedp.Click(chromedp.CSS(css)))
}

// at asserts that the tab shows a page under prefix.
func (b *tab) at(prefix string) {
	b.t.Helper()
	if loc := b.location(); !strings.HasPrefix(loc, prefix) {
		b.t.Fatalf("at %s, want %s...", loc, prefix)
	}
}

// shot saves a screenshot of the top of the page, 1200x800, as
// NN-name.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.capture(name, page.CaptureScreenshotParams{})
}

// shotClip saves a screenshot of the top left of the page, w x h, scaled:
// for a page with little on it, such as the fake Finch's Connect page.
func (b *tab) shotClip(name string, w, h, scale float64) {
	b.t.Helper()
	b.capture(name, page.CaptureScreenshotParams{Clip: &page.Viewport{Width: w, Height: h, Scale: scale}})
}

// shotOf saves a screenshot of the element with that id.
func (b *tab) shotOf(name, id string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("screenshot %s of #%s: %v", name, id, err)
	}
	b.save(name, png)
}

// shotFull saves a screenshot of the whole page.
func (b *tab) shotFull(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.save(name, png)
}

func (b *tab) capture(name string, p page.CaptureScreenshotParams) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	p.Format = page.CaptureScreenshotFormatPng
	res, err := chromedp.Call(ctx, page.CaptureScreenshot, p)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.save(name, res.Data)
}

// save writes a screenshot as NN-name.png, numbered in the order taken.
func (b *tab) save(name string, png []byte) {
	b.t.Helper()
	b.n++
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// connectPage asserts that the tab shows the fake Finch's Connect page for
// the customer.
func (b *tab) connectPage(customer string) {
	b.t.Helper()
	b.at(b.finch + "/authorize?")
	b.has("connection", "Reconnect", customer)
}

// endedWithDuration finds a timeline's line for an episode that ended, with
// its time to reconnect: "ended callback after 2s".
var endedWithDuration = regexp.MustCompile(`ended \S+ after [0-9][0-9hms.]*s`)

// openTab starts headless Chromium on the demo, with one tab, until the test
// ends. A failed test leaves failed.png, what the tab showed, beside the
// screenshots, and logs the demo's activity.
func openTab(t *testing.T, d *demo) *tab {
	t.Helper()
	exe := chromium(t)
	shots := screenshotDir(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(1200, 800),
		)...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelTab)
	b := &tab{t: t, ctx: ctx, app: d.URL, finch: d.finch.URL, shots: shots}
	// The first action starts the browser, which lives as long as the
	// context of that action: it must be the tab's, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 800)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { // before the tab closes: cleanups run last first
		if !t.Failed() {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		if png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(filepath.Join(shots, "failed.png"), png, 0o644)
		}
		for _, e := range d.activity.recent() {
			t.Logf("activity: %s %s", e.Hook, e.Text)
		}
	})
	return b
}

// step runs fn as a subtest on the tab, and reports whether it passed.
func (b *tab) step(name string, fn func()) bool {
	parent := b.t
	defer func() { b.t = parent }()
	return parent.Run(name, func(t *testing.T) { b.t = t; fn() })
}

func TestBrowser(t *testing.T) {
	d := startDemo(t)
	j := &journey{tab: openTab(t, d), d: d}
	for _, s := range []struct {
		name string
		run  func()
	}{
		{"dashboard", j.dashboard},
		{"break, then a sync sees the 401", j.breakAndSync},
		{"inbox: one notification with a link", j.inbox},
		{"the link, Connect, Reconnect: success", j.reconnect},
		{"the resume: the new token, Finch's data sync job, what failed", j.resume},
		{"break again, follow the link, Cancel: cancelled", j.cancel},
		{"retry from the dashboard's Reconnect button: success", j.retry},
		{"another account at Connect: mismatch", j.mismatch},
		{"one entity breaks; a day later, reminder 1", j.oneEntity},
		{"embedded flow: the page POSTs the code", j.embedded},
		{"assisted: Finch's admin loses its permissions, fixed in the payroll system", j.losePermissions},
		{"assisted: permissions restored, the episode ends", j.restorePermissions},
		{"pending: setting up, nobody is told", j.pending},
		{"the sweep: Finch breaks Globex silently; an hour later the sweep finds it, before any sync", j.sweep},
		{"an upgrade: Hooli is asked for payroll data and grants part of it", j.upgrade},
		{"a campaign: every Gusto connection asked; progress moves as Acme reconnects", j.campaign},
		{"the timeline: detection, notification, time to reconnect", j.timeline},
		{"how it works links to the code", j.howItWorks},
	} {
		if !j.step(s.name, s.run) {
			t.FailNow() // the next steps start where this one should have ended
		}
	}
}

// journey is TestBrowser's walk through the demo: each step is a method,
// run as a subtest on the same tab, from where the previous one ended.
type journey struct {
	*tab
	d          *demo
	firstToken string // Acme's token before its first reconnect, by fingerprint
	jobID      string // the data sync job after Acme's first reconnect
}

// dashboard: every card starts healthy.
func (j *journey) dashboard() {
	j.open("/")
	j.is("status-acme", "Healthy")
	j.is("status-globex", "Healthy")
	j.is("status-initech", "Healthy")
	j.is("status-umbrella", "Healthy")
	j.is("assisted-umbrella", "assisted")
	j.is("nav-inbox-count", "0")
	j.shot("dashboard")
	j.firstToken = j.text("token-acme")
}

// breakAndSync: a webhook breaks Acme's connection; a sync gets Finch's 401,
// then the latched one.
func (j *journey) breakAndSync() {
	j.click("#break-acme")
	j.is("status-acme", "Reconnect needed")
	j.is("entities-acme", "the whole connection")
	j.is("notifications-acme", "1 (1 notification, 0 reminders)")
	j.has("need-acme", "reconnect your Gusto payroll connection, through Finch Connect")
	j.has("next-reminder-acme", "in 23 hours")
	j.shot("broken")

	j.click("#sync-btn-acme")
	j.has("sync-acme", "GET /employer/company 401 reauthenticate_user from Finch (Finchreauth: detected)",
		"GET /employer/directory 401 answered locally, Finch not called (Finchreauth: latched)")
	j.is("token-acme", j.firstToken)
	j.is("sync-token-acme", j.firstToken)
	j.has("refused-acme", "GET /employer/company ×1")
	j.shot("sync-401")

	// Again: both calls answered by the latch, and every call listed.
	j.click("#sync-btn-acme")
	j.has("sync-acme", "GET /employer/company 401 answered locally")
	j.has("refused-acme", "GET /employer/company ×2", "GET /employer/directory ×2", "while it is broken: the app runs these again")
}

// inbox: one notification, with the reconnect link.
func (j *journey) inbox() {
	j.click("#nav-inbox")
	j.is("inbox-count", "1 message")
	j.is("msg-1-kind", "Notification")
	j.is("msg-1-subject", "Reconnect your Gusto payroll connection for Acme Corp")
	j.has("msg-1-text", "Hello Acme Corp", "Reconnect here:")
	if link := j.attr("msg-1-link", "href"); !strings.HasPrefix(link, j.d.finch.URL+"/authorize?") {
		j.t.Errorf("the reconnect link %q is not the fake Finch's /authorize", link)
	}
	j.shot("inbox")
}

// reconnect: the link, Connect, Reconnect: success, and a new token.
func (j *journey) reconnect() {
	j.click("#msg-1-link")
	j.connectPage("Acme Corp")
	j.shotClip("connect", 640, 200, 1.5)
	j.click(`button[value="reconnect"]`)
	j.at(j.d.URL + "/connect/success?")
	j.is("outcome-title", "Success")
	j.has("outcome-detail", "Acme Corp is reconnected")
	j.is("status-acme", "Healthy")
	j.has("reconnected-acme", "less than a minute ago")
	if j.text("token-acme") == j.firstToken {
		j.t.Error("the token did not change")
	}
	// Finch's data sync job, started with the new token.
	jobs := j.d.finch.Jobs(j.d.customer("acme").ConnectionID)
	if len(jobs) != 1 {
		j.t.Fatalf("%d data sync jobs at Finch after the reconnect, want 1", len(jobs))
	}
	j.jobID = jobs[0].ID
	j.is("resync-acme", "queued at Finch (pending)")
	j.is("resync-job-acme", j.jobID)
	j.has("refused-acme", "GET /employer/company ×2", "while it was broken: the app runs these again once the data is fresh")
	j.shot("success")

	// The next sync: through tr.Client, with the new token, no restart.
	j.click("#sync-btn-acme")
	j.has("sync-acme", "GET /employer/company 200 company: Acme Corp", "GET /employer/directory 200")
	if sent, saved := j.text("sync-token-acme"), j.text("token-acme"); sent != saved || sent == j.firstToken {
		j.t.Errorf("the sync after the reconnect sent %s; want the new saved token %s, not the old %s", sent, saved, j.firstToken)
	}
}

// resume: a minute later the Transport finds Finch running the job; Finch
// finishes it (its webhook); the data is fresh; what failed stays listed.
func (j *journey) resume() {
	j.click("#minute-later-acme")
	j.has("clock", "+1 minute")
	j.eventually("resync-acme", "running (in_progress)")
	j.is("resync-job-acme", j.jobID)
	j.shotOf("job-running", "customer-acme")

	j.click("#finish-job-acme")
	j.eventually("resync-acme", "complete")
	st, err := j.d.tr.Status(j.t.Context(), j.d.customer("acme").ConnectionID)
	if err != nil {
		j.t.Fatal(err)
	}
	jobs := j.d.finch.Jobs(j.d.customer("acme").ConnectionID)
	if len(jobs) != 1 || jobs[0].Status != "complete" || st.DataFreshAt.Before(jobs[0].CompletedAt) {
		j.t.Errorf("Finch's jobs %+v; the data fresh as of %v, want one job, complete, and no earlier", jobs, st.DataFreshAt)
	}
	j.is("fresh-acme", when(st.DataFreshAt))
	j.has("refused-acme", "GET /employer/company ×2", "GET /employer/directory ×2", "the data is fresh now, run these again")
	j.has("activity", "OnDataSynced", "Acme Corp: Finch's data sync job "+j.jobID+" is complete")
	j.absent("#finish-job-acme")
	j.absent("#minute-later-acme")
	j.shotOf("resumed", "customer-acme")
}

// cancel: broken again, the link, Cancel at Connect.
func (j *journey) cancel() {
	j.click("#break-acme")
	j.is("status-acme", "Reconnect needed")
	j.open("/inbox")
	j.is("inbox-count", "2 messages")
	j.is("msg-2-kind", "Notification")
	j.has("msg-2-subject", "Acme Corp")
	j.click("#msg-2-link")
	j.connectPage("Acme Corp")
	j.click(`button[value="cancel"]`)
	j.at(j.d.URL + "/connect/failure?")
	j.is("outcome-title", "Cancelled")
	j.is("outcome-reason", "reason=cancelled")
	j.is("status-acme", "Reconnect needed")
	j.shot("cancelled")
}

// retry: the dashboard's Reconnect button: success.
func (j *journey) retry() {
	j.click("#reconnect-acme")
	j.connectPage("Acme Corp")
	j.click(`button[value="reconnect"]`)
	j.at(j.d.URL + "/connect/success?")
	j.is("outcome-title", "Success")
	j.is("status-acme", "Healthy")
	// Finch allows one forced refresh an hour: the job waits.
	j.has("resync-acme", "not started yet")
	j.has("resync-note-acme", "Finch allows the next refresh at")
	j.shot("retry-success")
}

// mismatch: another account at Connect: nothing saved.
func (j *journey) mismatch() {
	j.click("#break-globex")
	j.is("status-globex", "Reconnect needed")
	j.click("#other-account-globex")
	j.at(j.d.URL + "/connect/failure?")
	j.is("outcome-title", "Mismatch")
	j.is("outcome-reason", "reason=connection_mismatch")
	j.has("outcome-detail", "Globex Corporation still needs reconnecting")
	j.is("status-globex", "Reconnect needed")
	j.has("activity", "Connect.OnUnsaved", "connection_mismatch")
	j.shot("mismatch")

	// The right account, from the dashboard.
	j.click("#reconnect-globex")
	j.connectPage("Globex Corporation")
	j.click(`button[value="reconnect"]`)
	j.is("outcome-title", "Success")
	j.is("status-globex", "Healthy")
}

// oneEntity: one entity breaks; a day later, reminder 1.
func (j *journey) oneEntity() {
	j.click("#break-entity-initech-ent_initech_east")
	j.is("status-initech", "Reconnect needed")
	j.is("entities-initech", "Initech East only")
	j.click("#sync-btn-initech")
	j.has("sync-initech", "GET /employer/company 200", "GET /employer/directory 200") // Initech West still works
	j.shot("one-entity")

	j.open("/inbox")
	j.is("inbox-count", "4 messages")
	j.is("msg-4-kind", "Notification")
	j.has("msg-4-text", "Initech East")
	j.click("#next-day")
	j.at(j.d.URL + "/inbox")
	j.is("inbox-count", "5 messages")
	j.is("msg-5-kind", "Reminder 1")
	j.is("msg-5-subject", "Reminder: reconnect your Paychex Flex payroll connection for Initech Holdings")
	j.has("msg-5-text", "This is a reminder", "broken for 1 day")
	j.has("clock", "+1 day")
	j.shot("reminder")
	j.open("/")
	j.has("notifications-initech", "2 (1 notification, 1 reminder)")
	// A day later Finch allows Acme's data sync job.
	j.eventually("resync-acme", "queued at Finch (pending)")
	if jobs := j.d.finch.Jobs(j.d.customer("acme").ConnectionID); len(jobs) != 2 {
		j.t.Errorf("%d data sync jobs for Acme, want 2", len(jobs))
	}
}

// embedded: the embedded flow: the page POSTs the code.
func (j *journey) embedded() {
	j.click("#embedded-initech")
	j.at(j.d.URL + "/embedded/initech")
	j.do("complete embedded Connect", chromedp.Click(chromedp.ID("embedded-finish")), chromedp.WaitVisible(chromedp.ID("embedded-done")))
	j.has("embedded-result", "POST /finch/callback → 200", `"connection_id":"`+j.d.customer("initech").ConnectionID+`"`)
	j.shot("embedded")
	j.open("/")
	j.is("status-initech", "Healthy")
	j.is("status-acme", "Healthy")
	j.is("status-globex", "Healthy")
	j.is("status-umbrella", "Healthy")
	j.shot("all-healthy")
}

// losePermissions: the assisted connection's admin loses its permissions:
// action needed in the payroll system, a message with no link.
func (j *journey) losePermissions() {
	j.open("/")
	j.click("#lose-permissions-umbrella")
	j.is("status-umbrella", "Action needed in the payroll system")
	j.has("need-umbrella", "add Finch back as an admin with the permissions it needs in TriNet", "there is no reconnect link")
	j.has("finch-status-umbrella", "error_permissions")
	j.is("notifications-umbrella", "1 (1 notification, 0 reminders)")
	j.absent("#reconnect-umbrella")
	j.absent("#other-account-umbrella")
	j.click("#sync-btn-umbrella")
	j.has("sync-umbrella", "GET /employer/company 401 Finch error account_setup_required")
	j.shotOf("assisted-permissions", "customer-umbrella")

	j.click("#nav-inbox")
	j.is("inbox-count", "6 messages")
	j.is("msg-6-kind", "Notification")
	j.is("msg-6-subject", "Action needed in your TriNet account for Umbrella Corp")
	j.has("msg-6-text", "Hello Umbrella Corp", "Finch's admin user in TriNet no longer has the permissions it needs",
		"Please add Finch back as an admin with the permissions it needs in TriNet.", "there is no link to follow")
	j.has("msg-6-nolink", "error_permissions", "assisted", "fixes it in the payroll system")
	j.absent("#msg-6-link")
	j.absent("#msg-6 iframe[srcdoc*='href=']")
	j.shot("assisted-inbox")
}

// restorePermissions: the permissions restored in the payroll system end the
// episode.
func (j *journey) restorePermissions() {
	j.open("/")
	j.click("#restore-umbrella")
	j.is("status-umbrella", "Healthy")
	j.has("finch-status-umbrella", "Connected")
	j.has("reconnected-umbrella", "less than a minute ago", "after ")
	j.has("activity", "OnReconnected", "Umbrella Corp works again (it needed error_permissions)")
	j.is("nav-inbox-count", "6")
	j.shotOf("assisted-restored", "customer-umbrella")
}

// pending: a connection Finch is setting up: nobody is told.
func (j *journey) pending() {
	j.click("#pending-globex")
	j.is("status-globex", "Setting up")
	j.has("finch-status-globex", "Setting up (pending)")
	j.has("need-globex", "nothing to do yet", "nobody is notified")
	j.absent("#reconnect-globex")
	j.click("#sync-btn-globex")
	j.has("sync-globex", "GET /employer/company 202 accepted: the first sync is not done yet")
	j.is("nav-inbox-count", "6")
	j.shotOf("pending", "customer-globex")
	j.click("#setup-done-globex")
	j.is("status-globex", "Healthy")
	j.has("finch-status-globex", "Connected")
}

// dataCalls counts the data calls Finch received: what a sync sends.
func (j *journey) dataCalls() int {
	return j.d.finch.Calls("GET", "/employer/company") + j.d.finch.Calls("GET", "/employer/directory")
}

// sweep: Finch puts Globex in reauth and tells nobody; the next hour's
// sweep asks /introspect and finds it: reconnect needed, a notification in
// the inbox, and no data call made, none failed.
func (j *journey) sweep() {
	j.open("/")
	lastSync := j.text("sync-globex") // the pending step's
	calls := j.dataCalls()
	j.click("#break-quietly-globex")
	j.is("finch-globex", "reauth")
	j.is("status-globex", "Healthy") // nobody said
	j.is("nav-inbox-count", "6")
	j.absent("#break-quietly-globex")
	j.shotOf("silent-break", "customer-globex")

	j.click("#next-hour")
	j.is("status-globex", "Reconnect needed")
	j.is("notifications-globex", "1 (1 notification, 0 reminders)")
	j.has("need-globex", "reconnect your ADP Workforce Now payroll connection")
	j.absent("#refused-globex")
	j.is("sync-globex", lastSync)
	j.is("nav-inbox-count", "7")
	if n := j.dataCalls() - calls; n != 0 {
		j.t.Errorf("%d data calls reached Finch between the silent break and the sweep, want none", n)
	}
	j.shotOf("sweep-found", "customer-globex")

	j.click("#nav-inbox")
	j.is("msg-7-kind", "Notification")
	j.is("msg-7-subject", "Reconnect your ADP Workforce Now payroll connection for Globex Corporation")
	j.has("msg-7", "source introspect")
	j.shot("sweep-inbox")
	j.click("#msg-7-link")
	j.connectPage("Globex Corporation")
	j.click(`button[value="reconnect"]`)
	j.at(j.d.URL + "/connect/success?")
	j.is("status-globex", "Healthy")
}

// upgrade: Hooli, which granted no payroll data, is asked for it while its
// token keeps working; at Connect the employer unticks pay statements;
// OnAnswered says what Finch did not grant.
func (j *journey) upgrade() {
	j.open("/")
	j.is("products-hooli", "company information, employee directory, employee personal details, employment and income details")
	first := j.text("token-hooli")
	j.click("#request-products-hooli")
	j.is("status-hooli", "Healthy")
	j.has("upgrade-hooli", "payroll payments, pay statements", "1 message sent", "the saved token keeps working")
	j.absent("#request-products-hooli")
	j.is("nav-inbox-count", "8")
	j.click("#sync-btn-hooli")
	j.has("sync-hooli", "GET /employer/company 200", "GET /employer/directory 200")
	j.is("sync-token-hooli", first)
	j.shotOf("upgrade-asked", "customer-hooli")

	j.click("#nav-inbox")
	j.is("msg-8-kind", "Upgrade request")
	j.is("msg-8-subject", "Grant access to payroll payments and pay statements in your Gusto payroll connection for Hooli")
	j.has("msg-8-text", "keeps working", "payroll payments", "pay statements")
	j.shot("upgrade-inbox")

	j.open("/")
	j.click("#grant-partly-hooli")
	j.connectPage("Hooli")
	j.has("products", "payment", "pay_statement")
	j.click(`button[value="reconnect"]`)
	j.at(j.d.URL + "/connect/success?")
	j.is("outcome-title", "Success")
	j.has("outcome-detail", "Hooli answered the upgrade, partly: Finch did not grant pay statements")
	j.has("answered-hooli", "the upgrade", "not granted: pay statements")
	j.has("products-hooli", "payroll payments")
	j.is("request-products-hooli", "Ask for pay statements")
	j.absent("#upgrade-hooli")
	j.has("activity", "OnAnswered", "Hooli answered the upgrade, partly", "not granted pay_statement")
	j.click("#sync-btn-hooli")
	j.has("sync-hooli", "GET /employer/company 200", "GET /employer/directory 200")
	if sent, saved := j.text("sync-token-hooli"), j.text("token-hooli"); sent != saved || sent == first {
		j.t.Errorf("the sync after the answer sent %s; want the new saved token %s, not the old %s", sent, saved, first)
	}
	j.shotOf("upgrade-partial", "customer-hooli")
}

// campaign: every Gusto connection (Acme, Hooli) is asked to reconnect
// within three days, a message now and one a minute later; Acme reconnects
// through its link, and the progress moves.
func (j *journey) campaign() {
	j.open("/")
	j.click("#start-campaign")
	j.is("campaign-name", campaignName)
	j.is("campaign-asked", "2")
	j.is("campaign-done", "0")
	j.is("campaign-overdue", "0")
	j.has("campaign-acme", campaignName+": reconnect by")
	j.has("campaign-hooli", campaignName+": reconnect by")
	j.is("status-acme", "Healthy")
	j.is("nav-inbox-count", "9") // at most 60 links an hour
	j.click("#campaign-minute-later")
	j.is("nav-inbox-count", "10")
	j.shotOf("campaign-started", "campaign")

	j.click("#nav-inbox")
	acme := `article[data-request="campaign"][data-to="payroll@acme.example"]`
	j.has("msg-10", "Campaign")
	j.click(acme + ` a[id$="-link"]`)
	j.connectPage("Acme Corp")
	j.click(`button[value="reconnect"]`)
	j.at(j.d.URL + "/connect/success?")
	j.has("outcome-detail", "Acme Corp answered the campaign")
	j.is("campaign-asked", "1")
	j.is("campaign-done", "1")
	j.is("campaign-overdue", "0")
	j.has("answered-acme", "the campaign "+campaignName)
	j.absent("#campaign-acme")
	j.has("campaign-hooli", campaignName)
	j.has("activity", "OnAnswered", "Acme Corp answered the campaign "+campaignName)
	j.shotOf("campaign-progress", "campaign")
}

// timeline: the timelines show detections, notifications and ended episodes
// with their time to reconnect.
func (j *journey) timeline() {
	j.open("/")
	j.toggle("#history-summary-acme")
	j.do("timeline visible", chromedp.WaitVisible(chromedp.ID("timeline-acme")))
	j.has("timeline-acme", "detected GET /employer/company", "notified reauth", "opened reauth", "saved token")
	if got := j.text("timeline-acme"); !endedWithDuration.MatchString(got) {
		j.t.Errorf("the timeline has no ended line with a duration:\n%s", got)
	}
	j.toggle("#history-summary-umbrella")
	j.do("timeline visible", chromedp.WaitVisible(chromedp.ID("timeline-umbrella")))
	j.has("timeline-umbrella", "opened error_permissions", "notified error_permissions")
	if got := j.text("timeline-umbrella"); !endedWithDuration.MatchString(got) {
		j.t.Errorf("the assisted timeline has no ended line with a duration:\n%s", got)
	}
	j.do("scroll to the timeline", chromedp.ScrollIntoView(chromedp.ID("history-acme")))
	j.shotOf("timeline", "customer-acme")
	j.shotFull("dashboard-full")
}

// howItWorks: the panel links to the library's code.
func (j *journey) howItWorks() {
	j.open("/")
	j.click(`#how a[href*="detection.go"]`)
	j.at(j.d.URL + "/source/finchreauth/detection.go")
	j.has("L1", "package finchreauth")
}
