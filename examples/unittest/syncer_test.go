package unittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"go.uber.org/goleak"
)

// The Transport's work runs in goroutines that Close stops: goleak checks
// that every test closed what it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// fakeAPI is the Finch API the fake RoundTripper plays. The Transport
// watches only its APIBaseURL, so it must be the URL the code under test
// calls.
const fakeAPI = "https://finch.invalid" // never dialled

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
			tr := &finchreauth.Transport{Base: fake, APIBaseURL: fakeAPI}
			defer tr.Close()
			var flagged flags
			s := &Syncer{
				Client:         &http.Client{Transport: tr},
				BaseURL:        fakeAPI,
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
			tr := &finchreauth.Transport{Base: finch.Client().Transport, APIBaseURL: finch.URL}
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

// newTransport returns a Transport for the fake Finch, with a Connect so
// that events carry a reconnect link, and the application's Notifier.
func newTransport(finch *finchtest.Server, notifier finchreauth.Notifier) *finchreauth.Transport {
	return &finchreauth.Transport{
		Base:       finch.Client().Transport,
		APIBaseURL: finch.URL,
		Notifier:   notifier,
		Connect: &finchreauth.Connect{
			ClientID:     finch.ClientID,
			ClientSecret: finch.ClientSecret,
			RedirectURI:  "https://app.example/finch/callback",
			StateKeys:    [][]byte{[]byte("a fixed test key, 32 bytes long.")},
		},
	}
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
			tr := newTransport(finch, notifier)
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
			// Each sync got Finch's 401 at once; the Transport handles the
			// broken token on its own. Flush waits for that handling.
			if err := tr.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := notifier.all()
			if len(got) != 1 {
				t.Fatalf("%d notifications, want 1", len(got))
			}
			e := got[0]
			if e.Connection.ConnectionID != conn.ID || e.Connection.CustomerName != "Acme Corp" {
				t.Errorf("notified connection %q of %q, want %q of Acme Corp", e.Connection.ConnectionID, e.Connection.CustomerName, conn.ID)
			}
			if e.Source != "detection" || e.TokenFingerprint != finchreauth.Token(token).Fingerprint() {
				t.Errorf("event from %q names token %s, want a detection of %s", e.Source, e.TokenFingerprint, finchreauth.Token(token).Fingerprint())
			}
			if !strings.HasPrefix(e.ReconnectURL, finch.URL+"/authorize?session=") {
				t.Errorf("event's link is %q, want a Connect session", e.ReconnectURL)
			}
		})
	}
}

// When Finch's webhook says the connection broke, the customer hears of it
// before any sync fails, and once: the syncs that fail afterwards notify
// nobody. finchtest sends its webhooks to the Transport's WebhookHandler,
// served by an httptest server.
func TestNotifiedByWebhook(t *testing.T) {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)

	notifier := &events{}
	tr := newTransport(finch, notifier)
	defer tr.Close()
	// The application saved the token when the employer connected: the
	// webhook names only the connection, the Transport asks Finch the rest.
	if err := tr.SaveToken(context.Background(), conn.ID, finchreauth.Token(token)); err != nil {
		t.Fatal(err)
	}
	const secret = "c2VjcmV0IG9mIHRoZSB0ZXN0IHdlYmhvb2sgZW5kcG9pbnQ=" // base64, as Finch shows it
	app := httptest.NewServer(tr.WebhookHandler(secret))
	defer app.Close()
	if err := finch.SetWebhook(finchtest.Webhook{URL: app.URL, Secrets: []string{secret}}); err != nil {
		t.Fatal(err)
	}

	finch.Break(conn.ID) // sends account.updated, and returns once the handler answered
	if d := finch.Webhooks(); len(d) != 1 || d[0].StatusCode != http.StatusOK {
		t.Fatalf("webhook deliveries: %+v, want one answered 200", d)
	}
	// The notification goes out after the webhook is acknowledged.
	deadline := time.Now().Add(10 * time.Second)
	for len(notifier.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var flagged flags
	s := &Syncer{Client: &http.Client{Transport: tr}, BaseURL: finch.URL, NeedsAttention: flagged.add}
	if _, err := s.Directory(context.Background(), Customer{ID: "cust_1", AccessToken: token}); !finchreauth.IsReauth(err) {
		t.Errorf("sync after the break: %v, want a re-authentication error", err)
	}

	got := notifier.all()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	if e := got[0]; e.Source != "webhook" || e.Connection.CustomerName != "Acme Corp" || e.ReconnectURL == "" {
		t.Errorf("notified from %q for %q with link %q, want the webhook's, for Acme Corp, with a link", e.Source, e.Connection.CustomerName, e.ReconnectURL)
	}
	if flagged.count() != 1 {
		t.Errorf("flagged %d times, want 1", flagged.count())
	}
}

// A reminder goes out a day after the first notification. The Transport's
// clock is a field: a test moves it instead of waiting, and calls Remind,
// which Transport.Run calls every minute in production.
func TestReminderADayLater(t *testing.T) {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := finch.ConnectionForToken(token)
	finch.Break(conn.ID)

	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	notifier := &events{}
	tr := newTransport(finch, notifier)
	tr.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	defer tr.Close()
	s := &Syncer{Client: &http.Client{Transport: tr}, BaseURL: finch.URL}
	s.Directory(context.Background(), Customer{ID: "cust_1", AccessToken: token})
	tr.Flush(context.Background()) // the first notification goes out on its own

	for _, tc := range []struct {
		after time.Duration
		want  int // notifications so far
	}{{23 * time.Hour, 1}, {24 * time.Hour, 2}} {
		mu.Lock()
		now = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(tc.after)
		mu.Unlock()
		if err := tr.Remind(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := notifier.all(); len(got) != tc.want {
			t.Fatalf("after %s: %d notifications, want %d", tc.after, len(got), tc.want)
		}
	}
	first, reminder := notifier.all()[0], notifier.all()[1]
	if reminder.Reminder != 1 || reminder.Episode != first.Episode || reminder.ReconnectURL != first.ReconnectURL {
		t.Errorf("reminder %d of episode %s with link %q; want reminder 1 of %s with the first link", reminder.Reminder, reminder.Episode, reminder.ReconnectURL, first.Episode)
	}
}
