package finchreauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// A Transport in front of a fake Finch: the connection breaks, the first call
// brings Finch's 401 and one notification, the next is answered locally.
func ExampleTransport() {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp", ProviderID: "gusto"})

	tr := &finchreauth.Transport{
		Base:       finch.Client().Transport,
		APIBaseURL: finch.URL, // the Finch the Transport watches
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			fmt.Printf("notify %s (%s on %s): reconnect to restore %s\n",
				e.Connection.CustomerName, e.Connection.ConnectionID, e.Connection.ProviderID,
				strings.Join(e.Connection.Products, ", "))
			return nil
		}),
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}

	call := func() {
		req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s reauth=%v (%s)\n", resp.StatusCode, resp.Header.Get("Finchreauth"),
			strings.Contains(string(body), "reauthenticate_user"), http.StatusText(resp.StatusCode))
	}

	call()
	conn, _ := finch.ConnectionForToken(token)
	finch.Break(conn.ID)
	call()
	tr.Flush(context.Background()) // the handling runs on its own, once
	call()
	fmt.Println("calls that reached Finch:", finch.Calls("GET", "/employer/company"))
	// Output:
	// 200  reauth=false (OK)
	// 401 detected reauth=true (Unauthorized)
	// notify Acme Corp (c0000000-0000-4000-8000-000000000001 on gusto): reconnect to restore company, directory, individual, employment, payment, pay_statement
	// 401 latched reauth=true (Unauthorized)
	// calls that reached Finch: 2
}

// WrapClient builds a new client around one the application already has;
// the original keeps working as before.
func ExampleTransport_WrapClient() {
	existing := &http.Client{Timeout: 30e9}
	tr := &finchreauth.Transport{}
	defer tr.Close()
	client := tr.WrapClient(existing)
	fmt.Println(client != existing, client.Timeout, existing.Transport == nil)
	// Output: true 30s true
}

// IsReauth recognises Finch's re-authentication error however it arrives:
// here as an *APIError wrapped by the application's own code.
func ExampleIsReauth() {
	resp := &http.Response{
		StatusCode: 401,
		Header:     http.Header{"Finch-Request-Id": {"req_123"}},
		Body:       io.NopCloser(strings.NewReader(`{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`)),
	}
	err := fmt.Errorf("sync directory: %w", finchreauth.ParseAPIError(resp))
	fmt.Println(finchreauth.IsReauth(err))
	fmt.Println(errors.Is(err, finchreauth.ErrReauthRequired))
	fmt.Println(err)
	// Output:
	// true
	// true
	// sync directory: finchreauth: finch API error 401 authentication_error (reauthenticate_user): Please reauthenticate user [request req_123]
}

// ParseAPIError reads a Finch error and leaves the body readable.
func ExampleParseAPIError() {
	resp := &http.Response{
		StatusCode: 429,
		Header:     http.Header{"Retry-After": {"2"}},
		Body:       io.NopCloser(strings.NewReader(`{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_api_ip_rl","message":"Rate limit exceeded"}`)),
	}
	e := finchreauth.ParseAPIError(resp)
	fmt.Println(e.Name, e.FinchCode, e.IsReauth())
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(len(body) > 0)
	// Output:
	// rate_limit_exceeded_error finch_api_ip_rl false
	// true
}

// A fingerprint names a token in logs and tickets without revealing it; a
// Token prints as its fingerprint, in fmt, JSON and log/slog alike.
func ExampleToken_Fingerprint() {
	tok := finchreauth.Token("example-access-token")
	fmt.Println(tok.Fingerprint())
	fmt.Printf("%v %s\n", tok, tok.Fingerprint())
	b, _ := json.Marshal(struct{ Token finchreauth.Token }{tok})
	fmt.Println(string(b))
	fmt.Println(string(tok) == "example-access-token")
	// Output:
	// 6753f72e5f9ed09a
	// token:6753f72e5f9ed09a 6753f72e5f9ed09a
	// {"Token":"token:6753f72e5f9ed09a"}
	// true
}

// Connect is the application's side of Finch Connect. Validate at start-up
// says what is missing.
func ExampleConnect_Validate() {
	c := &finchreauth.Connect{ClientID: "client_123", StateKeys: [][]byte{[]byte("too short")}}
	fmt.Println(c.Validate())
	fmt.Printf("%v\n", finchreauth.Connect{ClientID: "client_123", ClientSecret: "s3cr3t"})
	// Output:
	// finchreauth: Connect.ClientSecret is empty
	// finchreauth: Connect.StateKeys[0] is shorter than 16 bytes
	// finchreauth.Connect{ClientID:"client_123" RedirectURI:"" ClientSecret:[redacted] StateKeys:0}
}

// The whole reconnect: the notification carries a link, the employer goes
// through Finch Connect, and the callback saves the new token and ends the
// episode.
func ExampleTransport_CallbackHandler() {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)

	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	var link string
	reconnected := make(chan finchreauth.Reconnection, 1)
	tr := &finchreauth.Transport{
		Base:       finch.Client().Transport,
		APIBaseURL: finch.URL,
		Connect: &finchreauth.Connect{
			ClientID:     finch.ClientID,
			ClientSecret: finch.ClientSecret,
			RedirectURI:  app.URL + "/finch/callback",
			SuccessURL:   app.URL + "/settings",
			FailureURL:   app.URL + "/settings/reconnect-failed",
			StateKeys:    [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		},
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			link = e.ReconnectURL
			return nil
		}),
		OnReconnected: func(ctx context.Context, r finchreauth.Reconnection) {
			reconnected <- r // runs detached from the browser's request
		},
	}
	defer tr.Close()
	mux.Handle("/finch/callback", tr.CallbackHandler())
	ctx := context.Background()
	tr.SaveToken(ctx, conn.ID, finchreauth.Token(token))

	finch.Break(conn.ID)
	req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, _ := tr.RoundTrip(req)
	resp.Body.Close()
	tr.Flush(ctx) // the caller has Finch's 401 at once; the handling runs on its own
	st, _ := tr.Status(ctx, conn.ID)
	fmt.Println("needs reauth:", st.NeedsReauth, "notifications:", st.Notifications)

	callback, _ := finch.Approve(link) // the employer clicks Reconnect in Finch Connect
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = browser.Get(callback)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	fmt.Println(resp.StatusCode, loc.Path)
	r := <-reconnected
	fmt.Println("reconnected via", r.Via, "after", r.Notifications, "notification")
	st, _ = tr.Status(ctx, conn.ID)
	fmt.Println("needs reauth:", st.NeedsReauth)
	// Output:
	// needs reauth: true notifications: 1
	// 303 /settings
	// reconnected via callback after 1 notification
	// needs reauth: false
}

// The start endpoint in any router: the application's own handler checks
// the signed-in user, then sends them to the connection's link.
func ExampleTransport_ReconnectURL() {
	tr := &finchreauth.Transport{Links: finchreauth.LinkBuilderFunc(func(ctx context.Context, e finchreauth.Event) (string, error) {
		return "https://connect.example/reconnect/" + e.Connection.ConnectionID, nil
	})}
	defer tr.Close()
	start := func(w http.ResponseWriter, r *http.Request, connectionID string) { // called by a gin, echo, chi... handler
		u, err := tr.ReconnectURL(r.Context(), connectionID)
		if err != nil {
			http.Error(w, "no link", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
	}
	rec := httptest.NewRecorder()
	start(rec, httptest.NewRequest("GET", "/tenants/acme/finch/reconnect", nil), "conn_acme")
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output: 303 https://connect.example/reconnect/conn_acme
}

// Finch's account.updated webhook opens the episode as a 401 does: the
// customer is told once, whichever comes first.
func ExampleTransport_WebhookHandler() {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)
	const secret = "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH" // as Finch's dashboard shows it
	told := make(chan finchreauth.Event, 1)
	tr := &finchreauth.Transport{
		Base: finch.Client().Transport, APIBaseURL: finch.URL,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			told <- e
			return nil
		}),
	}
	defer tr.Close()
	tr.SaveToken(context.Background(), conn.ID, finchreauth.Token(token))
	app := httptest.NewServer(tr.WebhookHandler(secret))
	defer app.Close()
	finch.SetWebhook(finchtest.Webhook{URL: app.URL, Secrets: []string{secret}})

	finch.Break(conn.ID) // Finch sends account.updated {"data": {"status": "reauth"}}
	e := <-told
	fmt.Println(e.Source, e.Connection.CustomerName, finch.Webhooks()[0].StatusCode)
	// Output: webhook Acme Corp 200
}

// Remind, from the application's scheduler (or Run), sends the reminders
// that are due: here a day after the first notification.
func ExampleTransport_Remind() {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tr := &finchreauth.Transport{
		Base: finch.Client().Transport, APIBaseURL: finch.URL,
		Now: func() time.Time { return now },
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			fmt.Printf("to %s: reminder %d, broken for %s\n", e.Connection.CustomerName, e.Reminder, e.Age())
			return nil
		}),
	}
	defer tr.Close()
	finch.Break(conn.ID)
	req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, _ := tr.RoundTrip(req)
	resp.Body.Close()
	tr.Flush(context.Background()) // the handling runs on its own: wait for it

	now = now.Add(25 * time.Hour)
	tr.Remind(context.Background())
	tr.Remind(context.Background()) // nothing more is due
	// Output:
	// to Acme Corp: reminder 0, broken for 0s
	// to Acme Corp: reminder 1, broken for 25h0m0s
}
