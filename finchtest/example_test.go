package finchtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

func ExampleServer_Break() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})
	c, _ := s.ConnectionForToken(token)

	s.Break(c.ID) // the employer changed their password at the provider

	req, _ := http.NewRequest("GET", s.URL+"/employer/directory", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.Client().Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode)
	fmt.Println(string(body))
	// Output:
	// 401
	// {"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}
}

func ExampleServer_AddConnection() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{CustomerName: "Acme, Inc.", ProviderID: "adp_run"})

	req, _ := http.NewRequest("GET", s.URL+"/introspect", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.Client().Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var in struct {
		ConnectionID     string `json:"connection_id"`
		CustomerName     string `json:"customer_name"`
		ProviderID       string `json:"provider_id"`
		ConnectionStatus struct {
			Status string `json:"status"`
		} `json:"connection_status"`
	}
	json.NewDecoder(res.Body).Decode(&in)
	fmt.Println(in.ConnectionID)
	fmt.Println(in.CustomerName, in.ProviderID, in.ConnectionStatus.Status)
	// Output:
	// c0000000-0000-4000-8000-000000000001
	// Acme, Inc. adp_run connected
}

// Example_reconnect walks the whole re-authentication flow: a broken
// connection, a classic Connect link, the employer approving, and the code
// exchanged for a new token. The connection keeps its id; the old token
// stays dead.
func Example_reconnect() {
	s := finchtest.NewServer()
	defer s.Close()
	oldToken := s.AddConnection(finchtest.Connection{})
	c, _ := s.ConnectionForToken(oldToken)
	s.Break(c.ID)

	// The link the application sends its customer.
	link := s.URL + "/authorize?" + url.Values{
		"client_id":     {s.ClientID},
		"redirect_uri":  {"https://app.example.com/finch/callback"},
		"products":      {"company directory"},
		"connection_id": {c.ID},
		"state":         {"opaque-state"},
	}.Encode()

	// The employer clicks Reconnect; Connect redirects to the callback.
	callback, err := s.Approve(link)
	if err != nil {
		panic(err)
	}
	cb, _ := url.Parse(callback)
	fmt.Println(cb.Host+cb.Path, cb.Query().Get("state"))

	// The application's callback exchanges the code.
	body, _ := json.Marshal(map[string]string{
		"client_id":     s.ClientID,
		"client_secret": s.ClientSecret,
		"code":          cb.Query().Get("code"),
		"redirect_uri":  "https://app.example.com/finch/callback",
	})
	res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		ConnectionID string `json:"connection_id"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	fmt.Println("same connection:", tok.ConnectionID == c.ID)

	status := func(token string) int {
		req, _ := http.NewRequest("GET", s.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	fmt.Println("new token:", status(tok.AccessToken))
	fmt.Println("old token:", status(oldToken))
	// Output:
	// app.example.com/finch/callback opaque-state
	// same connection: true
	// new token: 200
	// old token: 401
}

func ExampleServer_Approve_session() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	s.Break(c.ID)

	// The current way to get a reconnect link: a Connect session.
	req, _ := http.NewRequest("POST", s.URL+"/connect/sessions/reauthenticate",
		strings.NewReader(`{"connection_id":"`+c.ID+`","redirect_uri":"https://app.example.com/cb"}`))
	req.SetBasicAuth(s.ClientID, s.ClientSecret)
	res, err := s.Client().Do(req)
	if err != nil {
		panic(err)
	}
	var sess struct {
		ConnectURL string `json:"connect_url"`
	}
	json.NewDecoder(res.Body).Decode(&sess)
	res.Body.Close()
	fmt.Println(res.StatusCode, strings.HasPrefix(sess.ConnectURL, s.URL+"/authorize?session=sess_"))

	callback, err := s.Approve(sess.ConnectURL)
	if err != nil {
		panic(err)
	}
	cb, _ := url.Parse(callback)
	fmt.Println(cb.Host+cb.Path, cb.Query().Has("code"))
	// Output:
	// 201 true
	// app.example.com/cb true
}

func ExampleServer_Cancel() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	link := s.URL + "/authorize?" + url.Values{
		"client_id":     {s.ClientID},
		"redirect_uri":  {"https://app.example.com/cb"},
		"products":      {"company"},
		"connection_id": {c.ID},
	}.Encode()

	callback, err := s.Cancel(link)
	if err != nil {
		panic(err)
	}
	cb, _ := url.Parse(callback)
	fmt.Println(cb.Query().Get("error"), cb.Query().Has("code"))
	// Output:
	// access_denied false
}

func ExampleServer_ApproveAs() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	link := s.URL + "/authorize?" + url.Values{
		"client_id":     {s.ClientID},
		"redirect_uri":  {"https://app.example.com/cb"},
		"products":      {"company"},
		"connection_id": {c.ID},
	}.Encode()

	// The employer signs in to another account: a new connection of the
	// same customer.
	callback, err := s.ApproveAs(link, "conn_other_account")
	if err != nil {
		panic(err)
	}
	cb, _ := url.Parse(callback)
	body, _ := json.Marshal(map[string]string{
		"client_id": s.ClientID, "client_secret": s.ClientSecret,
		"code": cb.Query().Get("code"), "redirect_uri": "https://app.example.com/cb",
	})
	res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var tok struct {
		ConnectionID string `json:"connection_id"`
		CustomerID   string `json:"customer_id"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	fmt.Println(tok.ConnectionID, tok.CustomerID == c.CustomerID)
	// Output:
	// conn_other_account true
}

func ExampleServer_IssueCode() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))

	// Embedded Connect hands the code to the page: no redirect_uri is
	// bound to it, so the exchange must omit redirect_uri.
	code := s.IssueCode(c.ID)
	exchange := func(withRedirect bool) int {
		m := map[string]string{"client_id": s.ClientID, "client_secret": s.ClientSecret, "code": code}
		if withRedirect {
			m["redirect_uri"] = "https://app.example.com/cb"
		}
		body, _ := json.Marshal(m)
		res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	fmt.Println(exchange(true))  // invalid_grant_error
	fmt.Println(exchange(false)) // success
	fmt.Println(exchange(false)) // single use
	// Output:
	// 400
	// 200
	// 400
}

func ExampleServer_InjectFault() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})

	s.InjectFault(finchtest.Fault{
		Path:   "/employer/directory",
		Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"2"}},
		Times:  1,
	})

	for range 2 {
		req, _ := http.NewRequest("GET", s.URL+"/employer/directory", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		fmt.Printf("%d Retry-After=%q\n", res.StatusCode, res.Header.Get("Retry-After"))
	}
	fmt.Println("calls:", s.Calls("GET", "/employer/directory"))
	// Output:
	// 429 Retry-After="2"
	// 200 Retry-After=""
	// calls: 2
}

func ExampleServer_SetClock() {
	s := finchtest.NewServer()
	defer s.Close()
	now := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))

	code := s.IssueCode(c.ID)
	now = now.Add(11 * time.Minute) // codes live 10 minutes

	body, _ := json.Marshal(map[string]string{"client_id": s.ClientID, "client_secret": s.ClientSecret, "code": code})
	res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var e struct {
		Name string `json:"name"`
	}
	json.NewDecoder(res.Body).Decode(&e)
	fmt.Println(res.StatusCode, e.Name)
	// Output:
	// 400 invalid_grant_error
}

func ExampleErrorBody() {
	fmt.Println(finchtest.ErrorBody(429, "rate_limit_exceeded_error", "finch_api_ip_rl", "Too many requests"))
	// Output:
	// {"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_api_ip_rl","message":"Too many requests","statusCode":429,"status":429}
}

func ExampleServer_SetSessionStateSource() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))

	// A session made with a state in its body; the application also puts
	// one on the connect_url.
	req, _ := http.NewRequest("POST", s.URL+"/connect/sessions/reauthenticate", strings.NewReader(
		`{"connection_id":"`+c.ID+`","redirect_uri":"https://app.example.com/cb","state":"from-body"}`))
	req.SetBasicAuth(s.ClientID, s.ClientSecret)
	res, err := s.Client().Do(req)
	if err != nil {
		panic(err)
	}
	var sess struct {
		ConnectURL string `json:"connect_url"`
	}
	json.NewDecoder(res.Body).Decode(&sess)
	res.Body.Close()
	link := sess.ConnectURL + "&state=from-url"

	for _, src := range []finchtest.SessionStateSource{finchtest.StateFromSessionBody, finchtest.StateFromConnectURL, finchtest.StateOmitted} {
		s.SetSessionStateSource(src)
		callback, err := s.Cancel(link) // a cancelled session can be tried again
		if err != nil {
			panic(err)
		}
		cb, _ := url.Parse(callback)
		fmt.Printf("%s: state=%q\n", src, cb.Query().Get("state"))
	}
	// Output:
	// StateFromSessionBody: state="from-body"
	// StateFromConnectURL: state="from-url"
	// StateOmitted: state=""
}

func ExampleServer_BreakEntity() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{Entities: []finchtest.Entity{{Name: "Acme East"}, {Name: "Acme West"}}})
	c, _ := s.ConnectionForToken(token)

	s.BreakEntity(c.ID, c.Entities[1].ID) // only Acme West must re-authenticate

	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	_, body := get("/introspect")
	var in struct {
		ConnectionStatus struct {
			Status string `json:"status"`
		} `json:"connection_status"`
		Entities []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"entities"`
	}
	json.Unmarshal(body, &in)
	fmt.Println("connection:", in.ConnectionStatus.Status)
	for _, e := range in.Entities {
		fmt.Println(e.Name+":", e.Status)
	}
	status, _ := get("/employer/directory")
	fmt.Println("directory:", status) // one entity still works
	// Output:
	// connection: connected
	// Acme East: connected
	// Acme West: reauth
	// directory: 200
}

// Example_disconnect ends a connection for good: POST /disconnect revokes
// every token of the connection, and its status stays "disconnected".
func Example_disconnect() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})
	c, _ := s.ConnectionForToken(token)

	call := func(method, path string) {
		req, _ := http.NewRequest(method, s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		fmt.Println(method, path, res.StatusCode, string(body))
	}
	call("POST", "/disconnect")
	call("GET", "/employer/company")
	c, _ = s.Connection(c.ID)
	fmt.Println(c.Status, s.Calls("POST", "/disconnect"))
	// Output:
	// POST /disconnect 200 {"status":"success"}
	// GET /employer/company 401 {"code":401,"name":"invalid_token_error","message":"Invalid access token","statusCode":401,"status":401}
	// disconnected 1
}

// ExampleServer_SetNextReconnect makes the employer grant fewer products
// than the reconnect link asked for: the application must compare what it
// asked with the exchange's products.
func ExampleServer_SetNextReconnect() {
	s := finchtest.NewServer()
	defer s.Close()
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	s.SetNextReconnect(c.ID, finchtest.NextReconnect{
		GrantOnly: []string{"company", "directory"},
		Username:  "new.admin@acme.example",
	})

	link := s.URL + "/authorize?" + url.Values{
		"client_id":     {s.ClientID},
		"redirect_uri":  {"https://app.example.com/cb"},
		"products":      {"company directory payment"},
		"connection_id": {c.ID},
	}.Encode()
	callback, _ := s.Approve(link)
	cb, _ := url.Parse(callback)
	body, _ := json.Marshal(map[string]string{
		"client_id": s.ClientID, "client_secret": s.ClientSecret,
		"code": cb.Query().Get("code"), "redirect_uri": "https://app.example.com/cb",
	})
	res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var tok struct {
		Products []string `json:"products"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	c, _ = s.Connection(c.ID)
	fmt.Println("asked: company directory payment; granted:", tok.Products)
	fmt.Println("username:", c.Username)
	// Output:
	// asked: company directory payment; granted: [company directory]
	// username: new.admin@acme.example
}

// ExampleServer_SetRateLimit limits /introspect to two requests a minute
// of the server's clock, with a Retry-After header.
func ExampleServer_SetRateLimit() {
	s := finchtest.NewServer()
	defer s.Close()
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	token := s.AddConnection(finchtest.Connection{})
	s.SetRateLimit("/introspect", 2)
	s.SetRateLimitRetryAfter(true)

	for range 3 {
		req, _ := http.NewRequest("GET", s.URL+"/introspect", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		var e struct {
			FinchCode string `json:"finch_code"`
		}
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		fmt.Println(strings.TrimSpace(fmt.Sprint(res.StatusCode, " ", e.FinchCode, " ", res.Header.Get("Retry-After"))))
		now = now.Add(10 * time.Second)
	}
	fmt.Println("refused:", s.RateLimited("/introspect"))
	// Output:
	// 200
	// 200
	// 429 finch_application_rl 40
	// refused: 1
}

// ExampleServer_SetJobDuration forces a data sync (POST /jobs/automated)
// and watches it advance by the server's clock to its end, which updates
// the connection's last_successful_sync.
func ExampleServer_SetJobDuration() {
	s := finchtest.NewServer()
	defer s.Close()
	now := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	s.SetJobDuration(time.Minute, 10*time.Minute) // pending 1 min, then running 10
	token := s.AddConnection(finchtest.Connection{})

	call := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		m["http"] = res.StatusCode
		return m
	}
	job := call("POST", "/jobs/automated", `{"type":"data_sync_all"}`)
	fmt.Println(job["http"], "remaining refreshes:", job["remaining_refreshes"])
	for _, after := range []time.Duration{0, time.Minute, 11 * time.Minute} {
		now = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC).Add(after)
		fmt.Println(after, call("GET", "/jobs/automated/"+job["job_id"].(string), "")["status"])
	}
	in := call("GET", "/introspect", "")
	fmt.Println("last sync:", in["connection_status"].(map[string]any)["last_successful_sync"])
	again := call("POST", "/jobs/automated", `{"type":"data_sync_all"}`)
	fmt.Println(again["http"], "retry at:", again["retry_at"])
	// Output:
	// 201 remaining refreshes: 0
	// 0s pending
	// 1m0s in_progress
	// 11m0s complete
	// last sync: 2026-05-01T08:11:00Z
	// 429 retry at: 2026-05-01T09:00:00Z
}

// ExampleServer_SetMethodStatus breaks one authentication method of a
// connection with two: /introspect reports each method's status, while
// data calls answer by the connection's status alone.
func ExampleServer_SetMethodStatus() {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{Methods: []finchtest.AuthMethod{
		{Type: "credential", Products: []string{"company", "directory"}},
		{Type: "assisted", Products: []string{"benefits"}},
	}})
	c, _ := s.ConnectionForToken(token)
	s.SetMethodStatus(c.ID, "assisted", "error_permissions")

	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		return res
	}
	res := get("/introspect")
	var in struct {
		Manual           bool `json:"manual"`
		ConnectionStatus struct {
			Status string `json:"status"`
		} `json:"connection_status"`
		AuthenticationMethods []struct {
			Type             string `json:"type"`
			ConnectionStatus struct {
				Status string `json:"status"`
			} `json:"connection_status"`
			Products []string `json:"products"`
		} `json:"authentication_methods"`
	}
	json.NewDecoder(res.Body).Decode(&in)
	res.Body.Close()
	fmt.Println("connection:", in.ConnectionStatus.Status, "manual:", in.Manual)
	for _, m := range in.AuthenticationMethods {
		fmt.Println(m.Type, m.ConnectionStatus.Status, m.Products)
	}
	res = get("/employer/company")
	res.Body.Close()
	fmt.Println("company:", res.StatusCode)
	// Output:
	// connection: connected manual: true
	// credential connected [company directory]
	// assisted error_permissions [benefits]
	// company: 200
}
