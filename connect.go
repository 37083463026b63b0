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
)

var errNilConnect = errors.New("finchreauth: Connect is nil")

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
	// signs, all verify. To rotate, see StateVerifyKeys.
	StateKeys [][]byte

	// StateVerifyKeys verify states and never sign one (each at least 16
	// bytes, like StateKeys). If empty, only StateKeys verify.
	//
	// They make key rotation safe in a rolling deploy, where replicas on
	// the old and the new configuration run side by side and links travel
	// between them through the Store (one replica mints a link, another
	// hands it out, a third serves its callback). Rotate in three deploys,
	// each begun only once the one before has reached every replica:
	//
	//  1. Add the new key to StateVerifyKeys (StateKeys: old,
	//     StateVerifyKeys: new). Every replica still signs with the old key;
	//     those that run this verify the new one too.
	//  2. Sign with the new key: StateKeys: new, StateVerifyKeys: old.
	//     Replicas still at step 1 verify the states it signs.
	//  3. LinkLifetime after step 2 reached every replica, when every state
	//     the old key signed has expired, drop the old key (StateKeys: new).
	//
	// Prepending the new key to StateKeys in one deploy instead makes the
	// replicas not yet deployed refuse the states the others sign.
	StateVerifyKeys [][]byte

	// ConnectBaseURL is Finch Connect's host for authorize URLs. If
	// empty, https://connect.tryfinch.com.
	ConnectBaseURL string

	// Authorize, if set, binds a reconnect to the person as well as the
	// link: the callback asks it whether the signed-in user (the request's
	// session) may reconnect connectionID, before anything is spent. An
	// error (or a panic) sends the browser to FailureURL with reason
	// forbidden, and the link stays good for the right person. Without it,
	// whoever holds a link completes its reconnect, in their own browser
	// and session. It is the check StartHandler's authorize makes, asked of
	// the connection the link names.
	Authorize func(r *http.Request, connectionID string) error

	// OnUnsaved, if set, receives each token Finch issued at the callback
	// that the library did not save, with the Reason: the employer
	// connected another account (ReasonConnectionMismatch), the Store
	// would not take it after retries (ReasonSaveFailed), a live token of
	// the connection beat it (ReasonSuperseded), or no link of this
	// application asked for it (ReasonInvalidState). Persist it another
	// way if it matters: Finch will not issue it again.
	OnUnsaved func(ctx context.Context, r Reconnection)
}

// Validate reports what is missing or malformed in c, or nil. A nil c is
// an error, not a panic.
func (c *Connect) Validate() error {
	if c == nil {
		return errNilConnect
	}
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
	for i, k := range c.StateVerifyKeys {
		if len(k) < minStateKeyLen {
			bad("StateVerifyKeys[%d] is shorter than %d bytes", i, minStateKeyLen)
		}
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

// verifyKeys are the keys a state may be signed with: StateKeys, then
// StateVerifyKeys.
func (c *Connect) verifyKeys() [][]byte {
	if len(c.StateVerifyKeys) == 0 {
		return c.StateKeys
	}
	return append(slices.Clip(c.StateKeys), c.StateVerifyKeys...)
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
func (c *Connect) mint(ctx context.Context, api finchapi.Client, conn Connection, products []string, now time.Time) (link, error) {
	if err := c.Validate(); err != nil {
		return link{}, err
	}
	expires := now.Add(c.lifetime()).Truncate(time.Second)
	state, nonce, err := signState(c.StateKeys, conn.ConnectionID, expires)
	if err != nil {
		return link{}, err
	}
	if len(products) == 0 {
		products = c.products(conn.Products)
	}
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
// comes back with none (see CallbackHandler). Finch's API reference does
// not list state for the session request: if Finch refuses it, the session
// is minted without it, and the Transport leaves it out from then on (see
// finchapi.Client.ReauthSession); the connect_url carries it either way.
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
