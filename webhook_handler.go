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
	"slices"
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
// of secrets (as Finch shows them: base64; several during a rotation).
//
// It verifies Finch-Signature (HMAC-SHA256 over "<Finch-Event-Id>.<Finch-
// Timestamp>.<body>"; v1 signatures only, several per header, space-
// separated, and several header lines; one match suffices; constant time)
// and refuses a timestamp more than 5 minutes off: 400. It reads at most 1
// MiB. Each event is handled once across every process sharing the Store,
// whatever Finch redelivers. account.updated with data.status "reauth" (or
// the older "error_reauth") opens the connection's episode exactly as a
// detection does, so that the customer hears once whichever comes first;
// "connected" ends it (OnReconnected is called). An entity_id limits either
// to that entity. Other events are acknowledged and ignored. The answer is
// 200 once the event is recorded (notifications go out after it), and 500
// when the Store fails, so that Finch delivers again.
func (t *Transport) WebhookHandler(secrets ...string) http.Handler {
	var keys [][]byte
	var keyErr error
	for _, s := range secrets {
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(k) == 0 {
			keyErr = errors.New("finchreauth: a webhook secret is not base64")
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && keyErr == nil {
		keyErr = errors.New("finchreauth: WebhookHandler has no secret")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.init()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if keyErr != nil {
			t.report(r.Context(), keyErr)
			http.Error(w, "misconfigured", http.StatusInternalServerError)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		id := r.Header.Get("Finch-Event-Id")
		if err := verifyWebhook(keys, id, r.Header.Get("Finch-Timestamp"), r.Header.Values("Finch-Signature"), body, t.now()); err != nil {
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
		if err := t.onWebhook(r.Context(), id, ev); err != nil {
			http.Error(w, "not recorded; deliver again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// verifyWebhook checks a webhook's signature and timestamp.
func verifyWebhook(keys [][]byte, id, ts string, sigHeaders []string, body []byte, now time.Time) error {
	if id == "" || ts == "" || len(sigHeaders) == 0 {
		return errors.New("finchreauth: webhook without Finch-Event-Id, Finch-Timestamp or Finch-Signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("finchreauth: webhook Finch-Timestamp is not unix seconds")
	}
	if d := now.Sub(time.Unix(secs, 0)); d > webhookSkew || d < -webhookSkew {
		return fmt.Errorf("finchreauth: webhook timestamp is %s off", d.Round(time.Second))
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
		return errors.New("finchreauth: webhook signature does not match")
	}
	return nil
}

// onWebhook acts on a verified webhook.
func (t *Transport) onWebhook(ctx context.Context, id string, ev webhook) error {
	if ev.EventType != "account.updated" || ev.ConnectionID == "" {
		return nil
	}
	switch ev.Data.Status {
	case "reauth", "error_reauth":
		res, err := t.open(ctx, ev.ConnectionID, opening{source: "webhook", entity: ev.EntityID, event: id})
		if err != nil || res.dup || res.holder == "" {
			return err
		}
		t.goDetached(ctx, func(ctx context.Context) {
			d := res.d
			if tok := res.rec.Token; tok != "" {
				if in, err := t.introspect(ctx, t.base(), string(tok), subject{conn: ev.ConnectionID}); err == nil {
					d.Identity = &in
				}
			}
			ev := t.event(res.rec, d, "webhook")
			if !t.deliver(ctx, res.holder, ev, d) {
				return // Remind, or the next detection, tries again
			}
		})
		return nil
	case "connected":
		return t.heal(ctx, ev.ConnectionID, ev.EntityID, id)
	}
	return nil
}

// heal ends the connection's episode because Finch says it works again (for
// one entity, when entity is set). When Finch says so of the whole
// connection, its saved token must work too: after a reconnect, Finch says
// "connected" before the callback has saved the new token, and the episode
// is the callback's to end (with the token). A token Finch still refuses
// leaves the episode open; a failed check answers 500, so that Finch
// delivers the event again.
func (t *Transport) heal(ctx context.Context, conn, entity, event string) error {
	r, d, err := t.load(ctx, conn)
	if err != nil {
		return err
	}
	works := true
	if d.Episode != nil && entity == "" && r.Token != "" {
		if works, err = t.alive(ctx, conn, r.Token); err != nil {
			return err
		}
	}
	var end *ended
	by := rand.Text()
	_, _, err = t.update(ctx, conn, func(r *Record, d *recordData) (bool, error) {
		end = nil
		if slices.Contains(d.Events, event) {
			return false, nil
		}
		d.Events = slices.Insert(d.Events, 0, event)
		e := d.Episode
		switch {
		case e == nil, !works:
			return true, nil
		case entity != "" && len(e.Entities) == 0:
			return true, nil // one entity works, the rest of the connection does not
		case entity != "":
			e.Entities = slices.DeleteFunc(e.Entities, func(x string) bool { return x == entity })
			if len(e.Entities) > 0 {
				return true, nil
			}
		}
		end = &ended{Since: r.Since, At: t.now(), Via: "webhook", Sent: e.Sent, By: by}
		d.Episode, d.Ended, d.Link, r.Since, r.Due = nil, end, nil, time.Time{}, time.Time{}
		return true, nil
	})
	if err == nil && end != nil {
		t.reconnected(ctx, saving{conn: conn, via: "webhook"}, *end)
	}
	return err
}
