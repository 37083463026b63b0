package finchreauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// saveFaultStore fails, or delays, the Puts that save a new token.
type saveFaultStore struct {
	finchreauth.Store
	fails atomic.Int64  // how many token saves fail
	delay time.Duration // how long a token save takes (it succeeds after)
	puts  atomic.Int64
}

func (s *saveFaultStore) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	if prev, err := s.Store.Get(ctx, r.ConnectionID); err == nil && r.Token != "" && r.Token != prev.Token {
		s.puts.Add(1)
		if s.fails.Add(-1) >= 0 {
			return 0, errors.New("database is read-only")
		}
		if s.delay > 0 {
			// The write lands after the caller gave up waiting.
			time.Sleep(s.delay)
			return s.Store.Put(context.WithoutCancel(ctx), r)
		}
	}
	return s.Store.Put(ctx, r)
}

// TestSaveAfterExchange: the token Finch issued is never silently lost. A
// save that fails is retried; one that keeps failing is reported to the
// browser as save_failed and handed to OnUnsaved, and the episode stays open;
// a save that answers after Timeout but succeeded is success.
func TestSaveAfterExchange(t *testing.T) {
	setup := func(t *testing.T, fails int64, delay time.Duration) (*reconnectRig, *saveFaultStore) {
		fs := &saveFaultStore{Store: new(finchreauth.MemoryStore), delay: delay}
		r := newReconnectRig(t, func(r *reconnectRig) {
			r.connect.AuthorizeURLs = true
			r.tr.Store = fs
			r.tr.Timeout = 300 * time.Millisecond
		})
		fs.fails.Store(fails)
		return r, fs
	}
	reconnect := func(t *testing.T, r *reconnectRig) url.Values {
		link := r.breakAndNotify(t)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		return query(t, browse(t, callback).Header.Get("Location"))
	}

	t.Run("a failed save is retried", func(t *testing.T) {
		r, fs := setup(t, 2, 0)
		q := reconnect(t, r)
		assert.Equal(t, "", q.Get("reason"), "errors: %v", r.errs.all())
		assert.EqualValues(t, 3, fs.puts.Load())
		assert.False(t, r.needsReauth(t))
		reconnected, unsaved := r.hooks()
		assert.Len(t, reconnected, 1)
		assert.Empty(t, unsaved)
	})

	t.Run("a save that keeps failing is told truthfully, and the token handed over", func(t *testing.T) {
		r, fs := setup(t, 100, 0)
		q := reconnect(t, r)
		assert.Equal(t, "save_failed", q.Get("reason"))
		assert.EqualValues(t, 4, fs.puts.Load(), "bounded retries")
		assert.True(t, r.needsReauth(t), "the episode stays open: the customer is still reminded")
		assert.Equal(t, finchreauth.Token(r.token), r.savedToken(t))
		reconnected, unsaved := r.hooks()
		assert.Empty(t, reconnected)
		require.Len(t, unsaved, 1)
		assert.Equal(t, finchreauth.ReasonSaveFailed, unsaved[0].Reason)
		assert.Equal(t, r.connID, unsaved[0].ConnectionID)
		assert.NotEmpty(t, unsaved[0].Token, "the application gets the token to keep it another way")
		assert.NotEqual(t, finchreauth.Token(r.token), unsaved[0].Token)
	})

	t.Run("a save that answers after Timeout but succeeded is success", func(t *testing.T) {
		r, _ := setup(t, 0, 500*time.Millisecond)
		q := reconnect(t, r)
		assert.Equal(t, "", q.Get("reason"), "errors: %v", r.errs.all())
		assert.Equal(t, r.connID, q.Get("connection_id"))
		assert.False(t, r.needsReauth(t))
		reconnected, unsaved := r.hooks()
		require.Len(t, reconnected, 1, "OnReconnected runs")
		assert.Empty(t, unsaved)
	})
}

// TestWhichTokenWins: a live token is never replaced by a dead one, and a
// refused save is never reported as success, whatever the order in which
// answers arrive and whatever the clocks say.
func TestWhichTokenWins(t *testing.T) {
	ctx := context.Background()

	t.Run("answers arrive in reverse order", func(t *testing.T) {
		// The employer goes through Connect twice (the notification's
		// link, then the dashboard's). Finch exchanges code A, then code
		// B, so B's token is the live one; but A's answer reaches the
		// application after B's whole callback is done.
		hold := &holdExchange{release: make(chan struct{}), held: make(chan struct{})}
		r := newReconnectRig(t, func(r *reconnectRig) {
			r.connect.AuthorizeURLs = true
			hold.base = r.finch.Client().Transport
			r.tr.Base = hold
			r.tr.Timeout = 5 * time.Second
		})
		link := r.breakAndNotify(t)
		a, err := r.finch.Approve(link)
		require.NoError(t, err)
		hold.code = query(t, a).Get("code")
		done := make(chan url.Values)
		go func() { done <- serveCallback(t, r.tr, a) }()
		<-hold.held // Finch has issued A's token; its answer is on the way
		link2, err := r.tr.ReconnectURL(ctx, r.connID)
		require.NoError(t, err)
		require.NotEqual(t, link, link2, "the first link's state was spent: a new one")
		b, err := r.finch.Approve(link2)
		require.NoError(t, err)
		assert.Equal(t, "", serveCallback(t, r.tr, b).Get("reason"))
		live := r.savedToken(t)
		close(hold.release)
		qa := <-done
		assert.Equal(t, "superseded", qa.Get("reason"), "a refused save is not reported as success")
		assert.Equal(t, live, r.savedToken(t), "the live token stays")
		assert.Equal(t, 200, r.call(t, string(r.savedToken(t))))
		_, unsaved := r.hooks()
		require.Len(t, unsaved, 1)
		assert.Equal(t, finchreauth.ReasonSuperseded, unsaved[0].Reason)
	})

	t.Run("skewed clocks: two Transports on one Store", func(t *testing.T) {
		r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
		replica := func(skew time.Duration) *finchreauth.Transport {
			tr := &finchreauth.Transport{Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store, Connect: r.connect,
				Now: func() time.Time { return r.clk.Now().Add(skew) }}
			t.Cleanup(func() { tr.Close() })
			return tr
		}
		ahead, behind := replica(time.Hour), replica(-time.Hour)
		r.finch.Break(r.connID)
		require.Equal(t, 401, r.call(t, r.token))
		for _, order := range [][2]*finchreauth.Transport{{ahead, behind}, {behind, ahead}} {
			// Each replica reconnects in turn; the later one holds the
			// live token, whichever clock it reads.
			for _, tr := range order {
				link, err := tr.ReconnectURL(ctx, r.connID)
				require.NoError(t, err)
				cb, err := r.finch.Approve(link)
				require.NoError(t, err)
				assert.Equal(t, "", serveCallback(t, tr, cb).Get("reason"), "a live token is not refused for a clock")
				assert.Equal(t, 200, r.call(t, string(r.savedToken(t))), "the connection works")
			}
		}
	})

	t.Run("SaveToken: a dead token never replaces a live one", func(t *testing.T) {
		r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
		link := r.breakAndNotify(t)
		a, err := r.finch.Approve(link)
		require.NoError(t, err)
		b, err := r.finch.Approve(link)
		require.NoError(t, err)
		dead := exchangeAt(t, r, query(t, a).Get("code"))
		live := exchangeAt(t, r, query(t, b).Get("code"))
		require.NoError(t, r.tr.SaveToken(ctx, r.connID, live))
		assert.ErrorIs(t, r.tr.SaveToken(ctx, r.connID, dead), finchreauth.ErrStaleToken)
		assert.Equal(t, live, r.savedToken(t))
	})
}

// holdExchange lets Finch answer the exchange of one code, then holds the
// answer until released.
type holdExchange struct {
	base          http.RoundTripper
	code          string
	release, held chan struct{}
	once          sync.Once
}

func (h *holdExchange) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/auth/token" || req.GetBody == nil {
		return h.base.RoundTrip(req)
	}
	body, _ := req.GetBody()
	b, _ := io.ReadAll(body)
	resp, err := h.base.RoundTrip(req)
	if h.code != "" && strings.Contains(string(b), h.code) {
		h.once.Do(func() { close(h.held) })
		<-h.release
	}
	return resp, err
}

// serveCallback runs a callback URL through tr's callback handler and
// returns the query of where it sends the browser.
func serveCallback(t *testing.T, tr *finchreauth.Transport, callback string) url.Values {
	t.Helper()
	u, err := url.Parse(callback)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/finch/callback?"+u.RawQuery, nil))
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	return query(t, rec.Header().Get("Location"))
}

// exchangeAt spends a code at Finch directly, as another process would.
func exchangeAt(t *testing.T, r *reconnectRig, code string) finchreauth.Token {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": r.finch.ClientID, "client_secret": r.finch.ClientSecret, "code": code, "redirect_uri": r.connect.RedirectURI})
	resp, err := r.finch.Client().Post(r.finch.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(readAll(t, resp), &out))
	require.NotEmpty(t, out.AccessToken)
	return finchreauth.Token(out.AccessToken)
}
