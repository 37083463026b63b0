package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// at asserts that the tab shows a page under prefix.
func (b *tab) at(prefix string) {
	b.t.Helper()
	if loc := b.location(); !strings.HasPrefix(loc, prefix) {
		b.t.Fatalf("at %s, want %s...", loc, prefix)
	}
}

// eventually reloads the page until the element's text contains want: for
// what the Transport does after answering (a webhook's notification, sent
// after the webhook was answered).
func (b *tab) eventually(id, want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if strings.Contains(b.text(id), want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("#%s = %q, still without %q", id, b.text(id), want)
		}
		time.Sleep(250 * time.Millisecond)
		b.do("reload", chromedp.Reload())
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

func TestBrowser(t *testing.T) {
	exe := chromium(t)
	shots := screenshotDir(t)
	d := startDemo(t)

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
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	b := &tab{t: t, ctx: ctx, app: d.URL, finch: d.finch.URL, shots: shots}
	// The first action starts the browser, which lives as long as the
	// context of that action: it must be the tab's, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 800)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// step runs a subtest on the tab; the first that fails ends the test.
	step := func(name string, fn func(t *testing.T)) {
		t.Helper()
		parent := b.t
		ok := t.Run(name, func(t *testing.T) { b.t = t; fn(t) })
		b.t = parent
		if !ok {
			t.FailNow()
		}
	}
	defer func() {
		if t.Failed() {
			// Best effort: what the tab showed when the test failed.
			sctx, cancel := context.WithTimeout(ctx, stepTimeout)
			defer cancel()
			if png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot()); err == nil {
				os.WriteFile(filepath.Join(shots, "failed.png"), png, 0o644)
			}
			for _, e := range d.activity.recent() {
				t.Logf("activity: %s %s", e.Hook, e.Text)
			}
		}
	}()

	step("dashboard", func(t *testing.T) {
		b.open("/")
		b.is("status-acme", "Healthy")
		b.is("status-globex", "Healthy")
		b.is("status-initech", "Healthy")
		b.is("nav-inbox-count", "0")
		b.shot("dashboard")
	})
	firstToken := b.text("token-acme")

	step("break, then a sync sees the 401", func(t *testing.T) {
		b.click("#break-acme")
		b.is("status-acme", "Needs reconnecting")
		b.is("entities-acme", "the whole connection")
		b.eventually("notifications-acme", "1 (1 notification, 0 reminders)")
		b.has("next-reminder-acme", "in 23 hours")
		b.shot("broken")

		b.click("#sync-btn-acme")
		b.has("sync-acme", "GET /employer/company 401 reauthenticate_user from Finch (Finchreauth: detected)",
			"GET /employer/directory 401 answered locally, Finch not called (Finchreauth: latched)")
		b.is("token-acme", firstToken)
		b.shot("sync-401")
	})

	step("inbox: one notification with a link", func(t *testing.T) {
		b.click("#nav-inbox")
		b.is("inbox-count", "1 message")
		b.is("msg-1-kind", "Notification")
		b.is("msg-1-subject", "Reconnect your Gusto payroll connection for Acme Corp")
		b.has("msg-1-text", "Hello Acme Corp", "Reconnect here:")
		if link := b.attr("msg-1-link", "href"); !strings.HasPrefix(link, d.finch.URL+"/authorize?") {
			t.Errorf("the reconnect link %q is not the fake Finch's /authorize", link)
		}
		b.shot("inbox")
	})

	step("the link, Connect, Reconnect: success", func(t *testing.T) {
		b.click("#msg-1-link")
		b.connectPage("Acme Corp")
		b.shotClip("connect", 640, 200, 1.5)
		b.click(`button[value="reconnect"]`)
		b.at(d.URL + "/connect/success?")
		b.is("outcome-title", "Success")
		b.has("outcome-detail", "Acme Corp is reconnected")
		b.is("status-acme", "Healthy")
		b.has("reconnected-acme", "less than a minute ago")
		if b.text("token-acme") == firstToken {
			t.Error("the token did not change")
		}
		b.shot("success")

		b.click("#sync-btn-acme")
		b.has("sync-acme", "GET /employer/company 200 company: Acme Corp", "GET /employer/directory 200")
	})

	step("break again, follow the link, Cancel: cancelled", func(t *testing.T) {
		b.click("#break-acme")
		b.is("status-acme", "Needs reconnecting")
		b.open("/inbox")
		b.eventually("inbox-count", "2 messages")
		b.is("msg-2-kind", "Notification")
		b.has("msg-2-subject", "Acme Corp")
		b.click("#msg-2-link")
		b.connectPage("Acme Corp")
		b.click(`button[value="cancel"]`)
		b.at(d.URL + "/connect/failure?")
		b.is("outcome-title", "Cancelled")
		b.is("outcome-reason", "reason=cancelled")
		b.is("status-acme", "Needs reconnecting")
		b.shot("cancelled")
	})

	step("retry from the dashboard's Reconnect button: success", func(t *testing.T) {
		b.click("#reconnect-acme")
		b.connectPage("Acme Corp")
		b.click(`button[value="reconnect"]`)
		b.at(d.URL + "/connect/success?")
		b.is("outcome-title", "Success")
		b.is("status-acme", "Healthy")
		b.shot("retry-success")
	})

	step("another account at Connect: mismatch", func(t *testing.T) {
		b.click("#break-globex")
		b.is("status-globex", "Needs reconnecting")
		b.click("#other-account-globex")
		b.at(d.URL + "/connect/failure?")
		b.is("outcome-title", "Mismatch")
		b.is("outcome-reason", "reason=connection_mismatch")
		b.has("outcome-detail", "Globex Corporation still needs reconnecting")
		b.is("status-globex", "Needs reconnecting")
		b.has("activity", "Connect.OnUnsaved", "connection_mismatch")
		b.shot("mismatch")

		// The right account, from the dashboard.
		b.click("#reconnect-globex")
		b.connectPage("Globex Corporation")
		b.click(`button[value="reconnect"]`)
		b.is("outcome-title", "Success")
		b.is("status-globex", "Healthy")
	})

	step("one entity breaks; a day later, reminder 1", func(t *testing.T) {
		b.click("#break-entity-initech-ent_initech_east")
		b.is("status-initech", "Needs reconnecting")
		b.is("entities-initech", "Initech East only")
		b.click("#sync-btn-initech")
		b.has("sync-initech", "GET /employer/company 200", "GET /employer/directory 200") // Initech West still works
		b.shot("one-entity")

		b.open("/inbox")
		b.eventually("inbox-count", "4 messages")
		b.is("msg-4-kind", "Notification")
		b.has("msg-4-text", "Initech East")
		b.click("#next-day")
		b.at(d.URL + "/inbox")
		b.is("inbox-count", "5 messages")
		b.is("msg-5-kind", "Reminder 1")
		b.is("msg-5-subject", "Reminder: reconnect your Paychex Flex payroll connection for Initech Holdings")
		b.has("msg-5-text", "This is a reminder", "broken for 1 day")
		b.has("clock", "+1 day")
		b.shot("reminder")
		b.open("/")
		b.has("notifications-initech", "2 (1 notification, 1 reminder)")
	})

	step("embedded flow: the page POSTs the code", func(t *testing.T) {
		b.click("#embedded-initech")
		b.at(d.URL + "/embedded/initech")
		b.do("complete embedded Connect", chromedp.Click(chromedp.ID("embedded-finish")), chromedp.WaitVisible(chromedp.ID("embedded-done")))
		b.has("embedded-result", "POST /finch/callback → 200", `"connection_id":"`+d.customer("initech").ConnectionID+`"`)
		b.shot("embedded")
		b.open("/")
		b.is("status-initech", "Healthy")
		b.is("status-acme", "Healthy")
		b.is("status-globex", "Healthy")
		b.shot("all-healthy")
		b.shotFull("dashboard-full")
	})

	step("how it works links to the code", func(t *testing.T) {
		b.open("/")
		b.click(`#how a[href*="detection.go"]`)
		b.at(d.URL + "/source/finchreauth/detection.go")
		b.has("L1", "package finchreauth")
	})
}
