package finchreauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenLog is a fake Finch that records the token and the body of every
// data call.
type tokenLog struct {
	*fakeFinch
	mu     sync.Mutex
	tokens []string
	bodies []string
}

func (l *tokenLog) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/introspect" && !strings.HasPrefix(req.URL.Path, "/jobs/") {
		var b []byte
		if req.Body != nil {
			b, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		l.mu.Lock()
		l.tokens = append(l.tokens, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
		l.bodies = append(l.bodies, string(b))
		l.mu.Unlock()
	}
	return l.fakeFinch.RoundTrip(req)
}

// TestClientCarriesTheCurrentToken: the application calls Finch through
// tr.Client(connection) on replica B; the connection is reconnected on
// replica A. B's next call goes out with the old token (cached), Finch
// refuses it, and B sends it again, once, with the new token from the
// Store, the same body: the application sees Finch's 200. With the README's
// wiring the application kept sending the old token and got latched 401s
// for good.
func TestClientCarriesTheCurrentToken(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	finch := &tokenLog{fakeFinch: ff}
	store := new(finchreauth.MemoryStore)
	clk := newClock()
	a := &finchreauth.Transport{Base: finch, Store: store, Now: clk.Now}
	b := &finchreauth.Transport{Base: finch, Store: store, Now: clk.Now}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, a.SaveToken(ctx, "conn_1", "old"))
	client := b.Client("conn_1")
	post := func() *http.Response {
		req, _ := http.NewRequest("POST", api+"/employer/directory", strings.NewReader(`{"requests":[1]}`))
		req.Header.Set("Authorization", "Bearer whatever-the-sdk-had")
		resp, err := client.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		return resp
	}
	assert.Equal(t, 200, post().StatusCode)
	assert.Equal(t, []string{"old"}, finch.tokens, "the Store's token, not the header's")

	// A reconnect on replica A: a new token, the old one superseded.
	ff.add("new", "conn_1")
	ff.mu.Lock()
	ff.superseded["old"] = true
	ff.mu.Unlock()
	require.NoError(t, a.SaveToken(ctx, "conn_1", "new"))
	waitIdle(t, a)

	finch.tokens, finch.bodies = nil, nil
	assert.Equal(t, 200, post().StatusCode, "the application never sees the old token's 401")
	assert.Equal(t, []string{"old", "new"}, finch.tokens, "sent again, once, with the current token")
	assert.Equal(t, []string{`{"requests":[1]}`, `{"requests":[1]}`}, finch.bodies, "the same body")
	finch.tokens = nil
	assert.Equal(t, 200, post().StatusCode)
	assert.Equal(t, []string{"new"}, finch.tokens, "the new token from then on")
}

// TestClientOnlyReplaysWhatItCan: a request whose body cannot be replayed
// gets Finch's 401 as it came; its body is closed once.
func TestClientOnlyReplaysWhatItCan(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("new", "conn_1")
	store := new(finchreauth.MemoryStore)
	a := &finchreauth.Transport{Base: ff, Store: store}
	b := &finchreauth.Transport{Base: ff, Store: store}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, a.SaveToken(ctx, "conn_1", "old"))
	client := b.Client("conn_1")
	get := func() int {
		resp, err := client.Get(api + "/employer/company")
		require.NoError(t, err)
		readAll(t, resp)
		return resp.StatusCode
	}
	require.Equal(t, 200, get()) // B caches "old"
	ff.mu.Lock()
	ff.superseded["old"] = true
	ff.mu.Unlock()
	require.NoError(t, a.SaveToken(ctx, "conn_1", "new"))

	body := &closeCounter{Reader: strings.NewReader("a stream")}
	req, _ := http.NewRequest("POST", api+"/employer/directory", nil)
	req.Body = body // no GetBody: it cannot be sent twice
	resp, err := client.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 401, resp.StatusCode)
	assert.EqualValues(t, 1, body.closes.Load())
	waitIdle(t, b)
	assert.Equal(t, 200, get(), "the next request carries the new token")
}

// TestClientWithoutToken: a connection whose Store holds no token cannot be
// called: an error wrapping ErrNotFound, the request's body closed.
func TestClientWithoutToken(t *testing.T) {
	tr := &finchreauth.Transport{Base: newFakeFinch()}
	defer tr.Close()
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", api+"/employer/directory", body)
	_, err := tr.Client("conn_unknown").Do(req)
	require.Error(t, err)
	assert.True(t, errors.Is(err, finchreauth.ErrNotFound))
	assert.EqualValues(t, 1, body.closes.Load())
}

// TestTokenKnowsWhatFinchNamed: a token the application used, which the
// library learned the connection of through /introspect when Finch refused
// it, is the connection's token: Token returns it, and the reconnect
// replaces it. Token answered "not found".
func TestTokenKnowsWhatFinchNamed(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	tr := &finchreauth.Transport{Base: ff}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	tok, err := tr.Token(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.Token("tok"), tok)
}
