package finchreauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cannedRT answers every request with a fresh response, allocated as a real
// transport allocates it, around an empty body: an in-memory base for
// measuring what the Transport adds and nothing else.
type cannedRT struct {
	status int
	header http.Header
}

func (c *cannedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: c.status, Header: c.header, Body: http.NoBody, Request: req}, nil
}

// roundTrip calls rt through the interface, as http.Client does, so that the
// compiler cannot devirtualise the bare case and keep its response on the
// stack: both cases then pay for the same response allocation.
//
//go:noinline
func roundTrip(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	return rt.RoundTrip(req)
}

func benchRequest(b *testing.B, token string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// fillLatch latches n made-up tokens, each with its own connection.
func fillLatch(t *Transport, n int) {
	t.init()
	for i := range n {
		t.latch.add(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("conn_%d", i), true, time.Hour, time.Hour)
	}
}

// BenchmarkPassThrough compares a bare base with the same base behind a
// Transport, on a 200: the cost of the hot path, with nothing latched and
// with a million other tokens latched.
func BenchmarkPassThrough(b *testing.B) {
	base := &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
	req := benchRequest(b, "0b5c8c3e-6a0f-4c4e-9a5c-healthy00001")
	run := func(b *testing.B, rt http.RoundTripper) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := roundTrip(rt, req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(resp, err)
			}
			resp.Body.Close()
		}
	}
	b.Run("rt=bare", func(b *testing.B) { run(b, base) })
	b.Run("rt=finchreauth", func(b *testing.B) {
		t := &Transport{Base: base}
		defer t.Close()
		run(b, t)
	})
	b.Run("rt=finchreauth-1M-latched", func(b *testing.B) {
		t := &Transport{Base: base}
		defer t.Close()
		fillLatch(t, 1_000_000)
		b.ResetTimer()
		run(b, t)
	})
}

// BenchmarkContention runs the 200 path from many goroutines at once, bare
// and through one Transport whose latch holds other tokens: the latch's read
// path must not serialise them.
func BenchmarkContention(b *testing.B) {
	base := &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
	t := &Transport{Base: base}
	defer t.Close()
	fillLatch(t, 10_000)
	for _, p := range []int{1, 2, 8, 64} {
		for _, c := range []struct {
			name string
			rt   http.RoundTripper
		}{{"bare", base}, {"finchreauth", t}} {
			b.Run(fmt.Sprintf("g=%dxGOMAXPROCS/rt=%s", p, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(p)
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					req := benchRequest(b, fmt.Sprintf("0b5c8c3e-6a0f-4c4e-9a5c-healthy%05d", n.Add(1)))
					for pb.Next() {
						resp, err := roundTrip(c.rt, req)
						if err != nil || resp.StatusCode != 200 {
							b.Fatal(resp, err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkLatched is the answer to a token already known to be broken,
// its body read in full. The base must never be called.
func BenchmarkLatched(b *testing.B) {
	const token = "broken-token-0123456789abcdef"
	base := &countingRT{cannedRT: cannedRT{status: 200}}
	req := benchRequest(b, token)
	t := &Transport{Base: base}
	defer t.Close()
	t.init()
	t.latch.add(token, "conn", true, time.Hour, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := roundTrip(t, req)
		if err != nil || resp.StatusCode != 401 {
			b.Fatal(resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := base.calls.Load(); n != 0 {
		b.Fatalf("the base was called %d times for a latched token", n)
	}
	b.ReportMetric(float64(base.calls.Load()), "base-calls")
}

// countingRT is a cannedRT that counts its calls.
type countingRT struct {
	cannedRT
	calls atomic.Int64
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.cannedRT.RoundTrip(req)
}

// BenchmarkDetectionFollower measures what one caller of a detection storm
// costs: its 401 is classified, marked and joined to the handling already
// in flight (held in the Notifier until the benchmark ends). Its context is
// already cancelled so that it does not wait.
func BenchmarkDetectionFollower(b *testing.B) {
	const body = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`
	release := make(chan struct{})
	base := &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
	introspect := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		b := `{"connection_id":"conn_1","connection_status":{"status":"reauth"}}`
		return &http.Response{StatusCode: 200, Header: base.header, Body: io.NopCloser(strings.NewReader(b)), Request: req}, nil
	})
	t := &Transport{Base: introspect, Notifier: NotifierFunc(func(ctx context.Context, e Event) error {
		<-release
		return nil
	})}
	defer t.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := benchRequest(b, "storm-token-0123456789abcdef").WithContext(ctx)
	refusal := func() *http.Response {
		return &http.Response{
			StatusCode:    401,
			Header:        http.Header{"Content-Type": {"application/json"}, "Finch-Request-Id": {"req_1"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}
	}
	t.init()
	t.on401(req, refusal(), t.Base) // the leader: its handling waits in the Notifier
	b.ReportAllocs()
	for b.Loop() {
		resp := t.on401(req, refusal(), t.Base)
		resp.Body.Close()
	}
}
