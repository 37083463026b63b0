package finchreauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The state that a reconnect link carries through Finch Connect and back to
// the callback handler binds the link to one connection:
//
//	base64url(payload) "." base64url(HMAC-SHA256(key, "finchreauth/state/v1" || payload))
//	payload = version (1 byte) || expiry (8 bytes, unix seconds) || nonce (12 bytes) || connection id
//
// It is signed with the first of Connect.StateKeys and verified with any of
// them or of Connect.StateVerifyKeys, in constant time; it expires; and the
// callback spends it at most maxAttempts times and completes at most one
// reconnect with it, across every process sharing the Store (see claim in
// record.go).
const (
	stateVersion    = 1
	stateNonceLen   = 12
	stateHeaderLen  = 1 + 8 + stateNonceLen
	stateMaxConnID  = 256
	stateMaxLen     = 1024 // longer input is refused before any decoding
	stateMACContext = "finchreauth/state/v1"
	minStateKeyLen  = 16
)

// State errors. They never quote the state or a key.
var (
	errInvalidState = errors.New("finchreauth: invalid state") // malformed, forged, unknown key, or spent
	errExpiredState = errors.New("finchreauth: expired state") // genuine, past its expiry
	errNoStateKeys  = errors.New("finchreauth: Connect.StateKeys is empty")
)

type statePayload struct {
	connectionID string
	expires      time.Time
	nonce        string // base64url, the key of its claim in the record
}

func stateMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateMACContext))
	m.Write(payload)
	return m.Sum(nil)
}

func checkStateKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errNoStateKeys
	}
	for i, k := range keys {
		if len(k) < minStateKeyLen {
			return fmt.Errorf("finchreauth: Connect.StateKeys[%d] is shorter than %d bytes", i, minStateKeyLen)
		}
	}
	return nil
}

// signState returns a state naming connectionID, valid until expires, and
// its nonce as verifyState reports it.
func signState(keys [][]byte, connectionID string, expires time.Time) (state, nonce string, err error) {
	if err := checkStateKeys(keys); err != nil {
		return "", "", err
	}
	if connectionID == "" || len(connectionID) > stateMaxConnID {
		return "", "", fmt.Errorf("finchreauth: cannot sign a state for a connection id of %d bytes", len(connectionID))
	}
	var n [stateNonceLen]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", "", fmt.Errorf("finchreauth: state nonce: %w", err)
	}
	return encodeState(keys[0], connectionID, expires, n), base64.RawURLEncoding.EncodeToString(n[:]), nil
}

func encodeState(key []byte, connectionID string, expires time.Time, nonce [stateNonceLen]byte) string {
	payload := make([]byte, stateHeaderLen, stateHeaderLen+len(connectionID))
	payload[0] = stateVersion
	binary.BigEndian.PutUint64(payload[1:9], uint64(expires.Unix()))
	copy(payload[9:stateHeaderLen], nonce[:])
	payload = append(payload, connectionID...)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(stateMAC(key, payload))
}

// verifyState checks a state's signature against every key, in constant time,
// and its expiry against now. Whether it was spent is the record's to say (see
// claim in callback_handler.go).
func verifyState(keys [][]byte, state string, now time.Time) (statePayload, error) {
	if err := checkStateKeys(keys); err != nil {
		return statePayload{}, err
	}
	if state == "" || len(state) > stateMaxLen || !stateAlphabet(state) {
		return statePayload{}, errInvalidState
	}
	p64, m64, ok := strings.Cut(state, ".")
	if !ok {
		return statePayload{}, errInvalidState
	}
	// Strict: one encoding per state, so that no second spelling of a
	// genuine state verifies.
	enc := base64.RawURLEncoding.Strict()
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || len(payload) <= stateHeaderLen || len(mac) != sha256.Size || payload[0] != stateVersion {
		return statePayload{}, errInvalidState
	}
	valid := 0
	for _, k := range keys {
		// Every key is tried, whatever matched, so that the time taken does
		// not tell which key, or whether any, signed the state.
		valid |= subtle.ConstantTimeCompare(mac, stateMAC(k, payload))
	}
	if valid != 1 {
		return statePayload{}, errInvalidState
	}
	p := statePayload{
		expires:      time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0),
		nonce:        enc.EncodeToString(payload[9:stateHeaderLen]),
		connectionID: string(payload[stateHeaderLen:]),
	}
	if !now.Before(p.expires) {
		return p, errExpiredState
	}
	return p, nil
}

// stateAlphabet reports whether s holds only base64url characters and dots.
// Go's base64 decoder skips \r and \n, which would give a genuine state
// other spellings (found by FuzzVerifyState).
func stateAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
