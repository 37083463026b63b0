// Package tenants is the application the router examples share, and the
// scenario that plays it: a multi-tenant web app in which each tenant has
// members and one Finch connection. What the examples (servemux, chi, gin,
// echo, gorilla) differ in, the routes and how a handler reads {tenant} from
// the path, is all each of them writes, in its app.go:
//
//	GET       /login?user=                      App.Login (a stand-in sign-in)
//	GET       /tenants/{tenant}/settings        App.Settings
//	POST      /tenants/{tenant}/finch/reconnect the start endpoint: a 303 to Transport.ReconnectURL, members only
//	GET       /tenants/{tenant}/finch/status    Transport.Status as JSON, members only
//	GET, POST /finch/callback                   Transport.CallbackHandler (Connect.RedirectURI)
//	POST      /finch/webhooks                   Transport.WebhookHandler(App.WebhookSecret)
//	GET       /finch/done                       App.Done (Connect.SuccessURL)
//
// Every route under /tenants/{tenant}/ asks App.Member first and answers 403
// to anyone else. The callback and the webhooks are at fixed paths, one for
// every tenant: Finch knows one redirect URI and one webhook URL per
// application, and the connection id tells the tenants apart.
package tenants

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/demoapp"
	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/finchtest"
)

// App is the app without its routes.
type App struct {
	URL string // where the app is served, e.g. http://127.0.0.1:41235

	// Transport carries the app's calls to Finch, and serves the handlers
	// for every tenant.
	Transport *finchreauth.Transport

	// WebhookSecret verifies Finch's webhooks. In production it is the
	// secret Finch's dashboard shows for the webhook URL.
	WebhookSecret string

	tenants  map[string]tenant // by slug; fixed at start
	byConn   map[string]string // connection id -> slug
	sessions demoapp.Sessions  // the app's (fake) sign-in
	errs     demoapp.Errors    // what the Transport's ErrorHandler reported
	srv      *demoapp.Server
	stopRun  context.CancelFunc
	ran      chan struct{}

	acme, globex scenario.Employer // the tenants' connections on the fake Finch

	mu          sync.Mutex
	notes       []finchreauth.Event        // what the Notifier "sent"
	reconnected []finchreauth.Reconnection // what OnReconnected was told
}

// tenant is one organisation using the app.
type tenant struct {
	members      []string
	connectionID string
}

// Start connects two employers to the fake Finch, tenant acme's (member:
// alice) and tenant globex's (member: bob), and serves the app, with the
// handler routes returns, on a loopback port, until the play ends. It saves
// each connection's first token, as the app did when the employer first
// connected, and registers the app's webhook with the fake Finch.
func Start(ctx context.Context, d *scenario.Demo, routes func(*App) http.Handler) (*App, error) {
	acme := d.Connect(finchtest.Connection{CustomerName: "Acme Corp"})
	globex := d.Connect(finchtest.Connection{CustomerName: "Globex"})
	a, err := start(d.Finch, map[string]tenant{
		"acme":   {members: []string{"alice"}, connectionID: acme.ID},
		"globex": {members: []string{"bob"}, connectionID: globex.ID},
	}, routes)
	if err != nil {
		return nil, err
	}
	d.OnClose(a.close)
	a.acme, a.globex = acme, globex
	if err := scenario.SaveTokens(ctx, a.Transport, acme, globex); err != nil {
		return nil, err
	}
	// Finch's dashboard holds one webhook URL and its secret per
	// application; the fake's SetWebhook stands in for it.
	err = d.Finch.SetWebhook(finchtest.Webhook{URL: a.URL + "/finch/webhooks", Secrets: []string{a.WebhookSecret}})
	return a, err
}

// start configures the library, checks the configuration and serves the
// app on a loopback port.
func start(finch *finchtest.Server, tenants map[string]tenant, routes func(*App) http.Handler) (*App, error) {
	srv, err := demoapp.Listen() // first: the redirect URI names the app's address
	if err != nil {
		return nil, err
	}
	a := &App{URL: srv.URL, srv: srv, tenants: tenants, byConn: map[string]string{}}
	for slug, t := range tenants {
		a.byConn[t.connectionID] = slug
	}

	// In production both secrets come from your secret store, and the state
	// key stays the same across restarts (links live for 30 days).
	stateKey := make([]byte, 32)
	rand.Read(stateKey)
	webhookKey := make([]byte, 32)
	rand.Read(webhookKey)
	a.WebhookSecret = base64.StdEncoding.EncodeToString(webhookKey)

	connect := &finchreauth.Connect{
		ClientID:     finch.ClientID,
		ClientSecret: finch.ClientSecret,
		StateKeys:    [][]byte{stateKey},
		// One redirect URI, registered with Finch, for every tenant.
		RedirectURI: a.URL + "/finch/callback",
		// The callback sends the browser to SuccessURL?connection_id=...,
		// or (FailureURL being empty) ?reason=...; Done sends it on to the
		// tenant's own page.
		SuccessURL: a.URL + "/finch/done",
		// The reconnect is bound to the person as well as the link: the
		// callback completes it only for a member of the tenant whose
		// connection the link names.
		Authorize: a.MayReconnect,
	}
	if err := connect.Validate(); err != nil {
		srv.Shutdown(context.Background())
		return nil, err
	}
	a.Transport = &finchreauth.Transport{
		Base:          finch.Client().Transport,
		APIBaseURL:    finch.URL, // the Transport watches this host only; in production leave it empty
		Store:         new(finchreauth.MemoryStore),
		Notifier:      finchreauth.NotifierFunc(a.notify),
		Connect:       connect,
		OnReconnected: a.onReconnected,
		ErrorHandler:  a.errs.Record,
	}
	// Run sends the reminders (after a day, three days, a week) until
	// the app stops.
	ctx, cancel := context.WithCancel(context.Background())
	a.stopRun, a.ran = cancel, make(chan struct{})
	go func() {
		defer close(a.ran)
		a.Transport.Run(ctx)
	}()
	srv.Serve(routes(a))
	return a, nil
}

// close stops serving, then the reminders and the Transport's work.
func (a *App) close(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	a.stopRun()
	<-a.ran
	a.Transport.Close()
	return err
}

// Member returns the connection of the tenant named in the path if the
// request's signed-in user is one of its members, and an error otherwise:
// every route under /tenants/{tenant}/ asks it, with the {tenant} its router
// read from the path, and answers 403 to an error.
func (a *App) Member(r *http.Request, tenantSlug string) (connectionID string, err error) {
	user, err := a.sessions.User(r)
	if err != nil {
		return "", err
	}
	t, ok := a.tenants[tenantSlug]
	if !ok {
		return "", fmt.Errorf("%s asked for tenant %q, which does not exist", user, tenantSlug)
	}
	if !slices.Contains(t.members, user) {
		return "", fmt.Errorf("%s is not a member of tenant %q", user, tenantSlug)
	}
	return t.connectionID, nil
}

// MayReconnect is Connect.Authorize: the callback asks it, before anything
// is spent, whether the request's signed-in user is a member of the tenant
// that owns connectionID.
func (a *App) MayReconnect(r *http.Request, connectionID string) error {
	slug, ok := a.byConn[connectionID]
	if !ok {
		return fmt.Errorf("connection %s belongs to no tenant", connectionID)
	}
	_, err := a.Member(r, slug)
	return err
}

// Login is a stand-in for a real sign-in: GET /login?user=alice.
func (a *App) Login(w http.ResponseWriter, r *http.Request) {
	a.sessions.SignIn(w, r.URL.Query().Get("user"))
	w.WriteHeader(http.StatusNoContent)
}

// Settings is the tenant's settings page, for its members: the connection's
// status as the Transport knows it, with a Reconnect button while it needs
// one, and why the last reconnect failed (?reason=).
func (a *App) Settings(w http.ResponseWriter, r *http.Request, tenantSlug string) {
	conn, err := a.Member(r, tenantSlug)
	if err != nil {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	st, err := a.Transport.Status(r.Context(), conn)
	if err != nil {
		http.Error(w, "status unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>%s settings</title>\n", html.EscapeString(tenantSlug))
	if !st.NeedsReauth {
		fmt.Fprint(w, "<p id=\"status\">Payroll: connected</p>\n")
	} else {
		fmt.Fprintf(w, "<p id=\"status\">Payroll: needs reconnecting since %s; %d notification(s) sent</p>\n",
			st.Since.UTC().Format(time.TimeOnly+" MST"), st.Notifications)
		// A form, not a link: the start endpoint mints a Connect session.
		fmt.Fprint(w, "<form method=\"post\" action=\"finch/reconnect\"><button type=\"submit\">Reconnect</button></form>\n")
	}
	if reason := r.URL.Query().Get("reason"); reason != "" {
		fmt.Fprintf(w, "<p id=\"error\">Reconnecting failed: %s</p>\n", html.EscapeString(reason))
	}
}

// Done is Connect.SuccessURL, and so the failure page too: the callback
// sends every tenant's browser here, with ?connection_id= (and ?reason= for
// a failure). The connection id names the tenant: Done sends the browser on
// to its settings page, which checks who is signed in.
func (a *App) Done(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	slug, ok := a.byConn[q.Get("connection_id")]
	if !ok {
		http.Error(w, "reconnecting failed: "+q.Get("reason"), http.StatusBadRequest)
		return
	}
	target := "/tenants/" + url.PathEscape(slug) + "/settings"
	if reason := q.Get("reason"); reason != "" {
		target += "?" + url.Values{"reason": {reason}}.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// notify is the Notifier: a real app e-mails the tenant's admins.
func (a *App) notify(ctx context.Context, e finchreauth.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notes = append(a.notes, e)
	return nil
}

func (a *App) notifications() []finchreauth.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.notes)
}

// onReconnected is OnReconnected: a real app resumes the tenant's syncs.
func (a *App) onReconnected(ctx context.Context, r finchreauth.Reconnection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reconnected = append(a.reconnected, r)
}

func (a *App) reconnections() []finchreauth.Reconnection {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reconnected)
}
