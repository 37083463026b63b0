// Command servemux mounts finchreauth's Connect handlers on a net/http
// ServeMux under a prefix, /integrations/finch/, behind the app's own
// sign-in: Connect.Authorize lets a user reconnect only the connections
// they own.
//
//	go run ./examples/servemux
//
// It starts a fake Finch (package finchtest) and the app on loopback ports,
// breaks a connection, and plays three browsers: one with no session and
// one signed in as another user, who are both refused, and the owner, who
// reconnects. It checks every step and exits with status 1 if one failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/finchtest"
)

func main() { scenario.Main("servemux", run) }

// run plays the scenario against the fake Finch in d, narrating to d.W. It
// returns the first expectation that failed.
func run(ctx context.Context, d *scenario.Demo) error {
	say := func(format string, args ...any) { fmt.Fprintf(d.W, format+"\n", args...) }

	// A fake Finch with two employers: alice's Acme and bob's Globex.
	acme := d.Connect(finchtest.Connection{CustomerName: "Acme Corp"})
	globex := d.Connect(finchtest.Connection{CustomerName: "Globex"})

	a, err := startApp(d.Finch.URL, d.Finch.ClientID, d.Finch.ClientSecret, d.Finch.Client().Transport,
		map[string]string{acme.ID: "alice", globex.ID: "bob"})
	if err != nil {
		return err
	}
	d.OnClose(a.close)
	if err := scenario.SaveTokens(ctx, a.tr, acme, globex); err != nil {
		return err
	}
	say("app at %s; Finch Connect handlers at /integrations/finch/callback and /integrations/finch/reconnect", a.URL)

	// Acme's connection breaks; the app's next sync gets Finch's 401, and
	// the Transport records it in the store, which the settings page reads.
	d.Finch.Break(acme.ID)
	client := &http.Client{Transport: a.tr}
	status, err := d.Directory(ctx, client, acme.Token)
	if err != nil {
		return err
	}
	st, err := a.store.State(ctx, acme.ID)
	if err != nil {
		return err
	}
	say("Acme's connection broke: the sync got %d; the store says needs reauth: %v", status, st.NeedsReauth)
	if !st.NeedsReauth {
		return errors.New("expected the store to record that Acme needs reauth")
	}

	// Two browsers that must not start a reconnect of Acme's connection:
	// Connect.Authorize (the app's authorize) refuses them.
	start := a.URL + "/integrations/finch/reconnect?connection_id=" + acme.ID
	say("\nA visitor with no session, then bob, try to reconnect Acme's connection:")
	for _, user := range []string{"", "bob"} {
		if err := d.Refused(ctx, a.URL, user, start); err != nil {
			return err
		}
	}
	refusals := a.errs.Take()
	for _, e := range refusals {
		say("   Connect.ErrorHandler: %v", e)
	}
	if len(refusals) != 2 {
		return fmt.Errorf("expected 2 refusals reported, got %d", len(refusals))
	}

	// alice signs in, lands on the settings page, sees the problem and
	// follows the Reconnect link.
	say("\nalice signs in and reconnects:")
	b := d.Browser(a.URL)
	p, err := b.Get(ctx, a.URL+"/login?user=alice")
	if err != nil {
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil {
		return err
	}
	if err := d.Reconnect(ctx, b, p, "alice's settings page"); err != nil {
		return err
	}

	// The callback saved the new token; Acme's data is back.
	if err := d.NewTokenWorks(ctx, client, a.store, acme, "the new token"); err != nil {
		return err
	}
	return d.Done(a.errs.Take())
}
