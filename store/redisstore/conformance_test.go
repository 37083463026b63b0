package redisstore_test

import (
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
)

// TestConformance runs package storetest on Redis, with tokens in
// plaintext and sealed.
func TestConformance(t *testing.T) {
	c := openRedis(t)
	t.Run("plain", func(t *testing.T) {
		s := newStore(t, c, nil)
		storetest.Run(t, func(t *testing.T) finchreauth.Store { return s })
	})
	t.Run("sealed", func(t *testing.T) {
		s := newStore(t, c, testSealer(t))
		storetest.Run(t, func(t *testing.T) finchreauth.Store { return s })
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, newStore(b, openRedis(b), testSealer(b)))
}
