package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestRun runs the whole demo, as CI does with go run, and checks that it
// succeeds, tells the story, shows no secret and leaves nothing running.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)

	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"GET /employer/directory  200  5 employees",
		"200 calls: 200 got 401 reauthenticate_user",
		"GET /introspect: 1 call; notifications: 1",
		"all answered from the latch, 0 reached Finch",
		"To:      Acme Corp <payroll@acme.example>",
		"these stop working: company, directory",
		"Reconnect: http://127.0.0.1:",
		`Finch Connect says: "Reconnect gusto for Acme Corp`,
		"303 See Other -> app /finch/callback?code=…&state=…",
		"303 See Other -> app /dashboard?connection_id=",
		"the dashboard says: \"Acme Corp reconnected its gusto account",
		"company id unchanged: true",
		"same individual ids as before: true",
		"notifications: still 1",
		"OK: every step went as expected.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
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
