package message

import (
	"net/url"
	"slices"
	"strings"
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
	// of each of Connection.Products), such as "pay statements".
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
}

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
	if d.Fix == fixPayroll {
		d.ReconnectURL = ""
	}
	if !e.Since.IsZero() {
		d.BrokenSince = e.Since.Format("January 2, 2006")
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
