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

// Say writes one line of narration.
func (d *Demo) Say(format string, args ...any) {
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
		if err := tr.SaveToken(ctx, e.ID, finchreauth.Token(e.Token)); err != nil {
			return err
		}
	}
	return nil
}

// Browser returns a new browser that narrates to W, showing the fake Finch
// as "Finch" and appURL as "app". It is closed at the end of the play.
func (d *Demo) Browser(appURL string) *browser.Browser {
	return d.browser(d.W, appURL)
}

// QuietBrowser is Browser without the narration.
func (d *Demo) QuietBrowser(appURL string) *browser.Browser {
	return d.browser(io.Discard, appURL)
}

func (d *Demo) browser(w io.Writer, appURL string) *browser.Browser {
	b := browser.New(w)
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
	req.Header.Set("Finch-API-Version", "2020-09-17")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// NewTokenWorks reads the token the Transport saved for e and calls Finch
// with it through the Transport: it expects 200, and a token other than the
// one e started with. label names the token in the narration.
func (d *Demo) NewTokenWorks(ctx context.Context, tr *finchreauth.Transport, e Employer, label string) error {
	tok, err := tr.Token(ctx, e.ID)
	if err != nil {
		return err
	}
	if tok == finchreauth.Token(e.Token) {
		return errors.New("expected a new token to be saved")
	}
	status, err := d.Directory(ctx, &http.Client{Transport: tr}, string(tok))
	if err != nil {
		return err
	}
	d.Say("   %s %s (was %s): GET /employer/directory %d", label, tok.Fingerprint(), finchreauth.Token(e.Token).Fingerprint(), status)
	if status != http.StatusOK {
		return fmt.Errorf("expected 200 with the new token, got %d", status)
	}
	return nil
}

// Eventually waits, for at most 10 seconds, until cond holds: for what the
// Transport does after answering (a webhook's notification goes out once
// the webhook is acknowledged). what names cond in the error.
func Eventually(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("expected %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Done ends a run: errs are what the app's ErrorHandler reported since the
// last step that expected some; there must be none.
func (d *Demo) Done(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unexpected errors: %w", err)
	}
	d.Say("\nOK: every step went as expected.")
	return nil
}
