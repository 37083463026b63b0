package finchreauth

import (
	"context"
	"time"

	"github.com/finchkit/finchreauth/internal/hook"
)

// Event describes one notification owed to a customer whose connection needs
// re-authentication: the first one of an episode, or a reminder. The
// Transport builds it when the Store grants it the episode's notification,
// passes it to the LinkBuilder, then, with ReconnectURL filled, to the
// Notifier.
type Event struct {
	// Connection is what Finch said of the connection: its id (always
	// set), the customer, the provider, the products that stop working,
	// and the entities with their status. Fields other than ConnectionID
	// are empty when Finch has not said (an episode opened by a webhook
	// for a connection whose token the Store does not hold).
	Connection Connection

	// Episode identifies this broken spell of the connection: use it, with
	// Reminder, as an idempotency key when sending e-mail.
	Episode string
	// Since is when the episode began. At is when this event was made.
	Since, At time.Time
	// Reminder is 0 for the episode's first notification and n for its
	// n-th reminder.
	Reminder int

	// Source is what made the event: "detection" (Finch refused a call),
	// "webhook" (Finch's account.updated), "introspect" (Finch said so when
	// asked: the health sweep, or a check a signal called for), "job" (a
	// data sync that ended in reauth_error or permissions_error),
	// "request" (RequestProducts, StartCampaign) or "reminder". A
	// LinkBuilder called for StartHandler or ReconnectURL gets "start".
	Source string
	// For a detection: the refused token, by fingerprint, and the request
	// Finch refused: its method, its URL path (never the query) and the
	// Finch-Request-Id of the answer.
	TokenFingerprint string
	Method, Path     string
	RequestID        string

	// Status is what the employer must do. "reauth": go through Finch
	// Connect again (ReconnectURL). "error_no_account_setup" (an assisted
	// connection whose admin account Finch was promised was never made) and
	// "error_permissions" (Finch's admin lost its permissions): fix it in
	// the payroll system; there is no link for those, nor for an assisted
	// connection (Connection.Assisted), which Connect cannot repair.
	Status string

	// ReconnectURL opens Finch Connect for this connection. Empty when the
	// remedy is not Finch Connect (see Status), or the Transport has
	// neither Connect nor Links.
	ReconnectURL string

	// Escalation is set on one notification of an episode: the first due
	// once the episode is older than Transport.EscalateAfter or has had
	// EscalateAfterReminders reminders. It is the one to send to a second
	// contact, or to the application's own account manager, as well: once
	// per episode, never after it ended.
	Escalation bool

	// LastNotice is set on the last message of an episode the application
	// abandons (Transport.AbandonAfter, Abandon): unless the employer
	// reconnects, the connection is disconnected at Finch at DisconnectAt.
	// No reminder follows it. Its Reminder is the next reminder's number.
	LastNotice   bool
	DisconnectAt time.Time

	// Request is set on the notifications of a request made while the
	// connection works (Status is then "reauth": the employer goes through
	// Finch Connect; Episode is the request's id): "upgrade"
	// (RequestProducts: Products are every product asked for, those the
	// token has and the new ones) or "campaign" (StartCampaign: Campaign
	// names it, and the employer must reconnect before Deadline).
	Request  string
	Products []string
	Campaign string
	Deadline time.Time
}

// Age is how long the connection has been broken at the time of the event.
func (e Event) Age() time.Duration { return e.At.Sub(e.Since) }

// BrokenEntities returns the entities of a multi-entity connection that need
// re-authentication. Empty means the whole connection does (or Finch did not
// list entities).
func (e Event) BrokenEntities() []Entity {
	var out []Entity
	for _, en := range e.Connection.Entities {
		if en.Status == "reauth" || en.Status == "disconnected" {
			out = append(out, en)
		}
	}
	return out
}

// Notifier tells the application's customer that a connection needs
// re-authentication: an e-mail, an in-app banner, a ticket.
//
// The Transport calls Notify only while it holds the episode's notification
// lease in the Store: once for the first notification and once per reminder,
// across every process sharing the Store, and again only after a call
// failed (an error, a panic, or no answer within Timeout), after
// RetryInterval. Calls for different connections are concurrent:
// implementations must be safe for concurrent use. ctx carries the
// Transport's Timeout. A Notify that fails after its message went out, or
// returns after its timeout, gets it sent again: see Event.Episode.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}

// NotifierFunc adapts a function to a Notifier.
type NotifierFunc func(ctx context.Context, e Event) error

// Notify calls f(ctx, e).
func (f NotifierFunc) Notify(ctx context.Context, e Event) error { return f(ctx, e) }

// LinkBuilder returns the URL that reopens Finch Connect for the connection of
// an Event. The Transport calls it, under the notification lease, when the
// episode has no link yet, and keeps the link with the episode for the
// reminders and the dashboard. An error or a panic holds the notification
// back (it is retried after RetryInterval) and reaches ErrorHandler.
type LinkBuilder interface {
	ReconnectURL(ctx context.Context, e Event) (string, error)
}

// LinkBuilderFunc adapts a function to a LinkBuilder.
type LinkBuilderFunc func(ctx context.Context, e Event) (string, error)

// ReconnectURL calls f(ctx, e).
func (f LinkBuilderFunc) ReconnectURL(ctx context.Context, e Event) (string, error) { return f(ctx, e) }

// Metrics receives what a Transport counts: counters, each with an outcome
// ("" for counters that have none), and one histogram. It is called from
// requests in flight (latched answers) and from handlings, concurrently: it
// must be safe for concurrent use, fast, and never block. The names:
//
//	finchreauth.detections            a 401 reauthenticate_user from Finch
//	finchreauth.detections.collapsed  one covered by a handling queued or done
//	finchreauth.detections.dropped    one dropped: the queue was full (MaxQueued)
//	finchreauth.latched               a request answered from the latch
//	finchreauth.notifications         outcome "sent" or "failed"
//	finchreauth.reminders             outcome "sent" or "failed"
//	finchreauth.reconnects            outcome "callback", "save", "webhook",
//	                                  "job" or "introspect": what ended it
//	finchreauth.disconnects           an episode that ended as disconnected
//	finchreauth.unreadable            a record the Store could not read, skipped
//	finchreauth.finch_calls           outcome "ok", "client_error", "rate_limited",
//	                                  "server_error", "network" or "cancelled"
//	finchreauth.time_to_reconnect     histogram, seconds from an episode's start to its end
type Metrics interface {
	Count(ctx context.Context, name, outcome string, n int64)
	Observe(ctx context.Context, name string, seconds float64)
}

// Reconnection describes a connection that works again (or, for
// Transport.OnDisconnected, one Finch says is gone), or a token Finch issued
// that the library could not keep. Transport.OnReconnected receives it for
// every episode that ended, at least once and with the same Episode
// (exactly once without faults); Connect.OnUnsaved receives the tokens the
// callback did not save.
type Reconnection struct {
	ConnectionID string
	// Token is the connection's working token, whatever ended the episode
	// (for OnUnsaved: the token that was not saved). It prints as its
	// fingerprint.
	Token Token
	// Via is what ended the episode: "callback", "save"
	// (Transport.SaveToken), "webhook", "introspect" (Finch said so when
	// asked) or "disconnected".
	Via string
	// Episode identifies the episode that ended: an idempotency key.
	// Status is what it needed of the employer (see Event.Status).
	Episode, Status string
	// BrokenSince is when the episode began (zero when there was none) and
	// At when it ended. Notifications counts what the customer was sent:
	// the first notification and the reminders.
	BrokenSince, At time.Time
	Notifications   int
	// Refused lists the requests that failed during the episode, refused
	// by Finch or answered by the latch (at most 16 distinct ones, by
	// method and path; see Status.Refused): what to run again.
	Refused []Refusal

	// For OnAnswered: the request answered ("upgrade" or "campaign"; Via
	// says it too), the products it asked for and those Finch did not
	// grant (a partial grant), or the campaign.
	Request                        string
	ProductsAsked, ProductsMissing []string
	Campaign                       string

	// Drift is what changed in the connection across the reconnect (nil:
	// nothing, or Finch was not asked before and after).
	Drift *Drift

	// For OnDataSynced: Finch's data_sync_all job started after the
	// reconnect, how it ended (complete, error, reauth_error,
	// permissions_error) and, when complete, when the data was fresh.
	JobID, SyncStatus string
	DataFreshAt       time.Time

	// From the code exchange (Via "callback"): the connection the link was
	// for (Expected, which differs from ConnectionID when the employer
	// connected another account), the customer and the products the token
	// grants; Embedded for Connect's embedded flow.
	Expected     string
	CustomerID   string
	CustomerName string
	CompanyID    string
	ProviderID   string
	Products     []string
	Embedded     bool

	// Reason, for Connect.OnUnsaved, says why the token was not saved.
	Reason Reason
}

// Refusal is a request that failed while a connection was broken, refused
// by Finch or answered by the latch: its method and URL path (never the
// query), how many times, first and last.
type Refusal struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Count  int       `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

func refusedOf(rs []refusal) []Refusal {
	var out []Refusal
	for _, r := range rs {
		out = append(out, Refusal{Method: r.Method, Path: r.Path, Count: r.Count, First: r.First, Last: r.Last})
	}
	return out
}

// Downtime is how long the connection was broken: At - BrokenSince, or 0
// when no episode was open.
func (r Reconnection) Downtime() time.Duration {
	if r.BrokenSince.IsZero() {
		return 0
	}
	return r.At.Sub(r.BrokenSince)
}

// subject names what a hook step concerns, for its HookError.
type subject struct {
	conn, fp string
	paced    bool // the sweep's call: a 429 is the sweep's to wait out
}

// callHook runs one step of the Transport's work that calls out (a hook of
// the application, a call to Finch) under Timeout in its own goroutine, so
// that a hook that hangs or panics cannot hold or crash the caller. It
// reports a failure to the ErrorHandler as a *HookError, which it also
// returns.
func callHook[T any](t *Transport, ctx context.Context, name string, s subject, fn func(context.Context) (T, error)) (T, error) {
	v, err := hook.Run(ctx, t.timeout(), fn)
	if err == nil {
		return v, nil
	}
	he := &HookError{Hook: name, ConnectionID: s.conn, TokenFingerprint: s.fp, Err: err}
	if p, ok := err.(hook.Panic); ok {
		he.Panic, he.Err = p.Value, errPanicked
	}
	t.report(ctx, he)
	return v, he
}
