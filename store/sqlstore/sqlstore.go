package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/quote"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// Store is a finchreauth.Store in SQL tables. Set its fields, call Migrate
// once, then share it: it is safe for concurrent use, and any number of
// processes can use the same tables. Do not change the fields after the
// first call.
//
// The zero value is not usable: calls fail with an error naming the missing
// field.
type Store struct {
	// DB is the database. Required. The Store never closes it.
	DB *sql.DB

	// Dialect is the database's SQL flavour: Postgres or SQLite. Required.
	Dialect Dialect

	// Table names the records table, optionally with its schema
	// ("finch.reauth"). If empty, "finchreauth". Migrate also creates
	// Table+"_fingerprints" and Table+"_schema".
	Table string

	// Sealer, if set, seals tokens before they are written and opens them
	// when read (see tokenseal.NewAESGCM); the connection id is the
	// additional data. A record whose token is stored in plaintext is then
	// refused until Migrate, run with the Sealer, seals it. If nil, tokens
	// are stored in plaintext, and a record whose token is sealed cannot
	// be read. Set one.
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

var errEmptyID = errors.New("sqlstore: empty connection id or fingerprint")

// start checks the Store, ctx and the id a call is about.
func (s *Store) start(ctx context.Context, id string) (*queries, error) {
	q, err := s.init()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errEmptyID
	}
	return q, nil
}

// fail wraps a database error of a call about what; if ctx is done, the
// error says so (drivers do not all wrap ctx.Err()).
func fail(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sqlstore: %s: %w (%v)", what, cerr, err)
	}
	return fmt.Errorf("sqlstore: %s: %w", what, err)
}

// Get implements finchreauth.Store.
func (s *Store) Get(ctx context.Context, connectionID string) (finchreauth.Record, error) {
	q, err := s.start(ctx, connectionID)
	if err != nil {
		return finchreauth.Record{}, err
	}
	r := finchreauth.Record{ConnectionID: connectionID}
	var sc scanned
	switch err := s.DB.QueryRowContext(ctx, q.get, connectionID).Scan(sc.into(&r)...); {
	case errors.Is(err, sql.ErrNoRows):
		return finchreauth.Record{}, finchreauth.ErrNotFound
	case err != nil:
		return finchreauth.Record{}, fail(ctx, "get "+quote.ID(connectionID), err)
	}
	if err := s.finish(&r, sc); err != nil {
		return finchreauth.Record{}, err
	}
	return r, nil
}

// scanned holds the columns of a record that need decoding.
type scanned struct {
	token        []byte
	sealed       bool
	fingerprints sql.NullString
}

// into returns the destinations of the record columns, in the order of
// the constant columns.
func (sc *scanned) into(r *finchreauth.Record) []any {
	return []any{&r.Version, nullBytes{&sc.token}, &sc.sealed, &sc.fingerprints,
		nullTime{&r.Since}, nullTime{&r.Due}, nullBytes{&r.Data}}
}

// errSealedNoSealer is the answer for a sealed token read by a Store
// without a Sealer: its ciphertext is not the token.
var errSealedNoSealer = errors.New("the token is sealed and the Store has no Sealer: set Store.Sealer to the tokenseal.AESGCM that sealed it")

// errPlaintext is the answer for a plaintext token read by a Store with a
// Sealer: anyone who can write the table could have put it there.
var errPlaintext = errors.New("the token is stored in plaintext and the Store has a Sealer: run Migrate with the Sealer set, which seals it")

// finish decodes sc into r: the token, opened if sealed, and the
// fingerprints. Its error means that this record cannot be read: List
// returns it in the record's place.
func (s *Store) finish(r *finchreauth.Record, sc scanned) error {
	if sc.fingerprints.Valid {
		if err := json.Unmarshal([]byte(sc.fingerprints.String), &r.Fingerprints); err != nil {
			return fmt.Errorf("sqlstore: the fingerprints of %s do not decode: %w", quote.ID(r.ConnectionID), err)
		}
	}
	switch {
	case len(sc.token) == 0:
	case sc.sealed && s.Sealer == nil:
		return fmt.Errorf("sqlstore: record of %s: %w", quote.ID(r.ConnectionID), errSealedNoSealer)
	case sc.sealed:
		plain, err := s.Sealer.Open(sc.token, []byte(r.ConnectionID))
		if err != nil {
			return fmt.Errorf("sqlstore: open the token of %s: %w", quote.ID(r.ConnectionID), err)
		}
		r.Token = finchreauth.Token(plain)
	case s.Sealer != nil:
		return fmt.Errorf("sqlstore: record of %s: %w", quote.ID(r.ConnectionID), errPlaintext)
	default:
		r.Token = finchreauth.Token(sc.token)
	}
	return nil
}

// Put implements finchreauth.Store: a compare-and-set on the version and
// the upsert of the fingerprints, in one transaction (see the package
// documentation).
func (s *Store) Put(ctx context.Context, rec finchreauth.Record) (int64, error) {
	q, err := s.start(ctx, rec.ConnectionID)
	if err != nil {
		return 0, err
	}
	for _, fp := range rec.Fingerprints {
		if fp == "" {
			return 0, errEmptyID
		}
	}
	var token []byte
	sealed := false
	if rec.Token != "" {
		token = []byte(rec.Token)
		if s.Sealer != nil {
			if token, err = s.Sealer.Seal(token, []byte(rec.ConnectionID)); err != nil {
				return 0, fmt.Errorf("sqlstore: seal token %s of %s: %w", rec.Token.Fingerprint(), quote.ID(rec.ConnectionID), err)
			}
			sealed = true
		}
	}
	var fps any // NULL for nil, so that Get returns nil
	if rec.Fingerprints != nil {
		b, _ := json.Marshal(rec.Fingerprints) // strings: cannot fail
		fps = string(b)
	}
	what := "put " + quote.ID(rec.ConnectionID)

	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fail(ctx, what, err)
	}
	defer tx.Rollback()
	args := []any{rec.ConnectionID, bytesArg(token), sealed, fps, q.timeArg(rec.Since), q.timeArg(rec.Due), bytesArg(rec.Data)}
	stmt := q.insert
	if rec.Version != 0 {
		stmt, args = q.update, append(args, rec.Version)
	}
	var version int64
	switch err := tx.QueryRowContext(ctx, stmt, args...).Scan(&version); {
	case errors.Is(err, sql.ErrNoRows), lostRace(err):
		return 0, finchreauth.ErrConflict
	case err != nil:
		return 0, fail(ctx, what, err)
	}
	if len(rec.Fingerprints) > 0 {
		if _, err := tx.ExecContext(ctx, q.index, rec.ConnectionID, fps); lostRace(err) {
			return 0, finchreauth.ErrConflict
		} else if err != nil {
			return 0, fail(ctx, what+": index its fingerprints", err)
		}
	}
	if err := tx.Commit(); lostRace(err) {
		return 0, finchreauth.ErrConflict
	} else if err != nil {
		return 0, fail(ctx, what+": commit", err)
	}
	return version, nil
}

// lostRace reports whether err is PostgreSQL's answer to a transaction that
// lost a race and was rolled back: a serialization failure (40001), which
// REPEATABLE READ and SERIALIZABLE give where READ COMMITTED waits and finds
// another version, or a deadlock (40P01). Nothing was written: to the
// caller it is ErrConflict, and the Transport reads again. Drivers such as
// pgx and lib/pq give the SQLSTATE through a SQLState method.
func lostRace(err error) bool {
	var e interface{ SQLState() string }
	if err == nil || !errors.As(err, &e) {
		return false
	}
	return e.SQLState() == "40001" || e.SQLState() == "40P01"
}

// Lookup implements finchreauth.Store.
func (s *Store) Lookup(ctx context.Context, fingerprint string) (string, error) {
	q, err := s.start(ctx, fingerprint)
	if err != nil {
		return "", err
	}
	var id string
	switch err := s.DB.QueryRowContext(ctx, q.lookup, fingerprint).Scan(&id); {
	case errors.Is(err, sql.ErrNoRows):
		return "", finchreauth.ErrNotFound
	case err != nil:
		return "", fail(ctx, "look up "+quote.ID(fingerprint), err)
	}
	return id, nil
}

// List implements finchreauth.Store, from the index on (since,
// connection_id) or (due, connection_id), or, for Query.Every, the primary
// key. A record it cannot read (a token it cannot open, or stored in
// plaintext where the Store has a Sealer) comes back in its place with only
// its ConnectionID, the time the listing orders by (none for Every) and Err
// set.
func (s *Store) List(ctx context.Context, lq finchreauth.Query) ([]finchreauth.Record, error) {
	q, err := s.init()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if lq.Limit <= 0 {
		return nil, errors.New("sqlstore: Query.Limit must be positive")
	}
	// The stored times are whole microseconds: a cursor between two of
	// them is passed as the earlier one with a NULL id, so that only
	// later times pass; DueBy, truncated, selects the same records.
	after, afterID := q.instant(lq.AfterTime), any(lq.AfterID)
	if !lq.AfterTime.Equal(lq.AfterTime.Truncate(time.Microsecond)) {
		afterID = nil
	}
	stmt, args := q.listSince, []any{after, afterID, lq.Limit}
	switch {
	case !lq.DueBy.IsZero():
		stmt, args = q.listDue, append(args, q.instant(lq.DueBy))
	case lq.Every:
		stmt, args = q.listEvery, []any{lq.AfterID, lq.Limit}
	}
	rows, err := s.DB.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fail(ctx, "list", err)
	}
	defer rows.Close()
	var out []finchreauth.Record
	for rows.Next() {
		var r finchreauth.Record
		var sc scanned
		if err := rows.Scan(append([]any{&r.ConnectionID}, sc.into(&r)...)...); err != nil {
			return nil, fail(ctx, "list", err)
		}
		if err := s.finish(&r, sc); err != nil {
			r = unreadable(lq, r, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "list", err)
	}
	return out, nil
}

// unreadable is what List returns for r, which it could not read: its
// connection id, the time q orders by (none for Every), and why.
func unreadable(q finchreauth.Query, r finchreauth.Record, err error) finchreauth.Record {
	out := finchreauth.Record{ConnectionID: r.ConnectionID, Err: err}
	switch {
	case !q.DueBy.IsZero():
		out.Due = r.Due
	case !q.Every:
		out.Since = r.Since
	}
	return out
}

// DropTables removes the Store's tables, if they exist, with everything in
// them. It is meant for tests and for uninstalling.
func (s *Store) DropTables(ctx context.Context) error {
	q, err := s.init()
	if err != nil {
		return err
	}
	for _, t := range []string{q.table, q.fps, q.schema} {
		if _, err := s.DB.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return fmt.Errorf("sqlstore: drop %s: %w", t, err)
		}
	}
	return nil
}
