package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/browser"
	"github.com/finchkit/finchreauth/examples/internal/scenario"
)

// Script returns the scenario every router example plays, with the app's
// routes: Finch says by webhook that Acme's connection broke and the app
// notifies once; a visitor with no session, a member of another tenant and
// a member at an unknown tenant are refused; Acme's member reconnects from
// the settings page; Acme's data is back. It returns the first expectation
// that failed.
func Script(routes func(*App) http.Handler) func(context.Context, *scenario.Demo) error {
	return func(ctx context.Context, d *scenario.Demo) error {
		a, err := Start(ctx, d, routes)
		if err != nil {
			return err
		}
		d.Say("app at %s", a.URL)
		d.Say("   per tenant:      /tenants/{tenant}/settings, /tenants/{tenant}/finch/reconnect, /tenants/{tenant}/finch/status")
		d.Say("   for all tenants: /finch/callback (Connect.RedirectURI), /finch/webhooks (registered with Finch)")
		p := &play{Demo: d, a: a}
		for i, step := range []struct {
			title string
			run   func(context.Context) error
		}{
			{"Acme's connection breaks", p.breaks},
			{"Who may not reconnect it", p.refusals},
			{"bob, of globex, follows Acme's link through Connect", p.foreignCallback},
			{"alice, of acme, reconnects from the settings page", p.reconnect},
			{"Acme's data is back", p.back},
		} {
			d.Say("\n%d. %s", i+1, step.title)
			if err := step.run(ctx); err != nil {
				return fmt.Errorf("step %d (%s): %w", i+1, step.title, err)
			}
		}
		return d.Done(a.errs.Take())
	}
}

// play holds what the steps share.
type play struct {
	*scenario.Demo
	a *App
}

func (p *play) say(format string, args ...any) { p.Say("   "+format, args...) }

// check returns an error saying what was expected when ok is false.
func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("expected "+format, args...)
}

// breaks breaks Acme's connection at the fake Finch, which tells the app
// by webhook before any call fails.
func (p *play) breaks(ctx context.Context) error {
	p.Finch.Break(p.a.acme.ID) // returns once the app answered the webhook
	hooks := p.Finch.Webhooks()
	if len(hooks) != 1 {
		return fmt.Errorf("expected 1 webhook, got %d", len(hooks))
	}
	h := hooks[0]
	p.say("Finch's webhook: %s, status %s -> %d", h.EventType, h.Status, h.StatusCode)
	if err := check(h.StatusCode == http.StatusOK && h.ConnectionID == p.a.acme.ID, "the app to take the webhook for acme, got %d for %s (%v)", h.StatusCode, h.ConnectionID, h.Err); err != nil {
		return err
	}

	// The notification goes out once the webhook is acknowledged.
	if err := scenario.Eventually(ctx, "a notification", func() bool { return len(p.a.notifications()) > 0 }); err != nil {
		return err
	}
	e := p.a.notifications()[0]
	p.say("the Notifier: %s must reconnect (source %s; link to Finch Connect: %v)",
		e.Connection.CustomerName, e.Source, strings.HasPrefix(e.ReconnectURL, p.Finch.URL+"/authorize?"))

	// The app's next sync with the token gets Finch's 401; the episode is
	// open already, so nobody is told again.
	status, err := p.Directory(ctx, &http.Client{Transport: p.a.Transport}, p.a.acme.Token)
	if err != nil {
		return err
	}
	n := len(p.a.notifications())
	p.say("the app's next sync with Acme's token: GET /employer/directory %d; notifications: %d", status, n)
	return errors.Join(
		check(e.Connection.ConnectionID == p.a.acme.ID && e.Source == "webhook", "a notification for acme from the webhook, got %s from %s", e.Connection.ConnectionID, e.Source),
		check(e.Connection.CustomerName == "Acme Corp", "the notification to name Acme Corp, got %q", e.Connection.CustomerName),
		check(strings.HasPrefix(e.ReconnectURL, p.Finch.URL+"/authorize?"), "a Finch Connect link, got %q", e.ReconnectURL),
		check(status == http.StatusUnauthorized, "401 from the broken connection, got %d", status),
		check(n == 1, "1 notification, got %d", n),
	)
}

// Visit is what one browser got from the three routes under a tenant: the
// status of each answer.
type Visit struct{ Settings, Reconnect, Status int }

// Visit signs b in as user (none if "") and visits the tenant's settings
// page, start endpoint and status endpoint, as a browser or a script would.
func (a *App) Visit(ctx context.Context, b *browser.Browser, user, tenant string) (Visit, error) {
	var v Visit
	if user != "" {
		if _, err := b.Get(ctx, a.URL+"/login?user="+user); err != nil {
			return v, err
		}
	}
	base := a.URL + "/tenants/" + tenant
	var err error
	var settings, reconnect, status *browser.Page
	if settings, err = b.Get(ctx, base+"/settings"); err != nil {
		return v, err
	}
	if reconnect, err = b.Post(ctx, base+"/finch/reconnect", nil); err != nil {
		return v, err
	}
	if status, err = b.Get(ctx, base+"/finch/status"); err != nil {
		return v, err
	}
	return Visit{settings.Status, reconnect.Status, status.Status}, nil
}

// refusals plays three browsers that must not see or reconnect Acme's
// connection.
func (p *play) refusals(ctx context.Context) error {
	for _, who := range []struct{ label, user, tenant string }{
		{"no session, at acme:", "", "acme"},
		{"bob (globex), at acme:", "bob", "acme"},
		{"alice, at initech (no such tenant):", "alice", "initech"},
	} {
		v, err := p.a.Visit(ctx, p.QuietBrowser(p.a.URL), who.user, who.tenant)
		if err != nil {
			return err
		}
		p.say("%-36s settings %d, reconnect %d, status %d", who.label, v.Settings, v.Reconnect, v.Status)
		if v != (Visit{http.StatusForbidden, http.StatusForbidden, http.StatusForbidden}) {
			return fmt.Errorf("expected 403 from every route for %s", strings.TrimSuffix(who.label, ":"))
		}
	}
	// StartHandler and StatusHandler report whom their authorize refused.
	for _, err := range p.a.errs.Take() {
		p.say("ErrorHandler: %v", err)
	}
	n := p.Finch.Calls(http.MethodPost, "/connect/sessions/reauthenticate")
	p.say("Connect sessions minted so far: %d (the notification's link)", n)
	return check(n == 1, "no session minted for a refused request, got %d in all", n)
}

// foreignCallback plays bob, signed in as a member of globex, who is sent
// Acme's link and goes through Finch Connect with it: the callback asks
// Connect.Authorize, which refuses him before anything is spent, and the
// link stays good for alice.
func (p *play) foreignCallback(ctx context.Context) error {
	b := p.QuietBrowser(p.a.URL)
	if _, err := b.Get(ctx, p.a.URL+"/login?user=bob"); err != nil {
		return err
	}
	page, err := b.Get(ctx, p.a.notifications()[0].ReconnectURL) // Finch Connect's page
	if err != nil {
		return err
	}
	if page, err = b.Submit(ctx, page, "Reconnect"); err != nil { // 303 to the callback
		return err
	}
	if page, err = b.Follow(ctx, page); err != nil { // the callback: 303 to Done?reason=
		return err
	}
	reason := ""
	if page.Location != nil {
		reason = page.Location.Query().Get("reason")
	}
	p.say("the callback sends bob's browser on with reason=%s; codes exchanged: %d", reason, p.Finch.Calls(http.MethodPost, "/auth/token"))
	p.a.errs.Take() // the refusal, reported
	return check(reason == string(finchreauth.ReasonForbidden) && p.Finch.Calls(http.MethodPost, "/auth/token") == 0,
		"reason forbidden and no code exchanged, got %q", reason)
}

// reconnect plays alice: the status endpoint, the settings page, its
// Reconnect button (the start endpoint), Finch Connect, the callback, Done
// and the settings page again.
func (p *play) reconnect(ctx context.Context) error {
	b := p.Browser(p.a.URL)
	if _, err := b.Get(ctx, p.a.URL+"/login?user=alice"); err != nil {
		return err
	}
	status, err := b.Get(ctx, p.a.URL+"/tenants/acme/finch/status")
	if err != nil {
		return err
	}
	var st finchreauth.Status
	if err := json.Unmarshal([]byte(status.Body), &st); err != nil {
		return fmt.Errorf("the status endpoint answered %d %q: %w", status.Status, status.Body, err)
	}
	p.say("         the status endpoint says: needs_reauth %v, notifications %d", st.NeedsReauth, st.Notifications)
	if err := check(st.NeedsReauth && st.Notifications == 1, "needs_reauth and 1 notification"); err != nil {
		return err
	}

	page, err := b.Get(ctx, p.a.URL+"/tenants/acme/settings")
	if err != nil {
		return err
	}
	p.say("         the page says %q", page.Text("status"))
	if err := check(strings.HasPrefix(page.Text("status"), "Payroll: needs reconnecting since"), "the page to say the connection needs reconnecting"); err != nil {
		return err
	}
	toConnect, err := b.Submit(ctx, page, "Reconnect") // the start endpoint
	if err != nil {
		return err
	}
	link := p.a.notifications()[0].ReconnectURL
	if err := check(toConnect.Status == http.StatusSeeOther && toConnect.Location != nil && strings.HasPrefix(toConnect.Location.String(), p.Finch.URL+"/authorize?session=") && toConnect.Location.String() != link,
		"303 to a new Connect session, got %d %v", toConnect.Status, toConnect.Location); err != nil {
		return err
	}
	p.say("         (a new Connect session: bob's visit spent the one the notification carried)")
	// The router mounts the library's own start and status endpoints
	// (StartHandler and StatusHandler, or ServeReconnect and ServeStatus
	// where the router keeps its path parameters), headers included: no
	// Connect link leaks in a Referer, and none is cached.
	for _, pg := range []*browser.Page{status, toConnect} {
		if err := check(pg.Header.Get("Referrer-Policy") == "no-referrer" && pg.Header.Get("Cache-Control") == "no-store",
			"the library's headers on %s, got Referrer-Policy %q, Cache-Control %q", pg.URL.Path, pg.Header.Get("Referrer-Policy"), pg.Header.Get("Cache-Control")); err != nil {
			return err
		}
	}
	// Finch Connect's page, its Reconnect button (303 to the callback),
	// the callback (303 to Done), Done (303 to the settings page).
	if page, err = b.Follow(ctx, toConnect); err != nil {
		return err
	}
	if page, err = b.Submit(ctx, page, "Reconnect"); err != nil {
		return err
	}
	for range 3 {
		if page, err = b.Follow(ctx, page); err != nil {
			return err
		}
	}
	p.say("         the page says %q", page.Text("status"))
	return check(page.URL.Path == "/tenants/acme/settings" && page.Text("status") == "Payroll: connected",
		"acme's settings page to say connected, got %s %q (error: %q)", page.URL.Path, page.Text("status"), page.Text("error"))
}

// back checks that Acme's new token works, that the app heard of the
// reconnect once, and that globex was never touched.
func (p *play) back(ctx context.Context) error {
	if err := p.NewTokenWorks(ctx, p.a.Transport, p.a.acme, "Acme's new token"); err != nil {
		return err
	}
	// OnReconnected runs detached from the callback.
	if err := scenario.Eventually(ctx, "OnReconnected", func() bool { return len(p.a.reconnections()) > 0 }); err != nil {
		return err
	}
	r := p.a.reconnections()[0]
	p.say("OnReconnected: %s works again (via %s, after %s; %d notification(s) sent)",
		p.a.byConn[r.ConnectionID], r.Via, r.Downtime().Round(time.Millisecond), r.Notifications)
	for _, h := range p.Finch.Webhooks()[1:] {
		p.say("Finch's webhook: %s, status %s -> %d", h.EventType, h.Status, h.StatusCode)
	}
	st, err := p.a.Transport.Status(ctx, p.a.acme.ID)
	if err != nil {
		return err
	}
	other, err := p.a.Transport.Status(ctx, p.a.globex.ID)
	if err != nil {
		return err
	}
	p.say("Status: acme needs reauth %v (reconnected at %s); globex needs reauth %v",
		st.NeedsReauth, st.LastReconnected.UTC().Format(time.TimeOnly+" MST"), other.NeedsReauth)
	return errors.Join(
		check(r.ConnectionID == p.a.acme.ID && r.Notifications == 1, "OnReconnected for acme after 1 notification, got %s after %d", r.ConnectionID, r.Notifications),
		check(!st.NeedsReauth && !st.LastReconnected.IsZero(), "acme's episode to have ended"),
		check(!other.NeedsReauth, "globex never to need reauth"),
		check(len(p.a.notifications()) == 1, "1 notification in all, got %d", len(p.a.notifications())),
	)
}
