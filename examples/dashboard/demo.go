package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// config is what main (or a test) chooses.
type config struct {
	// Addr is the application's listen address; port 0 picks a free one.
	Addr string
	// Logger, if set, is the Transport's Logger.
	Logger *slog.Logger
}

// customer is one employer of the HR application, with its Finch connection.
type customer struct {
	Key          string // in the application's URLs: /customers/acme/...
	Name         string
	Email        string
	ProviderID   string
	ConnectionID string             // from the fake Finch
	Products     []string           // what the employer granted at first; if nil, finchtest's default (all six)
	Entities     []finchtest.Entity // set for the multi-entity employer
	// Assisted: Finch's staff sign in to the payroll system with an admin
	// user the employer created for Finch. Finch Connect cannot repair
	// such a connection: the employer fixes it in the payroll system.
	Assisted bool
}

// entityName returns the name of the customer's entity with that id.
func (c *customer) entityName(id string) string {
	for _, e := range c.Entities {
		if e.ID == id {
			return e.Name
		}
	}
	return id
}

// How Finch's data sync jobs run in the demo, by the demo clock: the
// Transport first looks at a job 30 seconds after it started it, then
// after a minute, two, and so on; "A minute later" gets there sooner.
const (
	jobQueued  = 20 * time.Second
	jobRunning = 90 * time.Second
)

// The employers the demo starts with.
func initialCustomers() []*customer {
	return []*customer{
		{Key: "acme", Name: "Acme Corp", Email: "payroll@acme.example", ProviderID: "gusto"},
		{Key: "globex", Name: "Globex Corporation", Email: "hr@globex.example", ProviderID: "adp_workforce_now"},
		{Key: "initech", Name: "Initech Holdings", Email: "people@initech.example", ProviderID: "paychex_flex",
			Entities: []finchtest.Entity{
				{ID: "ent_initech_east", Name: "Initech East", SourceID: "IE-01"},
				{ID: "ent_initech_west", Name: "Initech West", SourceID: "IW-02"},
			}},
		{Key: "umbrella", Name: "Umbrella Corp", Email: "hr@umbrella.example", ProviderID: "trinet", Assisted: true},
		// Hooli granted no payroll data when it first connected: the
		// application asks for it (RequestProducts).
		{Key: "hooli", Name: "Hooli", Email: "payroll@hooli.example", ProviderID: "gusto",
			Products: []string{"company", "directory", "individual", "employment"}},
	}
}

// demo is the application and the fake Finch it talks to.
type demo struct {
	// URL is the application's base URL, such as http://127.0.0.1:8080.
	URL string

	finch     *finchtest.Server
	tr        *finchreauth.Transport
	clock     *clock
	inbox     *inbox
	activity  *activity
	customers []*customer
	pages     pages
	source    *sourceIndex

	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	syncs    map[string]syncResult               // customer key -> the last sync
	answers  map[string]finchreauth.Reconnection // customer key -> the last request it answered (OnAnswered)
	campaign *finchreauth.Campaign               // the campaign started, if any

	// quiet serializes the simulations that change a status at the fake
	// Finch with its webhook lost (finchtest holds every webhook while it
	// holds one).
	quiet sync.Mutex
}

// newDemo starts the fake Finch, connects the employers to it, and builds the
// application on a listener at cfg.Addr. Serve runs it.
func newDemo(cfg config) (_ *demo, err error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	d := &demo{
		URL:       baseURL(ln.Addr()),
		ln:        ln,
		clock:     &clock{},
		customers: initialCustomers(),
		syncs:     map[string]syncResult{},
		answers:   map[string]finchreauth.Reconnection{},
		source:    newSourceIndex(),
	}
	d.activity = &activity{now: d.clock.Now}
	d.inbox = &inbox{activity: d.activity}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}

	// The fake Finch reads the demo clock too: webhook timestamps must agree
	// with the Transport's clock (it refuses those more than 5 minutes off),
	// and "a day later" must be a day later for codes and sessions as well.
	d.finch = finchtest.NewServer()
	d.finch.SetClock(d.clock.Now)
	// Finch's data sync jobs run on the demo clock too: queued for
	// jobQueued, then running for jobRunning.
	d.finch.SetJobDuration(jobQueued, jobRunning)

	webhookKey := make([]byte, 32)
	rand.Read(webhookKey)
	webhookSecret := base64.StdEncoding.EncodeToString(webhookKey) // as Finch shows it

	if d.tr, err = d.transport(cfg); err != nil {
		return nil, err
	}
	if err := d.connectCustomers(context.Background()); err != nil {
		return nil, err
	}

	if err := d.finch.SetWebhook(finchtest.Webhook{URL: d.URL + "/finch/webhooks", Secrets: []string{webhookSecret}}); err != nil {
		return nil, err
	}
	d.srv = &http.Server{Handler: d.routes(webhookSecret), ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

// transport is the application's finchreauth.Transport, on the fake Finch.
func (d *demo) transport(cfg config) (*finchreauth.Transport, error) {
	stateKey := make([]byte, 32)
	rand.Read(stateKey)
	tr := &finchreauth.Transport{
		Base:       d.finch.Client().Transport, // in production: nil, or your own
		APIBaseURL: d.finch.URL,                // in production: empty (https://api.tryfinch.com)
		Store:      new(finchreauth.MemoryStore),
		Notifier:   d.inbox,
		Connect: &finchreauth.Connect{
			ClientID:       d.finch.ClientID,
			ClientSecret:   d.finch.ClientSecret,
			RedirectURI:    d.URL + "/finch/callback",
			SuccessURL:     d.URL + "/connect/success",
			FailureURL:     d.URL + "/connect/failure",
			StateKeys:      [][]byte{stateKey},
			ConnectBaseURL: d.finch.URL, // in production: empty (https://connect.tryfinch.com)
			// The callback completes a reconnect only for someone who may:
			// see mayReconnect.
			Authorize: d.mayReconnect,
			OnUnsaved: func(_ context.Context, r finchreauth.Reconnection) {
				d.activity.add("Connect.OnUnsaved", "a token for connection %s was not saved (%s; the link was for %s): %s",
					r.ConnectionID, r.Reason, r.Expected, r.Token)
			},
		},
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) {
			d.activity.add("OnReconnected", "%s works again (it needed %s), via %s, after %s; %d message(s) sent; failed meanwhile, to run again once the data is fresh: %s",
				d.nameOf(r.ConnectionID), r.Status, r.Via, r.Downtime().Round(time.Second), r.Notifications, refusals(r.Refused))
		},
		// After a reconnect, the Transport starts Finch's data_sync_all job
		// (SkipResync is not set), follows it, and says here how it ended.
		OnDataSynced: func(_ context.Context, r finchreauth.Reconnection) {
			if r.SyncStatus != "complete" {
				d.activity.add("OnDataSynced", "%s: Finch's data sync job %s ended in %s; the data is not fresh", d.nameOf(r.ConnectionID), r.JobID, r.SyncStatus)
				return
			}
			d.activity.add("OnDataSynced", "%s: Finch's data sync job %s is complete; the data is fresh as of %s",
				d.nameOf(r.ConnectionID), r.JobID, r.DataFreshAt.Local().Format(time.TimeOnly))
		},
		// A request made while the connection works (RequestProducts,
		// StartCampaign) is answered when a token is saved after it: see
		// requests.go.
		OnAnswered: d.onAnswered,
		ErrorHandler: func(_ context.Context, err error) {
			d.activity.add("ErrorHandler", "%v", err)
		},
		// A notification that failed is tried again after RetryInterval
		// (default 30 seconds), and Run wakes up that often: 5 seconds
		// keeps the demo brisk.
		RetryInterval: 5 * time.Second,
		// The health sweep asks Finch (/introspect) about every connection
		// once per SweepEvery, each at its own time in the period: a day is
		// usual; an hour lets "An hour later" show it. Run sweeps every
		// minute, and the demo's clock buttons call Sweep too.
		SweepEvery: time.Hour,
		Logger:     cfg.Logger,
		Now:        d.clock.Now,
	}
	if err := tr.Connect.Validate(); err != nil {
		return nil, err
	}
	return tr, nil
}

// connectCustomers connects each employer to the fake Finch and saves its
// token, as the application did when the employer first went through
// Finch Connect.
func (d *demo) connectCustomers(ctx context.Context) error {
	for _, c := range d.customers {
		tok := d.finch.AddConnection(finchtest.Connection{
			CustomerName: c.Name, CustomerEmail: c.Email, ProviderID: c.ProviderID, Entities: c.Entities, Assisted: c.Assisted, Products: c.Products,
		})
		conn, _ := d.finch.ConnectionForToken(tok)
		c.ConnectionID = conn.ID
		if err := d.tr.SaveToken(ctx, c.ConnectionID, finchreauth.Token(tok)); err != nil {
			return err
		}
	}
	return nil
}

// Serve serves the application until ctx is done, then shuts everything down:
// the HTTP server (waiting for requests in flight), the reminder loop, the
// Transport and the fake Finch.
func (d *demo) Serve(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- d.srv.Serve(d.ln) }()

	// Reminders on the real clock, as an application runs them. The
	// "next day" button calls Remind as well, after moving the demo clock.
	runCtx, stopRun := context.WithCancel(context.Background())
	var run sync.WaitGroup
	run.Go(func() { d.tr.Run(runCtx) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := d.srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	stopRun()
	run.Wait()
	d.close()
	return err
}

// close stops the Transport's work and the fake Finch.
func (d *demo) close() {
	if d.tr != nil {
		d.tr.Close()
	}
	if d.finch != nil {
		d.finch.Close()
	}
	if d.srv == nil {
		d.ln.Close()
	}
}

func (d *demo) customer(key string) *customer {
	for _, c := range d.customers {
		if c.Key == key {
			return c
		}
	}
	return nil
}

func (d *demo) byConnection(connID string) *customer {
	for _, c := range d.customers {
		if c.ConnectionID == connID {
			return c
		}
	}
	return nil
}

// nameOf names a connection by its customer, or by its id.
func (d *demo) nameOf(connID string) string {
	if c := d.byConnection(connID); c != nil {
		return c.Name
	}
	return "connection " + connID
}

// refusals says what failed while a connection was broken:
// "GET /employer/directory ×3, ...", or "nothing".
func refusals(rs []finchreauth.Refusal) string {
	if len(rs) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s ×%d", r.Method, r.Path, r.Count)
	}
	return b.String()
}

// baseURL is the URL a browser on this machine opens for addr.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// clock is the demo's clock: the real time plus an offset that the "next
// day" button moves forward. The Transport and the fake Finch both read it.
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
	c.offset += d
	c.mu.Unlock()
}

// Offset is how far the demo clock runs ahead of the real one.
func (c *clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// activity is the log the dashboard shows: what the library's hooks said.
type activity struct {
	now     func() time.Time
	mu      sync.Mutex
	entries []entry
}

type entry struct {
	At         time.Time
	Hook, Text string
}

func (a *activity) add(hook, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, entry{At: a.now(), Hook: hook, Text: fmt.Sprintf(format, args...)})
	if n := len(a.entries); n > 50 {
		a.entries = a.entries[n-50:]
	}
}

// recent returns the entries, newest first.
func (a *activity) recent() []entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]entry, len(a.entries))
	for i, e := range a.entries {
		out[len(out)-1-i] = e
	}
	return out
}
