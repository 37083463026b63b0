// Package scenario drives the examples' applications the way their users
// would, against a fake Finch (package finchtest): it connects employers,
// plays the browsers through Finch Connect, checks each step and narrates
// it. Each example's main.go tells its own story with these steps; what the
// example is about lives in its app.go.
package scenario

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

// Main plays an example's script with the narration on standard output,
// and exits with status 1 if it fails.
func Main(name string, script func(context.Context, *Demo) error) {
	if err := Play(os.Stdout, script); err != nil {
		fmt.Fprintln(os.Stderr, name+": FAILED:", err)
		os.Exit(1)
	}
}

// Play starts a fake Finch, runs script against it with 30 seconds for the
// whole, narrating to w, and then stops everything the script started. It
// returns the first expectation that failed.
func Play(w io.Writer, script func(context.Context, *Demo) error) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := &Demo{W: w, Finch: finchtest.NewServer()}
	defer func() { err = errors.Join(err, d.close()) }()
	return script(ctx, d)
}

// Demo is what a script plays with: the fake Finch, the browsers that visit
// it and the app, and what to stop at the end.
type Demo struct {
	W     io.Writer         // the narration
	Finch *finchtest.Server // the fake Finch: its API and Finch Connect

	browsers []*browser.Browser
	stops    []func(context.Context) error
}

// OnClose registers stop (the app's shutdown) for the end of the play.
func (d *Demo) OnClose(stop func(context.Context) error) {
	d.stops = append(d.stops, stop)
}

// close stops everything that was started, in reverse order: the browsers,
// what OnClose registered, and the fake Finch.
func (d *Demo) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range d.browsers {
		b.Close()
	}
	var errs []error
	for i := len(d.stops) - 1; i >= 0; i-- {
		errs = append(errs, d.stops[i](ctx))
	}
	d.Finch.Close()
	return errors.Join(errs...)
}

func (d *Demo) say(format string, args ...any) {
	fmt.Fprintf(d.W, format+"\n", args...)
}

// Employer is an employer connected to the fake Finch.
type Employer struct {
	ID    string // the connection id
	Token string // the access token the connection started with
}

// Connect adds an employer's connection to the fake Finch.
func (d *Demo) Connect(c finchtest.Connection) Employer {
	token := d.Finch.AddConnection(c)
	conn, _ := d.Finch.ConnectionForToken(token)
	return Employer{ID: conn.ID, Token: token}
}

// SaveTokens saves each employer's first token through the app's Transport,
// as the app did when the employer first connected and it exchanged
// Connect's code for that token.
func SaveTokens(ctx context.Context, tr *finchreauth.Transport, employers ...Employer) error {
	for _, e := range employers {
		if _, err := tr.SaveToken(ctx, finchreauth.Token{ConnectionID: e.ID, AccessToken: e.Token, IssuedAt: time.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// Browser returns a new browser that narrates to W, showing the fake Finch
// as "Finch" and appURL as "app". It is closed at the end of the play.
func (d *Demo) Browser(appURL string) *browser.Browser {
	b := browser.New(d.W)
	b.Name(d.Finch.URL, "Finch")
	b.Name(appURL, "app")
	d.browsers = append(d.browsers, b)
	return b
}

// Directory calls Finch's GET /employer/directory through client with a
// token and returns the status.
func (d *Demo) Directory(ctx context.Context, client *http.Client, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.Finch.URL+"/employer/directory", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Refused plays a browser that signs in as user (none if user is "") at
// appURL+"/login?user=" and opens start, a link to Connect's StartHandler:
// it expects 403, Connect.Authorize having refused.
func (d *Demo) Refused(ctx context.Context, appURL, user, start string) error {
	b := d.Browser(appURL)
	if user != "" {
		if _, err := b.Get(ctx, appURL+"/login?user="+user); err != nil {
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
	return nil
}

// Reconnect starts from settings, the page that shows a connection needs
// reconnecting, and clicks through: its Reconnect link (Connect's
// StartHandler), Finch Connect's Reconnect button, the app's callback
// (Connect's CallbackHandler) and the page it redirects to, which must say
// "Payroll: connected". page names the settings page in errors.
func (d *Demo) Reconnect(ctx context.Context, b *browser.Browser, settings *browser.Page, page string) error {
	d.say("            the page says %q", settings.Text("status"))
	link := settings.Href("reconnect")
	if link == nil {
		return fmt.Errorf("expected a Reconnect link on %s", page)
	}
	p, err := b.Get(ctx, link.String()) // StartHandler: 303 to Finch Connect
	if err != nil {
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // Finch Connect's page
		return err
	}
	if p, err = b.Submit(ctx, p, "Reconnect"); err != nil { // 303 to the app's callback
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // CallbackHandler: 303 to SuccessURL
		return err
	}
	if p, err = b.Follow(ctx, p); err != nil { // the settings page again
		return err
	}
	d.say("            the page says %q", p.Text("status"))
	if got := p.Text("status"); got != "Payroll: connected" {
		return fmt.Errorf("expected %s to say connected, got %q (error: %q)", page, got, p.Text("error"))
	}
	return nil
}

// NewTokenWorks reads the token the callback saved for e and calls Finch
// with it through client: it expects 200. label names the token in the
// narration.
func (d *Demo) NewTokenWorks(ctx context.Context, client *http.Client, store finchreauth.Store, e Employer, label string) error {
	tok, err := store.Token(ctx, e.ID)
	if err != nil {
		return err
	}
	status, err := d.Directory(ctx, client, tok.AccessToken)
	if err != nil {
		return err
	}
	d.say("\n%s %s (was %s): GET /employer/directory %d", label, tok.Fingerprint(), finchreauth.Fingerprint(e.Token), status)
	if status != http.StatusOK {
		return fmt.Errorf("expected 200 with the new token, got %d", status)
	}
	return nil
}

// Done ends a run: errs are what the app's ErrorHandlers reported since the
// last step that expected some; there must be none.
func (d *Demo) Done(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unexpected errors: %w", err)
	}
	d.say("OK")
	return nil
}
