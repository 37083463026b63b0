package finchreauth

import (
	"errors"
	"fmt"
)

// Errors to test for with errors.Is.
var (
	// ErrReauthRequired is matched by an *APIError whose finch_code is
	// reauthenticate_user.
	ErrReauthRequired = errors.New("finchreauth: re-authentication required")

	// ErrStaleToken is returned by SaveToken when Finch refuses the token
	// offered and the Store holds another: a token replaces the saved one
	// only if Finch accepts it, so a live token is never replaced by a dead
	// one (nor a reconnect's token by an older copy while the connection
	// is broken).
	ErrStaleToken = errors.New("finchreauth: Finch refuses the token; the saved one is kept")

	// ErrNotFound is returned by a Store's Get and Lookup for what it does
	// not hold, and by Transport.Token.
	ErrNotFound = errors.New("finchreauth: not found")

	// ErrConflict is returned by a Store's Put when the stored Version is
	// not the record's: another write came first.
	ErrConflict = errors.New("finchreauth: record changed since it was read")
)

// HookError reports a failure of one step of the library's work that the
// application supplied or that calls out: "introspect", "store", "link",
// "notify", "exchange", "save", "webhook", "reconnected", "unsaved" or
// "authorize". It reaches the application through the ErrorHandler and never
// the caller of RoundTrip. It names tokens by fingerprint only.
type HookError struct {
	Hook             string
	ConnectionID     string // empty when not known
	TokenFingerprint string // empty when no token is concerned
	Panic            any    // the value the hook panicked with, if it panicked
	Err              error  // the hook's error; context.DeadlineExceeded when it ran past its timeout
}

func (e *HookError) Error() string {
	who := ""
	if e.ConnectionID != "" {
		who = quoteID(e.ConnectionID)
	}
	if who == "" && e.TokenFingerprint != "" {
		who = "token " + e.TokenFingerprint
	}
	if who != "" {
		who = " for " + who
	}
	if e.Panic != nil {
		return fmt.Sprintf("finchreauth: %s%s panicked: %v", e.Hook, who, e.Panic)
	}
	return fmt.Sprintf("finchreauth: %s%s: %v", e.Hook, who, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

var errPanicked = errors.New("finchreauth: hook panicked")
