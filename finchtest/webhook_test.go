package finchtest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

// The test vector all of Finch's SDKs use (FINCH.md).
const (
	vectorSecret = "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"
	vectorID     = "msg_2Lh9KRb0pzN4LePd3XiA4v12Axj"
	vectorTS     = 1676312382
	vectorBody   = `{"company_id":"720be419-0293-4d32-a707-32179b0827ab"}`
	vectorSig    = "v1,m7y0TV2C+hlHxU42wCieApTSTaA8/047OAplBqxIV/s="
)

// Two more secrets for rotations (base64 of 24 bytes each).
const (
	secretOld = "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC0x"
	secretNew = "bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldy0y"
)

// sign is an independent implementation of Finch's signature, so that the
// tests do not check SignWebhook against itself.
func sign(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal("test secret is not base64")
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSignWebhook(t *testing.T) {
	ts := time.Unix(vectorTS, 0)
	other := "v1," + sign(t, secretNew, vectorID, strconv.Itoa(vectorTS), []byte(vectorBody))
	tests := []struct {
		name    string
		secrets []string
		want    string
	}{
		{"the SDKs' test vector", []string{vectorSecret}, vectorSig},
		{"rotation: one pair per secret, space-separated", []string{vectorSecret, secretNew}, vectorSig + " " + other},
		{"a secret that is not base64 is skipped", []string{"not base64!", vectorSecret}, vectorSig},
		{"no secret", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := finchtest.SignWebhook(vectorID, ts, []byte(vectorBody), tt.secrets...); got != tt.want {
				t.Errorf("SignWebhook = %q, want %q", got, tt.want)
			}
		})
	}
	// Sub-second parts of the time do not count: the header has seconds.
	if got := finchtest.SignWebhook(vectorID, ts.Add(999*time.Millisecond), []byte(vectorBody), vectorSecret); got != vectorSig {
		t.Errorf("with milliseconds: %q", got)
	}
}

// received is one request a receiver got.
type received struct {
	id, ts, sig string
	body        []byte
	verified    []string // the secrets whose signature the header holds
}

// receiver is an application's webhook endpoint: it checks each
// delivery's signature against every secret it knows and keeps it.
type receiver struct {
	*httptest.Server
	secrets []string

	mu     sync.Mutex
	got    []received
	status int                                      // answer; 0 means 200
	handle func(http.ResponseWriter, *http.Request) // replaces the answer if set
}

func newReceiver(t *testing.T, secrets ...string) *receiver {
	t.Helper()
	rc := &receiver{secrets: secrets}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{
			id:   r.Header.Get("Finch-Event-Id"),
			ts:   r.Header.Get("Finch-Timestamp"),
			sig:  r.Header.Get("Finch-Signature"),
			body: body,
		}
		for _, secret := range rc.secrets {
			want := sign(t, secret, got.id, got.ts, body)
			for _, pair := range strings.Fields(got.sig) {
				if v, sig, _ := strings.Cut(pair, ","); v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
					got.verified = append(got.verified, secret)
				}
			}
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook request: %s, Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		status, handle := rc.status, rc.handle
		rc.mu.Unlock()
		if handle != nil {
			handle(w, r)
			return
		}
		if status != 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// register registers rc on s with its secrets.
func (rc *receiver) register(t *testing.T, s *finchtest.Server, w finchtest.Webhook) {
	t.Helper()
	w.URL = rc.URL + "/finch/webhook"
	if w.Secrets == nil {
		w.Secrets = rc.secrets
	}
	if err := s.SetWebhook(w); err != nil {
		t.Fatal(err)
	}
}

// event is what a test expects of one account.updated event.
type event struct {
	entity int // index in Entities; -1 for a connection event
	status string
}

// accountUpdated is the body of an account.updated event.
type accountUpdated struct {
	EventType    string  `json:"event_type"`
	ConnectionID string  `json:"connection_id"`
	CompanyID    string  `json:"company_id"`
	AccountID    string  `json:"account_id"`
	EntityID     *string `json:"entity_id"`
	Data         struct {
		Status               string          `json:"status"`
		AuthenticationMethod json.RawMessage `json:"authentication_method"`
	} `json:"data"`
}

var eventIDShape = regexp.MustCompile(`^msg_[0-9A-Za-z]{27}$`)

// TestWebhookOnStatusChange triggers every kind of status change and
// checks the account.updated events the receiver got: one per change,
// signed, with fresh ids, delivered before the trigger returned.
func TestWebhookOnStatusChange(t *testing.T) {
	twoEntities := finchtest.Connection{Entities: []finchtest.Entity{{Name: "East"}, {Name: "West"}}}
	sandboxPut := func(t *testing.T, s *finchtest.Server, tok, status string) {
		res := send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tok, body: `{"connection_status":"` + status + `"}`})
		if res.status != 200 {
			t.Fatalf("sandbox PUT: %d", res.status)
		}
	}
	reconnect := func(t *testing.T, s *finchtest.Server, c finchtest.Connection) {
		cb, err := s.Approve(classicURL(s, c.ID, ""))
		if err != nil {
			t.Fatal(err)
		}
		accessToken(t, exchange(t, s, codeFrom(t, cb, redirect), ptr(redirect)))
	}
	tests := []struct {
		name    string
		conn    finchtest.Connection
		trigger func(t *testing.T, s *finchtest.Server, c finchtest.Connection, tok string)
		want    []event
	}{
		{"Break", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) { s.Break(c.ID) },
			[]event{{-1, "reauth"}}},
		{"Break twice: one change", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.Break(c.ID)
			s.Break(c.ID)
		}, []event{{-1, "reauth"}}},
		{"SetStatus", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.SetStatus(c.ID, "pending")
			s.SetStatus(c.ID, "")
		}, []event{{-1, "pending"}, {-1, "connected"}}},
		{"SetStatus without a change", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.SetStatus(c.ID, "connected")
		}, nil},
		{"sandbox PUT", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, _ finchtest.Connection, tok string) {
			sandboxPut(t, s, tok, "reauth")
			sandboxPut(t, s, tok, "connected")
		}, []event{{-1, "reauth"}, {-1, "connected"}}},
		{"reconnect", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.Break(c.ID)
			reconnect(t, s, c)
		}, []event{{-1, "reauth"}, {-1, "connected"}}},
		{"reconnect of a working connection: no change", finchtest.Connection{}, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			reconnect(t, s, c)
		}, nil},
		{"BreakEntity", twoEntities, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.BreakEntity(c.ID, c.Entities[1].ID)
		}, []event{{1, "reauth"}}},
		{"BreakEntity of every entity", twoEntities, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.BreakEntity(c.ID, c.Entities[0].ID)
			s.BreakEntity(c.ID, c.Entities[1].ID)
		}, []event{{0, "reauth"}, {-1, "reauth"}, {1, "reauth"}}},
		{"SetEntityStatus", twoEntities, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.SetEntityStatus(c.ID, c.Entities[0].ID, "disconnected")
			s.SetEntityStatus(c.ID, c.Entities[0].ID, "") // follows the connection: connected
		}, []event{{0, "disconnected"}, {0, "connected"}}},
		{"reconnect heals an entity", twoEntities, func(t *testing.T, s *finchtest.Server, c finchtest.Connection, _ string) {
			s.BreakEntity(c.ID, c.Entities[0].ID)
			reconnect(t, s, c)
		}, []event{{0, "reauth"}, {0, "connected"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			rc := newReceiver(t, vectorSecret)
			tok := s.AddConnection(tt.conn)
			c := connectionOf(t, s, tok)
			accountID, _ := send(t, s, req{method: "GET", path: "/introspect", token: tok}).json(t)["account_id"].(string)
			rc.register(t, s, finchtest.Webhook{})

			tt.trigger(t, s, c, tok)

			// Synchronous: everything arrived before the trigger returned.
			got := rc.received()
			if len(got) != len(tt.want) {
				t.Fatalf("receiver got %d events, want %d", len(got), len(tt.want))
			}
			records := s.Webhooks()
			if len(records) != len(tt.want) {
				t.Fatalf("Webhooks() = %d records, want %d", len(records), len(tt.want))
			}
			ids := map[string]bool{}
			for i, w := range tt.want {
				g, rec := got[i], records[i]
				if !eventIDShape.MatchString(g.id) || ids[g.id] {
					t.Errorf("event %d: id %q not fresh or not msg_-shaped", i, g.id)
				}
				ids[g.id] = true
				if len(g.verified) != 1 {
					t.Errorf("event %d: signature does not verify", i)
				}
				if sec, err := strconv.ParseInt(g.ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
					t.Errorf("event %d: Finch-Timestamp %q is not now", i, g.ts)
				}

				wantEntity := ""
				if w.entity >= 0 {
					wantEntity = c.Entities[w.entity].ID
				}
				want := accountUpdatedJSON(c, accountID, wantEntity, w.status, `{"type":"credential","benefits_support":null,"supported_fields":null}`)
				if string(g.body) != want {
					t.Errorf("event %d body =\n%s\nwant\n%s", i, g.body, want)
				}

				wantRec := finchtest.WebhookDelivery{
					EventID: g.id, EventType: "account.updated", ConnectionID: c.ID, EntityID: wantEntity,
					Status: w.status, Attempt: 1, Body: g.body, StatusCode: 200,
				}
				if rec.Timestamp.Unix() != mustInt(t, g.ts) {
					t.Errorf("record %d: Timestamp %v, header %s", i, rec.Timestamp, g.ts)
				}
				rec.Timestamp = time.Time{}
				if !equalDelivery(rec, wantRec) {
					t.Errorf("record %d = %+v\nwant %+v", i, rec, wantRec)
				}
			}
		})
	}
}

// accountUpdatedJSON is the exact body of an account.updated event.
func accountUpdatedJSON(c finchtest.Connection, accountID, entityID, status, method string) string {
	entity := ""
	if entityID != "" {
		entity = `,"entity_id":"` + entityID + `"`
	}
	return `{"event_type":"account.updated","connection_id":"` + c.ID + `","company_id":"` + c.CompanyID +
		`","account_id":"` + accountID + `"` + entity + `,"data":{"status":"` + status + `","authentication_method":` + method + `}}`
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}

func equalDelivery(a, b finchtest.WebhookDelivery) bool {
	return a.EventID == b.EventID && a.EventType == b.EventType && a.ConnectionID == b.ConnectionID &&
		a.EntityID == b.EntityID && a.Status == b.Status && a.Attempt == b.Attempt &&
		a.Timestamp.Equal(b.Timestamp) && string(a.Body) == string(b.Body) && a.StatusCode == b.StatusCode &&
		(a.Err == nil) == (b.Err == nil)
}

// TestWebhookShapes covers the options that shape account.updated: the
// older "error_reauth" status and the plain-string authentication_method.
func TestWebhookShapes(t *testing.T) {
	tests := []struct {
		name       string
		hook       finchtest.Webhook
		wantStatus []string // after Break, then after SetStatus("connected")
		wantMethod string
	}{
		{"default", finchtest.Webhook{}, []string{"reauth", "connected"}, `{"type":"credential","benefits_support":null,"supported_fields":null}`},
		{"LegacyStatus", finchtest.Webhook{LegacyStatus: true}, []string{"error_reauth", "connected"}, `{"type":"credential","benefits_support":null,"supported_fields":null}`},
		{"StringAuthMethod", finchtest.Webhook{StringAuthMethod: true}, []string{"reauth", "connected"}, `"credential"`},
		{"both", finchtest.Webhook{LegacyStatus: true, StringAuthMethod: true}, []string{"error_reauth", "connected"}, `"credential"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			rc := newReceiver(t, vectorSecret)
			rc.register(t, s, tt.hook)
			c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
			s.Break(c.ID)
			s.SetStatus(c.ID, "connected")
			got := rc.received()
			if len(got) != 2 {
				t.Fatalf("%d events", len(got))
			}
			for i, g := range got {
				var b accountUpdated
				if err := json.Unmarshal(g.body, &b); err != nil {
					t.Fatal(err)
				}
				if b.Data.Status != tt.wantStatus[i] || string(b.Data.AuthenticationMethod) != tt.wantMethod {
					t.Errorf("event %d: status %q, authentication_method %s; want %q, %s",
						i, b.Data.Status, b.Data.AuthenticationMethod, tt.wantStatus[i], tt.wantMethod)
				}
				if rec := s.Webhooks()[i]; rec.Status != tt.wantStatus[i] {
					t.Errorf("record %d: Status %q", i, rec.Status)
				}
			}
		})
	}
}

// TestWebhookRotation signs with several secrets: one header holds a
// pair per secret, and a receiver knowing any one of them verifies it.
func TestWebhookRotation(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, secretOld, secretNew, vectorSecret)
	rc.register(t, s, finchtest.Webhook{Secrets: []string{secretOld, secretNew}})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	s.Break(c.ID)
	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("%d events", len(got))
	}
	if n := len(strings.Fields(got[0].sig)); n != 2 {
		t.Errorf("Finch-Signature holds %d pairs, want 2", n)
	}
	if !slices.Equal(got[0].verified, []string{secretOld, secretNew}) {
		t.Errorf("verified by %d of the 2 secrets; the third, unused, must not verify", len(got[0].verified))
	}
}

func TestRedeliver(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	s.Break(c.ID)
	first := s.Webhooks()[0]

	for attempt := 2; attempt <= 3; attempt++ {
		d, err := s.Redeliver(t.Context(), first.EventID)
		if err != nil {
			t.Fatal(err)
		}
		if d.EventID != first.EventID || string(d.Body) != string(first.Body) || d.Attempt != attempt || d.StatusCode != 200 {
			t.Errorf("redelivery = %+v", d)
		}
	}
	got := rc.received()
	if len(got) != 3 {
		t.Fatalf("receiver got %d", len(got))
	}
	for i, g := range got {
		if g.id != first.EventID || string(g.body) != string(first.Body) || len(g.verified) != 1 {
			t.Errorf("delivery %d: id %q, same body %v, verified %v", i, g.id, string(g.body) == string(first.Body), len(g.verified) == 1)
		}
	}
	if n := len(s.Webhooks()); n != 3 {
		t.Errorf("Webhooks() = %d records", n)
	}
	if _, err := s.Redeliver(t.Context(), "msg_unknown"); err == nil || !strings.HasPrefix(err.Error(), "finchtest: ") {
		t.Errorf("unknown id: err = %v", err)
	}
}

func TestSendWebhook(t *testing.T) {
	s := newServer(t)
	if _, err := s.SendWebhook(t.Context(), "account.updated", map[string]any{}); err == nil {
		t.Error("no error without a registered webhook")
	}
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})

	t.Run("custom event", func(t *testing.T) {
		d, err := s.SendWebhook(t.Context(), "job.completed", map[string]any{
			"connection_id": "conn_1", "company_id": "comp_1", "data": map[string]any{"job_id": "job_1", "status": "complete"},
		})
		if err != nil {
			t.Fatal(err)
		}
		const want = `{"company_id":"comp_1","connection_id":"conn_1","data":{"job_id":"job_1","status":"complete"},"event_type":"job.completed"}`
		if string(d.Body) != want || d.EventType != "job.completed" || d.ConnectionID != "conn_1" || d.Status != "complete" || d.StatusCode != 200 || d.Attempt != 1 {
			t.Errorf("delivery = %+v, body %s", d, d.Body)
		}
		if g := rc.received(); string(g[len(g)-1].body) != want || len(g[len(g)-1].verified) != 1 {
			t.Error("receiver did not get the body, signed")
		}
	})
	t.Run("payload's event_type is replaced", func(t *testing.T) {
		d, err := s.SendWebhook(t.Context(), "account.updated", json.RawMessage(`{"event_type":"other"}`))
		if err != nil || string(d.Body) != `{"event_type":"account.updated"}` {
			t.Errorf("body %s, err %v", d.Body, err)
		}
	})
	t.Run("the returned body is a copy", func(t *testing.T) {
		d, _ := s.SendWebhook(t.Context(), "x", struct{}{})
		d.Body[0] = 'X'
		if recs := s.Webhooks(); recs[len(recs)-1].Body[0] != '{' {
			t.Error("the record shares its body")
		}
	})
	for _, bad := range []struct {
		name, typ string
		payload   any
	}{
		{"no type", "", map[string]any{}},
		{"not an object", "x", 42},
		{"nil", "x", nil},
		{"array", "x", []string{"a"}},
		{"unencodable", "x", func() {}},
	} {
		t.Run("error/"+bad.name, func(t *testing.T) {
			before := len(rc.received())
			if _, err := s.SendWebhook(t.Context(), bad.typ, bad.payload); err == nil || !strings.HasPrefix(err.Error(), "finchtest: ") {
				t.Errorf("err = %v", err)
			}
			if len(rc.received()) != before {
				t.Error("something was sent")
			}
		})
	}
}

// TestWebhookAnswers: any answer is recorded; failures are recorded with
// their error and do not fail the trigger.
func TestWebhookAnswers(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	tests := []struct {
		name       string
		status     int
		handle     func(http.ResponseWriter, *http.Request)
		url        string // overrides the receiver's
		timeout    time.Duration
		wantStatus int
		wantErr    bool
		wantCalls  int
	}{
		{name: "200", wantStatus: 200, wantCalls: 1},
		{name: "500", status: 500, wantStatus: 500, wantCalls: 1},
		{name: "redirect not followed", handle: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, wantStatus: 302, wantCalls: 1},
		{name: "too slow", timeout: 50 * time.Millisecond, handle: func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, wantErr: true, wantCalls: 1},
		{name: "unreachable", url: goneURL + "/hook", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			rc := newReceiver(t, vectorSecret)
			rc.status, rc.handle = tt.status, tt.handle
			rc.register(t, s, finchtest.Webhook{Timeout: tt.timeout})
			if tt.url != "" {
				if err := s.SetWebhook(finchtest.Webhook{URL: tt.url, Secrets: []string{vectorSecret}}); err != nil {
					t.Fatal(err)
				}
			}
			c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
			start := time.Now()
			s.Break(c.ID) // returns whatever the answer
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("Break took %v", el)
			}
			recs := s.Webhooks()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			if d := recs[0]; d.StatusCode != tt.wantStatus || (d.Err != nil) != tt.wantErr {
				t.Errorf("StatusCode %d, Err %v; want %d, error %v", d.StatusCode, d.Err, tt.wantStatus, tt.wantErr)
			}
			if n := len(rc.received()); n != tt.wantCalls {
				t.Errorf("receiver got %d requests, want %d", n, tt.wantCalls)
			}
			// The connection broke all the same.
			if got, _ := s.Connection(c.ID); got.Status != "reauth" {
				t.Errorf("status %q", got.Status)
			}
		})
	}
}

// TestCloseCancelsWebhookDelivery: Close does not wait out a hanging
// receiver; it cancels the delivery, which is recorded with its error,
// and nothing is sent afterwards.
func TestCloseCancelsWebhookDelivery(t *testing.T) {
	s := finchtest.NewServer()
	defer s.Close()
	rc := newReceiver(t, vectorSecret)
	arrived := make(chan struct{})
	rc.handle = func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // hangs until the fake gives up
	}
	rc.register(t, s, finchtest.Webhook{Timeout: time.Minute})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))

	broke := make(chan struct{})
	go func() {
		defer close(broke)
		s.Break(c.ID)
	}()
	<-arrived
	start := time.Now()
	s.Close()
	<-broke
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v", el)
	}
	recs := s.Webhooks()
	if len(recs) != 1 || recs[0].Err == nil || !strings.Contains(recs[0].Err.Error(), "server closed") {
		t.Fatalf("records = %+v", recs)
	}

	s.SetStatus(c.ID, "connected") // after Close: no delivery
	if _, err := s.SendWebhook(context.Background(), "x", map[string]any{}); err == nil {
		t.Error("SendWebhook after Close: no error")
	}
	if n := len(s.Webhooks()); n != 1 {
		t.Errorf("%d records after Close", n)
	}
}

// TestWebhookHandlerMayCallTheFake: no lock is held while delivering, so
// the application's handler can use the fake, even when the delivery was
// triggered by an API request.
func TestWebhookHandlerMayCallTheFake(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	rc := newReceiver(t, vectorSecret)
	var mu sync.Mutex
	var seen []string
	rc.handle = func(w http.ResponseWriter, r *http.Request) {
		res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
		st, _ := res.json(t)["connection_status"].(map[string]any)["status"].(string)
		got, _ := s.Connection(c.ID)
		mu.Lock()
		seen = append(seen, st+"/"+got.Status)
		mu.Unlock()
	}
	rc.register(t, s, finchtest.Webhook{Timeout: 5 * time.Second})
	s.Break(c.ID)
	res := send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tok, body: `{"connection_status":"connected"}`})
	if res.status != 200 {
		t.Fatalf("sandbox PUT: %d", res.status)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"reauth/reauth", "connected/connected"}; !slices.Equal(seen, want) {
		t.Errorf("the handler saw %v, want %v", seen, want)
	}
	for _, d := range s.Webhooks() {
		if d.Err != nil || d.StatusCode != 200 {
			t.Errorf("delivery %+v", d)
		}
	}
}

func TestSetWebhook(t *testing.T) {
	tests := []struct {
		name string
		hook finchtest.Webhook
		ok   bool
	}{
		{"valid", finchtest.Webhook{URL: "https://app.example.com/hook", Secrets: []string{vectorSecret}}, true},
		{"rotation", finchtest.Webhook{URL: "http://127.0.0.1:1/hook", Secrets: []string{secretOld, secretNew}}, true},
		{"unregister", finchtest.Webhook{}, true},
		{"relative URL", finchtest.Webhook{URL: "/hook", Secrets: []string{vectorSecret}}, false},
		{"not http", finchtest.Webhook{URL: "ftp://app.example.com/hook", Secrets: []string{vectorSecret}}, false},
		{"no secret", finchtest.Webhook{URL: "https://app.example.com/hook"}, false},
		{"empty secret", finchtest.Webhook{URL: "https://app.example.com/hook", Secrets: []string{""}}, false},
		{"secret not base64", finchtest.Webhook{URL: "https://app.example.com/hook", Secrets: []string{vectorSecret, "whsec_not*base64"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			err := s.SetWebhook(tt.hook)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), "finchtest: ") {
				t.Errorf("err = %v", err)
			}
			for _, secret := range tt.hook.Secrets {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Error("the error quotes a secret")
				}
			}
		})
	}

	t.Run("a failed SetWebhook keeps the earlier one; an empty URL unregisters", func(t *testing.T) {
		s := newServer(t)
		rc := newReceiver(t, vectorSecret)
		rc.register(t, s, finchtest.Webhook{})
		if err := s.SetWebhook(finchtest.Webhook{URL: "/nope"}); err == nil {
			t.Fatal("no error")
		}
		c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
		s.Break(c.ID)
		if err := s.SetWebhook(finchtest.Webhook{}); err != nil {
			t.Fatal(err)
		}
		s.SetStatus(c.ID, "connected")
		if n := len(rc.received()); n != 1 {
			t.Errorf("receiver got %d events, want 1", n)
		}
	})
	t.Run("the secrets are copied", func(t *testing.T) {
		s := newServer(t)
		rc := newReceiver(t, vectorSecret)
		secrets := []string{vectorSecret}
		rc.register(t, s, finchtest.Webhook{Secrets: secrets})
		secrets[0] = secretNew
		s.Break(connectionOf(t, s, s.AddConnection(finchtest.Connection{})).ID)
		if g := rc.received(); len(g) != 1 || len(g[0].verified) != 1 {
			t.Error("the delivery was not signed with the secret given")
		}
	})
}

// TestWebhookClock: Finch-Timestamp comes from the server's clock, so a
// test can make deliveries that a receiver must reject as stale.
func TestWebhookClock(t *testing.T) {
	s := newServer(t)
	past := time.Date(2023, 2, 13, 18, 19, 42, 500, time.UTC)
	s.SetClock(func() time.Time { return past })
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	d, err := s.SendWebhook(t.Context(), "x", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if g := rc.received(); g[0].ts != strconv.FormatInt(past.Unix(), 10) || !d.Timestamp.Equal(past.Truncate(time.Second)) || len(g[0].verified) != 1 {
		t.Errorf("Finch-Timestamp %q, record %v", g[0].ts, d.Timestamp)
	}
}

// TestZeroServerWebhook: the zero Server, whose Client serves in process,
// still delivers webhooks over HTTP, and Close releases its connections.
func TestZeroServerWebhook(t *testing.T) {
	var s finchtest.Server
	defer s.Close()
	rc := newReceiver(t, vectorSecret)
	rc.register(t, &s, finchtest.Webhook{})
	s.Break(connectionOf(t, &s, s.AddConnection(finchtest.Connection{})).ID)
	if n := len(rc.received()); n != 1 {
		t.Fatalf("receiver got %d", n)
	}
}

// TestConcurrentWebhooks breaks many connections at once: each change is
// delivered once, with its own id.
func TestConcurrentWebhooks(t *testing.T) {
	const n = 50
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = connectionOf(t, s, s.AddConnection(finchtest.Connection{})).ID
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { s.Break(id) })
		wg.Go(func() { s.Webhooks() })
	}
	wg.Wait()
	got := rc.received()
	seen := map[string]bool{}
	for _, g := range got {
		seen[g.id] = true
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d deliveries with %d distinct ids, want %d", len(got), len(seen), n)
	}
}
