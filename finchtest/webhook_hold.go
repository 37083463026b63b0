package finchtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// WebhookTimestamp selects the Finch-Timestamp of a held event's delivery
// (see DeliverHeld). Finch-Timestamp is covered by the signature; whether
// Finch stamps a delivery attempt with the time it sends it or with the
// time of the event is unconfirmed, so a test can try both.
type WebhookTimestamp int

const (
	// TimestampAtDelivery stamps the delivery with the server's time when
	// it is sent, as a real redelivery is re-signed. The default.
	TimestampAtDelivery WebhookTimestamp = iota

	// TimestampOfEvent stamps the delivery with the time the event
	// happened (the held record's Timestamp), however late it is sent: a
	// receiver that rejects timestamps more than 5 minutes off will then
	// refuse a late delivery.
	TimestampOfEvent
)

// String returns the constant's name.
func (ts WebhookTimestamp) String() string {
	switch ts {
	case TimestampAtDelivery:
		return "TimestampAtDelivery"
	case TimestampOfEvent:
		return "TimestampOfEvent"
	}
	return fmt.Sprintf("WebhookTimestamp(%d)", int(ts))
}

// HoldWebhooks turns holding on or off. While it is on, the events the
// fake sends by itself (account.updated on a status change,
// job.data_sync_all.completed when a job ends) are held instead of sent:
// HeldWebhooks lists them, DeliverHeld sends any of them, in any order and
// any number of times, and DropHeld forgets one. Turning holding off sends
// nothing: events already held stay held until delivered or dropped.
// Events are built, and held, only while a webhook is registered (see
// SetWebhook). SendWebhook and Redeliver are never held.
//
// The change itself does not wait for the webhook: the connection's new
// status is in force, and /introspect reports it, at once.
func (s *Server) HoldWebhooks(hold bool) {
	s.mu.Lock()
	s.holding = hold
	s.mu.Unlock()
}

// holdEvent holds ev if holding is on, and reports whether it did.
func (s *Server) holdEvent(ev webhookEvent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holding {
		s.held = append(s.held, ev)
	}
	return s.holding
}

// HeldWebhooks returns the events held (see HoldWebhooks), oldest first,
// as delivery records: Timestamp is when the event happened, Attempt,
// StatusCode and Err are zero. Delivering one leaves it held.
func (s *Server) HeldWebhooks() []WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WebhookDelivery, len(s.held))
	for i, ev := range s.held {
		out[i] = describe(ev)
		out[i].Body = slices.Clone(ev.body)
	}
	return out
}

// DeliverHeld sends a held event to the registered webhook, signed anew
// and with its Finch-Event-Id, and returns the delivery's record (also
// kept for Webhooks; Attempt counts the event's deliveries). ts selects
// its Finch-Timestamp. The event stays held, so it can be delivered again,
// as Finch's retries and duplicates are; DropHeld forgets it. The errors
// are SendWebhook's, plus one for an event id not held.
func (s *Server) DeliverHeld(ctx context.Context, eventID string, ts WebhookTimestamp) (WebhookDelivery, error) {
	s.mu.Lock()
	i := slices.IndexFunc(s.held, func(ev webhookEvent) bool { return ev.id == eventID })
	var ev webhookEvent
	if i >= 0 {
		ev = s.held[i]
	}
	s.mu.Unlock()
	if i < 0 {
		return WebhookDelivery{}, errors.New("finchtest: no webhook is held with that event id")
	}
	return s.deliver(ctx, ev, ts)
}

// DropHeld forgets a held event without sending it, as a delivery Finch
// gave up on, and reports whether it was held.
func (s *Server) DropHeld(eventID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.held)
	s.held = slices.DeleteFunc(s.held, func(ev webhookEvent) bool { return ev.id == eventID })
	return len(s.held) != n
}
