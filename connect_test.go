package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var stateKey = []byte("0123456789abcdef0123456789abcdef")

// reconnectRig is the whole flow: a fake Finch, an application server that
// mounts the callback and start handlers, a Transport and a Connect.
type reconnectRig struct {
	finch   *finchtest.Server
	app     *httptest.Server
	store   *finchreauth.MemoryStore
	tr      *finchreauth.Transport
	connect *finchreauth.Connect
	notes   *recorder
	errs    *errorLog
	clk     *clock

	mu          sync.Mutex
	reconnected []finchreauth.Reconnection
	mismatched  []finchreauth.Reconnection

	token  string // the connection's first token
	connID string
}

func newReconnectRig(t *testing.T, configure func(c *finchreauth.Connect)) *reconnectRig {
	r := &reconnectRig{finch: finchtest.NewServer(), store: finchreauth.NewMemoryStore(), notes: &recorder{}, errs: &errorLog{}, clk: newClock()}
	t.Cleanup(r.finch.Close)
	r.finch.SetClock(r.clk.Now)
	r.token = r.finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp", ProviderID: "gusto"})
	conn, _ := r.finch.ConnectionForToken(r.token)
	r.connID = conn.ID

	mux := http.NewServeMux()
	r.app = httptest.NewServer(mux)
	t.Cleanup(r.app.Close)

	r.connect = &finchreauth.Connect{
		ClientID:       r.finch.ClientID,
		ClientSecret:   r.finch.ClientSecret,
		RedirectURI:    r.app.URL + "/finch/callback",
		StateKeys:      [][]byte{stateKey},
		SuccessURL:     r.app.URL + "/dashboard?tab=integrations",
		FailureURL:     r.app.URL + "/dashboard/reconnect-failed",
		APIBaseURL:     r.finch.URL,
		ConnectBaseURL: r.finch.URL,
		Base:           r.finch.Client().Transport,
		Now:            r.clk.Now,
		ErrorHandler:   r.errs.handle,
		OnReconnected: func(_ context.Context, rec finchreauth.Reconnection) {
			r.mu.Lock()
			r.reconnected = append(r.reconnected, rec)
			r.mu.Unlock()
		},
		OnMismatch: func(_ context.Context, rec finchreauth.Reconnection) {
			r.mu.Lock()
			r.mismatched = append(r.mismatched, rec)
			r.mu.Unlock()
		},
	}
	r.tr = &finchreauth.Transport{
		Base: r.finch.Client().Transport, Store: r.store, Notifier: r.notes,
		Links: r.connect, Now: r.clk.Now, ErrorHandler: r.errs.handle,
	}
	r.connect.Transport = r.tr
	t.Cleanup(func() { r.tr.Close() })
	if configure != nil {
		configure(r.connect)
	}
	mux.Handle("/finch/callback", r.connect.CallbackHandler())
	mux.Handle("/finch/start", r.connect.StartHandler())
	ctx := context.Background()
	_, err := r.tr.SaveToken(ctx, finchreauth.Token{ConnectionID: r.connID, AccessToken: r.token, IssuedAt: r.clk.Now()})
	require.NoError(t, err)
	return r
}

// call makes an API call with token and returns the status.
func (r *reconnectRig) call(t *testing.T, token string) int {
	t.Helper()
	req := newRequest(t, "GET", r.finch.URL+"/employer/company", token, nil)
	resp, err := r.tr.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	return resp.StatusCode
}

// breakAndNotify breaks the connection and returns the link the notification carried.
func (r *reconnectRig) breakAndNotify(t *testing.T) string {
	t.Helper()
	r.finch.Break(r.connID)
	require.Equal(t, 401, r.call(t, r.token))
	events := r.notes.delivered()
	require.NotEmpty(t, events)
	link := events[len(events)-1].ReconnectURL
	require.NotEmpty(t, link, "the notification carries a reconnect link; errors: %v", r.errs.all())
	return link
}

// browse GETs a URL on the app without following redirects.
func browse(t *testing.T, u string) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	require.NoError(t, err)
	readAll(t, resp)
	return resp
}

// appCallback rewrites a callback URL the fake produced onto the app server.
func (r *reconnectRig) appCallback(t *testing.T, callback string) string {
	t.Helper()
	require.True(t, strings.HasPrefix(callback, r.app.URL+"/finch/callback?"), "callback %q", callback)
	return callback
}

func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Query()
}

func TestReconnectRedirectFlow(t *testing.T) {
	for _, authorize := range []bool{false, true} {
		t.Run(fmt.Sprintf("AuthorizeURLs=%v", authorize), func(t *testing.T) {
			r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = authorize })
			brokenAt := r.clk.Now()
			link := r.breakAndNotify(t)
			assert.NotContains(t, link, r.finch.ClientSecret)

			r.clk.advance(time.Hour)
			callback, err := r.finch.Approve(link)
			require.NoError(t, err)
			assert.NotEmpty(t, query(t, callback).Get("state"), "Connect echoed the state")
			resp := browse(t, r.appCallback(t, callback))
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			loc := resp.Header.Get("Location")
			assert.Equal(t, r.app.URL+"/dashboard?connection_id="+url.QueryEscape(r.connID)+"&tab=integrations", loc)
			assert.NotContains(t, loc, query(t, callback).Get("code"), "the code never reaches a URL we build")
			assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

			tok, err := r.store.Token(context.Background(), r.connID)
			require.NoError(t, err)
			assert.NotEqual(t, r.token, tok.AccessToken, "a new token was saved")
			st, err := r.store.State(context.Background(), r.connID)
			require.NoError(t, err)
			assert.False(t, st.NeedsReauth, "the episode ended")

			r.mu.Lock()
			require.Len(t, r.reconnected, 1)
			rec := r.reconnected[0]
			r.mu.Unlock()
			assert.Equal(t, r.connID, rec.ConnectionID)
			assert.Equal(t, r.connID, rec.Expected)
			assert.Equal(t, "Acme Corp", rec.CustomerName)
			assert.True(t, rec.BrokenSince.Equal(brokenAt), "BrokenSince %v, want %v", rec.BrokenSince, brokenAt)
			assert.False(t, rec.Embedded)
			assert.Equal(t, tok.Fingerprint(), rec.Token.Fingerprint())

			assert.Equal(t, 200, r.call(t, tok.AccessToken), "calls succeed on the new token")
			assert.Equal(t, 401, r.call(t, r.token), "the old token stays dead")
			assert.Len(t, r.notes.delivered(), 1, "and nobody is told again")
			assert.Empty(t, r.errs.all())
		})
	}
}

func TestReconnectEmbeddedFlow(t *testing.T) {
	r := newReconnectRig(t, nil)
	link := r.breakAndNotify(t)
	state := query(t, link).Get("state")
	require.NotEmpty(t, state)
	code := r.finch.IssueCode(r.connID) // a code issued without a redirect_uri

	post := func(body string) (*http.Response, map[string]string) {
		resp, err := http.Post(r.app.URL+"/finch/callback", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp, out
	}
	b, _ := json.Marshal(map[string]string{"code": code, "state": state})
	resp, out := post(string(b))
	require.Equal(t, 200, resp.StatusCode, "answer %v, errors %v", out, r.errs.all())
	assert.Equal(t, r.connID, out["connection_id"])
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	r.mu.Lock()
	require.Len(t, r.reconnected, 1)
	assert.True(t, r.reconnected[0].Embedded)
	r.mu.Unlock()
	tok, err := r.store.Token(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, 200, r.call(t, tok.AccessToken))

	// The same body again: the state is spent.
	resp, out = post(string(b))
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, "invalid_state", out["error"])
}

// TestCallbackRefusals: each bad callback gets a clear answer and changes
// nothing: no token saved, the episode still open.
func TestCallbackRefusals(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	goodState := query(t, link).Get("state")
	other := r.finch.AddConnection(finchtest.Connection{CustomerName: "Other Inc"})
	otherConn, _ := r.finch.ConnectionForToken(other)
	otherLink, err := r.connect.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: otherConn.ID, Products: []string{"company"}}})
	require.NoError(t, err)
	require.NotEmpty(t, query(t, otherLink).Get("state"))
	// A forgery: the genuine state's payload rewritten to name another
	// connection, with the genuine signature.
	p64, mac, _ := strings.Cut(goodState, ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	require.NoError(t, err)
	payload = append(payload[:21:21], otherConn.ID...)
	forged := base64.RawURLEncoding.EncodeToString(payload) + "." + mac
	foreignKeyConnect := &finchreauth.Connect{ClientID: "x", ClientSecret: "y", RedirectURI: "https://evil.example/cb", StateKeys: [][]byte{[]byte("another-key-of-32-bytes-length!!")}, AuthorizeURLs: true, Products: []string{"company"}}
	foreignLink, err := foreignKeyConnect.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: r.connID}})
	require.NoError(t, err)
	foreignState := query(t, foreignLink).Get("state")

	cases := []struct {
		name   string
		query  url.Values
		reason string
	}{
		{"missing code", url.Values{"state": {goodState}}, "cancelled"},
		{"cancelled in Connect", url.Values{"error": {"access_denied"}, "error_description": {"user cancelled"}, "state": {goodState}}, "cancelled"},
		{"missing state", url.Values{"code": {"whatever"}}, "invalid_state"},
		{"forged state", url.Values{"code": {"whatever"}, "state": {forged}}, "invalid_state"},
		{"state signed by another key", url.Values{"code": {"whatever"}, "state": {foreignState}}, "invalid_state"},
		{"garbage state", url.Values{"code": {"whatever"}, "state": {"not.a-state"}}, "invalid_state"},
		{"1 MiB state", url.Values{"code": {"whatever"}, "state": {strings.Repeat("A", 1<<20)}}, "invalid_state"},
		{"oversized code", url.Values{"code": {strings.Repeat("c", 4096)}, "state": {goodState}}, "invalid_request"},
		{"unknown code", url.Values{"code": {"code_that_finch_never_issued"}, "state": {goodState}}, "exchange_failed"},
		{"code for another connection, state for this one", url.Values{"code": {r.finch.IssueCode(otherConn.ID)}, "state": {goodState}}, "exchange_failed"}, // an embedded-flow code: Finch refuses the redirect_uri
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/any/mount/point?"+tc.query.Encode(), nil)
			r.connect.CallbackHandler().ServeHTTP(rec, req)
			require.Equal(t, http.StatusSeeOther, rec.Code)
			loc := rec.Header().Get("Location")
			assert.True(t, strings.HasPrefix(loc, r.app.URL+"/dashboard/reconnect-failed?"), "only the configured URL: %s", loc)
			assert.Equal(t, tc.reason, query(t, loc).Get("reason"))
			assert.NotContains(t, loc, "whatever")
			assert.NotContains(t, loc, "code_that")
			st, err := r.store.State(context.Background(), r.connID)
			require.NoError(t, err)
			assert.True(t, st.NeedsReauth, "nothing changed")
			tok, err := r.store.Token(context.Background(), r.connID)
			require.NoError(t, err)
			assert.Equal(t, finchreauth.Fingerprint(r.token), tok.Fingerprint())
		})
	}

	t.Run("the link still works after all that", func(t *testing.T) {
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		resp := browse(t, callback)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		assert.Equal(t, "", query(t, resp.Header.Get("Location")).Get("reason"), "errors: %v", r.errs.all())

		t.Run("replayed", func(t *testing.T) {
			resp := browse(t, callback)
			assert.Equal(t, "invalid_state", query(t, resp.Header.Get("Location")).Get("reason"))
		})
	})

	t.Run("expired", func(t *testing.T) {
		r2 := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true; c.LinkLifetime = time.Hour })
		link := r2.breakAndNotify(t)
		callback, err := r2.finch.Approve(link)
		require.NoError(t, err)
		r2.clk.advance(time.Hour)
		resp := browse(t, callback)
		assert.Equal(t, "expired", query(t, resp.Header.Get("Location")).Get("reason"))
	})
}

func TestCallbackEmbeddedRefusals(t *testing.T) {
	r := newReconnectRig(t, nil)
	h := r.connect.CallbackHandler()
	cases := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		reason      string
	}{
		{"wrong content type", "POST", "text/plain", `{"code":"x","state":"y"}`, 415, "invalid_request"},
		{"form body", "POST", "application/x-www-form-urlencoded", "code=x&state=y", 415, "invalid_request"},
		{"malformed JSON", "POST", "application/json", `{"code":`, 400, "invalid_request"},
		{"trailing data", "POST", "application/json", `{"code":"x","state":"y"} {}`, 400, "invalid_request"},
		{"oversized body", "POST", "application/json", `{"code":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "invalid_request"},
		{"missing state", "POST", "application/json", `{"code":"x"}`, 400, "invalid_state"},
		{"missing code", "POST", "application/json; charset=utf-8", `{"state":"y"}`, 400, "cancelled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, "/cb", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			h.ServeHTTP(rec, req)
			assert.Equal(t, tc.status, rec.Code)
			var out map[string]string
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
			assert.Equal(t, tc.reason, out["error"])
		})
	}
	for _, method := range []string{"PUT", "DELETE", "HEAD", "PATCH"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/cb?code=x&state=y", nil))
		assert.Equal(t, 405, rec.Code, method)
		assert.Equal(t, "GET, POST", rec.Header().Get("Allow"))
	}
}

func TestCallbackConnectionMismatch(t *testing.T) {
	r := newReconnectRig(t, nil)
	link := r.breakAndNotify(t)
	callback, err := r.finch.ApproveAs(link, "conn_other_account")
	require.NoError(t, err)
	resp := browse(t, callback)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	q := query(t, resp.Header.Get("Location"))
	assert.Equal(t, "connection_mismatch", q.Get("reason"))
	assert.Equal(t, r.connID, q.Get("connection_id"))

	tok, err := r.store.Token(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, finchreauth.Fingerprint(r.token), tok.Fingerprint(), "the old connection's token is not overwritten")
	_, err = r.store.Token(context.Background(), "conn_other_account")
	assert.ErrorIs(t, err, finchreauth.ErrNotFound, "nor is the other account's saved for it")
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.mismatched, 1)
	assert.Equal(t, "conn_other_account", r.mismatched[0].ConnectionID)
	assert.Equal(t, r.connID, r.mismatched[0].Expected)
	assert.NotEmpty(t, r.mismatched[0].Token.AccessToken, "the application gets the token to decide")
	assert.Empty(t, r.reconnected)
}

func TestCallbackCancelThenReconnect(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	callback, err := r.finch.Cancel(link)
	require.NoError(t, err)
	assert.Equal(t, "cancelled", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	callback, err = r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"), "a cancel does not spend the link")
}

func TestLinks(t *testing.T) {
	t.Run("authorize URL", func(t *testing.T) {
		c := &finchreauth.Connect{
			ClientID: "client_abc", ClientSecret: "secret-never-in-a-link",
			RedirectURI: "https://app.example.com/finch/callback?tenant=a b&x=1",
			StateKeys:   [][]byte{stateKey}, AuthorizeURLs: true, Sandbox: "finch",
		}
		link, err := c.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{
			ConnectionID: "conn/1&2", ProviderID: "adp_run", Products: []string{"company", "directory", "pay_statement"},
		}})
		require.NoError(t, err)
		u, err := url.Parse(link)
		require.NoError(t, err)
		assert.Equal(t, "https://connect.tryfinch.com/authorize", u.Scheme+"://"+u.Host+u.Path)
		q := u.Query()
		assert.Equal(t, "client_abc", q.Get("client_id"))
		assert.Equal(t, "https://app.example.com/finch/callback?tenant=a b&x=1", q.Get("redirect_uri"))
		assert.Equal(t, "company directory pay_statement", q.Get("products"))
		assert.Equal(t, "adp_run", q.Get("payroll_provider"))
		assert.Equal(t, "conn/1&2", q.Get("connection_id"))
		assert.Equal(t, "finch", q.Get("sandbox"))
		assert.NotEmpty(t, q.Get("state"))
		assert.NotContains(t, link, "secret")
		assert.NotContains(t, link, " ", "correctly encoded")
	})
	t.Run("configured products win", func(t *testing.T) {
		c := &finchreauth.Connect{ClientID: "c", ClientSecret: "s", RedirectURI: "https://a.example/cb", StateKeys: [][]byte{stateKey}, AuthorizeURLs: true, Products: []string{"directory"}}
		link, err := c.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: "c1", Products: []string{"company"}}})
		require.NoError(t, err)
		assert.Equal(t, "directory", query(t, link).Get("products"))
	})
	t.Run("misconfigured", func(t *testing.T) {
		ev := finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: "c1", Products: []string{"company"}}}
		for name, c := range map[string]*finchreauth.Connect{
			"no client id":     {ClientSecret: "s", StateKeys: [][]byte{stateKey}},
			"no secret":        {ClientID: "c", StateKeys: [][]byte{stateKey}},
			"no state keys":    {ClientID: "c", ClientSecret: "s"},
			"short state key":  {ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{[]byte("short")}},
			"no redirect uri":  {ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{stateKey}, AuthorizeURLs: true},
			"no connection id": {ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{stateKey}},
		} {
			e := ev
			if name == "no connection id" {
				e = finchreauth.Event{}
			}
			_, err := c.ReconnectURL(context.Background(), e)
			assert.ErrorContains(t, err, "finchreauth:", name)
		}
	})
}

// TestLinkMintedOncePerConnection: one Connect session per broken
// connection, however many detections and notifications ask for a link.
func TestLinkMintedOncePerConnection(t *testing.T) {
	r := newReconnectRig(t, nil)
	ev := finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: r.connID}}
	var wg sync.WaitGroup
	links := make([]string, 100)
	for i := range links {
		wg.Go(func() {
			l, err := r.connect.ReconnectURL(context.Background(), ev)
			assert.NoError(t, err)
			links[i] = l
		})
	}
	wg.Wait()
	for _, l := range links {
		assert.Equal(t, links[0], l)
	}
	// Detections through the Transport, notification retries included.
	r.notes.fn = func(context.Context, finchreauth.Event) error { return fmt.Errorf("mail server down") }
	r.finch.Break(r.connID)
	for range 5 {
		r.call(t, r.token)
		r.clk.advance(time.Minute) // past RetryInterval: each is a new detection and a retried notification
	}
	assert.GreaterOrEqual(t, r.notes.n.Load(), int64(5))
	assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))

	// Shortly before it expires, a new one is minted.
	r.clk.advance(30*24*time.Hour - time.Hour)
	l, err := r.connect.ReconnectURL(context.Background(), ev)
	require.NoError(t, err)
	assert.NotEqual(t, links[0], l)
	assert.Equal(t, 2, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
}

func TestFinchCallsRetry(t *testing.T) {
	t.Run("sessions retry 429 and 503", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 429, Header: http.Header{"Retry-After": {"0"}}, Times: 1})
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 503, Times: 1})
		link, err := r.connect.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: r.connID}})
		require.NoError(t, err)
		assert.NotEmpty(t, link)
		assert.Equal(t, 3, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
	})
	t.Run("sessions never retry 4xx", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 400, Times: 1})
		_, err := r.connect.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: r.connID}})
		var apiErr *finchreauth.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
	})
	t.Run("the exchange retries 503 and 429, then succeeds", func(t *testing.T) {
		r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
		link := r.breakAndNotify(t)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		r.finch.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 503, Times: 1})
		r.finch.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 429, Header: http.Header{"Retry-After": {"0"}}, Times: 1})
		resp := browse(t, callback)
		assert.Equal(t, "", query(t, resp.Header.Get("Location")).Get("reason"), "errors: %v", r.errs.all())
		assert.Equal(t, 3, r.finch.Calls("POST", "/auth/token"))
	})
	t.Run("the exchange never retries invalid_grant", func(t *testing.T) {
		r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
		link := r.breakAndNotify(t)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		r.finch.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 400, Body: finchtest.ErrorBody(400, "invalid_grant_error", "", "code expired"), Times: 1})
		resp := browse(t, callback)
		assert.Equal(t, "exchange_failed", query(t, resp.Header.Get("Location")).Get("reason"))
		assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"))
		// The state was released: the employer can go through Connect again
		// with the same link.
		callback, err = r.finch.Approve(link)
		require.NoError(t, err)
		resp = browse(t, callback)
		assert.Equal(t, "", query(t, resp.Header.Get("Location")).Get("reason"))
	})
}

func TestStartHandler(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) {
		c.Authorize = func(req *http.Request) (string, error) {
			if req.Header.Get("X-User") != "owner" {
				return "", fmt.Errorf("user %q may not reconnect", req.Header.Get("X-User"))
			}
			return req.URL.Query().Get("connection_id"), nil
		}
	})
	start := func(user string) *http.Response {
		req, _ := http.NewRequest("GET", r.app.URL+"/finch/start?connection_id="+url.QueryEscape(r.connID), nil)
		req.Header.Set("X-User", user)
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		return resp
	}
	resp := start("owner")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	link := resp.Header.Get("Location")
	assert.True(t, strings.HasPrefix(link, r.finch.URL+"/authorize?"), link)
	assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
	start("owner")
	assert.Equal(t, 2, r.finch.Calls("POST", "/connect/sessions/reauthenticate"), "a fresh link each time")

	// The link works end to end.
	r.finch.Break(r.connID)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))

	assert.Equal(t, http.StatusForbidden, start("intruder").StatusCode)

	r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 400})
	resp = start("owner")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "link_failed", query(t, resp.Header.Get("Location")).Get("reason"))

	t.Run("no Authorize refuses all", func(t *testing.T) {
		c := &finchreauth.Connect{}
		rec := httptest.NewRecorder()
		c.StartHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/start?connection_id=x", nil))
		assert.Equal(t, http.StatusForbidden, rec.Code)
	})
}

func TestCallbackMisconfigured(t *testing.T) {
	c := &finchreauth.Connect{ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{stateKey}, SuccessURL: "https://app.example/ok"}
	rec := httptest.NewRecorder()
	c.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?code=x&state=y", nil))
	assert.Equal(t, http.StatusSeeOther, rec.Code)
	assert.Equal(t, "misconfigured", query(t, rec.Header().Get("Location")).Get("reason"))
	var buf bytes.Buffer
	buf.WriteString(rec.Header().Get("Location"))
	assert.NotContains(t, buf.String(), "code=x")
}

// TestStartHandlerDescribesConnection: with authorize URLs and no configured
// products, the start endpoint asks /introspect (with the stored token) for
// the connection's products and provider; Connect finds Finch through its
// Transport when its own Base and APIBaseURL are unset.
func TestStartHandlerDescribesConnection(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) {
		c.AuthorizeURLs = true
		c.Base, c.APIBaseURL = nil, ""
	})
	r.tr.APIBaseURL = r.finch.URL
	r.connect.Authorize = func(*http.Request) (string, error) { return r.connID, nil }
	r.finch.Break(r.connID)
	rec := httptest.NewRecorder()
	r.connect.StartHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/start", nil))
	require.Equal(t, http.StatusSeeOther, rec.Code, "errors: %v", r.errs.all())
	q := query(t, rec.Header().Get("Location"))
	conn, _ := r.finch.Connection(r.connID)
	assert.Equal(t, strings.Join(conn.Products, " "), q.Get("products"))
	assert.Equal(t, "gusto", q.Get("payroll_provider"))
	assert.Equal(t, r.connID, q.Get("connection_id"))
	assert.Equal(t, 1, r.finch.Calls("GET", "/introspect"))
}

// TestReconnectHookPanicIsContained: the token is saved and the employer
// sent to SuccessURL even when OnReconnected panics; the panic is reported.
func TestReconnectHookPanicIsContained(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) {
		c.AuthorizeURLs = true
		c.OnReconnected = func(context.Context, finchreauth.Reconnection) { panic("crm down") }
	})
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	var he *finchreauth.HookError
	require.Len(t, r.errs.all(), 1)
	require.ErrorAs(t, r.errs.all()[0], &he)
	assert.Equal(t, "reconnected", he.Hook)
	assert.Equal(t, "crm down", he.Panic)
	tok, err := r.store.Token(context.Background(), r.connID)
	require.NoError(t, err)
	assert.NotEqual(t, finchreauth.Fingerprint(r.token), tok.Fingerprint())
}

// TestCallbackErrorsUnwrap: what the ErrorHandler gets for a failed callback
// names the reason and unwraps to the cause.
func TestCallbackErrorsUnwrap(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
	rec := httptest.NewRecorder()
	r.connect.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?code=x&state=not-a-state", nil))
	require.Len(t, r.errs.all(), 1)
	err := r.errs.all()[0]
	assert.ErrorIs(t, err, finchreauth.ErrInvalidState)
	assert.Contains(t, err.Error(), "invalid_state")
	assert.NotContains(t, err.Error(), "not-a-state")
}

// TestCallbackSameCodeTwice: a code that was exchanged once, brought back
// with a fresh, valid state, is refused by Finch (single use): exchange_failed,
// and the token saved by the first use stays.
func TestCallbackSameCodeTwice(t *testing.T) {
	r := newReconnectRig(t, func(c *finchreauth.Connect) { c.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	saved, err := r.store.Token(context.Background(), r.connID)
	require.NoError(t, err)

	fresh, err := r.connect.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: r.connID, Products: []string{"company"}}})
	require.NoError(t, err)
	reused := url.Values{"code": {query(t, callback).Get("code")}, "state": {query(t, fresh).Get("state")}}
	resp := browse(t, r.app.URL+"/finch/callback?"+reused.Encode())
	assert.Equal(t, "exchange_failed", query(t, resp.Header.Get("Location")).Get("reason"))
	now, err := r.store.Token(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Equal(t, saved.Fingerprint(), now.Fingerprint())
}
