package finchtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// The application credentials NewServer installs.
const (
	defaultClientID     = "client_test_1"
	defaultClientSecret = "secret_test_1"
)

// Server is a fake Finch: the API (api.tryfinch.com) and Finch Connect
// (connect.tryfinch.com) served together, by NewServer on one
// httptest server.
//
// Server is safe for concurrent use. It must not be copied after first
// use.
//
// The zero Server is usable too, as an http.Handler with no network: its
// Client serves requests in process, URL is empty (Connect URLs are then
// built from the request's Host) and the default credentials are accepted.
type Server struct {
	// URL is the base URL of the server, e.g. http://127.0.0.1:41234,
	// with no trailing slash. Both the API and Connect live under it:
	// s.URL+"/introspect", s.URL+"/authorize". NewServer sets it; if empty,
	// Connect URLs the fake builds use the scheme and Host of the request.
	URL string

	// ClientID and ClientSecret are the application credentials the fake
	// accepts at POST /auth/token and POST /connect/sessions/reauthenticate,
	// and the client_id it expects at GET /authorize. NewServer sets them to
	// "client_test_1" and "secret_test_1"; if empty, those values are
	// accepted. Set them, if at all, before the first request.
	ClientID     string
	ClientSecret string

	ts *httptest.Server

	callsMu sync.Mutex
	calls   map[callKey]int

	mu          sync.Mutex
	life        context.Context    // cancelled by Close
	kill        context.CancelFunc // cancels life
	isClosed    bool
	now         func() time.Time
	seq         int
	conns       map[string]*connState
	tokens      map[string]*tokenState
	codes       map[string]*codeState
	sessions    map[string]*connectSession
	authzs      map[string]*authzState
	faults      []*faultState
	stateSource SessionStateSource
	refuseExtra bool              // sessions refuse fields Finch's reference does not list
	webhook     Webhook           // the application's endpoint; URL "" when none
	deliveries  []WebhookDelivery // every webhook sent, in order
	attempts    map[string]int    // deliveries per event id
	hookClient  *http.Client      // the client webhooks go through
	inflight    sync.WaitGroup    // webhook deliveries under way; Close waits

	superseded SupersededIntrospection // what /introspect shows a superseded token
	holding    bool                    // events are held, not sent (HoldWebhooks)
	held       []webhookEvent          // held events, oldest first
	revoked    RevokedAnswer           // what a token revoked by POST /disconnect gets
	limits     map[string]*rateLimit   // rate limits by endpoint (SetRateLimit)
	retryAfter bool                    // rate limits' 429s carry Retry-After
	jobs       map[string]*jobState    // data sync jobs by id
	jobClock   *jobDuration            // how jobs advance by the clock; nil: by SetJobStatus only
}

var _ http.Handler = (*Server)(nil)

// NewServer starts and returns a new Server on a local httptest server.
// The caller must call Close when finished with it.
func NewServer() *Server {
	s := &Server{
		ClientID:     defaultClientID,
		ClientSecret: defaultClientSecret,
	}
	s.ts = httptest.NewUnstartedServer(s)
	// Set URL before the server starts, so handlers read it race-free.
	s.URL = "http://" + s.ts.Listener.Addr().String()
	s.ts.Start()
	if t, ok := s.ts.Client().Transport.(*http.Transport); ok {
		// A test that starts thousands of goroutines must not open
		// thousands of connections (and run out of file descriptors):
		// requests beyond this many wait for a free connection.
		t.MaxConnsPerHost = 256
		t.MaxIdleConnsPerHost = 256
	}
	return s
}

// Close shuts the server down. Requests waiting on a Fault's Latency are
// answered at once with a 503, and webhook deliveries under way are
// cancelled (they are recorded with their error); no webhook is sent
// afterwards. Close blocks until outstanding requests and deliveries
// complete. Calling Close more than once is harmless.
func (s *Server) Close() {
	s.mu.Lock()
	s.lifeLocked()
	s.isClosed = true
	s.kill()
	ts, hc := s.ts, s.hookClient
	s.mu.Unlock()
	s.inflight.Wait()
	if ts != nil {
		ts.Close() // also closes the idle connections of ts.Client()
	}
	if hc != nil {
		hc.CloseIdleConnections()
	}
}

// Client returns an HTTP client configured for requests to the server.
// For a Server from NewServer it is the httptest client; its transport
// keeps at most 256 connections to the server, so a test may start
// thousands of concurrent requests. Use Client().Transport as the base
// transport of the code under test. For the zero Server, the client
// serves every request in process, whatever its host.
func (s *Server) Client() *http.Client {
	if s.ts != nil {
		return s.ts.Client()
	}
	return &http.Client{Transport: handlerTransport{s}}
}

// SetClock sets the function the server reads the time from: it decides
// when authorization codes (10 minutes) and Connect sessions
// (minutes_to_expire) expire, when jobs advance (SetJobDuration) and
// forced refreshes are allowed again (an hour), the windows of rate limits
// (SetRateLimit), and it stamps last_successful_sync, jobs and webhooks.
// If now is nil, time.Now is used. Latency faults always use real time.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// nowLocked returns the server's time. s.mu must be held.
func (s *Server) nowLocked() time.Time {
	if s.now == nil {
		return time.Now()
	}
	return s.now()
}

// closed returns a channel closed when Close is called.
func (s *Server) closed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lifeLocked().Done()
}

// lifeLocked returns the context Close cancels. s.mu must be held.
func (s *Server) lifeLocked() context.Context {
	if s.life == nil {
		s.life, s.kill = context.WithCancel(context.Background())
	}
	return s.life
}

func (s *Server) clientID() string {
	if s.ClientID == "" {
		return defaultClientID
	}
	return s.ClientID
}

func (s *Server) clientSecret() string {
	if s.ClientSecret == "" {
		return defaultClientSecret
	}
	return s.ClientSecret
}

// baseURL is the URL Connect links point to.
func (s *Server) baseURL(r *http.Request) string {
	if s.URL != "" {
		return strings.TrimRight(s.URL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ServeHTTP serves the fake Finch API and Connect. Every response carries
// a unique Finch-Request-Id header. Each request is counted (see Calls),
// then the jobs that are due end (see SetJobDuration), then the rate
// limits apply (see SetRateLimit), then the first matching Fault (see
// InjectFault), then the route answers. An unknown path answers 404 and a
// known path with the wrong method answers 405 (with Allow), both with a
// Finch-shaped JSON error.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Finch-Request-Id", "req_"+randomHex(12))
	s.countCall(r.Method, r.URL.Path)
	s.settleJobs()
	pattern := routePattern(r.URL.Path)
	if s.rateLimited(w, r.Method, pattern) {
		return
	}

	if f, ok := s.takeFault(r.Method, r.URL.Path); ok {
		if s.applyFault(w, r, f) {
			return
		}
	}

	methods := s.routes(pattern)
	h := methods[r.Method]
	switch {
	case methods == nil:
		writeError(w, errNotFound("No route for this path"))
	case h == nil:
		w.Header().Set("Allow", strings.Join(slices.Sorted(maps.Keys(methods)), ", "))
		writeError(w, newAPIError(http.StatusMethodNotAllowed, "method_not_allowed_error", "", "Method not allowed"))
	default:
		h(w, r)
	}
}

// routePattern returns the route a URL path belongs to: the path itself,
// or a pattern such as "/jobs/automated/{job_id}" for a path with an id.
func routePattern(path string) string {
	if id, ok := strings.CutPrefix(path, "/jobs/automated/"); ok && id != "" && !strings.Contains(id, "/") {
		return "/jobs/automated/{job_id}"
	}
	return path
}

// routes returns the handlers of a route by method, or nil for an unknown
// route.
func (s *Server) routes(pattern string) map[string]http.HandlerFunc {
	switch pattern {
	case "/introspect":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveIntrospect}
	case "/employer/company":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveCompany}
	case "/employer/directory":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveDirectory}
	case "/sandbox/connections/accounts":
		return map[string]http.HandlerFunc{http.MethodPut: s.serveSandboxAccount}
	case "/auth/token":
		return map[string]http.HandlerFunc{http.MethodPost: s.serveToken}
	case "/connect/sessions/reauthenticate":
		return map[string]http.HandlerFunc{http.MethodPost: s.serveReauthSession}
	case "/authorize":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveAuthorize}
	case "/authorize/decision":
		return map[string]http.HandlerFunc{http.MethodPost: s.serveDecision}
	case "/disconnect":
		return map[string]http.HandlerFunc{http.MethodPost: s.serveDisconnect}
	case "/jobs/automated":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveJobList, http.MethodPost: s.serveJobCreate}
	case "/jobs/automated/{job_id}":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveJob}
	case "/sandbox/jobs/configuration":
		return map[string]http.HandlerFunc{http.MethodGet: s.serveSandboxJobConfig, http.MethodPut: s.serveSandboxJobConfigSet}
	}
	return nil
}

type callKey struct{ method, path string }

func (s *Server) countCall(method, path string) {
	s.callsMu.Lock()
	if s.calls == nil {
		s.calls = make(map[callKey]int)
	}
	s.calls[callKey{method, path}]++
	s.callsMu.Unlock()
}

// Calls reports how many requests reached the server with that method and
// URL path (no query), whatever their outcome: faulted, rejected and
// unknown routes are counted too. An empty method matches any method and
// an empty path any path, so Calls("", "") is the total. A route pattern
// counts every path it matches: Calls("GET", "/jobs/automated/{job_id}")
// counts the reads of every job. Approve, Cancel,
// ApproveAs and IssueCode do not make requests and are not counted.
func (s *Server) Calls(method, path string) int {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	n := 0
	for k, c := range s.calls {
		if (method == "" || strings.EqualFold(method, k.method)) && (path == "" || path == k.path || path == routePattern(k.path)) {
			n += c
		}
	}
	return n
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b)
}

// handlerTransport serves requests in process: the zero Server's client.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	r.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if req.Body != nil {
		req.Body.Close()
	}
	res := rec.Result()
	res.Request = req
	return res, nil
}
