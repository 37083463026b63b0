package finchtest_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

const redirect = "https://app.example.com/finch/callback"

// classicURL builds a classic Connect link for connection id ("" for none).
func classicURL(s *finchtest.Server, connectionID, state string) string {
	q := url.Values{
		"client_id":    {s.ClientID},
		"redirect_uri": {redirect},
		"products":     {"company directory"},
	}
	if connectionID != "" {
		q.Set("connection_id", connectionID)
	}
	if state != "" {
		q.Set("state", state)
	}
	return s.URL + "/authorize?" + q.Encode()
}

// codeFrom extracts the code from a callback URL, checking its base.
func codeFrom(t *testing.T, callback, wantBase string) string {
	t.Helper()
	u, err := url.Parse(callback)
	if err != nil {
		t.Fatal("callback does not parse") // the error would quote the code
	}
	base := *u
	base.RawQuery = ""
	if base.String() != wantBase {
		t.Errorf("callback base = %q, want %q", base.String(), wantBase)
	}
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("callback has no code (query keys %v)", slices.Collect(maps.Keys(u.Query())))
	}
	return code
}

// session creates a reauthentication session and returns its connect_url.
func session(t *testing.T, s *finchtest.Server, body string) string {
	t.Helper()
	res := send(t, s, req{method: "POST", path: "/connect/sessions/reauthenticate", basic: [2]string{s.ClientID, s.ClientSecret}, body: body})
	if res.status != 201 {
		t.Fatalf("session: status %d: %s", res.status, res.body)
	}
	m := res.json(t)
	sid, _ := m["session_id"].(string)
	link, _ := m["connect_url"].(string)
	if !strings.HasPrefix(sid, "sess_") || link != s.URL+"/authorize?session="+sid {
		t.Fatalf("session answer = %s", res.body)
	}
	return link
}

func TestReconnectFlow(t *testing.T) {
	s := newServer(t)
	old := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, old)
	dirBefore := getDirectory(t, s, old, "")
	s.Break(c.ID)

	callback, err := s.Approve(classicURL(s, c.ID, "st-1"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(callback)
	if u.Query().Get("state") != "st-1" {
		t.Errorf("state = %q", u.Query().Get("state"))
	}
	code := codeFrom(t, callback, redirect)

	res := exchange(t, s, code, ptr(redirect))
	tok := accessToken(t, res)
	m := res.json(t)
	for k, want := range map[string]any{
		"token_type": "bearer", "connection_id": c.ID, "customer_id": c.CustomerID, "company_id": c.CompanyID,
		"provider_id": c.ProviderID, "client_type": "sandbox", "connection_type": "provider", "customer_name": c.CustomerName,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if ids, _ := m["entity_ids"].([]any); len(ids) != 1 || ids[0] != c.Entities[0].ID {
		t.Errorf("entity_ids = %v", m["entity_ids"])
	}
	if p, _ := m["products"].([]any); len(p) != 2 || p[0] != "company" || p[1] != "directory" {
		t.Errorf("products = %v (the granted ones)", m["products"])
	}
	if m["account_id"] == "" || m["account_id"] == nil {
		t.Error("no account_id")
	}
	if tok == old {
		t.Fatal("same token after reconnect")
	}

	// The new token works and sees the same data ids; the old one is dead
	// forever, even though the connection is connected again.
	if got := getDirectory(t, s, tok, ""); got.Individuals[0].ID != dirBefore.Individuals[0].ID {
		t.Error("data ids changed on reconnect")
	}
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: old}), 401, "authentication_error", "reauthenticate_user")
	// Its /introspect reports the connection's status by default (see
	// TestSupersededIntrospection).
	in := send(t, s, req{method: "GET", path: "/introspect", token: old})
	if in.status != 200 || in.json(t)["connection_status"].(map[string]any)["status"] != "connected" || in.json(t)["connection_id"] != c.ID {
		t.Errorf("introspect of dead token: %d %s", in.status, in.body)
	}
	checkError(t, send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: old, body: `{"connection_status":"connected"}`}),
		401, "authentication_error", "reauthenticate_user")
	if got, _ := s.Connection(c.ID); got.Status != "connected" {
		t.Errorf("status after reconnect = %q", got.Status)
	}

	// A second reconnect kills the second token too.
	callback, err = s.Approve(classicURL(s, c.ID, ""))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(callback, "state=") {
		t.Errorf("state sent though none was given")
	}
	tok3 := accessToken(t, exchange(t, s, codeFrom(t, callback, redirect), ptr(redirect)))
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: tok}), 401, "authentication_error", "reauthenticate_user")
	if res := send(t, s, req{method: "GET", path: "/employer/company", token: tok3}); res.status != 200 {
		t.Errorf("third token: %d", res.status)
	}
}

func TestReconnectHealsReauthEntities(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{Entities: []finchtest.Entity{{Status: "reauth"}, {Status: "disconnected"}}})
	c := connectionOf(t, s, tok)
	cb, err := s.Approve(classicURL(s, c.ID, ""))
	if err != nil {
		t.Fatal(err)
	}
	accessToken(t, exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect)))
	got, _ := s.Connection(c.ID)
	if got.Entities[0].Status != "connected" || got.Entities[1].Status != "disconnected" {
		t.Errorf("entities = %+v", got.Entities)
	}
}

func TestNewConnectionWithoutConnectionID(t *testing.T) {
	s := newServer(t)
	old := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, old)
	s.Break(c.ID)

	link := classicURL(s, "", "") + "&payroll_provider=paychex_flex"
	cb, err := s.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	res := exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect))
	tok := accessToken(t, res)
	m := res.json(t)
	if m["connection_id"] == c.ID || m["connection_id"] == "" {
		t.Errorf("connection_id = %v, want a new one", m["connection_id"])
	}
	if m["provider_id"] != "paychex_flex" {
		t.Errorf("provider_id = %v", m["provider_id"])
	}
	if nc := connectionOf(t, s, tok); nc.ID == c.ID {
		t.Error("same connection")
	}
	// The old connection is untouched: still broken, its token still reauth.
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: old}), 401, "authentication_error", "reauthenticate_user")
}

func TestApproveAs(t *testing.T) {
	s := newServer(t)
	a := connectionOf(t, s, s.AddConnection(finchtest.Connection{CustomerName: "Acme"}))
	bTok := s.AddConnection(finchtest.Connection{ID: "conn_b"})

	t.Run("existing", func(t *testing.T) {
		cb, err := s.ApproveAs(classicURL(s, a.ID, ""), "conn_b")
		if err != nil {
			t.Fatal(err)
		}
		res := exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect))
		accessToken(t, res)
		if id := res.json(t)["connection_id"]; id != "conn_b" {
			t.Errorf("connection_id = %v", id)
		}
		// conn_b was reconnected: its earlier token is dead.
		checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: bTok}), 401, "authentication_error", "reauthenticate_user")
	})
	t.Run("new, same customer", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+a.ID+`","redirect_uri":"`+redirect+`"}`)
		cb, err := s.ApproveAs(link, "conn_new")
		if err != nil {
			t.Fatal(err)
		}
		res := exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect))
		accessToken(t, res)
		m := res.json(t)
		if m["connection_id"] != "conn_new" || m["customer_id"] != a.CustomerID || m["customer_name"] != "Acme" || m["company_id"] == a.CompanyID {
			t.Errorf("answer = %s", res.body)
		}
		nc, ok := s.Connection("conn_new")
		if !ok || nc.CustomerEmail != a.CustomerEmail || nc.ProviderID != a.ProviderID {
			t.Errorf("new connection = %+v", nc)
		}
	})
	t.Run("empty id", func(t *testing.T) {
		if _, err := s.ApproveAs(classicURL(s, a.ID, ""), ""); err == nil {
			t.Error("no error")
		}
	})
}

func TestCancel(t *testing.T) {
	s := newServer(t)
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	cb, err := s.Cancel(classicURL(s, c.ID, "st-9"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cb)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if !strings.HasPrefix(cb, redirect+"?") || q.Get("error") != "access_denied" || q.Get("error_description") == "" || q.Get("state") != "st-9" || q.Has("code") {
		t.Errorf("callback = %q", cb)
	}
}

func TestRedirectURIKeepsItsQuery(t *testing.T) {
	s := newServer(t)
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	link := s.URL + "/authorize?" + url.Values{
		"client_id": {s.ClientID}, "redirect_uri": {"https://app.example.com/cb?tenant=7"},
		"products": {"company"}, "connection_id": {c.ID},
	}.Encode()
	cb, err := s.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cb)
	if u.Query().Get("tenant") != "7" || u.Query().Get("code") == "" {
		t.Errorf("callback lost tenant=7 or has no code (keys %v)", slices.Collect(maps.Keys(u.Query())))
	}
	// The exchange needs the redirect_uri exactly as given.
	accessToken(t, exchange(t, s, u.Query().Get("code"), ptr("https://app.example.com/cb?tenant=7")))
}

func TestApproveValidation(t *testing.T) {
	s := newServer(t)
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	good := url.Values{"client_id": {s.ClientID}, "redirect_uri": {redirect}, "products": {"company"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return s.URL + "/authorize?" + q.Encode()
	}
	tests := []struct {
		name, link string
	}{
		{"unknown client_id", with("client_id", "client_other")},
		{"no client_id", with("client_id", "")},
		{"no redirect_uri", with("redirect_uri", "")},
		{"relative redirect_uri", with("redirect_uri", "/callback")},
		{"no products", with("products", "")},
		{"unknown connection_id", with("connection_id", "conn_nope")},
		{"unknown session", s.URL + "/authorize?session=sess_nope"},
		{"not an authorize URL", s.URL + "/introspect?" + good.Encode()},
		{"unparsable", "http://[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Approve(tt.link); err == nil || !strings.HasPrefix(err.Error(), "finchtest: ") {
				t.Errorf("err = %v", err)
			}
			if strings.HasPrefix(tt.link, s.URL+"/authorize") {
				res := send(t, s, req{method: "GET", path: strings.TrimPrefix(tt.link, s.URL)})
				if res.status != 400 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
					t.Errorf("GET: status %d, Content-Type %q", res.status, res.header.Get("Content-Type"))
				}
			}
		})
	}
	// A link to the real Connect host works: only path and query count.
	real := "https://connect.tryfinch.com/authorize?" + url.Values{
		"client_id": {s.ClientID}, "redirect_uri": {redirect}, "products": {"company"}, "connection_id": {c.ID},
	}.Encode()
	if _, err := s.Approve(real); err != nil {
		t.Errorf("real Connect host: %v", err)
	}
}

func TestAuthorizePageAndDecision(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{CustomerName: "Acme <Co>", ProviderID: "gusto"})
	c := connectionOf(t, s, tok)
	s.Break(c.ID)

	page := func(t *testing.T, link string) string {
		t.Helper()
		res := send(t, s, req{method: "GET", path: strings.TrimPrefix(link, s.URL)})
		if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
			t.Fatalf("page: %d %q", res.status, res.header.Get("Content-Type"))
		}
		body := string(res.body)
		for _, want := range []string{"gusto", c.ID, "Acme &lt;Co&gt;", `action="/authorize/decision"`, `method="post"`, `value="reconnect"`, `value="cancel"`, ">Reconnect<", ">Cancel<"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q:\n%s", want, body)
			}
		}
		m := regexp.MustCompile(`name="authorization_id" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no authorization_id in page")
		}
		return m[1]
	}
	decide := func(t *testing.T, id, decision string) response {
		t.Helper()
		return send(t, s, req{method: "POST", path: "/authorize/decision",
			body:   url.Values{"authorization_id": {id}, "decision": {decision}}.Encode(),
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	}

	t.Run("reconnect", func(t *testing.T) {
		id := page(t, classicURL(s, c.ID, "xyz"))
		res := decide(t, id, "reconnect")
		if res.status != 303 {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
		loc := res.header.Get("Location")
		u, _ := url.Parse(loc)
		if u.Query().Get("state") != "xyz" {
			t.Errorf("state lost: %q", u.Query().Get("state"))
		}
		tok2 := accessToken(t, exchange(t, s, codeFrom(t, loc, redirect), ptr(redirect)))
		if res := send(t, s, req{method: "GET", path: "/employer/company", token: tok2}); res.status != 200 {
			t.Errorf("new token: %d", res.status)
		}
		// The authorization is single-use.
		if res := decide(t, id, "reconnect"); res.status != 400 {
			t.Errorf("second decision: %d", res.status)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		id := page(t, classicURL(s, c.ID, "abc"))
		res := decide(t, id, "cancel")
		u, _ := url.Parse(res.header.Get("Location"))
		if res.status != 303 || u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "abc" {
			t.Errorf("cancel: %d %q", res.status, res.header.Get("Location"))
		}
	})
	t.Run("bad decision", func(t *testing.T) {
		id := page(t, classicURL(s, c.ID, ""))
		if res := decide(t, id, "maybe"); res.status != 400 {
			t.Errorf("status %d", res.status)
		}
		if res := decide(t, "authz_unknown", "reconnect"); res.status != 400 {
			t.Errorf("unknown id: status %d", res.status)
		}
	})
	t.Run("session page", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"`+redirect+`"}`)
		id := page(t, link)
		res := decide(t, id, "reconnect")
		if res.status != 303 {
			t.Fatalf("status %d", res.status)
		}
		accessToken(t, exchange(t, s, codeFrom(t, res.header.Get("Location"), redirect), ptr(redirect)))
	})
	t.Run("embedded session page", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`"}`)
		id := page(t, link)
		res := decide(t, id, "reconnect")
		m := regexp.MustCompile(`<output id="code">([^<]+)</output>`).FindSubmatch(res.body)
		if res.status != 200 || m == nil {
			t.Fatalf("status %d, code found %v", res.status, m != nil)
		}
		accessToken(t, exchange(t, s, string(m[1]), nil))
	})
}

func TestReauthSessions(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	creds := [2]string{s.ClientID, s.ClientSecret}

	tests := []struct {
		name      string
		basic     [2]string
		body      string
		status    int
		errName   string
		wantError bool
	}{
		{"no credentials", [2]string{}, `{"connection_id":"` + c.ID + `"}`, 401, "invalid_client_error", true},
		{"wrong secret", [2]string{s.ClientID, "nope"}, `{"connection_id":"` + c.ID + `"}`, 401, "invalid_client_error", true},
		{"wrong id", [2]string{"client_x", s.ClientSecret}, `{"connection_id":"` + c.ID + `"}`, 401, "invalid_client_error", true},
		{"malformed JSON", creds, `{"connection_id":`, 400, "invalid_request_error", true},
		{"no connection_id", creds, `{"products":["company"]}`, 400, "invalid_request_error", true},
		{"unknown connection", creds, `{"connection_id":"conn_nope"}`, 404, "not_found_error", true},
		{"negative minutes", creds, `{"connection_id":"` + c.ID + `","minutes_to_expire":-5}`, 400, "invalid_request_error", true},
		{"bad redirect", creds, `{"connection_id":"` + c.ID + `","redirect_uri":"not a url"}`, 400, "invalid_request_error", true},
		{"minimal", creds, `{"connection_id":"` + c.ID + `"}`, 201, "", false},
		{"full", creds, `{"connection_id":"` + c.ID + `","minutes_to_expire":60,"products":["company"],"redirect_uri":"` + redirect + `"}`, 201, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := send(t, s, req{method: "POST", path: "/connect/sessions/reauthenticate", basic: tt.basic, body: tt.body})
			if tt.wantError {
				checkError(t, res, tt.status, tt.errName, "")
				if strings.Contains(string(res.body), s.ClientSecret) {
					t.Error("client secret in error body")
				}
				return
			}
			if res.status != 201 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
		})
	}
}

func TestSessionFlow(t *testing.T) {
	s := newServer(t)
	now := time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	old := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, old)
	s.Break(c.ID)

	t.Run("redirect", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","products":["company"],"redirect_uri":"`+redirect+`"}`)
		cb, err := s.Approve(link)
		if err != nil {
			t.Fatal(err)
		}
		res := exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect))
		accessToken(t, res)
		if p := res.json(t)["products"].([]any); len(p) != 1 || p[0] != "company" {
			t.Errorf("products = %v", p)
		}
		// A session completes once.
		if _, err := s.Approve(link); err == nil {
			t.Error("session approved twice")
		}
	})
	t.Run("cancel keeps the session", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"`+redirect+`"}`)
		if _, err := s.Cancel(link); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Approve(link); err != nil {
			t.Errorf("approve after cancel: %v", err)
		}
	})
	t.Run("embedded", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`"}`)
		cb, err := s.Approve(link)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(cb)
		if err != nil {
			t.Fatal("callback does not parse")
		}
		if u.Path != "" || u.Host != "" {
			t.Fatalf("embedded callback is not a bare query (host %q, path %q)", u.Host, u.Path)
		}
		code := u.Query().Get("code")
		checkError(t, exchange(t, s, code, ptr(redirect)), 400, "invalid_grant_error", "")
		accessToken(t, exchange(t, s, code, nil))
	})
	t.Run("default expiry is 30 days", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"`+redirect+`"}`)
		advance(43200*time.Minute - time.Second)
		if _, err := s.Approve(link); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		link = session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"`+redirect+`"}`)
		advance(43200 * time.Minute)
		if _, err := s.Approve(link); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("after expiry: %v", err)
		}
		if res := send(t, s, req{method: "GET", path: strings.TrimPrefix(link, s.URL)}); res.status != 400 {
			t.Errorf("GET expired session: %d", res.status)
		}
	})
	t.Run("minutes_to_expire", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","minutes_to_expire":5,"redirect_uri":"`+redirect+`"}`)
		advance(5 * time.Minute)
		if _, err := s.Approve(link); err == nil {
			t.Error("approved after minutes_to_expire")
		}
	})
	t.Run("expires between page and decision", func(t *testing.T) {
		link := session(t, s, `{"connection_id":"`+c.ID+`","minutes_to_expire":1,"redirect_uri":"`+redirect+`"}`)
		res := send(t, s, req{method: "GET", path: strings.TrimPrefix(link, s.URL)})
		id := regexp.MustCompile(`name="authorization_id" value="([^"]+)"`).FindSubmatch(res.body)
		if id == nil {
			t.Fatal("no authorization id")
		}
		advance(2 * time.Minute)
		dec := send(t, s, req{method: "POST", path: "/authorize/decision",
			body:   url.Values{"authorization_id": {string(id[1])}, "decision": {"reconnect"}}.Encode(),
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		if dec.status != 400 {
			t.Errorf("status %d", dec.status)
		}
	})
}

func TestTokenExchangeRules(t *testing.T) {
	s := newServer(t)
	now := time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))

	redirectCode := func() string {
		t.Helper()
		cb, err := s.Approve(classicURL(s, c.ID, ""))
		if err != nil {
			t.Fatal(err)
		}
		return codeFrom(t, cb, redirect)
	}
	post := func(body map[string]any) response {
		b, _ := json.Marshal(body)
		return send(t, s, req{method: "POST", path: "/auth/token", body: string(b)})
	}

	t.Run("credentials", func(t *testing.T) {
		code := s.IssueCode(c.ID)
		for _, body := range []map[string]any{
			{"client_id": s.ClientID, "client_secret": "wrong", "code": code},
			{"client_id": "client_other", "client_secret": s.ClientSecret, "code": code},
			{"code": code},
		} {
			res := post(body)
			checkError(t, res, 401, "invalid_client_error", "")
			if strings.Contains(string(res.body), code) {
				t.Error("code echoed in error")
			}
		}
		accessToken(t, exchange(t, s, code, nil)) // the failures did not use it
	})
	t.Run("malformed", func(t *testing.T) {
		checkError(t, send(t, s, req{method: "POST", path: "/auth/token", body: `{"code":`}), 400, "invalid_request_error", "")
		checkError(t, post(map[string]any{"client_id": s.ClientID, "client_secret": s.ClientSecret}), 400, "invalid_request_error", "")
	})
	t.Run("unknown code", func(t *testing.T) {
		checkError(t, exchange(t, s, "code_nope", nil), 400, "invalid_grant_error", "")
	})
	t.Run("single use", func(t *testing.T) {
		code := s.IssueCode(c.ID)
		accessToken(t, exchange(t, s, code, nil))
		checkError(t, exchange(t, s, code, nil), 400, "invalid_grant_error", "")
	})
	t.Run("expiry", func(t *testing.T) {
		code := s.IssueCode(c.ID)
		advance(10*time.Minute - time.Second)
		accessToken(t, exchange(t, s, code, nil))
		code = s.IssueCode(c.ID)
		advance(10 * time.Minute)
		checkError(t, exchange(t, s, code, nil), 400, "invalid_grant_error", "")
		code = redirectCode()
		advance(11 * time.Minute)
		checkError(t, exchange(t, s, code, ptr(redirect)), 400, "invalid_grant_error", "")
	})
	t.Run("redirect_uri rules", func(t *testing.T) {
		tests := []struct {
			name     string
			embedded bool
			redirect *string
			ok       bool
		}{
			{"redirect flow, same", false, ptr(redirect), true},
			{"redirect flow, omitted", false, nil, false},
			{"redirect flow, different", false, ptr(redirect + "/other"), false},
			{"redirect flow, empty", false, ptr(""), false},
			{"embedded, omitted", true, nil, true},
			{"embedded, sent", true, ptr(redirect), false},
			{"embedded, empty string", true, ptr(""), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var code string
				if tt.embedded {
					code = s.IssueCode(c.ID)
				} else {
					code = redirectCode()
				}
				res := exchange(t, s, code, tt.redirect)
				if tt.ok {
					accessToken(t, res)
					return
				}
				checkError(t, res, 400, "invalid_grant_error", "")
				// A failed exchange does not use the code up.
				right := (*string)(nil)
				if !tt.embedded {
					right = ptr(redirect)
				}
				accessToken(t, exchange(t, s, code, right))
			})
		}
	})
	t.Run("IssueCode unknown connection", func(t *testing.T) {
		if code := s.IssueCode("conn_nope"); code != "" {
			t.Errorf("code for unknown connection")
		}
	})
	t.Run("codes and tokens look random", func(t *testing.T) {
		a, b := s.IssueCode(c.ID), s.IssueCode(c.ID)
		if a == b || !regexp.MustCompile(`^code_[0-9a-f]{32}$`).MatchString(a) {
			t.Errorf("codes not random-shaped")
		}
		tok := accessToken(t, exchange(t, s, a, nil))
		if !regexp.MustCompile(`^tok_sandbox_[0-9a-f]{32}$`).MatchString(tok) {
			t.Errorf("token not random-shaped")
		}
	})
}

// TestSessionStateSource completes session links in every way (Approve,
// ApproveAs, Cancel, and the Connect page's form) for redirect and
// embedded sessions, under each SessionStateSource: the state echoed is
// the session body's, the connect_url's, or none.
func TestSessionStateSource(t *testing.T) {
	type how int
	const (
		viaApprove how = iota
		viaApproveAs
		viaCancel
		viaPageReconnect
		viaPageCancel
	)
	hows := []struct {
		name    string
		how     how
		approve bool
	}{
		{"Approve", viaApprove, true},
		{"ApproveAs", viaApproveAs, true},
		{"Cancel", viaCancel, false},
		{"page reconnect", viaPageReconnect, true},
		{"page cancel", viaPageCancel, false},
	}
	sources := []struct {
		src       *finchtest.SessionStateSource // nil: never set (the default)
		bodyState string
		urlState  string
		want      string // "" means no state parameter at all
	}{
		{nil, "st-body", "st-url", "st-body"},
		{ptr(finchtest.StateFromSessionBody), "st-body", "st-url", "st-body"},
		{ptr(finchtest.StateFromSessionBody), "", "st-url", ""},
		{ptr(finchtest.StateFromConnectURL), "st-body", "st-url", "st-url"},
		{ptr(finchtest.StateFromConnectURL), "st-body", "", ""},
		{ptr(finchtest.StateOmitted), "st-body", "st-url", ""},
		{ptr(finchtest.SessionStateSource(99)), "st-body", "st-url", "st-body"}, // unknown: the default
	}
	authzID := regexp.MustCompile(`name="authorization_id" value="([^"]+)"`)
	output := func(body []byte, id string) (string, bool) {
		m := regexp.MustCompile(`<output id="` + id + `">([^<]*)</output>`).FindSubmatch(body)
		if m == nil {
			return "", false
		}
		return string(m[1]), true
	}

	for _, src := range sources {
		srcName := "default"
		if src.src != nil {
			srcName = src.src.String()
		}
		for _, embedded := range []bool{false, true} {
			for _, h := range hows {
				name := fmt.Sprintf("%s/body=%q,url=%q/embedded=%v/%s", srcName, src.bodyState, src.urlState, embedded, h.name)
				t.Run(name, func(t *testing.T) {
					s := newServer(t)
					if src.src != nil {
						s.SetSessionStateSource(*src.src)
					}
					c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
					body := map[string]any{"connection_id": c.ID}
					if !embedded {
						body["redirect_uri"] = redirect
					}
					if src.bodyState != "" {
						body["state"] = src.bodyState
					}
					b, _ := json.Marshal(body)
					link := session(t, s, string(b))
					if src.urlState != "" {
						link += "&state=" + url.QueryEscape(src.urlState) // as the library does
					}

					var q url.Values // the parameters Connect hands back
					switch h.how {
					case viaApprove, viaApproveAs, viaCancel:
						var cb string
						var err error
						switch h.how {
						case viaApprove:
							cb, err = s.Approve(link)
						case viaApproveAs:
							cb, err = s.ApproveAs(link, "conn_other")
						default:
							cb, err = s.Cancel(link)
						}
						if err != nil {
							t.Fatal(err)
						}
						u, err := url.Parse(cb)
						if err != nil {
							t.Fatal("callback does not parse")
						}
						if embedded != (u.Host == "") {
							t.Errorf("callback host %q for embedded=%v", u.Host, embedded)
						}
						q = u.Query()
					default:
						page := send(t, s, req{method: "GET", path: strings.TrimPrefix(link, s.URL)})
						m := authzID.FindSubmatch(page.body)
						if m == nil {
							t.Fatalf("no authorization id on the page (status %d)", page.status)
						}
						decision := "cancel"
						if h.approve {
							decision = "reconnect"
						}
						res := send(t, s, req{method: "POST", path: "/authorize/decision",
							body:   url.Values{"authorization_id": {string(m[1])}, "decision": {decision}}.Encode(),
							header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
						if embedded {
							if res.status != 200 {
								t.Fatalf("decision: status %d", res.status)
							}
							q = url.Values{}
							for _, k := range []string{"code", "error", "state"} {
								if v, ok := output(res.body, k); ok {
									q.Set(k, v)
								}
							}
						} else {
							if res.status != 303 {
								t.Fatalf("decision: status %d", res.status)
							}
							u, _ := url.Parse(res.header.Get("Location"))
							q = u.Query()
						}
					}

					if h.approve != q.Has("code") || h.approve == q.Has("error") {
						t.Errorf("approve=%v but callback keys %v", h.approve, slices.Sorted(maps.Keys(q)))
					}
					switch {
					case src.want == "" && q.Has("state"):
						t.Errorf("state = %q, want none", q.Get("state"))
					case src.want != "" && q.Get("state") != src.want:
						t.Errorf("state = %q (present %v), want %q", q.Get("state"), q.Has("state"), src.want)
					}
				})
			}
		}
	}
}

// TestClassicLinkStateIgnoresSessionStateSource: the classic link always
// echoes its query's state.
func TestClassicLinkStateIgnoresSessionStateSource(t *testing.T) {
	for _, src := range []finchtest.SessionStateSource{finchtest.StateFromSessionBody, finchtest.StateFromConnectURL, finchtest.StateOmitted} {
		t.Run(src.String(), func(t *testing.T) {
			s := newServer(t)
			s.SetSessionStateSource(src)
			c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
			for _, approve := range []func(string) (string, error){s.Approve, s.Cancel} {
				cb, err := approve(classicURL(s, c.ID, "st-classic"))
				if err != nil {
					t.Fatal(err)
				}
				if u, _ := url.Parse(cb); u.Query().Get("state") != "st-classic" {
					t.Errorf("state = %q, want st-classic", u.Query().Get("state"))
				}
			}
		})
	}
}

// TestSessionStateSourceReadAtDecision: the source in force when the
// employer decides counts, not the one when the page was shown.
func TestSessionStateSourceReadAtDecision(t *testing.T) {
	s := newServer(t)
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	link := session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"`+redirect+`","state":"st-body"}`) + "&state=st-url"
	page := send(t, s, req{method: "GET", path: strings.TrimPrefix(link, s.URL)})
	m := regexp.MustCompile(`name="authorization_id" value="([^"]+)"`).FindSubmatch(page.body)
	if m == nil {
		t.Fatal("no authorization id")
	}
	s.SetSessionStateSource(finchtest.StateFromConnectURL)
	res := send(t, s, req{method: "POST", path: "/authorize/decision",
		body:   url.Values{"authorization_id": {string(m[1])}, "decision": {"reconnect"}}.Encode(),
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	u, _ := url.Parse(res.header.Get("Location"))
	if got := u.Query().Get("state"); got != "st-url" {
		t.Errorf("state = %q, want st-url", got)
	}
}

func TestSessionStateSourceString(t *testing.T) {
	tests := []struct {
		src  finchtest.SessionStateSource
		want string
	}{
		{finchtest.StateFromSessionBody, "StateFromSessionBody"},
		{finchtest.StateFromConnectURL, "StateFromConnectURL"},
		{finchtest.StateOmitted, "StateOmitted"},
		{finchtest.SessionStateSource(7), "SessionStateSource(7)"},
	}
	for _, tt := range tests {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestRefuseUnlistedSessionFields: off by default, the fake takes a
// session body's state; with SetRefuseUnlistedSessionFields, a field that
// Finch's API reference does not list for the endpoint (state among them)
// is refused with 400 invalid_request_error, and a body without one is
// still taken.
func TestRefuseUnlistedSessionFields(t *testing.T) {
	s := newServer(t)
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	creds := [2]string{s.ClientID, s.ClientSecret}
	listed := `{"connection_id":"` + c.ID + `","minutes_to_expire":60,"products":["company"],"redirect_uri":"` + redirect + `"}`
	withState := `{"connection_id":"` + c.ID + `","redirect_uri":"` + redirect + `","state":"st"}`
	post := func(body string) response {
		return send(t, s, req{method: "POST", path: "/connect/sessions/reauthenticate", basic: creds, body: body})
	}
	if res := post(withState); res.status != 201 {
		t.Fatalf("default: state refused: %d %s", res.status, res.body)
	}

	s.SetRefuseUnlistedSessionFields(true)
	for name, body := range map[string]string{
		"state":         withState,
		"another field": `{"connection_id":"` + c.ID + `","customer_name":"Acme"}`,
	} {
		res := post(body)
		checkError(t, res, 400, "invalid_request_error", "")
		if name == "state" && !strings.Contains(string(res.body), `state`) {
			t.Errorf("the error does not name the field: %s", res.body)
		}
	}
	link := session(t, s, listed)
	callback, err := s.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	codeFrom(t, callback, redirect)

	s.SetRefuseUnlistedSessionFields(false)
	if res := post(withState); res.status != 201 {
		t.Fatalf("switched off: state refused: %d", res.status)
	}
	if got, want := s.Calls("POST", "/connect/sessions/reauthenticate"), 5; got != want {
		t.Errorf("Calls = %d, want %d: refused requests count too", got, want)
	}
}
