package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)

	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		`start refused: bob is not a member of tenant "acme"`,
		"GET  app /tenants/acme/finch/reconnect\n            303 See Other -> Finch /authorize?session=",
		"303 See Other -> app /tenants/acme/finch/callback?code=…&state=…",
		"303 See Other -> app /tenants/acme/settings?connection_id=",
		`the page says "Payroll: connected"`,
		"GET /employer/directory 200",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, secret := range []string{"tok_", "code_", "secret_test_1"} {
		if strings.Contains(got, secret) {
			t.Errorf("output shows a secret (%s...)", secret)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
