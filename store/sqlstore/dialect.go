package sqlstore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Dialect is the SQL flavour of the database behind a Store.
type Dialect int

const (
	// Postgres is PostgreSQL 9.5 or later (ON CONFLICT), through any
	// database/sql driver that takes $1 parameters, such as
	// github.com/jackc/pgx/v5/stdlib.
	Postgres Dialect = iota + 1
	// SQLite is SQLite 3.35 or later (RETURNING), such as
	// modernc.org/sqlite.
	SQLite
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "Postgres"
	case SQLite:
		return "SQLite"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// tableName is what Store.Table accepts: an identifier, optionally
// qualified by a schema, left unquoted.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}(\.[A-Za-z_][A-Za-z0-9_]{0,50})?$`)

// queries holds a Store's SQL, built once for its dialect and table.
type queries struct {
	d                     Dialect
	table                 string
	mark, notified        string
	ensure, lock, replace string
	token, state          string
	migrations            []string
	schemaTable           string
}

func newQueries(d Dialect, table string) (*queries, error) {
	if d != Postgres && d != SQLite {
		return nil, fmt.Errorf("sqlstore: Store's Dialect is %v; want Postgres or SQLite", d)
	}
	if table == "" {
		table = "finchreauth"
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("sqlstore: Store's Table %q is not an identifier (letters, digits, _; optionally schema.table)", table)
	}
	q := &queries{d: d, table: table, schemaTable: table + "_schema"}
	sub := func(s string) string {
		s = strings.ReplaceAll(s, "{T}", table)
		if d == Postgres {
			s = strings.ReplaceAll(s, "{FOR UPDATE}", " FOR UPDATE")
			s = strings.ReplaceAll(s, "{strpos}", "strpos")
			return s
		}
		s = strings.ReplaceAll(s, "{FOR UPDATE}", "")
		s = strings.ReplaceAll(s, "{strpos}", "instr")
		return placeholders.ReplaceAllString(s, "?$1")
	}

	// The decision of MarkReauth, in one statement. Parameters: $1 key,
	// $2 connection id, $3 token fingerprint, $4 episode, $5 At,
	// $6 LeaseUntil, $7 the call's nonce for a start, $8 its nonce for a
	// lease granted again. The SET expressions all read the row as it was.
	// A key that knows no token takes the marked one's fingerprint, so that
	// the SaveToken ending the episode supersedes it.
	q.mark = sub(`INSERT INTO {T} AS r (key, connection_id, needs_reauth, episode, since, notified, lease_until, lease_holder, token_fp)
VALUES ($1, $2, TRUE, $4, $5, FALSE, $6, $7, $3)
ON CONFLICT (key) DO UPDATE SET
	connection_id = CASE WHEN r.connection_id = '' THEN excluded.connection_id ELSE r.connection_id END,
	token_fp = CASE WHEN r.token_fp = '' THEN excluded.token_fp ELSE r.token_fp END,
	episode = CASE WHEN r.needs_reauth THEN r.episode ELSE excluded.episode END,
	since = CASE WHEN r.needs_reauth THEN r.since ELSE excluded.since END,
	notified = CASE WHEN r.needs_reauth THEN r.notified ELSE FALSE END,
	lease_until = CASE
		WHEN NOT r.needs_reauth THEN excluded.lease_until
		WHEN NOT r.notified AND (r.lease_until IS NULL OR r.lease_until <= excluded.since) THEN excluded.lease_until
		ELSE r.lease_until END,
	lease_holder = CASE
		WHEN NOT r.needs_reauth THEN excluded.lease_holder
		WHEN NOT r.notified AND (r.lease_until IS NULL OR r.lease_until <= excluded.since) THEN CAST($8 AS TEXT)
		ELSE r.lease_holder END,
	needs_reauth = TRUE
WHERE CAST($3 AS TEXT) = '' OR {strpos}(' ' || r.superseded || ' ', ' ' || CAST($3 AS TEXT) || ' ') = 0
RETURNING episode, since, notified, lease_holder`)

	q.notified = sub(`UPDATE {T} SET notified = TRUE, lease_until = NULL, lease_holder = ''
WHERE key = $1 AND needs_reauth AND episode = $2`)

	// SaveToken's transaction: make sure the row exists (and, on SQLite,
	// take the write lock), lock and read it, replace it.
	q.ensure = sub(`INSERT INTO {T} (key) VALUES ($1) ON CONFLICT (key) DO NOTHING RETURNING key`)
	q.lock = sub(`SELECT connection_id, needs_reauth, episode, since, notified, lease_until, token_fp, token_issued_at, superseded
FROM {T} WHERE key = $1{FOR UPDATE}`)
	q.replace = sub(`UPDATE {T} SET connection_id = $2, needs_reauth = FALSE, episode = '', since = NULL, notified = FALSE,
	lease_until = NULL, lease_holder = '', token = $3, token_fp = $4, token_issued_at = $5, superseded = $6
WHERE key = $1 AND (token_issued_at IS NULL OR token_issued_at <= $5)`)

	q.token = sub(`SELECT token, token_issued_at FROM {T} WHERE key = $1 AND token IS NOT NULL`)
	q.state = sub(`SELECT connection_id, needs_reauth, episode, since, notified, lease_until, token_fp, token_issued_at, superseded
FROM {T} WHERE key = $1`)

	// The schema, one step per version.
	var types = map[string]string{"bool": "BOOLEAN", "time": "TIMESTAMPTZ", "bytes": "BYTEA"}
	if d == SQLite {
		types = map[string]string{"bool": "INTEGER", "time": "INTEGER", "bytes": "BLOB"}
	}
	q.migrations = []string{sub(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS {T} (
	key             TEXT PRIMARY KEY,
	connection_id   TEXT NOT NULL DEFAULT '',
	needs_reauth    %[1]s NOT NULL DEFAULT FALSE,
	episode         TEXT NOT NULL DEFAULT '',
	since           %[2]s,
	notified        %[1]s NOT NULL DEFAULT FALSE,
	lease_until     %[2]s,
	lease_holder    TEXT NOT NULL DEFAULT '',
	token           %[3]s,
	token_fp        TEXT NOT NULL DEFAULT '',
	token_issued_at %[2]s,
	superseded      TEXT NOT NULL DEFAULT ''
)`, types["bool"], types["time"], types["bytes"]))}
	return q, nil
}

// placeholders matches PostgreSQL's $1, which SQLite spells ?1.
var placeholders = regexp.MustCompile(`\$(\d+)`)

// timeArg is how the dialect stores t: a timestamptz, or microseconds since
// the Unix epoch. The zero time is NULL.
func (q *queries) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if q.d == SQLite {
		return t.UnixMicro()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// nullTime scans either representation of timeArg; NULL is the zero time.
type nullTime struct{ t *time.Time }

func (n nullTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*n.t = time.Time{}
	case time.Time:
		*n.t = v.UTC()
	case int64:
		*n.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("sqlstore: time column holds a %T", src)
	}
	return nil
}
