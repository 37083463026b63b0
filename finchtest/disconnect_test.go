package finchtest_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// TestDisconnect: POST /disconnect revokes every token of the connection,
// leaves other connections alone, sends account.updated "disconnected",
// and nothing brings the connection back.
func TestDisconnect(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	t1 := s.AddConnection(finchtest.Connection{ID: "conn_a"})
	t2 := s.AddConnection(finchtest.Connection{ID: "conn_a"})
	other := s.AddConnection(finchtest.Connection{})
	code := s.IssueCode("conn_a") // issued before the disconnect
	s.Break("conn_a")             // a connection in reauth can be disconnected too

	res := send(t, s, req{method: "POST", path: "/disconnect", token: t1})
	if res.status != 200 || string(res.body) != `{"status":"success"}` {
		t.Fatalf("disconnect: %d %s", res.status, res.body)
	}
	for _, tok := range []string{t1, t2} {
		for _, r := range []req{
			{method: "GET", path: "/introspect"}, {method: "GET", path: "/employer/company"},
			{method: "POST", path: "/disconnect"}, {method: "PUT", path: "/sandbox/connections/accounts", body: `{"connection_status":"connected"}`},
		} {
			r.token = tok
			checkError(t, send(t, s, r), 401, "invalid_token_error", "")
		}
	}
	if res := send(t, s, req{method: "GET", path: "/employer/company", token: other}); res.status != 200 {
		t.Errorf("another connection: %d", res.status)
	}
	if got := statusOf(t, rc.received()); !slices.Equal(got, []string{"reauth", "disconnected"}) {
		t.Errorf("webhooks = %v", got)
	}
	if n := s.Calls("POST", "/disconnect"); n != 3 {
		t.Errorf("Calls = %d, want 3", n)
	}

	// It stays disconnected.
	s.SetStatus("conn_a", "connected")
	s.SetMethodStatus("conn_a", "credential", "connected")
	c, _ := s.Connection("conn_a")
	s.SetEntityStatus("conn_a", c.Entities[0].ID, "connected")
	if c, _ := s.Connection("conn_a"); c.Status != "disconnected" || c.Methods[0].Status != "" || c.Entities[0].Status != "" {
		t.Errorf("after the setters: %+v", c)
	}
	checkError(t, exchange(t, s, code, nil), 400, "invalid_grant_error", "")
	if s.IssueCode("conn_a") != "" {
		t.Error("IssueCode for a disconnected connection")
	}
	checkError(t, send(t, s, req{method: "POST", path: "/connect/sessions/reauthenticate", basic: [2]string{s.ClientID, s.ClientSecret},
		body: `{"connection_id":"conn_a"}`}), 404, "not_found_error", "")
	if _, err := s.Approve(classicURL(s, "conn_a", "")); err == nil || !strings.Contains(err.Error(), "disconnected") {
		t.Errorf("Approve: %v", err)
	}
	if _, err := s.ApproveAs(classicURL(s, connectionOf(t, s, other).ID, ""), "conn_a"); err == nil {
		t.Error("ApproveAs into a disconnected connection: no error")
	}
	if n := len(rc.received()); n != 2 {
		t.Errorf("%d webhooks after the disconnect", n)
	}
}

// TestDisconnectRefusals: no token, a superseded token; and a session
// link made before the disconnect.
func TestDisconnectRefusals(t *testing.T) {
	s := newServer(t)
	old := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, old)
	link := session(t, s, `{"connection_id":"`+c.ID+`","redirect_uri":"https://app.example.com/cb"}`)
	live := accessToken(t, exchange(t, s, s.IssueCode(c.ID), nil))

	checkError(t, send(t, s, req{method: "POST", path: "/disconnect"}), 401, "unauthorized_request_error", "")
	checkError(t, send(t, s, req{method: "POST", path: "/disconnect", token: old}), 401, "authentication_error", "reauthenticate_user")
	if got, _ := s.Connection(c.ID); got.Status != "connected" {
		t.Fatalf("status %q after refused disconnects", got.Status)
	}
	if res := send(t, s, req{method: "POST", path: "/disconnect", token: live}); res.status != 200 {
		t.Fatalf("disconnect: %d", res.status)
	}
	if _, err := s.Approve(link); err == nil {
		t.Error("a session made before the disconnect still completes")
	}
	// The superseded token is revoked too: revocation wins.
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: old}), 401, "invalid_token_error", "")

	// Registered anew by the test: new tokens work, revoked ones stay so.
	fresh := s.AddConnection(finchtest.Connection{ID: c.ID})
	if res := send(t, s, req{method: "GET", path: "/employer/company", token: fresh}); res.status != 200 {
		t.Errorf("fresh token: %d", res.status)
	}
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: live}), 401, "invalid_token_error", "")
}

func TestRevokedAnswer(t *testing.T) {
	tests := []struct {
		answer        finchtest.RevokedAnswer
		status        int
		name, display string
	}{
		{finchtest.RevokedInvalidToken, 401, "invalid_token_error", "RevokedInvalidToken"},
		{finchtest.RevokedServerError, 500, "server_error", "RevokedServerError"},
		{finchtest.RevokedAnswer(5), 401, "invalid_token_error", "RevokedAnswer(5)"},
	}
	for _, tt := range tests {
		t.Run(tt.display, func(t *testing.T) {
			if got := tt.answer.String(); got != tt.display {
				t.Errorf("String() = %q", got)
			}
			s := newServer(t)
			tok := s.AddConnection(finchtest.Connection{})
			if res := send(t, s, req{method: "POST", path: "/disconnect", token: tok}); res.status != 200 {
				t.Fatalf("disconnect: %d", res.status)
			}
			s.SetRevokedAnswer(tt.answer) // applies to tokens already revoked
			for _, path := range []string{"/introspect", "/employer/directory"} {
				checkError(t, send(t, s, req{method: "GET", path: path, token: tok}), tt.status, tt.name, "")
			}
		})
	}
}
