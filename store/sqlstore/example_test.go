package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// A Transport whose episodes and tokens live in SQLite, sealed. With
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
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	tr := &finchreauth.Transport{Store: store}
	defer tr.Close()

	// After a code exchange, the callback saves the new token...
	if _, err := tr.SaveToken(ctx, finchreauth.Token{ConnectionID: "conn_1", AccessToken: "the-new-token", IssuedAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	// ...and every replica reads it from the store.
	tok, err := store.Token(ctx, "conn_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.AccessToken == "the-new-token")

	// A token issued earlier never replaces it.
	_, err = store.SaveToken(ctx, finchreauth.Token{ConnectionID: "conn_1", AccessToken: "an-old-token", IssuedAt: time.Now().Add(-time.Hour)})
	fmt.Println(err)
	// Output:
	// true
	// finchreauth: a newer token is already saved
}
