package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
	for _, want := range []string{`id="status-acme">Needs reconnecting<`, "Finchreauth: detected", "Finchreauth: latched"} {
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
