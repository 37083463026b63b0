package message_test

import (
	htmltemplate "html/template"
	"regexp"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

// Tests that no value of an Event can break out of the HTML or make it run
// anything.

var href = regexp.MustCompile(`href="([^"]*)"`)

func TestRenderEscapesCustomerName(t *testing.T) {
	e := firstEvent()
	e.Connection.CustomerName = `<script>alert(1)</script>`
	m, err := message.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(m.HTML), "<script") {
		t.Errorf("HTML has the name's <script>:\n%s", m.HTML)
	}
	if want := "Hello &lt;script&gt;alert(1)&lt;/script&gt;,"; !strings.Contains(m.HTML, want) {
		t.Errorf("HTML lacks the escaped name %q:\n%s", want, m.HTML)
	}
	// The text body and the subject are plain text: the name shows as it is.
	if want := "Hello <script>alert(1)</script>,"; !strings.Contains(m.Text, want) {
		t.Errorf("Text lacks the name %q:\n%s", want, m.Text)
	}
}

func TestRenderEscapesLink(t *testing.T) {
	e := firstEvent()
	e.ReconnectURL = `https://connect.example.com/authorize?state="><script>alert(1)</script>&x='/onmouseover='alert(1)`
	m, err := message.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"><script`, "<script", "'/onmouseover='"} {
		if strings.Contains(m.HTML, s) {
			t.Errorf("HTML has %q:\n%s", s, m.HTML)
		}
	}
	hrefs := href.FindAllStringSubmatch(m.HTML, -1)
	if len(hrefs) != 2 {
		t.Fatalf("HTML has %d hrefs, want 2 (the button and the copyable link):\n%s", len(hrefs), m.HTML)
	}
	// html/template percent-encodes what would end the attribute or open a tag.
	want := "https://connect.example.com/authorize?state=%22%3e%3cscript%3ealert%281%29%3c/script%3e&amp;x=%27/onmouseover=%27alert%281%29"
	for _, h := range hrefs {
		if h[1] != want {
			t.Errorf("href = %q, want %q", h[1], want)
		}
	}
	// The link as text is HTML-escaped.
	if s := "state=&#34;&gt;&lt;script&gt;"; !strings.Contains(m.HTML, s) {
		t.Errorf("HTML lacks the escaped link text %q:\n%s", s, m.HTML)
	}
	// In the plain-text body the link is the Event's, byte for byte.
	if !strings.Contains(m.Text, "\n"+e.ReconnectURL+"\n") {
		t.Errorf("Text lacks the link on a line of its own:\n%s", m.Text)
	}
}

// TestRenderRefusesNonWebLinks checks that a link other than an absolute http
// or https URL reaches neither body: the message says to sign in to the
// dashboard instead, and has no href at all.
func TestRenderRefusesNonWebLinks(t *testing.T) {
	for _, link := range []string{
		"javascript:alert(1)",
		"JavaScript:alert(document.cookie)",
		" javascript:alert(1)",
		"java\tscript:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox(1)",
		"mailto:someone@example.com",
		"//evil.example/reconnect",
		"/reconnect",
		"https:///no-host",
		"https://exa mple.com/",
		"https://connect.example.com/a b",
		"https://connect.example.com/\u00a0",
	} {
		t.Run(link, func(t *testing.T) {
			e := firstEvent()
			e.ReconnectURL = link
			if d := message.NewData(e); d.ReconnectURL != "" {
				t.Errorf("Data.ReconnectURL = %q, want empty", d.ReconnectURL)
			}
			m, err := message.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(m.HTML, "href") {
				t.Errorf("HTML has an href:\n%s", m.HTML)
			}
			for _, body := range []string{m.Text, m.HTML} {
				if !strings.Contains(body, "sign in to your dashboard") {
					t.Errorf("body does not say to sign in to the dashboard:\n%s", body)
				}
				if strings.Contains(body, link) || strings.Contains(strings.ToLower(body), "script:") {
					t.Errorf("body has the link:\n%s", body)
				}
			}
		})
	}
}

func TestRenderAcceptsWebLinks(t *testing.T) {
	for _, link := range []string{
		"https://connect.tryfinch.com/authorize?client_id=x",
		"HTTPS://connect.tryfinch.com/authorize",
		"http://127.0.0.1:8080/authorize",
	} {
		e := firstEvent()
		e.ReconnectURL = link
		m, err := message.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := href.FindAllStringSubmatch(m.HTML, -1); len(got) != 2 || got[0][1] != link {
			t.Errorf("hrefs for %q = %q, want it twice", link, got)
		}
	}
}

// TestHTMLTemplateRefusesJavascriptHref shows what html/template does on its
// own when an application's template puts the Event's raw link in an href:
// an unsafe URL becomes "#ZgotmplZ", so even a template that bypasses
// Data.ReconnectURL cannot be made to run a javascript: link.
func TestHTMLTemplateRefusesJavascriptHref(t *testing.T) {
	tm := &message.Templates{
		HTML: htmltemplate.Must(htmltemplate.New("raw").Parse(`<a href="{{.Event.ReconnectURL}}">Reconnect</a>`)),
	}
	for _, link := range []string{"javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,x", "vbscript:x"} {
		e := firstEvent()
		e.ReconnectURL = link
		m, err := tm.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		if want := `<a href="#ZgotmplZ">Reconnect</a>`; m.HTML != want {
			t.Errorf("%q renders as %q, want %q", link, m.HTML, want)
		}
	}
}

// TestRenderEscapesProviderInWords checks the words that name the provider
// (Data.Problem, Data.Action, the payroll message's heading): an odd
// provider id cannot break out of the HTML either.
func TestRenderEscapesProviderInWords(t *testing.T) {
	for _, status := range []string{"error_permissions", "error_no_account_setup", "reauth"} {
		t.Run(status, func(t *testing.T) {
			e := permissionsEvent()
			e.Status = status
			e.Connection.ProviderID = `<script>alert(1)</script>`
			d := message.NewData(e)
			if !strings.Contains(d.Action, "<script>") || !strings.Contains(d.Problem, "<script>") {
				t.Fatalf("Action %q and Problem %q do not name the provider as it is", d.Action, d.Problem)
			}
			m, err := message.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToLower(m.HTML), "<script") {
				t.Errorf("HTML has the provider's <script>:\n%s", m.HTML)
			}
			if want := "Please " + htmltemplate.HTMLEscapeString(d.Action) + "."; !strings.Contains(m.HTML, want) {
				t.Errorf("HTML lacks the escaped action %q:\n%s", want, m.HTML)
			}
			if want := "Please " + d.Action + "."; !strings.Contains(m.Text, want) {
				t.Errorf("Text lacks %q:\n%s", want, m.Text)
			}
		})
	}
}

// TestRenderPayrollHasNoLink checks that a message whose fix is in the
// payroll system carries no link, whatever link the Event has: Finch
// Connect cannot repair it.
func TestRenderPayrollHasNoLink(t *testing.T) {
	for _, link := range []string{"https://connect.tryfinch.com/authorize?state=st_x", "javascript:alert(1)", ""} {
		for _, e := range []finchreauth.Event{permissionsEvent(), noAccountSetupEvent(), assistedEvent()} {
			e.ReconnectURL = link
			if d := message.NewData(e); d.ReconnectURL != "" || d.Fix != "payroll" {
				t.Errorf("%s: Fix %q, ReconnectURL %q; want payroll and none", e.Connection.ConnectionID, d.Fix, d.ReconnectURL)
			}
			m, err := message.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, body := range []string{m.Text, m.HTML} {
				if strings.Contains(body, "href") || strings.Contains(body, "st_x") || strings.Contains(body, "script:") || strings.Contains(body, "Reconnect here") {
					t.Errorf("%s: body has a link:\n%s", e.Connection.ConnectionID, body)
				}
			}
		}
	}
}

// TestRenderEscapesRequestedProducts: the products an upgrade asks for
// are the application's words; they cannot break out of the HTML, nor add
// a line to the subject.
func TestRenderEscapesRequestedProducts(t *testing.T) {
	e := upgradeEvent()
	e.Products = append(e.Products, `<img src=x onerror=alert(1)>`, "time_off\r\nBcc: victim@example.com")
	m, err := message.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(m.HTML), "<img") {
		t.Errorf("HTML has the product's markup:\n%s", m.HTML)
	}
	if want := "&lt;img src=x onerror=alert(1)&gt;"; !strings.Contains(m.HTML, want) {
		t.Errorf("HTML lacks the escaped product %q:\n%s", want, m.HTML)
	}
	if strings.ContainsAny(m.Subject, "\r\n") || !strings.Contains(m.Subject, "time off Bcc: victim@example.com in your Gusto") {
		t.Errorf("Subject = %q, want one line", m.Subject)
	}
	for _, body := range []string{m.Text, m.HTML} {
		if strings.Contains(body, "\r") || strings.Contains(body, "time_off") || !strings.Contains(body, "time off Bcc: victim@example.com") {
			t.Errorf("body has the product's line break:\n%s", body)
		}
	}
}
