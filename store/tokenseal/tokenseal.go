// Package tokenseal seals Finch access tokens at rest, as Finch asks
// integrators to: a store given a Sealer keeps only sealed tokens, and
// someone who reads the database or the Redis keyspace learns nothing they
// can call Finch with.
//
// AESGCM is the implementation: AES-GCM with a 96-bit random nonce, under a
// key the application supplies, with key rotation by key id. The stores in
// this repository pass the connection id as additional data, so a sealed
// token copied into another connection's row does not open.
package tokenseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Sealer encrypts and authenticates small secrets. Implementations must be
// safe for concurrent use.
type Sealer interface {
	// Seal returns plaintext encrypted and authenticated together with
	// additionalData, which is not stored: Open needs the same.
	Seal(plaintext, additionalData []byte) ([]byte, error)
	// Open returns the plaintext of a value Seal returned, or an error if
	// the value was altered, was sealed under a key this Sealer does not
	// hold, or was sealed with other additional data.
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Rotator is a Sealer that tells the values sealed under the key it seals
// with now from those sealed under an older key it still opens. AESGCM is
// one. A store's Reseal and Verify need it: after a rotation, they find the
// tokens to seal again before the older key is dropped.
type Rotator interface {
	Sealer
	// IsCurrent reports whether sealed names the key Seal uses now. It
	// does not open sealed: a value that names that key may still fail to
	// open.
	IsCurrent(sealed []byte) bool
}

// Errors Open returns (wrapped); test them with errors.Is.
var (
	// ErrUnknownKey: the value names a key id the Sealer does not hold.
	ErrUnknownKey = errors.New("tokenseal: sealed under an unknown key id")
	// ErrOpen: the value is not one this Sealer sealed, was altered, or
	// belongs to other additional data (another connection).
	ErrOpen = errors.New("tokenseal: cannot open: not sealed by this key, altered, or moved")
)

// Key is an AES key and the id that sealed values carry to name it.
type Key struct {
	// ID names the key in every value it seals, so that Open finds it
	// after a rotation. Give each key a new ID.
	ID byte
	// Secret is the AES key: 16, 24 or 32 random bytes (AES-128, -192,
	// -256). Keep it out of the database it protects.
	Secret []byte
}

// format is the first byte of every sealed value: the layout version.
const format = 1

// headerLen is the format byte and the key id byte.
const headerLen = 2

// AESGCM is a Sealer on AES-GCM. It seals with its current key and opens
// values sealed under any of its keys, so that keys can be rotated: deploy
// NewAESGCM(newKey, oldKey) to every replica, call the store's Reseal, which
// seals every token again under newKey, check with the store's Verify that
// no token is left under oldKey, then deploy NewAESGCM(newKey). Saving a
// token again does not do it: a Transport does not write a token it already
// holds.
//
// A sealed value is: the format byte (1), the key id, a 12-byte random
// nonce, then the ciphertext and its 16-byte tag; the format byte and key id
// are authenticated with the additional data. Random nonces are safe for
// far more tokens than a Finch application holds (NIST's bound is 2^32
// values per key).
type AESGCM struct {
	current byte
	aeads   map[byte]cipher.AEAD
}

var _ Rotator = (*AESGCM)(nil)

// NewAESGCM returns an AESGCM that seals under current and opens values
// sealed under current or any of previous. Key ids must be distinct.
func NewAESGCM(current Key, previous ...Key) (*AESGCM, error) {
	s := &AESGCM{current: current.ID, aeads: make(map[byte]cipher.AEAD, 1+len(previous))}
	for _, k := range append([]Key{current}, previous...) {
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("tokenseal: key id %d given twice", k.ID)
		}
		switch len(k.Secret) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("tokenseal: key %d is %d bytes; want 16, 24 or 32", k.ID, len(k.Secret))
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("tokenseal: key %d: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("tokenseal: key %d: %w", k.ID, err)
		}
		s.aeads[k.ID] = aead
	}
	return s, nil
}

// Seal implements Sealer.
func (s *AESGCM) Seal(plaintext, additionalData []byte) ([]byte, error) {
	if s == nil || s.aeads == nil {
		return nil, errors.New("tokenseal: AESGCM has no key: use NewAESGCM")
	}
	aead := s.aeads[s.current]
	ns := aead.NonceSize()
	out := make([]byte, headerLen+ns, headerLen+ns+len(plaintext)+aead.Overhead())
	out[0], out[1] = format, s.current
	rand.Read(out[headerLen:]) // never fails
	return aead.Seal(out, out[headerLen:], plaintext, ad(out[:headerLen], additionalData)), nil
}

// IsCurrent implements Rotator: it reports whether sealed is in the
// format Seal writes and names the current key.
func (s *AESGCM) IsCurrent(sealed []byte) bool {
	return s != nil && s.aeads != nil && len(sealed) >= headerLen && sealed[0] == format && sealed[1] == s.current
}

// Open implements Sealer.
func (s *AESGCM) Open(sealed, additionalData []byte) ([]byte, error) {
	if s == nil || s.aeads == nil {
		return nil, errors.New("tokenseal: AESGCM has no key: use NewAESGCM")
	}
	if len(sealed) < headerLen || sealed[0] != format {
		return nil, ErrOpen
	}
	aead, ok := s.aeads[sealed[1]]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownKey, sealed[1])
	}
	ns := aead.NonceSize()
	if len(sealed) < headerLen+ns+aead.Overhead() {
		return nil, ErrOpen
	}
	nonce, ct := sealed[headerLen:headerLen+ns], sealed[headerLen+ns:]
	pt, err := aead.Open(nil, nonce, ct, ad(sealed[:headerLen], additionalData))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// ad is the data GCM authenticates besides the plaintext: the header, then
// the caller's additional data.
func ad(header, additionalData []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(additionalData)), header...), additionalData...)
}
