package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Status is what the application's dashboard shows of one connection.
type Status struct {
	ConnectionID string `json:"connection_id"`
	// NeedsReauth is true from the start of an episode until it ends.
	NeedsReauth bool      `json:"needs_reauth"`
	Since       time.Time `json:"since,omitzero"` // when the open episode began
	// Notifications counts what the customer was sent in this episode
	// (the first notification and the reminders); LastNotified is the
	// latest, NextReminder when the next one is due: the first
	// notification's retry while Notifications is 0, else the next
	// reminder (zero: none planned).
	Notifications int       `json:"notifications"`
	LastNotified  time.Time `json:"last_notified,omitzero"`
	NextReminder  time.Time `json:"next_reminder,omitzero"`
	// BrokenEntities names the entities that need re-authentication when
	// only some do; empty means the whole connection.
	BrokenEntities []string `json:"broken_entities,omitempty"`
	// ReconnectURL is the link the customer was sent, while it is good;
	// empty if none was made (Transport.ReconnectURL makes one).
	ReconnectURL string `json:"reconnect_url,omitempty"`
	// ReconnectStarted is when the employer last came back from Finch
	// Connect in this episode without the reconnect completing: an
	// exchange failed, or its process died before saving.
	ReconnectStarted time.Time `json:"reconnect_started,omitzero"`
	// What Finch said of the connection: the customer, the provider, and
	// the products that stop working while it is broken.
	CustomerName string   `json:"customer_name,omitempty"`
	ProviderID   string   `json:"provider_id,omitempty"`
	Products     []string `json:"products,omitempty"`
	// LastReconnected is when the last episode ended.
	LastReconnected time.Time `json:"last_reconnected,omitzero"`
}

// Status returns what the Store says of the connection. A connection the
// Store does not know is healthy as far as the Transport can tell.
func (t *Transport) Status(ctx context.Context, connectionID string) (Status, error) {
	t.init()
	if connectionID == "" {
		return Status{}, errEmptyID
	}
	r, d, err := t.load(ctx, connectionID)
	if err != nil {
		return Status{}, err
	}
	return t.statusOf(r, d), nil
}

func (t *Transport) statusOf(r Record, d recordData) Status {
	s := Status{ConnectionID: r.ConnectionID}
	if d.Identity != nil {
		s.CustomerName, s.ProviderID, s.Products = d.Identity.CustomerName, d.Identity.ProviderID, d.Identity.Products
	}
	if d.Ended != nil {
		s.LastReconnected = d.Ended.At
	}
	e := d.Episode
	if e == nil {
		return s
	}
	s.NeedsReauth, s.Since, s.Notifications, s.LastNotified = true, r.Since, e.Sent, e.LastSent
	s.BrokenEntities = e.Entities
	if e.Holder == "" {
		s.NextReminder = r.Due
	}
	s.ReconnectURL = d.linkFor(t.now(), t.linkMargin())
	for _, c := range d.Claims {
		if !c.Done && !c.Started.Before(r.Since) && c.Started.After(s.ReconnectStarted) {
			s.ReconnectStarted = c.Started
		}
	}
	return s
}

// NeedsReauth lists the connections that need re-authentication, oldest
// episode first, at most limit of them after the Status after (the last of
// the previous page; the zero Status starts at the beginning): fewer only at
// the end of the listing. A record the Store cannot read is skipped and
// reported to the ErrorHandler.
func (t *Transport) NeedsReauth(ctx context.Context, after Status, limit int) ([]Status, error) {
	t.init()
	if limit <= 0 {
		return nil, errors.New("finchreauth: NeedsReauth needs a positive limit")
	}
	var out []Status
	err := t.each(ctx, Query{AfterTime: after.Since, AfterID: after.ConnectionID, Limit: limit}, func(r Record, d recordData) bool {
		out = append(out, t.statusOf(r, d))
		return len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StatusHandler returns a handler that answers the Status of the connection
// authorize names, as JSON, for the application's dashboard. authorize
// decides as it does for StartHandler; an error, or a panic, answers 403.
func (t *Transport) StatusHandler(authorize func(*http.Request) (connectionID string, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, ok := t.authorized(w, r, authorize, http.MethodGet, http.MethodHead)
		if !ok {
			return
		}
		st, err := t.Status(r.Context(), conn)
		if err != nil {
			http.Error(w, "status unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
}
