package finchreauth_test

import (
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
)

func TestMemoryStore(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		storetest.Run(t, func(*testing.T) finchreauth.Store { return finchreauth.NewMemoryStore() })
	})
	t.Run("ZeroValue", func(t *testing.T) {
		storetest.Run(t, func(*testing.T) finchreauth.Store { return &finchreauth.MemoryStore{} })
	})
	t.Run("Shared", func(t *testing.T) {
		s := finchreauth.NewMemoryStore()
		storetest.Run(t, func(*testing.T) finchreauth.Store { return s })
	})
}

func BenchmarkMemoryStore(b *testing.B) { storetest.Bench(b, finchreauth.NewMemoryStore()) }
