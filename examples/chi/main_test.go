package main

import (
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/scenario/scenariotest"
)

func TestRun(t *testing.T) {
	scenariotest.Play(t, run,
		`start refused: bob is not a member of tenant "acme"`,
		"GET  app /tenants/acme/finch/reconnect\n            303 See Other -> Finch /authorize?session=",
		"303 See Other -> app /tenants/acme/finch/callback?code=…&state=…",
		"303 See Other -> app /tenants/acme/settings?connection_id=",
		`the page says "Payroll: connected"`,
		"GET /employer/directory 200",
	)
}
