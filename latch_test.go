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

// clock is a settable clock for a Transport's Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

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
		assert.True(t, finchreauth.IsReauthResponse(resp))
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
		_, err := tr.SaveToken(context.Background(), finchreauth.Token{ConnectionID: "conn_1", AccessToken: "new", IssuedAt: clk.Now()})
		require.NoError(t, err)
		assert.Equal(t, 200, call("old"), "the latch no longer answers for conn_1")
		assert.Equal(t, n+1, ff.count("/employer/company"))
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
	}
	assert.EqualValues(t, 3, ff.count("/employer/company"), "every call reaches Finch")
	assert.EqualValues(t, 1, notes.n.Load(), "the Store still sends one notification")
}

func TestStaleTokenAfterReconnect(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("new", "conn_1")
	ff.setBroken("old", true)
	store := finchreauth.NewMemoryStore()
	notes := &recorder{}
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes, Now: clk.Now}
	defer tr.Close()
	ctx := context.Background()
	_, err := tr.SaveToken(ctx, finchreauth.Token{ConnectionID: "conn_1", AccessToken: "old", IssuedAt: clk.Now()})
	require.NoError(t, err)

	get := func(token string) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", token, nil))
		require.NoError(t, err)
		readAll(t, resp)
	}
	get("old")
	require.EqualValues(t, 1, notes.n.Load())
	clk.advance(time.Minute)
	prev, err := tr.SaveToken(ctx, finchreauth.Token{ConnectionID: "conn_1", AccessToken: "new", IssuedAt: clk.Now()})
	require.NoError(t, err)
	assert.True(t, prev.NeedsReauth)
	assert.True(t, prev.Since.Equal(clk.Now().Add(-time.Minute)), "SaveToken reports when the connection broke")

	// A job still holding the old token calls Finch: the old token stays
	// dead, but the connection is healthy and nobody is told again.
	get("old")
	assert.EqualValues(t, 1, notes.n.Load())
	st, err := store.State(ctx, "conn_1")
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	assert.Equal(t, finchreauth.Fingerprint("new"), st.TokenFingerprint)

	// Older tokens never overwrite newer ones.
	_, err = tr.SaveToken(ctx, finchreauth.Token{ConnectionID: "conn_1", AccessToken: "old", IssuedAt: clk.Now().Add(-time.Hour)})
	assert.ErrorIs(t, err, finchreauth.ErrStaleToken)
	tok, err := store.Token(ctx, "conn_1")
	require.NoError(t, err)
	assert.Equal(t, "new", tok.AccessToken)
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
		return resp.StatusCode
	}
	require.Equal(t, 401, get("old"))
	require.EqualValues(t, 1, notes.n.Load())
	clk.advance(time.Minute)
	_, err := tr.SaveToken(context.Background(), finchreauth.Token{ConnectionID: "conn_1", AccessToken: "new", IssuedAt: clk.Now()})
	require.NoError(t, err)
	assert.Equal(t, 401, get("old"), "the old token reaches Finch again (the latch was cleared) and is refused")
	assert.Equal(t, 200, get("new"))
	assert.EqualValues(t, 1, notes.n.Load(), "no second notification")
}
