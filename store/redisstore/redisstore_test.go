package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/finchkit/finchreauth/storetest"
	"github.com/redis/go-redis/v9"
)

// envRedis names the variable holding the address of the Redis server the
// tests use; unset, they skip. .ci/stores sets it.
const envRedis = "FINCHREAUTH_REDIS_ADDR"

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func testSealer(testing.TB) tokenseal.Sealer {
	s, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err) // a constant key of the right length
	}
	return s
}

// openRedis connects to FINCHREAUTH_REDIS_ADDR, or skips.
func openRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("%s is not set: skipping the Redis tests (.ci/stores sets it, e.g. 127.0.0.1:6379)", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("%s is set but Redis does not answer: %v", envRedis, err)
	}
	return c
}

// newStore returns a Store under a prefix of its own, whose keys are deleted
// when the test ends.
func newStore(t testing.TB, c *redis.Client, sealer tokenseal.Sealer) *redisstore.Store {
	t.Helper()
	s := &redisstore.Store{Client: c, Prefix: "finchreauth-test-" + randHex(6) + ":", Sealer: sealer}
	t.Cleanup(func() { deletePrefix(t, c, s.Prefix) })
	return s
}

func deletePrefix(t testing.TB, c *redis.Client, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		t.Errorf("deleting the test keys: %v", err)
	}
}

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

// TestDefaultPrefix: with no Prefix, a connection's hash is
// "finchreauth:<connection id>".
func TestDefaultPrefix(t *testing.T) {
	c := openRedis(t)
	s := &redisstore.Store{Client: c}
	conn := "conn_test_" + randHex(8)
	t.Cleanup(func() { c.Del(context.Background(), "finchreauth:"+conn) })
	if _, err := s.SaveToken(t.Context(), finchreauth.Token{ConnectionID: conn, AccessToken: "secret-" + randHex(8)}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(t.Context(), "finchreauth:"+conn).Result(); err != nil || n != 1 {
		t.Errorf("EXISTS finchreauth:%s = %d, %v; want 1", conn, n, err)
	}
}

func TestZeroStore(t *testing.T) {
	var s redisstore.Store
	if _, err := s.State(t.Context(), "k"); err == nil || err.Error() != "redisstore: Store's Client is nil" {
		t.Errorf("State on the zero Store: %v", err)
	}
	if _, err := s.SaveToken(t.Context(), finchreauth.Token{ConnectionID: "c", AccessToken: "x"}); err == nil || !strings.HasPrefix(err.Error(), "redisstore: ") {
		t.Errorf("SaveToken on the zero Store: %v", err)
	}
}

// TestSealedAtRest reads the hash behind the Store's back.
func TestSealedAtRest(t *testing.T) {
	ctx := t.Context()
	c := openRedis(t)
	s := newStore(t, c, testSealer(t))
	a := finchreauth.Token{ConnectionID: "conn_a", AccessToken: "secret-a-" + randHex(16)}
	b := finchreauth.Token{ConnectionID: "conn_b", AccessToken: "secret-b-" + randHex(16)}
	for _, tok := range []finchreauth.Token{a, b} {
		if _, err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := c.HGet(ctx, s.Prefix+"conn_a", "tok").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(a.AccessToken)) {
		t.Fatalf("Redis holds token %s in clear", a.Fingerprint())
	}
	if err := c.HSet(ctx, s.Prefix+"conn_b", "tok", raw).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, "conn_b"); !errors.Is(err, tokenseal.ErrOpen) {
		t.Errorf("Token of a hash holding another connection's sealed token: %v; want tokenseal.ErrOpen", err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, newStore(b, openRedis(b), nil))
}
