package finchreauth_test

import (
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

func TestReconnectRedirectFlow(t *testing.T) {
	for _, authorize := range []bool{false, true} {
		t.Run(fmt.Sprintf("AuthorizeURLs=%v", authorize), func(t *testing.T) {
			r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = authorize })
			brokenAt := r.clk.Now()
			link := r.breakAndNotify(t)
			assert.NotContains(t, link, r.finch.ClientSecret)

			r.clk.advance(time.Hour)
			callback, err := r.finch.Approve(link)
			require.NoError(t, err)
			assert.NotEmpty(t, query(t, callback).Get("state"), "Connect echoed the state")
			resp := browse(t, callback)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			loc := resp.Header.Get("Location")
			assert.Equal(t, r.app.URL+"/dashboard?connection_id="+url.QueryEscape(r.connID)+"&tab=integrations", loc)
			assert.NotContains(t, loc, query(t, callback).Get("code"), "the code never reaches a URL we build")
			assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

			tok := r.savedToken(t)
			assert.NotEqual(t, finchreauth.Token(r.token), tok, "a new token was saved")
			assert.False(t, r.needsReauth(t), "the episode ended")

			assert.Equal(t, 200, r.call(t, string(tok)), "calls succeed on the new token")
			assert.Equal(t, 401, r.call(t, r.token), "the old token stays dead")
			assert.Len(t, r.notes.delivered(), 1, "and nobody is told again")
			reconnected, unsaved := r.hooks()
			assert.Empty(t, unsaved)
			require.Len(t, reconnected, 1)
			rec := reconnected[0]
			assert.Equal(t, r.connID, rec.ConnectionID)
			assert.Equal(t, r.connID, rec.Expected)
			assert.Equal(t, "Acme Corp", rec.CustomerName)
			assert.True(t, rec.BrokenSince.Equal(brokenAt), "BrokenSince %v, want %v", rec.BrokenSince, brokenAt)
			assert.False(t, rec.Embedded)
			assert.Equal(t, tok, rec.Token)
			assert.Equal(t, "callback", rec.Via)
			assert.Equal(t, time.Hour, rec.Downtime())
			assert.Equal(t, 1, rec.Notifications)
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
	assert.Equal(t, 200, r.call(t, string(r.savedToken(t))))

	// The same body again: the state is spent.
	resp, out = post(string(b))
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, "invalid_state", out["error"])
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.True(t, reconnected[0].Embedded)
}

// TestCallbackRefusals: each bad callback gets a clear answer and changes
// nothing: no token saved, the episode still open.
func TestCallbackRefusals(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	goodState := query(t, link).Get("state")
	other := r.finch.AddConnection(finchtest.Connection{CustomerName: "Other Inc"})
	otherConn, _ := r.finch.ConnectionForToken(other)
	// A forgery: the genuine state's payload rewritten to name another
	// connection, with the genuine signature.
	p64, mac, _ := strings.Cut(goodState, ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	require.NoError(t, err)
	payload = append(payload[:21:21], otherConn.ID...)
	forged := base64.RawURLEncoding.EncodeToString(payload) + "." + mac
	foreign := &finchreauth.Transport{Connect: &finchreauth.Connect{ClientID: "x", ClientSecret: "y", RedirectURI: "https://evil.example/cb", StateKeys: [][]byte{[]byte("another-key-of-32-bytes-length!!")}, AuthorizeURLs: true, Products: []string{"company"}}}
	foreignLink, err := foreign.ReconnectURL(context.Background(), r.connID)
	require.NoError(t, err)
	foreignState := query(t, foreignLink).Get("state")

	cases := []struct {
		name   string
		query  url.Values
		reason string
	}{
		{"missing code", url.Values{"state": {goodState}}, "cancelled"},
		{"cancelled in Connect", url.Values{"error": {"access_denied"}, "error_description": {"user cancelled"}, "state": {goodState}}, "cancelled"},
		{"missing state (and links that all carry one)", url.Values{"code": {"whatever"}}, "invalid_state"},
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
			r.tr.CallbackHandler().ServeHTTP(rec, req)
			require.Equal(t, http.StatusSeeOther, rec.Code)
			loc := rec.Header().Get("Location")
			assert.True(t, strings.HasPrefix(loc, r.app.URL+"/dashboard/reconnect-failed?"), "only the configured URL: %s", loc)
			assert.Equal(t, tc.reason, query(t, loc).Get("reason"))
			assert.NotContains(t, loc, "whatever")
			assert.NotContains(t, loc, "code_that")
			assert.True(t, r.needsReauth(t), "nothing changed")
			assert.Equal(t, finchreauth.Token(r.token), r.savedToken(t))
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
		r2 := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true; r.connect.LinkLifetime = time.Hour })
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
	h := r.tr.CallbackHandler()
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
		{"missing state, and no connection awaits a reconnect", "POST", "application/json", `{"code":"x"}`, 400, "invalid_state"},
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

	assert.Equal(t, finchreauth.Token(r.token), r.savedToken(t), "the old connection's token is not overwritten")
	_, err = r.tr.Token(context.Background(), "conn_other_account")
	assert.ErrorIs(t, err, finchreauth.ErrNotFound, "nor is the other account's saved for it")
	reconnected, unsaved := r.hooks()
	require.Len(t, unsaved, 1)
	assert.Equal(t, "conn_other_account", unsaved[0].ConnectionID)
	assert.Equal(t, r.connID, unsaved[0].Expected)
	assert.Equal(t, finchreauth.ReasonConnectionMismatch, unsaved[0].Reason)
	assert.NotEmpty(t, unsaved[0].Token, "the application gets the token to decide")
	assert.Empty(t, reconnected)

	// The other account is a connection the Store knows: Finch's exchange
	// made its saved token stop working, and its new one works. It is
	// saved for it: not left broken with a working token lying in a hook
	// (where it used to go). The link's connection is still broken.
	t.Run("another account the Store knows", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		y := r.finch.AddConnection(finchtest.Connection{CustomerName: "Other Co"})
		yConn, _ := r.finch.ConnectionForToken(y)
		require.NoError(t, r.tr.SaveToken(context.Background(), yConn.ID, finchreauth.Token(y)))
		link := r.breakAndNotify(t)
		callback, err := r.finch.ApproveAs(link, yConn.ID)
		require.NoError(t, err)
		q := query(t, browse(t, callback).Header.Get("Location"))
		assert.Equal(t, "connection_mismatch", q.Get("reason"))
		saved, err := r.tr.Token(context.Background(), yConn.ID)
		require.NoError(t, err)
		assert.NotEqual(t, finchreauth.Token(y), saved, "Y's new token is saved for Y")
		assert.Equal(t, 200, r.call(t, string(saved)))
		assert.True(t, r.needsReauth(t), "X still needs its employer")
		_, unsaved := r.hooks()
		assert.Empty(t, unsaved)
	})
}

func TestCallbackCancelThenReconnect(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	callback, err := r.finch.Cancel(link)
	require.NoError(t, err)
	assert.Equal(t, "cancelled", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	callback, err = r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"), "a cancel does not spend the link")
}

func TestFinchCallsRetry(t *testing.T) {
	t.Run("the exchange retries 503 and 429, then succeeds", func(t *testing.T) {
		r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
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
		r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
		link := r.breakAndNotify(t)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		r.finch.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 400, Body: finchtest.ErrorBody(400, "invalid_grant_error", "", "code expired"), Times: 1})
		resp := browse(t, callback)
		assert.Equal(t, "exchange_failed", query(t, resp.Header.Get("Location")).Get("reason"))
		assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"))
		// The state is not spent by a failed exchange: the employer can go
		// through Connect again with the same link.
		callback, err = r.finch.Approve(link)
		require.NoError(t, err)
		resp = browse(t, callback)
		assert.Equal(t, "", query(t, resp.Header.Get("Location")).Get("reason"))
	})
}

// TestMisconfiguredAtStart (issue 18 #6): a Transport that cannot work is
// refused when the application starts: Run returns Validate's error at
// once, and the handlers' constructors panic, as http.ServeMux does on a
// bad pattern. Before, the callback answered "misconfigured" to the
// employer who came back from Connect, a Transport whose Connect was
// invalid opened episodes whose notifications never went out, and a
// webhook handler without a usable secret answered 500 to every delivery,
// so that Finch retried for hours.
func TestMisconfiguredAtStart(t *testing.T) {
	valid := func() *finchreauth.Connect {
		return &finchreauth.Connect{ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}}
	}
	for name, tr := range map[string]*finchreauth.Transport{
		"no Connect":           {},
		"Connect no StateKeys": {Connect: &finchreauth.Connect{ClientID: "c", ClientSecret: "s", SuccessURL: "https://app.example/ok"}},
		"bad APIBaseURL":       {Connect: valid(), APIBaseURL: "api.tryfinch.com"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Panics(t, func() { tr.CallbackHandler() })
			assert.Panics(t, func() { tr.StartHandler(func(*http.Request) (string, error) { return "c", nil }) })
			if tr.Connect != nil {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				err := tr.Run(ctx) // returns at once
				require.Error(t, err)
				assert.Equal(t, tr.Validate(), err)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		tr := &finchreauth.Transport{Connect: valid()}
		require.NoError(t, tr.Validate())
		assert.NotPanics(t, func() { tr.CallbackHandler() })
		links := &finchreauth.Transport{Links: finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) { return "https://x", nil })}
		assert.NotPanics(t, func() { links.StartHandler(func(*http.Request) (string, error) { return "c", nil }) }, "a LinkBuilder makes the links")
	})
	t.Run("webhook secrets", func(t *testing.T) {
		tr := &finchreauth.Transport{}
		assert.PanicsWithValue(t, "finchreauth: WebhookHandler has no secret", func() { tr.WebhookHandler() })
		assert.PanicsWithValue(t, "finchreauth: a webhook secret is not base64", func() { tr.WebhookHandler("not base64!") })
		assert.PanicsWithValue(t, "finchreauth: a webhook secret is empty", func() { tr.WebhookHandler("") })
	})
	t.Run("the panic names no secret", func(t *testing.T) {
		c := valid()
		c.StateKeys = [][]byte{[]byte("short-SECRET")}
		tr := &finchreauth.Transport{Connect: c}
		defer func() {
			v := fmt.Sprint(recover())
			assert.NotContains(t, v, "SECRET")
			assert.Contains(t, v, "CallbackHandler")
		}()
		tr.CallbackHandler()
	})
}

// TestReconnectHookPanicIsContained: the token is saved and the employer
// sent to SuccessURL even when OnReconnected panics; the panic is reported.
func TestReconnectHookPanicIsContained(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.connect.AuthorizeURLs = true
		r.tr.OnReconnected = func(context.Context, finchreauth.Reconnection) { panic("crm down") }
	})
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	r.hooks()
	var he *finchreauth.HookError
	require.Len(t, r.errs.all(), 1)
	require.ErrorAs(t, r.errs.all()[0], &he)
	assert.Equal(t, "reconnected", he.Hook)
	assert.Equal(t, "crm down", he.Panic)
	assert.NotEqual(t, finchreauth.Token(r.token), r.savedToken(t))
}

// TestCallbackErrorsUnwrap: what the ErrorHandler gets for a failed callback
// matches its Reason and unwraps to the cause.
func TestCallbackErrorsUnwrap(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	rec := httptest.NewRecorder()
	r.tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?code=x&state=not-a-state", nil))
	require.Len(t, r.errs.all(), 1)
	err := r.errs.all()[0]
	assert.ErrorIs(t, err, finchreauth.ReasonInvalidState)
	assert.NotErrorIs(t, err, finchreauth.ReasonExpired)
	assert.Contains(t, err.Error(), "invalid_state")
	assert.NotContains(t, err.Error(), "not-a-state")
}

// TestCallbackSameCodeTwice: a code that was exchanged once, brought back
// with a fresh, valid state, is refused by Finch (single use): exchange_failed,
// and the token saved by the first use stays.
func TestCallbackSameCodeTwice(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	saved := r.savedToken(t)

	fresh, err := r.tr.ReconnectURL(context.Background(), r.connID)
	require.NoError(t, err)
	require.NotEqual(t, query(t, link).Get("state"), query(t, fresh).Get("state"))
	reused := url.Values{"code": {query(t, callback).Get("code")}, "state": {query(t, fresh).Get("state")}}
	resp := browse(t, r.app.URL+"/finch/callback?"+reused.Encode())
	assert.Equal(t, "exchange_failed", query(t, resp.Header.Get("Location")).Get("reason"))
	assert.Equal(t, saved, r.savedToken(t))
}

// The state is used for at most 3 exchanges: one genuine state and garbage
// codes cannot make unlimited calls to /auth/token with the client secret.
func TestCallbackAttemptsPerState(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	state := query(t, link).Get("state")
	for i := range 5 {
		resp := browse(t, r.app.URL+"/finch/callback?"+url.Values{"code": {fmt.Sprint("garbage_", i)}, "state": {state}}.Encode())
		want := "exchange_failed"
		if i >= 3 {
			want = "invalid_state"
		}
		assert.Equal(t, want, query(t, resp.Header.Get("Location")).Get("reason"), "attempt %d", i+1)
	}
	assert.Equal(t, 3, r.finch.Calls("POST", "/auth/token"), "3 exchanges, then the state is spent")
	assert.True(t, r.needsReauth(t))
}

// TestStateSingleUseAcrossReplicas: a link's state completes at most one
// reconnect in all. Another replica (or this one after a restart: a new
// Transport on the same Store) refuses it, even with a fresh code.
func TestStateSingleUseAcrossReplicas(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	first, err := r.finch.Approve(link)
	require.NoError(t, err)
	again, err := r.finch.Approve(link) // the same link again: same state, fresh code
	require.NoError(t, err)
	require.Equal(t, query(t, first).Get("state"), query(t, again).Get("state"))
	require.NotEqual(t, query(t, first).Get("code"), query(t, again).Get("code"))

	assert.Equal(t, "", serveCallback(t, r.tr, first).Get("reason"))
	saved := r.savedToken(t)
	for _, replica := range []string{"another replica", "the same one restarted"} {
		other := &finchreauth.Transport{Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store, Connect: r.connect, Now: r.clk.Now}
		assert.Equal(t, "invalid_state", serveCallback(t, other, again).Get("reason"), replica)
		other.Close()
	}
	assert.Equal(t, saved, r.savedToken(t))
	assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"), "the spent state never reached Finch again")
}

// TestSessionStateReadings: it is not settled which state Finch Connect
// sends back for a reauthentication session: the one in the session
// request, the one on its connect_url, or none. The library sends it both
// ways, and a default reconnect works under each reading.
func TestSessionStateReadings(t *testing.T) {
	for _, src := range []finchtest.SessionStateSource{finchtest.StateFromSessionBody, finchtest.StateFromConnectURL, finchtest.StateOmitted} {
		t.Run(src.String(), func(t *testing.T) {
			r := newReconnectRig(t, func(r *reconnectRig) { r.finch.SetSessionStateSource(src) })
			link := r.breakAndNotify(t)
			callback, err := r.finch.Approve(link)
			require.NoError(t, err)
			if src == finchtest.StateOmitted {
				require.Empty(t, query(t, callback).Get("state"))
			} else {
				require.NotEmpty(t, query(t, callback).Get("state"))
			}
			q := query(t, browse(t, callback).Header.Get("Location"))
			assert.Equal(t, "", q.Get("reason"), "errors: %v", r.errs.all())
			assert.False(t, r.needsReauth(t))
			assert.Equal(t, 200, r.call(t, string(r.savedToken(t))))
		})
	}
}

// TestStatelessCallbackRefusals: a code that comes back without a state is
// accepted only for a connection with an open episode and a link of this
// application; otherwise nothing is saved (the token goes to OnUnsaved). It
// costs no call to Finch while no connection awaits a reconnect, and its
// failed exchanges are bounded.
func TestStatelessCallbackRefusals(t *testing.T) {
	post := func(t *testing.T, r *reconnectRig, code string) (int, string) {
		t.Helper()
		resp, err := http.Post(r.app.URL+"/finch/callback", "application/json", strings.NewReader(`{"code":"`+code+`"}`))
		require.NoError(t, err)
		var out map[string]string
		require.NoError(t, json.Unmarshal(readAll(t, resp), &out))
		return resp.StatusCode, out["error"]
	}
	t.Run("no connection awaits a reconnect", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		status, reason := post(t, r, r.finch.IssueCode(r.connID))
		assert.Equal(t, 400, status)
		assert.Equal(t, "invalid_state", reason)
		assert.Zero(t, r.finch.Calls("POST", "/auth/token"), "no call to Finch")
	})
	t.Run("the code is for a connection with no open episode", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.breakAndNotify(t) // an episode (with a link) is open, for r.connID
		other := r.finch.AddConnection(finchtest.Connection{CustomerName: "Other"})
		otherConn, _ := r.finch.ConnectionForToken(other)
		status, reason := post(t, r, r.finch.IssueCode(otherConn.ID))
		assert.Equal(t, 409, status)
		assert.Equal(t, "invalid_state", reason)
		_, err := r.tr.Token(context.Background(), otherConn.ID)
		assert.ErrorIs(t, err, finchreauth.ErrNotFound, "nothing saved")
		assert.True(t, r.needsReauth(t))
		_, unsaved := r.hooks()
		require.Len(t, unsaved, 1)
		assert.Equal(t, otherConn.ID, unsaved[0].ConnectionID)
		assert.Equal(t, finchreauth.ReasonInvalidState, unsaved[0].Reason)
	})
	t.Run("the code is for the broken connection", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.breakAndNotify(t)
		status, reason := post(t, r, r.finch.IssueCode(r.connID))
		assert.Equal(t, 200, status, reason)
		assert.False(t, r.needsReauth(t))
		status, reason = post(t, r, r.finch.IssueCode(r.connID))
		assert.Equal(t, 400, status, "the episode is over: a second stateless code is refused")
		assert.Equal(t, "invalid_state", reason)
		assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"), "without spending it")
	})
	t.Run("failed exchanges without a state are bounded", func(t *testing.T) {
		r := newReconnectRig(t, nil)
		r.breakAndNotify(t)
		for i := range 12 {
			status, reason := post(t, r, fmt.Sprint("garbage_", i))
			if i < 10 {
				assert.Equal(t, "exchange_failed", reason)
			} else {
				assert.Equal(t, 429, status)
				assert.Equal(t, "unavailable", reason)
			}
		}
		assert.Equal(t, 10, r.finch.Calls("POST", "/auth/token"))
		r.clk.advance(time.Minute)
		_, reason := post(t, r, r.finch.IssueCode(r.connID))
		assert.Equal(t, "", reason, "the budget comes back")
	})
}

// TestSecondTabToldTheTruth: one attempt per link state at a time (two
// attempts at once could each obtain a token, and only the later would be
// alive), and a second tab that comes back with the same link while the
// first completes is told the truth: it waits for the first, and the
// reconnect succeeded. (It was told "unavailable: nothing was spent, try
// again" while the reconnect succeeded.) A state used again afterwards is
// spent.
func TestSecondTabToldTheTruth(t *testing.T) {
	hold := &holdExchange{release: make(chan struct{}), held: make(chan struct{})}
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.connect.AuthorizeURLs = true
		hold.base = r.finch.Client().Transport
		r.tr.Base = hold
	})
	link := r.breakAndNotify(t)
	first, err := r.finch.Approve(link)
	require.NoError(t, err)
	second, err := r.finch.Approve(link)
	require.NoError(t, err)
	hold.code = query(t, first).Get("code")
	done := make(chan url.Values)
	go func() { done <- serveCallback(t, r.tr, first) }()
	<-hold.held
	secondDone := make(chan url.Values)
	go func() { secondDone <- serveCallback(t, r.tr, second) }()
	select {
	case q := <-secondDone:
		t.Fatalf("the second tab was answered (%v) while the first was still exchanging", q)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold.release)
	assert.Equal(t, "", (<-done).Get("reason"), "the first reconnects")
	q := <-secondDone
	assert.Equal(t, "", q.Get("reason"), "the second is told the truth: reconnected")
	assert.Equal(t, r.connID, q.Get("connection_id"))
	assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"), "the second code was never spent")
	assert.Equal(t, "invalid_state", serveCallback(t, r.tr, second).Get("reason"), "once it reconnected, the state is spent")
	assert.Equal(t, 200, r.call(t, string(r.savedToken(t))))
}

// TestCloseLetsTheCallbackFinish: Close (a rolling deploy) while a
// callback's code exchange is in flight lets the exchange and the save
// finish: the token is saved and the browser is told the reconnect
// succeeded. It used to cancel them after Finch issued the token: the
// token was neither saved nor given to OnUnsaved, and the browser was told
// exchange_failed.
func TestCloseLetsTheCallbackFinish(t *testing.T) {
	hold := &holdExchange{release: make(chan struct{}), held: make(chan struct{})}
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.connect.AuthorizeURLs = true
		hold.base = r.finch.Client().Transport
		r.tr.Base = hold
	})
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	hold.code = query(t, callback).Get("code")
	answered := make(chan url.Values)
	go func() { answered <- serveCallback(t, r.tr, callback) }()
	<-hold.held // Finch issued the token; its answer is on the way
	closed := make(chan error)
	go func() { closed <- r.tr.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a callback was spending its code", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(hold.release)
	q := <-answered
	require.NoError(t, <-closed)
	assert.Equal(t, "", q.Get("reason"), "the browser is told the truth: reconnected")
	assert.NotEqual(t, finchreauth.Token(r.token), r.savedToken(t), "the new token is saved")
	assert.False(t, r.needsReauth(t))
	_, unsaved := r.hooks()
	assert.Empty(t, unsaved)

	t.Run("a callback that has not claimed its state when Close comes is turned away, nothing spent", func(t *testing.T) {
		r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
		link := r.breakAndNotify(t)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		r.tr.Close()
		assert.Equal(t, "unavailable", serveCallback(t, r.tr, callback).Get("reason"))
		assert.Zero(t, r.finch.Calls("POST", "/auth/token"))
	})
}

// TestCallbackAuthorize: Connect.Authorize binds the reconnect to the
// signed-in person: a browser signed in as another tenant cannot complete
// the link's reconnect (forbidden, nothing spent, the link still good for
// the right person), and a panicking Authorize refuses too. It used to
// complete it, and OnReconnected ran with the other tenant's request
// context.
func TestCallbackAuthorize(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.connect.AuthorizeURLs = true
		r.connect.Authorize = func(req *http.Request, conn string) error {
			switch req.Header.Get("X-Tenant") {
			case "owner":
				return nil
			case "panicker":
				panic("session store down")
			}
			return fmt.Errorf("tenant %q may not reconnect %s", req.Header.Get("X-Tenant"), conn)
		}
	})
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	as := func(tenant string) url.Values {
		req, _ := http.NewRequest("GET", callback, nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		return query(t, resp.Header.Get("Location"))
	}
	for _, tenant := range []string{"tenant-b", "panicker"} {
		assert.Equal(t, "forbidden", as(tenant).Get("reason"), tenant)
	}
	assert.Zero(t, r.finch.Calls("POST", "/auth/token"), "nothing spent")
	assert.True(t, r.needsReauth(t))
	assert.Equal(t, "", as("owner").Get("reason"), "the right person, with the same link")
	assert.False(t, r.needsReauth(t))
}

// TestStatelessBudgetUnderConcurrency: 120 concurrent state-less callbacks
// with garbage codes make at most 10 calls to /auth/token in the minute, as
// SECURITY.md promises. The budget was checked before the exchange and
// charged after it: 99 calls went out.
func TestStatelessBudgetUnderConcurrency(t *testing.T) {
	r := newReconnectRig(t, nil)
	r.breakAndNotify(t) // an episode with a link is open: state-less codes are considered
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Go(func() {
			resp, err := http.Post(r.app.URL+"/finch/callback", "application/json", strings.NewReader(fmt.Sprintf(`{"code":"garbage-%d"}`, i)))
			if err == nil {
				readAll(t, resp)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, r.finch.Calls("POST", "/auth/token"), 10)
	assert.Positive(t, r.finch.Calls("POST", "/auth/token"))
}
