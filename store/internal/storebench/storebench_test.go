package storebench_test

import (
	"os"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/storebench"
)

// TestFigures measures the MemoryStore, the baseline for the shared stores.
func TestFigures(t *testing.T) {
	if os.Getenv(storebench.Env) == "" {
		t.Skip(storebench.Env + " is not set: the figures run only when asked for")
	}
	storebench.Run(t, "memory", finchreauth.NewMemoryStore(), 2)
}

// TestSmoke runs a small Latency and Storm, so that the harness itself is
// tested on every run.
func TestSmoke(t *testing.T) {
	s := finchreauth.NewMemoryStore()
	if _, err := storebench.Latency(t.Context(), s, 200, 50, 4); err != nil {
		t.Fatal(err)
	}
	for _, transports := range []int{1, 3} {
		if _, err := storebench.Storm(t.Context(), s, 300, transports, 2, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}
