package finchreauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Token is a Finch access token. It prints as its fingerprint, never as the
// secret, under every fmt verb, in JSON and in log/slog records, and so does
// any value that holds one in an exported field. Convert it with string(tok)
// to send it to Finch.
type Token string

// Fingerprint names the token without revealing it: the first 8 bytes of
// its SHA-256, in hex (16 characters). Use it wherever a token must be
// named: logs, errors, metrics, support tickets. It is stable across
// processes, so an application can compute it for the tokens it holds:
// finchreauth.Token(tok).Fingerprint().
func (t Token) Fingerprint() string { return fingerprint(string(t)) }

// String returns "token:" and the fingerprint, or "" for an empty token.
func (t Token) String() string {
	if t == "" {
		return ""
	}
	return "token:" + t.Fingerprint()
}

// Format implements fmt.Formatter: every verb prints t.String().
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprintf(f, "%q", t.String())
		return
	}
	fmt.Fprint(f, t.String())
}

// MarshalJSON writes t.String(), so that no JSON encoding of a value that
// holds a Token carries the secret. (Store implementations must therefore
// keep a Record's Token as the string it is, not through encoding/json.)
func (t Token) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", t.String())), nil }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}
