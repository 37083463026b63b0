package message_test

import (
	"fmt"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

func ExampleRender() {
	since := time.Date(2025, time.March, 3, 14, 5, 0, 0, time.UTC)
	e := finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_acme",
			CustomerName: "Acme Inc.",
			ProviderID:   "gusto",
			Products:     []string{"directory", "pay_statement"},
		},
		Episode:      "ep_acme_1",
		Since:        since,
		At:           since.Add(72 * time.Hour),
		Reminder:     2,
		ReconnectURL: "https://connect.tryfinch.com/authorize?connection_id=conn_acme",
	}
	m, err := message.Render(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Subject:", m.Subject)
	fmt.Println()
	lines := strings.Split(m.Text, "\n")
	fmt.Println(strings.Join(lines[:7], "\n"))
	// Output:
	// Subject: Reminder: reconnect your Gusto payroll connection for Acme Inc.
	//
	// Hello Acme Inc.,
	//
	// This is a reminder: your payroll connection to Gusto still needs to be reconnected. It has been broken for 3 days, since March 3, 2025.
	//
	// Until you reconnect, we can't sync:
	//   - employee directory
	//   - pay statements
}

// An assisted connection whose admin user lost its permissions: the
// employer fixes it in their payroll system, and the message has no link.
func ExampleRender_permissions() {
	since := time.Date(2025, time.March, 3, 14, 5, 0, 0, time.UTC)
	e := finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_umbrella",
			CustomerName: "Umbrella Corp",
			ProviderID:   "trinet",
			Products:     []string{"directory", "pay_statement"},
			Assisted:     true,
		},
		Episode: "ep_umbrella_1",
		Since:   since,
		At:      since,
		Status:  "error_permissions", // Event.ReconnectURL is empty
	}
	m, err := message.Render(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Subject:", m.Subject)
	fmt.Println()
	lines := strings.Split(m.Text, "\n")
	fmt.Println(strings.Join(lines[:11], "\n"))
	fmt.Println(strings.Contains(m.HTML, "href"))
	// Output:
	// Subject: Action needed in your TriNet account for Umbrella Corp
	//
	// Hello Umbrella Corp,
	//
	// Your payroll connection to TriNet needs your action. Finch's admin user in TriNet no longer has the permissions it needs, so Finch can't collect your data. We noticed it on March 3, 2025.
	//
	// Until this is fixed, we can't sync:
	//   - employee directory
	//   - pay statements
	//
	// What to do:
	// Please add Finch back as an admin with the permissions it needs in TriNet.
	//
	// false
}

// A request made while the connection works (Transport.RequestProducts):
// the message asks the employer to grant the products the connection
// lacks, and says that it keeps working meanwhile.
func ExampleRender_upgrade() {
	e := finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_acme",
			CustomerName: "Acme Inc.",
			ProviderID:   "gusto",
			Products:     []string{"directory", "pay_statement"},
		},
		Episode:      "req_acme_1",
		Since:        time.Date(2025, time.March, 3, 14, 5, 0, 0, time.UTC),
		At:           time.Date(2025, time.March, 3, 14, 5, 0, 0, time.UTC),
		Status:       "reauth",
		Request:      "upgrade",
		Products:     []string{"directory", "pay_statement", "benefits"},
		ReconnectURL: "https://connect.tryfinch.com/authorize?connection_id=conn_acme",
	}
	m, err := message.Render(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Subject:", m.Subject)
	fmt.Println()
	lines := strings.Split(m.Text, "\n")
	fmt.Println(strings.Join(lines[:13], "\n"))
	// Output:
	// Subject: Grant access to benefits in your Gusto payroll connection for Acme Inc.
	//
	// Hello Acme Inc.,
	//
	// We'd like to sync more of your payroll data. Your Gusto payroll connection works, but it does not give us access to benefits yet.
	//
	// Please grant access to:
	//   - benefits
	//
	// Meanwhile, your connection keeps working, and we keep syncing:
	//   - employee directory
	//   - pay statements
	//
	// What to do:
	// Please reconnect your Gusto payroll connection and grant access to benefits.
}

// A campaign's reminder (Transport.StartCampaign) counts down to its
// deadline.
func ExampleRender_campaign() {
	deadline := time.Date(2025, time.April, 1, 17, 0, 0, 0, time.UTC)
	m, err := message.Render(finchreauth.Event{
		Connection: finchreauth.Connection{ConnectionID: "conn_acme", CustomerName: "Acme Inc.", ProviderID: "gusto"},
		At:         deadline.Add(-3 * 24 * time.Hour),
		Reminder:   3,
		Status:     "reauth",
		Request:    "campaign",
		Campaign:   "gusto-2025",
		Deadline:   deadline,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Subject)
	// Output:
	// Reminder: 3 days left to reconnect your Gusto payroll connection for Acme Inc.
}

func ExampleTemplates() {
	t := &message.Templates{
		// Only the subject is replaced: the bodies stay the defaults.
		Subject: texttemplate.Must(texttemplate.New("subject").Parse(
			`Action needed: {{.Provider}} stopped syncing{{with .Products}} {{index . 0}} and more{{end}}`)),
	}
	m, err := t.Render(finchreauth.Event{
		Connection: finchreauth.Connection{ConnectionID: "conn_acme", ProviderID: "paychex_flex", Products: []string{"payment", "benefits"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Subject)
	fmt.Println(strings.Contains(m.Text, "sign in to your dashboard"))
	// Output:
	// Action needed: Paychex Flex stopped syncing payroll payments and more
	// true
}
