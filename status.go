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
	// NeedsReauth is true from the start of an episode until it ends:
	// while the employer is needed. Need says for what, as Event.Status
	// does: "reauth" (Finch Connect), "error_no_account_setup" or
	// "error_permissions" (the payroll system).
	NeedsReauth bool      `json:"needs_reauth"`
	Need        string    `json:"need,omitempty"`
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
	// empty if none was made (Transport.ReconnectURL makes one) or the
	// remedy is not Finch Connect.
	ReconnectURL string `json:"reconnect_url,omitempty"`
	// Requests are the open requests to the employer made while the
	// connection works (RequestProducts, StartCampaign).
	Requests []Request `json:"requests,omitempty"`
	// EscalatedAt is when the episode's escalation went out (see
	// Transport.EscalateAfter); zero if it has not.
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	// ReconnectStarted is when the employer last came back from Finch
	// Connect in this episode without the reconnect completing: an
	// exchange failed, or its process died before saving.
	ReconnectStarted time.Time `json:"reconnect_started,omitzero"`
	// What Finch said of the connection: the customer, the provider, and
	// the products that stop working while it is broken.
	CustomerName string   `json:"customer_name,omitempty"`
	ProviderID   string   `json:"provider_id,omitempty"`
	Products     []string `json:"products,omitempty"`
	// FinchStatus is the connection's latest status from Finch (pending,
	// processing, connected, reauth, error_no_account_setup,
	// error_permissions, disconnected, or a value Finch adds later), heard
	// at FinchStatusAt through a webhook, /introspect, a refused call or a
	// job. Connection is what /introspect said last, with every entity's
	// and authentication method's own status; nil if Finch was never asked.
	FinchStatus   string      `json:"finch_status,omitempty"`
	FinchStatusAt time.Time   `json:"finch_status_at,omitzero"`
	Connection    *Connection `json:"connection,omitempty"`
	// LastReconnected is when the last episode ended, and LastDowntime how
	// long it had lasted.
	LastReconnected time.Time     `json:"last_reconnected,omitzero"`
	LastDowntime    time.Duration `json:"last_downtime,omitempty"`
	// Refused lists the requests that failed in the open episode, or, with
	// none open, in the last one (at most 16, by method and path): what
	// the application runs again once the data is fresh. Those Finch
	// refused are counted as their handling runs; those the latch answered
	// (Finch was not called), when the latch next reads the record (every
	// RetryInterval or LatchTTL, the shorter) or at Flush.
	Refused []Refusal `json:"refused,omitempty"`
	// Resync is where Finch's data_sync_all job started after the last
	// reconnect stands (see Transport.SkipResync): "owed" (not started
	// yet), "pending", "in_progress", "complete", "error", "reauth_error",
	// "permissions_error"; empty if none was owed. ResyncJobID is the job.
	// DataFreshAt is when the connection's data was last known fresh: the
	// job's completion, or Finch's last_successful_sync, the later.
	Resync      string    `json:"resync,omitempty"`
	ResyncJobID string    `json:"resync_job_id,omitempty"`
	DataFreshAt time.Time `json:"data_fresh_at,omitzero"`
	// DataStale says DataFreshAt is older than Transport.StaleAfter: the
	// connection may answer, but Finch has not synced its data for that
	// long (a sync failing at the provider, which no 401 says).
	DataStale bool `json:"data_stale,omitempty"`
	// NextCheck is when the health sweep next asks Finch about the
	// connection (see Transport.SweepEvery); zero if it does not.
	NextCheck time.Time `json:"next_check,omitzero"`
	// History is the connection's recent timeline, oldest first (at most
	// 48 lines): detections, statuses heard, checks, notifications,
	// links, the employer's returns from Connect, saves, ended episodes
	// with their time to reconnect, and signals ignored as out of order.
	History []HistoryEntry `json:"history,omitempty"`
}

// HistoryEntry is one line of a connection's timeline: what happened (such
// as "detected", "status", "notified", "ended"), and the detail (never a
// secret).
type HistoryEntry struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// Status returns what the Store says of the connection. A connection the
// Store does not know is healthy as far as the Transport can tell.
func (t *Transport) Status(ctx context.Context, connectionID string) (Status, error) {
	t.init()
	if err := checkID(connectionID); err != nil {
		return Status{}, err
	}
	r, l, err := t.load(ctx, connectionID)
	if err != nil {
		return Status{}, err
	}
	return t.statusOf(r, l), nil
}

func (t *Transport) statusOf(r Record, l life) Status {
	s := Status{ConnectionID: r.ConnectionID}
	if id := l.Identity; id != nil {
		c := id.clone()
		s.Connection = &c
		s.CustomerName, s.ProviderID, s.Products = id.CustomerName, id.ProviderID, id.Products
	}
	if m := l.mark(levelConnection, ""); m != nil {
		s.FinchStatus, s.FinchStatusAt = m.Status, m.At
	}
	if e := l.Ended; e != nil {
		s.LastReconnected, s.LastDowntime = e.At, max(e.At.Sub(e.Since), 0)
		s.Refused = refusedOf(e.Refused)
	}
	t.dataOf(&s, l)
	s.Requests = t.requestsOf(l)
	for _, h := range l.Lines {
		s.History = append(s.History, HistoryEntry(h))
	}
	e := l.Episode
	if e == nil {
		return s
	}
	s.NeedsReauth, s.Need, s.Since, s.Notifications, s.LastNotified = true, e.Need, e.Since, e.Sent, e.LastSent
	s.BrokenEntities, s.Refused, s.EscalatedAt = e.Entities, refusedOf(e.Refused), e.Escalated
	if ow := l.owedItem(owedNotify, e.ID); ow != nil && ow.Holder == "" {
		s.NextReminder = ow.NotBefore
	}
	if connectHeals(l) {
		s.ReconnectURL = l.linkFor(t.now(), t.linkMargin())
	}
	for _, c := range l.Claims {
		if !c.Done && !c.Started.Before(e.Since) && c.Started.After(s.ReconnectStarted) {
			s.ReconnectStarted = c.Started
		}
	}
	return s
}

// dataOf fills in how fresh the connection's data is, and when the sweep
// next checks it.
func (t *Transport) dataOf(s *Status, l life) {
	if r := l.Resync; r != nil {
		s.Resync, s.ResyncJobID = r.Status, r.JobID
		if r.Status == "complete" {
			s.DataFreshAt = r.Ended
		}
	}
	if id := l.Identity; id != nil {
		if at, err := time.Parse(time.RFC3339, id.LastSuccessfulSync); err == nil && at.After(s.DataFreshAt) {
			s.DataFreshAt = at
		}
	}
	s.DataStale = !s.DataFreshAt.IsZero() && t.now().Sub(s.DataFreshAt) > orDefault(t.StaleAfter, defaultStaleAfter)
	if ow := l.owedItem(owedSweep, ""); ow != nil {
		s.NextCheck = ow.NotBefore
	}
}

// requestsOf is the open requests, as Status shows them.
func (t *Transport) requestsOf(l life) []Request {
	var out []Request
	for _, r := range l.Requests {
		q := Request{Kind: r.Kind, Since: r.Since, Products: r.Products, Campaign: r.Campaign, Deadline: r.Deadline,
			Notifications: r.Sent, LastNotified: r.LastSent}
		if ow := l.owedItem(owedAsk, r.ID); ow != nil && ow.Holder == "" {
			q.NextReminder = ow.NotBefore
		}
		if r.Link.good(t.now(), t.linkMargin()) {
			q.ReconnectURL = r.Link.URL
		}
		out = append(out, q)
	}
	return out
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
	err := t.each(ctx, Query{AfterTime: after.Since, AfterID: after.ConnectionID, Limit: limit}, func(r Record, l life) bool {
		out = append(out, t.statusOf(r, l))
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
		if conn, ok := t.authorized(w, r, authorize, statusMethods...); ok {
			t.ServeStatus(w, r, conn)
		}
	})
}

var statusMethods = []string{http.MethodGet, http.MethodHead}

// ServeStatus answers r as StatusHandler does, for a connection the
// application resolved and authorized itself (see ServeReconnect). It
// answers 405 to a method other than GET or HEAD, and 503 when the Store
// cannot be read.
func (t *Transport) ServeStatus(w http.ResponseWriter, r *http.Request, connectionID string) {
	if !t.allowed(w, r, statusMethods...) {
		return
	}
	st, err := t.Status(r.Context(), connectionID)
	if err != nil {
		http.Error(w, "status unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// Request is an open request to the employer, made while the connection
// works: "upgrade" (RequestProducts: Products are every product asked for)
// or "campaign" (StartCampaign: Campaign, Deadline).
type Request struct {
	// Kind is "upgrade" or "campaign"; Since is when it was made.
	Kind  string    `json:"kind"`
	Since time.Time `json:"since"`
	// Products, for an upgrade: every product asked for, those the token
	// has and the new ones.
	Products []string `json:"products,omitempty"`
	// Campaign and Deadline, for a campaign: its name, and when the
	// employer must have reconnected by.
	Campaign string    `json:"campaign,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Notifications counts what the employer was sent for it, the last at
	// LastNotified; NextReminder is when the next is due (zero: none).
	Notifications int       `json:"notifications"`
	LastNotified  time.Time `json:"last_notified,omitzero"`
	NextReminder  time.Time `json:"next_reminder,omitzero"`
	// ReconnectURL is the link the employer was sent, while it is good.
	ReconnectURL string `json:"reconnect_url,omitempty"`
}
