package sqlstore_test

import (
	"database/sql"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
)

// TestConformance runs package storetest on PostgreSQL and on a SQLite
// file, each with tokens in plaintext and sealed.
func TestConformance(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
		for _, sealed := range []bool{false, true} {
			name := "plain"
			var sealer tokenseal.Sealer
			if sealed {
				name, sealer = "sealed", testSealer(t)
			}
			t.Run(name, func(t *testing.T) {
				// One table for the whole suite, as an application
				// has: the suite's ids and times are its own.
				s := newStore(t, db, d, sealer)
				storetest.Run(t, func(t *testing.T) finchreauth.Store { return s })
			})
		}
	})
}

func BenchmarkStore(b *testing.B) {
	for _, c := range dialects {
		b.Run(c.name, func(b *testing.B) { storetest.Bench(b, newStore(b, c.open(b), c.d, testSealer(b))) })
	}
}
