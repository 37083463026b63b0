package finchtest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

func TestFaultDefaultBodies(t *testing.T) {
	tests := []struct {
		status    int
		name      string
		finchCode string
	}{
		{400, "invalid_request_error", ""},
		{401, "authentication_error", ""},
		{403, "forbidden_error", ""},
		{404, "not_found_error", ""},
		{408, "request_timeout_error", ""},
		{409, "conflict_error", ""},
		{422, "unprocessable_request_error", ""},
		{429, "rate_limit_exceeded_error", "finch_application_rl"},
		{418, "client_error", ""},
		{500, "server_error", ""},
		{501, "not_implemented_error", ""},
		{502, "bad_gateway_error", ""},
		{503, "service_unavailable_error", ""},
		{504, "gateway_timeout_error", ""},
		{599, "server_error", ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := newServer(t)
			tok := s.AddConnection(finchtest.Connection{})
			s.InjectFault(finchtest.Fault{Status: tt.status})
			res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok})
			checkError(t, res, tt.status, tt.name, tt.finchCode)
			if res.header.Get("Finch-Request-Id") == "" {
				t.Error("no Finch-Request-Id on a faulted answer")
			}
		})
	}
}

func TestFaultBodiesAndHeaders(t *testing.T) {
	tests := []struct {
		name       string
		fault      finchtest.Fault
		wantStatus int
		wantBody   string
		wantCT     string
		wantHeader map[string]string
	}{
		{
			name:       "HTML 502 from a proxy",
			fault:      finchtest.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>"},
			wantStatus: 502, wantBody: "<html><body>Bad Gateway</body></html>", wantCT: "text/html; charset=utf-8",
		},
		{
			name:       "truncated JSON",
			fault:      finchtest.Fault{Status: 401, Body: `{"code":401,"name":"authen`},
			wantStatus: 401, wantBody: `{"code":401,"name":"authen`, wantCT: "text/plain; charset=utf-8",
		},
		{
			name:       "custom JSON",
			fault:      finchtest.Fault{Status: 500, Body: `{"code":500,"name":"server_error","message":"revoked"}`},
			wantStatus: 500, wantBody: `{"code":500,"name":"server_error","message":"revoked"}`, wantCT: "application/json; charset=utf-8",
		},
		{
			name:       "explicit content type",
			fault:      finchtest.Fault{Status: 503, Body: "down", Header: http.Header{"Content-Type": {"text/x-custom"}}},
			wantStatus: 503, wantBody: "down", wantCT: "text/x-custom",
		},
		{
			name:       "empty 401",
			fault:      finchtest.Fault{Status: 401, Body: ""},
			wantStatus: 401, wantCT: "application/json; charset=utf-8",
		},
		{
			name:       "200 with empty body",
			fault:      finchtest.Fault{Status: 200},
			wantStatus: 200, wantBody: "",
		},
		{
			name: "429 with Retry-After",
			fault: finchtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"7"}},
				Body: finchtest.ErrorBody(429, "rate_limit_exceeded_error", "finch_api_ip_rl", "Too many requests")},
			wantStatus: 429,
			wantBody:   `{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_api_ip_rl","message":"Too many requests","statusCode":429,"status":429}`,
			wantHeader: map[string]string{"Retry-After": "7"},
		},
		{
			name:       "lowercase request id header",
			fault:      finchtest.Fault{Status: 500, Body: "x", Header: http.Header{"finch-request-id": {"req_custom"}}},
			wantStatus: 500, wantBody: "x",
			wantHeader: map[string]string{"Finch-Request-Id": "req_custom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tok := s.AddConnection(finchtest.Connection{})
			s.InjectFault(tt.fault)
			res := send(t, s, req{method: "GET", path: "/employer/company", token: tok})
			if res.status != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.status, tt.wantStatus)
			}
			if tt.wantBody != "" || tt.fault.Status < 400 {
				if string(res.body) != tt.wantBody {
					t.Errorf("body = %q, want %q", res.body, tt.wantBody)
				}
			}
			if tt.wantCT != "" {
				if got := res.header.Get("Content-Type"); got != tt.wantCT {
					t.Errorf("Content-Type = %q, want %q", got, tt.wantCT)
				}
			}
			for k, v := range tt.wantHeader {
				if got := res.header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestFaultStatusZeroAddsHeaderOnly(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	h := http.Header{"X-Extra": {"1"}}
	s.InjectFault(finchtest.Fault{Path: "/introspect", Header: h, Body: "ignored"})
	h.Set("X-Extra", "changed") // the fault holds its own copy
	res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
	if res.status != 200 || res.json(t)["connection_id"] == nil {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if got := res.header.Get("X-Extra"); got != "1" {
		t.Errorf("X-Extra = %q", got)
	}
}

func TestFaultMatchingAndTimes(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	get := func(path string) int {
		return send(t, s, req{method: "GET", path: path, token: tok}).status
	}

	s.InjectFault(finchtest.Fault{Method: "POST", Path: "/employer/company", Status: 500})
	s.InjectFault(finchtest.Fault{Method: "get", Path: "/employer/directory", Status: 502, Times: 2})
	s.InjectFault(finchtest.Fault{Path: "/employer/directory", Status: 503, Times: 1})
	s.InjectFault(finchtest.Fault{Method: "GET", Status: 429, Times: 1}) // any path

	if got := get("/employer/company"); got != 429 {
		t.Errorf("company: %d, want 429 (the POST fault must not match; the any-path one does)", got)
	}
	if got := get("/employer/company"); got != 200 {
		t.Errorf("company again: %d, want 200", got)
	}
	for i, want := range []int{502, 502, 503, 200, 200} {
		if got := get("/employer/directory"); got != want {
			t.Errorf("directory call %d: %d, want %d", i, got, want)
		}
	}
	if got := s.Calls("GET", "/employer/directory"); got != 5 {
		t.Errorf("Calls = %d, want 5: faulted requests count", got)
	}

	s.InjectFault(finchtest.Fault{Status: 500})
	if got := get("/introspect"); got != 500 {
		t.Errorf("unlimited fault: %d", got)
	}
	if got := get("/introspect"); got != 500 {
		t.Errorf("unlimited fault, again: %d", got)
	}
	s.ClearFaults()
	if got := get("/introspect"); got != 200 {
		t.Errorf("after ClearFaults: %d", got)
	}
}

func TestFaultOneOffReauth(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	s.InjectFault(finchtest.Fault{
		Path:   "/employer/directory",
		Status: 401,
		Body:   finchtest.ErrorBody(401, "authentication_error", "reauthenticate_user", "Please reauthenticate user"),
		Times:  1,
	})
	checkError(t, send(t, s, req{method: "GET", path: "/employer/directory", token: tok}), 401, "authentication_error", "reauthenticate_user")
	if res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok}); res.status != 200 {
		t.Errorf("second call: %d", res.status)
	}
}

func TestFaultLatency(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})

	t.Run("delays then answers normally", func(t *testing.T) {
		s.InjectFault(finchtest.Fault{Path: "/introspect", Latency: 50 * time.Millisecond, Times: 1})
		start := time.Now()
		res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
		if res.status != 200 {
			t.Errorf("status %d", res.status)
		}
	})
	t.Run("delays then faults", func(t *testing.T) {
		s.InjectFault(finchtest.Fault{Path: "/introspect", Latency: 30 * time.Millisecond, Status: 504, Times: 1})
		start := time.Now()
		checkError(t, send(t, s, req{method: "GET", path: "/introspect", token: tok}), 504, "gateway_timeout_error", "")
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})
	t.Run("client gives up", func(t *testing.T) {
		s.InjectFault(finchtest.Fault{Path: "/introspect", Latency: time.Hour, Times: 1})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/introspect", nil)
		start := time.Now()
		_, err := s.Client().Do(r)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

// TestFaultLatencyHonoursContext calls the handler directly: it must return
// as soon as the request's context is cancelled.
func TestFaultLatencyHonoursContext(t *testing.T) {
	var s finchtest.Server
	s.InjectFault(finchtest.Fault{Latency: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	r := httptest.NewRequestWithContext(ctx, "GET", "/introspect", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(httptest.NewRecorder(), r)
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still waiting after the context was cancelled")
	}
}

func TestCloseDuringLatency(t *testing.T) {
	s := finchtest.NewServer()
	s.InjectFault(finchtest.Fault{Latency: time.Hour})
	// The waiting request must end with a 503 or, if its connection went
	// first, a transport error; either way, not an hour later.
	wrong := make(chan string, 1)
	go func() {
		res, err := s.Client().Get(s.URL + "/introspect")
		if err != nil {
			wrong <- ""
			return
		}
		res.Body.Close()
		if res.StatusCode != 503 {
			wrong <- res.Status
			return
		}
		wrong <- ""
	}()
	for s.Calls("", "") == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a latency fault")
	}
	select {
	case st := <-wrong:
		if st != "" {
			t.Errorf("request answered %s, want 503", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request still waiting after Close")
	}
	s.Close() // twice is harmless
}
