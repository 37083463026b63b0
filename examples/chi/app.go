package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/go-chi/chi/v5"
)

const sessionCookie = "session"

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
	srv     *http.Server

	mu       sync.Mutex
	sessions map[string]string // session cookie value -> user
	errs     []error
}

// startApp serves the app on a loopback port. tenants maps each tenant's
// slug to its members and connection.
func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper, tenants map[string]*tenant) (*app, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &app{
		URL:      "http://" + ln.Addr().String(),
		store:    finchreauth.NewMemoryStore(),
		tenants:  tenants,
		sessions: map[string]string{},
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
			ErrorHandler:   a.recordError,
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
	a.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(ln)
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
	user, err := a.user(r)
	if err != nil {
		return "", err
	}
	t, ok := a.tenants[slug]
	if !ok || !t.members[user] {
		return "", fmt.Errorf("%s is not a member of tenant %q", user, slug)
	}
	return t.connectionID, nil
}

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

// login is a stand-in for a real sign-in: GET /login?user=alice.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	id := rand.Text()
	a.mu.Lock()
	a.sessions[id] = r.URL.Query().Get("user")
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

// settings shows the tenant's connection, with a Reconnect link when the
// store says it needs one, to members only.
func (a *app) settings(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "tenant")
	user, err := a.user(r)
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

func (a *app) recordError(ctx context.Context, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
}

// takeErrors returns and forgets what the ErrorHandlers reported.
func (a *app) takeErrors() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	errs := a.errs
	a.errs = nil
	return errs
}
