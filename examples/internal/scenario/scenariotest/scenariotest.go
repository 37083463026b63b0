// Package scenariotest holds the check every example's test makes of its
// run.
package scenariotest

import (
	"context"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"go.uber.org/goleak"
)

// Play plays an example's script, as CI does with go run, and checks that
// it succeeds, that its narration contains each of want, that it shows no
// secret and that it leaves no goroutine running.
func Play(t *testing.T, script func(context.Context, *scenario.Demo) error, want ...string) {
	t.Helper()
	defer goleak.VerifyNone(t)

	var out strings.Builder
	if err := scenario.Play(&out, script); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	// The fake's tokens start with tok_, its codes with code_, and its
	// client secret is secret_test_1: none may be printed.
	for _, secret := range []string{"tok_", "code_", "secret_test_1"} {
		if strings.Contains(got, secret) {
			t.Errorf("output shows a secret (%s...)", secret)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
