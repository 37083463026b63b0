// Package sqlstore is a finchreauth.Store on database/sql, for PostgreSQL
// and SQLite, that several processes can share: every replica of an
// application that points its Transport at the same tables notifies each
// broken connection once in all, and reads the token saved after a
// reconnect.
//
// The package imports no driver. Import the one for your database and give
// the Store an open *sql.DB:
//
//	import _ "github.com/jackc/pgx/v5/stdlib" // sql.Open("pgx", dsn)
//	import _ "modernc.org/sqlite"             // sql.Open("sqlite", dsn), no cgo
//
// Create or upgrade the tables once, at start-up, with Migrate; it is safe to
// call from every replica at once.
//
// Tokens are stored in plaintext unless Store.Sealer is set: whoever can read
// the table, a backup of it or a replica of the database can call Finch as
// your customers. Set a Sealer (package tokenseal), with its key kept outside
// the database.
//
// # How exactly-once holds
//
// The Transport keeps all the logic: which process starts an episode, which
// one holds the notification lease, which token wins. Each decision is a
// read and a write of the connection's record: Get, decide, then Put with
// the Version that Get returned. Put is a compare-and-set, in one
// transaction:
//
//	-- Version 0: nothing is stored yet
//	INSERT INTO finchreauth (connection_id, version, ...) VALUES ($1, 1, ...)
//	ON CONFLICT (connection_id) DO NOTHING RETURNING version
//	-- Version n
//	UPDATE finchreauth SET version = version + 1, ...
//	WHERE connection_id = $1 AND version = n RETURNING version
//	-- then, if a row came back, index the record's fingerprints
//	INSERT INTO finchreauth_fingerprints ... ON CONFLICT (fingerprint) DO UPDATE ...
//
// No row back means another write came first: Put rolls back and returns
// finchreauth.ErrConflict, having changed nothing, and the Transport reads
// the record again and sees the decision the winner made. The database
// serialises the writers of one row. On PostgreSQL, at the default READ
// COMMITTED, a second UPDATE waits for the first to commit, then evaluates
// its WHERE again on the new row and finds another version; a second INSERT
// waits for the first one's to commit, then does nothing (ON CONFLICT DO
// NOTHING: no unique violation). SQLite runs one write transaction at a
// time. So of any number of Puts with one Version, from any number of
// processes, exactly one succeeds. Fingerprint rows are only added or
// pointed at a new connection, never deleted: a token replaced long ago
// still finds its connection.
//
// # Schema
//
// Three tables (default names below; Store.Table renames them). On
// PostgreSQL:
//
//	CREATE TABLE finchreauth (
//		connection_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
//		version       BIGINT NOT NULL,                -- Put's compare-and-set
//		token         BYTEA,                          -- plaintext unless sealed
//		sealed        BOOLEAN NOT NULL DEFAULT FALSE, -- token is a tokenseal value
//		fingerprints  TEXT,                           -- Record.Fingerprints, a JSON array
//		since         TIMESTAMPTZ,                    -- Record.Since; NULL for zero
//		due           TIMESTAMPTZ,                    -- Record.Due; NULL for zero
//		data          BYTEA                           -- Record.Data, byte for byte
//	);
//	CREATE INDEX finchreauth_since ON finchreauth (since, connection_id) WHERE since IS NOT NULL;
//	CREATE INDEX finchreauth_due ON finchreauth (due, connection_id) WHERE due IS NOT NULL;
//	CREATE TABLE finchreauth_fingerprints (
//		fingerprint   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
//		connection_id TEXT COLLATE "C" NOT NULL
//	);
//	CREATE TABLE finchreauth_schema (version INTEGER NOT NULL); -- 2
//
// SQLite uses the same tables, with the token and data as BLOBs, sealed as
// INTEGER 0/1, and since and due as INTEGER microseconds since the Unix
// epoch. Times keep their microseconds. Connection ids sort by their bytes, as
// List must: COLLATE "C" on PostgreSQL, whatever the database's locale, and
// SQLite's default, BINARY. List reads one of the two
// partial indexes in order, from the cursor on (a keyset: (since,
// connection_id) > (AfterTime, AfterID)), and stops at Limit; the listing
// of every record (Query.Every, the health sweep's and the campaigns') reads
// the primary key the same way (connection_id > AfterID). No index is
// added for it, so no migration.
//
// Migrate upgrades the table of earlier releases (schema version 1) in one
// transaction: see Store.Migrate.
//
// # SQLite
//
// Several processes on one host can share a SQLite file. Open it in WAL mode,
// so that readers do not wait for the writer, with a busy timeout, so that a
// writer waits for the write lock rather than fail with SQLITE_BUSY:
//
//	sql.Open("sqlite", "file:/var/lib/app/finch.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
//
// The tests use busy_timeout(20000) and journal_mode(WAL), and race 64
// writers. Put's transaction writes first, so it takes the write lock on its
// first statement, where the busy timeout applies; Migrate starts with BEGIN
// IMMEDIATE. WAL mode lasts once set, but setting it on a new file needs the
// file alone: connections that open a brand-new file at that moment can fail
// with SQLITE_BUSY whatever the timeout, so create the file from one process
// (its Migrate) before the others open it.
//
// # Sealing
//
// With Store.Sealer set (tokenseal.NewAESGCM), Put seals each token, bound to
// its connection id, and Get and List open it: the token column holds only
// sealed tokens, and one copied to another connection's row does not open.
// A Store without a Sealer refuses to read a sealed token (the error names
// the connection), rather than hand its ciphertext to the Transport as the
// token; a Store with a Sealer refuses a plaintext one, which anyone who can
// write to the table could have put there. Get of such a record fails; List
// returns it in its place with only its id, its time and Record.Err set, so
// that a listing goes on past it.
//
// To rotate keys, deploy tokenseal.NewAESGCM(newKey, oldKey) to every
// replica, call Store.Reseal, which seals every token again under newKey,
// check with Store.Verify that none is left under oldKey, then deploy
// tokenseal.NewAESGCM(newKey). To turn sealing on, set the Sealer
// and call Migrate: it seals the tokens stored in plaintext.
package sqlstore
