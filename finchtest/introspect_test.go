package finchtest_test

import (
	"slices"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// TestSupersededIntrospection: a token replaced by a reconnect is refused
// by data calls in every mode; its /introspect reports the connection's
// statuses by default, and "reauth" in the older mode.
func TestSupersededIntrospection(t *testing.T) {
	tests := []struct {
		mode         finchtest.SupersededIntrospection
		wantConn     string
		wantEntities []string
		wantMethods  []string
	}{
		{finchtest.SupersededConnectionStatus, "connected", []string{"connected", "disconnected"}, []string{"credential:connected", "oauth:error_permissions"}},
		{finchtest.SupersededReauth, "reauth", []string{"reauth", "disconnected"}, []string{"credential:reauth", "oauth:error_permissions"}},
		{finchtest.SupersededIntrospection(42), "connected", []string{"connected", "disconnected"}, []string{"credential:connected", "oauth:error_permissions"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			s := newServer(t)
			old := s.AddConnection(finchtest.Connection{
				Entities: []finchtest.Entity{{}, {Status: "disconnected"}},
				Methods:  []finchtest.AuthMethod{{Type: "credential"}, {Type: "oauth", Status: "error_permissions"}},
			})
			c := connectionOf(t, s, old)
			s.Break(c.ID)
			live := accessToken(t, exchange(t, s, s.IssueCode(c.ID), nil))
			s.SetSupersededIntrospection(tt.mode)

			in := introspect(t, s, old)
			var entities []string
			for _, e := range in.Entities {
				entities = append(entities, e.Status)
			}
			if in.ConnectionStatus.Status != tt.wantConn || !slices.Equal(entities, tt.wantEntities) || !slices.Equal(in.methods(), tt.wantMethods) {
				t.Errorf("old token: %s %v %v, want %s %v %v", in.ConnectionStatus.Status, entities, in.methods(), tt.wantConn, tt.wantEntities, tt.wantMethods)
			}
			if in.ConnectionID != c.ID {
				t.Errorf("connection_id = %q", in.ConnectionID)
			}
			checkError(t, send(t, s, req{method: "GET", path: "/employer/directory", token: old}), 401, "authentication_error", "reauthenticate_user")

			// The live token is not affected by the mode.
			if got := introspect(t, s, live).ConnectionStatus.Status; got != "connected" {
				t.Errorf("live token: %s", got)
			}
			// The connection breaks again: the old token shows it in both modes.
			s.Break(c.ID)
			if got := introspect(t, s, old).ConnectionStatus.Status; got != "reauth" {
				t.Errorf("old token after Break: %s", got)
			}
		})
	}
}

func TestSupersededIntrospectionString(t *testing.T) {
	for m, want := range map[finchtest.SupersededIntrospection]string{
		finchtest.SupersededConnectionStatus: "SupersededConnectionStatus",
		finchtest.SupersededReauth:           "SupersededReauth",
		7:                                    "SupersededIntrospection(7)",
	} {
		if got := m.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
