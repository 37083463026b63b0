package sqlstore_test

import (
	"database/sql"
	"testing"

	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
)

// TestRotation: after a key rotation, Reseal seals every token again under
// the new key, interrupted or run twice at once, and a Store with the new
// key alone reads them all (see storetest.Rotation).
func TestRotation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		table := newStore(t, db, d, nil).Table
		storetest.Rotation(t, func(sealer tokenseal.Sealer) storetest.Resealer {
			return &sqlstore.Store{DB: db, Dialect: d, Table: table, Sealer: sealer}
		})
	})
}
