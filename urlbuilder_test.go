package finchreauth_test

import (
	"context"
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

func TestLinks(t *testing.T) {
	// A connection whose token the Store holds: its products and provider
	// come from /introspect.
	ff := newFakeFinch()
	ff.add("tok", "conn/1&2")
	ff.conns["tok"] = introspection{ConnectionID: "conn/1&2", ProviderID: "adp_run", Products: []string{"company", "directory", "pay_statement"}}
	newTransport := func(c *finchreauth.Connect) *finchreauth.Transport {
		tr := &finchreauth.Transport{Base: ff, Connect: c}
		require.NoError(t, tr.SaveToken(context.Background(), "conn/1&2", "tok"))
		return tr
	}
	t.Run("authorize URL", func(t *testing.T) {
		tr := newTransport(&finchreauth.Connect{
			ClientID: "client_abc", ClientSecret: "secret-never-in-a-link",
			RedirectURI: "https://app.example.com/finch/callback?tenant=a b&x=1",
			StateKeys:   [][]byte{stateKey}, AuthorizeURLs: true, Sandbox: "finch",
		})
		link, err := tr.ReconnectURL(context.Background(), "conn/1&2")
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
		again, err := tr.ReconnectURL(context.Background(), "conn/1&2")
		require.NoError(t, err)
		assert.Equal(t, link, again, "the link is kept and handed out again")
		assert.EqualValues(t, 1, ff.count("/introspect"), "and the connection described once")
	})
	t.Run("configured products win", func(t *testing.T) {
		tr := newTransport(&finchreauth.Connect{ClientID: "c", ClientSecret: "s", RedirectURI: "https://a.example/cb", StateKeys: [][]byte{stateKey}, AuthorizeURLs: true, Products: []string{"directory"}})
		link, err := tr.ReconnectURL(context.Background(), "conn/1&2")
		require.NoError(t, err)
		assert.Equal(t, "directory", query(t, link).Get("products"))
	})
}

func TestConnectValidate(t *testing.T) {
	good := finchreauth.Connect{ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{stateKey}}
	require.NoError(t, good.Validate())
	for name, change := range map[string]func(c *finchreauth.Connect){
		"no client id":                func(c *finchreauth.Connect) { c.ClientID = "" },
		"no secret":                   func(c *finchreauth.Connect) { c.ClientSecret = "" },
		"no state keys":               func(c *finchreauth.Connect) { c.StateKeys = nil },
		"short state key":             func(c *finchreauth.Connect) { c.StateKeys = [][]byte{[]byte("short")} },
		"authorize URLs, no redirect": func(c *finchreauth.Connect) { c.AuthorizeURLs = true },
		"relative redirect":           func(c *finchreauth.Connect) { c.RedirectURI = "/cb" },
		"unknown sandbox":             func(c *finchreauth.Connect) { c.Sandbox = "yes" },
		"negative lifetime":           func(c *finchreauth.Connect) { c.LinkLifetime = -time.Hour },
		"connect base URL not a URL":  func(c *finchreauth.Connect) { c.ConnectBaseURL = "connect.tryfinch.com" },
		"secret and keys stay unsaid": func(c *finchreauth.Connect) { c.ClientSecret, c.StateKeys = "", [][]byte{[]byte("0123")} },
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			change(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "finchreauth: "), err.Error())
			assert.NotContains(t, err.Error(), "0123")
		})
	}
}

// TestMisconfiguredConnectHoldsTheNotification: a Connect that fails
// Validate makes no link, so the notification does not go out (a link is
// owed); it is reported, and it goes out once the configuration is right.
func TestMisconfiguredConnectHoldsTheNotification(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.tr.RetryInterval = time.Minute })
	r.connect.StateKeys = [][]byte{[]byte("short")}
	r.finch.Break(r.connID)
	require.Equal(t, 401, r.call(t, r.token))
	assert.Zero(t, r.notes.n.Load(), "no notification without a working link")
	var linkErrs int
	for _, err := range r.errs.all() {
		if he, ok := err.(*finchreauth.HookError); ok && he.Hook == "link" {
			linkErrs++
			assert.ErrorContains(t, he, "StateKeys")
		}
	}
	assert.Equal(t, 1, linkErrs)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Zero(t, st.Notifications)

	r.connect.StateKeys = [][]byte{stateKey} // fixed (in real life: a deploy)
	r.clk.advance(time.Minute)
	require.Equal(t, 401, r.call(t, r.token))
	require.Len(t, r.notes.delivered(), 1)
	assert.NotEmpty(t, r.notes.delivered()[0].ReconnectURL)
}

// TestLinkMintedOncePerConnection: one Connect session per broken
// connection, however many detections, notifications and dashboard clicks
// ask for a link.
func TestLinkMintedOncePerConnection(t *testing.T) {
	r := newReconnectRig(t, nil)
	var wg sync.WaitGroup
	links := make([]string, 100)
	for i := range links {
		wg.Go(func() {
			l, err := r.tr.ReconnectURL(context.Background(), r.connID)
			assert.NoError(t, err)
			links[i] = l
		})
	}
	wg.Wait()
	for _, l := range links {
		assert.Equal(t, links[0], l)
	}
	assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
	// Detections through the Transport, notification retries included.
	r.notes.fn = func(context.Context, finchreauth.Event) error { return fmt.Errorf("mail server down") }
	r.finch.Break(r.connID)
	for range 5 {
		r.call(t, r.token)
		r.clk.advance(5 * time.Minute) // past the latch and the failures' backoff: each is a new detection and a retried notification
	}
	assert.GreaterOrEqual(t, r.notes.n.Load(), int64(5))
	for _, e := range r.notes.delivered() {
		assert.Equal(t, links[0], e.ReconnectURL)
	}
	assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))

	// Shortly before it expires, a new one is minted.
	r.clk.advance(30*24*time.Hour - time.Hour)
	l, err := r.tr.ReconnectURL(context.Background(), r.connID)
	require.NoError(t, err)
	assert.NotEqual(t, links[0], l)
	assert.Equal(t, 2, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
}

func TestSessionCallsRetry(t *testing.T) {
	t.Run("sessions retry 429 and 503", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 429, Header: http.Header{"Retry-After": {"0"}}, Times: 1})
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 503, Times: 1})
		link, err := r.tr.ReconnectURL(context.Background(), r.connID)
		require.NoError(t, err)
		assert.NotEmpty(t, link)
		assert.Equal(t, 3, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
	})
	t.Run("sessions never retry 4xx, but try once without the unconfirmed state", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 400, Times: 2})
		_, err := r.tr.ReconnectURL(context.Background(), r.connID)
		var apiErr *finchreauth.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, 2, r.finch.Calls("POST", "/connect/sessions/reauthenticate"))
		r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 401, Times: 1})
		_, err = r.tr.ReconnectURL(context.Background(), r.connID)
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 3, r.finch.Calls("POST", "/connect/sessions/reauthenticate"), "a 401 is not about fields")
	})
}

func TestStartHandler(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.authorize = func(req *http.Request) (string, error) {
			switch req.Header.Get("X-User") {
			case "owner":
				return req.URL.Query().Get("connection_id"), nil
			case "panicker":
				panic("session store down")
			}
			return "", fmt.Errorf("user %q may not reconnect", req.Header.Get("X-User"))
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
	assert.Equal(t, link, start("owner").Header.Get("Location"), "the same link again")
	assert.Equal(t, 1, r.finch.Calls("POST", "/connect/sessions/reauthenticate"), "no new session per click")
	assert.Zero(t, r.finch.Calls("GET", "/introspect"), "and no /introspect")

	// The link works end to end.
	r.finch.Break(r.connID)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))

	assert.Equal(t, http.StatusForbidden, start("intruder").StatusCode)
	assert.Equal(t, http.StatusForbidden, start("panicker").StatusCode, "a panicking authorize is contained")

	r.finch.InjectFault(finchtest.Fault{Path: "/connect/sessions/reauthenticate", Status: 400})
	resp = start("owner")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "link_failed", query(t, resp.Header.Get("Location")).Get("reason"))

	t.Run("no authorize refuses all", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r.tr.StartHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/start?connection_id=x", nil))
		assert.Equal(t, http.StatusForbidden, rec.Code)
	})
}

// TestStartHandlerDescribesConnection: with authorize URLs and no configured
// products, the start endpoint asks /introspect (with the stored token) for
// the connection's products and provider, once.
func TestStartHandlerDescribesConnection(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.connect.AuthorizeURLs = true
		r.authorize = func(*http.Request) (string, error) { return r.connID, nil }
	})
	r.finch.Break(r.connID)
	for range 2 {
		rec := httptest.NewRecorder()
		r.tr.StartHandler(r.authorize).ServeHTTP(rec, httptest.NewRequest("GET", "/start", nil))
		require.Equal(t, http.StatusSeeOther, rec.Code, "errors: %v", r.errs.all())
		q := query(t, rec.Header().Get("Location"))
		conn, _ := r.finch.Connection(r.connID)
		assert.Equal(t, strings.Join(conn.Products, " "), q.Get("products"))
		assert.Equal(t, "gusto", q.Get("payroll_provider"))
		assert.Equal(t, r.connID, q.Get("connection_id"))
	}
	assert.Equal(t, 1, r.finch.Calls("GET", "/introspect"))
}

// TestServeForAConnectionTheAppResolved (issue 18 #4): a router that keeps
// its path parameters to itself (gin, echo) resolves the connection and
// hands it over; the endpoints answer as StartHandler and StatusHandler do,
// with the same headers, and no copy of them lives in the application.
func TestServeForAConnectionTheAppResolved(t *testing.T) {
	r := newReconnectRig(t, nil)
	r.finch.Break(r.connID)
	serve := func(method string, h func(http.ResponseWriter, *http.Request, string)) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(method, "/tenants/acme/finch/x", nil), r.connID)
		return rec
	}
	start := serve("POST", r.tr.ServeReconnect)
	require.Equal(t, http.StatusSeeOther, start.Code, "errors: %v", r.errs.all())
	assert.True(t, strings.HasPrefix(start.Header().Get("Location"), r.finch.URL+"/authorize?"))
	status := serve("GET", r.tr.ServeStatus)
	require.Equal(t, http.StatusOK, status.Code)
	var st finchreauth.Status
	require.NoError(t, json.Unmarshal(status.Body.Bytes(), &st))
	assert.Equal(t, r.connID, st.ConnectionID)
	for _, rec := range []*httptest.ResponseRecorder{start, status} {
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
	}
	assert.Equal(t, http.StatusMethodNotAllowed, serve("DELETE", r.tr.ServeReconnect).Code)
	assert.Equal(t, http.StatusMethodNotAllowed, serve("POST", r.tr.ServeStatus).Code)
}
