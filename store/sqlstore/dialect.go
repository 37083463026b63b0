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
	// SQLite is SQLite 3.35 or later (RETURNING) with the JSON functions
	// (built in since 3.38), such as modernc.org/sqlite.
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
// qualified by a schema, left unquoted. 50 characters leave room for the
// longest suffix, "_fingerprints", within PostgreSQL's 63.
var tableName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,50}\.)?[A-Za-z_][A-Za-z0-9_]{0,49}$`)

// schemaVersion is the version of the schema this package creates and
// reads. Version 1 was the table of the Store interface before it became
// Get/Put/Lookup/List; Migrate upgrades it.
const schemaVersion = 2

// queries holds a Store's SQL, built once for its dialect and table.
type queries struct {
	d Dialect
	// table is the records table; fps its fingerprint index; schema the
	// table that holds the schema version. prefix is table's schema
	// ("finch." or ""), base its name without it.
	table, fps, schema string
	prefix, base       string

	get, insert, update, index, lookup string
	listSince, listDue, listEvery      string

	// Reseal's and Verify's: a page of tokens in connection id order, one
	// record's token, and the compare-and-set that seals one again.
	tokens, token, reseal string

	// Migrate's: a new schema at schemaVersion; the plaintext tokens and
	// the sealing of one; the version-1 table moved aside, read and
	// dropped.
	create          []string
	plaintext, seal string
	v1Aside         []string
	v1Rows, v1Drop  string
}

// columns are a record's columns, in the order get and the lists scan them.
const columns = `version, token, sealed, fingerprints, since, due, data`

func newQueries(d Dialect, table string) (*queries, error) {
	if d != Postgres && d != SQLite {
		return nil, fmt.Errorf("sqlstore: Store's Dialect is %v; want Postgres or SQLite", d)
	}
	if table == "" {
		table = "finchreauth"
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("sqlstore: Store's Table %q is not an identifier (letters, digits, _, at most 50; optionally schema.table)", table)
	}
	q := &queries{d: d, table: table, fps: table + "_fingerprints", schema: table + "_schema"}
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		q.prefix, q.base = table[:i+1], table[i+1:]
	} else {
		q.base = table
	}
	sub := func(s string) string {
		s = strings.NewReplacer("{T}", q.table, "{F}", q.fps).Replace(s)
		if d == Postgres {
			s = strings.ReplaceAll(s, "{elements}", "jsonb_array_elements_text(CAST($2 AS JSONB)) AS e(value)")
			return s
		}
		s = strings.ReplaceAll(s, "{elements}", "json_each($2)")
		return placeholders.ReplaceAllString(s, "?$1")
	}

	q.get = sub(`SELECT ` + columns + ` FROM {T} WHERE connection_id = $1`)

	// Put's compare-and-set: the insert when no record is expected (ON
	// CONFLICT DO NOTHING: a concurrent insert that commits first makes it
	// return no row, never a unique violation), the update when one is.
	// Parameters: $1 connection id, $2 token, $3 sealed, $4 fingerprints,
	// $5 since, $6 due, $7 data, $8 the expected version.
	q.insert = sub(`INSERT INTO {T} (connection_id, ` + columns + `)
VALUES ($1, 1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (connection_id) DO NOTHING
RETURNING version`)
	q.update = sub(`UPDATE {T} SET version = version + 1,
	token = $2, sealed = $3, fingerprints = $4, since = $5, due = $6, data = $7
WHERE connection_id = $1 AND version = $8
RETURNING version`)

	// The fingerprints of a Put, a JSON array in $2, point to its
	// connection, $1. Rows already right are left as they are; sorted, the
	// rows are locked in one order by every writer.
	q.index = sub(`INSERT INTO {F} AS f (fingerprint, connection_id)
SELECT DISTINCT value, CAST($1 AS TEXT) FROM {elements} WHERE TRUE ORDER BY value
ON CONFLICT (fingerprint) DO UPDATE SET connection_id = excluded.connection_id
WHERE f.connection_id <> excluded.connection_id`)
	q.lookup = sub(`SELECT connection_id FROM {F} WHERE fingerprint = $1`)

	// List, in the order of the partial indexes on (since, connection_id)
	// and (due, connection_id): the IS NOT NULL terms let the database use
	// them. $1 and $2 are the cursor, $3 the limit, $4 DueBy.
	q.listSince = sub(`SELECT connection_id, ` + columns + ` FROM {T}
WHERE since IS NOT NULL AND (since, connection_id) > ($1, $2)
ORDER BY since, connection_id LIMIT $3`)
	q.listDue = sub(`SELECT connection_id, ` + columns + ` FROM {T}
WHERE due IS NOT NULL AND due <= $4 AND (due, connection_id) > ($1, $2)
ORDER BY due, connection_id LIMIT $3`)
	// Every record, in the order of the primary key: $1 the cursor's id,
	// $2 the limit.
	q.listEvery = sub(`SELECT connection_id, ` + columns + ` FROM {T}
WHERE connection_id > $1
ORDER BY connection_id LIMIT $2`)

	// The schema. On PostgreSQL, connection ids sort by their bytes
	// (COLLATE "C"), as Go compares strings, whatever the database's
	// locale. SQLite's default collation already does.
	types := map[string]string{"id": `TEXT COLLATE "C"`, "bool": "BOOLEAN", "time": "TIMESTAMPTZ", "bytes": "BYTEA", "int": "BIGINT"}
	if d == SQLite {
		types = map[string]string{"id": "TEXT", "bool": "INTEGER", "time": "INTEGER", "bytes": "BLOB", "int": "INTEGER"}
	}
	ddl := func(s string) string {
		for k, v := range types {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return sub(s)
	}
	// An index lives in its table's schema: PostgreSQL qualifies the
	// table, SQLite the index.
	index := func(name, cols, where string) string {
		if d == Postgres {
			return fmt.Sprintf("CREATE INDEX %s%s ON %s (%s) WHERE %s", q.base, name, q.table, cols, where)
		}
		return fmt.Sprintf("CREATE INDEX %s%s%s ON %s (%s) WHERE %s", q.prefix, q.base, name, q.base, cols, where)
	}
	q.create = []string{
		ddl(`CREATE TABLE {T} (
	connection_id {id} NOT NULL PRIMARY KEY,
	version       {int} NOT NULL,
	token         {bytes},
	sealed        {bool} NOT NULL DEFAULT FALSE,
	fingerprints  TEXT,
	since         {time},
	due           {time},
	data          {bytes}
)`),
		index("_since", "since, connection_id", "since IS NOT NULL"),
		index("_due", "due, connection_id", "due IS NOT NULL"),
		ddl(`CREATE TABLE {F} (
	fingerprint   {id} NOT NULL PRIMARY KEY,
	connection_id {id} NOT NULL
)`),
	}

	// $1 the last connection id of the previous page, $2 the page size.
	q.tokens = sub(`SELECT connection_id, version, token, sealed FROM {T}
WHERE connection_id > $1 AND token IS NOT NULL ORDER BY connection_id LIMIT $2`)
	q.token = sub(`SELECT version, token, sealed FROM {T} WHERE connection_id = $1`)
	// Only if no write came since the token was read: $3 the version read,
	// $4 the token read.
	q.reseal = sub(`UPDATE {T} SET token = $2, sealed = TRUE WHERE connection_id = $1 AND version = $3 AND token = $4`)

	q.plaintext = `SELECT connection_id, token FROM ` + q.table + ` WHERE token IS NOT NULL AND NOT sealed`
	q.seal = sub(`UPDATE {T} SET token = $2, sealed = TRUE WHERE connection_id = $1 AND NOT sealed AND token = $3`)
	old := q.prefix + q.base + "_v1"
	q.v1Aside = []string{`ALTER TABLE ` + q.table + ` RENAME TO ` + q.base + `_v1`}
	if d == Postgres {
		// The new table's primary key wants the old one's index name.
		q.v1Aside = append(q.v1Aside, `ALTER INDEX IF EXISTS `+q.prefix+q.base+`_pkey RENAME TO `+q.base+`_v1_pkey`)
	}
	q.v1Rows = `SELECT key, connection_id, needs_reauth, episode, since, notified, token, token_fp, superseded FROM ` + old
	q.v1Drop = `DROP TABLE ` + old
	return q, nil
}

// placeholders matches PostgreSQL's $1, which SQLite spells ?1.
var placeholders = regexp.MustCompile(`\$(\d+)`)

// timeArg is how the dialect stores t: a timestamptz, or microseconds since
// the Unix epoch, truncated to the microsecond. The zero time is NULL.
func (q *queries) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return q.instant(t)
}

// instant is t as the dialect compares it, truncated to the microsecond; the
// zero time too.
func (q *queries) instant(t time.Time) any {
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

// nullBytes scans a bytes column: NULL is nil, anything else (even empty)
// is not, so that a Record's Data comes back as it was given.
type nullBytes struct{ b *[]byte }

func (n nullBytes) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*n.b = nil
	case []byte:
		*n.b = append([]byte{}, v...)
	case string:
		*n.b = []byte(v)
	default:
		return fmt.Errorf("sqlstore: bytes column holds a %T", src)
	}
	return nil
}

// bytesArg is how b is written: nil as NULL, empty as empty.
func bytesArg(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
