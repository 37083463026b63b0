package redisstore_test

import (
	"os"
	"testing"

	"github.com/finchkit/finchreauth/store/internal/storebench"
)

// TestFigures measures the store for BENCHMARKS.md (its "Shared stores" section), when
// FINCHREAUTH_FIGURES is set: latency with 100,000 connections, and the
// storm of 10,000 callers. Tokens are sealed, as in production.
//
//	FINCHREAUTH_FIGURES=1 FINCHREAUTH_REDIS_ADDR=127.0.0.1:6379 go test -run '^TestFigures$' -v -timeout 30m .
func TestFigures(t *testing.T) {
	if os.Getenv(storebench.Env) == "" {
		t.Skip(storebench.Env + " is not set: the figures run only when asked for")
	}
	storebench.Run(t, "redis", newStore(t, openRedis(t), testSealer(t)), 16)
}
