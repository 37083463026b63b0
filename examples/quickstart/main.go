// Command quickstart shows finchreauth end to end, in one process, over real
// HTTP on the loopback interface: a fake Finch (package finchtest) and an
// application that calls it. The employer's connection breaks, a burst of
// calls produces exactly one notification with a reconnect link, a day later
// a reminder goes out with the same link, the customer follows it through
// Finch Connect back to the application's callback, and calls succeed again
// with the new token.
//
//	go run ./examples/quickstart
//
// It checks every step and exits with status 1 if one went wrong.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/browser"
	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/finchtest"
)

func main() { scenario.Main("quickstart", run) }

// burst is how many calls run at once when the connection is broken.
const burst = 200

// demo holds what the steps share.
type demo struct {
	*scenario.Demo // the narration (W), the fake Finch, the browsers

	app     *app
	clock   *clock
	browser *browser.Browser

	connID  string
	token   string    // the token Acme's connection started with
	company company   // what Finch said before the break
	people  directory // ditto
}

// run runs the demo against the fake Finch in sd, writing its narration to
// sd.W. It returns the first expectation that failed.
func run(ctx context.Context, sd *scenario.Demo) error {
	d := &demo{Demo: sd}
	for i, step := range []struct {
		title string
		run   func(context.Context) error
	}{
		{"Setup", d.setup},
		{"The application calls Finch", d.callsSucceed},
		{"The employer's connection breaks", d.breakConnection},
		{fmt.Sprintf("A burst of %d concurrent calls", burst), d.burst},
		{"A day later, a reminder", d.remind},
		{"The customer follows the link", d.reconnect},
		{"Calls succeed again, on the new token", d.callsSucceedAgain},
	} {
		fmt.Fprintf(d.W, "\n%d. %s\n", i+1, step.title)
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, step.title, err)
		}
	}
	return d.Done(d.app.errs.Take())
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.W, "   "+format+"\n", args...)
}

// check returns an error saying what was expected when ok is false.
func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("expected "+format, args...)
}

// setup connects one employer to the fake Finch and starts the app.
func (d *demo) setup(ctx context.Context) error {
	acme := d.Connect(finchtest.Connection{
		CustomerName:  "Acme Corp",
		CustomerEmail: "payroll@acme.example",
		ProviderID:    "gusto",
	})
	d.connID, d.token = acme.ID, acme.Token

	// The app and the fake Finch share a clock that the demo can move a
	// day on. The fake's client transport keeps at most 256 connections to
	// it, so the burst below does not open one per goroutine. In
	// production, http.DefaultTransport (or yours) is the base.
	d.clock = &clock{}
	d.Finch.SetClock(d.clock.Now)
	var err error
	d.app, err = startApp(d.Finch.URL, d.Finch.ClientID, d.Finch.ClientSecret, d.Finch.Client().Transport, d.clock.Now)
	if err != nil {
		return err
	}
	d.OnClose(d.app.close)
	d.browser = d.Browser(d.app.URL)

	// When Acme first connected, the app exchanged Connect's code for a
	// token and saved it. Here it saves the token the fake issued.
	if err := d.app.tr.SaveToken(ctx, d.connID, finchreauth.Token(d.token)); err != nil {
		return err
	}
	d.say("fake Finch (API and Connect)  %s", d.Finch.URL)
	d.say("application                    %s  (callback /finch/callback, dashboard /dashboard)", d.app.URL)
	d.say("Acme Corp connected gusto: connection %s, token %s", d.connID, finchreauth.Token(d.token).Fingerprint())
	d.say("(tokens are shown by fingerprint only)")
	return nil
}

// callsSucceed reads the company and its directory.
func (d *demo) callsSucceed(ctx context.Context) error {
	if err := d.app.finchGet(ctx, d.token, "/employer/company", &d.company); err != nil {
		return err
	}
	d.say("GET /employer/company    200  %s", d.company.LegalName)
	if err := d.app.finchGet(ctx, d.token, "/employer/directory", &d.people); err != nil {
		return err
	}
	d.say("GET /employer/directory  200  %d employees", len(d.people.Individuals))
	return errors.Join(
		check(d.company.LegalName == "Acme Corp", "company Acme Corp, got %q", d.company.LegalName),
		check(len(d.people.Individuals) > 0, "employees in the directory"),
	)
}

// breakConnection does what Finch's sandbox offers for trying this flow:
// PUT /sandbox/connections/accounts {"connection_status": "reauth"}.
func (d *demo) breakConnection(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, d.Finch.URL+"/sandbox/connections/accounts",
		strings.NewReader(`{"connection_status": "reauth"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Finch-API-Version", "2020-09-17")
	resp, err := d.app.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	d.say(`PUT /sandbox/connections/accounts {"connection_status": "reauth"}  %d`, resp.StatusCode)
	d.say("(as when the employer changes their payroll password)")
	return check(resp.StatusCode == http.StatusOK, "200 from the sandbox endpoint, got %d", resp.StatusCode)
}

// burst makes many concurrent calls with the broken token: every one gets
// Finch's 401, the Transport handles the token once, and the app's
// Notifier is called once.
func (d *demo) burst(ctx context.Context) error {
	before := d.Finch.Calls("GET", "/employer/directory")
	var unauthorized, detected, latched atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			resp, err := d.app.do(ctx, d.token, "/employer/directory")
			if err != nil {
				failures.Store(err.Error(), true)
				return
			}
			defer resp.Body.Close()
			// The Transport marks the 401s it recognised: "detected" on
			// Finch's own answer, "latched" on one it gave without
			// calling Finch. Application code needs neither: see IsReauth.
			if finchreauth.ParseAPIError(resp).IsReauth() {
				unauthorized.Add(1)
			}
			switch resp.Header.Get(finchreauth.Header) {
			case finchreauth.Detected:
				detected.Add(1)
			case finchreauth.Latched:
				latched.Add(1)
			}
		})
	}
	wg.Wait()
	// Every caller had its 401 at once; the Transport handles the token on
	// its own: wait for that before looking at what it did.
	if err := d.app.tr.Flush(ctx); err != nil {
		return err
	}
	var errs []error
	failures.Range(func(k, _ any) bool { errs = append(errs, errors.New(k.(string))); return true })
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	reached := d.Finch.Calls("GET", "/employer/directory") - before
	notes := d.app.notifications()
	d.say("%d calls: %d got 401 reauthenticate_user", burst, unauthorized.Load())
	d.say("  %d reached Finch, %d were answered from the Transport's latch (the split depends on timing)",
		reached, latched.Load())
	d.say("  GET /introspect: %d call; notifications: %d", d.Finch.Calls("GET", "/introspect"), len(notes))
	if err := errors.Join(
		check(unauthorized.Load() == burst, "%d 401s, got %d", burst, unauthorized.Load()),
		check(detected.Load()+latched.Load() == burst, "every 401 marked detected or latched"),
		check(int64(reached) == detected.Load(), "%d calls to reach Finch (one per detected 401), got %d", detected.Load(), reached),
		check(d.Finch.Calls("GET", "/introspect") == 1, "1 call to /introspect, got %d", d.Finch.Calls("GET", "/introspect")),
		check(len(notes) == 1, "exactly 1 notification, got %d", len(notes)),
	); err != nil {
		return err
	}

	// Calls made after that (the next run of a job, within LatchTTL) do
	// not reach Finch at all.
	before = d.Finch.Calls("GET", "/employer/directory")
	const later = 50
	for range later {
		resp, err := d.app.do(ctx, d.token, "/employer/directory")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if !finchreauth.ParseAPIError(resp).IsReauth() || resp.Header.Get(finchreauth.Header) != finchreauth.Latched {
			return fmt.Errorf("expected a latched 401 after the burst, got %d %q", resp.StatusCode, resp.Header.Get(finchreauth.Header))
		}
	}
	reached = d.Finch.Calls("GET", "/employer/directory") - before
	d.say("%d more calls afterwards: all answered from the latch, %d reached Finch", later, reached)
	if err := check(reached == 0, "no call to reach Finch while latched, got %d", reached); err != nil {
		return err
	}

	e := notes[0]
	fmt.Fprintln(d.W)
	d.say("The notification (the app's Notifier got this Event):")
	d.say("  To:      %s <%s>", e.Connection.CustomerName, e.Connection.CustomerEmail)
	d.say("  Subject: Reconnect your %s account", e.Connection.ProviderID)
	d.say("  Until you reconnect, these stop working: %s.", strings.Join(e.Connection.Products, ", "))
	d.say("  Reconnect: %s", e.ReconnectURL)
	return errors.Join(
		check(e.Connection.ConnectionID == d.connID, "the event to name connection %s, got %q", d.connID, e.Connection.ConnectionID),
		check(e.Connection.CustomerName == "Acme Corp", "the event to name Acme Corp, got %q", e.Connection.CustomerName),
		check(strings.HasPrefix(e.ReconnectURL, d.Finch.URL+"/authorize?"), "a Finch Connect link, got %q", e.ReconnectURL),
	)
}

// remind moves the clock a day on: the customer has not reconnected, and
// the first reminder (after 24h; then 72h and a week) is due. Remind sends
// it; in production, run Transport.Run, which calls Remind every minute.
func (d *demo) remind(ctx context.Context) error {
	d.clock.advance(24*time.Hour + time.Minute)
	if err := d.app.tr.Remind(ctx); err != nil {
		return err
	}
	notes := d.app.notifications()
	if err := check(len(notes) == 2, "a reminder, got %d notifications in all", len(notes)); err != nil {
		return err
	}
	first, r := notes[0], notes[1]
	d.say("Remind: reminder %d to %s <%s>, broken for %s, with the same link: %v",
		r.Reminder, r.Connection.CustomerName, r.Connection.CustomerEmail, r.Age().Round(time.Minute), r.ReconnectURL == first.ReconnectURL)

	// What the app's dashboard reads of the connection.
	st, err := d.app.tr.Status(ctx, d.connID)
	if err != nil {
		return err
	}
	d.say("Status: needs reauth %v, %d notifications, next reminder %s after the first",
		st.NeedsReauth, st.Notifications, st.NextReminder.Sub(st.Since).Round(time.Hour))
	return errors.Join(
		check(r.Reminder == 1 && r.Source == "reminder", "reminder 1, got %d from %q", r.Reminder, r.Source),
		check(r.Episode == first.Episode, "the reminder to be of the same episode"),
		check(r.ReconnectURL == first.ReconnectURL, "the reminder to carry the same link"),
		check(st.NeedsReauth && st.Notifications == 2, "Status to say needs reauth after 2 notifications, got %v after %d", st.NeedsReauth, st.Notifications),
	)
}

// reconnect plays the customer's browser: the link, Finch Connect's page,
// the Reconnect button, the app's callback and the dashboard.
func (d *demo) reconnect(ctx context.Context) error {
	link := d.app.notifications()[0].ReconnectURL
	// The customer's admin is signed in to the app: the callback checks
	// it (Connect.Authorize) before it spends the code.
	if _, err := d.browser.Get(ctx, d.app.URL+"/login?user="+admin); err != nil {
		return err
	}

	connectPage, err := d.browser.Get(ctx, link)
	if err != nil {
		return err
	}
	if err := check(connectPage.Status == http.StatusOK, "Finch Connect's page (200), got %d", connectPage.Status); err != nil {
		return err
	}
	d.say("         Finch Connect says: %q", connectPage.Text("connection"))

	toCallback, err := d.browser.Submit(ctx, connectPage, "Reconnect")
	if err != nil {
		return err
	}
	callback := d.app.URL + "/finch/callback?"
	if err := check(toCallback.Status == http.StatusSeeOther && toCallback.Location != nil &&
		strings.HasPrefix(toCallback.Location.String(), callback),
		"303 to %s..., got %d", callback, toCallback.Status); err != nil {
		return err
	}

	// The app's CallbackHandler verifies the state, exchanges the code for
	// a new token at Finch, saves it and redirects to SuccessURL.
	toDashboard, err := d.browser.Follow(ctx, toCallback)
	if err != nil {
		return err
	}
	dashboard := d.app.URL + "/dashboard?connection_id=" + d.connID
	if err := check(toDashboard.Status == http.StatusSeeOther && toDashboard.Location != nil &&
		toDashboard.Location.String() == dashboard,
		"303 to %s, got %d to %v", dashboard, toDashboard.Status, toDashboard.Location); err != nil {
		return err
	}

	page, err := d.browser.Follow(ctx, toDashboard)
	if err != nil {
		return err
	}
	status := page.Text("status")
	d.say("         the dashboard says: %q", status)
	return check(page.Status == http.StatusOK && strings.Contains(status, "reconnected"),
		"the dashboard to say reconnected, got %d %q", page.Status, status)
}

// callsSucceedAgain calls Finch with the token the callback saved.
func (d *demo) callsSucceedAgain(ctx context.Context) error {
	tok, err := d.app.tr.Token(ctx, d.connID)
	if err != nil {
		return err
	}
	st, err := d.app.tr.Status(ctx, d.connID)
	if err != nil {
		return err
	}
	d.say("the Transport holds a new token for %s: %s (was %s); needs reauth: %v",
		d.connID, tok.Fingerprint(), finchreauth.Token(d.token).Fingerprint(), st.NeedsReauth)

	// OnReconnected runs detached from the callback.
	if err := scenario.Eventually(ctx, "OnReconnected", func() bool { return len(d.app.reconnections()) > 0 }); err != nil {
		return err
	}
	rec := d.app.reconnections()[0]
	d.say("OnReconnected: %s, via %s, after %s and %d notifications", rec.CustomerName, rec.Via, rec.Downtime().Round(time.Minute), rec.Notifications)

	var co company
	var people directory
	if err := d.app.finchGet(ctx, string(tok), "/employer/company", &co); err != nil {
		return err
	}
	d.say("GET /employer/company    200  %s (company id unchanged: %v)", co.LegalName, co.ID == d.company.ID)
	if err := d.app.finchGet(ctx, string(tok), "/employer/directory", &people); err != nil {
		return err
	}
	sameIDs := slices.Equal(people.ids(), d.people.ids())
	d.say("GET /employer/directory  200  %d employees (same individual ids as before: %v)", len(people.Individuals), sameIDs)

	// A job that still holds the old token gets Finch's 401; the Transport
	// knows that token was replaced, so nobody is notified again.
	var ignored company
	oldErr := d.app.finchGet(ctx, d.token, "/employer/company", &ignored)
	notes := len(d.app.notifications())
	d.say("a job still holding the old token: 401, IsReauth %v; notifications: still %d", finchreauth.IsReauth(oldErr), notes)

	return errors.Join(
		check(tok != finchreauth.Token(d.token), "a new token"),
		check(!st.NeedsReauth, "the connection no longer needs reauth"),
		check(rec.Via == "callback" && rec.Token == tok, "OnReconnected via the callback with the new token, got %q with %s", rec.Via, rec.Token),
		check(co.ID == d.company.ID, "the same company id"),
		check(sameIDs, "the same individual ids"),
		check(finchreauth.IsReauth(oldErr), "the old token to be refused with reauthenticate_user, got %v", oldErr),
		check(notes == 2, "still 2 notifications, got %d", notes),
	)
}

// clock is the demo's clock: real time, moved on by what advance added.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
