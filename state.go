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
	"sync"
	"time"

	"github.com/patrickmn/go-cache"
)

// The state that a reconnect link carries through Finch Connect and back to
// the callback handler binds the link to one connection:
//
//	base64url(payload) "." base64url(HMAC-SHA256(key, "finchreauth/state/v1" || payload))
//	payload = version (1 byte) || expiry (8 bytes, unix seconds) || nonce (12 bytes) || connection id
//
// It is signed with the first of Connect.StateKeys and verified with any of
// them, in constant time; it expires; and the callback handler accepts it
// once (see stateReplay).
const (
	stateVersion    = 1
	stateNonceLen   = 12
	stateHeaderLen  = 1 + 8 + stateNonceLen
	stateMaxConnID  = 256
	stateMaxLen     = 1024 // longer input is refused before any decoding
	stateMACContext = "finchreauth/state/v1"
	minStateKeyLen  = 16
)

// State errors, for errors.Is. They never quote the state or a key.
var (
	// ErrInvalidState is returned for a state that is malformed, forged,
	// signed with an unknown key, or already used.
	ErrInvalidState = errors.New("finchreauth: invalid state")
	// ErrExpiredState is returned for a genuine state past its expiry.
	ErrExpiredState = errors.New("finchreauth: expired state")
)

var errNoStateKeys = errors.New("finchreauth: Connect.StateKeys is empty")

type statePayload struct {
	connectionID string
	expires      time.Time
	nonce        string // raw bytes, as a map key for the replay set
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

// signState returns a state naming connectionID, valid until expires.
func signState(keys [][]byte, connectionID string, expires time.Time) (string, error) {
	if err := checkStateKeys(keys); err != nil {
		return "", err
	}
	if connectionID == "" || len(connectionID) > stateMaxConnID {
		return "", fmt.Errorf("finchreauth: cannot sign a state for a connection id of %d bytes", len(connectionID))
	}
	var nonce [stateNonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("finchreauth: state nonce: %w", err)
	}
	return encodeState(keys[0], connectionID, expires, nonce), nil
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
// and its expiry against now. It does not consult the replay set.
func verifyState(keys [][]byte, state string, now time.Time) (statePayload, error) {
	if err := checkStateKeys(keys); err != nil {
		return statePayload{}, err
	}
	if state == "" || len(state) > stateMaxLen || !stateAlphabet(state) {
		return statePayload{}, ErrInvalidState
	}
	p64, m64, ok := strings.Cut(state, ".")
	if !ok {
		return statePayload{}, ErrInvalidState
	}
	// Strict: one encoding per state, so that no second spelling of a
	// genuine state verifies.
	enc := base64.RawURLEncoding.Strict()
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || len(payload) <= stateHeaderLen || len(mac) != sha256.Size || payload[0] != stateVersion {
		return statePayload{}, ErrInvalidState
	}
	valid := 0
	for _, k := range keys {
		// Every key is tried, whatever matched, so that the time taken does
		// not tell which key, or whether any, signed the state.
		valid |= subtle.ConstantTimeCompare(mac, stateMAC(k, payload))
	}
	if valid != 1 {
		return statePayload{}, ErrInvalidState
	}
	p := statePayload{
		expires:      time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0),
		nonce:        string(payload[9:stateHeaderLen]),
		connectionID: string(payload[stateHeaderLen:]),
	}
	if !now.Before(p.expires) {
		return p, ErrExpiredState
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

// stateReplay remembers the states the callback handler accepted, by nonce,
// until they expire, so that each is accepted once. go-cache with no janitor:
// expired nonces are swept when one is added.
type stateReplay struct {
	mu        sync.Mutex
	used      *cache.Cache
	lastSweep time.Time
}

func newStateReplay() *stateReplay {
	return &stateReplay{used: cache.New(cache.NoExpiration, 0)}
}

// claim records p as used. It fails with ErrInvalidState if it already was.
func (r *stateReplay) claim(p statePayload, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) > time.Minute {
		r.used.DeleteExpired()
		r.lastSweep = now
	}
	// Kept until the state's own expiry (by the wall clock, which is what
	// go-cache reads), and at least a minute.
	ttl := max(time.Until(p.expires), time.Minute)
	if err := r.used.Add(p.nonce, struct{}{}, ttl); err != nil {
		return ErrInvalidState
	}
	return nil
}

// release forgets p, so that its link can be used again: the callback
// handler releases a state when the reconnect failed for reasons the
// employer can retry.
func (r *stateReplay) release(p statePayload) {
	r.mu.Lock()
	r.used.Delete(p.nonce)
	r.mu.Unlock()
}
