package redisstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/replicatest"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// How a replica finds the store the parent test made.
const (
	envReplicaAddr   = "FINCHREAUTH_TEST_REDIS_ADDR"
	envReplicaPrefix = "FINCHREAUTH_TEST_REDIS_PREFIX"
)

func TestMain(m *testing.M) {
	replicatest.Main(openReplicaStore) // a replica of TestReplicas runs and exits here
	goleak.VerifyTestMain(m)
}

// openReplicaStore opens, in a replica, the store its parent described.
func openReplicaStore(ctx context.Context) (finchreauth.Store, func(), error) {
	c := redis.NewClient(&redis.Options{Addr: os.Getenv(envReplicaAddr)})
	s := &redisstore.Store{Client: c, Prefix: os.Getenv(envReplicaPrefix), Sealer: testSealer(nil)}
	// Every replica migrates at start-up, as an application would.
	if err := s.Migrate(ctx); err != nil {
		c.Close()
		return nil, nil, err
	}
	return s, func() { c.Close() }, nil
}

// TestReplicas runs four processes, each with its own Transport, on one
// Redis, breaks the token they all call with, and checks that one
// notification went out in all and that after a reconnect through one of
// them every one uses the new token (see package replicatest).
func TestReplicas(t *testing.T) {
	c := openRedis(t)
	s := newStore(t, c, testSealer(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	replicatest.Run(t, replicatest.Config{
		Store: s,
		Env:   []string{envReplicaAddr + "=" + os.Getenv(envRedis), envReplicaPrefix + "=" + s.Prefix},
	})
}

// TestTokens: two Transports on one Redis store, with clocks two hours
// apart and with answers in reverse order: a live token is never replaced
// by a dead one (see replicatest.Tokens).
func TestTokens(t *testing.T) {
	replicatest.Tokens(t, newStore(t, openRedis(t), testSealer(t)))
}
