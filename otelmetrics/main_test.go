package otelmetrics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: each test
// closes its Transport and its fake Finch.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
