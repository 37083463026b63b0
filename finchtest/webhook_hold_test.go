package finchtest_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

// statusOf returns the data.status of each body the receiver got.
func statusOf(t *testing.T, got []received) []string {
	t.Helper()
	var out []string
	for _, g := range got {
		var b accountUpdated
		if err := json.Unmarshal(g.body, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Data.Status)
	}
	return out
}

// TestHoldWebhooks holds a break and its repair, then delivers the repair
// first and the break twice: the receiver sees them late, out of order
// and duplicated, each signed, with its event id kept.
func TestHoldWebhooks(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	s.HoldWebhooks(true)
	s.Break(c.ID)
	s.SetStatus(c.ID, "connected")

	if n := len(rc.received()); n != 0 {
		t.Fatalf("receiver got %d while held", n)
	}
	if n := len(s.Webhooks()); n != 0 {
		t.Errorf("Webhooks() = %d records while held", n)
	}
	held := s.HeldWebhooks()
	if len(held) != 2 || held[0].Status != "reauth" || held[1].Status != "connected" {
		t.Fatalf("held = %+v", held)
	}
	for _, h := range held {
		if h.Attempt != 0 || h.StatusCode != 0 || h.EventType != "account.updated" || h.ConnectionID != c.ID || h.Timestamp.IsZero() {
			t.Errorf("held record = %+v", h)
		}
	}
	brk, fix := held[0].EventID, held[1].EventID
	for i, id := range []string{fix, brk, brk} {
		d, err := s.DeliverHeld(t.Context(), id, finchtest.TimestampAtDelivery)
		if err != nil || d.EventID != id || d.StatusCode != 200 {
			t.Fatalf("delivery %d: %+v, %v", i, d, err)
		}
		if want := []int{1, 1, 2}[i]; d.Attempt != want {
			t.Errorf("delivery %d: Attempt %d, want %d", i, d.Attempt, want)
		}
	}
	got := rc.received()
	if st := statusOf(t, got); !slices.Equal(st, []string{"connected", "reauth", "reauth"}) {
		t.Errorf("receiver got %v", st)
	}
	for i, g := range got {
		if len(g.verified) != 1 || g.id != []string{fix, brk, brk}[i] {
			t.Errorf("delivery %d: id %q, verified %d", i, g.id, len(g.verified))
		}
	}
	if n := len(s.HeldWebhooks()); n != 2 {
		t.Errorf("delivering dropped them: %d held", n)
	}
	// The connection is connected all along, whatever arrived last.
	if st := introspect(t, s, tok).ConnectionStatus.Status; st != "connected" {
		t.Errorf("introspect = %s", st)
	}
}

func TestDropHeldAndRelease(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	s.HoldWebhooks(true)
	s.Break(c.ID)
	id := s.HeldWebhooks()[0].EventID
	if _, err := s.Redeliver(t.Context(), id); err == nil {
		t.Error("Redeliver of an event never delivered: no error")
	}
	if !s.DropHeld(id) || s.DropHeld(id) {
		t.Error("DropHeld: want true, then false")
	}
	if _, err := s.DeliverHeld(t.Context(), id, finchtest.TimestampAtDelivery); err == nil || !strings.HasPrefix(err.Error(), "finchtest: ") {
		t.Errorf("DeliverHeld of a dropped event: %v", err)
	}

	// Holding off: later events go out at once; nothing held is flushed.
	s.SetStatus(c.ID, "pending")
	s.HoldWebhooks(false)
	s.SetStatus(c.ID, "connected")
	if st := statusOf(t, rc.received()); !slices.Equal(st, []string{"connected"}) {
		t.Errorf("receiver got %v", st)
	}
	if held := s.HeldWebhooks(); len(held) != 1 || held[0].Status != "pending" {
		t.Errorf("held = %+v", held)
	}
	s.Close()
	if _, err := s.DeliverHeld(t.Context(), s.HeldWebhooks()[0].EventID, finchtest.TimestampAtDelivery); err == nil {
		t.Error("DeliverHeld after Close: no error")
	}
}

// TestDeliverHeldTimestamps: a late delivery is stamped with the time it
// is sent, or, on request, with the time of the event; either way the
// signature covers the stamp sent.
func TestDeliverHeldTimestamps(t *testing.T) {
	s := newServer(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	c := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	s.HoldWebhooks(true)
	s.Break(c.ID)
	held := s.HeldWebhooks()[0]
	if !held.Timestamp.Equal(now) {
		t.Errorf("held Timestamp %v, want %v", held.Timestamp, now)
	}
	event := now
	now = now.Add(2 * time.Hour)
	for _, tt := range []struct {
		ts   finchtest.WebhookTimestamp
		want time.Time
	}{
		{finchtest.TimestampAtDelivery, now},
		{finchtest.TimestampOfEvent, event},
		{finchtest.WebhookTimestamp(9), now},
	} {
		d, err := s.DeliverHeld(t.Context(), held.EventID, tt.ts)
		if err != nil {
			t.Fatal(err)
		}
		g := rc.received()[len(rc.received())-1]
		if !d.Timestamp.Equal(tt.want) || g.ts != strconv.FormatInt(tt.want.Unix(), 10) || len(g.verified) != 1 {
			t.Errorf("%v: record %v, header %s, verified %d; want %v", tt.ts, d.Timestamp, g.ts, len(g.verified), tt.want)
		}
	}
	if got := finchtest.TimestampOfEvent.String(); got != "TimestampOfEvent" {
		t.Errorf("String() = %q", got)
	}
	if got := finchtest.WebhookTimestamp(9).String(); got != "WebhookTimestamp(9)" {
		t.Errorf("String() = %q", got)
	}
}

// TestStatusFlipsWithoutTraffic: status changes need no API call; with
// webhooks unregistered or held nothing is sent, and /introspect tells
// the truth all the same.
func TestStatusFlipsWithoutTraffic(t *testing.T) {
	for _, mode := range []string{"unregistered", "held"} {
		t.Run(mode, func(t *testing.T) {
			s := newServer(t)
			rc := newReceiver(t, vectorSecret)
			tok := s.AddConnection(finchtest.Connection{Methods: []finchtest.AuthMethod{{Type: "credential"}, {Type: "oauth"}}})
			c := connectionOf(t, s, tok)
			if mode == "held" {
				rc.register(t, s, finchtest.Webhook{})
				s.HoldWebhooks(true)
			}
			s.Break(c.ID)
			s.SetMethodStatus(c.ID, "oauth", "error_permissions")
			s.BreakEntity(c.ID, c.Entities[0].ID)
			if n := s.Calls("", ""); n != 0 {
				t.Errorf("the changes made %d requests", n)
			}
			if n, w := len(rc.received()), len(s.Webhooks()); n != 0 || w != 0 {
				t.Errorf("sent: receiver %d, records %d", n, w)
			}
			wantHeld := map[string]int{"unregistered": 0, "held": 3}[mode]
			if n := len(s.HeldWebhooks()); n != wantHeld {
				t.Errorf("%d held, want %d", n, wantHeld)
			}
			in := introspect(t, s, tok)
			if in.ConnectionStatus.Status != "reauth" || in.Entities[0].Status != "reauth" ||
				!slices.Equal(in.methods(), []string{"credential:reauth", "oauth:error_permissions"}) {
				t.Errorf("introspect = %+v", in)
			}
		})
	}
}
