package redisstore_test

import (
	"testing"

	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
)

// TestRotation: after a key rotation, Reseal seals every token again under
// the new key, interrupted or run twice at once, and a Store with the new
// key alone reads them all (see storetest.Rotation).
func TestRotation(t *testing.T) {
	c := openRedis(t)
	prefix := newStore(t, c, nil).Prefix
	storetest.Rotation(t, func(sealer tokenseal.Sealer) storetest.Resealer {
		return &redisstore.Store{Client: c, Prefix: prefix, Sealer: sealer}
	})
}
