package finchtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultWebhookTimeout bounds a delivery when Webhook.Timeout is zero.
const defaultWebhookTimeout = 10 * time.Second

// Webhook is the application's webhook endpoint as registered with Finch:
// where the fake sends events, and how it signs and shapes them. See
// SetWebhook.
type Webhook struct {
	// URL receives each event as a POST with a JSON body and the headers
	// Finch-Event-Id, Finch-Timestamp and Finch-Signature. If empty, no
	// webhook is registered and nothing is sent.
	URL string

	// Secrets are the webhook secrets, base64 as Finch shows them; the
	// signing key is the decoded bytes. Finch-Signature carries one
	// "v1,<signature>" per secret, space-separated, as during a secret
	// rotation. At least one is required when URL is set.
	Secrets []string

	// LegacyStatus sends "error_reauth" instead of "reauth" as the
	// data.status of account.updated events, as Finch's older docs show.
	// If false, "reauth" is sent, as the official SDKs expect.
	LegacyStatus bool

	// StringAuthMethod sends data.authentication_method of account.updated
	// events as a plain string, the method's type ("credential"), as
	// Finch's docs show. If false, it is the object the official SDKs
	// decode:
	// {"type":"credential","benefits_support":null,"supported_fields":null}.
	StringAuthMethod bool

	// Timeout bounds each delivery, from sending the request to reading the
	// end of the answer. If zero or negative, 10 seconds.
	Timeout time.Duration
}

func (w Webhook) timeout() time.Duration {
	if w.Timeout <= 0 {
		return defaultWebhookTimeout
	}
	return w.Timeout
}

// WebhookDelivery records one webhook the fake sent: see Webhooks.
type WebhookDelivery struct {
	// EventID is the Finch-Event-Id header, "msg_" and 27 letters or
	// digits. A redelivery (see Redeliver) keeps the event's id.
	EventID string

	// EventType is the body's event_type, e.g. "account.updated".
	EventType string

	// ConnectionID, EntityID and Status are the body's connection_id,
	// entity_id and data.status, or "" where the body has none.
	ConnectionID string
	EntityID     string
	Status       string

	// Attempt is 1 for an event's first delivery and counts up with each
	// redelivery.
	Attempt int

	// Timestamp is the Finch-Timestamp sent: the server's clock (see
	// SetClock) when it was sent, to the second, or the time of the event
	// for DeliverHeld with TimestampOfEvent. Signatures cover it. In
	// HeldWebhooks' records, it is the time of the event.
	Timestamp time.Time

	// Body is the raw JSON body sent.
	Body []byte

	// StatusCode is the HTTP status the application answered with, or 0 if
	// it did not answer. Any status counts as an answer; redirects are not
	// followed.
	StatusCode int

	// Err is why the delivery failed: the application could not be reached,
	// did not answer within Webhook.Timeout, or the server was closed
	// meanwhile. It is nil when the whole answer was read. StatusCode is
	// set too if the failure came while reading the answer's body.
	Err error
}

// webhookEvent is an event to deliver.
type webhookEvent struct {
	id   string
	typ  string
	body []byte
	at   time.Time // when it happened, by the server's clock, to the second
}

// SignWebhook returns the Finch-Signature header value for a delivery: for
// each secret, "v1," and the base64 (standard encoding) HMAC-SHA256 of
// "<id>.<unix seconds of ts>.<body>" keyed with the base64-decoded secret;
// the pairs are separated by spaces, as Finch sends them during a secret
// rotation. A secret that is not valid base64 is skipped (SetWebhook
// rejects it). Tests use it to sign deliveries of their own, for example
// a malformed body or a stale timestamp.
func SignWebhook(id string, ts time.Time, body []byte, secrets ...string) string {
	msg := make([]byte, 0, len(id)+len(body)+24)
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = strconv.AppendInt(msg, ts.Unix(), 10)
	msg = append(msg, '.')
	msg = append(msg, body...)
	sigs := make([]string, 0, len(secrets))
	for _, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(secret)
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(msg)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// SetWebhook registers the application's webhook endpoint, replacing any
// earlier one; a Webhook with an empty URL unregisters it. It reports an
// error, and changes nothing, if the URL is not an absolute http or https
// URL, if no secret is given or one is not valid base64.
//
// Once a webhook is registered, every change of a connection's status
// (Break, SetStatus, the sandbox PUT /sandbox/connections/accounts, a code
// exchange that reconnects) and of an entity's own status (BreakEntity,
// SetEntityStatus, a reconnect that heals it) sends an account.updated
// event to it, over HTTP through the server's client, with a fresh event
// id:
//
//	{"event_type":"account.updated","connection_id":"...","company_id":"...",
//	 "account_id":"...","entity_id":"..." (entity events only),
//	 "data":{"status":"reauth","authentication_method":{"type":"credential",
//	 "benefits_support":null,"supported_fields":null}}}
//
// A call that changes a status returns after the application answered (or
// the delivery failed); an API request that does answers after that too.
// The application's handler must therefore not wait for the request or
// call that triggered the event. No lock is held while delivering, so the
// handler may call the fake. AddConnection and Approve send nothing.
func (s *Server) SetWebhook(w Webhook) error {
	if w.URL != "" {
		if !validRedirect(w.URL) {
			return errors.New("finchtest: webhook URL must be an absolute http or https URL")
		}
		if len(w.Secrets) == 0 {
			return errors.New("finchtest: a webhook needs at least one secret")
		}
		for i, secret := range w.Secrets {
			if _, err := base64.StdEncoding.DecodeString(secret); err != nil || secret == "" {
				return fmt.Errorf("finchtest: webhook secret %d is not base64", i)
			}
		}
	}
	w.Secrets = slices.Clone(w.Secrets)
	s.mu.Lock()
	s.webhook = w
	s.mu.Unlock()
	return nil
}

// Webhooks returns a copy of every delivery the server made (or tried),
// in the order they completed.
func (s *Server) Webhooks() []WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.deliveries)
	for i := range out {
		out[i].Body = slices.Clone(out[i].Body)
	}
	return out
}

// SendWebhook sends an event of type eventType to the registered webhook,
// signed, with a fresh event id, and returns its delivery record (also
// kept for Webhooks). The body is payload encoded as JSON, with an
// "event_type" field set to eventType; payload must encode to a JSON
// object (a struct, a map, or a json.RawMessage holding an object).
//
// The error is non-nil if the event was not sent (no webhook registered,
// a bad payload, the server closed) or got no answer (then it is the
// delivery's Err). A non-2xx answer is not an error: see StatusCode.
func (s *Server) SendWebhook(ctx context.Context, eventType string, payload any) (WebhookDelivery, error) {
	if eventType == "" {
		return WebhookDelivery{}, errors.New("finchtest: SendWebhook needs an event type")
	}
	b, err := json.Marshal(payload)
	var fields map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(b, &fields)
	}
	if err != nil || fields == nil {
		return WebhookDelivery{}, errors.New("finchtest: webhook payload must encode to a JSON object")
	}
	fields["event_type"], _ = json.Marshal(eventType)
	body, _ := json.Marshal(fields)
	return s.deliver(ctx, webhookEvent{id: newEventID(), typ: eventType, body: body}, TimestampAtDelivery)
}

// Redeliver sends an event already delivered again, as Finch does when it
// retries: the same event id and body, a new timestamp and signature. Its
// errors are SendWebhook's, plus one for an event id never sent.
func (s *Server) Redeliver(ctx context.Context, eventID string) (WebhookDelivery, error) {
	s.mu.Lock()
	i := slices.IndexFunc(s.deliveries, func(d WebhookDelivery) bool { return d.EventID == eventID })
	var ev webhookEvent
	if i >= 0 {
		d := s.deliveries[i]
		ev = webhookEvent{id: d.EventID, typ: d.EventType, body: d.Body, at: d.Timestamp}
	}
	s.mu.Unlock()
	if i < 0 {
		return WebhookDelivery{}, errors.New("finchtest: no webhook was sent with that event id")
	}
	return s.deliver(ctx, ev, TimestampAtDelivery)
}

// sendEvents delivers the events of a status change, one after another,
// or holds them (see HoldWebhooks).
func (s *Server) sendEvents(events []webhookEvent) {
	for _, ev := range events {
		if s.holdEvent(ev) {
			continue
		}
		s.deliver(context.Background(), ev, TimestampAtDelivery)
	}
}

// deliver sends ev to the registered webhook, stamped as ts says, and
// records the delivery. It holds no lock while sending. Close cancels it.
func (s *Server) deliver(ctx context.Context, ev webhookEvent, ts WebhookTimestamp) (WebhookDelivery, error) {
	s.mu.Lock()
	hook := s.webhook
	switch {
	case hook.URL == "":
		s.mu.Unlock()
		return WebhookDelivery{}, errors.New("finchtest: no webhook registered (see SetWebhook)")
	case s.isClosed:
		s.mu.Unlock()
		return WebhookDelivery{}, errors.New("finchtest: server closed")
	}
	s.inflight.Add(1) // before Close's Wait: Close sets isClosed under s.mu first
	defer s.inflight.Done()
	if s.attempts == nil {
		s.attempts = make(map[string]int)
	}
	s.attempts[ev.id]++
	d := describe(ev)
	d.Attempt = s.attempts[ev.id]
	if ts != TimestampOfEvent || ev.at.IsZero() {
		d.Timestamp = time.Unix(s.nowLocked().Unix(), 0)
	}
	life := s.lifeLocked()
	client := s.webhookClientLocked()
	s.mu.Unlock()

	d.StatusCode, d.Err = post(ctx, life, client, hook, d)
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	d.Body = slices.Clone(d.Body)
	return d, d.Err
}

// describe returns the record of ev as its body tells it, stamped with
// the time the event happened; Attempt, StatusCode and Err are left zero.
func describe(ev webhookEvent) WebhookDelivery {
	var fields struct {
		ConnectionID any `json:"connection_id"`
		EntityID     any `json:"entity_id"`
		Data         struct {
			Status any `json:"status"`
		} `json:"data"`
	}
	json.Unmarshal(ev.body, &fields)
	d := WebhookDelivery{EventID: ev.id, EventType: ev.typ, Timestamp: ev.at, Body: ev.body}
	d.ConnectionID, _ = fields.ConnectionID.(string)
	d.EntityID, _ = fields.EntityID.(string)
	d.Status, _ = fields.Data.Status.(string)
	return d
}

// post makes one delivery's request and reads the answer, within the
// webhook's timeout and until life is cancelled.
func post(ctx, life context.Context, client *http.Client, hook Webhook, d WebhookDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, hook.timeout())
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("finchtest: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Finch-Event-Id", d.EventID)
	req.Header.Set("Finch-Timestamp", strconv.FormatInt(d.Timestamp.Unix(), 10))
	req.Header.Set("Finch-Signature", SignWebhook(d.EventID, d.Timestamp, d.Body, hook.Secrets...))
	res, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
	}
	if err != nil && life.Err() != nil {
		err = fmt.Errorf("finchtest: server closed during webhook delivery: %w", err)
	}
	if res == nil {
		return 0, err
	}
	return res.StatusCode, err
}

// webhookClientLocked returns the client deliveries go through: the
// httptest client's transport for a Server from NewServer, a transport of
// its own for the zero Server (whose Client serves in process); redirects
// are not followed. s.mu must be held.
func (s *Server) webhookClientLocked() *http.Client {
	if s.hookClient == nil {
		var rt http.RoundTripper = &http.Transport{}
		if s.ts != nil {
			rt = s.ts.Client().Transport
		}
		s.hookClient = &http.Client{
			Transport:     rt,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return s.hookClient
}

// eventTimeLocked is the time an event happens: now, to the second. s.mu
// must be held.
func (s *Server) eventTimeLocked() time.Time {
	return time.Unix(s.nowLocked().Unix(), 0)
}

// newEventID returns a fresh Finch-Event-Id, shaped like Finch's.
func newEventID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 27)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "msg_" + string(b)
}

// accountUpdated is the body of an account.updated event.
type accountUpdated struct {
	EventType    string             `json:"event_type"`
	ConnectionID string             `json:"connection_id"`
	CompanyID    string             `json:"company_id"`
	AccountID    string             `json:"account_id"`
	EntityID     string             `json:"entity_id,omitempty"`
	Data         accountUpdatedData `json:"data"`
}

type accountUpdatedData struct {
	Status               string `json:"status"`
	AuthenticationMethod any    `json:"authentication_method"` // a string or a webhookAuthMethod
}

// webhookAuthMethod is data.authentication_method as the SDKs decode it.
type webhookAuthMethod struct {
	Type            string `json:"type"`
	BenefitsSupport any    `json:"benefits_support"`
	SupportedFields any    `json:"supported_fields"`
}

// accountEventsLocked returns the account.updated events for what changed
// in cs since before: one for the connection if its status changed, then
// one per entity whose own status changed (an entity gained or lost sends
// none), then one per authentication method whose own status changed (an
// entity or a method that now follows the connection reports the
// connection's status). It returns nil when no webhook is registered. s.mu
// must be held.
func (s *Server) accountEventsLocked(cs *connState, before statuses) []webhookEvent {
	if s.webhook.URL == "" {
		return nil
	}
	after := cs.statuses()
	primary := cs.conn.Methods[0].Type
	var events []webhookEvent
	if after.conn != before.conn {
		events = append(events, s.accountUpdatedLocked(cs, "", primary, after.conn))
	}
	for _, en := range cs.conn.Entities {
		if old, ok := before.entities[en.ID]; ok && old != en.Status {
			events = append(events, s.accountUpdatedLocked(cs, en.ID, primary, cmp.Or(en.Status, after.conn)))
		}
	}
	for i, st := range after.methods {
		if i < len(before.methods) && st != before.methods[i] {
			events = append(events, s.accountUpdatedLocked(cs, "", cs.conn.Methods[i].Type, cmp.Or(st, after.conn)))
		}
	}
	return events
}

// accountUpdatedLocked builds one account.updated event, shaped as the
// registered webhook asks: methodType is the authentication method it is
// about (a connection's or an entity's event names the connection's first
// method). s.mu must be held.
func (s *Server) accountUpdatedLocked(cs *connState, entityID, methodType, status string) webhookEvent {
	if status == "reauth" && s.webhook.LegacyStatus {
		status = "error_reauth"
	}
	var method any = webhookAuthMethod{Type: methodType}
	if s.webhook.StringAuthMethod {
		method = methodType
	}
	body, _ := json.Marshal(accountUpdated{
		EventType:    "account.updated",
		ConnectionID: cs.conn.ID,
		CompanyID:    cs.conn.CompanyID,
		AccountID:    cs.accountID,
		EntityID:     entityID,
		Data:         accountUpdatedData{Status: status, AuthenticationMethod: method},
	})
	return webhookEvent{id: newEventID(), typ: "account.updated", body: body, at: s.eventTimeLocked()}
}
