package finchreauth

import (
	"context"
	"time"
)

// Event describes one connection that Finch says needs re-authentication: all
// a notification needs. The Transport builds it once per collapsed detection
// and passes it to the LinkBuilder, then (with ReconnectURL filled) to the
// Notifier.
type Event struct {
	// Connection is what /introspect said about the token: connection and
	// customer identity, the provider, the products that stop working until
	// the employer reconnects, and the entities. When /introspect failed it
	// is zero, and Key falls back to the token fingerprint.
	Connection Introspection

	// Key names the connection in the Store: Connection.ConnectionID, or
	// "fp:" followed by TokenFingerprint when that is unknown.
	Key string

	// TokenFingerprint names the token that failed (see Fingerprint).
	TokenFingerprint string

	// Episode identifies this broken spell of the connection in the Store;
	// a notifier that sends e-mail can use it as an idempotency key.
	Episode string
	// Since is when the episode began: the first detection. DetectedAt is
	// this detection; they differ when an earlier notification failed and
	// this is the retry.
	Since      time.Time
	DetectedAt time.Time

	// The request Finch refused: its method, its URL path (never the
	// query), and the Finch-Request-Id of the answer.
	Method    string
	Path      string
	RequestID string

	// ReconnectURL opens Finch Connect for this connection. Empty when no
	// LinkBuilder is configured or it failed.
	ReconnectURL string
}

// Notifier tells the application's customer that a connection needs
// re-authentication: an e-mail, an in-app banner, a ticket.
//
// The Transport calls Notify at most once per collapsed detection, only when
// its Store grants the notification lease: once per broken episode, and again
// only if an earlier call failed. Notify is called from a goroutine of the
// Transport, never concurrently for one Key, but concurrently for different
// keys: implementations must be safe for concurrent use. ctx carries the
// Transport's Timeout; a Notify that outlives it is abandoned and reported
// as context.DeadlineExceeded. A returned error or a panic is reported to the
// Transport's ErrorHandler and makes a later detection try again.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}

// NotifierFunc adapts a function to a Notifier.
type NotifierFunc func(ctx context.Context, e Event) error

// Notify calls f(ctx, e).
func (f NotifierFunc) Notify(ctx context.Context, e Event) error { return f(ctx, e) }

// LinkBuilder returns the URL that reopens Finch Connect for the connection of
// an Event, so that the notification can carry it. The Transport calls it just
// before Notify, under the same rules. An error or panic is reported to the
// ErrorHandler and the notification goes out without a link.
//
// This package's Connect type implements it.
type LinkBuilder interface {
	ReconnectURL(ctx context.Context, e Event) (string, error)
}

// LinkBuilderFunc adapts a function to a LinkBuilder.
type LinkBuilderFunc func(ctx context.Context, e Event) (string, error)

// ReconnectURL calls f(ctx, e).
func (f LinkBuilderFunc) ReconnectURL(ctx context.Context, e Event) (string, error) { return f(ctx, e) }
