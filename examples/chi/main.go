// Command chi mounts finchreauth's Connect handlers in a chi router, under
// a path with a URL parameter: /tenants/{tenant}/finch/callback and
// /tenants/{tenant}/finch/reconnect. Connect.Authorize reads the tenant
// with chi.URLParam and lets only its members reconnect its connection.
//
//	cd examples/chi && go run .
//
// It lives in a module of its own so that the root module does not depend
// on chi. It starts a fake Finch (package finchtest) and the app on loopback
// ports, breaks one tenant's connection, refuses a member of another tenant
// and lets a member reconnect. It exits with status 1 if a step failed.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/finchtest"
)

func main() { scenario.Main("chi", run) }

// run plays the scenario against the fake Finch in d, narrating to d.W. It
// returns the first expectation that failed.
func run(ctx context.Context, d *scenario.Demo) error {
	say := func(format string, args ...any) { fmt.Fprintf(d.W, format+"\n", args...) }

	// Two employers on the fake Finch: tenant acme's (alice) and tenant
	// globex's (bob).
	acme := d.Connect(finchtest.Connection{CustomerName: "Acme Corp"})
	globex := d.Connect(finchtest.Connection{CustomerName: "Globex"})

	a, err := startApp(d.Finch.URL, d.Finch.ClientID, d.Finch.ClientSecret, d.Finch.Client().Transport, map[string]*tenant{
		"acme":   {members: map[string]bool{"alice": true}, connectionID: acme.ID},
		"globex": {members: map[string]bool{"bob": true}, connectionID: globex.ID},
	})
	if err != nil {
		return err
	}
	d.OnClose(a.close)
	if err := scenario.SaveTokens(ctx, a.tr, acme, globex); err != nil {
		return err
	}
	say("app at %s; each tenant's handlers at /tenants/{tenant}/finch/callback and /tenants/{tenant}/finch/reconnect", a.URL)

	// Acme's connection breaks; the app's next call notices.
	d.Finch.Break(acme.ID)
	client := &http.Client{Transport: a.tr}
	if status, err := d.Directory(ctx, client, acme.Token); err != nil || status != http.StatusUnauthorized {
		return fmt.Errorf("expected 401 from the broken connection, got %d, %v", status, err)
	}
	say("Acme's connection broke; the app's call got 401")

	// bob belongs to globex, not acme: Connect.Authorize (the app's
	// authorize) refuses him.
	say("\nbob (globex) tries to reconnect acme:")
	if err := d.Refused(ctx, a.URL, "bob", a.URL+"/tenants/acme/finch/reconnect"); err != nil {
		return err
	}
	for _, e := range a.errs.Take() {
		say("   Connect.ErrorHandler: %v", e)
	}

	// alice belongs to acme: acme's settings page offers her the Reconnect
	// link, /tenants/acme/finch/reconnect.
	say("\nalice (acme) reconnects:")
	alice := d.Browser(a.URL)
	if _, err := alice.Get(ctx, a.URL+"/login?user=alice"); err != nil {
		return err
	}
	p, err := alice.Get(ctx, a.URL+"/tenants/acme/settings")
	if err != nil {
		return err
	}
	if err := d.Reconnect(ctx, alice, p, "acme's settings page"); err != nil {
		return err
	}

	if err := d.NewTokenWorks(ctx, client, a.store, acme, "acme's new token"); err != nil {
		return err
	}
	return d.Done(a.errs.Take())
}
