package finchtest_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// exchangeAnswer is what the tests read of a POST /auth/token answer.
type exchangeAnswer struct {
	AccessToken string   `json:"access_token"`
	Products    []string `json:"products"`
	EntityIDs   []string `json:"entity_ids"`
}

func readExchange(t *testing.T, res response) exchangeAnswer {
	t.Helper()
	accessToken(t, res)
	var a exchangeAnswer
	if err := json.Unmarshal(res.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGrantOnly: the next reconnect grants a subset of the products asked
// for, through each way of reconnecting; the one after grants them all.
func TestGrantOnly(t *testing.T) {
	ways := []struct {
		name string
		code func(t *testing.T, s *finchtest.Server, id string) (code string, redirect *string)
		want []string // when GrantOnly is company, payment
	}{
		{"classic link (company directory)", func(t *testing.T, s *finchtest.Server, id string) (string, *string) {
			cb, err := s.Approve(classicURL(s, id, ""))
			if err != nil {
				t.Fatal(err)
			}
			return codeFrom(t, cb, redirect), ptr(redirect)
		}, []string{"company"}},
		{"session (directory payment company)", func(t *testing.T, s *finchtest.Server, id string) (string, *string) {
			cb, err := s.Approve(session(t, s, `{"connection_id":"`+id+`","redirect_uri":"`+redirect+`","products":["directory","payment","company"]}`))
			if err != nil {
				t.Fatal(err)
			}
			return codeFrom(t, cb, redirect), ptr(redirect)
		}, []string{"payment", "company"}},
		{"IssueCode (the connection's)", func(t *testing.T, s *finchtest.Server, id string) (string, *string) {
			return s.IssueCode(id), nil
		}, []string{"company", "payment"}},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			s := newServer(t)
			c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
			if err := s.SetNextReconnect(c.ID, finchtest.NextReconnect{GrantOnly: []string{"payment", "company", "benefits"}}); err != nil {
				t.Fatal(err)
			}
			code, rd := w.code(t, s, c.ID)
			a := readExchange(t, exchange(t, s, code, rd))
			if !slices.Equal(a.Products, w.want) {
				t.Errorf("exchange products = %v, want %v", a.Products, w.want)
			}
			in := introspect(t, s, a.AccessToken)
			if !slices.Equal(in.Products, w.want) || !slices.Equal(in.AuthenticationMethods[0].Products, w.want) {
				t.Errorf("introspect products = %v, method's %v", in.Products, in.AuthenticationMethods[0].Products)
			}
			// Spent: the next reconnect grants what it asks.
			code, rd = w.code(t, s, c.ID)
			if a := readExchange(t, exchange(t, s, code, rd)); len(a.Products) < len(w.want) || !slices.Contains(a.Products, "company") {
				t.Errorf("second reconnect products = %v", a.Products)
			}
		})
	}
}

// TestReconnectDrift: another user authenticates, an entity is lost and
// one gained; ids stay, /introspect and the exchange say so.
func TestReconnectDrift(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	tok := s.AddConnection(finchtest.Connection{Entities: []finchtest.Entity{{Name: "East"}, {Name: "West", Status: "reauth"}}})
	c := connectionOf(t, s, tok)
	err := s.SetNextReconnect(c.ID, finchtest.NextReconnect{
		Username:       "new.admin@customer.example.com",
		RemoveEntities: []string{c.Entities[0].ID, "nope"},
		AddEntities:    []finchtest.Entity{{Name: "North"}, {ID: "ent_south", Name: "South", SourceID: "s-1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := readExchange(t, exchange(t, s, s.IssueCode(c.ID), nil))
	in := introspect(t, s, a.AccessToken)
	var ids []string
	for _, e := range in.Entities {
		ids = append(ids, e.ID)
	}
	if len(ids) != 3 || ids[0] != c.Entities[1].ID || ids[2] != "ent_south" || slices.Contains(ids, c.Entities[0].ID) || !slices.Equal(a.EntityIDs, ids) {
		t.Errorf("entities = %v, exchange entity_ids %v", ids, a.EntityIDs)
	}
	if in.Username != "new.admin@customer.example.com" || in.ConnectionID != c.ID {
		t.Errorf("username %q, connection %q", in.Username, in.ConnectionID)
	}
	// West healed: one event; gaining and losing entities sends none.
	if got := statusOf(t, rc.received()); !slices.Equal(got, []string{"connected"}) {
		t.Errorf("webhooks = %v", got)
	}
	// The next reconnect changes nothing more.
	a2 := readExchange(t, exchange(t, s, s.IssueCode(c.ID), nil))
	if in := introspect(t, s, a2.AccessToken); len(in.Entities) != 3 || in.Username != "new.admin@customer.example.com" {
		t.Errorf("second reconnect: %+v", in)
	}
}

func TestSetNextReconnectErrors(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	if err := s.SetNextReconnect("nope", finchtest.NextReconnect{}); err == nil {
		t.Error("unknown connection: no error")
	}
	if err := s.SetNextReconnect(c.ID, finchtest.NextReconnect{RemoveEntities: []string{c.Entities[0].ID}}); err == nil {
		t.Error("removing every entity: no error")
	}
	if err := s.SetNextReconnect(c.ID, finchtest.NextReconnect{RemoveEntities: []string{c.Entities[0].ID}, AddEntities: []finchtest.Entity{{}}}); err != nil {
		t.Errorf("replacing the only entity: %v", err)
	}
	send(t, s, req{method: "POST", path: "/disconnect", token: tok})
	if err := s.SetNextReconnect(c.ID, finchtest.NextReconnect{}); err == nil {
		t.Error("disconnected connection: no error")
	}
}
