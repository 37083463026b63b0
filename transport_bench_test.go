package finchreauth

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cannedRT answers every request with a fresh 200 response around a shared,
// immutable body, as an in-memory base for measuring the Transport alone.
type cannedRT struct {
	status int
	header http.Header
	body   string
}

func (c *cannedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: c.status, Header: c.header, Body: http.NoBody, Request: req}, nil
}

func benchRequest(b *testing.B) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer healthy-token-0123456789abcdef")
	return req
}

func BenchmarkPassThrough(b *testing.B) {
	var base http.RoundTripper = &cannedRT{status: 200, header: http.Header{"Content-Type": {"application/json"}}}
	req := benchRequest(b)
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := base.RoundTrip(req)
			resp.Body.Close()
		}
	})
	b.Run("finchreauth", func(b *testing.B) {
		t := &Transport{Base: base}
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := t.RoundTrip(req)
			resp.Body.Close()
		}
	})
	b.Run("finchreauth-nonempty-latch", func(b *testing.B) {
		t := &Transport{Base: base}
		t.init()
		t.latch.add("some-broken-token", "conn", true, time.Hour, time.Now())
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := t.RoundTrip(req)
			resp.Body.Close()
		}
	})
}

func BenchmarkLatched(b *testing.B) {
	base := &cannedRT{status: 200}
	req := benchRequest(b)
	t := &Transport{Base: base}
	t.init()
	t.latch.add("healthy-token-0123456789abcdef", "conn", true, time.Hour, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := t.RoundTrip(req)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_ = strings.NewReader
}
