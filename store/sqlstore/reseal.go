package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/finchkit/finchreauth/store/internal/quote"
	"github.com/finchkit/finchreauth/store/internal/reseal"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// resealPage is how many records Reseal and Verify read at a time.
const resealPage = 500

// maxReseals is how many times Reseal tries a record that other writes
// keep changing.
const maxReseals = 10

// verifyFirst is how many connection ids Verify returns at most.
const verifyFirst = 10

// Reseal seals again, under the Sealer's current key, every token that is
// not sealed under it: sealed under an older key the Sealer still opens, or
// stored in plaintext. It returns how many tokens it sealed again. After a
// key rotation (tokenseal.NewAESGCM(newKey, oldKey) deployed to every
// replica), run it, then check with Verify that no token is left under the
// old key before dropping it.
//
// Reseal reads the table in connection id order, resealPage records at a
// time, and writes each token it seals again by a compare-and-set on the
// record's version and token: a Put that came since it read the record wins
// (Reseal reads the record again), and the record's version stays, so that
// the Transport's own compare-and-sets do not fail because of it. Every
// replica may run it at once. Interrupted, it leaves every record readable;
// run it again and it finishes, skipping the tokens already sealed under the
// current key.
//
// A token Reseal cannot open (sealed under a key the Sealer does not hold)
// is left as it is; once every other record is done, Reseal returns an error
// naming how many there were and wrapping the first one's. The Sealer must
// be a tokenseal.Rotator, as tokenseal.AESGCM is.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	q, rot, err := s.rotator()
	if err != nil {
		return 0, err
	}
	var tally reseal.Tally
	err = s.eachToken(ctx, q, func(r tokenRow) error {
		return tally.Add(s.resealRow(ctx, q, rot, r))
	})
	if err == nil {
		err = tally.Err("sqlstore")
	}
	return tally.Resealed, err
}

// Verify counts the records whose token is not sealed under the Sealer's
// current key (sealed under another key, or stored in plaintext), and
// returns the connection ids of the first verifyFirst of them, in id order.
// Zero means that the Sealer's current key alone opens every token: older
// keys can be dropped. It reads the table as Reseal does, and writes
// nothing.
func (s *Store) Verify(ctx context.Context) (stale int, first []string, err error) {
	q, rot, err := s.rotator()
	if err != nil {
		return 0, nil, err
	}
	err = s.eachToken(ctx, q, func(r tokenRow) error {
		if reseal.Stale(rot, r.token, r.sealed) {
			stale++
			if len(first) < verifyFirst {
				first = append(first, r.id)
			}
		}
		return nil
	})
	return stale, first, err
}

// rotator returns the Store's queries and its Sealer as a Rotator.
func (s *Store) rotator() (*queries, tokenseal.Rotator, error) {
	q, err := s.init()
	if err != nil {
		return nil, nil, err
	}
	rot, ok := s.Sealer.(tokenseal.Rotator)
	if !ok {
		return nil, nil, fmt.Errorf("sqlstore: Reseal and Verify need a Sealer that tells its current key (a tokenseal.Rotator, as tokenseal.AESGCM is); the Store's is %T", s.Sealer)
	}
	return q, rot, nil
}

// tokenRow is a record's token as the table holds it.
type tokenRow struct {
	id      string
	version int64
	token   []byte
	sealed  bool
}

// eachToken calls fn with every record that holds a token, in connection id
// order, reading resealPage records at a time.
func (s *Store) eachToken(ctx context.Context, q *queries, fn func(tokenRow) error) error {
	after := ""
	for {
		page, err := s.tokenPage(ctx, q, after)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < resealPage {
			return nil
		}
		after = page[len(page)-1].id
	}
}

// tokenPage reads the page of tokens after the connection id after, whole,
// so that no read is open while Reseal writes.
func (s *Store) tokenPage(ctx context.Context, q *queries, after string) ([]tokenRow, error) {
	rows, err := s.DB.QueryContext(ctx, q.tokens, after, resealPage)
	if err != nil {
		return nil, fail(ctx, "read the tokens", err)
	}
	defer rows.Close()
	var page []tokenRow
	for rows.Next() {
		var r tokenRow
		if err := rows.Scan(&r.id, &r.version, nullBytes{&r.token}, &r.sealed); err != nil {
			return nil, fail(ctx, "read the tokens", err)
		}
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "read the tokens", err)
	}
	return page, nil
}

// resealRow seals r's token again under rot's current key, unless it is
// already, and reports whether it did. It returns a *reseal.OpenError for a
// token it cannot open.
func (s *Store) resealRow(ctx context.Context, q *queries, rot tokenseal.Rotator, r tokenRow) (bool, error) {
	for range maxReseals {
		if !reseal.Stale(rot, r.token, r.sealed) {
			return false, nil
		}
		sealed, err := reseal.Token("sqlstore", rot, r.id, r.token, r.sealed)
		if err != nil {
			return false, err
		}
		res, err := s.DB.ExecContext(ctx, q.reseal, r.id, sealed, r.version, r.token)
		if err != nil {
			return false, fail(ctx, "reseal "+quote.ID(r.id), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, fail(ctx, "reseal "+quote.ID(r.id), err)
		} else if n == 1 {
			return true, nil
		}
		// Another write came first: read the token again.
		switch err := s.DB.QueryRowContext(ctx, q.token, r.id).Scan(&r.version, nullBytes{&r.token}, &r.sealed); {
		case errors.Is(err, sql.ErrNoRows):
			return false, nil
		case err != nil:
			return false, fail(ctx, "reseal "+quote.ID(r.id), err)
		}
	}
	return false, fmt.Errorf("sqlstore: reseal %s: %d other writes came first", quote.ID(r.id), maxReseals)
}
