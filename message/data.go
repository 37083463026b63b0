package message

import (
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/finchkit/finchreauth"
)

// Data is what the templates receive: the Event, and what the default
// templates show, already in words. A field is empty when the Event does not
// say (Finch did not list products or entities, or the Event has no link).
type Data struct {
	// Event is the Event the message is for, for anything the other
	// fields do not carry (Event.Connection.ProviderID, Event.Episode).
	Event finchreauth.Event

	// Customer is the customer's name (Connection.CustomerName, trimmed).
	Customer string
	// Provider is the payroll provider's display name ("Gusto", "ADP
	// Workforce Now"); a provider id the package does not know shows with
	// underscores as spaces and each word capitalised.
	Provider string

	// Reminder is Event.Reminder: 0 for the first notification, n for the
	// n-th reminder.
	Reminder int
	// BrokenSince is the day the connection broke (Event.Since), such as
	// "March 3, 2025", in the location of Event.Since: to show another
	// time zone, set Event.Since to Event.Since.In(loc) before rendering.
	BrokenSince string
	// BrokenFor is how long the connection has been broken, in words
	// (FormatAge of Event.Age()), such as "3 days".
	BrokenFor string

	// Products are the products that stop syncing, in words (ProductName
	// of each of Connection.Products), such as "pay statements"; for a
	// Request, those that keep syncing.
	Products []string

	// BrokenEntities are the names of the entities of a multi-entity
	// connection that need reconnecting (Event.BrokenEntities()), and
	// WorkingEntities those whose status is "connected". BrokenEntities is
	// empty when the whole connection needs reconnecting (every entity
	// does, or Finch listed none); WorkingEntities is then empty too. An entity shows as its name, or its source id or
	// id when it has no name.
	BrokenEntities  []string
	WorkingEntities []string

	// Fix is where the employer repairs the connection: "payroll" (in
	// their payroll system, signed in as an administrator: Event.Status
	// "error_no_account_setup" or "error_permissions", or an assisted
	// connection, Event.Connection.Assisted, whatever its status; there
	// is no link) or "connect" (through Finch Connect: Event.Status
	// "reauth", empty, or a value the package does not know).
	Fix string
	// Problem says in a sentence why the connection stopped syncing, and
	// Action what the employer must do, as a clause that follows "Please"
	// (no capital, no period), naming the provider, or "your payroll
	// system" when Provider is empty:
	//
	//	error_no_account_setup  create the admin user you promised Finch in Gusto
	//	error_permissions       add Finch back as an admin with the permissions it needs in Gusto
	//	reauth, assisted        make sure the admin user you created for Finch in Gusto is active and can sign in
	//	reauth                  reconnect your Gusto payroll connection
	Problem, Action string

	// ReconnectURL is Event.ReconnectURL when it is an absolute http or
	// https URL (with a host and no white space) and Fix is "connect", and
	// empty otherwise: the default templates then tell the customer to
	// sign in to their dashboard (for "connect") or show no link at all
	// (for "payroll": Finch Connect cannot repair it).
	ReconnectURL string

	// Request is Event.Request when the package knows it, and empty
	// otherwise: "upgrade" (the employer is asked to grant more products;
	// the connection keeps working meanwhile, and Products are those that
	// keep syncing) or "campaign" (the employer is asked to reconnect a
	// working connection before Deadline). Empty means the connection is
	// broken.
	Request string
	// Grant are the products an upgrade asks the employer to grant, in
	// words: those of Event.Products the connection does not grant yet
	// (Connection.Products), or every one of Event.Products when that
	// leaves none or Finch did not list what the connection grants.
	// GrantWords are they as one phrase ("payroll payments and pay
	// statements"), for a subject line.
	Grant      []string
	GrantWords string
	// Deadline is the day a campaign ends (Event.Deadline), in its
	// location, and DaysLeft how long is left at Event.At, in whole days
	// rounded up ("7 days"): empty when the deadline has passed or the
	// Event has no At.
	Deadline, DaysLeft string

	// LastNotice is Event.LastNotice: the last message of the episode.
	// Unless the employer repairs the connection, the application
	// disconnects it on DisconnectOn (the day of Event.DisconnectAt, in
	// its location; empty when the Event does not say) and sends nothing
	// more.
	LastNotice   bool
	DisconnectOn string
	// Escalation is Event.Escalation: the one message of the episode fit
	// to send to a second contact as well. The default templates say how
	// long the connection has waited and ask to forward it to whoever
	// looks after payroll.
	Escalation bool
}

// Data.Request's values.
const (
	requestUpgrade  = "upgrade"
	requestCampaign = "campaign"
)

// Data.Fix's values.
const (
	fixConnect = "connect"
	fixPayroll = "payroll"
)

// NewData returns the Data the templates receive for e.
func NewData(e finchreauth.Event) Data {
	c := e.Connection
	d := Data{
		Event:        e,
		Customer:     strings.TrimSpace(c.CustomerName),
		Provider:     providerName(c.ProviderID),
		Reminder:     e.Reminder,
		ReconnectURL: webURL(e.ReconnectURL),
	}
	d.Fix, d.Problem, d.Action = remedy(e.Status, e.Connection.Assisted, d.Provider)
	switch e.Request {
	case requestUpgrade:
		d.Request = e.Request
		d.Grant = grant(e.Products, c.Products)
		d.GrantWords = joinWords(d.Grant)
		d.Problem, d.Action = upgradeWords(d.Fix, d.Provider, d.Grant)
	case requestCampaign:
		d.Request = e.Request
		if !e.Deadline.IsZero() {
			d.Deadline = e.Deadline.Format(dayLayout)
			if !e.At.IsZero() && e.Deadline.After(e.At) {
				d.DaysLeft = plural(int64((e.Deadline.Sub(e.At)+24*time.Hour-1)/(24*time.Hour)), "day")
			}
		}
		d.Problem, d.Action = campaignWords(d.Fix, d.Provider, d.Deadline)
	default:
		d.Escalation = e.Escalation
		d.LastNotice = e.LastNotice
		if e.LastNotice && !e.DisconnectAt.IsZero() {
			d.DisconnectOn = e.DisconnectAt.Format(dayLayout)
		}
	}
	if d.Fix == fixPayroll {
		d.ReconnectURL = ""
	}
	if !e.Since.IsZero() {
		d.BrokenSince = e.Since.Format(dayLayout)
		if !e.At.IsZero() {
			d.BrokenFor = FormatAge(e.Age())
		}
	}
	for _, p := range c.Products {
		if n := ProductName(p); n != "" && !slices.Contains(d.Products, n) {
			d.Products = append(d.Products, n)
		}
	}
	broken := e.BrokenEntities()
	if len(broken) == len(c.Entities) {
		broken = nil // every entity: the whole connection
	}
	for _, en := range broken {
		d.BrokenEntities = append(d.BrokenEntities, entityName(en))
	}
	if len(broken) > 0 {
		for _, en := range c.Entities {
			if en.Status == "connected" {
				d.WorkingEntities = append(d.WorkingEntities, entityName(en))
			}
		}
	}
	return d
}

// dayLayout is how a day shows: "March 3, 2025".
const dayLayout = "January 2, 2006"

// grant returns, in words, the products of asked not in have, or every one
// of asked when that leaves none.
func grant(asked, have []string) []string {
	var all, missing []string
	for _, p := range asked {
		n := ProductName(p)
		if n == "" || slices.Contains(all, n) {
			continue
		}
		all = append(all, n)
		if !slices.ContainsFunc(have, func(h string) bool { return ProductName(h) == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return all
	}
	return missing
}

// upgradeWords returns why an upgrade asks the employer and what to do, as
// remedy does: the connection works; it lacks the products of grant.
func upgradeWords(fix, provider string, grant []string) (problem, action string) {
	what := joinWords(grant)
	if what == "" {
		what = "more of your payroll data"
	}
	if fix == fixPayroll {
		system := "your payroll system"
		if provider != "" {
			system = provider
		}
		return "Your payroll connection works, but Finch's admin user in " + system + " can't reach " + what + " yet.",
			"give the admin user you created for Finch in " + system + " access to " + what
	}
	if provider == "" {
		return "Your payroll connection works, but it does not give us access to " + what + " yet.",
			"reconnect your payroll connection and grant access to " + what
	}
	return "Your " + provider + " payroll connection works, but it does not give us access to " + what + " yet.",
		"reconnect your " + provider + " payroll connection and grant access to " + what
}

// campaignWords returns why a campaign asks the employer and what to do, as
// remedy does: the connection works, and must be reconnected before
// deadline (a day in words, or empty).
func campaignWords(fix, provider, deadline string) (problem, action string) {
	by := ""
	if deadline != "" {
		by = " before " + deadline
	}
	conns := "payroll connections"
	if provider != "" {
		conns = provider + " payroll connections"
	}
	problem = "Your payroll connection works today, but we are asking every one of our " + conns + " to be reconnected, so that your data keeps syncing without a break."
	if fix == fixPayroll {
		system := "your payroll system"
		if provider != "" {
			system = provider
		}
		return problem, "make sure the admin user you created for Finch in " + system + " is active and can sign in" + by
	}
	if provider == "" {
		return problem, "reconnect your payroll connection" + by
	}
	return problem, "reconnect your " + provider + " payroll connection" + by
}

// joinWords joins words as a sentence lists them: "a", "a and b",
// "a, b, and c"; two words of which one has an "and" of its own
// ("deductions and contributions") are joined by "as well as".
func joinWords(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	case 2:
		if strings.Contains(words[0], " and ") || strings.Contains(words[1], " and ") {
			return words[0] + " as well as " + words[1]
		}
		return words[0] + " and " + words[1]
	}
	return strings.Join(words[:len(words)-1], ", ") + ", and " + words[len(words)-1]
}

// remedy returns where the employer fixes a connection in need status
// (Event.Status), why it broke and what to do, in words naming provider.
func remedy(status string, assisted bool, provider string) (fix, problem, action string) {
	system := "your payroll system"
	if provider != "" {
		system = provider
	}
	in := "in " + system
	switch {
	case status == "error_no_account_setup":
		return fixPayroll, "The admin user you promised Finch " + in + " has not been created, so Finch can't sign in to collect your data.",
			"create the admin user you promised Finch " + in
	case status == "error_permissions":
		return fixPayroll, "Finch's admin user " + in + " no longer has the permissions it needs, so Finch can't collect your data.",
			"add Finch back as an admin with the permissions it needs " + in
	case assisted:
		return fixPayroll, "Finch can no longer sign in to " + system + " with the admin user you created for it, so it can't collect your data.",
			"make sure the admin user you created for Finch " + in + " is active and can sign in"
	}
	if provider == "" {
		return fixConnect, "Your payroll provider no longer accepts the sign-in your payroll connection uses, so we can't collect your data.",
			"reconnect your payroll connection"
	}
	return fixConnect, provider + " no longer accepts the sign-in your payroll connection uses, so we can't collect your data.",
		"reconnect your " + provider + " payroll connection"
}

func entityName(en finchreauth.Entity) string {
	for _, s := range []string{en.Name, en.SourceID, en.ID} {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return "unnamed entity"
}

// webURL returns s if it is an absolute http or https URL, and "" otherwise.
// A URL with white space in it is not one: it would end early in a text body.
func webURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || strings.ContainsFunc(s, unicode.IsSpace) {
		return ""
	}
	return s
}
