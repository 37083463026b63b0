package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
)

// sessionCookie names the cookie of the app's (fake) sign-in.
const sessionCookie = "session"

// app is a web application with signed-in users, each owning Finch
// connections. It mounts finchreauth's handlers on a plain net/http
// ServeMux, under /integrations/finch/.
type app struct {
	URL     string
	store   *finchreauth.MemoryStore
	tr      *finchreauth.Transport
	connect *finchreauth.Connect
	srv     *http.Server

	owners map[string]string // connection id -> user; fixed at start

	mu       sync.Mutex
	sessions map[string]string // session cookie value -> user
	errs     []error           // what Connect's ErrorHandler reported
}

func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper, owners map[string]string) (*app, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &app{
		URL:      "http://" + ln.Addr().String(),
		store:    finchreauth.NewMemoryStore(),
		owners:   owners,
		sessions: map[string]string{},
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
		ErrorHandler: func(ctx context.Context, err error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.errs = append(a.errs, err)
		},
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

	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(ln)
	return a, nil
}

func (a *app) close(ctx context.Context) error {
	a.tr.Close()
	return a.srv.Shutdown(ctx)
}

// user returns the signed-in user of a request.
func (a *app) user(r *http.Request) (string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", errors.New("not signed in")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	user, ok := a.sessions[c.Value]
	if !ok {
		return "", errors.New("unknown session")
	}
	return user, nil
}

// authorize is Connect.Authorize: StartHandler asks it which connection the
// request's user may reconnect. Only the connection's owner may.
func (a *app) authorize(r *http.Request) (string, error) {
	user, err := a.user(r)
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
	user := r.URL.Query().Get("user")
	id := rand.Text()
	a.mu.Lock()
	a.sessions[id] = user
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/settings/integrations", http.StatusSeeOther)
}

// settings lists the user's connections, with a Reconnect link for each
// one the store says needs it.
func (a *app) settings(w http.ResponseWriter, r *http.Request) {
	user, err := a.user(r)
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
