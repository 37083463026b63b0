package finchreauth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"2", 2 * time.Second, true},
		{"-1", 0, false},
		{"86400", maxRetryAfter, true}, // capped
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true}, // in the past
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{"soon", 0, false},
	} {
		got, ok := retryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	for attempt := range 20 {
		d := backoff(retryWaitMin, retryWaitMax, attempt, nil)
		if d < 0 || d > retryWaitMax {
			t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, retryWaitMax)
		}
	}
	resp := &http.Response{Header: http.Header{"Retry-After": {"3"}}}
	if d := backoff(retryWaitMin, retryWaitMax, 0, resp); d != 3*time.Second {
		t.Fatalf("Retry-After: 3 gave %v", d)
	}
}

func TestTokenResponseFormatsWithoutToken(t *testing.T) {
	tr := tokenResponse{AccessToken: "tok-SECRET-abc", ConnectionID: "conn_1"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
		if s := fmt.Sprintf(verb, tr); strings.Contains(s, "SECRET") {
			t.Fatalf("%s prints the token", verb)
		}
	}
}

type idleCounter struct {
	http.RoundTripper
	closed int
}

func (c *idleCounter) CloseIdleConnections() { c.closed++ }

func TestCloseIdleConnectionsReachesBase(t *testing.T) {
	base := &idleCounter{}
	tr := &Transport{Base: base}
	(&http.Client{Transport: tr}).CloseIdleConnections()
	tr.WrapClient(&http.Client{Transport: base}).CloseIdleConnections()
	if base.closed != 2 {
		t.Fatalf("CloseIdleConnections reached the base %d times, want 2", base.closed)
	}
}
