package main

import (
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/scenario/scenariotest"
)

func TestRun(t *testing.T) {
	scenariotest.Play(t, run,
		"the store says needs reauth: true",
		"start refused: not signed in",
		`start refused: bob does not own connection`,
		"303 See Other -> Finch /authorize?session=",
		"303 See Other -> app /integrations/finch/callback?code=…&state=…",
		`the page says "Payroll: connected"`,
		"GET /employer/directory 200",
	)
}
