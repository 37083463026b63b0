package finchreauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits on what the webhook handler accepts.
const (
	maxWebhookBody = 1 << 20
	webhookSkew    = 5 * time.Minute // Finch-Timestamp tolerance either way
)

// webhook is the part of a Finch webhook this package reads.
type webhook struct {
	EventType    string `json:"event_type"`
	ConnectionID string `json:"connection_id"`
	CompanyID    string `json:"company_id"`
	EntityID     string `json:"entity_id"`
	Data         struct {
		Status string `json:"status"`
		JobID  string `json:"job_id"` // job.data_sync_all.completed
		// AuthenticationMethod is a string in Finch's docs and an object
		// {type, ...} in its SDKs: either decodes.
		AuthenticationMethod authMethod `json:"authentication_method"`
	} `json:"data"`
}

type authMethod struct{ Type string }

func (a *authMethod) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &a.Type) == nil {
		return nil
	}
	var o struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return errors.New("finchreauth: authentication_method is neither a string nor an object")
	}
	a.Type = o.Type
	return nil
}

// WebhookHandler returns the handler for Finch's webhooks, signed with any
// of secrets (as Finch shows them: base64; several during a rotation). It
// panics if there is no secret or one is not base64: refused when the
// application starts, rather than answering 500 to every delivery.
//
// It verifies Finch-Signature (HMAC-SHA256 over "<Finch-Event-Id>.<Finch-
// Timestamp>.<body>"; v1 signatures only, several per header, space-
// separated, and several header lines; one match suffices; constant time)
// and refuses a timestamp more than 5 minutes off: 400. It reads at most 1
// MiB. Each event is handled once across every process sharing the Store,
// whatever Finch redelivers.
//
// account.updated carries a status of the connection (or, with entity_id,
// of one entity), which the connection's record takes in as every signal
// (see Transport): "reauth" (or the older "error_reauth"),
// "error_no_account_setup" and "error_permissions" need the employer,
// "connected" says it works, "pending" and "processing" are shown in Status
// and tell nobody, "disconnected" ends the episode as disconnected, and a
// value Finch adds later is kept and does nothing. Finch does not deliver
// in order: a status older than the last one Finch sent (by Finch-
// Timestamp) is ignored, and one that contradicts what the record believes
// of the saved token (a reauth while it works, a connected while an episode
// is open) is checked at /introspect first, before this handler answers.
// Other events are acknowledged and ignored. The answer is 200 once the
// event is recorded (notifications go out after it), and 500 when the Store
// fails, so that Finch delivers again.
func (t *Transport) WebhookHandler(secrets ...string) http.Handler {
	var keys [][]byte
	var keyErr error
	for _, s := range secrets {
		k, err := base64.StdEncoding.DecodeString(s)
		switch {
		case s == "":
			keyErr = errors.New("finchreauth: a webhook secret is empty")
			continue
		case err != nil || len(k) == 0:
			keyErr = errors.New("finchreauth: a webhook secret is not base64")
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && keyErr == nil {
		keyErr = errors.New("finchreauth: WebhookHandler has no secret")
	}
	if keyErr != nil {
		// Refused now, when the application mounts it: a handler that
		// answered 500 would have Finch retry every delivery for hours.
		panic(keyErr.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.init()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		id := r.Header.Get("Finch-Event-Id")
		ts, err := verifyWebhook(keys, id, r.Header.Get("Finch-Timestamp"), r.Header.Values("Finch-Signature"), body, t.now())
		if err != nil {
			t.report(r.Context(), &HookError{Hook: "webhook", Err: err})
			http.Error(w, "invalid webhook", http.StatusBadRequest)
			return
		}
		var ev webhook
		if err := json.Unmarshal(body, &ev); err != nil {
			t.report(r.Context(), &HookError{Hook: "webhook", Err: fmt.Errorf("finchreauth: webhook %s is not JSON: %w", sanitize(id), err)})
			http.Error(w, "malformed webhook", http.StatusBadRequest)
			return
		}
		if err := t.onWebhook(r.Context(), id, ts, ev); err != nil {
			http.Error(w, "not recorded; deliver again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// verifyWebhook checks a webhook's signature and timestamp, and returns
// the time it was sent at.
func verifyWebhook(keys [][]byte, id, ts string, sigHeaders []string, body []byte, now time.Time) (time.Time, error) {
	if id == "" || ts == "" || len(sigHeaders) == 0 {
		return time.Time{}, errors.New("finchreauth: webhook without Finch-Event-Id, Finch-Timestamp or Finch-Signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("finchreauth: webhook Finch-Timestamp is not unix seconds")
	}
	sent := time.Unix(secs, 0)
	if d := now.Sub(sent); d > webhookSkew || d < -webhookSkew {
		return time.Time{}, fmt.Errorf("finchreauth: webhook timestamp is %s off", d.Round(time.Second))
	}
	var sigs [][]byte
	for _, h := range sigHeaders {
		for _, f := range strings.Fields(h) {
			if v, sig, ok := strings.Cut(f, ","); ok && v == "v1" {
				if b, err := base64.StdEncoding.DecodeString(sig); err == nil {
					sigs = append(sigs, b)
				}
			}
		}
	}
	valid := 0
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := m.Sum(nil)
		for _, s := range sigs {
			valid |= subtle.ConstantTimeCompare(s, want)
		}
	}
	if valid != 1 {
		return time.Time{}, errors.New("finchreauth: webhook signature does not match")
	}
	return sent, nil
}

// onWebhook acts on a verified webhook sent at ts (Finch-Timestamp).
// account.updated is a status Finch heard: the record decides what it means
// (see step). A check it asks for runs before the answer (Finch's delivery
// waits for it, within Timeout: what the record says by then is settled);
// notifications and announcements go out after it.
func (t *Transport) onWebhook(ctx context.Context, id string, ts time.Time, ev webhook) error {
	var in input
	holder := rand.Text()
	switch {
	case ev.ConnectionID == "":
		return nil
	case ev.EventType == "account.updated" && ev.Data.Status != "":
		in = heard{status: ev.Data.Status, entity: ev.EntityID, event: id, at: ts, via: "webhook", holder: holder}
	case ev.EventType == "job.data_sync_all.completed" && ev.Data.JobID != "":
		in = jobDone{jobID: ev.Data.JobID, holder: holder} // read at once: the event says not how it ended
	default:
		return nil
	}
	if err := checkID(ev.ConnectionID); err != nil {
		t.report(ctx, &HookError{Hook: "webhook", Err: fmt.Errorf("finchreauth: webhook %s: %w", sanitize(id), err)})
		return nil
	}
	conn := ev.ConnectionID
	l, o, err := t.apply(ctx, conn, in)
	if err != nil {
		return err
	}
	var later []owed
	for _, ow := range o.run {
		if ow.Kind != owedVerify {
			later = append(later, ow)
			continue
		}
		next, more := t.check(ctx, conn, l, ow, t.base())
		l, later = next, append(later, more...)
	}
	if len(later) > 0 {
		t.goDetached(ctx, func(ctx context.Context) { t.carry(ctx, conn, l, later, carrier{}) })
	}
	return nil
}
