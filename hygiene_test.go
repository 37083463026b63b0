package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hygiene gathers the secrets of a flow and everything the library said
// during it, and finds the one in the other.
type hygiene struct {
	mu      sync.Mutex
	secrets map[string]string // name -> secret
	dumps   []string

	logs   lockedWriter
	logger *slog.Logger // JSON and text, at Debug, into logs
}

func newHygiene() *hygiene {
	h := &hygiene{secrets: map[string]string{}, logs: lockedWriter{b: new(bytes.Buffer), mu: new(sync.Mutex)}}
	h.logger = newDebugLogger(h.logs)
	return h
}

// newDebugLogger logs everything, as JSON and as text, to w.
func newDebugLogger(w lockedWriter) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	return slog.New(slog.NewMultiHandler(slog.NewJSONHandler(w, opts), slog.NewTextHandler(w, opts)))
}

func (h *hygiene) secret(name, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if value != "" {
		h.secrets[name] = value
	}
}

// dump keeps each value as fmt prints it (%v %+v %#v %s), as encoding/json
// marshals it (or the error it gives), and as both log handlers write it as
// an attribute.
func (h *hygiene) dump(v ...any) {
	for _, x := range v {
		b, err := json.Marshal(x)
		h.mu.Lock()
		h.dumps = append(h.dumps, fmt.Sprintf("%v|%+v|%#v|%s", x, x, x, x), string(b), fmt.Sprint(err))
		h.mu.Unlock()
		h.logger.Debug("dump", "value", x)
	}
}

// forms are the spellings under which a secret would appear in a log line,
// a JSON document, a Go-quoted string or a URL.
func forms(secret string) []string {
	j, _ := json.Marshal(secret)
	q := strconv.Quote(secret)
	return []string{secret, string(j[1 : len(j)-1]), q[1 : len(q)-1], url.QueryEscape(secret), url.PathEscape(secret)}
}

// leaks names the secrets that appear in text.
func leaks(text string, secrets map[string]string) []string {
	var out []string
	for name, secret := range secrets {
		for _, f := range forms(secret) {
			if strings.Contains(text, f) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestSecretHygieneFullFlow runs the whole flow, failures included, with
// loggers that record everything (JSON and text, at Debug), formats every
// hook's arguments with every common verb and with encoding/json, and keeps
// every ErrorHandler error and every URL the browser sees; then looks for
// each access token, authorization code, the client secret and the state
// key (raw and in its base64 forms) in all of it.
func TestSecretHygieneFullFlow(t *testing.T) {
	s := finchtest.NewServer()
	defer s.Close()
	clk := newClock()
	s.SetClock(clk.Now)
	token := s.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := s.ConnectionForToken(token)
	stateKey := []byte("state-key-SECRET-0123456789abcdef")
	ctx := context.Background()

	h := newHygiene()
	var errs errorLog
	onError := func(ctx context.Context, err error) {
		errs.handle(ctx, err)
		h.dump(err, err.Error())
	}
	var notified atomic.Int64
	var lastEvent atomic.Value
	store := new(finchreauth.MemoryStore)
	c := &finchreauth.Connect{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret, StateKeys: [][]byte{stateKey},
		RedirectURI: "https://app.example/cb", SuccessURL: "https://app.example/ok", FailureURL: "https://app.example/failed",
		ConnectBaseURL: s.URL, AuthorizeURLs: true,
		OnUnsaved: func(_ context.Context, r finchreauth.Reconnection) {
			h.secret("unsaved access token", string(r.Token))
			h.dump(r, r.Token, []finchreauth.Token{r.Token})
		},
	}
	tr := &finchreauth.Transport{
		Base: s.Client().Transport, APIBaseURL: s.URL, Store: store, Connect: c,
		Logger: h.logger, ErrorHandler: onError, Now: clk.Now,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			h.dump(e)
			if notified.Add(1) == 1 {
				return errors.New("first notification fails")
			}
			lastEvent.Store(e)
			return nil
		}),
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) { h.dump(r, r.Token, &r.Token) },
	}
	defer tr.Close()
	require.NoError(t, tr.SaveToken(ctx, conn.ID, finchreauth.Token(token)))

	h.secret("access token", token)
	h.secret("client secret", s.ClientSecret)
	h.secret("state key", string(stateKey))
	for i, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		h.secret(fmt.Sprintf("state key, base64 form %d", i), enc.EncodeToString(stateKey))
	}

	callAPI := func(tok string) int {
		resp, err := tr.RoundTrip(newRequest(t, "GET", s.URL+"/employer/directory?limit=5", tok, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
		h.dump(resp.Header)
		return resp.StatusCode
	}
	handler := tr.CallbackHandler()
	callback := func(rawQuery string) string {
		q, _ := url.ParseQuery(rawQuery)
		if code := q.Get("code"); code != "" {
			h.secret("code "+finchreauth.Token(code).Fingerprint(), code)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+rawQuery, nil))
		loc := rec.Header().Get("Location")
		h.dump(loc, rec.Body.String(), rec.Header())
		return loc
	}
	approve := func(link string) string {
		cb, err := s.Approve(link)
		require.NoError(t, err)
		u, err := url.Parse(cb)
		require.NoError(t, err)
		return u.RawQuery
	}

	// Break. /introspect fails once, so no link can be made (an authorize
	// URL needs the products); then the notification fails once; then it
	// goes out: after RetryInterval, then twice that (failures back off).
	s.Break(conn.ID)
	s.InjectFault(finchtest.Fault{Path: "/introspect", Status: 400, Times: 1})
	require.Equal(t, 401, callAPI(token))
	clk.advance(30 * time.Second)
	require.Equal(t, 401, callAPI(token))
	clk.advance(60 * time.Second)
	require.Equal(t, 401, callAPI(token))
	require.EqualValues(t, 2, notified.Load(), "the first try makes no link, the second fails; errors: %v", errs.all())
	link := lastEvent.Load().(finchreauth.Event).ReconnectURL
	require.NotEmpty(t, link)
	dashboard, err := tr.ReconnectURL(ctx, conn.ID)
	require.NoError(t, err)
	require.Equal(t, link, dashboard)
	h.dump(link)

	// A failed exchange, a forged state, a mismatch, Connect's error
	// parameter with a line break in it, then success.
	s.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 400, Times: 1})
	cb := approve(link)
	assert.Equal(t, "exchange_failed", query(t, callback(cb)).Get("reason"))
	assert.Equal(t, "invalid_state", query(t, callback(strings.Replace(cb, "state=", "state=x", 1))).Get("reason"))
	cb, err = s.ApproveAs(link, "conn_other")
	require.NoError(t, err)
	u, _ := url.Parse(cb)
	assert.Equal(t, "connection_mismatch", query(t, callback(u.RawQuery)).Get("reason"))
	link2, err := tr.ReconnectURL(ctx, conn.ID)
	require.NoError(t, err)
	require.NotEqual(t, link, link2, "the first link's session was spent: a new one")
	h.dump(link2)
	injection := "access_denied\r\nfinchreauth: forged log line\n" + strings.Repeat("é", 300) + "\xff\xfe"
	loc := callback(url.Values{"error": {injection}, "state": {query(t, link2).Get("state")}}.Encode())
	assert.Equal(t, "cancelled", query(t, loc).Get("reason"))
	assert.NotContains(t, loc, "forged")
	require.Equal(t, "https://app.example/ok?connection_id="+url.QueryEscape(conn.ID), callback(approve(link2)), "errors: %v", errs.all())
	newTok, err := tr.Token(ctx, conn.ID)
	require.NoError(t, err)
	h.secret("new access token", string(newTok))
	h.dump(newTok, &newTok)
	assert.Equal(t, 200, callAPI(string(newTok)))
	assert.Equal(t, 401, callAPI(token)) // the old token, after the reconnect: stale

	// The start endpoint and the dashboard.
	rec := httptest.NewRecorder()
	tr.StartHandler(func(*http.Request) (string, error) { return conn.ID, nil }).ServeHTTP(rec, httptest.NewRequest("GET", "/start", nil))
	require.Equal(t, http.StatusSeeOther, rec.Code)
	h.dump(rec.Header().Get("Location"))
	st, err := tr.Status(ctx, conn.ID)
	require.NoError(t, err)
	h.dump(st)
	rec = httptest.NewRecorder()
	tr.StatusHandler(func(*http.Request) (string, error) { return conn.ID, nil }).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	h.dump(rec.Body.String())
	stored, err := store.Get(ctx, conn.ID)
	require.NoError(t, err)
	require.Equal(t, newTok, stored.Token)
	h.dump(stored, &stored, string(stored.Data))

	require.NoError(t, tr.Close())
	h.dump(c, *c, []*finchreauth.Connect{c}) // the Transport itself: TestPrintingTheTransport
	h.logger.Info("configuration", "connect", c, slog.Any("connect_value", *c))

	// Connect's error parameter reached the ErrorHandler sanitised: one
	// line, valid UTF-8, cut.
	var cancelled []string
	for _, err := range errs.all() {
		if errors.Is(err, finchreauth.ReasonCancelled) {
			cancelled = append(cancelled, err.Error())
		}
	}
	require.Len(t, cancelled, 1)
	msg := cancelled[0]
	assert.Contains(t, msg, "access_denied")
	assert.NotContains(t, msg, "\r")
	assert.NotContains(t, msg, "\n")
	assert.True(t, utf8.ValidString(msg), "valid UTF-8: %q", msg)
	assert.NotContains(t, msg, strings.Repeat("é", 65), "cut")
	assert.Less(t, len(msg), 400, "cut: %q", msg)
	for _, line := range strings.Split(strings.TrimSuffix(h.logs.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, `{"time":`) && !strings.HasPrefix(line, "time=") {
			t.Errorf("a log line that no handler began: %q", line)
		}
	}

	h.mu.Lock()
	dumps := append([]string(nil), h.dumps...)
	secrets := h.secrets
	h.mu.Unlock()
	dumps = append(dumps, h.logs.String())
	for _, err := range errs.all() {
		dumps = append(dumps, err.Error(), fmt.Sprintf("%+v", err))
	}
	require.Greater(t, len(dumps), 100)
	all := strings.Join(dumps, "\n")
	require.Contains(t, all, newTok.Fingerprint(), "tokens are named by fingerprint")
	require.Contains(t, h.logs.String(), finchreauth.Token(token).Fingerprint(), "logs name the token by fingerprint")
	assert.Empty(t, leaks(all, secrets), "secrets in what the library said (%d bytes)", len(all))
	// 3 access tokens (the first, the new one, the other account's that
	// was not saved), the client secret, the state key in 5 forms, and the 3
	// codes Connect issued (the forged callback reuses one).
	assert.Len(t, secrets, 12, "every secret was gathered and checked")

	// The search can fail: a secret planted in a log record, through
	// either handler, is found.
	for name, secret := range secrets {
		w := lockedWriter{b: new(bytes.Buffer), mu: new(sync.Mutex)}
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		slog.New(slog.NewJSONHandler(w, opts)).Debug("planted", "value", secret)
		slog.New(slog.NewTextHandler(w, opts)).Debug("planted", "value", secret)
		for _, line := range strings.SplitAfter(w.String(), "\n") {
			if line != "" {
				assert.Equal(t, []string{name}, leaks(line, map[string]string{name: secret}), "planted in %q", line)
			}
		}
	}
}

// TestPrintingTheTransport: an application that prints or logs its
// Transport, its Store or its Connect (a start-up log of the configuration,
// a debugging %v) learns nothing secret: not a token the Store holds, not
// the client secret, not the state key. The Transport has been used, so
// that its Store holds tokens, an episode, a link and a claim.
func TestPrintingTheTransport(t *testing.T) {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})
	conn, _ := s.ConnectionForToken(token)
	stateKey := []byte("state-key-SECRET-0123456789abcdef")
	h := newHygiene()
	h.secret("access token", token)
	h.secret("client secret", s.ClientSecret)
	h.secret("state key", string(stateKey))
	for i, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		h.secret(fmt.Sprintf("state key, base64 form %d", i), enc.EncodeToString(stateKey))
	}
	store := new(finchreauth.MemoryStore)
	c := &finchreauth.Connect{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret, StateKeys: [][]byte{stateKey},
		RedirectURI: "https://app.example/cb", ConnectBaseURL: s.URL, AuthorizeURLs: true,
	}
	tr := &finchreauth.Transport{Base: s.Client().Transport, APIBaseURL: s.URL, Store: store, Connect: c, Logger: h.logger}
	ctx := context.Background()
	require.NoError(t, tr.SaveToken(ctx, conn.ID, finchreauth.Token(token)))
	s.Break(conn.ID)
	resp, err := tr.RoundTrip(newRequest(t, "GET", s.URL+"/employer/company", token, nil))
	require.NoError(t, err)
	readAll(t, resp)
	link, err := tr.ReconnectURL(ctx, conn.ID)
	require.NoError(t, err)
	cb, err := s.Approve(link)
	require.NoError(t, err)
	u, _ := url.Parse(cb)
	h.secret("code", u.Query().Get("code"))
	rec := httptest.NewRecorder()
	tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+u.RawQuery, nil))
	require.Equal(t, http.StatusOK, rec.Code, "reconnected: %s", rec.Body.String())
	newTok, err := tr.Token(ctx, conn.ID)
	require.NoError(t, err)
	h.secret("new access token", string(newTok))
	require.NoError(t, tr.Close())

	for _, x := range []any{tr, tr.Store, store, c, *c} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			printed := fmt.Sprintf(verb, x)
			assert.Empty(t, leaks(printed, h.secrets), "%s of a %T", verb, x)
		}
		b, err := json.Marshal(x)
		assert.Empty(t, leaks(string(b)+fmt.Sprint(err), h.secrets), "json.Marshal of a %T", x)
		w := lockedWriter{b: new(bytes.Buffer), mu: new(sync.Mutex)}
		newDebugLogger(w).Info("configuration", "value", x)
		assert.Empty(t, leaks(w.String(), h.secrets), "a %T as a log/slog attribute", x)
	}
	assert.Empty(t, leaks(h.logs.String(), h.secrets), "the Transport's own log")
	assert.Len(t, h.secrets, 9)
}
