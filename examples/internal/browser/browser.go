// Package browser is a scripted web browser for the examples: an
// http.Client with a cookie jar that follows no redirect by itself, so that
// each hop (a page, a form submission, a 303) can be checked and narrated.
//
// It understands just enough HTML for the fake Finch Connect page and the
// examples' own pages: a form's hidden inputs and submit buttons, the page
// title, and the text of an element with an id. A real browser does the rest.
package browser

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Browser fetches pages one hop at a time and writes one line per hop to Log.
// Query values named code or state are never written: they are shown as "…".
type Browser struct {
	client *http.Client
	tr     *http.Transport
	log    io.Writer
	names  map[string]string // host -> label printed in place of scheme and host
}

// New returns a Browser that narrates to log (io.Discard for silence).
func New(log io.Writer) *Browser {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Browser{
		client: &http.Client{
			Transport: tr,
			Jar:       jar,
			// Return every redirect to the caller instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tr:    tr,
		log:   log,
		names: map[string]string{},
	}
}

// Name makes the narration show label instead of the scheme and host of
// baseURL, e.g. "Finch" for the fake Finch's random port.
func (b *Browser) Name(baseURL, label string) {
	if u, err := url.Parse(baseURL); err == nil {
		b.names[u.Host] = label
	}
}

// Close closes the Browser's idle connections.
func (b *Browser) Close() { b.tr.CloseIdleConnections() }

// Page is one response: its status, where it redirects, and its body.
type Page struct {
	URL      *url.URL
	Status   int
	Location *url.URL // for a redirect: the absolute target, else nil
	Header   http.Header
	Body     string
}

// Get fetches rawURL.
func (b *Browser) Get(ctx context.Context, rawURL string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req, "")
}

// Post submits form to rawURL as a browser's form does, without a page to
// submit it from: what a forged or scripted request sends.
func (b *Browser) Post(ctx context.Context, rawURL string, form url.Values) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req, "")
}

// Follow fetches the page p redirects to.
func (b *Browser) Follow(ctx context.Context, p *Page) (*Page, error) {
	if p.Location == nil {
		return nil, fmt.Errorf("browser: %s answered %d, not a redirect", b.show(p.URL), p.Status)
	}
	return b.Get(ctx, p.Location.String())
}

// Submit submits the page's form by clicking the submit button whose text
// is button: it posts the form's hidden inputs and the button's own
// name=value to the form's action, as a browser does.
func (b *Browser) Submit(ctx context.Context, p *Page, button string) (*Page, error) {
	m := formRE.FindStringSubmatch(p.Body)
	if m == nil {
		return nil, fmt.Errorf("browser: no form on %s", b.show(p.URL))
	}
	attrs, inner := parseAttrs(m[1]), m[2]
	if !strings.EqualFold(attrs["method"], "post") {
		return nil, errors.New("browser: only POST forms are supported")
	}
	action, err := p.URL.Parse(attrs["action"])
	if err != nil {
		return nil, fmt.Errorf("browser: form action: %w", err)
	}
	form := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(inner, -1) {
		a := parseAttrs(in[1])
		if a["type"] == "hidden" && a["name"] != "" {
			form.Add(a["name"], a["value"])
		}
	}
	clicked := false
	for _, bt := range buttonRE.FindAllStringSubmatch(inner, -1) {
		if strings.TrimSpace(html.UnescapeString(bt[2])) == button {
			a := parseAttrs(bt[1])
			if a["name"] != "" {
				form.Set(a["name"], a["value"])
			}
			clicked = true
			break
		}
	}
	if !clicked {
		return nil, fmt.Errorf("browser: no %q button on %s", button, b.show(p.URL))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req, fmt.Sprintf(" (%q)", button))
}

func (b *Browser) do(req *http.Request, note string) (*Page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("browser: %s %s: %w", req.Method, b.show(req.URL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("browser: %s %s: %w", req.Method, b.show(req.URL), err)
	}
	p := &Page{URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	outcome := resp.Status
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		if p.Location, err = req.URL.Parse(loc); err != nil {
			return nil, fmt.Errorf("browser: bad Location from %s", b.show(req.URL))
		}
		outcome += " -> " + b.show(p.Location)
	} else if t := p.Title(); t != "" {
		outcome += fmt.Sprintf(" %q", t)
	}
	fmt.Fprintf(b.log, "   browser: %-4s %s%s\n            %s\n", req.Method, b.show(req.URL), note, outcome)
	return p, nil
}

// show renders u for the narration: a label for known hosts, and "…" for
// the values of code and state, which are the employer's credentials in
// flight.
func (b *Browser) show(u *url.URL) string {
	if u == nil {
		return ""
	}
	host := u.Scheme + "://" + u.Host
	if label, ok := b.names[u.Host]; ok {
		host = label + " "
	}
	s := host + u.Path
	if u.RawQuery == "" {
		return s
	}
	var parts []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "code" || k == "state" {
			v = "…"
		}
		parts = append(parts, k+"="+v)
	}
	return s + "?" + strings.Join(parts, "&")
}

// Title returns the text of the page's <title>.
func (p *Page) Title() string {
	if m := titleRE.FindStringSubmatch(p.Body); m != nil {
		return strings.TrimSpace(html.UnescapeString(m[1]))
	}
	return ""
}

// Text returns the text of the element with the given id, or "".
func (p *Page) Text(id string) string {
	re := regexp.MustCompile(`(?is)<[a-z0-9]+\b[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`)
	if m := re.FindStringSubmatch(p.Body); m != nil {
		return strings.TrimSpace(html.UnescapeString(m[1]))
	}
	return ""
}

var (
	formRE   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	buttonRE = regexp.MustCompile(`(?is)<button\b([^>]*)>(.*?)</button>`)
	titleRE  = regexp.MustCompile(`(?is)<title>(.*?)</title>`)
	attrRE   = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*"([^"]*)"`)
)

func parseAttrs(s string) map[string]string {
	attrs := map[string]string{}
	for _, m := range attrRE.FindAllStringSubmatch(s, -1) {
		attrs[strings.ToLower(m[1])] = html.UnescapeString(m[2])
	}
	return attrs
}
