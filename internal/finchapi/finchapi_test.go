package finchapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// TestReauthSessionUnlistedState: a session request that Finch refuses as
// invalid (400 or 422) naming the field state is sent again without it;
// Unlisted remembers a refusal that leaving state out cured, and only that.
// Any other refusal is returned as it came, after one request.
func TestReauthSessionUnlistedState(t *testing.T) {
	const (
		unrecognized = `{"code":400,"name":"invalid_request_error","message":"Unrecognized field: state"}`
		nest         = `{"statusCode":422,"message":["property state should not exist"],"error":"Unprocessable Entity"}`
		badRequest   = `{"code":400,"name":"invalid_request_error","message":"Bad Request","statusCode":400,"status":400}`
		statement    = `{"code":400,"name":"invalid_request_error","message":"statusCode: bad statement; states"}`
	)
	cases := []struct {
		name      string
		withState answer // Finch's answer to a body with state; 201 if zero
		always    answer // Finch's answer to every body, if not zero
		memory    bool
		wantErr   int    // status of the error the second mint returns
		wantState []bool // whether each request carried state, over two mints
		remember  bool
	}{
		{"state taken", answer{}, answer{}, true, 0, []bool{true, true}, false},
		{"400 naming state", answer{400, unrecognized}, answer{}, true, 0, []bool{true, false, false}, true},
		{"422 naming state", answer{422, nest}, answer{}, true, 0, []bool{true, false, false}, true},
		{"without memory: tried each time", answer{400, unrecognized}, answer{}, false, 0, []bool{true, false, true, false}, false},
		{"naming state, refused without it too", answer{}, answer{400, unrecognized}, true, 400, []bool{true, false, true, false}, false},
		// A refusal that does not name the field is tried without it too:
		// refused again, it was not the field, and nothing is remembered.
		{"400 not naming state", answer{}, answer{400, badRequest}, true, 400, []bool{true, false, true, false}, false},
		{"400 naming other words", answer{}, answer{400, statement}, true, 400, []bool{true, false, true, false}, false},
		{"400 not naming state, taken without it", answer{400, badRequest}, answer{}, true, 0, []bool{true, false, false}, true},
		{"401 is not about fields", answer{}, answer{401, `{"name":"invalid_client_error","message":"state"}`}, true, 401, []bool{true, true}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, sent := sessionServer(tc.withState, tc.always)
			defer srv.Close()
			var memo *Unlisted
			if tc.memory {
				memo = new(Unlisted)
			}
			var err error
			for range 2 {
				c := Client{Base: srv.Client().Transport, BaseURL: srv.URL, Unlisted: memo} // a Client per call, as the Transport makes them
				var u string
				u, err = c.ReauthSession(context.Background(), "id", "secret", SessionRequest{ConnectionID: "conn_1", State: "st"})
				if err == nil && u == "" {
					t.Fatal("no connect_url")
				}
			}
			var he *HTTPError
			switch {
			case tc.wantErr == 0 && err != nil:
				t.Fatalf("mint: %v", err)
			case tc.wantErr != 0 && (!errors.As(err, &he) || he.StatusCode != tc.wantErr):
				t.Fatalf("mint: %v, want a %d", err, tc.wantErr)
			}
			if got := fmt.Sprint(sent()); got != fmt.Sprint(tc.wantState) {
				t.Errorf("requests carried state: %v, want %v", got, tc.wantState)
			}
			if memo != nil && memo.sessionState.Load() != tc.remember {
				t.Errorf("remembered: %v, want %v", memo.sessionState.Load(), tc.remember)
			}
		})
	}
}

// answer is a status and a body a fake Finch answers with.
type answer struct {
	status int
	body   string
}

// sessionServer is a Finch whose POST /connect/sessions/reauthenticate
// answers always, if set, or withState, if set, to a body with state, or
// else mints a session. sent reports whether each request carried state.
func sessionServer(withState, always answer) (srv *httptest.Server, sent func() []bool) {
	var mu sync.Mutex
	var carried []bool
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		_, hasState := body["state"]
		mu.Lock()
		carried = append(carried, hasState)
		mu.Unlock()
		a := answer{201, `{"session_id":"sess_1","connect_url":"https://connect.example/authorize?session=sess_1"}`}
		switch {
		case always.status != 0:
			a = always
		case hasState && withState.status != 0:
			a = withState
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	return srv, func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return append([]bool(nil), carried...)
	}
}
