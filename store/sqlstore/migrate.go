package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/finchkit/finchreauth/store/internal/quote"
)

// Migrate creates the tables, or upgrades them to the schema this package
// uses, and, when the Store has a Sealer, seals the tokens stored in
// plaintext. Call it at start-up, from every replica if convenient: calls
// are serialised, by an advisory lock on PostgreSQL and by the write lock
// (BEGIN IMMEDIATE) on SQLite, and a second call changes nothing. A table
// already at a newer version than this package knows is left alone.
//
// The upgrade from version 1 (the table of earlier releases) keeps every
// saved token, sealed or not, every fingerprint the table knew, and every
// open episode, which the Transport takes up again: it notifies the
// customer if the table says nobody was. Stop the replicas that run an
// earlier release before it: they cannot read the new tables.
func (s *Store) Migrate(ctx context.Context) error {
	q, err := s.init()
	if err != nil {
		return err
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return fail(ctx, "migrate: connect", err)
	}
	defer conn.Close()
	// A connection of its own, for BEGIN IMMEDIATE: SQLite takes the
	// write lock at once, so that concurrent calls wait for each other
	// rather than fail when one upgrades its read to a write.
	begin := "BEGIN"
	if q.d == SQLite {
		begin = "BEGIN IMMEDIATE"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return fail(ctx, "migrate: "+begin, err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			// Never hand a connection in a transaction back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := s.migrate(ctx, conn, q); err != nil {
		return fail(ctx, "migrate "+q.table, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fail(ctx, "migrate "+q.table, err)
	}
	done = true
	return nil
}

// migrate does Migrate's work inside its transaction.
func (s *Store) migrate(ctx context.Context, conn *sql.Conn, q *queries) error {
	if q.d == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "finchreauth "+q.table); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+q.schema+` (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var version int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+q.schema).Scan(&version); err != nil {
		return err
	}
	switch {
	case version > schemaVersion:
		return nil // a later release's: not ours to touch
	case version == 0:
		for _, stmt := range q.create {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	case version == 1:
		if err := upgradeV1(ctx, conn, q); err != nil {
			return fmt.Errorf("upgrade from version 1: %w", err)
		}
	}
	if version != schemaVersion {
		if _, err := conn.ExecContext(ctx, `DELETE FROM `+q.schema); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO `+q.schema+` (version) VALUES (`+strconv.Itoa(schemaVersion)+`)`); err != nil {
			return err
		}
	}
	if s.Sealer != nil {
		return s.sealPlaintext(ctx, conn, q)
	}
	return nil
}

// sealPlaintext seals the tokens stored in plaintext: those saved before
// the Store had a Sealer. The version does not change: the record does
// not either.
func (s *Store) sealPlaintext(ctx context.Context, conn *sql.Conn, q *queries) error {
	rows, err := conn.QueryContext(ctx, q.plaintext)
	if err != nil {
		return err
	}
	type plain struct {
		id    string
		token []byte
	}
	var todo []plain
	for rows.Next() {
		var p plain
		if err := rows.Scan(&p.id, &p.token); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range todo {
		sealed, err := s.Sealer.Seal(p.token, []byte(p.id))
		if err != nil {
			return fmt.Errorf("seal the token of %s: %w", quote.ID(p.id), err)
		}
		if _, err := conn.ExecContext(ctx, q.seal, p.id, sealed, p.token); err != nil {
			return fmt.Errorf("seal the token of %s: %w", quote.ID(p.id), err)
		}
	}
	return nil
}

// v1Row is a row of the version-1 table. Its key is a connection id, or
// "fp:" and the fingerprint of a token a detection named before anything
// else was known of it.
type v1Row struct {
	key, conn, episode, fp, superseded string
	needsReauth, notified              bool
	since                              time.Time
	token                              []byte
}

// v1Data is the Transport's record format (Record.Data) for what a
// version-1 row knew: the current token's fingerprint and the open
// episode, opened by a detection, notified or not.
type v1Data struct {
	Current string     `json:"current,omitempty"`
	Episode *v1Episode `json:"episode,omitempty"`
}

type v1Episode struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Sent   int    `json:"sent,omitempty"`
}

// upgradeV1 moves the version-1 table aside, creates the new tables, copies
// what the old one knew and drops it.
func upgradeV1(ctx context.Context, conn *sql.Conn, q *queries) error {
	for _, stmt := range slices.Concat(q.v1Aside, q.create) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	rows, err := conn.QueryContext(ctx, q.v1Rows)
	if err != nil {
		return err
	}
	var all []v1Row
	for rows.Next() {
		var r v1Row
		if err := rows.Scan(&r.key, &r.conn, &r.needsReauth, &r.episode, nullTime{&r.since}, &r.notified, nullBytes{&r.token}, &r.fp, &r.superseded); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	// Each fingerprint goes to one connection: the one whose current
	// token it is, else the one that replaced it, else the one a
	// detection found for it.
	owner := map[string]string{}
	rank := map[string]int{}
	claim := func(fp, conn string, r int) {
		if have, ok := rank[fp]; fp != "" && (!ok || r < have) {
			owner[fp], rank[fp] = conn, r
		}
	}
	for _, r := range all {
		if fp, ok := strings.CutPrefix(r.key, "fp:"); ok {
			if r.fp != "" {
				fp = r.fp
			}
			if r.conn != "" {
				claim(fp, r.conn, 2)
			}
			continue
		}
		claim(r.fp, r.key, 0)
		for _, fp := range strings.Fields(r.superseded) {
			claim(fp, r.key, 1)
		}
		if err := insertV1(ctx, conn, q, r); err != nil {
			return fmt.Errorf("copy the record of %s: %w", quote.ID(r.key), err)
		}
	}
	byConn := map[string][]string{}
	for fp, c := range owner {
		byConn[c] = append(byConn[c], fp)
	}
	for c, fps := range byConn {
		b, _ := json.Marshal(fps)
		if _, err := conn.ExecContext(ctx, q.index, c, string(b)); err != nil {
			return fmt.Errorf("index the fingerprints of %s: %w", quote.ID(c), err)
		}
	}
	_, err = conn.ExecContext(ctx, q.v1Drop)
	return err
}

// insertV1 writes the record of a version-1 connection row, at version 1.
func insertV1(ctx context.Context, conn *sql.Conn, q *queries, r v1Row) error {
	var fps []string
	for _, fp := range append([]string{r.fp}, strings.Fields(r.superseded)...) {
		if fp != "" && !slices.Contains(fps, fp) {
			fps = append(fps, fp)
		}
	}
	var fpsArg any
	if fps != nil {
		b, _ := json.Marshal(fps)
		fpsArg = string(b)
	}
	d := v1Data{Current: r.fp}
	var since time.Time
	if r.needsReauth {
		d.Episode = &v1Episode{ID: r.episode, Source: "detection"}
		if r.notified {
			d.Episode.Sent = 1
		}
		since = r.since
	}
	var data []byte
	if d != (v1Data{}) {
		data, _ = json.Marshal(d) // strings and an int: cannot fail
	}
	// Due is the episode's start: the Transport looks at it again at once.
	var version int64
	return conn.QueryRowContext(ctx, q.insert, r.key, bytesArg(r.token), looksSealed(r.token), fpsArg,
		q.timeArg(since), q.timeArg(since), bytesArg(data)).Scan(&version)
}

// looksSealed reports whether a version-1 token is a tokenseal value, which
// that table did not say: a format byte of 1, a key id, a 12-byte nonce and
// a 16-byte tag at least. Finch's access tokens are printable text.
func looksSealed(tok []byte) bool { return len(tok) >= 2+12+16 && tok[0] == 1 }
