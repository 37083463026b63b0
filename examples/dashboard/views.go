package main

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/message"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticRoot embed.FS

// staticFS serves /static/... from the static folder.
var staticFS fs.FS = staticRoot

// pages holds one template set per page: the layout and the page's content.
type pages map[string]*template.Template

// when is how pages write a time.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("Mon Jan 2, 15:04:05")
}

// between is how pages write a span of time: "Mon Jan 2, 15:04:05 to
// 15:04:09", or one time when both fall in the same second.
func between(from, to time.Time) string {
	a, b := when(from), when(to)
	switch {
	case a == b:
		return a
	case from.Local().Format(time.DateOnly) == to.Local().Format(time.DateOnly):
		b = to.Local().Format(time.TimeOnly)
	}
	return a + " to " + b
}

var funcs = template.FuncMap{
	"when":    when,
	"between": between,
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		if d := now.Sub(t); d >= 0 {
			return message.FormatAge(d) + " ago"
		}
		return "in " + message.FormatAge(t.Sub(now))
	},
	"dur":      func(d time.Duration) string { return d.Round(time.Second).String() },
	"product":  message.ProductName,
	"products": productNames,
	"join":     strings.Join,
	"srcdoc":   srcdoc,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}

func parsePages() (pages, error) {
	p := pages{}
	for _, name := range []string{"dashboard", "inbox", "embedded", "source"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p[name] = t
	}
	return p, nil
}

// productNames writes Finch products in words: "payroll payments, pay
// statements".
func productNames(ps []string) string {
	var names []string
	for _, p := range ps {
		names = append(names, message.ProductName(p))
	}
	return strings.Join(names, ", ")
}

// frame is what the layout shows on every page.
type frame struct {
	Title    string
	Nav      string // the current page: dashboard, inbox, embedded
	Now      time.Time
	Ahead    time.Duration // how far the demo clock runs ahead
	Mail     int
	FinchURL string
}

func (d *demo) frame(title, nav string) frame {
	return frame{Title: title, Nav: nav, Now: d.clock.Now(), Ahead: d.clock.Offset(), Mail: d.inbox.count(), FinchURL: d.finch.URL}
}

// AheadText says how far the demo clock runs ahead.
func (f frame) AheadText() string {
	if f.Ahead <= 0 {
		return ""
	}
	return "+" + message.FormatAge(f.Ahead)
}

func (d *demo) render(w http.ResponseWriter, name string, v any) {
	var b bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		http.Error(w, "template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// card is one customer on the dashboard.
type card struct {
	*customer
	Status    finchreauth.Status
	StatusErr string
	Token     string   // the saved token, as its fingerprint
	Broken    []string // names of the broken entities, when only some are
	Finch     finchtest.Connection
	Sync      *syncResult
	// What the employer must do while Status.NeedsReauth, in the words of
	// the e-mail (package message): Fix is "connect" (Finch Connect) or
	// "payroll" (in the payroll system, no link), Action says what.
	Fix, Action string
	// Provider is the provider's name, as the e-mail writes it.
	Provider string
	// Answer is the last request the employer answered (OnAnswered).
	Answer *finchreauth.Reconnection
}

// Granted is the products the connection's token grants, as Finch last
// said (Status.Products), or as the employer first granted them.
func (c card) Granted() []string {
	if len(c.Status.Products) > 0 {
		return c.Status.Products
	}
	return c.customer.Products
}

// Missing is what the demo may ask the employer for (upgradeProducts) that
// the token does not grant; nothing while an upgrade is open, or when the
// grant is unknown.
func (c card) Missing() []string {
	granted := c.Granted()
	if granted == nil || c.Upgrade() != nil {
		return nil
	}
	var out []string
	for _, p := range upgradeProducts {
		if !slices.Contains(granted, p) {
			out = append(out, p)
		}
	}
	return out
}

// Upgrade is the open upgrade request, if any.
func (c card) Upgrade() *finchreauth.Request { return c.request("upgrade") }

// Campaign is the open campaign request, if any.
func (c card) Campaign() *finchreauth.Request { return c.request("campaign") }

func (c card) request(kind string) *finchreauth.Request {
	for i := range c.Status.Requests {
		if c.Status.Requests[i].Kind == kind {
			return &c.Status.Requests[i]
		}
	}
	return nil
}

// Asked is what an upgrade asks for beyond what the token grants.
func (c card) Asked(q *finchreauth.Request) []string {
	granted := c.Granted()
	var out []string
	for _, p := range q.Products {
		if !slices.Contains(granted, p) {
			out = append(out, p)
		}
	}
	return out
}

// newCard is the card of c for its Status.
func newCard(c *customer, st finchreauth.Status) card {
	cd := card{customer: c, Status: st}
	for _, id := range st.BrokenEntities {
		cd.Broken = append(cd.Broken, c.entityName(id))
	}
	conn := finchreauth.Connection{ConnectionID: c.ConnectionID, ProviderID: c.ProviderID, Assisted: cd.IsAssisted()}
	words := message.NewData(finchreauth.Event{Connection: conn, Status: st.Need})
	cd.Provider = words.Provider
	if st.NeedsReauth {
		cd.Fix, cd.Action = words.Fix, words.Action
	}
	return cd
}

// IsAssisted reports whether the connection is assisted, as the application
// recorded it or as Finch's /introspect said.
func (c card) IsAssisted() bool {
	return c.Assisted || (c.Status.Connection != nil && c.Status.Connection.Assisted)
}

// State is the card's state, for its colour and its pill: "connect"
// (reconnect needed), "payroll" (action needed in the payroll system),
// "setup" (Finch is still setting the connection up: nothing to do),
// "disconnected", or "healthy".
func (c card) State() string {
	switch {
	case c.Status.NeedsReauth:
		return c.Fix
	case c.Status.FinchStatus == "pending" || c.Status.FinchStatus == "processing":
		return "setup"
	case c.Status.FinchStatus == "disconnected":
		return "disconnected"
	}
	return "healthy"
}

// Pill is the card's state in words.
func (c card) Pill() string {
	switch c.State() {
	case "connect":
		return "Reconnect needed"
	case "payroll":
		return "Action needed in the payroll system"
	case "setup":
		return "Setting up"
	case "disconnected":
		return "Disconnected"
	}
	return "Healthy"
}

// FinchStatusText is the connection's latest status from Finch in words:
// "pending" and "processing" are a neutral "Setting up".
func (c card) FinchStatusText() string {
	switch s := c.Status.FinchStatus; s {
	case "":
		return "not heard yet"
	case "pending", "processing":
		return "Setting up (" + s + ")"
	case "connected":
		return "Connected"
	case "reauth":
		return "Re-authentication needed (reauth)"
	case "error_permissions":
		return "Finch's admin lost its permissions (error_permissions)"
	case "error_no_account_setup":
		return "Admin account not set up (error_no_account_setup)"
	case "disconnected":
		return "Disconnected"
	default:
		return s
	}
}

// History is the connection's timeline, newest first.
func (c card) History() []finchreauth.HistoryEntry {
	h := c.Status.History
	out := make([]finchreauth.HistoryEntry, len(h))
	for i, e := range h {
		out[len(h)-1-i] = e
	}
	return out
}

// ResyncText is where Finch's data sync job started after the last
// reconnect stands (Status.Resync), in words.
func (c card) ResyncText() string {
	switch s := c.Status.Resync; s {
	case "owed":
		return "not started yet: Finch allows one forced refresh an hour, the Transport starts it when Finch allows"
	case "pending":
		return "queued at Finch (pending)"
	case "in_progress":
		return "running (in_progress)"
	case "complete":
		return "complete"
	case "error":
		return "failed (error): the data was not refreshed"
	case "reauth_error", "permissions_error":
		return "failed (" + s + "): the connection needs the employer again"
	default:
		return s
	}
}

// ResyncRunning reports whether Finch's data sync job is under way, as the
// application knows it.
func (c card) ResyncRunning() bool {
	return c.Status.Resync == "pending" || c.Status.Resync == "in_progress"
}

// ResyncNote is the timeline's latest word on the data sync: why it waits,
// for a job not started yet.
func (c card) ResyncNote() string {
	if c.Status.Resync != "owed" {
		return ""
	}
	for i := len(c.Status.History) - 1; i >= 0; i-- {
		if h := c.Status.History[i]; h.What == "resync" {
			return h.Detail
		}
	}
	return ""
}

// RefusedNote says what the list of failed requests (Status.Refused) is
// for: what the application runs again once the data is fresh.
func (c card) RefusedNote() string {
	switch {
	case c.Status.NeedsReauth:
		return "while it is broken: the app runs these again once it is reconnected and the data is fresh"
	case c.Status.Resync == "complete":
		return "while it was broken: the data is fresh now, run these again (Run a sync does)"
	}
	return "while it was broken: the app runs these again once the data is fresh"
}

// FreshNote says what the time the data was fresh as of
// (Status.DataFreshAt) means while it is not the data sync job's.
func (c card) FreshNote() string {
	switch {
	case c.Status.NeedsReauth:
		return "nothing newer until it is reconnected"
	case c.Status.Resync == "owed" || c.ResyncRunning():
		return "Finch's data sync job brings it up to date"
	}
	return ""
}

// Reminders is how many reminders went out in this episode.
func (c card) Reminders() int { return max(c.Status.Notifications-1, 0) }

// FinchSays is the fake Finch's own view of the connection, behind the
// scenes: what the application only learns from a 401 or a webhook.
func (c card) FinchSays() string {
	s := c.Finch.Status
	var broken []string
	for _, e := range c.Finch.Entities {
		if e.Status != "" && e.Status != "connected" {
			broken = append(broken, e.Name+": "+e.Status)
		}
	}
	if len(broken) > 0 {
		s += " (" + strings.Join(broken, ", ") + ")"
	}
	return s
}

type dashboardView struct {
	frame
	Outcome  *outcomeView
	Campaign *campaignView // nil until it starts
	Cards    []card
	Steps    []stepView
	Activity []entry
	Webhooks []finchtest.WebhookDelivery
}

func (d *demo) dashboard(w http.ResponseWriter, r *http.Request, o *outcomeView) {
	ctx := r.Context()
	v := dashboardView{frame: d.frame("Payroll connections", "dashboard"), Outcome: o, Steps: d.source.steps(), Activity: d.activity.recent(),
		Campaign: d.campaignPanel(ctx)}
	for _, c := range d.customers {
		st, err := d.tr.Status(ctx, c.ConnectionID)
		cd := newCard(c, st)
		if err != nil {
			cd.StatusErr = err.Error()
		}
		if tok, err := d.tr.Token(ctx, c.ConnectionID); err == nil {
			cd.Token = tok.String()
		}
		cd.Finch, _ = d.finch.Connection(c.ConnectionID)
		cd.Answer = d.answerOf(c.Key)
		d.mu.Lock()
		if s, ok := d.syncs[c.Key]; ok {
			cd.Sync = &s
		}
		d.mu.Unlock()
		v.Cards = append(v.Cards, cd)
	}
	hooks := d.finch.Webhooks()
	for i := len(hooks) - 1; i >= 0 && len(v.Webhooks) < 8; i-- {
		v.Webhooks = append(v.Webhooks, hooks[i])
	}
	d.render(w, "dashboard", v)
}

type inboxView struct {
	frame
	Mails []mail
}

func (d *demo) inboxPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, "inbox", inboxView{frame: d.frame("Inbox", "inbox"), Mails: d.inbox.all()})
}

type embeddedView struct {
	frame
	Customer *customer
	Status   finchreauth.Status
	State    string
	Err      string
}

// embeddedPage is the embedded flow: the page that, in production, opens
// Finch Connect in a modal with Finch's JavaScript SDK and hands the code it
// gets to the callback.
func (d *demo) embeddedPage(w http.ResponseWriter, r *http.Request) {
	c := d.customer(r.PathValue("customer"))
	if c == nil {
		http.NotFound(w, r)
		return
	}
	v := embeddedView{frame: d.frame("Embedded Connect: "+c.Name, "embedded"), Customer: c}
	st, err := d.tr.Status(r.Context(), c.ConnectionID)
	v.Status = st
	switch {
	case err != nil:
		v.Err = err.Error()
	case st.NeedsReauth:
		// The state that binds the reconnect to this connection travels on
		// the episode's link; the page hands it back with the code.
		link, err := d.tr.ReconnectURL(r.Context(), c.ConnectionID)
		if err != nil {
			v.Err = err.Error()
			break
		}
		if u, err := url.Parse(link); err == nil {
			v.State = u.Query().Get("state")
		}
	}
	d.render(w, "embedded", v)
}

type sourceView struct {
	frame
	Pkg, File, Func string
	Lines           []sourceLine
}

// sourcePage shows a source file of the library (or of the demo), with the
// function asked for highlighted.
func (d *demo) sourcePage(w http.ResponseWriter, r *http.Request) {
	pkg, file, fn := r.PathValue("pkg"), r.PathValue("file"), r.URL.Query().Get("func")
	src, err := d.source.read(pkg, file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	from, to := 0, -1
	if fn != "" {
		from, to, _ = d.source.locate(ref{Pkg: pkg, File: file, Func: fn})
	}
	v := sourceView{frame: d.frame(file, "source"), Pkg: pkg, File: file, Func: fn}
	for i, line := range strings.Split(strings.TrimSuffix(string(src), "\n"), "\n") {
		n := i + 1
		v.Lines = append(v.Lines, sourceLine{N: n, Text: line, Mark: n >= from && n <= to})
	}
	d.render(w, "source", v)
}
