package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/url"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/demoapp"
)

// app is a web application with signed-in users, each owning Finch
// connections. It mounts finchreauth's handlers on a plain net/http
// ServeMux, under /integrations/finch/.
type app struct {
	URL     string
	store   *finchreauth.MemoryStore
	tr      *finchreauth.Transport
	connect *finchreauth.Connect
	srv     *demoapp.Server

	owners map[string]string // connection id -> user; fixed at start

	sessions demoapp.Sessions // the app's (fake) sign-in
	errs     demoapp.Errors   // what Connect's ErrorHandler reported
}

func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper, owners map[string]string) (*app, error) {
	srv, err := demoapp.Listen()
	if err != nil {
		return nil, err
	}
	a := &app{
		URL:    srv.URL,
		store:  finchreauth.NewMemoryStore(),
		srv:    srv,
		owners: owners,
	}
	stateKey := make([]byte, 32) // in production: from your secret store
	rand.Read(stateKey)

	a.tr = &finchreauth.Transport{Base: base, Store: a.store, APIBaseURL: finchURL}
	a.connect = &finchreauth.Connect{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		StateKeys:    [][]byte{stateKey},
		// The handlers are mounted under a prefix: RedirectURI is the full
		// URL Finch sends the browser to, prefix included.
		RedirectURI: a.URL + "/integrations/finch/callback",
		// Success and failure both land on the settings page, which reads
		// ?connection_id= or ?reason= (FailureURL defaults to SuccessURL).
		SuccessURL:     a.URL + "/settings/integrations",
		Authorize:      a.authorize,
		Transport:      a.tr,
		APIBaseURL:     finchURL,
		ConnectBaseURL: finchURL,
		Base:           base,
		ErrorHandler:   a.errs.Record,
	}

	// finchreauth's handlers read only their query, never their path, so
	// they work under any prefix, http.StripPrefix included.
	finch := http.NewServeMux()
	finch.Handle("/callback", a.connect.CallbackHandler())   // GET (redirect flow) and POST (embedded flow)
	finch.Handle("GET /reconnect", a.connect.StartHandler()) // ?connection_id=...

	mux := http.NewServeMux()
	mux.Handle("/integrations/finch/", http.StripPrefix("/integrations/finch", finch))
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /settings/integrations", a.settings)

	srv.Serve(mux)
	return a, nil
}

func (a *app) close(ctx context.Context) error {
	a.tr.Close()
	return a.srv.Shutdown(ctx)
}

// authorize is Connect.Authorize: StartHandler asks it which connection the
// request's user may reconnect. Only the connection's owner may.
func (a *app) authorize(r *http.Request) (string, error) {
	user, err := a.sessions.User(r)
	if err != nil {
		return "", err
	}
	connID := r.URL.Query().Get("connection_id")
	if a.owners[connID] != user {
		return "", fmt.Errorf("%s does not own connection %q", user, connID)
	}
	return connID, nil
}

// login is a stand-in for a real sign-in: GET /login?user=alice.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	a.sessions.SignIn(w, r.URL.Query().Get("user"))
	http.Redirect(w, r, "/settings/integrations", http.StatusSeeOther)
}

// settings lists the user's connections, with a Reconnect link for each
// one the store says needs it.
func (a *app) settings(w http.ResponseWriter, r *http.Request) {
	user, err := a.sessions.User(r)
	if err != nil {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Integrations</title>\n")
	if reason := r.URL.Query().Get("reason"); reason != "" {
		fmt.Fprintf(w, "<p id=\"error\">Reconnecting failed: %s</p>\n", html.EscapeString(reason))
	}
	for connID, owner := range a.owners {
		if owner != user {
			continue
		}
		st, err := a.store.State(r.Context(), connID)
		switch {
		case err != nil:
			fmt.Fprintf(w, "<p id=\"status\">unknown</p>\n")
		case st.NeedsReauth:
			link := "/integrations/finch/reconnect?" + url.Values{"connection_id": {connID}}.Encode()
			fmt.Fprintf(w, "<p id=\"status\">Payroll: needs reconnecting</p>\n<a id=\"reconnect\" href=\"%s\">Reconnect</a>\n", html.EscapeString(link))
		default:
			fmt.Fprintf(w, "<p id=\"status\">Payroll: connected</p>\n")
		}
	}
}
