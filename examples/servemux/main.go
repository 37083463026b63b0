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
		fmt.Fprintln(os.Stderr, "servemux: FAILED:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	// A fake Finch with two employers: alice's Acme and bob's Globex.
	finch := finchtest.NewServer()
	defer finch.Close()
	acmeToken := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	globexToken := finch.AddConnection(finchtest.Connection{CustomerName: "Globex"})
	acme, _ := finch.ConnectionForToken(acmeToken)
	globex, _ := finch.ConnectionForToken(globexToken)

	a, err := startApp(finch.URL, finch.ClientID, finch.ClientSecret, finch.Client().Transport,
		map[string]string{acme.ID: "alice", globex.ID: "bob"})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, a.close(ctx))
	}()
	for _, tok := range []string{acmeToken, globexToken} {
		c, _ := finch.ConnectionForToken(tok)
		if _, err := a.tr.SaveToken(ctx, finchreauth.Token{ConnectionID: c.ID, AccessToken: tok, IssuedAt: time.Now()}); err != nil {
			return err
		}
	}
	say("app at %s; Finch Connect handlers at /integrations/finch/callback and /integrations/finch/reconnect", a.URL)

	// Acme's connection breaks; the app's next sync gets Finch's 401, and
	// the Transport records it in the store, which the settings page reads.
	finch.Break(acme.ID)
	status, err := get(ctx, &http.Client{Transport: a.tr}, finch.URL+"/employer/directory", acmeToken)
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

	// Two browsers that must not start a reconnect of Acme's connection.
	start := a.URL + "/integrations/finch/reconnect?connection_id=" + acme.ID
	say("\nA visitor with no session, then bob, try to reconnect Acme's connection:")
	for _, user := range []string{"", "bob"} {
		b := newBrowser(w, finch.URL, a.URL)
		defer b.Close()
		if user != "" {
			if _, err := b.Get(ctx, a.URL+"/login?user="+user); err != nil {
				return err
			}
		}
		p, err := b.Get(ctx, start)
		if err != nil {
			return err
		}
		if p.Status != http.StatusForbidden {
			return fmt.Errorf("expected 403 for %q, got %d", user, p.Status)
		}
	}
	a.mu.Lock()
	for _, e := range a.errs {
		say("   Connect.ErrorHandler: %v", e)
	}
	refusals := len(a.errs)
	a.errs = nil
	a.mu.Unlock()
	if refusals != 2 {
		return fmt.Errorf("expected 2 refusals reported, got %d", refusals)
	}

	// alice signs in, sees the problem and follows the Reconnect link.
	say("\nalice signs in and reconnects:")
	b := newBrowser(w, finch.URL, a.URL)
	defer b.Close()
	p, err := b.Get(ctx, a.URL+"/login?user=alice")
	if err != nil {
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil {
		return err
	}
	say("            the page says %q", p.Text("status"))
	link := p.Href("reconnect")
	if link == nil {
		return errors.New("expected a Reconnect link on alice's settings page")
	}
	if p, err = b.Get(ctx, link.String()); err != nil { // StartHandler: 303 to Finch Connect
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // Finch Connect's page
		return err
	}
	if p, err = b.Submit(ctx, p, "Reconnect"); err != nil { // 303 to the callback
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // CallbackHandler: 303 to SuccessURL
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // the settings page
		return err
	}
	say("            the page says %q", p.Text("status"))
	if got := p.Text("status"); got != "Payroll: connected" {
		return fmt.Errorf("expected the settings page to say connected, got %q (error: %q)", got, p.Text("error"))
	}

	// The callback saved the new token; Acme's data is back.
	tok, err := a.store.Token(ctx, acme.ID)
	if err != nil {
		return err
	}
	if status, err = get(ctx, &http.Client{Transport: a.tr}, finch.URL+"/employer/directory", tok.AccessToken); err != nil {
		return err
	}
	say("\nthe new token %s (was %s): GET /employer/directory %d", tok.Fingerprint(), finchreauth.Fingerprint(acmeToken), status)
	if status != http.StatusOK {
		return fmt.Errorf("expected 200 with the new token, got %d", status)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := errors.Join(a.errs...); err != nil {
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
