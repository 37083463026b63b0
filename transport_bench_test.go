package finchreauth

import (
	"io"
	"net/http"
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

// BenchmarkPassThrough compares a bare base with the same base behind a
// Transport, on a 200: the cost of the hot path.
func BenchmarkPassThrough(b *testing.B) {
	base := &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
	req := benchRequest(b, "healthy-token-0123456789abcdef")
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
	b.Run("bare", func(b *testing.B) { run(b, base) })
	b.Run("finchreauth", func(b *testing.B) {
		t := &Transport{Base: base}
		defer t.Close()
		run(b, t)
	})
	b.Run("finchreauth-latch-nonempty", func(b *testing.B) {
		t := &Transport{Base: base}
		defer t.Close()
		t.init()
		t.latch.add("some-broken-token", "conn", true, time.Hour, time.Now())
		run(b, t)
	})
}

// BenchmarkLatched measures the answer to a token already known to be broken.
func BenchmarkLatched(b *testing.B) {
	const token = "broken-token-0123456789abcdef"
	base := &cannedRT{status: 200}
	req := benchRequest(b, token)
	t := &Transport{Base: base}
	defer t.Close()
	t.init()
	t.latch.add(token, "conn", true, time.Hour, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		resp, err := roundTrip(t, req)
		if err != nil || resp.StatusCode != 401 {
			b.Fatal(resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
