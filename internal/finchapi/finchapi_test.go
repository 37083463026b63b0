package finchapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for attempt := range 20 {
		d := Backoff(retryWaitMin, retryWaitMax, attempt, nil)
		want := min(retryWaitMin<<attempt, retryWaitMax)
		if attempt > 10 {
			want = retryWaitMax
		}
		if d < want || d > want+want/4 {
			t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want, want+want/4)
		}
	}
	for _, tc := range []struct {
		status     int
		retryAfter string
		lo, hi     time.Duration
	}{
		{429, "3", 3 * time.Second, 3*time.Second + 750*time.Millisecond},
		{503, "0", 0, 0},
		{429, "86400", MaxRetryAfter, MaxRetryAfter}, // capped
		{429, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), MaxRetryAfter, MaxRetryAfter},
		{500, "3", retryWaitMin, retryWaitMin + retryWaitMin/4}, // only 429 and 503 carry one
		{429, "soon", retryWaitMin, retryWaitMin + retryWaitMin/4},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Retry-After": {tc.retryAfter}}}
		if d := Backoff(retryWaitMin, retryWaitMax, 0, resp); d < tc.lo || d > tc.hi {
			t.Errorf("%d Retry-After %q: %v outside [%v, %v]", tc.status, tc.retryAfter, d, tc.lo, tc.hi)
		}
	}
}

func TestTokenResponseFormatsWithoutToken(t *testing.T) {
	tr := TokenResponse{AccessToken: "tok-SECRET-abc", ConnectionID: "conn_1"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
		if s := fmt.Sprintf(verb, tr); strings.Contains(s, "SECRET") {
			t.Fatalf("%s prints the token", verb)
		}
	}
}

// TestRetries: 429 and 5xx are retried, other 4xx never; the answer is
// decoded; a 4xx comes back as an HTTPError with its body.
func TestRetries(t *testing.T) {
	var calls atomic.Int64
	answers := []int{429, 503, 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1) - 1
		if r.Header.Get("Finch-API-Version") != APIVersion || r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(400)
			return
		}
		status := 400
		if int(n) < len(answers) {
			status = answers[n]
		}
		if status == 429 {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(status)
		io.WriteString(w, `{"connection_id":"conn_1","connection_status":{"status":"reauth"},"payroll_provider_id":"gusto"}`)
	}))
	defer srv.Close()
	c := Client{Base: srv.Client().Transport, BaseURL: srv.URL, Limit: NewLimiter(1)}
	in, err := c.Introspect(context.Background(), "tok")
	if err != nil || in.ConnectionID != "conn_1" || in.ProviderID != "gusto" {
		t.Fatalf("Introspect = %+v, %v", in, err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3 (429, 503, 200)", calls.Load())
	}
	_, err = c.Introspect(context.Background(), "tok")
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 400 || !strings.Contains(string(he.Body), "conn_1") {
		t.Fatalf("a 400: %v", err)
	}
	if calls.Load() != 4 {
		t.Fatalf("a 400 was retried: %d calls", calls.Load())
	}
	if c.Limit.InFlight() != 0 {
		t.Fatal("a slot is still held")
	}
}

// TestLimit: a call waits for a free slot, and gives up with its context.
func TestLimit(t *testing.T) {
	l := NewLimiter(1)
	l <- struct{}{} // the one slot is taken
	c := Client{Base: http.DefaultTransport, BaseURL: "http://127.0.0.1:1", Limit: l}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Introspect(ctx, "tok"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a slot: %v", err)
	}
}
