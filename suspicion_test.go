package finchreauth_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fiveHundreds answers data calls made with the tokens in failing with
// Finch's 500 server_error, and passes the rest to ff.
type fiveHundreds struct {
	ff      *fakeFinch
	failing map[string]bool
	data    atomic.Int64 // data calls answered 500
}

func (f *fiveHundreds) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := req.Header.Get("Authorization")[len("Bearer "):]
	if req.URL.Path != "/introspect" && f.failing[tok] {
		if req.Body != nil {
			req.Body.Close()
		}
		f.data.Add(1)
		return jsonResponse(req, 500, `{"code":500,"name":"server_error","message":"Internal server error"}`), nil
	}
	return f.ff.RoundTrip(req)
}

func suspicionRig(t *testing.T, failing ...string) (*finchreauth.Transport, *fiveHundreds, *recorder) {
	t.Helper()
	ff := newFakeFinch()
	f := &fiveHundreds{ff: ff, failing: map[string]bool{}}
	notes := &recorder{}
	tr := &finchreauth.Transport{Base: f, Notifier: notes}
	t.Cleanup(func() { tr.Close() })
	for i := range 8 {
		tok := fmt.Sprintf("tok-%d", i)
		ff.add(tok, fmt.Sprintf("conn_%d", i))
		require.NoError(t, tr.SaveToken(context.Background(), fmt.Sprintf("conn_%d", i), finchreauth.Token(tok)))
	}
	for _, tok := range failing {
		f.failing[tok] = true
	}
	return tr, f, notes
}

func get(t *testing.T, tr *finchreauth.Transport, tok string) int {
	t.Helper()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", tok, nil))
	require.NoError(t, err)
	readAll(t, resp)
	return resp.StatusCode
}

// TestRepeated500sAreAReasonToAsk (issue 19 #2): Finch answers a revoked
// connection's calls with 500s; the third on one token, while Finch answers
// the others, makes the library ask /introspect, which says the token is
// refused: an episode opens and the customer is told. The 500s themselves
// reach the caller untouched and latch nothing. Before, 500s were passed
// through and nothing ever asked.
func TestRepeated500sAreAReasonToAsk(t *testing.T) {
	tr, f, notes := suspicionRig(t, "tok-1")
	introspects := f.ff.count("/introspect")
	for i := range 2 {
		assert.Equal(t, 500, get(t, tr, "tok-1"))
		assert.Equal(t, 200, get(t, tr, fmt.Sprintf("tok-%d", i+2)))
	}
	waitIdle(t, tr)
	assert.Equal(t, introspects, f.ff.count("/introspect"), "two 500s are not yet a reason")

	f.ff.mu.Lock()
	delete(f.ff.conns, "tok-1") // revoked: /introspect refuses it
	f.ff.mu.Unlock()
	assert.Equal(t, 500, get(t, tr, "tok-1"))
	waitIdle(t, tr)
	assert.Equal(t, introspects+1, f.ff.count("/introspect"), "the third: Finch is asked")
	require.Len(t, notes.delivered(), 1)
	st, err := tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)

	assert.Equal(t, 500, get(t, tr, "tok-1"), "nothing latched: the call still goes to Finch")
	waitIdle(t, tr)
	assert.EqualValues(t, 4, f.data.Load())
	assert.Equal(t, introspects+1, f.ff.count("/introspect"), "asked at most once an hour")
}

// TestRepeated500sAloneChangeNothing: when Finch says the connection works
// and a data call with the token works, the 500s were Finch's: no episode,
// nobody told.
func TestRepeated500sAloneChangeNothing(t *testing.T) {
	tr, f, notes := suspicionRig(t, "tok-1")
	introspects := f.ff.count("/introspect")
	for range 3 {
		assert.Equal(t, 500, get(t, tr, "tok-1"))
	}
	waitIdle(t, tr)
	assert.Equal(t, introspects+1, f.ff.count("/introspect"))
	assert.Empty(t, notes.delivered())
	st, err := tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
}

// TestFinchOutageIsNotASuspicion: 500s on many tokens at once are Finch's
// trouble: nobody is asked about.
func TestFinchOutageIsNotASuspicion(t *testing.T) {
	toks := []string{"tok-0", "tok-1", "tok-2", "tok-3", "tok-4", "tok-5"}
	tr, f, _ := suspicionRig(t, toks...)
	introspects := f.ff.count("/introspect")
	for range 3 {
		for _, tok := range toks {
			assert.Equal(t, 500, get(t, tr, tok))
		}
	}
	waitIdle(t, tr)
	assert.Equal(t, introspects, f.ff.count("/introspect"), "every token's third 500 came after 5 tokens had failed")
}
