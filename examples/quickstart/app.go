package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/demoapp"
)

// app is the application being demonstrated: a service that calls Finch for
// its customers through a finchreauth.Transport, and serves the pages its
// customers' browsers visit: Finch Connect's callback and a dashboard.
type app struct {
	URL      string                   // where the app is served, e.g. http://127.0.0.1:41235
	finchURL string                   // Finch's API (here the fake's)
	store    *finchreauth.MemoryStore // tokens and re-authentication episodes
	tr       *finchreauth.Transport   // notices reauthenticate_user
	connect  *finchreauth.Connect     // reconnect links and the callback
	client   *http.Client             // the app's client for Finch calls, through tr
	srv      *demoapp.Server
	errs     demoapp.Errors // what the library's ErrorHandlers reported

	mu          sync.Mutex
	outbox      []finchreauth.Event                 // the notifications the app "sent"
	reconnected map[string]finchreauth.Reconnection // by connection id
}

// startApp configures the library and starts serving on a loopback port.
// finchURL, clientID and clientSecret are the Finch the app talks to and its
// credentials there; base carries the app's calls to Finch.
func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper) (*app, error) {
	// Listen first: the redirect URI must name the app's real address.
	srv, err := demoapp.Listen()
	if err != nil {
		return nil, err
	}
	a := &app{
		URL:         srv.URL,
		finchURL:    finchURL,
		store:       finchreauth.NewMemoryStore(),
		srv:         srv,
		reconnected: map[string]finchreauth.Reconnection{},
	}

	// StateKeys sign the state each reconnect link carries. Use 32 random
	// bytes kept in your secret store, not regenerated at each start (here
	// they are: the demo's links live only as long as the process).
	stateKey := make([]byte, 32)
	rand.Read(stateKey)

	a.tr = &finchreauth.Transport{
		Base:         base,
		Store:        a.store,
		Notifier:     finchreauth.NotifierFunc(a.notify),
		APIBaseURL:   finchURL,      // where /introspect goes; in production "https://api.tryfinch.com"
		ErrorHandler: a.errs.Record, // the library's errors name tokens by fingerprint only: safe to log
	}
	a.connect = &finchreauth.Connect{
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		StateKeys:      [][]byte{stateKey},
		RedirectURI:    a.URL + "/finch/callback",
		SuccessURL:     a.URL + "/dashboard",
		FailureURL:     a.URL + "/dashboard/reconnect-failed",
		APIBaseURL:     finchURL, // in production, leave both empty: Finch's own hosts
		ConnectBaseURL: finchURL,
		Base:           base,
		Transport:      a.tr, // the callback saves the new token through it
		OnReconnected:  a.onReconnected,
		ErrorHandler:   a.errs.Record,
	}
	// The Transport asks Connect for the link each notification carries.
	a.tr.Links = a.connect
	a.client = a.tr.WrapClient(&http.Client{Timeout: 10 * time.Second})

	mux := http.NewServeMux()
	mux.Handle("/finch/callback", a.connect.CallbackHandler())
	mux.HandleFunc("GET /dashboard", a.dashboard)
	mux.HandleFunc("GET /dashboard/reconnect-failed", a.reconnectFailed)
	srv.Serve(mux)
	return a, nil
}

// close stops the Transport's handlings, then the server.
func (a *app) close(ctx context.Context) error {
	a.tr.Close()
	return a.srv.Shutdown(ctx)
}

// notify is the app's Notifier: a real app sends an e-mail or shows a
// banner. The Transport calls it once per broken connection.
func (a *app) notify(ctx context.Context, e finchreauth.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outbox = append(a.outbox, e)
	return nil
}

func (a *app) notifications() []finchreauth.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]finchreauth.Event(nil), a.outbox...)
}

// onReconnected runs after the callback saved the new token.
func (a *app) onReconnected(ctx context.Context, r finchreauth.Reconnection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reconnected[r.ConnectionID] = r
}

// dashboard is where the callback sends the employer after a reconnect
// (SuccessURL?connection_id=...). It shows what the app's store says.
func (a *app) dashboard(w http.ResponseWriter, r *http.Request) {
	connID := r.URL.Query().Get("connection_id")
	st, err := a.store.State(r.Context(), connID)
	if err != nil {
		http.Error(w, "unknown connection", http.StatusNotFound)
		return
	}
	a.mu.Lock()
	rec, ok := a.reconnected[connID]
	a.mu.Unlock()
	status := "connected"
	switch {
	case st.NeedsReauth:
		status = "needs to be reconnected"
	case ok:
		status = fmt.Sprintf("%s reconnected its %s account; new token %s", rec.CustomerName, rec.ProviderID, st.TokenFingerprint)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Dashboard</title>\n<p id=\"status\">%s</p>\n", html.EscapeString(status))
}

// reconnectFailed is the FailureURL: ?reason=...&connection_id=...
func (a *app) reconnectFailed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Reconnect failed</title>\n<p id=\"status\">reconnect failed: %s</p>\n",
		html.EscapeString(r.URL.Query().Get("reason")))
}

// finchGet calls the Finch API with a connection's token and decodes its
// JSON answer into out. An error answer comes back as a
// *finchreauth.APIError, which finchreauth.IsReauth recognises.
func (a *app) finchGet(ctx context.Context, token, path string, out any) error {
	resp, err := a.do(ctx, token, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if apiErr := finchreauth.ParseAPIError(resp); apiErr != nil { // nil below 400
			return apiErr
		}
		return fmt.Errorf("finch answered %s to GET %s", resp.Status, path)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// do sends one GET to Finch through the app's client. The caller closes
// the body.
func (a *app) do(ctx context.Context, token, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.finchURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Finch-API-Version", "2020-09-17")
	return a.client.Do(req)
}

// The parts of Finch's answers the demo reads.
type company struct {
	ID        string `json:"id"`
	LegalName string `json:"legal_name"`
}

type directory struct {
	Individuals []struct {
		ID        string `json:"id"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
	} `json:"individuals"`
}

func (d directory) ids() []string {
	ids := make([]string, len(d.Individuals))
	for i, in := range d.Individuals {
		ids[i] = in.ID
	}
	return ids
}
