package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/finchkit/finchreauth/internal/finchapi"
	"github.com/finchkit/finchreauth/internal/hook"
)

const (
	defaultConnectBaseURL = "https://connect.tryfinch.com"
	defaultLinkLifetime   = 30 * 24 * time.Hour // Finch's default for a Connect session
)

// Connect is the application's side of Finch Connect: its credentials, where
// Connect sends the employer back, and how reconnect links are made. Set it
// as Transport.Connect: the Transport then mints a link for each episode (a
// Connect session, or the seed flow's authorize URL), bound to the
// connection by a signed, expiring state, and serves the way back
// (Transport.CallbackHandler). Call Validate at start-up.
//
// Connect prints (fmt, JSON, log/slog) without its client secret and state
// keys.
type Connect struct {
	// ClientID and ClientSecret are the application's Finch credentials
	// (required). The secret goes only to Finch.
	ClientID     string
	ClientSecret string

	// RedirectURI is where Finch Connect sends the employer back: the URL
	// at which the application serves Transport.CallbackHandler,
	// registered with Finch. Required for the redirect flow and for
	// AuthorizeURLs; a Connect session without it is for the embedded
	// flow.
	RedirectURI string

	// SuccessURL and FailureURL are where the callback sends the browser,
	// with a 303: SuccessURL?connection_id=..., and FailureURL?reason=...
	// (a Reason, plus connection_id when known). If FailureURL is empty,
	// SuccessURL is used; if both are, the callback answers with text.
	SuccessURL string
	FailureURL string

	// Products are the products a link asks for. If empty, those the
	// connection had; a Connect session may also go without.
	Products []string

	// AuthorizeURLs selects the seed flow's links,
	// https://connect.tryfinch.com/authorize?client_id=..., built locally
	// with payroll_provider and connection_id so that the employer skips
	// the steps already done. If false, links are Connect sessions minted
	// with POST /connect/sessions/reauthenticate, Finch's current flow.
	// Sandbox is the authorize URL's sandbox parameter ("finch",
	// "provider" or "true"); empty for production.
	AuthorizeURLs bool
	Sandbox       string

	// LinkLifetime is how long a link, and the state in it, stays valid;
	// a link is handed out until an hour (or a tenth of the lifetime, if
	// less) before it expires. If zero, 30 days.
	LinkLifetime time.Duration

	// StateKeys sign the state that binds a link to its connection
	// (required; each at least 16 random bytes, 32 recommended). The first
	// signs, all verify: prepend a new key, drop the old one after
	// LinkLifetime.
	StateKeys [][]byte

	// ConnectBaseURL is Finch Connect's host for authorize URLs. If
	// empty, https://connect.tryfinch.com.
	ConnectBaseURL string

	// OnUnsaved, if set, receives each token Finch issued at the callback
	// that the library did not save, with the Reason: the employer
	// connected another account (ReasonConnectionMismatch), the Store
	// would not take it after retries (ReasonSaveFailed), a live token of
	// the connection beat it (ReasonSuperseded), or no link of this
	// application asked for it (ReasonInvalidState). Persist it another
	// way if it matters: Finch will not issue it again.
	OnUnsaved func(ctx context.Context, r Reconnection)
}

// Validate reports what is missing or malformed in c, or nil.
func (c *Connect) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("finchreauth: Connect."+format, args...))
	}
	if c.ClientID == "" {
		bad("ClientID is empty")
	}
	if c.ClientSecret == "" {
		bad("ClientSecret is empty")
	}
	if err := checkStateKeys(c.StateKeys); err != nil {
		errs = append(errs, err)
	}
	for _, f := range [...]struct{ name, u string }{{"RedirectURI", c.RedirectURI}, {"ConnectBaseURL", c.ConnectBaseURL}} {
		if p, err := url.Parse(f.u); f.u != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			bad("%s is not an absolute http(s) URL", f.name)
		}
	}
	if c.AuthorizeURLs && c.RedirectURI == "" {
		bad("RedirectURI is required with AuthorizeURLs")
	}
	switch c.Sandbox {
	case "", "true", "finch", "provider":
	default:
		bad("Sandbox is %q, not finch, provider or true", c.Sandbox)
	}
	if c.LinkLifetime < 0 {
		bad("LinkLifetime is negative")
	}
	return errors.Join(errs...)
}

func (c *Connect) lifetime() time.Duration { return orDefault(c.LinkLifetime, defaultLinkLifetime) }

func (c *Connect) products(fallback []string) []string {
	if len(c.Products) > 0 {
		return c.Products
	}
	return fallback
}

// String describes c without its secrets.
func (c Connect) String() string {
	return fmt.Sprintf("finchreauth.Connect{ClientID:%q RedirectURI:%q ClientSecret:%s StateKeys:%d}",
		c.ClientID, c.RedirectURI, redacted(c.ClientSecret), len(c.StateKeys))
}

// Format implements fmt.Formatter: every verb prints c.String().
func (c Connect) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// MarshalJSON writes c without its secrets.
func (c Connect) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"client_id": c.ClientID, "redirect_uri": c.RedirectURI, "client_secret": redacted(c.ClientSecret),
		"state_keys": len(c.StateKeys), "authorize_urls": c.AuthorizeURLs,
	})
}

// LogValue implements slog.LogValuer.
func (c Connect) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", c.ClientID), slog.String("redirect_uri", c.RedirectURI),
		slog.String("client_secret", redacted(c.ClientSecret)), slog.Int("state_keys", len(c.StateKeys)))
}

func redacted(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}

// mint makes a new link for the connection, with a new state.
func (c *Connect) mint(ctx context.Context, api finchapi.Client, conn Connection, now time.Time) (link, error) {
	if err := c.Validate(); err != nil {
		return link{}, err
	}
	expires := now.Add(c.lifetime()).Truncate(time.Second)
	state, nonce, err := signState(c.StateKeys, conn.ConnectionID, expires)
	if err != nil {
		return link{}, err
	}
	products := c.products(conn.Products)
	var u string
	if c.AuthorizeURLs {
		u, err = c.authorizeURL(conn, products, state)
	} else {
		u, err = c.sessionURL(ctx, api, conn.ConnectionID, products, state)
	}
	if err != nil {
		return link{}, err
	}
	return link{URL: u, Nonce: nonce, Expires: expires}, nil
}

// authorizeURL builds the seed flow's link.
func (c *Connect) authorizeURL(conn Connection, products []string, state string) (string, error) {
	if len(products) == 0 {
		return "", errors.New("finchreauth: an authorize URL needs products (Connect.Products, or the connection's)")
	}
	q := url.Values{}
	q.Set("client_id", c.ClientID)
	q.Set("redirect_uri", c.RedirectURI)
	q.Set("products", strings.Join(products, " "))
	q.Set("connection_id", conn.ConnectionID)
	q.Set("state", state)
	if conn.ProviderID != "" {
		q.Set("payroll_provider", conn.ProviderID)
	}
	if c.Sandbox != "" {
		q.Set("sandbox", c.Sandbox)
	}
	base := strings.TrimSuffix(c.ConnectBaseURL, "/")
	if base == "" {
		base = defaultConnectBaseURL
	}
	return base + "/authorize?" + q.Encode(), nil
}

// sessionURL mints a Connect session. Which state Connect echoes for a
// session is not settled by any Finch source: the state goes in the session
// request and on its connect_url, and the callback also takes a code that
// comes back with none (see CallbackHandler).
func (c *Connect) sessionURL(ctx context.Context, api finchapi.Client, connID string, products []string, state string) (string, error) {
	connectURL, err := api.ReauthSession(ctx, c.ClientID, c.ClientSecret, finchapi.SessionRequest{
		ConnectionID:    connID,
		MinutesToExpire: int(c.lifetime() / time.Minute),
		Products:        products,
		RedirectURI:     c.RedirectURI,
		State:           state,
	})
	if err != nil {
		return "", apiErrorOf(err)
	}
	u, err := url.Parse(connectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("finchreauth: Finch returned a connect_url that is not an absolute URL")
	}
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

var errNoLinks = errors.New("finchreauth: the Transport has neither Connect nor Links")

// mint makes a new reconnect link for ev's connection with Links or Connect.
func (t *Transport) mint(ctx context.Context, ev Event) (link, error) {
	s := subject{conn: ev.Connection.ConnectionID}
	return step(t, ctx, "link", s, func(ctx context.Context) (link, error) {
		switch {
		case t.Links != nil:
			u, err := t.Links.ReconnectURL(ctx, ev)
			if err == nil && u == "" {
				err = errors.New("finchreauth: the LinkBuilder returned no link")
			}
			return link{URL: u}, err
		case t.Connect != nil:
			return t.Connect.mint(ctx, t.finch(ctx, t.base()), ev.Connection, t.now())
		}
		return link{}, errNoLinks
	})
}

// ReconnectURL returns the link that reopens Finch Connect for the
// connection: the one its customer was sent while it is still good, or a new
// one, kept for the next call. It is what a dashboard's "reconnect" button
// leads to: call it from a handler of any router, once the signed-in user is
// known to own the connection (StartHandler does that for routers whose
// path parameters an *http.Request carries).
func (t *Transport) ReconnectURL(ctx context.Context, connectionID string) (string, error) {
	t.init()
	if connectionID == "" {
		return "", errEmptyID
	}
	_, d, err := t.load(ctx, connectionID)
	if err != nil {
		return "", err
	}
	if u := d.linkFor(t.now(), t.linkMargin()); u != "" {
		return u, nil
	}
	// One mint at a time per connection in this process; across
	// processes, the first link stored wins.
	v, err, _ := t.group.Do("link:"+connectionID, func() (any, error) {
		// Read again: a flight that ended while this call read the record
		// may have kept a link.
		r, d, err := t.load(ctx, connectionID)
		if err != nil {
			return "", err
		}
		if u := d.linkFor(t.now(), t.linkMargin()); u != "" {
			return u, nil
		}
		return t.mintFor(ctx, r, d)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// mintFor mints a link for r's connection and keeps it in the record, unless
// another was kept meanwhile.
func (t *Transport) mintFor(ctx context.Context, r Record, d recordData) (string, error) {
	ev := t.event(r, d, "start")
	var learned *Connection
	if d.Identity == nil && r.Token != "" && t.Connect != nil && t.Connect.AuthorizeURLs && len(t.Connect.Products) == 0 {
		// An authorize URL needs the connection's products and provider.
		if in, err := t.introspect(ctx, t.base(), string(r.Token), subject{conn: r.ConnectionID}); err == nil {
			ev.Connection, learned = in, &in
		}
	}
	l, err := t.mint(ctx, ev)
	if err != nil {
		return "", err
	}
	u := l.URL
	_, _, err = t.update(ctx, r.ConnectionID, func(r *Record, d *recordData) (bool, error) {
		if other := d.linkFor(t.now(), t.linkMargin()); other != "" {
			u = other // kept meanwhile, elsewhere: hand out one link
			return false, nil
		}
		d.Link, u = &l, l.URL
		if learned != nil && d.Identity == nil {
			d.Identity = learned
		}
		return true, nil
	})
	return u, err
}

// StartHandler returns a handler that sends the signed-in user to Finch
// Connect for the connection authorize names (for "reconnect from the
// dashboard"): a 303 to ReconnectURL. authorize decides from the request
// (the application's session, a path value) which connection the user may
// reconnect; an error, or a panic, answers 403. A link that cannot be made
// answers 303 to Connect.FailureURL with reason=link_failed.
func (t *Transport) StartHandler(authorize func(*http.Request) (connectionID string, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, ok := t.authorized(w, r, authorize, http.MethodGet, http.MethodPost)
		if !ok {
			return
		}
		u, err := t.ReconnectURL(r.Context(), conn)
		if err != nil {
			t.redirectFailure(w, r, ReasonLinkFailed, conn)
			return
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
	})
}

// authorized answers a request to StartHandler or StatusHandler that is not
// one of methods (405), or that authorize refuses (403), and otherwise
// returns the connection authorize names. A refusal is the application's
// answer, not a failure: only a panic is reported.
func (t *Transport) authorized(w http.ResponseWriter, r *http.Request, authorize func(*http.Request) (string, error), methods ...string) (string, bool) {
	t.init()
	noStore(w)
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "", false
	}
	var conn string
	var err error = errors.New("finchreauth: no authorize function")
	if authorize != nil {
		conn, err = hook.Run(r.Context(), t.timeout(), func(context.Context) (string, error) { return authorize(r) })
	}
	if p, ok := err.(hook.Panic); ok {
		t.report(r.Context(), &HookError{Hook: "authorize", Panic: p.Value, Err: errPanicked})
	}
	if err != nil || conn == "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return "", false
	}
	return conn, true
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
