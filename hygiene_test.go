package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretHygieneFullFlow runs the whole flow, failures included, with a
// logger that records everything, formats every hook's arguments with every
// common verb, and keeps every error string and every URL the library
// builds; then looks for each access token, authorization code, the client
// secret and the state key in all of it.
func TestSecretHygieneFullFlow(t *testing.T) {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{CustomerName: "Acme Corp"})
	conn, _ := s.ConnectionForToken(token)
	stateKey := []byte("state-key-SECRET-0123456789abcdef")

	var mu sync.Mutex
	var dumps []string
	dump := func(v ...any) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range v {
			dumps = append(dumps, fmt.Sprintf("%v|%+v|%#v|%s", x, x, x, x))
		}
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	onError := func(_ context.Context, err error) { dump(err, err.Error()) }

	store := finchreauth.NewMemoryStore()
	tr := &finchreauth.Transport{Base: s.Client().Transport, Store: store, Logger: logger, ErrorHandler: onError}
	defer tr.Close()
	c := &finchreauth.Connect{
		ClientID: s.ClientID, ClientSecret: s.ClientSecret, StateKeys: [][]byte{stateKey},
		RedirectURI: "https://app.example/cb", SuccessURL: "https://app.example/ok", FailureURL: "https://app.example/failed",
		APIBaseURL: s.URL, ConnectBaseURL: s.URL, Transport: tr, AuthorizeURLs: true, ErrorHandler: onError,
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) { dump(r, r.Token, &r.Token) },
		OnMismatch:    func(_ context.Context, r finchreauth.Reconnection) { dump(r, r.Token, []finchreauth.Token{r.Token}) },
		Authorize:     func(*http.Request) (string, error) { return conn.ID, nil },
	}
	tr.Links = c
	tr.Notifier = finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
		dump(e)
		return fmt.Errorf("first notification fails")
	})
	_, err := tr.SaveToken(context.Background(), finchreauth.Token{ConnectionID: conn.ID, AccessToken: token})
	require.NoError(t, err)

	secrets := map[string]string{"access token": token, "client secret": s.ClientSecret}
	addSecret := func(name, v string) {
		secrets[name] = v
	}
	for i, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		addSecret(fmt.Sprintf("state key, base64 form %d", i), enc.EncodeToString(stateKey))
	}
	addSecret("state key", string(stateKey))

	callAPI := func(tok string) {
		resp, err := tr.RoundTrip(newRequest(t, "GET", s.URL+"/employer/directory?limit=5", tok, nil))
		require.NoError(t, err)
		readAll(t, resp)
		dump(resp.Header)
	}
	handler := c.CallbackHandler()
	callback := func(cb string) string {
		u, _ := url.Parse(cb)
		if code := u.Query().Get("code"); code != "" {
			addSecret("code "+finchreauth.Fingerprint(code), code)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/cb?"+u.RawQuery, nil))
		loc := rec.Header().Get("Location")
		dump(loc, rec.Body.String())
		return loc
	}

	// Break; /introspect fails once; the notification fails once, then
	// works on the next detection.
	s.Break(conn.ID)
	s.InjectFault(finchtest.Fault{Path: "/introspect", Status: 400, Times: 1})
	callAPI(token)
	tr.Notifier = finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error { dump(e); return nil })
	_, err = tr.SaveToken(context.Background(), finchreauth.Token{ConnectionID: conn.ID, AccessToken: token}) // clears the latch
	require.NoError(t, err)
	callAPI(token)

	link, err := c.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: conn.ID, Products: []string{"company"}}})
	require.NoError(t, err)
	dump(link)

	// A failed exchange, a forged state, a mismatch, then success.
	s.InjectFault(finchtest.Fault{Path: "/auth/token", Status: 400, Times: 1})
	cb, err := s.Approve(link)
	require.NoError(t, err)
	callback(cb)
	callback(strings.Replace(cb, "state=", "state=x", 1))
	cb, err = s.ApproveAs(link, "conn_other")
	require.NoError(t, err)
	callback(cb)
	link2, err := c.ReconnectURL(context.Background(), finchreauth.Event{Connection: finchreauth.Introspection{ConnectionID: conn.ID, Products: []string{"company"}}})
	require.NoError(t, err)
	dump(link2)
	cb, err = s.Approve(link2)
	require.NoError(t, err)
	require.Equal(t, "https://app.example/ok?connection_id="+url.QueryEscape(conn.ID), callback(cb))
	newTok, err := store.Token(context.Background(), conn.ID)
	require.NoError(t, err)
	addSecret("new access token", newTok.AccessToken)
	dump(newTok, &newTok)
	callAPI(newTok.AccessToken)
	callAPI(token) // the old token, after the reconnect: stale

	// The start endpoint.
	rec := httptest.NewRecorder()
	c.StartHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/start", nil))
	dump(rec.Header().Get("Location"))

	st, err := store.State(context.Background(), conn.ID)
	require.NoError(t, err)
	dump(st)
	logMu.Lock()
	dumps = append(dumps, logs.String())
	logMu.Unlock()

	require.Greater(t, len(dumps), 20)
	all := strings.Join(dumps, "\n")
	require.Contains(t, all, newTok.Fingerprint(), "tokens are named by fingerprint")
	for name, secret := range secrets {
		if secret == "" {
			continue
		}
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in what the library said (dumps %d bytes)", name, len(all))
		}
	}
	// 2 access tokens, the client secret, the state key in 5 forms, and the
	// 3 codes Connect issued (the forged callback reuses one).
	assert.Len(t, secrets, 11, "every secret was gathered and checked")
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
