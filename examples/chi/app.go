package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/demoapp"
	"github.com/go-chi/chi/v5"
)

// tenant is one organisation using the app: its members and its Finch
// connection.
type tenant struct {
	members      map[string]bool
	connectionID string
	// connect is the tenant's own Connect: its RedirectURI and SuccessURL
	// name the tenant's paths, and a Connect has one of each.
	connect *finchreauth.Connect
}

// app is a multi-tenant web application on chi. Each tenant's Finch
// handlers live under /tenants/{tenant}/finch/.
type app struct {
	URL     string
	store   *finchreauth.MemoryStore
	tr      *finchreauth.Transport
	tenants map[string]*tenant // by slug; fixed at start
	srv     *demoapp.Server

	sessions demoapp.Sessions // the app's (fake) sign-in
	errs     demoapp.Errors   // what every tenant's Connect.ErrorHandler reported
}

// startApp serves the app on a loopback port. tenants maps each tenant's
// slug to its members and connection.
func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper, tenants map[string]*tenant) (*app, error) {
	srv, err := demoapp.Listen()
	if err != nil {
		return nil, err
	}
	a := &app{
		URL:     srv.URL,
		store:   finchreauth.NewMemoryStore(),
		tenants: tenants,
		srv:     srv,
	}
	stateKey := make([]byte, 32) // in production: from your secret store, shared by all tenants
	rand.Read(stateKey)

	a.tr = &finchreauth.Transport{Base: base, Store: a.store, APIBaseURL: finchURL}
	for slug, t := range tenants {
		t.connect = &finchreauth.Connect{
			ClientID:       clientID,
			ClientSecret:   clientSecret,
			StateKeys:      [][]byte{stateKey},
			RedirectURI:    a.URL + "/tenants/" + slug + "/finch/callback",
			SuccessURL:     a.URL + "/tenants/" + slug + "/settings",
			Authorize:      a.authorize,
			Transport:      a.tr, // one Transport and one Store for every tenant
			APIBaseURL:     finchURL,
			ConnectBaseURL: finchURL,
			Base:           base,
			ErrorHandler:   a.errs.Record,
		}
	}

	r := chi.NewRouter()
	r.Get("/login", a.login)
	r.Route("/tenants/{tenant}", func(r chi.Router) {
		r.Get("/settings", a.settings)
		// finchreauth's handlers read only their query, never their path:
		// they work under any mount path, URL parameters included.
		r.Route("/finch", func(r chi.Router) {
			r.Handle("/callback", a.withConnect((*finchreauth.Connect).CallbackHandler))
			r.Get("/reconnect", a.withConnect((*finchreauth.Connect).StartHandler))
		})
	})
	srv.Serve(r)
	return a, nil
}

func (a *app) close(ctx context.Context) error {
	a.tr.Close()
	return a.srv.Shutdown(ctx)
}

// withConnect serves a request with the handler that handler returns for
// the tenant named by the {tenant} URL parameter, or 404.
func (a *app) withConnect(handler func(*finchreauth.Connect) http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, ok := a.tenants[chi.URLParam(r, "tenant")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		handler(t.connect).ServeHTTP(w, r)
	}
}

// authorize is every tenant's Connect.Authorize: a member of the tenant in
// the URL may reconnect that tenant's connection.
func (a *app) authorize(r *http.Request) (string, error) {
	slug := chi.URLParam(r, "tenant")
	user, err := a.sessions.User(r)
	if err != nil {
		return "", err
	}
	t, ok := a.tenants[slug]
	if !ok || !t.members[user] {
		return "", fmt.Errorf("%s is not a member of tenant %q", user, slug)
	}
	return t.connectionID, nil
}

// login is a stand-in for a real sign-in: GET /login?user=alice.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	a.sessions.SignIn(w, r.URL.Query().Get("user"))
	w.WriteHeader(http.StatusNoContent)
}

// settings shows the tenant's connection, with a Reconnect link when the
// store says it needs one, to members only.
func (a *app) settings(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "tenant")
	user, err := a.sessions.User(r)
	t, ok := a.tenants[slug]
	if err != nil || !ok || !t.members[user] {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	status := "Payroll: connected"
	if st, err := a.store.State(r.Context(), t.connectionID); err == nil && st.NeedsReauth {
		status = "Payroll: needs reconnecting"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>%s settings</title>\n<p id=\"status\">%s</p>\n<a id=\"reconnect\" href=\"finch/reconnect\">Reconnect</a>\n",
		html.EscapeString(slug), status)
	if reason := r.URL.Query().Get("reason"); reason != "" {
		fmt.Fprintf(w, "<p id=\"error\">Reconnecting failed: %s</p>\n", html.EscapeString(reason))
	}
}
