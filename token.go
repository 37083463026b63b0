package finchreauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Fingerprint names an access token without revealing it: the first 8 bytes
// of its SHA-256, in hex (16 characters). Use it wherever a token must be
// named: logs, errors, metrics, support tickets. It is stable across
// processes, so an application can compute it for the tokens it holds and
// match an Event to a customer even when /introspect did not answer.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// Token is an access token for one Finch connection, as a Store saves it.
//
// Token formats itself, under every fmt verb, as its connection and
// fingerprint only: printing a Token, a *Token, or a struct that holds one in
// an exported field never prints the access token. (fmt cannot reach the
// Format method of a value in an unexported field: keep tokens out of those,
// or give the enclosing type its own Format.)
type Token struct {
	ConnectionID string
	AccessToken  string
	// IssuedAt orders the tokens of a connection: a Store never replaces a
	// token with one issued earlier. The callback handler sets it to the time
	// of the code exchange.
	IssuedAt time.Time
}

// Fingerprint returns Fingerprint(t.AccessToken).
func (t Token) Fingerprint() string { return Fingerprint(t.AccessToken) }

// Format implements fmt.Formatter so that no verb prints the access token.
func (t Token) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "finchreauth.Token{ConnectionID:%q Fingerprint:%s IssuedAt:%s}",
		t.ConnectionID, t.Fingerprint(), t.IssuedAt.Format(time.RFC3339Nano))
}
