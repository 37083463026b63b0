// Package reseal is what the stores' Reseal methods share: which tokens
// need sealing again after a key rotation, sealing one again, and the tally
// of a run, the tokens no key opens apart.
package reseal

import (
	"errors"
	"fmt"

	"github.com/finchkit/finchreauth/store/internal/quote"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// Stale reports whether a token as stored (sealed or in plaintext) is not
// sealed under rot's current key. An empty token is not.
func Stale(rot tokenseal.Rotator, token []byte, sealed bool) bool {
	return len(token) > 0 && (!sealed || !rot.IsCurrent(token))
}

// Token returns the token of connection id sealed under rot's current key,
// opened first if it is sealed. A token no key of rot opens is an
// *OpenError. pkg names the store in errors ("sqlstore").
func Token(pkg string, rot tokenseal.Rotator, id string, token []byte, sealed bool) ([]byte, error) {
	plain := token
	if sealed {
		var err error
		if plain, err = rot.Open(token, []byte(id)); err != nil {
			return nil, &OpenError{fmt.Errorf("%s: open the token of %s: %w", pkg, quote.ID(id), err)}
		}
	}
	out, err := rot.Seal(plain, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%s: seal the token of %s: %w", pkg, quote.ID(id), err)
	}
	return out, nil
}

// OpenError is a token Reseal cannot open with the Sealer's keys: it is
// left as it is, and the run goes on.
type OpenError struct{ Err error }

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Tally counts what a Reseal run did: the tokens sealed again, and those
// it left because no key opens them (the first one's error kept).
type Tally struct {
	Resealed int
	skipped  int
	first    error
}

// Add takes in one token's outcome: whether it was sealed again, or its
// error. It returns err unless it is an *OpenError, which it counts.
func (t *Tally) Add(done bool, err error) error {
	var oe *OpenError
	switch {
	case errors.As(err, &oe):
		if t.skipped == 0 {
			t.first = oe.Err
		}
		t.skipped++
	case err != nil:
		return err
	case done:
		t.Resealed++
	}
	return nil
}

// Err is nil when no token was left; otherwise it says how many were, and
// wraps the first one's error.
func (t Tally) Err(pkg string) error {
	if t.skipped == 0 {
		return nil
	}
	return fmt.Errorf("%s: reseal: %d tokens do not open with the Sealer's keys and were left as they are; the first: %w", pkg, t.skipped, t.first)
}
