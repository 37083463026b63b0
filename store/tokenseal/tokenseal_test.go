package tokenseal_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth/store/tokenseal"
)

func key(id byte, n int) tokenseal.Key {
	return tokenseal.Key{ID: id, Secret: bytes.Repeat([]byte{id + 1}, n)}
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s, err := tokenseal.NewAESGCM(key(7, n))
			if err != nil {
				t.Fatal(err)
			}
			secret := []byte("access-token-" + strings.Repeat("x", 40))
			sealed, err := s.Seal(secret, []byte("conn_a"))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(sealed, secret[:12]) {
				t.Error("the sealed value contains the plaintext")
			}
			again, _ := s.Seal(secret, []byte("conn_a"))
			if bytes.Equal(sealed, again) {
				t.Error("two seals of one value are equal: the nonce is not random")
			}
			got, err := s.Open(sealed, []byte("conn_a"))
			if err != nil || !bytes.Equal(got, secret) {
				t.Errorf("Open = %d bytes, %v; want the plaintext back", len(got), err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	s, _ := tokenseal.NewAESGCM(key(1, 32))
	other, _ := tokenseal.NewAESGCM(key(1, 16))
	sealed, _ := s.Seal([]byte("secret"), []byte("conn_a"))
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for _, c := range []struct {
		name   string
		sealer tokenseal.Sealer
		value  []byte
		ad     string
		want   error
	}{
		{"other connection", s, sealed, "conn_b", tokenseal.ErrOpen},
		{"other key, same id", other, sealed, "conn_a", tokenseal.ErrOpen},
		{"altered ciphertext", s, flip(len(sealed) - 1), "conn_a", tokenseal.ErrOpen},
		{"altered nonce", s, flip(3), "conn_a", tokenseal.ErrOpen},
		{"altered key id", s, flip(1), "conn_a", tokenseal.ErrUnknownKey},
		{"altered format", s, flip(0), "conn_a", tokenseal.ErrOpen},
		{"truncated", s, sealed[:10], "conn_a", tokenseal.ErrOpen},
		{"empty", s, nil, "conn_a", tokenseal.ErrOpen},
		{"plaintext", s, []byte("secret-token-stored-before-sealing"), "conn_a", tokenseal.ErrOpen},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.sealer.Open(c.value, []byte(c.ad))
			if !errors.Is(err, c.want) || got != nil {
				t.Errorf("Open = %d bytes, %v; want %v", len(got), err, c.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old, _ := tokenseal.NewAESGCM(key(1, 32))
	sealedOld, _ := old.Seal([]byte("old"), nil)
	rotated, err := tokenseal.NewAESGCM(key(2, 32), key(1, 32))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealedOld, nil); err != nil || string(got) != "old" {
		t.Errorf("Open of a value sealed under the previous key = %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal([]byte("new"), nil)
	if sealedNew[1] != 2 {
		t.Errorf("sealed under key id %d; want the current key, 2", sealedNew[1])
	}
	if _, err := old.Open(sealedNew, nil); !errors.Is(err, tokenseal.ErrUnknownKey) {
		t.Errorf("old sealer opening a value of the new key: %v; want ErrUnknownKey", err)
	}
}

func TestNewAESGCMErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		keys []tokenseal.Key
	}{
		{"short key", []tokenseal.Key{key(1, 15)}},
		{"empty key", []tokenseal.Key{{ID: 1}}},
		{"duplicate id", []tokenseal.Key{key(1, 32), key(1, 16)}},
	} {
		if _, err := tokenseal.NewAESGCM(c.keys[0], c.keys[1:]...); err == nil || !strings.HasPrefix(err.Error(), "tokenseal: ") {
			t.Errorf("%s: NewAESGCM error = %v; want a tokenseal error", c.name, err)
		}
	}
	var zero tokenseal.AESGCM
	if _, err := zero.Seal([]byte("x"), nil); err == nil {
		t.Error("zero AESGCM sealed; want an error")
	}
}

func ExampleNewAESGCM() {
	// In an application the secret comes from a secret manager, never from
	// the database the tokens are stored in.
	secret := bytes.Repeat([]byte{0x42}, 32)
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: secret})
	if err != nil {
		panic(err)
	}
	sealed, _ := s.Seal([]byte("the access token"), []byte("conn_123"))
	opened, _ := s.Open(sealed, []byte("conn_123"))
	_, err = s.Open(sealed, []byte("conn_456"))
	fmt.Println(string(opened))
	fmt.Println(err)
	// Output:
	// the access token
	// tokenseal: cannot open: not sealed by this key, altered, or moved
}

// TestIsCurrent: after a rotation, IsCurrent tells the values sealed under
// the new key from those under the old one, which both open; anything not
// in the format is not current.
func TestIsCurrent(t *testing.T) {
	old, _ := tokenseal.NewAESGCM(key(1, 32))
	rotated, _ := tokenseal.NewAESGCM(key(2, 32), key(1, 32))
	underOld, _ := old.Seal([]byte("tok"), []byte("c"))
	underNew, _ := rotated.Seal([]byte("tok"), []byte("c"))
	for _, c := range []struct {
		name   string
		s      tokenseal.Rotator
		sealed []byte
		want   bool
	}{
		{"old key, before the rotation", old, underOld, true},
		{"old key, after", rotated, underOld, false},
		{"new key, after", rotated, underNew, true},
		{"new key, before", old, underNew, false},
		{"plaintext", rotated, []byte("tok"), false},
		{"empty", rotated, nil, false},
		{"another format", rotated, append([]byte{9}, underNew[1:]...), false},
		{"zero AESGCM", &tokenseal.AESGCM{}, underNew, false},
	} {
		if got := c.s.IsCurrent(c.sealed); got != c.want {
			t.Errorf("%s: IsCurrent = %t; want %t", c.name, got, c.want)
		}
	}
}
