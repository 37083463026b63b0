package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/demoapp"
)

// app is the application being demonstrated: a service that calls Finch for
// its customers through a finchreauth.Transport, and serves the pages its
// customers' browsers visit: Finch Connect's callback and a dashboard.
type app struct {
	URL      string                 // where the app is served, e.g. http://127.0.0.1:41235
	finchURL string                 // Finch's API (here the fake's)
	tr       *finchreauth.Transport // notices reauthenticate_user, keeps tokens and episodes, serves the callback
	client   *http.Client           // the app's client for Finch calls, through tr
	srv      *demoapp.Server
	errs     demoapp.Errors   // what the Transport's ErrorHandler reported
	sessions demoapp.Sessions // the app's (stand-in) sign-in: GET /login?user=

	mu          sync.Mutex
	outbox      []finchreauth.Event        // the notifications the app "sent"
	reconnected []finchreauth.Reconnection // what OnReconnected was told
}

// startApp configures the library and starts serving on a loopback port.
// finchURL, clientID and clientSecret are the Finch the app talks to and its
// credentials there; base carries the app's calls to Finch; now is the
// app's clock.
func startApp(finchURL, clientID, clientSecret string, base http.RoundTripper, now func() time.Time) (*app, error) {
	// Listen first: the redirect URI must name the app's real address.
	srv, err := demoapp.Listen()
	if err != nil {
		return nil, err
	}
	a := &app{URL: srv.URL, finchURL: finchURL, srv: srv}

	// StateKeys sign the state each reconnect link carries. Use 32 random
	// bytes kept in your secret store, not regenerated at each start (here
	// they are: the demo's links live only as long as the process).
	stateKey := make([]byte, 32)
	rand.Read(stateKey)

	// Connect is the way back from Finch Connect: where it sends the
	// employer (RedirectURI, registered with Finch, served by the
	// Transport's CallbackHandler) and where the callback sends them on.
	connect := &finchreauth.Connect{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		StateKeys:    [][]byte{stateKey},
		RedirectURI:  a.URL + "/finch/callback",
		SuccessURL:   a.URL + "/dashboard",                  // ?connection_id=...
		FailureURL:   a.URL + "/dashboard/reconnect-failed", // ?reason=...
		// The reconnect is bound to the person as well as the link: the
		// callback completes it only for the customer's signed-in admin.
		Authorize: a.mayReconnect,
	}
	if err := connect.Validate(); err != nil { // at start-up, not at the first broken connection
		srv.Shutdown(context.Background())
		return nil, err
	}
	a.tr = &finchreauth.Transport{
		Base: base,
		// The Finch API the Transport watches (requests to other hosts
		// pass through untouched) and calls. In production leave it
		// empty: https://api.tryfinch.com.
		APIBaseURL:    finchURL,
		Store:         new(finchreauth.MemoryStore), // tokens and episodes; share one between replicas
		Notifier:      finchreauth.NotifierFunc(a.notify),
		Connect:       connect, // each notification carries a Connect session link
		OnReconnected: a.onReconnected,
		ErrorHandler:  a.errs.Record, // the library's errors name tokens by fingerprint only: safe to log
		Now:           now,           // the demo's clock, so that a day passes at once; in production leave it nil
	}
	a.client = a.tr.WrapClient(&http.Client{Timeout: 10 * time.Second})

	mux := http.NewServeMux()
	mux.Handle("/finch/callback", a.tr.CallbackHandler())
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		a.sessions.SignIn(w, r.URL.Query().Get("user"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /dashboard", a.dashboard)
	mux.HandleFunc("GET /dashboard/reconnect-failed", a.reconnectFailed)
	srv.Serve(mux)
	return a, nil
}

// admin is the customer's admin, the one user of this demo who may
// reconnect its payroll connection.
const admin = "payroll-admin@acme.example"

// mayReconnect is Connect.Authorize: whether the request's signed-in user
// may reconnect the connection. A real app looks the connection up among
// those of the user's organisation.
func (a *app) mayReconnect(r *http.Request, connectionID string) error {
	user, err := a.sessions.User(r)
	if err != nil {
		return err
	}
	if user != admin {
		return fmt.Errorf("%s may not reconnect %s", user, connectionID)
	}
	return nil
}

// close stops serving, then the Transport's work in flight.
func (a *app) close(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	a.tr.Close()
	return err
}

// notify is the app's Notifier: a real app sends an e-mail or shows a
// banner. The Transport calls it once per broken connection, and once per
// reminder.
func (a *app) notify(ctx context.Context, e finchreauth.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outbox = append(a.outbox, e)
	return nil
}

func (a *app) notifications() []finchreauth.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.outbox)
}

// onReconnected runs once the connection works again: a real app resumes
// the customer's syncs.
func (a *app) onReconnected(ctx context.Context, r finchreauth.Reconnection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reconnected = append(a.reconnected, r)
}

func (a *app) reconnections() []finchreauth.Reconnection {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reconnected)
}

// dashboard is where the callback sends the employer after a reconnect
// (SuccessURL?connection_id=...). It shows what the Transport says of the
// connection.
func (a *app) dashboard(w http.ResponseWriter, r *http.Request) {
	connID := r.URL.Query().Get("connection_id")
	st, err := a.tr.Status(r.Context(), connID)
	if err != nil {
		http.Error(w, "unknown connection", http.StatusNotFound)
		return
	}
	status := "connected"
	switch {
	case st.NeedsReauth:
		status = fmt.Sprintf("needs to be reconnected (since %s)", st.Since.UTC().Format(time.DateTime))
	case !st.LastReconnected.IsZero():
		tok, _ := a.tr.Token(r.Context(), connID) // a Token prints as its fingerprint
		status = fmt.Sprintf("%s reconnected its %s account; new token %s", st.CustomerName, st.ProviderID, tok.Fingerprint())
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
