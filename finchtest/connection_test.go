package finchtest_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// introspectStatuses returns the connection status and each entity's
// status as /introspect reports them.
func introspectStatuses(t *testing.T, s *finchtest.Server, tok string) (conn string, entities []string) {
	t.Helper()
	res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
	if res.status != 200 {
		t.Fatalf("introspect: status %d", res.status)
	}
	m := res.json(t)
	conn, _ = m["connection_status"].(map[string]any)["status"].(string)
	for _, e := range m["entities"].([]any) {
		st, _ := e.(map[string]any)["status"].(string)
		entities = append(entities, st)
	}
	return conn, entities
}

// TestEntityStatus walks a three-entity connection through entity-level
// breaks and heals: only the entity named changes, data keeps answering
// 200 while one entity works, and the connection breaks with the last one.
func TestEntityStatus(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{Entities: []finchtest.Entity{{Name: "East"}, {Name: "West"}, {Name: "North"}}})
	c := connectionOf(t, s, tok)
	e := func(i int) string { return c.Entities[i].ID }

	steps := []struct {
		name         string
		do           func()
		wantConn     string
		wantEntities []string
		wantData     int
	}{
		{"start", func() {}, "connected", []string{"connected", "connected", "connected"}, 200},
		{"break east", func() { s.BreakEntity(c.ID, e(0)) }, "connected", []string{"reauth", "connected", "connected"}, 200},
		{"break east again", func() { s.BreakEntity(c.ID, e(0)) }, "connected", []string{"reauth", "connected", "connected"}, 200},
		{"disconnect west", func() { s.SetEntityStatus(c.ID, e(1), "disconnected") }, "connected", []string{"reauth", "disconnected", "connected"}, 200},
		{"break north, the last working one", func() { s.BreakEntity(c.ID, e(2)) }, "reauth", []string{"reauth", "disconnected", "reauth"}, 401},
		{"heal east: the connection stays broken", func() { s.SetEntityStatus(c.ID, e(0), "connected") }, "reauth", []string{"connected", "disconnected", "reauth"}, 401},
		{"heal the connection", func() { s.SetStatus(c.ID, "connected") }, "connected", []string{"connected", "disconnected", "reauth"}, 200},
		{"north follows the connection again", func() { s.SetEntityStatus(c.ID, e(2), "") }, "connected", []string{"connected", "disconnected", "connected"}, 200},
		{"break the connection: followers follow", func() { s.Break(c.ID) }, "reauth", []string{"connected", "disconnected", "reauth"}, 401},
		{"unknown ids are ignored", func() {
			s.BreakEntity(c.ID, "nope")
			s.BreakEntity("nope", e(0))
			s.SetEntityStatus("nope", "nope", "connected")
		}, "reauth", []string{"connected", "disconnected", "reauth"}, 401},
	}
	for _, st := range steps {
		st.do()
		conn, entities := introspectStatuses(t, s, tok)
		if conn != st.wantConn || !slices.Equal(entities, st.wantEntities) {
			t.Errorf("%s: introspect = %s %v, want %s %v", st.name, conn, entities, st.wantConn, st.wantEntities)
		}
		if res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok}); res.status != st.wantData {
			t.Errorf("%s: directory status %d, want %d", st.name, res.status, st.wantData)
		}
		got, _ := s.Connection(c.ID)
		if got.Status != st.wantConn {
			t.Errorf("%s: Connection.Status = %q, want %q", st.name, got.Status, st.wantConn)
		}
	}
}

// TestReconnectHealsBrokenEntities: a code exchange heals the entities in
// reauth (and only those), whether or not the connection was broken.
func TestReconnectHealsBrokenEntities(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *finchtest.Server, c finchtest.Connection)
	}{
		{"one entity broken", func(s *finchtest.Server, c finchtest.Connection) { s.BreakEntity(c.ID, c.Entities[0].ID) }},
		{"every entity broken", func(s *finchtest.Server, c finchtest.Connection) {
			s.BreakEntity(c.ID, c.Entities[0].ID)
			s.BreakEntity(c.ID, c.Entities[2].ID)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tok := s.AddConnection(finchtest.Connection{Entities: []finchtest.Entity{{}, {Status: "disconnected"}, {}}})
			c := connectionOf(t, s, tok)
			tt.setup(s, c)
			tok2 := accessToken(t, exchange(t, s, s.IssueCode(c.ID), nil))
			conn, entities := introspectStatuses(t, s, tok2)
			if want := []string{"connected", "disconnected", "connected"}; conn != "connected" || !slices.Equal(entities, want) {
				t.Errorf("after reconnect: %s %v, want connected %v", conn, entities, want)
			}
		})
	}
}

// introspection is what the tests read of an /introspect answer.
type introspection struct {
	ConnectionID     string `json:"connection_id"`
	ConnectionStatus struct {
		Status             string  `json:"status"`
		LastSuccessfulSync *string `json:"last_successful_sync"`
	} `json:"connection_status"`
	Products []string `json:"products"`
	Entities []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"entities"`
	AuthenticationMethods []struct {
		Type             string `json:"type"`
		ConnectionStatus struct {
			Status string `json:"status"`
		} `json:"connection_status"`
		Products []string `json:"products"`
	} `json:"authentication_methods"`
	Manual   bool   `json:"manual"`
	Username string `json:"username"`
}

// introspect reads /introspect with tok, failing unless it answers 200.
func introspect(t *testing.T, s *finchtest.Server, tok string) introspection {
	t.Helper()
	res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
	if res.status != 200 {
		t.Fatalf("introspect: status %d: %.300s", res.status, res.body)
	}
	var in introspection
	if err := json.Unmarshal(res.body, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// methods returns "type:status" for each authentication method.
func (in introspection) methods() []string {
	var out []string
	for _, m := range in.AuthenticationMethods {
		out = append(out, m.Type+":"+m.ConnectionStatus.Status)
	}
	return out
}

// TestMethodStatus walks a two-method connection through method-level
// changes: /introspect reports each method's own status, data answers by
// the connection's status alone, and a reconnect heals methods in reauth.
func TestMethodStatus(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{Methods: []finchtest.AuthMethod{
		{Type: "credential", Products: []string{"company", "directory"}},
		{Type: "api_token"},
	}})
	c := connectionOf(t, s, tok)
	steps := []struct {
		name     string
		do       func()
		wantConn string
		want     []string
		wantData int
	}{
		{"start", func() {}, "connected", []string{"credential:connected", "api_token:connected"}, 200},
		{"credential broken: data still answers", func() { s.SetMethodStatus(c.ID, "credential", "reauth") },
			"connected", []string{"credential:reauth", "api_token:connected"}, 200},
		{"unknown type and connection ignored", func() {
			s.SetMethodStatus(c.ID, "oauth", "reauth")
			s.SetMethodStatus("nope", "credential", "connected")
		}, "connected", []string{"credential:reauth", "api_token:connected"}, 200},
		{"every method broken: the connection is not", func() { s.SetMethodStatus(c.ID, "api_token", "error_permissions") },
			"connected", []string{"credential:reauth", "api_token:error_permissions"}, 200},
		{"the connection breaks: followers follow", func() {
			s.SetMethodStatus(c.ID, "api_token", "")
			s.Break(c.ID)
		}, "reauth", []string{"credential:reauth", "api_token:reauth"}, 401},
	}
	for _, st := range steps {
		st.do()
		in := introspect(t, s, tok)
		if in.ConnectionStatus.Status != st.wantConn || !slices.Equal(in.methods(), st.want) {
			t.Errorf("%s: introspect = %s %v, want %s %v", st.name, in.ConnectionStatus.Status, in.methods(), st.wantConn, st.want)
		}
		if res := send(t, s, req{method: "GET", path: "/employer/company", token: tok}); res.status != st.wantData {
			t.Errorf("%s: company status %d, want %d", st.name, res.status, st.wantData)
		}
	}
	in := introspect(t, s, tok)
	if p := in.AuthenticationMethods[0].Products; !slices.Equal(p, []string{"company", "directory"}) {
		t.Errorf("credential products = %v", p)
	}
	if p := in.AuthenticationMethods[1].Products; !slices.Equal(p, in.Products) {
		t.Errorf("api_token products = %v, want the connection's %v", p, in.Products)
	}

	tok2 := accessToken(t, exchange(t, s, s.IssueCode(c.ID), nil))
	if got := introspect(t, s, tok2).methods(); !slices.Equal(got, []string{"credential:connected", "api_token:connected"}) {
		t.Errorf("after reconnect: %v", got)
	}
}

// TestMethodStatusWebhook: a method's change sends account.updated naming
// the method's type; a connection's change names its first method.
func TestMethodStatusWebhook(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{Methods: []finchtest.AuthMethod{{Type: "oauth"}, {Type: "assisted"}}}))
	s.SetMethodStatus(c.ID, "assisted", "error_permissions")
	s.SetMethodStatus(c.ID, "assisted", "error_permissions") // no change
	s.SetStatus(c.ID, "pending")
	s.SetMethodStatus(c.ID, "assisted", "") // follows the connection again: pending
	want := []string{"assisted:error_permissions", "oauth:pending", "assisted:pending"}
	var got []string
	for _, g := range rc.received() {
		var b accountUpdated
		json.Unmarshal(g.body, &b)
		var m struct {
			Type string `json:"type"`
		}
		json.Unmarshal(b.Data.AuthenticationMethod, &m)
		got = append(got, m.Type+":"+b.Data.Status)
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

// TestAssistedConnection: manual true, an "assisted" method, the assisted
// statuses, and the account.updated events they send.
func TestAssistedConnection(t *testing.T) {
	for _, conn := range []finchtest.Connection{
		{Assisted: true},
		{Methods: []finchtest.AuthMethod{{Type: "assisted"}}},
	} {
		s := newServer(t)
		rc := newReceiver(t, vectorSecret)
		rc.register(t, s, finchtest.Webhook{StringAuthMethod: true})
		tok := s.AddConnection(conn)
		c := connectionOf(t, s, tok)
		if !c.Assisted || len(c.Methods) != 1 || c.Methods[0].Type != "assisted" {
			t.Errorf("%+v: Assisted %v, Methods %+v", conn, c.Assisted, c.Methods)
		}
		for _, st := range []string{"error_no_account_setup", "error_permissions", "connected"} {
			s.SetStatus(c.ID, st)
			in := introspect(t, s, tok)
			if !in.Manual || in.ConnectionStatus.Status != st || !slices.Equal(in.methods(), []string{"assisted:" + st}) {
				t.Errorf("%s: manual %v, status %s, methods %v", st, in.Manual, in.ConnectionStatus.Status, in.methods())
			}
			res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok})
			if st == "connected" {
				if res.status != 200 {
					t.Errorf("connected: directory %d", res.status)
				}
				continue
			}
			checkError(t, res, 401, "authentication_error", "account_setup_required")
		}
		got := rc.received()
		if len(got) != 3 {
			t.Fatalf("%d events, want 3", len(got))
		}
		for i, g := range got {
			var b accountUpdated
			json.Unmarshal(g.body, &b)
			if string(b.Data.AuthenticationMethod) != `"assisted"` {
				t.Errorf("event %d: authentication_method %s", i, b.Data.AuthenticationMethod)
			}
		}
	}
}
