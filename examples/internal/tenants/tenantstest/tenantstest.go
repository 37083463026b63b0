// Package tenantstest holds the tests every router example runs of its
// app: the scenario, and who may use which route.
package tenantstest

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/examples/internal/scenario/scenariotest"
	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"go.uber.org/goleak"
)

// Play plays the router examples' scenario with routes, as go run does,
// and checks that it succeeds, shows no secret, leaves nothing running,
// and tells the story: each of want, and what every router's run says.
func Play(t *testing.T, routes func(*tenants.App) http.Handler, want ...string) {
	t.Helper()
	scenariotest.Play(t, tenants.Script(routes), append([]string{
		"Finch's webhook: account.updated, status reauth -> 200",
		"the Notifier: Acme Corp must reconnect (source webhook; link to Finch Connect: true)",
		"GET /employer/directory 401; notifications: 1",
		"no session, at acme:                 settings 403, reconnect 403, status 403",
		"bob (globex), at acme:               settings 403, reconnect 403, status 403",
		"alice, at initech (no such tenant):  settings 403, reconnect 403, status 403",
		"Connect sessions minted so far: 1",
		"the status endpoint says: needs_reauth true, notifications 1",
		`the page says "Payroll: needs reconnecting since `,
		`POST app /tenants/acme/finch/reconnect ("Reconnect")` + "\n            303 See Other -> Finch /authorize?session=",
		"303 See Other -> app /finch/callback?code=…&state=…",
		"303 See Other -> app /finch/done?connection_id=",
		"303 See Other -> app /tenants/acme/settings\n",
		`the page says "Payroll: connected"`,
		"GET /employer/directory 200",
		"OnReconnected: acme works again (via callback,",
		"Status: acme needs reauth false",
		"globex needs reauth false",
		"OK: every step went as expected.",
	}, want...)...)
}

// Refusals checks each route under /tenants/{tenant}/ with each kind of
// visitor: only the tenant's members get in (200 for the pages, 303 to
// Finch Connect for the start endpoint); everyone else gets 403, and no
// Connect session is minted for them.
func Refusals(t *testing.T, routes func(*tenants.App) http.Handler) {
	t.Helper()
	defer goleak.VerifyNone(t)
	const (
		ok       = http.StatusOK
		redirect = http.StatusSeeOther
		refused  = http.StatusForbidden
	)
	err := scenario.Play(io.Discard, func(ctx context.Context, d *scenario.Demo) error {
		a, err := tenants.Start(ctx, d, routes)
		if err != nil {
			return err
		}
		for _, tc := range []struct {
			name, user, tenant          string
			settings, reconnect, status int
		}{
			{"no session", "", "acme", refused, refused, refused},
			{"a member of another tenant", "bob", "acme", refused, refused, refused},
			{"an unknown tenant", "alice", "initech", refused, refused, refused},
			{"a member", "alice", "acme", ok, redirect, ok},
			{"the other tenant's member at home", "bob", "globex", ok, redirect, ok},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want := tenants.Visit{Settings: tc.settings, Reconnect: tc.reconnect, Status: tc.status}
				sessions := d.Finch.Calls(http.MethodPost, "/connect/sessions/reauthenticate")
				got, err := a.Visit(ctx, d.QuietBrowser(a.URL), tc.user, tc.tenant)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("settings, reconnect, status: got %v, want %v", got, want)
				}
				minted := d.Finch.Calls(http.MethodPost, "/connect/sessions/reauthenticate") - sessions
				if tc.reconnect == refused && minted != 0 {
					t.Errorf("%d Connect sessions minted for a refused visitor", minted)
				}
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
