package finchtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic map, failing the test if it is not
// a JSON object.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %.200s", err, r.body)
	}
	return m
}

// req describes a request to send.
type req struct {
	method string
	path   string
	token  string // bearer token; "" sends no Authorization
	body   string
	basic  [2]string // HTTP Basic id, secret when basic[0] != ""
	header map[string]string
}

// send sends r to s through s.Client() and reads the whole answer. The
// client does not follow redirects.
func send(t *testing.T, s *finchtest.Server, r req) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, s.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.basic[0] != "" {
		hr.SetBasicAuth(r.basic[0], r.basic[1])
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	c := *s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// finchError is a Finch error body with every field it may carry.
type finchError struct {
	Code       int     `json:"code"`
	Name       string  `json:"name"`
	FinchCode  *string `json:"finch_code"`
	Message    string  `json:"message"`
	StatusCode int     `json:"statusCode"`
	Status     int     `json:"status"`
}

// checkError fails the test unless res is a Finch error with that status,
// name and finch_code ("" means absent), and the exact field set.
func checkError(t *testing.T, res response, status int, name, finchCode string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %.300s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(res.body, &m); err != nil {
		t.Fatalf("error body is not JSON: %v: %.200s", err, res.body)
	}
	want := []string{"code", "name", "message", "statusCode", "status"}
	if finchCode != "" {
		want = append(want, "finch_code")
	}
	if len(m) != len(want) {
		t.Errorf("error body fields = %d, want %v: %s", len(m), want, res.body)
	}
	var e finchError
	if err := json.Unmarshal(res.body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != status || e.StatusCode != status || e.Status != status {
		t.Errorf("code/statusCode/status = %d/%d/%d, want %d", e.Code, e.StatusCode, e.Status, status)
	}
	if e.Name != name {
		t.Errorf("name = %q, want %q", e.Name, name)
	}
	if e.Message == "" {
		t.Error("empty message")
	}
	switch {
	case finchCode == "" && e.FinchCode != nil:
		t.Errorf("finch_code = %q, want none", *e.FinchCode)
	case finchCode != "" && (e.FinchCode == nil || *e.FinchCode != finchCode):
		t.Errorf("finch_code = %v, want %q", e.FinchCode, finchCode)
	}
}

// newServer starts a server closed at the end of the test.
func newServer(t *testing.T) *finchtest.Server {
	t.Helper()
	s := finchtest.NewServer()
	t.Cleanup(s.Close)
	return s
}

// connectionOf returns the connection of a token, failing if unknown.
func connectionOf(t *testing.T, s *finchtest.Server, token string) finchtest.Connection {
	t.Helper()
	c, ok := s.ConnectionForToken(token)
	if !ok {
		t.Fatal("ConnectionForToken: unknown token")
	}
	return c
}

// exchange posts a code to /auth/token; redirect nil omits redirect_uri.
func exchange(t *testing.T, s *finchtest.Server, code string, redirect *string) response {
	t.Helper()
	body := map[string]any{"client_id": s.ClientID, "client_secret": s.ClientSecret, "code": code}
	if redirect != nil {
		body["redirect_uri"] = *redirect
	}
	b, _ := json.Marshal(body)
	return send(t, s, req{method: "POST", path: "/auth/token", body: string(b)})
}

// accessToken returns the access_token of a successful exchange.
func accessToken(t *testing.T, res response) string {
	t.Helper()
	if res.status != 200 {
		t.Fatalf("exchange: status %d: %.300s", res.status, res.body)
	}
	tok, _ := res.json(t)["access_token"].(string)
	if tok == "" {
		t.Fatal("exchange: no access_token")
	}
	return tok
}

func ptr[T any](v T) *T { return &v }
