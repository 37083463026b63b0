package finchtest_test

import (
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
