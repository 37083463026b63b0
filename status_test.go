package finchreauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatus(t *testing.T) {
	r := newReconnectRig(t, nil)
	ctx := context.Background()
	st, err := r.tr.Status(ctx, r.connID)
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	st, err = r.tr.Status(ctx, "conn_never_seen")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.Status{ConnectionID: "conn_never_seen"}, st, "unknown is healthy")

	broke := r.clk.Now()
	link := r.breakAndNotify(t)
	st, err = r.tr.Status(ctx, r.connID)
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.True(t, st.Since.Equal(broke))
	assert.Equal(t, 1, st.Notifications)
	assert.True(t, st.LastNotified.Equal(broke))
	assert.True(t, st.NextReminder.Equal(broke.Add(24*time.Hour)))
	assert.Equal(t, link, st.ReconnectURL, "where the reconnect button goes")
	assert.Equal(t, "Acme Corp", st.CustomerName)
	assert.Equal(t, "gusto", st.ProviderID)
	assert.NotEmpty(t, st.Products)
	assert.True(t, st.ReconnectStarted.IsZero())

	t.Run("a reconnect that came back and failed", func(t *testing.T) {
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		r.finch.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 400})
		r.clk.advance(time.Minute)
		assert.Equal(t, "exchange_failed", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
		r.finch.ClearFaults()
		st, err := r.tr.Status(ctx, r.connID)
		require.NoError(t, err)
		assert.True(t, st.ReconnectStarted.Equal(r.clk.Now()))
		assert.Empty(t, st.ReconnectURL, "that link's session is spent")
	})

	t.Run("the handler, authorised as the start endpoint is", func(t *testing.T) {
		h := r.tr.StatusHandler(func(req *http.Request) (string, error) {
			if req.Header.Get("X-User") != "owner" {
				return "", errors.New("not yours")
			}
			return r.connID, nil
		})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/status", nil)
		req.Header.Set("X-User", "owner")
		h.ServeHTTP(rec, req)
		require.Equal(t, 200, rec.Code)
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		var got map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		assert.Equal(t, true, got["needs_reauth"])
		assert.Equal(t, r.connID, got["connection_id"])
		assert.EqualValues(t, 1, got["notifications"])
		assert.Contains(t, got, "since")

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		assert.Equal(t, 403, rec.Code)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/status", nil))
		assert.Equal(t, 405, rec.Code)
	})
}

// TestNeedsReauth: an operator lists every connection that needs
// re-authentication, oldest first, page by page.
func TestNeedsReauth(t *testing.T) {
	ff := newFakeFinch()
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Now: clk.Now}
	defer tr.Close()
	var want []string
	for i := range 7 {
		tok := "tok_" + string(rune('a'+i))
		conn := "conn_" + string(rune('g'-i)) // ids in the reverse order of breakage
		ff.add(tok, conn)
		ff.setBroken(tok, true)
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", tok, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
		want = append(want, conn)
		clk.advance(time.Minute)
	}
	ff.add("tok_ok", "conn_ok")
	require.NoError(t, tr.SaveToken(context.Background(), "conn_ok", "tok_ok"))
	var got []string
	var after finchreauth.Status
	for {
		page, err := tr.NeedsReauth(context.Background(), after, 3)
		require.NoError(t, err)
		for _, st := range page {
			assert.True(t, st.NeedsReauth)
			got = append(got, st.ConnectionID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1]
	}
	assert.Equal(t, want, got, "oldest episode first, healthy connections left out")
}

// TestReconnectedOncePerEpisode: OnReconnected fires once per episode,
// whatever ended it, even when several paths report the same recovery (a
// webhook says "connected" during the callback's exchange, then the
// callback saves the token).
func TestReconnectedOncePerEpisode(t *testing.T) {
	r := webhookRig(t, nil)
	link := r.breakAndNotify(t)
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	assert.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"), "errors: %v", r.errs.all())
	require.NoError(t, r.tr.SaveToken(context.Background(), r.connID, r.savedToken(t))) // the application saves it too
	assert.Equal(t, 200, r.call(t, string(r.savedToken(t))))
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.Equal(t, "callback", reconnected[0].Via, "Finch's connected webhook came during the exchange: the callback ends the episode, with the token")
	assert.Equal(t, r.savedToken(t), reconnected[0].Token)
}
