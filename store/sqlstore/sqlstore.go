package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/internal/fingerprints"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// Store is a finchreauth.Store in a SQL table. Set its fields, call Migrate
// once, then share it: it is safe for concurrent use, and any number of
// processes can use the same table. Do not change the fields after the
// first call.
//
// The zero value is not usable: calls fail with an error naming the missing
// field.
type Store struct {
	// DB is the database. Required. The Store never closes it.
	DB *sql.DB

	// Dialect is the database's SQL flavour: Postgres or SQLite. Required.
	Dialect Dialect

	// Table names the table, optionally with its schema ("finch.reauth").
	// If empty, "finchreauth". Migrate also creates Table+"_schema".
	Table string

	// Sealer, if set, seals tokens before they are written and opens them
	// when read (see tokenseal.NewAESGCM); the connection id is the
	// additional data. If nil, tokens are stored as they are.
	Sealer tokenseal.Sealer

	once sync.Once
	q    *queries
	err  error
}

var _ finchreauth.Store = (*Store)(nil)

// init checks the configuration and builds the queries, once.
func (s *Store) init() (*queries, error) {
	s.once.Do(func() {
		if s.DB == nil {
			s.err = errors.New("sqlstore: Store's DB is nil")
			return
		}
		s.q, s.err = newQueries(s.Dialect, s.Table)
	})
	return s.q, s.err
}

// Migrate creates the table, or upgrades it to the schema this package
// uses. Call it once at start-up (from every replica if convenient: calls
// are serialised, with an advisory lock on PostgreSQL and the write lock on
// SQLite). A table already at a newer version than this package knows is
// left alone.
func (s *Store) Migrate(ctx context.Context) error {
	q, err := s.init()
	if err != nil {
		return err
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer tx.Rollback()
	if q.d == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "finchreauth "+q.table); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+q.schemaTable+` (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+q.schemaTable).Scan(&version); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for v := version; v < len(q.migrations); v++ {
		if _, err := tx.ExecContext(ctx, q.migrations[v]); err != nil {
			return fmt.Errorf("sqlstore: migrate %s to version %d: %w", q.table, v+1, err)
		}
	}
	if version < len(q.migrations) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+q.schemaTable); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+q.schemaTable+` (version) VALUES (`+fmt.Sprint(len(q.migrations))+`)`); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	return nil
}

// DropTables removes the Store's table and its schema table, if they exist,
// with everything in them. It is meant for tests and for uninstalling.
func (s *Store) DropTables(ctx context.Context) error {
	q, err := s.init()
	if err != nil {
		return err
	}
	for _, t := range []string{q.table, q.schemaTable} {
		if _, err := s.DB.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return fmt.Errorf("sqlstore: drop %s: %w", t, err)
		}
	}
	return nil
}

// MarkReauth implements finchreauth.Store, in one statement (see the
// package documentation).
func (s *Store) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	q, err := s.init()
	if err != nil {
		return finchreauth.MarkResult{}, err
	}
	nonce := rand.Text()
	start, regrant := nonce+":start", nonce+":lease"
	var res finchreauth.MarkResult
	var holder string
	err = s.DB.QueryRowContext(ctx, q.mark,
		m.Key, m.ConnectionID, m.TokenFingerprint, m.Episode, q.timeArg(m.At), q.timeArg(m.LeaseUntil), start, regrant,
	).Scan(&res.Episode, nullTime{&res.Since}, &res.Notified, &holder)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// The WHERE clause refused the update: the token is superseded.
		return finchreauth.MarkResult{Stale: true}, nil
	case err != nil:
		return finchreauth.MarkResult{}, fmt.Errorf("sqlstore: mark %s: %w", m.Key, err)
	}
	res.Transitioned = holder == start
	res.Notify = res.Transitioned || holder == regrant
	return res, nil
}

// MarkNotified implements finchreauth.Store.
func (s *Store) MarkNotified(ctx context.Context, key, episode string) error {
	q, err := s.init()
	if err != nil {
		return err
	}
	if _, err := s.DB.ExecContext(ctx, q.notified, key, episode); err != nil {
		return fmt.Errorf("sqlstore: mark %s notified: %w", key, err)
	}
	return nil
}

// errEmptyToken is SaveToken's answer to a token without a connection id or
// an access token.
var errEmptyToken = errors.New("sqlstore: token needs a connection id and an access token")

// SaveToken implements finchreauth.Store: a compare-and-set on IssuedAt,
// in one transaction (see the package documentation).
func (s *Store) SaveToken(ctx context.Context, tok finchreauth.Token) (finchreauth.State, error) {
	q, err := s.init()
	if err != nil {
		return finchreauth.State{}, err
	}
	if tok.ConnectionID == "" || tok.AccessToken == "" {
		return finchreauth.State{}, errEmptyToken
	}
	sealed := []byte(tok.AccessToken)
	if s.Sealer != nil {
		if sealed, err = s.Sealer.Seal(sealed, []byte(tok.ConnectionID)); err != nil {
			return finchreauth.State{}, fmt.Errorf("sqlstore: seal token %s: %w", tok.Fingerprint(), err)
		}
	}
	fp := tok.Fingerprint()
	key := tok.ConnectionID
	fail := func(what string, err error) (finchreauth.State, error) {
		return finchreauth.State{}, fmt.Errorf("sqlstore: save token %s of %s: %s: %w", fp, key, what, err)
	}

	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback()
	var inserted string
	switch err := tx.QueryRowContext(ctx, q.ensure, key).Scan(&inserted); {
	case errors.Is(err, sql.ErrNoRows): // the row exists
	case err != nil:
		return fail("insert", err)
	}
	var prev finchreauth.State
	var superseded string
	if err := tx.QueryRowContext(ctx, q.lock, key).Scan(&prev.ConnectionID, &prev.NeedsReauth, &prev.Episode,
		nullTime{&prev.Since}, &prev.Notified, nullTime{&prev.LeaseUntil}, &prev.TokenFingerprint,
		nullTime{&prev.TokenIssuedAt}, &superseded); err != nil {
		return fail("lock", err)
	}
	if inserted != "" {
		prev = finchreauth.State{} // the row is the empty one just inserted
	} else {
		prev.Key = key
		prev.Superseded = splitFPs(superseded)
	}
	if prev.TokenFingerprint != "" && prev.TokenIssuedAt.After(tok.IssuedAt) {
		return finchreauth.State{}, finchreauth.ErrStaleToken
	}
	next := fingerprints.Supersede(prev.Superseded, prev.TokenFingerprint, fp)
	r, err := tx.ExecContext(ctx, q.replace, key, key, sealed, fp, q.timeArg(tok.IssuedAt), strings.Join(next, " "))
	if err != nil {
		return fail("update", err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		// The row is locked: this cannot happen unless the isolation
		// promises were broken. Refuse rather than guess.
		return fail("update", fmt.Errorf("%d rows changed (%v)", n, err))
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	return prev, nil
}

func splitFPs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// Token implements finchreauth.Store.
func (s *Store) Token(ctx context.Context, connectionID string) (finchreauth.Token, error) {
	q, err := s.init()
	if err != nil {
		return finchreauth.Token{}, err
	}
	tok := finchreauth.Token{ConnectionID: connectionID}
	var stored []byte
	switch err := s.DB.QueryRowContext(ctx, q.token, connectionID).Scan(&stored, nullTime{&tok.IssuedAt}); {
	case errors.Is(err, sql.ErrNoRows):
		return finchreauth.Token{}, finchreauth.ErrNotFound
	case err != nil:
		return finchreauth.Token{}, fmt.Errorf("sqlstore: token of %s: %w", connectionID, err)
	}
	if s.Sealer != nil {
		if stored, err = s.Sealer.Open(stored, []byte(connectionID)); err != nil {
			return finchreauth.Token{}, fmt.Errorf("sqlstore: token of %s: %w", connectionID, err)
		}
	}
	tok.AccessToken = string(stored)
	return tok, nil
}

// State implements finchreauth.Store.
func (s *Store) State(ctx context.Context, key string) (finchreauth.State, error) {
	q, err := s.init()
	if err != nil {
		return finchreauth.State{}, err
	}
	st := finchreauth.State{Key: key}
	var superseded string
	switch err := s.DB.QueryRowContext(ctx, q.state, key).Scan(&st.ConnectionID, &st.NeedsReauth, &st.Episode,
		nullTime{&st.Since}, &st.Notified, nullTime{&st.LeaseUntil}, &st.TokenFingerprint,
		nullTime{&st.TokenIssuedAt}, &superseded); {
	case errors.Is(err, sql.ErrNoRows):
		return finchreauth.State{}, finchreauth.ErrNotFound
	case err != nil:
		return finchreauth.State{}, fmt.Errorf("sqlstore: state of %s: %w", key, err)
	}
	st.Superseded = splitFPs(superseded)
	return st, nil
}
