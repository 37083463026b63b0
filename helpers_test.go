package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// reauthJSON is Finch's re-authentication error as Finch sends it.
const reauthJSON = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`

// api is the Finch API the tests' Transports watch (the default).
const api = "https://api.tryfinch.com"

// introspection is /introspect's answer as Finch sends it.
type introspection struct {
	ConnectionID  string   `json:"connection_id"`
	CustomerID    string   `json:"customer_id"`
	CustomerName  string   `json:"customer_name"`
	CustomerEmail string   `json:"customer_email"`
	CompanyID     string   `json:"company_id"`
	ProviderID    string   `json:"provider_id"`
	Products      []string `json:"products"`
	Status        status   `json:"connection_status"`
}

type status struct {
	Status string `json:"status"`
}

// fakeFinch is an in-memory Finch API as an http.RoundTripper: tokens map to
// connections; a broken token answers every call but /introspect with the
// re-authentication error. It counts calls per path and closes request
// bodies, as a RoundTripper must.
type fakeFinch struct {
	mu     sync.Mutex
	conns  map[string]introspection // token -> connection
	broken map[string]bool
	// superseded tokens were replaced by a reconnect: data calls refuse them
	// (reauthenticate_user) while /introspect tells the connection's status.
	superseded map[string]bool
	calls      map[string]*atomic.Int64
	// introspectStatus, when non-zero, is what /introspect answers.
	introspectStatus int
	// hold, when non-nil, is received from before answering a data call:
	// a gate that lets a test line up concurrent callers.
	hold chan struct{}
}

func newFakeFinch() *fakeFinch {
	return &fakeFinch{
		conns:      map[string]introspection{},
		broken:     map[string]bool{},
		superseded: map[string]bool{},
		calls:      map[string]*atomic.Int64{},
	}
}

// add registers token for a connection and returns the connection id.
func (f *fakeFinch) add(token, connID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[token] = introspection{
		ConnectionID:  connID,
		CustomerID:    "cust_" + connID,
		CustomerName:  "Acme " + connID,
		CustomerEmail: "payroll@acme.example",
		CompanyID:     "comp_" + connID,
		ProviderID:    "gusto",
		Products:      []string{"company", "directory"},
		Status:        status{Status: "connected"},
	}
}

func (f *fakeFinch) setBroken(token string, broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken[token] = broken
}

func (f *fakeFinch) counter(path string) *atomic.Int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.calls[path]
	if !ok {
		c = new(atomic.Int64)
		f.calls[path] = c
	}
	return c
}

func (f *fakeFinch) count(path string) int64 { return f.counter(path).Load() }

func (f *fakeFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	f.counter(req.URL.Path).Add(1)
	token := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	conn, known := f.conns[token]
	broken := f.broken[token]
	superseded := f.superseded[token]
	hold := f.hold
	introspectStatus := f.introspectStatus
	f.mu.Unlock()

	if req.URL.Path == "/introspect" {
		if introspectStatus != 0 {
			return jsonResponse(req, introspectStatus, `{"code":500,"name":"server_error","message":"boom"}`), nil
		}
		if !known {
			return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
		}
		if broken {
			conn.Status.Status = "reauth"
		}
		b, _ := json.Marshal(conn)
		return jsonResponse(req, 200, string(b)), nil
	}
	if strings.HasPrefix(req.URL.Path, "/jobs/automated") && known && !broken && !superseded {
		// A data_sync_all job: started at once, complete when read.
		if req.Method == http.MethodPost {
			return jsonResponse(req, 202, `{"job_id":"job_`+conn.ConnectionID+`","allowed_refreshes":1,"remaining_refreshes":0}`), nil
		}
		return jsonResponse(req, 200, `{"job_id":"job_`+conn.ConnectionID+`","status":"complete","type":"data_sync_all"}`), nil
	}
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	switch {
	case !known:
		return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
	case broken, superseded:
		return jsonResponse(req, 401, reauthJSON), nil
	}
	return jsonResponse(req, 200, `{"id":"`+conn.CompanyID+`"}`), nil
}

var requestIDs atomic.Int64

func jsonResponse(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode: status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":     {"application/json"},
			"Finch-Request-Id": {fmt.Sprintf("req_%d", requestIDs.Add(1))},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// recorder is a Notifier that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []finchreauth.Event
	n      atomic.Int64
	// fn, if set, runs inside Notify and decides its result.
	fn func(ctx context.Context, e finchreauth.Event) error
}

func (r *recorder) Notify(ctx context.Context, e finchreauth.Event) error {
	r.n.Add(1)
	if r.fn != nil {
		if err := r.fn(ctx, e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) delivered() []finchreauth.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]finchreauth.Event(nil), r.events...)
}

// errorLog collects what a Transport reports to its ErrorHandler.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) handle(_ context.Context, err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// closeCounter is a request or response body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes atomic.Int64
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

func newRequest(t testing.TB, method, url, token string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Finch-API-Version", "2020-09-17")
	return req
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return b
}

// snapshot captures what a RoundTripper must not change in a request.
func snapshot(req *http.Request) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %v %d %p", req.Method, req.URL.String(), req.Header, req.ContentLength, req.Body)
	return b.String()
}

var stateKey = []byte("0123456789abcdef0123456789abcdef")

// reconnectRig is the whole flow: a fake Finch, an application server that
// mounts the callback and start handlers, a Transport and its Connect.
type reconnectRig struct {
	finch   *finchtest.Server
	app     *httptest.Server
	store   *finchreauth.MemoryStore
	tr      *finchreauth.Transport
	connect *finchreauth.Connect
	notes   *recorder
	errs    *errorLog
	clk     *clock

	mu          sync.Mutex
	reconnected []finchreauth.Reconnection
	unsaved     []finchreauth.Reconnection
	authorize   func(*http.Request) (string, error)

	token  string // the connection's first token
	connID string
}

func newReconnectRig(t *testing.T, configure func(r *reconnectRig)) *reconnectRig {
	r := &reconnectRig{finch: finchtest.NewServer(), store: new(finchreauth.MemoryStore), notes: &recorder{}, errs: &errorLog{}, clk: newClock()}
	t.Cleanup(r.finch.Close)
	r.finch.SetClock(r.clk.Now)
	r.token = r.finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp", ProviderID: "gusto"})
	conn, _ := r.finch.ConnectionForToken(r.token)
	r.connID = conn.ID

	mux := http.NewServeMux()
	r.app = httptest.NewServer(mux)
	t.Cleanup(r.app.Close)

	r.connect = &finchreauth.Connect{
		ClientID:       r.finch.ClientID,
		ClientSecret:   r.finch.ClientSecret,
		RedirectURI:    r.app.URL + "/finch/callback",
		StateKeys:      [][]byte{stateKey},
		SuccessURL:     r.app.URL + "/dashboard?tab=integrations",
		FailureURL:     r.app.URL + "/dashboard/reconnect-failed",
		ConnectBaseURL: r.finch.URL,
		OnUnsaved: func(_ context.Context, rec finchreauth.Reconnection) {
			r.mu.Lock()
			r.unsaved = append(r.unsaved, rec)
			r.mu.Unlock()
		},
	}
	r.tr = &finchreauth.Transport{
		Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store, Notifier: r.notes,
		Connect: r.connect, Now: r.clk.Now, ErrorHandler: r.errs.handle,
		OnReconnected: func(_ context.Context, rec finchreauth.Reconnection) {
			r.mu.Lock()
			r.reconnected = append(r.reconnected, rec)
			r.mu.Unlock()
		},
	}
	t.Cleanup(func() { r.tr.Close() })
	if configure != nil {
		configure(r)
	}
	require.NoError(t, r.connect.Validate())
	mux.Handle("/finch/callback", r.tr.CallbackHandler())
	mux.Handle("/finch/start", r.tr.StartHandler(func(req *http.Request) (string, error) {
		if r.authorize != nil {
			return r.authorize(req)
		}
		return "", errors.New("no authorize")
	}))
	require.NoError(t, r.tr.SaveToken(context.Background(), r.connID, finchreauth.Token(r.token)))
	return r
}

// call makes an API call with token and returns the status.
func (r *reconnectRig) call(t *testing.T, token string) int {
	t.Helper()
	req := newRequest(t, "GET", r.finch.URL+"/employer/company", token, nil)
	resp, err := r.tr.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, r.tr) // the caller does not wait for the handling; the test does
	return resp.StatusCode
}

// breakAndNotify breaks the connection and returns the link the notification carried.
func (r *reconnectRig) breakAndNotify(t *testing.T) string {
	t.Helper()
	r.finch.Break(r.connID)
	require.Equal(t, 401, r.call(t, r.token))
	// With webhooks, the notification may be on its way from the handler.
	require.Eventually(t, func() bool { return len(r.notes.delivered()) > 0 }, 10*time.Second, time.Millisecond, "errors: %v", r.errs.all())
	events := r.notes.delivered()
	link := events[len(events)-1].ReconnectURL
	require.NotEmpty(t, link, "the notification carries a reconnect link; errors: %v", r.errs.all())
	return link
}

// savedToken is the connection's token in the Store.
func (r *reconnectRig) savedToken(t *testing.T) finchreauth.Token {
	t.Helper()
	tok, err := r.tr.Token(context.Background(), r.connID)
	require.NoError(t, err)
	return tok
}

// needsReauth is the connection's status in the Store.
func (r *reconnectRig) needsReauth(t *testing.T) bool {
	t.Helper()
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	return st.NeedsReauth
}

// hooks waits for the detached hooks and returns what they received.
func (r *reconnectRig) hooks() (reconnected, unsaved []finchreauth.Reconnection) {
	r.tr.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]finchreauth.Reconnection(nil), r.reconnected...), append([]finchreauth.Reconnection(nil), r.unsaved...)
}

// browse GETs a URL without following redirects.
func browse(t *testing.T, u string) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	require.NoError(t, err)
	readAll(t, resp)
	return resp
}

func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Query()
}

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
