// Package stormfinch is the lean in-memory Finch of the detection-storm
// benchmarks (the root package's BenchmarkDetectionStorm and the store
// modules' storm figures): a RoundTripper that answers data calls 200 until
// told to hold them, then holds each until released and answers Finch's
// re-authentication 401, so that a whole storm of callers is refused at
// once. It counts calls and remembers when it sent its first and last 401.
package stormfinch

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultIntrospection is what /introspect answers unless Finch.Introspection
// says otherwise.
const DefaultIntrospection = `{"connection_id":"conn_storm","customer_id":"cust_1","customer_name":"Acme","provider_id":"gusto","products":["company"],"connection_status":{"status":"reauth"}}`

const reauthBody = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`

// Finch is the fake. Create it with New.
type Finch struct {
	// Introspection is the JSON /introspect answers; if empty,
	// DefaultIntrospection. Set it before the first call.
	Introspection string

	hold     atomic.Bool
	held     atomic.Int64 // data calls waiting at the gate
	gate     chan struct{}
	first401 atomic.Int64 // unix nanoseconds
	last401  atomic.Int64

	refusals, introspects atomic.Int64
}

// New returns a Finch that answers data calls 200.
func New() *Finch { return &Finch{gate: make(chan struct{})} }

// Hold makes every data call from now on wait for Release.
func (f *Finch) Hold() { f.hold.Store(true) }

// Held is how many data calls are waiting.
func (f *Finch) Held() int64 { return f.held.Load() }

// Release answers every held call, and every later one, with the 401.
func (f *Finch) Release() { close(f.gate) }

// First401 and Last401 are when the first and last 401 left (unix
// nanoseconds; 0 before any).
func (f *Finch) First401() int64 { return f.first401.Load() }
func (f *Finch) Last401() int64  { return f.last401.Load() }

// Refusals and Introspects count the 401s sent and the /introspect calls.
func (f *Finch) Refusals() int64    { return f.refusals.Load() }
func (f *Finch) Introspects() int64 { return f.introspects.Load() }

// RoundTrip implements http.RoundTripper.
func (f *Finch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/introspect" {
		f.introspects.Add(1)
		body := f.Introspection
		if body == "" {
			body = DefaultIntrospection
		}
		return response(req, 200, body), nil
	}
	if !f.hold.Load() {
		return response(req, 200, `{"id":"c1"}`), nil
	}
	f.held.Add(1)
	select {
	case <-f.gate:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	now := time.Now().UnixNano()
	f.first401.CompareAndSwap(0, now)
	MaxInt64(&f.last401, now)
	f.refusals.Add(1)
	return response(req, 401, reauthBody), nil
}

func response(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// MaxInt64 raises v to at least x.
func MaxInt64(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}
