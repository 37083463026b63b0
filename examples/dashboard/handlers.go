package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// routes is the application's HTTP surface. In a real application every
// /customers/{customer}/... route would first check that the signed-in user
// belongs to that customer; the demo has one user who sees every customer.
func (d *demo) routes(webhookSecret string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { d.dashboard(w, r, nil) })
	mux.HandleFunc("GET /connect/success", d.success)
	mux.HandleFunc("GET /connect/failure", d.failure)
	mux.HandleFunc("GET /inbox", d.inboxPage)
	mux.HandleFunc("GET /embedded/{customer}", d.embeddedPage)
	mux.HandleFunc("POST /embedded/{customer}/code", d.embeddedCode)
	mux.HandleFunc("GET /source/{pkg}/{file}", d.sourcePage)
	mux.Handle("GET /static/", http.FileServerFS(staticFS))

	// The library's handlers.
	// The start endpoint, the callback Finch Connect sends the employer
	// back to, Finch's webhooks, and the connection's status as JSON (what
	// the cards show, timeline included).
	mux.Handle("/customers/{customer}/reconnect", d.tr.StartHandler(d.authorize))
	mux.Handle("GET /customers/{customer}/status", d.tr.StatusHandler(d.authorize))
	mux.Handle("/finch/callback", d.tr.CallbackHandler())
	mux.Handle("POST /finch/webhooks", d.tr.WebhookHandler(webhookSecret))

	// The application's own action, and the demo's simulations.
	mux.HandleFunc("POST /customers/{customer}/sync", d.withCustomer(d.sync))
	mux.HandleFunc("POST /customers/{customer}/break", d.withCustomer(d.breakConnection))
	mux.HandleFunc("POST /customers/{customer}/break-entity/{entity}", d.withCustomer(d.breakEntity))
	mux.HandleFunc("POST /customers/{customer}/break-quietly", d.withCustomer(d.breakQuietly))
	mux.HandleFunc("POST /customers/{customer}/request-products", d.withCustomer(d.requestProducts))
	mux.HandleFunc("POST /customers/{customer}/grant-partly", d.withCustomer(d.grantPartly))
	mux.HandleFunc("POST /campaign", d.startCampaign)
	mux.HandleFunc("POST /customers/{customer}/finch-status/{status}", d.withCustomer(d.setFinchStatus))
	mux.HandleFunc("POST /customers/{customer}/other-account", d.withCustomer(d.otherAccount))
	mux.HandleFunc("POST /customers/{customer}/finish-job", d.withCustomer(d.finishJob))
	mux.HandleFunc("POST /clock/next-day", d.nextDay)
	mux.HandleFunc("POST /clock/next-minute", d.nextMinute)
	mux.HandleFunc("POST /clock/next-hour", d.nextHour)
	return mux
}

// authorize names the connection of the customer in the URL: the library's
// StartHandler and StatusHandler serve it. A real application checks here
// that the signed-in user belongs to that customer.
func (d *demo) authorize(r *http.Request) (string, error) {
	if c := d.customer(r.PathValue("customer")); c != nil {
		return c.ConnectionID, nil
	}
	return "", errors.New("no such customer")
}

// mayReconnect is Connect.Authorize: the callback asks it, before the code
// is spent, whether the signed-in user may reconnect the connection the
// link names. A real application checks that the user belongs to the
// customer that owns it; the demo has one operator, who may reconnect any
// of its customers' connections, and nothing else.
func (d *demo) mayReconnect(r *http.Request, connectionID string) error {
	if d.byConnection(connectionID) == nil {
		return errors.New("no customer of the demo owns this connection")
	}
	return nil
}

func (d *demo) withCustomer(h func(http.ResponseWriter, *http.Request, *customer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := d.customer(r.PathValue("customer"))
		if c == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r, c)
	}
}

// back sends the browser to the customer's card on the dashboard.
func back(w http.ResponseWriter, r *http.Request, c *customer) {
	http.Redirect(w, r, "/#customer-"+c.Key, http.StatusSeeOther)
}

// syncResult is what the last sync of a customer did.
type syncResult struct {
	At    time.Time
	Calls []syncCall
}

// Tokens lists the tokens the sync's requests went out with, as
// fingerprints, each once: one, unless a reconnect happened in the middle
// of the sync.
func (s syncResult) Tokens() []string {
	var out []string
	for _, c := range s.Calls {
		if c.Token != "" && !slices.Contains(out, c.Token) {
			out = append(out, c.Token)
		}
	}
	return out
}

// OK reports whether every call of the sync succeeded.
func (s syncResult) OK() bool {
	for _, c := range s.Calls {
		if !c.OK() {
			return false
		}
	}
	return len(s.Calls) > 0
}

// syncCall is one request of a sync and what came back.
type syncCall struct {
	Method, Path string
	Token        string // the token the request went out with, as its fingerprint
	Status       int
	Mark         string // the Finchreauth header: detected or latched
	FinchCode    string
	Summary      string
	Err          string
}

// Outcome says what the call's answer means.
func (c syncCall) Outcome() string {
	switch {
	case c.Err != "":
		return "error: " + c.Err
	case c.Mark == finchreauth.Latched:
		return "answered locally, Finch not called (Finchreauth: latched)"
	case c.Mark == finchreauth.Detected:
		return c.FinchCode + " from Finch (Finchreauth: detected)"
	case c.Status == http.StatusAccepted:
		return "accepted: the first sync is not done yet"
	case c.Status < 300:
		return c.Summary
	}
	return "Finch error " + c.FinchCode
}

// OK reports whether the call succeeded.
func (c syncCall) OK() bool { return c.Err == "" && c.Status >= 200 && c.Status < 300 }

// sync is the application's sync job: a couple of API calls for the
// customer's connection, through the Transport.
func (d *demo) sync(w http.ResponseWriter, r *http.Request, c *customer) {
	res := d.runSync(r.Context(), c)
	d.mu.Lock()
	d.syncs[c.Key] = res
	d.mu.Unlock()
	// The sync got Finch's 401 at once; its handling (whose token, the
	// episode, the notification) runs after, and the requests the latch
	// answered are counted in the record at the latch's next look. Wait
	// for both (Flush), as a test of the application does, so that the
	// page shows what they did.
	d.flush(r.Context())
	back(w, r, c)
}

// syncPaths are the requests of a sync.
var syncPaths = []string{"/employer/company", "/employer/directory"}

// runSync reads the company and the directory through tr.Client: the
// application holds no token; the Transport puts the connection's current
// one from the Store on each request, so that after a reconnect the next
// sync carries the new token without a restart.
func (d *demo) runSync(ctx context.Context, c *customer) syncResult {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // tr.Client has no Timeout
	defer cancel()
	api := d.tr.Client(c.ConnectionID)
	res := syncResult{At: d.clock.Now()}
	for _, path := range syncPaths {
		res.Calls = append(res.Calls, d.call(ctx, api, http.MethodGet, path))
	}
	return res
}

// call makes one request of a sync and says what came back.
func (d *demo) call(ctx context.Context, api *http.Client, method, path string) syncCall {
	call := syncCall{Method: method, Path: path}
	req, err := http.NewRequestWithContext(ctx, method, d.finch.URL+path, nil)
	if err != nil {
		call.Err = err.Error()
		return call
	}
	req.Header.Set("Finch-API-Version", "2020-09-17")
	resp, err := api.Do(req)
	if err != nil {
		call.Err = err.Error() // never holds a token: the Transport names one by fingerprint
		return call
	}
	defer resp.Body.Close()
	call.Token = sentWith(resp)
	call.Status = resp.StatusCode
	call.Mark = resp.Header.Get(finchreauth.Header)
	if apiErr := finchreauth.ParseAPIError(resp); apiErr != nil {
		call.FinchCode = apiErr.FinchCode
		if call.FinchCode == "" {
			call.FinchCode = apiErr.Name
		}
	} else {
		call.Summary = summarize(path, resp.Body)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return call
}

// sentWith names, by its fingerprint, the token the request that got resp
// went out with: resp.Request is the request sent, which carries the token
// tr.Client put on it (the current one, or the new one a refused request
// was replayed with). The token itself goes no further.
func sentWith(resp *http.Response) string {
	if resp.Request == nil {
		return ""
	}
	tok, ok := strings.CutPrefix(resp.Request.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return ""
	}
	return finchreauth.Token(tok).String()
}

// summarize says in a few words what a successful answer held.
func summarize(path string, body io.Reader) string {
	var v struct {
		LegalName   string `json:"legal_name"`
		Individuals []any  `json:"individuals"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&v); err != nil {
		return "OK"
	}
	if path == "/employer/company" {
		return "company: " + v.LegalName
	}
	return fmt.Sprintf("%d people in the directory", len(v.Individuals))
}

// breakConnection is the employer changing their payroll password: the fake
// Finch puts the connection in the re-authentication state and sends
// account.updated to the application's webhook, and returns once the webhook
// was answered.
func (d *demo) breakConnection(w http.ResponseWriter, r *http.Request, c *customer) {
	d.finch.Break(c.ConnectionID)
	d.flush(r.Context())
	back(w, r, c)
}

// breakQuietly is Finch putting the connection in reauth with nothing to
// tell the application: no webhook (the fake holds its account.updated and
// drops it, as a delivery Finch gave up on) and no API call. Only the
// health sweep's look at /introspect can find it before a sync fails.
func (d *demo) breakQuietly(w http.ResponseWriter, r *http.Request, c *customer) {
	d.quiet.Lock()
	d.finch.HoldWebhooks(true)
	d.finch.Break(c.ConnectionID)
	d.finch.HoldWebhooks(false)
	for _, h := range d.finch.HeldWebhooks() {
		// Whatever else was held meanwhile (a data sync job ending on
		// the demo clock) goes out as it would have.
		if h.EventType != "account.updated" || h.ConnectionID != c.ConnectionID {
			d.finch.DeliverHeld(r.Context(), h.EventID, finchtest.TimestampAtDelivery)
		}
		d.finch.DropHeld(h.EventID)
	}
	d.quiet.Unlock()
	d.flush(r.Context())
	back(w, r, c)
}

// breakEntity breaks one entity of a multi-entity connection.
func (d *demo) breakEntity(w http.ResponseWriter, r *http.Request, c *customer) {
	id := r.PathValue("entity")
	if c.entityName(id) == id {
		http.NotFound(w, r)
		return
	}
	d.finch.BreakEntity(c.ConnectionID, id)
	d.flush(r.Context())
	back(w, r, c)
}

// finchStatuses are the connection statuses the demo's buttons set at the
// fake Finch (finchtest SetStatus), which sends account.updated for each.
var finchStatuses = map[string]bool{
	"pending":                true, // Finch is still setting the connection up
	"connected":              true, // set up, or fixed in the payroll system
	"error_permissions":      true, // Finch's admin user lost its permissions
	"error_no_account_setup": true, // the admin user Finch was promised was never made
}

// setFinchStatus is something that happens at Finch or in the employer's
// payroll system, not in the application: the fake Finch changes the
// connection's status and sends account.updated to the webhook.
func (d *demo) setFinchStatus(w http.ResponseWriter, r *http.Request, c *customer) {
	status := r.PathValue("status")
	if !finchStatuses[status] {
		http.NotFound(w, r)
		return
	}
	d.finch.SetStatus(c.ConnectionID, status)
	d.flush(r.Context())
	back(w, r, c)
}

// flush waits for the work the Transport does after it answered: a
// webhook's or a 401's handling, the notification or the "reconnected" it
// owes (Transport.Flush). An application's callers never wait for it; the
// demo does, so that the page it shows next is up to date, as a test does
// before it looks at what the handling did.
func (d *demo) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.tr.Flush(ctx); err != nil {
		d.activity.add("Flush", "%v", err)
	}
}

// otherAccount plays the employer who, at Finch Connect, signs in to another
// payroll account than the broken one. The fake's Connect page has Reconnect
// and Cancel only, so this asks the fake to approve the customer's link as
// another connection (finchtest ApproveAs) and sends the browser where
// Connect would: the application's callback.
func (d *demo) otherAccount(w http.ResponseWriter, r *http.Request, c *customer) {
	link, err := d.tr.ReconnectURL(r.Context(), c.ConnectionID)
	if err != nil {
		http.Error(w, "no reconnect link: "+err.Error(), http.StatusBadGateway)
		return
	}
	callback, err := d.finch.ApproveAs(link, "other-"+c.Key+"-"+rand.Text()[:8])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, callback, http.StatusSeeOther)
}

// nextDay moves the demo clock a day forward and sends the reminders that
// are due, as the application's scheduler (or Transport.Run) would.
func (d *demo) nextDay(w http.ResponseWriter, r *http.Request) { d.later(w, r, 24*time.Hour) }

// nextMinute moves the demo clock a minute forward and carries out what is
// due: after a reconnect, the Transport's next look at Finch's data sync
// job (30 seconds after it started it, then a minute later, two, ...).
// Finch's jobs run on the demo clock too (see jobQueued).
func (d *demo) nextMinute(w http.ResponseWriter, r *http.Request) { d.later(w, r, time.Minute) }

// nextHour moves the demo clock an hour forward: a SweepEvery later, every
// connection's health check is due, and the sweep asks Finch about each
// (Transport.Sweep).
func (d *demo) nextHour(w http.ResponseWriter, r *http.Request) { d.later(w, r, time.Hour) }

// later moves the demo clock by, calls Transport.Sweep and Transport.Remind
// (as Transport.Run would, in its own time), waits for what they started,
// and goes back to the page the form names: "/inbox", "campaign", a
// customer's card (its key), or the dashboard.
func (d *demo) later(w http.ResponseWriter, r *http.Request, by time.Duration) {
	d.clock.advance(by)
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second) // Sweep waits for SweepRate's window
	err := d.tr.Sweep(ctx)
	cancel()
	if err != nil {
		d.activity.add("Sweep", "%v", err)
	}
	if err := d.tr.Remind(r.Context()); err != nil {
		d.activity.add("Remind", "%v", err)
	}
	d.flush(r.Context())
	to := "/"
	if b := r.FormValue("back"); b == "/inbox" {
		to = "/inbox"
	} else if b == "campaign" {
		to = "/#campaign"
	} else if c := d.customer(b); c != nil {
		to = "/#customer-" + c.Key
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// finishJob is Finch finishing the data sync job the Transport started
// after the reconnect: the fake Finch ends it (finchtest SetJobStatus
// "complete") and sends job.data_sync_all.completed to the application's
// webhook, on which the Transport reads the job at once.
func (d *demo) finishJob(w http.ResponseWriter, r *http.Request, c *customer) {
	st, err := d.tr.Status(r.Context(), c.ConnectionID)
	if err == nil && st.ResyncJobID != "" {
		if err := d.finch.SetJobStatus(st.ResyncJobID, "complete"); err != nil {
			// It ended already, by the demo clock: its webhook went out
			// then.
			d.activity.add("finchtest", "job %s: %v", st.ResyncJobID, err)
		}
	}
	d.flush(r.Context())
	back(w, r, c)
}

// embeddedCode stands in for Finch Connect's JavaScript: in the embedded
// flow, Connect runs in the application's page and hands the code to its
// onSuccess callback. Here the fake Finch issues that code (finchtest
// IssueCode: a code bound to no redirect_uri), as if the employer had
// completed Connect in the modal.
func (d *demo) embeddedCode(w http.ResponseWriter, r *http.Request) {
	c := d.customer(r.PathValue("customer"))
	if c == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"code": d.finch.IssueCode(c.ConnectionID)})
}

// outcomeView is the banner of the pages Connect.SuccessURL and FailureURL.
type outcomeView struct {
	Kind   string // success, cancelled, mismatch or failure
	Title  string
	Detail string
	Reason string
}

// success is Connect.SuccessURL: the callback sends the browser here, with
// connection_id, after it saved the new token.
func (d *demo) success(w http.ResponseWriter, r *http.Request) {
	conn := r.URL.Query().Get("connection_id")
	// The end of the episode owes OnReconnected and the start of Finch's
	// data sync job, carried out after the callback answered: wait for
	// them, so that the card shows the job.
	d.flush(r.Context())
	o := &outcomeView{Kind: "success", Title: "Success", Detail: d.nameOf(conn) + " is reconnected: the new token is saved and syncs work again."}
	if a := d.answered(r.Context(), conn); a != nil {
		// The link was a request's: the connection worked all along.
		o.Detail = d.nameOf(conn) + " answered the " + a.Request + ": the new token is saved; the old one worked until then."
		if len(a.ProductsMissing) > 0 {
			o.Detail = d.nameOf(conn) + " answered the upgrade, partly: Finch did not grant " + productNames(a.ProductsMissing) + ". The new token is saved."
		}
	}
	// Anyone can open this URL: the banner says what the Store says.
	if st, err := d.tr.Status(r.Context(), conn); err != nil || st.NeedsReauth || d.byConnection(conn) == nil {
		o = &outcomeView{Kind: "failure", Title: "Not reconnected", Detail: "This page was opened for a connection that is not reconnected."}
	}
	d.dashboard(w, r, o)
}

// failure is Connect.FailureURL: the callback sends the browser here with a
// reason (a finchreauth.Reason) and, when known, the connection_id.
func (d *demo) failure(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reason := finchreauth.Reason(q.Get("reason"))
	name := "the connection"
	if conn := q.Get("connection_id"); conn != "" {
		name = d.nameOf(conn)
	}
	o := &outcomeView{Kind: "failure", Title: "Reconnect failed", Reason: string(reason)}
	switch reason {
	case finchreauth.ReasonCancelled:
		o.Kind, o.Title = "cancelled", "Cancelled"
		o.Detail = "Finch Connect was closed before reconnecting. " + name + " still needs reconnecting; the same link still works."
	case finchreauth.ReasonConnectionMismatch:
		o.Kind, o.Title = "mismatch", "Mismatch"
		o.Detail = "A different payroll account was connected than the one that needs reconnecting. Nothing was saved: " +
			name + " still needs reconnecting. Reconnect again and sign in to the same account as before."
	case finchreauth.ReasonExpired:
		o.Detail = "The reconnect link expired. Use Reconnect to get a new one."
	case finchreauth.ReasonInvalidState:
		o.Detail = "This link was used already, or was not made by this application. Use Reconnect to get a new one."
	case finchreauth.ReasonExchangeFailed:
		o.Detail = "Finch did not accept the code Connect sent back. Please go through Connect again."
	case finchreauth.ReasonUnavailable, finchreauth.ReasonSaveFailed:
		o.Detail = "We could not record the reconnect. Nothing was lost: please try again in a moment."
	case finchreauth.ReasonSuperseded:
		o.Detail = "The connection already works with a newer token; nothing to do."
	case finchreauth.ReasonLinkFailed:
		o.Detail = "We could not make a reconnect link. Please try again in a moment."
	case finchreauth.ReasonMisconfigured, finchreauth.ReasonInvalidRequest:
		o.Detail = "The application is misconfigured or the request was malformed (" + string(reason) + ")."
	default:
		o.Detail = "Finch Connect came back with " + strconv.Quote(string(reason)) + "."
	}
	d.dashboard(w, r, o)
}
