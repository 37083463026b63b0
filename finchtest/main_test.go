package finchtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// Server must stop everything it started (webhook deliveries and their
// connections included) when closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
