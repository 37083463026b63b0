package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// Transports whose episodes and tokens live in SQLite, sealed. With
// PostgreSQL, open the database with the pgx driver and set Dialect to
// sqlstore.Postgres; nothing else changes.
func ExampleStore() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "finch")
	defer os.RemoveAll(dir)

	// import _ "modernc.org/sqlite"
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "finch.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// The key comes from your secret manager, never from the database.
	sealer, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		log.Fatal(err)
	}
	store := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Sealer: sealer}
	if err := store.Migrate(ctx); err != nil { // at start-up, in every replica
		log.Fatal(err)
	}

	// Two replicas of the application share the store.
	replica1 := &finchreauth.Transport{Store: store}
	defer replica1.Close()
	replica2 := &finchreauth.Transport{Store: store}
	defer replica2.Close()

	// After a code exchange, one of them saves the new token...
	if err := replica1.SaveToken(ctx, "conn_1", "the-new-token"); err != nil {
		log.Fatal(err)
	}
	// ...and the other reads it from the store.
	tok, err := replica2.Token(ctx, "conn_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(tok) == "the-new-token")

	// The database holds it sealed: a Store without the key refuses it.
	_, err = (&sqlstore.Store{DB: db, Dialect: sqlstore.SQLite}).Get(ctx, "conn_1")
	fmt.Println(err)
	// Output:
	// true
	// sqlstore: record of "conn_1": the token is sealed and the Store has no Sealer: set Store.Sealer to the tokenseal.AESGCM that sealed it
}

// Put is a compare-and-set on the record's version: of two writers that
// read the same version, the second gets ErrConflict and reads again.
func ExampleStore_Put() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "finch")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "finch.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	v, err := store.Put(ctx, finchreauth.Record{ConnectionID: "conn_1", Data: []byte(`{"n":1}`)})
	fmt.Println(v, err)
	read, _ := store.Get(ctx, "conn_1")

	read.Data = []byte(`{"n":2}`)
	v, err = store.Put(ctx, read) // Version 1: stored
	fmt.Println(v, err)
	read.Data = []byte(`{"n":3}`)
	_, err = store.Put(ctx, read) // Version 1 again: someone wrote since
	fmt.Println(errors.Is(err, finchreauth.ErrConflict))
	// Output:
	// 1 <nil>
	// 2 <nil>
	// true
}
