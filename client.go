package finchreauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Client returns an *http.Client for the calls an application makes to Finch
// on behalf of one connection, in the way of oauth2.NewClient: every request
// carries the connection's current token from the Store, whatever
// Authorization header it had (an SDK's own token included), and goes
// through the Transport. So the application never holds a token it has to
// refresh: after a reconnect on any replica, the next request carries the
// new token.
//
// The token is cached in this process and read again from the Store every
// RetryInterval, and at once when Finch refuses it (or answers for it from
// the latch): a request that went out with a token the Store has since
// replaced is sent again, once, with the current token, when its body can be
// replayed (it has none, or GetBody). A connection whose Store holds no
// token gets an error wrapping ErrNotFound. The client has no Timeout:
// bound each call with its context.
//
// With the official Finch Go SDK:
//
//	option.WithHTTPClient(tr.Client(connectionID))
func (t *Transport) Client(connectionID string) *http.Client {
	return &http.Client{Transport: connClient{t: t, conn: connectionID}}
}

// connClient is the RoundTripper of Client.
type connClient struct {
	t    *Transport
	conn string
}

func (c connClient) RoundTrip(req *http.Request) (*http.Response, error) {
	t := c.t
	t.init()
	tok, err := t.currentToken(req.Context(), c.conn, "")
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.roundTrip(withToken(req, req.Body, tok), t.base())
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}
	// Finch refused it, or the latch answered: if the Store holds another
	// token now, that one is the connection's.
	newer, err := t.currentToken(req.Context(), c.conn, tok)
	if err != nil || newer == tok {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxPeek))
	resp.Body.Close()
	var body io.ReadCloser = http.NoBody
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		body = b
	}
	return t.roundTrip(withToken(req, body, newer), t.base())
}

func (c connClient) CloseIdleConnections() { closeIdle(c.t.base()) }

// withToken is a copy of req with body and the connection's token.
func withToken(req *http.Request, body io.ReadCloser, tok Token) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", "Bearer "+string(tok))
	return r
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// cachedToken is a connection's token as this process knows it.
type cachedToken struct {
	tok Token
	at  time.Time // when it was read from the Store
}

// tokenCache holds the tokens of the connections Client serves.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

func (c *tokenCache) get(conn string) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[conn]
	return e, ok
}

func (c *tokenCache) set(conn string, tok Token, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedToken{}
	}
	c.m[conn] = cachedToken{tok, at}
}

// currentToken returns the connection's token: the cached one, unless it
// is older than RetryInterval or is refused (the token a request just went
// out with, which Finch refused); then the Store's, one read at a time per
// connection in this process.
func (t *Transport) currentToken(ctx context.Context, conn string, refused Token) (Token, error) {
	if err := checkID(conn); err != nil {
		return "", err
	}
	if e, ok := t.tokens.get(conn); ok && e.tok != refused && t.now().Sub(e.at) < t.retryInterval() {
		return e.tok, nil
	}
	v, err, _ := t.group.Do("token:"+conn, func() (any, error) {
		// Detached from this caller: one caller's cancellation must not
		// fail the others waiting on the same read.
		tok, err := t.Token(context.WithoutCancel(ctx), conn)
		if err == nil {
			t.tokens.set(conn, tok, t.now())
		}
		return tok, err
	})
	if err != nil {
		return "", errors.Join(errors.New("finchreauth: no token to call Finch with for connection "+quoteID(conn)), err)
	}
	return v.(Token), nil
}
