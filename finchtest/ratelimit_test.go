package finchtest_test

import (
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

// clock is a settable clock for a server.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// TestRateLimitRollingWindow: a rolling 60 s window of the server's clock,
// shared by every token; refused requests do not count; Calls counts them.
func TestRateLimitRollingWindow(t *testing.T) {
	s := newServer(t)
	clk := &clock{now: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	s.SetClock(clk.Now)
	t1 := s.AddConnection(finchtest.Connection{})
	t2 := s.AddConnection(finchtest.Connection{})
	s.SetRateLimit("/introspect", 3)
	s.SetRateLimitRetryAfter(true)
	get := func(tok string) response { return send(t, s, req{method: "GET", path: "/introspect", token: tok}) }

	steps := []struct {
		at         time.Duration // since the start
		tok        string
		want       int
		retryAfter string
	}{
		{0, t1, 200, ""},
		{30 * time.Second, t2, 200, ""}, // another connection: the same application's limit
		{59 * time.Second, t1, 200, ""},
		{59 * time.Second, t2, 429, "1"},   // the first leaves the window at 60 s
		{60 * time.Second, t1, 200, ""},    // it has left: 30, 59, 60 in the window
		{62 * time.Second, t1, 429, "28"},  // the one of 30 s leaves at 90 s
		{89 * time.Second, t1, 429, "1"},   // refused requests did not count
		{90 * time.Second, t1, 200, ""},    // 59, 60, 90
		{150 * time.Second, t1, 200, ""},   // the window is (90 s, 150 s]: 150
		{150 * time.Second, t2, 200, ""},   // 150, 150
		{150 * time.Second, t2, 200, ""},   // 150, 150, 150
		{150 * time.Second, t1, 429, "60"}, // full for a whole window
	}
	start := clk.now
	for i, st := range steps {
		clk.now = start.Add(st.at)
		res := get(st.tok)
		if res.status != st.want {
			t.Fatalf("step %d at %v: status %d, want %d", i, st.at, res.status, st.want)
		}
		if got := res.header.Get("Retry-After"); got != st.retryAfter {
			t.Errorf("step %d at %v: Retry-After %q, want %q", i, st.at, got, st.retryAfter)
		}
	}
	if n := s.RateLimited("/introspect"); n != 4 {
		t.Errorf("RateLimited = %d, want 4", n)
	}
	clk.now = start.Add(150 * time.Second)
	checkError(t, get(t1), 429, "rate_limit_exceeded_error", "finch_application_rl")
	if n := s.Calls("GET", "/introspect"); n != len(steps)+1 {
		t.Errorf("Calls = %d, want %d: refused requests are counted", n, len(steps)+1)
	}
	// Other endpoints are not limited.
	for range 5 {
		if res := send(t, s, req{method: "GET", path: "/employer/company", token: t1}); res.status != 200 {
			t.Fatalf("company: %d", res.status)
		}
	}
}

// TestRateLimitEndpoints: a method-specific limit and a path limit both
// apply; lifting a limit; no Retry-After unless asked; a limit is checked
// before faults.
func TestRateLimitEndpoints(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	s.SetRateLimit("put /sandbox/connections/accounts", 1)
	s.SetRateLimit("/employer/directory", 2)
	s.InjectFault(finchtest.Fault{Path: "/employer/directory", Status: 503})
	put := func() response {
		return send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tok, body: `{"connection_status":"connected"}`})
	}
	if res := put(); res.status != 200 {
		t.Fatalf("first PUT: %d", res.status)
	}
	res := put()
	checkError(t, res, 429, "rate_limit_exceeded_error", "finch_application_rl")
	if res.header.Get("Retry-After") != "" {
		t.Error("Retry-After sent though not asked for")
	}
	// Another method on the path is not limited by the method's limit.
	if res := send(t, s, req{method: "GET", path: "/sandbox/connections/accounts", token: tok}); res.status != 405 {
		t.Errorf("GET: %d", res.status)
	}
	for i, want := range []int{503, 503, 429} {
		if res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok}); res.status != want {
			t.Errorf("directory %d: %d, want %d", i, res.status, want)
		}
	}
	if a, b, all := s.RateLimited("PUT /sandbox/connections/accounts"), s.RateLimited("/employer/directory"), s.RateLimited(""); a != 1 || b != 1 || all != 2 {
		t.Errorf("RateLimited = %d, %d, %d", a, b, all)
	}
	s.SetRateLimit("PUT /sandbox/connections/accounts", 0)
	if res := put(); res.status != 200 {
		t.Errorf("after lifting the limit: %d", res.status)
	}
}
