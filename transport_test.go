package finchreauth_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// staticRT answers every request with resp built by fn and counts calls.
type staticRT struct {
	fn    func(req *http.Request) (*http.Response, error)
	calls atomic.Int64
}

func (s *staticRT) RoundTrip(req *http.Request) (*http.Response, error) {
	s.calls.Add(1)
	if req.Body != nil {
		req.Body.Close()
	}
	return s.fn(req)
}

func TestPassThroughIsUntouched(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"200", 200, `{"id":"c1"}`},
		{"202 assisted", 202, `{}`},
		{"200 batch with errors inside", 200, `{"responses":[{"individual_id":"x","code":404,"body":{"finch_code":"reauthenticate_user"}}]}`},
		{"500 server_error (maybe revoked: not ours to decide)", 500, `{"code":500,"name":"server_error","finch_code":"reauthenticate_user"}`},
		{"429", 429, `{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_application_rl"}`},
		{"403", 403, `{"code":403,"name":"forbidden_error","finch_code":"reauthenticate_user"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeCounter{Reader: strings.NewReader(tc.body)}
			var want *http.Response
			base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
				want = jsonResponse(req, tc.status, "")
				want.Body = body
				return want, nil
			}}
			tr := &finchreauth.Transport{Base: base}
			got, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
			require.NoError(t, err)
			require.Same(t, want, got, "the base's response itself is returned")
			assert.Empty(t, got.Header.Get("Finchreauth"))
			assert.Equal(t, tc.body, string(readAll(t, got)), "body unread by the Transport")
			assert.EqualValues(t, 1, body.closes.Load())
		})
	}
}

func TestDetection(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.String()
	}
	huge := strings.Repeat(" ", 10<<20) + reauthJSON
	cases := []struct {
		name     string
		status   int
		encoding string
		body     string
		want     bool
	}{
		{"reauthenticate_user", 401, "", reauthJSON, true},
		{"reauthenticate_user without redundant fields", 401, "", `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"m"}`, true},
		{"gzip the caller asked for", 401, "gzip", gz(reauthJSON), true},
		{"invalid_token_error", 401, "", `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`, false},
		{"unauthorized_request_error", 401, "", `{"code":401,"name":"unauthorized_request_error","message":"no token"}`, false},
		{"account_setup_required", 401, "", `{"code":401,"name":"authentication_error","finch_code":"account_setup_required"}`, false},
		{"empty", 401, "", "", false},
		{"html from a proxy", 401, "", "<html><body>401 Authorization Required</body></html>", false},
		{"truncated JSON", 401, "", reauthJSON[:40], false},
		{"10 MiB", 401, "", huge, false},
		{"damaged gzip", 401, "gzip", gz(reauthJSON)[:20], false},
		{"unknown encoding", 401, "br", "\x8b\x05\x80", false},
		{"finch_code a number", 401, "", `{"code":401,"finch_code":17}`, false},
		{"finch_code an object", 401, "", `{"code":401,"finch_code":{"x":"reauthenticate_user"}}`, false},
		{"duplicate keys, last wins (no)", 401, "", `{"finch_code":"reauthenticate_user","finch_code":"other"}`, false},
		{"duplicate keys, last wins (yes)", 401, "", `{"finch_code":"other","finch_code":"reauthenticate_user"}`, true},
		{"invalid UTF-8", 401, "", "{\"finch_code\":\"reauthenticate_user\xff\"}", false},
		{"JSON array", 401, "", `["reauthenticate_user"]`, false},
		{"JSON null", 401, "", `null`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeCounter{Reader: strings.NewReader(tc.body)}
			base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/introspect" {
					return jsonResponse(req, 503, `{"code":503,"name":"server_error"}`), nil
				}
				r := jsonResponse(req, tc.status, "")
				r.Body = body
				if tc.encoding != "" {
					r.Header.Set("Content-Encoding", tc.encoding)
				}
				return r, nil
			}}
			notes := &recorder{}
			errs := &errorLog{}
			tr := &finchreauth.Transport{Base: base, Notifier: notes, ErrorHandler: errs.handle, Timeout: 50 * time.Millisecond}
			resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", "tok_"+tc.name, nil))
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.want, finchreauth.ParseAPIError(resp).IsReauth())
			if tc.want {
				assert.Equal(t, "detected", resp.Header.Get("Finchreauth"))
			} else {
				assert.Empty(t, resp.Header.Get("Finchreauth"))
			}
			got := readAll(t, resp)
			assert.True(t, bytes.Equal([]byte(tc.body), got), "the caller reads exactly the bytes Finch sent (%d vs %d bytes)", len(got), len(tc.body))
			require.NoError(t, resp.Body.Close())
			assert.EqualValues(t, 1, body.closes.Load(), "Close reaches the original body exactly once")
			waitIdle(t, tr)
			tr.Close()
			// /introspect fails (503), so nobody can say whose token it
			// is: nothing is notified by fingerprint alone, and the
			// failure is reported for a detection, and only then.
			assert.Zero(t, notes.n.Load())
			var introspectErrs int
			for _, err := range errs.all() {
				var he *finchreauth.HookError
				if errors.As(err, &he) && he.Hook == "introspect" {
					introspectErrs++
				}
			}
			if tc.want {
				assert.Equal(t, 1, introspectErrs)
			} else {
				assert.Zero(t, introspectErrs)
			}
		})
	}
}

// failingBody returns some bytes, then an error.
type failingBody struct {
	data   []byte
	err    error
	closes atomic.Int64
}

func (f *failingBody) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func (f *failingBody) Close() error { f.closes.Add(1); return nil }

func TestBodyReadErrorIsReplayed(t *testing.T) {
	boom := errors.New("connection reset")
	body := &failingBody{data: []byte(`{"code":401,"finch`), err: boom}
	base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
		r := jsonResponse(req, 401, "")
		r.Body = body
		return r, nil
	}}
	tr := &finchreauth.Transport{Base: base}
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	assert.Equal(t, `{"code":401,"finch`, string(got))
	assert.ErrorIs(t, err, boom, "the caller sees the read error it would have seen")
	resp.Body.Close()
	resp.Body.Close()
	assert.EqualValues(t, 1, body.closes.Load())
}

func TestRoundTripperContract(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok-live", "conn_live")
	ff.add("tok-dead", "conn_dead")
	ff.setBroken("tok-dead", true)
	tr := &finchreauth.Transport{Base: ff}
	defer tr.Close()

	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"pass-through", "tok-live", 200},
		{"detection", "tok-dead", 401},
		{"latched", "tok-dead", 401}, // the second call on a dead token is answered from the latch
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeCounter{Reader: strings.NewReader(`{"x":1}`)}
			req := newRequest(t, "POST", api+"/employer/benefits?limit=5", tc.token, body)
			req.ContentLength = 7
			before := snapshot(req)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, before, snapshot(req), "the request is not modified")
			assert.EqualValues(t, 1, body.closes.Load(), "the request body is closed exactly once")
			readAll(t, resp)
		})
	}
	assert.EqualValues(t, 2, ff.count("/employer/benefits"), "the latched call never reached Finch")
}

func TestResponseXorError(t *testing.T) {
	boom := errors.New("dial tcp: refused")
	t.Run("base returns both", func(t *testing.T) {
		body := &closeCounter{Reader: strings.NewReader("x")}
		base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
			r := jsonResponse(req, 200, "")
			r.Body = body
			return r, boom
		}}
		resp, err := (&finchreauth.Transport{Base: base}).RoundTrip(newRequest(t, "GET", api+"/x", "tok", nil))
		assert.Nil(t, resp)
		assert.ErrorIs(t, err, boom)
		assert.EqualValues(t, 1, body.closes.Load(), "the stray response is closed")
	})
	t.Run("base returns neither", func(t *testing.T) {
		base := &staticRT{fn: func(*http.Request) (*http.Response, error) { return nil, nil }}
		resp, err := (&finchreauth.Transport{Base: base}).RoundTrip(newRequest(t, "GET", api+"/x", "tok", nil))
		assert.Nil(t, resp)
		assert.ErrorContains(t, err, "finchreauth:")
	})
	t.Run("base fails", func(t *testing.T) {
		base := &staticRT{fn: func(*http.Request) (*http.Response, error) { return nil, boom }}
		resp, err := (&finchreauth.Transport{Base: base}).RoundTrip(newRequest(t, "GET", api+"/x", "tok", nil))
		assert.Nil(t, resp)
		assert.ErrorIs(t, err, boom)
	})
}

// TestCollapse is the test of the design's promise, in the manner of
// singleflight's TestDoDupSuppress: 1,000 goroutines hit a token that has
// just broken; Finch is asked /introspect once, the Store makes one
// transition, the customer gets one notification, and every caller gets the
// 401 answer.
func TestCollapse(t *testing.T) {
	const n = 1000
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	ff.hold = make(chan struct{})

	store := &countingStore{Store: new(finchreauth.MemoryStore)}
	notes := &recorder{}
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes}
	defer tr.Close()

	var wg sync.WaitGroup
	var got401, gotReauth atomic.Int64
	for range n {
		wg.Go(func() {
			resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory", "tok", nil))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 401 {
				got401.Add(1)
			}
			if finchreauth.ParseAPIError(resp).IsReauth() && bytes.Contains(b, []byte(`"finch_code":"reauthenticate_user"`)) {
				gotReauth.Add(1)
			}
		})
	}
	// Let some callers queue at Finch before the first answer, so that both
	// collapsing (concurrent 401s) and latching (later calls) are exercised.
	for ff.count("/employer/directory") < 10 {
		time.Sleep(time.Millisecond)
	}
	close(ff.hold)
	wg.Wait()

	assert.EqualValues(t, n, got401.Load(), "every caller gets a 401")
	assert.EqualValues(t, n, gotReauth.Load(), "every caller can tell it is a re-authentication")
	assert.EqualValues(t, 1, ff.count("/introspect"), "one /introspect")
	assert.EqualValues(t, 1, store.transitions.Load(), "one store transition")
	assert.EqualValues(t, 1, notes.n.Load(), "one notification")
	t.Logf("%d of %d calls reached Finch; the rest were answered from the latch", ff.count("/employer/directory"), n)
}

// countingStore counts the episodes the Transport opens in it: the Puts
// that set a record's Since.
type countingStore struct {
	finchreauth.Store
	transitions, puts atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	c.puts.Add(1)
	var was time.Time
	if prev, err := c.Store.Get(ctx, r.ConnectionID); err == nil {
		was = prev.Since
	}
	v, err := c.Store.Put(ctx, r)
	if err == nil && was.IsZero() && !r.Since.IsZero() {
		c.transitions.Add(1)
	}
	return v, err
}

func TestEvent(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	notes := &recorder{}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tr := &finchreauth.Transport{
		Base:     ff,
		Notifier: notes,
		Links: finchreauth.LinkBuilderFunc(func(_ context.Context, e finchreauth.Event) (string, error) {
			return "https://connect.example/authorize?connection_id=" + e.Connection.ConnectionID, nil
		}),
		Now: func() time.Time { return now },
	}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/directory?limit=10&secret=x", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)

	events := notes.delivered()
	require.Len(t, events, 1)
	e := events[0]
	assert.Equal(t, "conn_1", e.Connection.ConnectionID)
	assert.Equal(t, "cust_conn_1", e.Connection.CustomerID)
	assert.Equal(t, "Acme conn_1", e.Connection.CustomerName)
	assert.Equal(t, "payroll@acme.example", e.Connection.CustomerEmail)
	assert.Equal(t, "comp_conn_1", e.Connection.CompanyID)
	assert.Equal(t, "gusto", e.Connection.ProviderID)
	assert.Equal(t, []string{"company", "directory"}, e.Connection.Products)
	assert.Equal(t, "reauth", e.Connection.Status)
	assert.Equal(t, "detection", e.Source)
	assert.Zero(t, e.Reminder)
	assert.Equal(t, finchreauth.Token("tok").Fingerprint(), e.TokenFingerprint)
	assert.Equal(t, "GET", e.Method)
	assert.Equal(t, "/employer/directory", e.Path, "the path, never the query")
	assert.Equal(t, resp.Header.Get("Finch-Request-Id"), e.RequestID)
	assert.True(t, e.At.Equal(now))
	assert.True(t, e.Since.Equal(now))
	assert.NotEmpty(t, e.Episode)
	assert.Equal(t, "https://connect.example/authorize?connection_id=conn_1", e.ReconnectURL)

}

func TestWrapClient(t *testing.T) {
	ff := newFakeFinch()
	ff.add("dead", "conn_1")
	ff.setBroken("dead", true)
	jar, _ := cookiejar.New(nil)
	errRedirect := errors.New("no redirects")
	orig := &http.Client{
		Transport:     ff,
		Jar:           jar,
		Timeout:       7 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	origCopy := *orig
	tr := &finchreauth.Transport{}
	defer tr.Close()
	c := tr.WrapClient(orig)

	require.NotSame(t, orig, c)
	assert.Same(t, jar, c.Jar)
	assert.Equal(t, 7*time.Second, c.Timeout)
	assert.ErrorIs(t, c.CheckRedirect(nil, nil), errRedirect)
	assert.Same(t, ff, orig.Transport, "the original client is untouched")
	assert.Equal(t, origCopy.Timeout, orig.Timeout)

	resp, err := c.Get(api + "/employer/company") // no token: the fake says invalid_token_error
	require.NoError(t, err)
	readAll(t, resp)
	assert.EqualValues(t, 1, ff.count("/employer/company"), "requests go through the original's transport")

	req := newRequest(t, "GET", api+"/employer/company", "dead", nil)
	for range 2 {
		resp, err := c.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
	}
	assert.EqualValues(t, 2, ff.count("/employer/company"), "the second call was latched by the wrapping Transport")

	t.Run("nil client", func(t *testing.T) {
		c := tr.WrapClient(nil)
		assert.NotNil(t, c.Transport)
		assert.Zero(t, c.Timeout)
	})
}

// TestHealingCallsPassTheLatch: the official SDK puts the token it was built
// with on every call, the code exchange included. A latched token must not
// block the calls that heal its connection: /auth/token, /introspect,
// /connect/... and /sandbox/... reach Finch and are never detections.
func TestHealingCallsPassTheLatch(t *testing.T) {
	r := newReconnectRig(t, func(r *reconnectRig) { r.connect.AuthorizeURLs = true })
	link := r.breakAndNotify(t)
	require.Equal(t, 401, r.call(t, r.token))
	require.Equal(t, 1, r.finch.Calls("GET", "/employer/company"), "the token is latched")

	// A client that carries the broken token on every request, as the SDK
	// built with it does.
	client := r.tr.WrapClient(&http.Client{Transport: bearerRT{token: r.token, base: r.finch.Client().Transport}})
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	code := query(t, callback).Get("code")
	body := fmt.Sprintf(`{"client_id":%q,"client_secret":%q,"code":%q,"redirect_uri":%q}`, r.finch.ClientID, r.finch.ClientSecret, code, r.connect.RedirectURI)
	resp, err := client.Post(r.finch.URL+"/auth/token", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	got := readAll(t, resp)
	require.Equal(t, 200, resp.StatusCode, "the exchange reached Finch: %s", got)
	assert.Empty(t, resp.Header.Get(finchreauth.Header))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(got, &tok))
	assert.NotEmpty(t, tok.AccessToken)
	assert.Equal(t, 1, r.finch.Calls("POST", "/auth/token"))

	resp, err = client.Get(r.finch.URL + "/introspect")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 200, resp.StatusCode, "/introspect reaches Finch")

	// The old token is dead now (the exchange replaced it): its sandbox
	// call gets Finch's own reauthenticate_user, which is not a detection.
	before := r.notes.n.Load()
	req, _ := http.NewRequest("PUT", r.finch.URL+"/sandbox/connections/accounts", strings.NewReader(`{"connection_status":"reauth"}`))
	resp, err = client.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, 401, resp.StatusCode)
	assert.Empty(t, resp.Header.Get(finchreauth.Header), "a sandbox call is never a detection")
	assert.Equal(t, 1, r.finch.Calls("PUT", "/sandbox/connections/accounts"), "and never latched")
	assert.Equal(t, before, r.notes.n.Load())
}

// bearerRT puts a bearer token on every request, as the official SDK does.
type bearerRT struct {
	token string
	base  http.RoundTripper
}

func (b bearerRT) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(req)
}

// TestSandboxHealThroughTheTransport: PUT /sandbox/connections/accounts
// with the broken token heals a sandbox connection, even while the token is
// latched.
func TestSandboxHealThroughTheTransport(t *testing.T) {
	r := newReconnectRig(t, nil)
	r.breakAndNotify(t)
	require.Equal(t, 401, r.call(t, r.token), "latched")
	req := newRequest(t, "PUT", r.finch.URL+"/sandbox/connections/accounts", r.token, strings.NewReader(`{"connection_status":"connected"}`))
	resp, err := r.tr.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, 200, resp.StatusCode)
	conn, _ := r.finch.Connection(r.connID)
	assert.Equal(t, "connected", conn.Status)
}

// TestOnlyFinchIsWatched: a wrapped client that also calls other hosts.
// Another host's reauth-shaped 401 is not a detection: nothing is sent to
// it (no /introspect with the token), nothing is latched, nobody notified.
func TestOnlyFinchIsWatched(t *testing.T) {
	var evilCalls atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilCalls.Add(1)
		if r.URL.Path == "/introspect" {
			w.Write([]byte(`{"connection_id":"victim","customer_email":"attacker@evil.example"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(reauthJSON))
	}))
	defer evil.Close()
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	notes := &recorder{}
	errs := &errorLog{}
	store := new(finchreauth.MemoryStore)
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes, ErrorHandler: errs.handle}
	defer tr.Close()
	client := tr.WrapClient(evil.Client())
	for range 3 {
		req := newRequest(t, "GET", evil.URL+"/employer/directory", "tok", nil)
		resp, err := client.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, 401, resp.StatusCode)
		assert.Empty(t, resp.Header.Get(finchreauth.Header), "not marked: not Finch's answer")
	}
	assert.EqualValues(t, 3, evilCalls.Load(), "every call reached the other host, none was latched, and no /introspect went there")
	assert.Zero(t, ff.count("/introspect"))
	assert.Zero(t, notes.n.Load())
	_, err := store.Get(context.Background(), "victim")
	assert.ErrorIs(t, err, finchreauth.ErrNotFound)
	// Issue 18 #6: with APIBaseURL left at Finch's (a test against
	// finchtest that forgot it), the 401 passed unnoticed and nobody was
	// told why. The application hears it once, with the host to set.
	waitIdle(t, tr)
	require.Len(t, errs.all(), 1, "one hint for three 401s")
	assert.Contains(t, errs.all()[0].Error(), evil.URL+", which this Transport does not watch")
	assert.Contains(t, errs.all()[0].Error(), "APIBaseURL")

	t.Run("the same host on another scheme or path prefix", func(t *testing.T) {
		tr := &finchreauth.Transport{Base: ff, APIBaseURL: "https://api.tryfinch.com/v1"}
		defer tr.Close()
		for _, u := range []string{"http://api.tryfinch.com/v1/employer/company", "https://api.tryfinch.com/v10/employer/company", "https://api.tryfinch.com/employer/company"} {
			ff.setBroken("tok", true)
			resp, err := tr.RoundTrip(newRequest(t, "GET", u, "tok", nil))
			require.NoError(t, err)
			readAll(t, resp)
			assert.Empty(t, resp.Header.Get(finchreauth.Header), u)
		}
		resp, err := tr.RoundTrip(newRequest(t, "GET", "https://API.tryfinch.com/v1/employer/company", "tok", nil))
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, finchreauth.Detected, resp.Header.Get(finchreauth.Header), "host names are case-insensitive")
	})
}

// sdkMiddleware and sdkNext are the official SDK's option.Middleware and
// option.MiddlewareNext (type aliases there too).
type (
	sdkNext       = func(*http.Request) (*http.Response, error)
	sdkMiddleware = func(*http.Request, sdkNext) (*http.Response, error)
)

// sdkClient runs requests through middlewares as the SDK does: each
// middleware wraps the next, the last calls the HTTP client.
func sdkClient(c *http.Client, mws ...sdkMiddleware) sdkNext {
	next := sdkNext(c.Do)
	for i := len(mws) - 1; i >= 0; i-- {
		mw, inner := mws[i], next
		next = func(req *http.Request) (*http.Response, error) { return mw(req, inner) }
	}
	return next
}

// TestMiddleware: option.WithMiddleware(tr.Middleware) puts the Transport in
// the SDK's chain, and its own /introspect goes out through the chain too.
func TestMiddleware(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	notes := &recorder{}
	tr := &finchreauth.Transport{Notifier: notes}
	defer tr.Close()
	var seen []string
	var mu sync.Mutex
	logging := func(req *http.Request, next sdkNext) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, req.URL.Path)
		mu.Unlock()
		return next(req)
	}
	var mw sdkMiddleware = tr.Middleware // the shape the SDK takes
	do := sdkClient(&http.Client{Transport: ff}, mw, logging)
	for range 2 {
		resp, err := do(newRequest(t, "GET", api+"/employer/directory", "tok", nil))
		require.NoError(t, err)
		readAll(t, resp)
		assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
	}
	waitIdle(t, tr)
	require.EqualValues(t, 1, notes.n.Load())
	assert.Equal(t, "conn_1", notes.delivered()[0].Connection.ConnectionID)
	assert.Equal(t, []string{"/employer/directory", "/introspect"}, seen, "the /introspect went through the rest of the chain; the second call was latched")
}

type idleCounter struct {
	http.RoundTripper
	closed atomic.Int64
}

func (c *idleCounter) CloseIdleConnections() { c.closed.Add(1) }

func TestCloseIdleConnectionsReachesBase(t *testing.T) {
	base := &idleCounter{}
	tr := &finchreauth.Transport{Base: base}
	(&http.Client{Transport: tr}).CloseIdleConnections()
	tr.WrapClient(&http.Client{Transport: base}).CloseIdleConnections()
	assert.EqualValues(t, 2, base.closed.Load())
}
