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
	// empty when the whole connection needs reconnecting; WorkingEntities
	// is then empty too. An entity shows as its name, or its source id or
	// id when it has no name.
	BrokenEntities  []string
	WorkingEntities []string

	// ReconnectURL is Event.ReconnectURL when it is an absolute http or
	// https URL (with a host and no white space), and empty otherwise: the
	// default templates then tell the customer to sign in to their
	// dashboard.
	ReconnectURL string
}

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
