package message_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

func TestNewData(t *testing.T) {
	d := message.NewData(reminderEvent())
	want := message.Data{
		Event:           reminderEvent(),
		Customer:        "Northwind Holdings",
		Provider:        "ADP Workforce Now",
		Reminder:        3,
		BrokenSince:     "March 3, 2025",
		BrokenFor:       "3 days",
		Products:        []string{"employee directory", "pay statements", "Social Security numbers", "deductions and contributions", "employee documents"},
		BrokenEntities:  []string{"Northwind West LLC"},
		WorkingEntities: []string{"Northwind East LLC"},
		Fix:             "connect",
		Problem:         "ADP Workforce Now no longer accepts the sign-in your payroll connection uses, so we can't collect your data.",
		Action:          "reconnect your ADP Workforce Now payroll connection",
		ReconnectURL:    reminderEvent().ReconnectURL,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("NewData =\n%+v\nwant\n%+v", d, want)
	}
}

func TestNewDataEntities(t *testing.T) {
	tests := []struct {
		name            string
		entities        []finchreauth.Entity
		broken, working []string
	}{
		{"none listed", nil, nil, nil},
		{"all connected: the whole connection is broken", []finchreauth.Entity{
			{ID: "e1", Name: "One", Status: "connected"},
			{ID: "e2", Name: "Two", Status: "connected"},
		}, nil, nil},
		{"all broken: the whole connection is", []finchreauth.Entity{
			{ID: "e1", Name: "One", Status: "reauth"},
			{ID: "e2", Name: "Two", Status: "disconnected"},
		}, nil, nil},
		{"one entity, broken: the whole connection is", []finchreauth.Entity{
			{ID: "e1", Name: "Acme Corp", Status: "reauth"},
		}, nil, nil},
		{"statuses", []finchreauth.Entity{
			{ID: "e1", Name: "One", Status: "connected"},
			{ID: "e2", Name: "Two", Status: "reauth"},
			{ID: "e3", Name: "Three", Status: "disconnected"},
			{ID: "e4", Name: "Four", Status: "pending"},
			{ID: "e5", Name: "Five"},
		}, []string{"Two", "Three"}, []string{"One"}},
		{"names fall back to source id, then id", []finchreauth.Entity{
			{ID: "e1", SourceID: "src-1", Status: "reauth"},
			{ID: "e2", Name: "  ", Status: "reauth"},
			{Status: "connected"},
		}, []string{"src-1", "e2"}, []string{"unnamed entity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := firstEvent()
			e.Connection.Entities = tt.entities
			d := message.NewData(e)
			if !slices.Equal(d.BrokenEntities, tt.broken) || !slices.Equal(d.WorkingEntities, tt.working) {
				t.Errorf("broken %q, working %q; want %q, %q", d.BrokenEntities, d.WorkingEntities, tt.broken, tt.working)
			}
		})
	}
}

func TestNewDataProducts(t *testing.T) {
	e := firstEvent()
	e.Connection.Products = []string{"pay_statement", "", " ", "time_off", "pay_statement", "time_off"}
	if got, want := message.NewData(e).Products, []string{"pay statements", "time off"}; !slices.Equal(got, want) {
		t.Errorf("Products = %q, want %q", got, want)
	}
	e.Connection.Products = nil
	if got := message.NewData(e).Products; got != nil {
		t.Errorf("Products = %q for none, want nil", got)
	}
}

func TestNewDataProvider(t *testing.T) {
	for id, want := range map[string]string{
		"":                  "",
		"gusto":             "Gusto",
		"adp_run":           "ADP Run",
		"adp_workforce_now": "ADP Workforce Now",
		"bamboo_hr":         "BambooHR",
		"paychex_flex":      "Paychex Flex",
		"quickbooks":        "QuickBooks",
		"trinet":            "TriNet",
		"sage_hr":           "Sage Hr",
		"émile_payroll":     "Émile Payroll",
	} {
		e := firstEvent()
		e.Connection.ProviderID = id
		if got := message.NewData(e).Provider; got != want {
			t.Errorf("Provider for %q = %q, want %q", id, got, want)
		}
	}
}

func TestNewDataTimes(t *testing.T) {
	pst := time.FixedZone("PST", -8*3600)
	late := time.Date(2025, time.March, 3, 2, 0, 0, 0, time.UTC) // March 2 in PST
	tests := []struct {
		name      string
		since, at time.Time
		sinceDay  string
		brokenFor string
	}{
		{"utc", late, late.Add(26 * time.Hour), "March 3, 2025", "1 day"},
		{"in Since's location", late.In(pst), late.Add(26 * time.Hour), "March 2, 2025", "1 day"},
		{"no At", late, time.Time{}, "March 3, 2025", ""},
		{"no Since", time.Time{}, late, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := firstEvent()
			e.Since, e.At = tt.since, tt.at
			d := message.NewData(e)
			if d.BrokenSince != tt.sinceDay || d.BrokenFor != tt.brokenFor {
				t.Errorf("BrokenSince %q, BrokenFor %q; want %q, %q", d.BrokenSince, d.BrokenFor, tt.sinceDay, tt.brokenFor)
			}
		})
	}
}

func TestNewDataCustomer(t *testing.T) {
	e := firstEvent()
	e.Connection.CustomerName = "  Acme Inc.\n"
	if got := message.NewData(e).Customer; got != "Acme Inc." {
		t.Errorf("Customer = %q, want it trimmed", got)
	}
}

func TestNewDataFix(t *testing.T) {
	tests := []struct {
		status   string
		assisted bool
		provider string
		fix      string
		action   string
		link     bool // Data.ReconnectURL is the Event's
	}{
		{"", false, "gusto", "connect", "reconnect your Gusto payroll connection", true},
		{"reauth", false, "gusto", "connect", "reconnect your Gusto payroll connection", true},
		{"reauth", false, "", "connect", "reconnect your payroll connection", true},
		{"pending", false, "gusto", "connect", "reconnect your Gusto payroll connection", true},
		{"error_no_account_setup", true, "gusto", "payroll", "create the admin user you promised Finch in Gusto", false},
		{"error_no_account_setup", false, "", "payroll", "create the admin user you promised Finch in your payroll system", false},
		{"error_permissions", true, "adp_run", "payroll", "add Finch back as an admin with the permissions it needs in ADP Run", false},
		{"error_permissions", false, "gusto", "payroll", "add Finch back as an admin with the permissions it needs in Gusto", false},
		{"reauth", true, "gusto", "payroll", "make sure the admin user you created for Finch in Gusto is active and can sign in", false},
		{"", true, "", "payroll", "make sure the admin user you created for Finch in your payroll system is active and can sign in", false},
	}
	for _, tt := range tests {
		e := firstEvent()
		e.Status, e.Connection.Assisted, e.Connection.ProviderID = tt.status, tt.assisted, tt.provider
		d := message.NewData(e)
		if d.Fix != tt.fix || d.Action != tt.action {
			t.Errorf("%q assisted=%v %q: Fix %q, Action %q; want %q, %q", tt.status, tt.assisted, tt.provider, d.Fix, d.Action, tt.fix, tt.action)
		}
		if d.Problem == "" || !strings.HasSuffix(d.Problem, ".") || strings.ToUpper(d.Problem[:1]) != d.Problem[:1] {
			t.Errorf("%q assisted=%v: Problem %q is not a sentence", tt.status, tt.assisted, d.Problem)
		}
		if got := d.ReconnectURL != ""; got != tt.link {
			t.Errorf("%q assisted=%v: ReconnectURL %q", tt.status, tt.assisted, d.ReconnectURL)
		}
	}
}

func TestNewDataRequests(t *testing.T) {
	tests := []struct {
		name               string
		e                  finchreauth.Event
		request            string
		grant, products    []string
		deadline, daysLeft string
	}{
		{"upgrade", upgradeEvent(), "upgrade", []string{"benefits", "deductions and contributions"},
			[]string{"company information", "employee directory", "pay statements"}, "", ""},
		{"campaign", campaignEvent(), "campaign", nil,
			[]string{"employee directory", "pay statements", "Social Security numbers", "deductions and contributions", "employee documents"}, "April 1, 2025", "7 days"},
		{"campaign a second before its deadline", func() finchreauth.Event {
			e := campaignEvent()
			e.At = campaignDeadline.Add(-time.Second)
			return e
		}(), "campaign", nil, reminderData().Products, "April 1, 2025", "1 day"},
		{"campaign at its deadline", func() finchreauth.Event {
			e := campaignEvent()
			e.At = campaignDeadline
			return e
		}(), "campaign", nil, reminderData().Products, "April 1, 2025", ""},
		{"unknown request", func() finchreauth.Event {
			e := firstEvent()
			e.Request, e.Products = "later", []string{"benefits"}
			return e
		}(), "", nil, message.NewData(firstEvent()).Products, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := message.NewData(tt.e)
			if d.Request != tt.request || !slices.Equal(d.Grant, tt.grant) || !slices.Equal(d.Products, tt.products) || d.Deadline != tt.deadline || d.DaysLeft != tt.daysLeft {
				t.Errorf("Request %q, Grant %q, Products %q, Deadline %q, DaysLeft %q; want %q, %q, %q, %q, %q",
					d.Request, d.Grant, d.Products, d.Deadline, d.DaysLeft, tt.request, tt.grant, tt.products, tt.deadline, tt.daysLeft)
			}
			if d.Escalation || d.LastNotice {
				t.Errorf("Escalation %v, LastNotice %v for a request", d.Escalation, d.LastNotice)
			}
		})
	}
}

func reminderData() message.Data { return message.NewData(reminderEvent()) }

func TestNewDataLastNoticeAndEscalation(t *testing.T) {
	e := lastNoticeEvent()
	e.Escalation = true
	pst := time.FixedZone("PST", -8*3600)
	e.DisconnectAt = time.Date(2025, time.April, 2, 3, 0, 0, 0, time.UTC).In(pst) // April 1 in PST
	d := message.NewData(e)
	if !d.LastNotice || !d.Escalation || d.DisconnectOn != "April 1, 2025" || d.Request != "" {
		t.Errorf("LastNotice %v, Escalation %v, DisconnectOn %q, Request %q; want true, true, April 1, 2025, none", d.LastNotice, d.Escalation, d.DisconnectOn, d.Request)
	}
	e.LastNotice = false
	if d := message.NewData(e); d.LastNotice || d.DisconnectOn != "" {
		t.Errorf("without LastNotice: LastNotice %v, DisconnectOn %q", d.LastNotice, d.DisconnectOn)
	}
}
