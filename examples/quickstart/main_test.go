package main

import (
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/scenario/scenariotest"
)

// TestRun runs the whole demo, as CI does with go run, and checks that it
// succeeds, tells the story, shows no secret and leaves nothing running.
func TestRun(t *testing.T) {
	scenariotest.Play(t, run,
		"GET /employer/directory  200  5 employees",
		"200 calls: 200 got 401 reauthenticate_user",
		"GET /introspect: 1 call; notifications: 1",
		"all answered from the latch, 0 reached Finch",
		"To:      Acme Corp <payroll@acme.example>",
		"these stop working: company, directory",
		"Reconnect: http://127.0.0.1:",
		"Remind: reminder 1 to Acme Corp <payroll@acme.example>, broken for 24h1m0s, with the same link: true",
		"Status: needs reauth true, 2 notifications, next reminder 72h0m0s after the first",
		`Finch Connect says: "Reconnect gusto for Acme Corp`,
		"303 See Other -> app /finch/callback?code=…&state=…",
		"303 See Other -> app /dashboard?connection_id=",
		"the dashboard says: \"Acme Corp reconnected its gusto account",
		"OnReconnected: Acme Corp, via callback, after 24h1m0s and 2 notifications",
		"company id unchanged: true",
		"same individual ids as before: true",
		"notifications: still 2",
		"OK: every step went as expected.",
	)
}
