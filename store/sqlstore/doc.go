// Package sqlstore is a finchreauth.Store on database/sql, for PostgreSQL
// and SQLite, that several processes can share: every replica of an
// application that points its Transport at the same table notifies each
// broken connection once in all, and reads the token saved after a
// reconnect.
//
// The package imports no driver. Import the one for your database and give
// the Store an open *sql.DB:
//
//	import _ "github.com/jackc/pgx/v5/stdlib" // sql.Open("pgx", dsn)
//	import _ "modernc.org/sqlite"             // sql.Open("sqlite", dsn), no cgo
//
// Create or upgrade the table once, at start-up, with Migrate; it is safe to
// call from every replica at once.
//
// # How each decision stays atomic
//
// MarkReauth is one statement, INSERT ... ON CONFLICT (key) DO UPDATE ...
// WHERE <the token is not superseded> RETURNING: the database's row lock
// serialises concurrent calls, the SET clause chooses between starting the
// episode, granting the lease again and changing nothing, and it writes a
// nonce private to the call into lease_holder when it grants the lease. The
// row it returns says whether this call won (lease_holder holds its nonce)
// and no row means the token was superseded. Two processes can never both win.
//
// SaveToken is a compare-and-set on the token's IssuedAt inside one
// transaction: it inserts an empty row if none exists (ON CONFLICT DO
// NOTHING), reads the row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the
// insert has already taken the database's write lock), refuses a token
// issued before the saved one, and writes the new token, the superseded
// list and the end of the episode; the UPDATE repeats the IssuedAt condition.
// MarkNotified is one conditional UPDATE.
//
// # Schema
//
// One table (default name finchreauth) with a row per key, plus
// <table>_schema holding the schema version. On PostgreSQL:
//
//	CREATE TABLE finchreauth (
//		key             TEXT PRIMARY KEY,          -- connection id, or "fp:" + token fingerprint
//		connection_id   TEXT NOT NULL DEFAULT '',
//		needs_reauth    BOOLEAN NOT NULL DEFAULT FALSE,
//		episode         TEXT NOT NULL DEFAULT '',
//		since           TIMESTAMPTZ,               -- start of the episode
//		notified        BOOLEAN NOT NULL DEFAULT FALSE,
//		lease_until     TIMESTAMPTZ,               -- notification lease
//		lease_holder    TEXT NOT NULL DEFAULT '',  -- nonce of the call that holds it
//		token           BYTEA,                     -- access token, sealed if a Sealer is set
//		token_fp        TEXT NOT NULL DEFAULT '',  -- Fingerprint of the token (saved, or named by a MarkReauth)
//		token_issued_at TIMESTAMPTZ,
//		superseded      TEXT NOT NULL DEFAULT ''   -- replaced fingerprints, newest first, space-separated
//	)
//
// On SQLite the same columns hold booleans as INTEGER 0/1, times as INTEGER
// microseconds since the Unix epoch, and the token as a BLOB. Times keep
// microseconds, and the lease is judged by the Mark's At, never by the
// database's clock.
//
// # SQLite
//
// Several processes on one host can share a SQLite file. Open it in WAL mode
// with a busy timeout, or concurrent writers fail with SQLITE_BUSY:
//
//	sql.Open("sqlite", "file:/var/lib/app/finch.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
//
// # Sealing
//
// With Store.Sealer set (tokenseal.NewAESGCM), the token column holds only
// sealed tokens, bound to their connection id. A Store without a Sealer
// cannot read sealed tokens, and a Store with one refuses tokens saved
// without it: re-save them after turning sealing on.
package sqlstore
