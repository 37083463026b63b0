package unittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// roundTripFunc is a fake http.RoundTripper: the test decides every answer.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// reply builds the response a fake RoundTripper returns.
func reply(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Status:     http.StatusText(status),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	}
}

// Finch's answers, as the fake RoundTripper gives them.
const (
	page1        = `{"paging":{"count":3,"offset":0},"individuals":[{"id":"i1"},{"id":"i2"}]}`
	page2        = `{"paging":{"count":3,"offset":2},"individuals":[{"id":"i3"}]}`
	reauth       = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`
	invalidToken = `{"code":401,"name":"invalid_token_error","message":"Invalid access token"}`
	serverError  = `{"code":500,"name":"server_error","message":"Internal server error"}`
	introspect   = `{"connection_id":"conn_1","customer_name":"Acme Corp","products":["directory"]}`
)

// flags records the customers the Syncer flagged.
type flags struct {
	mu  sync.Mutex
	ids []string
}

func (f *flags) add(ctx context.Context, customerID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, customerID)
}

func (f *flags) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// With a fake RoundTripper as the Transport's Base, nothing leaves the
// process: each case scripts Finch's answers, one per directory call.
func TestDirectoryWithFakeRoundTripper(t *testing.T) {
	type answer struct {
		status int
		body   string
	}
	tests := []struct {
		name        string
		answers     []answer
		wantCount   int  // employees returned
		wantCalls   int  // directory calls made
		wantFlagged bool // NeedsAttention called
		wantReauth  bool // finchreauth.IsReauth(err)
	}{
		{"two pages", []answer{{200, page1}, {200, page2}}, 3, 2, false, false},
		{"reauth on the first page", []answer{{401, reauth}}, 0, 1, true, true},
		{"reauth on the second page stops the sync", []answer{{200, page1}, {401, reauth}, {200, page2}}, 0, 2, true, true},
		{"an invalid token is not a reauth", []answer{{401, invalidToken}}, 0, 1, false, false},
		{"a server error is not a reauth", []answer{{500, serverError}}, 0, 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			calls := 0
			fake := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/introspect" { // the Transport asks who a broken token belongs to
					return reply(req, 200, introspect), nil
				}
				mu.Lock()
				defer mu.Unlock()
				if calls == len(tt.answers) {
					return nil, errors.New("unexpected call")
				}
				a := tt.answers[calls]
				calls++
				return reply(req, a.status, a.body), nil
			})
			tr := &finchreauth.Transport{Base: fake}
			defer tr.Close()
			var flagged flags
			s := &Syncer{
				Client:         &http.Client{Transport: tr},
				BaseURL:        "https://finch.invalid", // never dialled
				PageSize:       2,
				NeedsAttention: flagged.add,
			}

			got, err := s.Directory(context.Background(), Customer{ID: "cust_1", AccessToken: "token_1"})

			if len(got) != tt.wantCount {
				t.Errorf("got %d employees, want %d", len(got), tt.wantCount)
			}
			if calls != tt.wantCalls {
				t.Errorf("made %d directory calls, want %d", calls, tt.wantCalls)
			}
			if (flagged.count() > 0) != tt.wantFlagged {
				t.Errorf("flagged %v, want %v", flagged.ids, tt.wantFlagged)
			}
			if finchreauth.IsReauth(err) != tt.wantReauth {
				t.Errorf("IsReauth(%v) = %v, want %v", err, !tt.wantReauth, tt.wantReauth)
			}
			if (err != nil) != (tt.wantCount == 0) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// Against the fake Finch, over HTTP on the loopback interface: the same
// code, the real wire format, and a connection that breaks.
func TestDirectoryWithFakeFinch(t *testing.T) {
	tests := []struct {
		name        string
		broken      bool
		wantCount   int
		wantCalls   int
		wantFlagged bool
	}{
		{"connected", false, 5, 3, false}, // finchtest's directory has 5 employees: 3 pages of 2
		{"broken", true, 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			finch := finchtest.NewServer()
			defer finch.Close()
			token := finch.AddConnection(finchtest.Connection{})
			if tt.broken {
				conn, _ := finch.ConnectionForToken(token)
				finch.Break(conn.ID)
			}
			tr := &finchreauth.Transport{Base: finch.Client().Transport}
			defer tr.Close()
			var flagged flags
			s := &Syncer{Client: &http.Client{Transport: tr}, BaseURL: finch.URL, PageSize: 2, NeedsAttention: flagged.add}

			got, err := s.Directory(context.Background(), Customer{ID: "cust_1", AccessToken: token})

			if len(got) != tt.wantCount {
				t.Errorf("got %d employees, want %d", len(got), tt.wantCount)
			}
			if n := finch.Calls("GET", "/employer/directory"); n != tt.wantCalls {
				t.Errorf("made %d directory calls, want %d", n, tt.wantCalls)
			}
			if (flagged.count() > 0) != tt.wantFlagged || finchreauth.IsReauth(err) != tt.wantFlagged {
				t.Errorf("flagged %v, err %v; want flagged and IsReauth = %v", flagged.ids, err, tt.wantFlagged)
			}
		})
	}
}

// events is a Notifier that records the Events it is given.
type events struct {
	mu  sync.Mutex
	got []finchreauth.Event
}

func (n *events) Notify(ctx context.Context, e finchreauth.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, e)
	return nil
}

func (n *events) all() []finchreauth.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]finchreauth.Event(nil), n.got...)
}

// However many syncs see the broken connection at once, the Transport
// calls the application's Notifier once, while every sync flags the
// customer.
func TestOneNotificationPerBrokenConnection(t *testing.T) {
	for _, syncs := range []int{1, 20} {
		t.Run(fmt.Sprintf("%d syncs", syncs), func(t *testing.T) {
			t.Parallel()
			finch := finchtest.NewServer()
			defer finch.Close()
			token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
			conn, _ := finch.ConnectionForToken(token)
			finch.Break(conn.ID)

			notifier := &events{}
			tr := &finchreauth.Transport{Base: finch.Client().Transport, Notifier: notifier}
			defer tr.Close()
			var flagged flags
			s := &Syncer{Client: &http.Client{Transport: tr}, BaseURL: finch.URL, NeedsAttention: flagged.add}

			var wg sync.WaitGroup
			for range syncs {
				wg.Go(func() { s.Directory(context.Background(), Customer{ID: "cust_1", AccessToken: token}) })
			}
			wg.Wait()

			if flagged.count() != syncs {
				t.Errorf("%d syncs flagged the customer %d times", syncs, flagged.count())
			}
			// Each sync waited for the Transport's handling of the broken
			// token, so the notification is already out.
			got := notifier.all()
			if len(got) != 1 {
				t.Fatalf("%d notifications, want 1", len(got))
			}
			e := got[0]
			if e.Connection.ConnectionID != conn.ID || e.Connection.CustomerName != "Acme Corp" {
				t.Errorf("notified connection %q of %q, want %q of Acme Corp", e.Connection.ConnectionID, e.Connection.CustomerName, conn.ID)
			}
			if e.TokenFingerprint != finchreauth.Fingerprint(token) {
				t.Errorf("event names token %s, want %s", e.TokenFingerprint, finchreauth.Fingerprint(token))
			}
		})
	}
}
