package message_test

import (
	"errors"
	"flag"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var since = time.Date(2025, time.March, 3, 14, 5, 0, 0, time.UTC)

// firstEvent is the first notification of an episode, with a link.
func firstEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID:  "conn_acme",
			CustomerID:    "cust_acme",
			CustomerName:  "Acme Inc.",
			CustomerEmail: "payroll@acme.example",
			ProviderID:    "gusto",
			Products:      []string{"company", "directory", "individual", "employment", "payment", "pay_statement", "benefits"},
		},
		Episode:      "ep_acme_1",
		Since:        since,
		At:           since.Add(2 * time.Second),
		Source:       "detection",
		ReconnectURL: "https://connect.tryfinch.com/authorize?client_id=cli_123&connection_id=conn_acme&products=company+directory&state=st_abc",
	}
}

// reminderEvent is the third reminder for a multi-entity connection with one
// entity broken, three days in.
func reminderEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_northwind",
			CustomerName: "Northwind Holdings",
			ProviderID:   "adp_workforce_now",
			Products:     []string{"directory", "pay_statement", "ssn", "deduction", "documents"},
			Entities: []finchreauth.Entity{
				{ID: "ent_east", Name: "Northwind East LLC", Status: "connected"},
				{ID: "ent_west", Name: "Northwind West LLC", Status: "reauth"},
			},
		},
		Episode:      "ep_northwind_1",
		Since:        since,
		At:           since.Add(72*time.Hour + 15*time.Minute),
		Reminder:     3,
		Source:       "reminder",
		ReconnectURL: "https://connect.tryfinch.com/authorize?client_id=cli_123&connection_id=conn_northwind&state=st_def",
	}
}

// noLinkEvent has no link, products the package does not know, and no
// customer name.
func noLinkEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_anon",
			ProviderID:   "paychex_flex",
			Products:     []string{"time_off", "org_chart"},
		},
		Episode: "ep_anon_1",
		Since:   since,
		At:      since.Add(5 * time.Minute),
		Source:  "webhook",
	}
}

// permissionsEvent is the first notification for an assisted connection
// whose admin user lost its permissions: the employer fixes it in TriNet.
func permissionsEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID:  "conn_umbrella",
			CustomerName:  "Umbrella Corp",
			CustomerEmail: "hr@umbrella.example",
			ProviderID:    "trinet",
			Products:      []string{"company", "directory", "payment", "pay_statement"},
			Assisted:      true,
		},
		Episode: "ep_umbrella_1",
		Since:   since,
		At:      since.Add(3 * time.Second),
		Source:  "webhook",
		Status:  "error_permissions",
	}
}

// noAccountSetupEvent is the second reminder, eight days in, for an assisted
// connection whose admin user was never created.
func noAccountSetupEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_hooli",
			CustomerName: "Hooli",
			ProviderID:   "adp_run",
			Products:     []string{"directory", "benefits"},
			Assisted:     true,
		},
		Episode:  "ep_hooli_1",
		Since:    since,
		At:       since.Add(8 * 24 * time.Hour),
		Reminder: 2,
		Source:   "reminder",
		Status:   "error_no_account_setup",
	}
}

// assistedEvent is an assisted connection in reauth, one of its entities
// broken, with a provider the package does not know, no products listed,
// and a link a LinkBuilder made anyway: Connect cannot repair an assisted
// connection, so the message leaves the link out.
func assistedEvent() finchreauth.Event {
	return finchreauth.Event{
		Connection: finchreauth.Connection{
			ConnectionID: "conn_stark",
			CustomerName: "Stark Industries",
			ProviderID:   "",
			Assisted:     true,
			Entities: []finchreauth.Entity{
				{ID: "ent_ny", Name: "Stark New York", Status: "reauth"},
				{ID: "ent_ca", Name: "Stark California", Status: "connected"},
			},
		},
		Episode:      "ep_stark_1",
		Since:        since,
		At:           since.Add(time.Minute),
		Source:       "detection",
		Status:       "reauth",
		ReconnectURL: "https://connect.tryfinch.com/authorize?connection_id=conn_stark&state=st_ghi",
	}
}

// upgradeEvent asks Acme to grant two products its connection lacks: the
// connection works, and keeps syncing the products it has.
func upgradeEvent() finchreauth.Event {
	e := firstEvent()
	e.Connection.Products = []string{"company", "directory", "pay_statement"}
	e.Episode = "req_acme_upgrade"
	e.Source = "request"
	e.Status = "reauth"
	e.Request = "upgrade"
	e.Products = []string{"company", "directory", "pay_statement", "benefits", "deduction"}
	e.ReconnectURL = "https://connect.tryfinch.com/authorize?client_id=cli_123&connection_id=conn_acme&products=company+directory+pay_statement+benefits+deduction&state=st_up"
	return e
}

// campaignDeadline is when campaignEvent's campaign ends.
var campaignDeadline = time.Date(2025, time.April, 1, 17, 0, 0, 0, time.UTC)

// campaignEvent is a campaign's second reminder, seven days (and a few
// seconds less) before its deadline.
func campaignEvent() finchreauth.Event {
	e := reminderEvent()
	e.Connection.Entities = nil
	e.Episode = "req_northwind_campaign"
	e.Since = since
	e.At = campaignDeadline.Add(-7*24*time.Hour + 30*time.Second)
	e.Reminder = 2
	e.Source = "reminder"
	e.Status = "reauth"
	e.Request = "campaign"
	e.Campaign = "adp-wfn-2025"
	e.Deadline = campaignDeadline
	return e
}

// lastNoticeEvent is the last message of an episode the application
// abandons: the connection is disconnected on April 2, 2025.
func lastNoticeEvent() finchreauth.Event {
	e := firstEvent()
	e.At = since.Add(27 * 24 * time.Hour)
	e.Reminder = 4
	e.Source = "reminder"
	e.LastNotice = true
	e.DisconnectAt = since.Add(30 * 24 * time.Hour)
	return e
}

// escalationEvent is the third reminder, fourteen days in, and the
// episode's escalation: it goes to a second contact as well.
func escalationEvent() finchreauth.Event {
	e := firstEvent()
	e.At = since.Add(14*24*time.Hour + time.Hour)
	e.Reminder = 3
	e.Source = "reminder"
	e.Escalation = true
	return e
}

// allEvents is one event of each kind the golden files show.
func allEvents() []finchreauth.Event {
	return []finchreauth.Event{firstEvent(), reminderEvent(), noLinkEvent(), permissionsEvent(), noAccountSetupEvent(), assistedEvent(),
		upgradeEvent(), campaignEvent(), lastNoticeEvent(), escalationEvent()}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name    string
		e       finchreauth.Event
		subject string
	}{
		{"first", firstEvent(), "Reconnect your Gusto payroll connection for Acme Inc."},
		{"reminder", reminderEvent(), "Reminder: reconnect your ADP Workforce Now payroll connection for Northwind Holdings"},
		{"nolink", noLinkEvent(), "Reconnect your Paychex Flex payroll connection"},
		{"permissions", permissionsEvent(), "Action needed in your TriNet account for Umbrella Corp"},
		{"noaccount", noAccountSetupEvent(), "Reminder: action needed in your ADP Run account for Hooli"},
		{"assisted", assistedEvent(), "Action needed in your payroll system for Stark Industries"},
		{"upgrade", upgradeEvent(), "Grant access to benefits as well as deductions and contributions in your Gusto payroll connection for Acme Inc."},
		{"campaign", campaignEvent(), "Reminder: 7 days left to reconnect your ADP Workforce Now payroll connection for Northwind Holdings"},
		{"lastnotice", lastNoticeEvent(), "Last notice: your Gusto payroll connection for Acme Inc. will be disconnected on April 2, 2025"},
		{"escalation", escalationEvent(), "Still not reconnected after 14 days: your Gusto payroll connection for Acme Inc."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := message.Render(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			golden(t, tt.name+".txt.golden", m.Text)
			golden(t, tt.name+".html.golden", m.HTML)
		})
	}
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the output (run go test -update to rewrite it); got:\n%s", path, got)
	}
}

func TestRenderContent(t *testing.T) {
	tests := []struct {
		name         string
		e            finchreauth.Event
		want, reject []string // in both the text and the HTML
	}{
		{"first", firstEvent(),
			[]string{"Acme Inc.", "to Gusto needs to be reconnected", "March 3, 2025", "pay statements", "employee directory", "keep your data syncing", "connection_id=conn_acme"},
			[]string{"reminder", "broken for", "sign in to your dashboard", "Needs reconnecting", "Still working"}},
		{"reminder", reminderEvent(),
			[]string{"This is a reminder", "broken for", "3 days", "since March 3, 2025", "Needs reconnecting", "Northwind West LLC", "Still working", "Northwind East LLC", "Social Security numbers", "connection_id=conn_northwind"},
			[]string{"sign in to your dashboard"}},
		{"nolink", noLinkEvent(),
			[]string{"Hello,", "sign in to your dashboard", "time off", "org chart"},
			[]string{"Reconnect here", "href", "time_off", "Hello ,"}},
		{"permissions", permissionsEvent(),
			[]string{"Umbrella Corp", "to TriNet needs your action", "no longer has the permissions it needs", "March 3, 2025",
				"Please add Finch back as an admin with the permissions it needs in TriNet.", "done in TriNet itself", "pay statements"},
			[]string{"href", "Reconnect here", "reconnect your", "sign in to your dashboard", "reminder", "Affected"}},
		{"no account setup", noAccountSetupEvent(),
			[]string{"This is a reminder", "ADP Run", "has not been created", "waiting for you for", "8 days",
				"Please create the admin user you promised Finch in ADP Run.", "benefits"},
			[]string{"href", "Reconnect here", "sign in to your dashboard"}},
		{"assisted", assistedEvent(),
			[]string{"Stark Industries", "your payroll system", "is active and can sign in", "Affected", "Stark New York", "Still working", "Stark California", "we can't sync your payroll data"},
			[]string{"href", "conn_stark", "st_ghi", "Reconnect here", "sign in to your dashboard", "Needs reconnecting"}},

		// A request: the connection works, so nothing says it is broken.
		{"upgrade", upgradeEvent(),
			[]string{"Acme Inc.", "grant access to benefits as well as deductions and contributions", "keeps working", "company information", "pay statements", "Grant access", "st_up"},
			[]string{"broken", "stopped syncing", "can't sync", "needs to be reconnected", "reminder", "employment and income details", "disconnected"}},
		{"upgrade reminder without a link", func() finchreauth.Event {
			e := upgradeEvent()
			e.Reminder, e.Source, e.ReconnectURL = 1, "reminder", ""
			e.Connection.Products = nil // Finch did not say: every product asked for is listed
			return e
		}(),
			[]string{"This is a reminder: we asked you on March 3, 2025", "company information", "deductions and contributions", "keeps working as it does today", "sign in to your dashboard"},
			[]string{"broken", "stopped syncing", "href"}},
		{"upgrade of an assisted connection", func() finchreauth.Event {
			e := upgradeEvent()
			e.Connection.Assisted = true
			return e
		}(),
			[]string{"give the admin user you created for Finch in Gusto access to benefits as well as deductions and contributions", "no link to follow"},
			[]string{"broken", "href", "st_up", "sign in to your dashboard"}},
		{"campaign", campaignEvent(),
			[]string{"Northwind Holdings", "7 days left", "before April 1, 2025", "works today", "keeps working meanwhile", "connection_id=conn_northwind"},
			[]string{"broken", "stopped syncing", "can't sync", "adp-wfn-2025", "Needs reconnecting", "disconnected"}},
		{"campaign's first notification", func() finchreauth.Event {
			e := campaignEvent()
			e.Reminder, e.Source, e.At = 0, "request", since
			return e
		}(),
			[]string{"Please reconnect your payroll connection to ADP Workforce Now before April 1, 2025", "you have", "30 days", "left"},
			[]string{"broken", "reminder"}},
		{"last notice", lastNoticeEvent(),
			[]string{"last notice", "broken for", "27 days", "will be disconnected on", "April 2, 2025", "unless you reconnect it", "the last message we send", "connection_id=conn_acme"},
			[]string{"forward"}},
		{"last notice in the payroll system", func() finchreauth.Event {
			e := permissionsEvent()
			e.At, e.Reminder, e.LastNotice, e.DisconnectAt = since.Add(20*24*time.Hour), 3, true, since.Add(21*24*time.Hour)
			return e
		}(),
			[]string{"last notice", "still needs your action", "20 days", "Unless it is fixed, the connection will be disconnected on", "March 24, 2025", "the last message we send", "done in TriNet itself"},
			[]string{"href", "Reconnect here"}},
		{"escalation", escalationEvent(),
			[]string{"still not been reconnected after", "14 days", "March 3, 2025", "If someone else at Acme Inc. looks after payroll, please forward this message to them.", "connection_id=conn_acme"},
			[]string{"last message", "disconnected on"}},
		{"escalation in the payroll system", func() finchreauth.Event {
			e := noAccountSetupEvent()
			e.Escalation = true
			return e
		}(),
			[]string{"still needs your action after", "8 days", "has not been created", "please forward this message"},
			[]string{"href", "last message"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := message.Render(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			for _, body := range []string{m.Text, m.HTML} {
				for _, s := range tt.want {
					if !strings.Contains(body, s) {
						t.Errorf("body lacks %q:\n%s", s, body)
					}
				}
				for _, s := range tt.reject {
					if strings.Contains(body, s) {
						t.Errorf("body has %q:\n%s", s, body)
					}
				}
			}
		})
	}
}

var eventHandler = regexp.MustCompile(`\son[a-z]+\s*=`)

// TestRenderHTMLIsSelfContained checks that the default HTML loads nothing and
// runs nothing, whatever the event.
func TestRenderHTMLIsSelfContained(t *testing.T) {
	for _, e := range append(allEvents(), finchreauth.Event{}) {
		m, err := message.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		lower := strings.ToLower(m.HTML)
		for _, s := range []string{"<script", "src=", "<link", "url(", "@import", "javascript:", `href=""`, "<style", "<img", "<iframe", "<form"} {
			if strings.Contains(lower, s) {
				t.Errorf("HTML of %q has %q", e.Connection.ConnectionID, s)
			}
		}
		if h := eventHandler.FindString(lower); h != "" {
			t.Errorf("HTML of %q has an event handler %q", e.Connection.ConnectionID, h)
		}
	}
}

func TestRenderZeroEvent(t *testing.T) {
	m, err := message.Render(finchreauth.Event{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Reconnect your payroll connection"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	for _, s := range []string{"Your payroll connection needs to be reconnected.", "we can't sync your payroll data", "sign in to your payroll provider", "sign in to your dashboard"} {
		if !strings.Contains(m.Text, s) {
			t.Errorf("Text lacks %q:\n%s", s, m.Text)
		}
	}
	if strings.Contains(m.Text, "stopped syncing on") {
		t.Errorf("Text names a date for a zero Since:\n%s", m.Text)
	}
}

func TestRenderSubjectIsOneLine(t *testing.T) {
	e := firstEvent()
	e.Connection.CustomerName = "Acme\r\nBcc: victim@example.com\n"
	m, err := message.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Reconnect your Gusto payroll connection for Acme Bcc: victim@example.com"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	e.Status = "error_permissions"
	e.Connection.ProviderID = "evil\r\nbcc"
	if m, err = message.Render(e); err != nil {
		t.Fatal(err)
	}
	if want := "Action needed in your Evil Bcc account for Acme Bcc: victim@example.com"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
}

// TestRenderZeroEventPerNeed: an Event with nothing but its Status still
// says where to fix it, and never offers a link for the payroll system.
func TestRenderZeroEventPerNeed(t *testing.T) {
	tests := []struct {
		status   string
		assisted bool
		subject  string
		action   string
	}{
		{"", false, "Reconnect your payroll connection", "sign in to your dashboard"},
		{"reauth", false, "Reconnect your payroll connection", "sign in to your dashboard"},
		{"a_status_finch_adds_later", false, "Reconnect your payroll connection", "sign in to your dashboard"},
		{"error_permissions", false, "Action needed in your payroll system", "Please add Finch back as an admin with the permissions it needs in your payroll system."},
		{"error_no_account_setup", false, "Action needed in your payroll system", "Please create the admin user you promised Finch in your payroll system."},
		{"reauth", true, "Action needed in your payroll system", "Please make sure the admin user you created for Finch in your payroll system is active and can sign in."},
		{"", true, "Action needed in your payroll system", "is active and can sign in"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s assisted=%v", tt.status, tt.assisted), func(t *testing.T) {
			e := finchreauth.Event{Status: tt.status}
			e.Connection.Assisted = tt.assisted
			m, err := message.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			for _, body := range []string{m.Text, m.HTML} {
				if !strings.Contains(body, tt.action) {
					t.Errorf("body lacks %q:\n%s", tt.action, body)
				}
			}
		})
	}
}

func TestTemplatesZeroAndNil(t *testing.T) {
	want, err := message.Render(reminderEvent())
	if err != nil {
		t.Fatal(err)
	}
	var nilT *message.Templates
	for name, tm := range map[string]*message.Templates{"zero": {}, "nil": nilT} {
		got, err := tm.Render(reminderEvent())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s Templates renders %+v, want the default %+v", name, got, want)
		}
	}
}

func TestTemplatesReplaceOne(t *testing.T) {
	def, err := message.Render(firstEvent())
	if err != nil {
		t.Fatal(err)
	}
	tm := &message.Templates{
		Subject: texttemplate.Must(texttemplate.New("subject").Parse(`[{{.Event.Connection.ConnectionID}}] {{.Provider}} needs you`)),
	}
	m, err := tm.Render(firstEvent())
	if err != nil {
		t.Fatal(err)
	}
	if want := "[conn_acme] Gusto needs you"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	if m.Text != def.Text || m.HTML != def.HTML {
		t.Error("replacing Subject changed the bodies")
	}

	tm = &message.Templates{
		Text: texttemplate.Must(texttemplate.New("text").Parse(`{{range .Products}}{{.}};{{end}} {{.BrokenFor}}`)),
		HTML: htmltemplate.Must(htmltemplate.New("html").Parse(`<p>{{.Customer}} since {{.BrokenSince}}</p>`)),
	}
	m, err = tm.Render(reminderEvent())
	if err != nil {
		t.Fatal(err)
	}
	if want := "employee directory;pay statements;Social Security numbers;deductions and contributions;employee documents; 3 days"; m.Text != want {
		t.Errorf("Text = %q, want %q", m.Text, want)
	}
	if want := "<p>Northwind Holdings since March 3, 2025</p>"; m.HTML != want {
		t.Errorf("HTML = %q, want %q", m.HTML, want)
	}
}

func TestTemplatesError(t *testing.T) {
	tests := []struct {
		name string
		tm   message.Templates
		want string
	}{
		{"subject", message.Templates{Subject: texttemplate.Must(texttemplate.New("s").Parse(`{{.Nope}}`))}, "message: subject template: "},
		{"text", message.Templates{Text: texttemplate.Must(texttemplate.New("t").Parse(`{{.Nope}}`))}, "message: text template: "},
		{"html", message.Templates{HTML: htmltemplate.Must(htmltemplate.New("h").Parse(`{{.Nope}}`))}, "message: HTML template: "},
		{"empty html", message.Templates{HTML: htmltemplate.New("h")}, "message: HTML template: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.tm.Render(firstEvent())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Render error = %v, want one starting %q", err, tt.want)
			}
			if m != (message.Message{}) {
				t.Errorf("Render returned %+v with its error", m)
			}
			var execErr texttemplate.ExecError
			if tt.name != "empty html" && !errors.As(err, &execErr) {
				t.Errorf("error %v does not wrap the template's ExecError", err)
			}
		})
	}
}

// TestDefaultsParse checks that the files Defaults returns parse without a
// FuncMap and render what Render renders, so an application can copy them.
func TestDefaultsParse(t *testing.T) {
	fsys := message.Defaults()
	tm := &message.Templates{
		Subject: texttemplate.Must(texttemplate.ParseFS(fsys, "subject.tmpl")),
		Text:    texttemplate.Must(texttemplate.ParseFS(fsys, "text.tmpl")),
		HTML:    htmltemplate.Must(htmltemplate.ParseFS(fsys, "html.tmpl")),
	}
	for _, e := range allEvents() {
		got, err := tm.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := message.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("templates parsed from Defaults render differently for %s", e.Connection.ConnectionID)
		}
	}
}

// TestRenderConcurrent renders from many goroutines with shared templates,
// for the race detector.
func TestRenderConcurrent(t *testing.T) {
	tm := &message.Templates{HTML: htmltemplate.Must(htmltemplate.New("h").Parse(`<a href="{{.ReconnectURL}}">{{.Customer}}</a>`))}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			all := allEvents()
			e := all[i%len(all)]
			if _, err := message.Render(e); err != nil {
				t.Error(err)
			}
			if _, err := tm.Render(e); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestRenderSubjectPerKind checks the subject of each kind of message a
// request, a last notice or an escalation makes, and their variants.
func TestRenderSubjectPerKind(t *testing.T) {
	with := func(e finchreauth.Event, f func(*finchreauth.Event)) finchreauth.Event { f(&e); return e }
	tests := []struct {
		name string
		e    finchreauth.Event
		want string
	}{
		{"upgrade reminder", with(upgradeEvent(), func(e *finchreauth.Event) { e.Reminder = 2 }),
			"Reminder: grant access to benefits as well as deductions and contributions in your Gusto payroll connection for Acme Inc."},
		{"upgrade of nothing said", with(upgradeEvent(), func(e *finchreauth.Event) { e.Products, e.Connection.ProviderID = nil, "" }),
			"Grant access to more of your payroll data in your payroll connection for Acme Inc."},
		{"upgrade of products the connection has", with(upgradeEvent(), func(e *finchreauth.Event) { e.Products = []string{"directory"} }),
			"Grant access to employee directory in your Gusto payroll connection for Acme Inc."},
		{"upgrade beside an escalation", with(upgradeEvent(), func(e *finchreauth.Event) { e.Escalation, e.LastNotice = true, true }),
			"Grant access to benefits as well as deductions and contributions in your Gusto payroll connection for Acme Inc."},
		{"campaign's first", with(campaignEvent(), func(e *finchreauth.Event) { e.Reminder = 0 }),
			"Reconnect your ADP Workforce Now payroll connection for Northwind Holdings before April 1, 2025"},
		{"campaign's last day", with(campaignEvent(), func(e *finchreauth.Event) { e.At = campaignDeadline.Add(-23 * time.Hour) }),
			"Reminder: 1 day left to reconnect your ADP Workforce Now payroll connection for Northwind Holdings"},
		{"campaign past its deadline", with(campaignEvent(), func(e *finchreauth.Event) { e.At = campaignDeadline.Add(time.Hour) }),
			"Reminder: reconnect your ADP Workforce Now payroll connection for Northwind Holdings before April 1, 2025"},
		{"campaign without a deadline", with(campaignEvent(), func(e *finchreauth.Event) { e.Deadline = time.Time{} }),
			"Reminder: reconnect your ADP Workforce Now payroll connection for Northwind Holdings"},
		{"last notice without a date", with(lastNoticeEvent(), func(e *finchreauth.Event) { e.DisconnectAt = time.Time{} }),
			"Last notice: your Gusto payroll connection for Acme Inc. will be disconnected"},
		{"last notice that escalates", with(lastNoticeEvent(), func(e *finchreauth.Event) { e.Escalation = true }),
			"Last notice: your Gusto payroll connection for Acme Inc. will be disconnected on April 2, 2025"},
		{"last notice in the payroll system", with(permissionsEvent(), func(e *finchreauth.Event) { e.LastNotice, e.DisconnectAt = true, since.Add(48*time.Hour) }),
			"Last notice: your TriNet payroll connection for Umbrella Corp will be disconnected on March 5, 2025"},
		{"escalation in the payroll system", with(noAccountSetupEvent(), func(e *finchreauth.Event) { e.Escalation = true }),
			"Still waiting after 8 days: action needed in your ADP Run account for Hooli"},
		{"escalation without dates", with(escalationEvent(), func(e *finchreauth.Event) { e.Since, e.At = time.Time{}, time.Time{} }),
			"Still not reconnected: your Gusto payroll connection for Acme Inc."},
		{"a request the package does not know", with(firstEvent(), func(e *finchreauth.Event) { e.Request = "later" }),
			"Reconnect your Gusto payroll connection for Acme Inc."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := message.Render(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.want {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.want)
			}
		})
	}
}
