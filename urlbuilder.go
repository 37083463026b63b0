package finchreauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// Finch's hosts.
const (
	defaultAPIBaseURL     = "https://api.tryfinch.com"
	defaultConnectBaseURL = "https://connect.tryfinch.com"
)

// defaultLinkLifetime is Finch's own default for a Connect session: 30 days.
const defaultLinkLifetime = 30 * 24 * time.Hour

// Connect is the application's side of Finch Connect for re-authentication:
// it builds the links that reopen Connect on a connection (it is the
// Transport's LinkBuilder), and its handlers take the employer back: the
// callback (CallbackHandler) that exchanges Connect's code for a new token
// and saves it, and an optional start endpoint (StartHandler) that launches
// Connect from the application's dashboard.
//
// Configure it once, before first use, and do not change it afterwards. It is
// safe for concurrent use. Fields marked required make every method fail
// with a clear error when they are missing.
type Connect struct {
	// ClientID and ClientSecret are the application's Finch credentials
	// (required). The secret goes only to Finch, in request bodies and
	// Basic authorization headers.
	ClientID     string
	ClientSecret string

	// RedirectURI is where Finch Connect sends the employer back: the URL
	// at which the application serves CallbackHandler (required for the
	// redirect flow; registered with Finch).
	RedirectURI string

	// Products are the products to request. If empty, a link asks for the
	// products the connection had (Event.Connection.Products); a Connect
	// session may also go without.
	Products []string

	// AuthorizeURLs selects the link format. If false, links are Connect
	// sessions minted through POST /connect/sessions/reauthenticate,
	// Finch's current flow. If true, links are the authorize URLs of the
	// seed flow, https://connect.tryfinch.com/authorize?client_id=...,
	// built locally, with payroll_provider and connection_id so that the
	// employer skips the steps already done.
	AuthorizeURLs bool

	// Sandbox is the authorize URL's sandbox parameter ("finch",
	// "provider" or "true"); empty for production.
	Sandbox string

	// LinkLifetime is how long a link, and the state in it, stays valid. A
	// minted link is reused for the connection until an hour (or a tenth of
	// the lifetime, if less) before it expires. If zero, 30 days, Finch's
	// default for a session.
	LinkLifetime time.Duration

	// StateKeys sign the state that binds a link to its connection
	// (required; each at least 16 random bytes, 32 recommended). The first
	// signs; all verify, so that keys can be rotated: prepend the new key,
	// drop the old one after LinkLifetime.
	StateKeys [][]byte

	// Transport saves the token a reconnect obtains, through its Store, and
	// clears its latch for the connection (required by CallbackHandler).
	Transport *Transport

	// SuccessURL and FailureURL are where the callback sends the employer's
	// browser, with a 303: SuccessURL?connection_id=..., and
	// FailureURL?reason=... (plus connection_id when known). The reasons
	// are cancelled, invalid_state, expired, invalid_request,
	// exchange_failed, connection_mismatch, save_failed and link_failed.
	// Only these URLs are ever redirected to. SuccessURL is required for
	// the redirect flow; if FailureURL is empty, SuccessURL is used.
	SuccessURL string
	FailureURL string

	// OnReconnected, if set, is called after a reconnect saved its token,
	// with the connection and the time it broke.
	OnReconnected func(ctx context.Context, r Reconnection)

	// OnMismatch, if set, is called when the employer went through Connect
	// but connected another account than the link's: r.ConnectionID is not
	// r.Expected. The new token (in r.Token) is not saved for either
	// connection; the browser goes to FailureURL with
	// reason=connection_mismatch.
	OnMismatch func(ctx context.Context, r Reconnection)

	// Authorize decides, for StartHandler, which connection the signed-in
	// user of a request may reconnect, typically from the application's
	// session and a query parameter. An error refuses the request (403). If
	// nil, StartHandler refuses every request.
	Authorize func(r *http.Request) (connectionID string, err error)

	// ErrorHandler receives what went wrong in a handler or a hook, with
	// secrets named only by fingerprint. If nil, errors are dropped; the
	// employer still gets an answer.
	ErrorHandler func(ctx context.Context, err error)

	// APIBaseURL and ConnectBaseURL are Finch's hosts. If APIBaseURL is
	// empty, Transport.APIBaseURL is used, or https://api.tryfinch.com; if
	// ConnectBaseURL is empty, https://connect.tryfinch.com. Point both at
	// a finchtest.Server in tests.
	APIBaseURL     string
	ConnectBaseURL string

	// Base carries the calls to Finch's API. If nil, Transport's Base is
	// used, or http.DefaultTransport.
	Base http.RoundTripper

	// Timeout bounds each call to Finch, retries included. If zero, 30
	// seconds.
	Timeout time.Duration

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time

	initOnce sync.Once
	links    *cache.Cache // connection id -> mintedLink
	minting  singleflight.Group
	replay   *stateReplay
}

var _ LinkBuilder = (*Connect)(nil)

type mintedLink struct {
	url     string
	expires time.Time
}

func (c *Connect) init() {
	c.initOnce.Do(func() {
		c.links = cache.New(cache.NoExpiration, 0)
		c.replay = newStateReplay()
	})
}

func (c *Connect) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Connect) api() finchAPI {
	switch {
	case c.Base != nil:
		return finchAPI{base: c.Base}
	case c.Transport != nil:
		return finchAPI{base: c.Transport.base()}
	}
	return finchAPI{base: http.DefaultTransport}
}

func (c *Connect) apiBaseURL() string {
	switch {
	case c.APIBaseURL != "":
		return strings.TrimSuffix(c.APIBaseURL, "/")
	case c.Transport != nil && c.Transport.APIBaseURL != "":
		return strings.TrimSuffix(c.Transport.APIBaseURL, "/")
	}
	return defaultAPIBaseURL
}

func (c *Connect) connectBaseURL() string {
	if c.ConnectBaseURL != "" {
		return strings.TrimSuffix(c.ConnectBaseURL, "/")
	}
	return defaultConnectBaseURL
}

func (c *Connect) lifetime() time.Duration {
	if c.LinkLifetime > 0 {
		return c.LinkLifetime
	}
	return defaultLinkLifetime
}

func (c *Connect) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

// reuseMargin is how long before its expiry a minted link stops being handed
// out: the employer needs time to click it.
func (c *Connect) reuseMargin() time.Duration {
	return min(time.Hour, c.lifetime()/10)
}

func (c *Connect) checkCredentials() error {
	switch {
	case c.ClientID == "":
		return errors.New("finchreauth: Connect.ClientID is empty")
	case c.ClientSecret == "":
		return errors.New("finchreauth: Connect.ClientSecret is empty")
	}
	return checkStateKeys(c.StateKeys)
}

// ReconnectURL implements LinkBuilder: the link that reopens Finch Connect on
// the event's connection. A link minted for the connection is reused while it
// has more than an hour to live, so one broken connection gets one link
// however many times it is detected; concurrent calls for one connection mint
// once.
func (c *Connect) ReconnectURL(ctx context.Context, e Event) (string, error) {
	c.init()
	connID := e.Connection.ConnectionID
	if connID == "" {
		return "", errors.New("finchreauth: no reconnect link without a connection id (/introspect did not answer)")
	}
	now := c.now()
	if v, ok := c.links.Get(connID); ok {
		if l := v.(mintedLink); now.Before(l.expires.Add(-c.reuseMargin())) {
			return l.url, nil
		}
	}
	v, err, _ := c.minting.Do(connID, func() (any, error) {
		if v, ok := c.links.Get(connID); ok { // minted while we waited
			if l := v.(mintedLink); now.Before(l.expires.Add(-c.reuseMargin())) {
				return l, nil
			}
		}
		l, err := c.mint(ctx, connID, e.Connection.ProviderID, c.products(e.Connection.Products))
		if err != nil {
			return nil, err
		}
		c.links.Set(connID, l, cache.NoExpiration)
		return l, nil
	})
	if err != nil {
		return "", err
	}
	return v.(mintedLink).url, nil
}

func (c *Connect) products(fallback []string) []string {
	if len(c.Products) > 0 {
		return c.Products
	}
	return fallback
}

// forgetLink drops the connection's minted link: its state is spent.
func (c *Connect) forgetLink(connectionID string) {
	c.init()
	c.links.Delete(connectionID)
}

// mint makes a new link with a new state.
func (c *Connect) mint(ctx context.Context, connectionID, providerID string, products []string) (mintedLink, error) {
	if err := c.checkCredentials(); err != nil {
		return mintedLink{}, err
	}
	expires := c.now().Add(c.lifetime()).Truncate(time.Second)
	state, err := signState(c.StateKeys, connectionID, expires)
	if err != nil {
		return mintedLink{}, err
	}
	var link string
	if c.AuthorizeURLs {
		link, err = c.authorizeURL(connectionID, providerID, products, state)
	} else {
		link, err = c.sessionURL(ctx, connectionID, products, state)
	}
	if err != nil {
		return mintedLink{}, err
	}
	return mintedLink{url: link, expires: expires}, nil
}

// authorizeURL builds the seed flow's link.
func (c *Connect) authorizeURL(connectionID, providerID string, products []string, state string) (string, error) {
	if c.RedirectURI == "" {
		return "", errors.New("finchreauth: Connect.RedirectURI is empty")
	}
	if len(products) == 0 {
		return "", errors.New("finchreauth: an authorize URL needs products (Connect.Products, or the connection's)")
	}
	q := url.Values{}
	q.Set("client_id", c.ClientID)
	q.Set("redirect_uri", c.RedirectURI)
	q.Set("products", strings.Join(products, " "))
	q.Set("connection_id", connectionID)
	q.Set("state", state)
	if providerID != "" {
		q.Set("payroll_provider", providerID)
	}
	if c.Sandbox != "" {
		q.Set("sandbox", c.Sandbox)
	}
	return c.connectBaseURL() + "/authorize?" + q.Encode(), nil
}

// sessionURL mints a Connect session for the connection and adds the state
// to its connect_url. Finch documents state as a parameter that Connect
// echoes to the redirect URI; the reauthenticate endpoint's body does not
// list it, so it travels on the URL, which Connect reads as it reads the
// authorize URL's (UNCONFIRMED for sessions: see FINCH.md).
func (c *Connect) sessionURL(ctx context.Context, connectionID string, products []string, state string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	connectURL, err := c.api().reauthSession(ctx, c.apiBaseURL(), c.ClientID, c.ClientSecret, reauthSessionRequest{
		ConnectionID:    connectionID,
		MinutesToExpire: int(c.lifetime() / time.Minute),
		Products:        products,
		RedirectURI:     c.RedirectURI,
	})
	if err != nil {
		return "", err
	}
	u, err := url.Parse(connectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("finchreauth: Finch returned a connect_url that is not an absolute URL")
	}
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
