package finchreauth_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLatch(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("other", "conn_2")
	ff.setBroken("old", true)
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Now: clk.Now, LatchTTL: 5 * time.Minute}
	defer tr.Close()
	call := func(token string) int {
		t.Helper()
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", token, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
		return resp.StatusCode
	}

	require.Equal(t, 401, call("old"))
	require.EqualValues(t, 1, ff.count("/employer/company"))

	t.Run("answers without calling Finch, with Finch's own body", func(t *testing.T) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "old", nil))
		require.NoError(t, err)
		assert.Equal(t, 401, resp.StatusCode)
		assert.Equal(t, "latched", resp.Header.Get("Finchreauth"))
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		body := readAll(t, resp)
		assert.JSONEq(t, `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`, string(body))
		assert.EqualValues(t, len(body), resp.ContentLength)
		assert.Equal(t, fmt.Sprint(len(body)), resp.Header.Get("Content-Length"))
		assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
		assert.EqualValues(t, 1, ff.count("/employer/company"), "Finch was not called")
	})

	t.Run("other tokens pass", func(t *testing.T) {
		assert.Equal(t, 200, call("other"))
	})

	t.Run("a token is latched by its value, not its header spelling", func(t *testing.T) {
		req := newRequest(t, "GET", api+"/employer/company", "", nil)
		req.Header.Set("Authorization", "bearer   old")
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, "latched", resp.Header.Get("Finchreauth"))
		readAll(t, resp)
	})

	t.Run("expires after LatchTTL", func(t *testing.T) {
		n := ff.count("/employer/company")
		clk.advance(5*time.Minute - time.Second)
		call("old")
		assert.Equal(t, n, ff.count("/employer/company"), "still latched")
		clk.advance(time.Second)
		assert.Equal(t, 401, call("old"))
		assert.Equal(t, n+1, ff.count("/employer/company"), "reached Finch again")
	})

	t.Run("SaveToken clears the connection's latch", func(t *testing.T) {
		call("old")
		n := ff.count("/employer/company")
		ff.setBroken("old", false) // say the old token works again, as a sandbox flip does
		ff.add("new", "conn_1")
		require.NoError(t, tr.SaveToken(context.Background(), "conn_1", "new"))
		assert.Equal(t, n+1, ff.count("/employer/company"), "SaveToken asked Finch whether the new token works")
		assert.Equal(t, 200, call("old"), "the latch no longer answers for conn_1")
		assert.Equal(t, n+2, ff.count("/employer/company"))
	})
}

func TestLatchDisabled(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	notes := &recorder{}
	tr := &finchreauth.Transport{Base: ff, LatchTTL: -1, Notifier: notes}
	defer tr.Close()
	for range 3 {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
		require.NoError(t, err)
		assert.Equal(t, "detected", resp.Header.Get("Finchreauth"))
		readAll(t, resp)
		waitIdle(t, tr)
	}
	assert.EqualValues(t, 3, ff.count("/employer/company"), "every call reaches Finch")
	assert.EqualValues(t, 1, notes.n.Load(), "the Store still sends one notification")
}

func TestStaleTokenAfterReconnect(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("new", "conn_1")
	ff.setBroken("old", true)
	store := new(finchreauth.MemoryStore)
	notes := &recorder{}
	clk := newClock()
	var reconnections []finchreauth.Reconnection
	var mu sync.Mutex
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes, Now: clk.Now,
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) {
			mu.Lock()
			reconnections = append(reconnections, r)
			mu.Unlock()
		}}
	ctx := context.Background()
	require.NoError(t, tr.SaveToken(ctx, "conn_1", "old"))

	get := func(token string) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", token, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
	}
	get("old")
	require.EqualValues(t, 1, notes.n.Load())
	broke := clk.Now()
	clk.advance(time.Minute)
	require.NoError(t, tr.SaveToken(ctx, "conn_1", "new"))

	// A job still holding the old token calls Finch: the old token stays
	// dead, but the connection is healthy and nobody is told again.
	get("old")
	assert.EqualValues(t, 1, notes.n.Load())
	st, err := tr.Status(ctx, "conn_1")
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	tok, err := tr.Token(ctx, "conn_1")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.Token("new"), tok)

	// A dead token never replaces a live one.
	assert.ErrorIs(t, tr.SaveToken(ctx, "conn_1", "old"), finchreauth.ErrStaleToken)
	tok, err = tr.Token(ctx, "conn_1")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.Token("new"), tok)

	tr.Close() // OnReconnected runs detached: wait for it
	require.Len(t, reconnections, 1, "OnReconnected once for the one episode")
	r := reconnections[0]
	assert.Equal(t, "conn_1", r.ConnectionID)
	assert.Equal(t, "save", r.Via)
	assert.True(t, r.BrokenSince.Equal(broke), "when the connection broke")
	assert.Equal(t, time.Minute, r.Downtime())
	assert.Equal(t, 1, r.Notifications)
}

// TestReconnectSupersedesUnsavedToken: the application never saved its
// first token through the Store. After the reconnect saves a new one, calls
// still carrying the old token must not start a second episode (and a second
// e-mail) on the connection just repaired.
func TestReconnectSupersedesUnsavedToken(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("new", "conn_1")
	ff.setBroken("old", true)
	notes := &recorder{}
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Notifier: notes, Now: clk.Now}
	defer tr.Close()
	get := func(token string) int {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", token, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
		return resp.StatusCode
	}
	require.Equal(t, 401, get("old"))
	require.EqualValues(t, 1, notes.n.Load())
	clk.advance(time.Minute)
	require.NoError(t, tr.SaveToken(context.Background(), "conn_1", "new"))
	assert.Equal(t, 401, get("old"), "the old token reaches Finch again (the latch was cleared) and is refused")
	assert.Equal(t, 200, get("new"))
	assert.EqualValues(t, 1, notes.n.Load(), "no second notification")
}
