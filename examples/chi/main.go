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
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/browser"
	"github.com/finchkit/finchreauth/finchtest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chi: FAILED:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	finch := finchtest.NewServer()
	defer finch.Close()
	acmeToken := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	globexToken := finch.AddConnection(finchtest.Connection{CustomerName: "Globex"})
	acme, _ := finch.ConnectionForToken(acmeToken)
	globex, _ := finch.ConnectionForToken(globexToken)

	a, err := startApp(finch.URL, finch.ClientID, finch.ClientSecret, finch.Client().Transport, map[string]*tenant{
		"acme":   {members: map[string]bool{"alice": true}, connectionID: acme.ID},
		"globex": {members: map[string]bool{"bob": true}, connectionID: globex.ID},
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, a.close(ctx))
	}()
	for id, tok := range map[string]string{acme.ID: acmeToken, globex.ID: globexToken} {
		if _, err := a.tr.SaveToken(ctx, finchreauth.Token{ConnectionID: id, AccessToken: tok, IssuedAt: time.Now()}); err != nil {
			return err
		}
	}
	say("app at %s; each tenant's handlers at /tenants/{tenant}/finch/callback and /tenants/{tenant}/finch/reconnect", a.URL)

	// Acme's connection breaks; the app's next call notices.
	finch.Break(acme.ID)
	client := &http.Client{Transport: a.tr}
	if status, err := get(ctx, client, finch.URL+"/employer/directory", acmeToken); err != nil || status != http.StatusUnauthorized {
		return fmt.Errorf("expected 401 from the broken connection, got %d, %v", status, err)
	}
	say("Acme's connection broke; the app's call got 401")

	// bob belongs to globex, not acme.
	say("\nbob (globex) tries to reconnect acme:")
	bob := newBrowser(w, finch.URL, a.URL)
	defer bob.Close()
	if _, err := bob.Get(ctx, a.URL+"/login?user=bob"); err != nil {
		return err
	}
	p, err := bob.Get(ctx, a.URL+"/tenants/acme/finch/reconnect")
	if err != nil {
		return err
	}
	if p.Status != http.StatusForbidden {
		return fmt.Errorf("expected 403 for bob, got %d", p.Status)
	}
	for _, e := range a.takeErrors() {
		say("   Connect.ErrorHandler: %v", e)
	}

	// alice belongs to acme.
	say("\nalice (acme) reconnects:")
	alice := newBrowser(w, finch.URL, a.URL)
	defer alice.Close()
	if _, err := alice.Get(ctx, a.URL+"/login?user=alice"); err != nil {
		return err
	}
	if p, err = alice.Get(ctx, a.URL+"/tenants/acme/settings"); err != nil {
		return err
	}
	say("            the page says %q", p.Text("status"))
	link := p.Href("reconnect")
	if link == nil {
		return errors.New("expected a Reconnect link on acme's settings page")
	}
	if p, err = alice.Get(ctx, link.String()); err != nil { // StartHandler: 303 to Finch Connect
		return err
	}
	if p, err = alice.Follow(ctx, p); err != nil { // Finch Connect's page
		return err
	}
	if p, err = alice.Submit(ctx, p, "Reconnect"); err != nil { // 303 to acme's callback
		return err
	}
	if p, err = alice.Follow(ctx, p); err != nil { // CallbackHandler: 303 to acme's settings
		return err
	}
	if p, err = alice.Follow(ctx, p); err != nil {
		return err
	}
	say("            the page says %q", p.Text("status"))
	if got := p.Text("status"); got != "Payroll: connected" {
		return fmt.Errorf("expected acme's settings to say connected, got %q (error: %q)", got, p.Text("error"))
	}

	tok, err := a.store.Token(ctx, acme.ID)
	if err != nil {
		return err
	}
	status, err := get(ctx, client, finch.URL+"/employer/directory", tok.AccessToken)
	if err != nil {
		return err
	}
	say("\nacme's new token %s (was %s): GET /employer/directory %d", tok.Fingerprint(), finchreauth.Fingerprint(acmeToken), status)
	if status != http.StatusOK {
		return fmt.Errorf("expected 200 with the new token, got %d", status)
	}
	if err := errors.Join(a.takeErrors()...); err != nil {
		return fmt.Errorf("unexpected errors: %w", err)
	}
	say("OK")
	return nil
}

func newBrowser(w io.Writer, finchURL, appURL string) *browser.Browser {
	b := browser.New(w)
	b.Name(finchURL, "Finch")
	b.Name(appURL, "app")
	return b
}

// get calls Finch with a token and returns the status.
func get(ctx context.Context, c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
