package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

const token = "healthy-token-0123456789abcdef"

// finchAPI is where the in-memory benchmarks' requests go: the Finch API the
// Transport watches by default.
const finchAPI = "https://api.tryfinch.com"

// cannedRT answers every request with a fresh response, allocated as a real
// transport allocates it, around an empty body: an in-memory base for
// measuring what each wrapper adds and nothing else.
type cannedRT struct {
	header http.Header
}

func (c *cannedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: c.header, Body: http.NoBody, Request: req}, nil
}

func newCanned() *cannedRT {
	return &cannedRT{header: http.Header{"Content-Type": {"application/json"}}}
}

// roundTrip calls rt through the interface, as http.Client does, so that the
// compiler cannot devirtualise the bare case and keep its response on the
// stack: every case then pays for the same response allocation.
//
//go:noinline
func roundTrip(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	return rt.RoundTrip(req)
}

// subject is one RoundTripper under measurement, built around a base.
type subject struct {
	name string
	// make builds it around base, for calls to the Finch API at api (the
	// Transport watches only that host).
	make func(base http.RoundTripper, api string) (rt http.RoundTripper, done func())
}

// subjects are the bare base and what an application could put in front of
// it, each set up as its users set it up.
var subjects = []subject{
	{"bare", func(base http.RoundTripper, _ string) (http.RoundTripper, func()) {
		return base, func() {}
	}},
	{"finchreauth", func(base http.RoundTripper, api string) (http.RoundTripper, func()) {
		t := &finchreauth.Transport{Base: base, APIBaseURL: api}
		return t, func() { t.Close() }
	}},
	{"oauth2", func(base http.RoundTripper, _ string) (http.RoundTripper, func()) {
		// The request already carries its token; oauth2.Transport clones
		// the request and sets the header again: that is its real cost.
		src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})
		return &oauth2.Transport{Source: src, Base: base}, func() {}
	}},
	{"retryablehttp", func(base http.RoundTripper, _ string) (http.RoundTripper, func()) {
		c := retryablehttp.NewClient()
		c.HTTPClient.Transport = base
		c.Logger = nil // its default DEBUG logger would dominate the figures
		return &retryablehttp.RoundTripper{Client: c}, func() {}
	}},
}

// latchedSubject is finchreauth with another token latched, as in an
// application where some connection is broken: healthy tokens then take
// the latch lookup instead of the empty-latch fast path.
var latchedSubject = subject{"finchreauth-latch1", func(base http.RoundTripper, api string) (http.RoundTripper, func()) {
	t := &finchreauth.Transport{Base: breakingFinch{}, APIBaseURL: api}
	req, _ := http.NewRequest(http.MethodGet, api+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer broken-token")
	if resp, err := t.RoundTrip(req); err != nil || !finchreauth.ParseAPIError(resp).IsReauth() {
		panic(fmt.Sprint("bench: latching a token: ", resp, err))
	} else {
		resp.Body.Close()
	}
	// Requests through the wrapped client share t's latch and reach base.
	return t.WrapClient(&http.Client{Transport: base}).Transport, func() { t.Close() }
}}

// breakingFinch refuses every call with Finch's re-authentication error and
// answers /introspect.
type breakingFinch struct{}

func (breakingFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	status, body := 401, `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`
	if req.URL.Path == "/introspect" {
		status, body = 200, `{"connection_id":"conn_broken"}`
	}
	return &http.Response{
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: req,
	}, nil
}

func newRequest(b *testing.B, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Finch-API-Version", "2020-09-17")
	return req
}

// call sends req through rt and closes the response body. It reports a
// failure with b.Error, which any goroutine may call, and returns false.
func call(b *testing.B, rt http.RoundTripper, req *http.Request) bool {
	resp, err := roundTrip(rt, req)
	if err != nil || resp.StatusCode != 200 {
		b.Error(resp, err)
		return false
	}
	resp.Body.Close()
	return true
}

// BenchmarkPassThrough is issue 4's benchmark 1: a 200 from an in-memory
// base, one goroutine. What each wrapper adds to the bare base is its cost
// on the path that succeeds.
func BenchmarkPassThrough(b *testing.B) {
	for _, s := range append(subjects, latchedSubject) {
		b.Run("rt="+s.name, func(b *testing.B) {
			rt, done := s.make(newCanned(), finchAPI)
			defer done()
			req := newRequest(b, finchAPI+"/employer/company")
			b.ReportAllocs()
			for b.Loop() {
				if !call(b, rt, req) {
					return
				}
			}
		})
	}
}

// BenchmarkContention is issue 4's benchmark 6: the pass-through of
// BenchmarkPassThrough from exactly g goroutines at once, sharing one
// RoundTripper and one request, as an application's goroutines share its
// client. ns/op is wall time per call over all goroutines: a wrapper
// without a shared lock keeps its ratio to bare as g grows.
func BenchmarkContention(b *testing.B) {
	for _, g := range []int{1, 2, 8, 64} {
		for _, s := range append(subjects, latchedSubject) {
			b.Run(fmt.Sprintf("g=%d/rt=%s", g, s.name), func(b *testing.B) {
				rt, done := s.make(newCanned(), finchAPI)
				defer done()
				req := newRequest(b, finchAPI+"/employer/company")
				b.ReportAllocs()
				parallel(b, g, func() bool { return call(b, rt, req) })
			})
		}
	}
}

// parallel runs fn b.N times in all, from exactly g goroutines (RunParallel
// starts a multiple of GOMAXPROCS, which would make g=1 two goroutines on
// two cores). A goroutine stops when fn returns false.
func parallel(b *testing.B, g int, fn func() bool) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range g {
		n := b.N / g
		if i < b.N%g {
			n++
		}
		wg.Go(func() {
			<-start
			for range n {
				if !fn() {
					return
				}
			}
		})
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
}

// BenchmarkLoopback is issue 4's benchmark 2: real HTTP/1.1 over loopback
// to an httptest server that answers 200 with a small JSON body, the body
// read in full, from 2×GOMAXPROCS goroutines. Throughput is 1/ns/op.
func BenchmarkLoopback(b *testing.B) {
	body := []byte(`{"company_id":"c2000000-0000-4000-8000-000000000001","legal_name":"Acme"}`)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer ts.Close()
	for _, s := range subjects {
		b.Run("rt="+s.name, func(b *testing.B) {
			// Each subject gets its own connection pool, warmed by the
			// benchmark's first calls, so none inherits another's.
			base := &http.Transport{MaxIdleConnsPerHost: 64}
			defer base.CloseIdleConnections()
			rt, done := s.make(base, ts.URL)
			defer done()
			for range 4 {
				if err := fetch(rt, newRequest(b, ts.URL+"/employer/company")); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(2)
			b.RunParallel(func(pb *testing.PB) {
				req := newRequest(b, ts.URL+"/employer/company")
				for pb.Next() {
					if err := fetch(rt, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// fetch sends req through rt and reads the response body to its end, so
// that the connection goes back to the pool.
func fetch(rt http.RoundTripper, req *http.Request) error {
	resp, err := roundTrip(rt, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// BenchmarkLoopbackPaired measures benchmark 2's ratio without the drift of
// a shared machine between runs: each goroutine alternates a call through
// the bare base and a call through the wrapper, over the same connection
// pool, timing each. throughput-ratio is the bare calls' total time over
// the wrapper's (1 when the wrapper costs nothing, 0.99 when it costs 1%);
// p50-ratio is the same for the median call, which the rare long pauses of
// a shared machine (a GC, a preemption) that land on one side or the other
// do not sway.
func BenchmarkLoopbackPaired(b *testing.B) {
	body := []byte(`{"company_id":"c2000000-0000-4000-8000-000000000001","legal_name":"Acme"}`)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer ts.Close()
	for _, s := range subjects[1:] {
		b.Run("rt="+s.name, func(b *testing.B) {
			base := &http.Transport{MaxIdleConnsPerHost: 64}
			defer base.CloseIdleConnections()
			rt, done := s.make(base, ts.URL)
			defer done()
			var mu sync.Mutex
			var bare, wrapped []time.Duration
			b.ReportAllocs()
			b.SetParallelism(2)
			b.RunParallel(func(pb *testing.PB) {
				req := newRequest(b, ts.URL+"/employer/company")
				var myBare, myWrapped []time.Duration
				for i := 0; pb.Next(); i++ {
					via := http.RoundTripper(base)
					if i%2 == 1 {
						via = rt
					}
					start := time.Now()
					if err := fetch(via, req); err != nil {
						b.Error(err)
						return
					}
					if d := time.Since(start); i%2 == 1 {
						myWrapped = append(myWrapped, d)
					} else {
						myBare = append(myBare, d)
					}
				}
				mu.Lock()
				bare, wrapped = append(bare, myBare...), append(wrapped, myWrapped...)
				mu.Unlock()
			})
			if len(bare) > 0 && len(wrapped) > 0 {
				b.ReportMetric(float64(sum(bare))/float64(len(bare))/(float64(sum(wrapped))/float64(len(wrapped))), "throughput-ratio")
				b.ReportMetric(float64(median(bare))/float64(median(wrapped)), "p50-ratio")
			}
		})
	}
}

func sum(ds []time.Duration) (t time.Duration) {
	for _, d := range ds {
		t += d
	}
	return t
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
