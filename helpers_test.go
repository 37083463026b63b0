package finchreauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/finchkit/finchreauth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// reauthJSON is Finch's re-authentication error as Finch sends it.
const reauthJSON = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`

// fakeFinch is an in-memory Finch API as an http.RoundTripper: tokens map to
// connections; a broken token answers every call but /introspect with the
// re-authentication error. It counts calls per path and closes request
// bodies, as a RoundTripper must.
type fakeFinch struct {
	mu     sync.Mutex
	conns  map[string]finchreauth.Introspection // token -> connection
	broken map[string]bool
	calls  map[string]*atomic.Int64
	// introspectStatus, when non-zero, is what /introspect answers.
	introspectStatus int
	// hold, when non-nil, is received from before answering a data call:
	// a gate that lets a test line up concurrent callers.
	hold chan struct{}
}

func newFakeFinch() *fakeFinch {
	return &fakeFinch{
		conns:  map[string]finchreauth.Introspection{},
		broken: map[string]bool{},
		calls:  map[string]*atomic.Int64{},
	}
}

// add registers token for a connection and returns the connection id.
func (f *fakeFinch) add(token, connID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[token] = finchreauth.Introspection{
		ConnectionID:  connID,
		CustomerID:    "cust_" + connID,
		CustomerName:  "Acme " + connID,
		CustomerEmail: "payroll@acme.example",
		CompanyID:     "comp_" + connID,
		ProviderID:    "gusto",
		Products:      []string{"company", "directory"},
		Status:        finchreauth.ConnectionStatus{Status: "connected"},
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
	case broken:
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
