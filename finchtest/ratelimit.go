package finchtest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// rateWindow is the rolling window Finch limits one endpoint with.
const rateWindow = 60 * time.Second

// rateLimit is the state of one endpoint's limit.
type rateLimit struct {
	perMinute int         // 0: no limit
	hits      []time.Time // requests admitted within the window, oldest first
	refused   int         // requests answered 429
}

// SetRateLimit limits an endpoint to perMinute requests in any rolling
// 60-second window, as Finch limits each application per endpoint (for
// example 20 a minute for /employer/company); the limit is the
// application's, shared by every token and connection. endpoint is a
// route's path, for every method ("/introspect",
// "/jobs/automated/{job_id}"), or a method and a path
// ("POST /jobs/automated"). A perMinute of 0 or less lifts the limit.
//
// A request beyond the limit answers 429 rate_limit_exceeded_error with
// finch_code finch_application_rl (and Retry-After if
// SetRateLimitRetryAfter asked for it), and does not count toward the
// window. A request counts toward every limit that matches it and is
// refused if any of them is full. The window is measured with the
// server's clock (see SetClock). Limits apply after a request is counted
// (see Calls) and before faults (see InjectFault).
func (s *Server) SetRateLimit(endpoint string, perMinute int) {
	key := rateKey(endpoint)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits == nil {
		s.limits = make(map[string]*rateLimit)
	}
	l := s.limits[key]
	if l == nil {
		l = &rateLimit{}
		s.limits[key] = l
	}
	l.perMinute = max(perMinute, 0)
}

// SetRateLimitRetryAfter makes the 429s of rate limits carry a
// Retry-After header: the seconds until the window has room again,
// rounded up. Off by default: no Finch source documents the header.
func (s *Server) SetRateLimitRetryAfter(send bool) {
	s.mu.Lock()
	s.retryAfter = send
	s.mu.Unlock()
}

// RateLimited reports how many requests the limit of endpoint (spelled as
// for SetRateLimit) answered with 429, or every limit's if endpoint is "".
func (s *Server) RateLimited(endpoint string) int {
	key := rateKey(endpoint)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, l := range s.limits {
		if endpoint == "" || k == key {
			n += l.refused
		}
	}
	return n
}

// rateKey spells an endpoint the way limits are keyed: "/path" or
// "METHOD /path".
func rateKey(endpoint string) string {
	method, path, ok := strings.Cut(strings.TrimSpace(endpoint), " ")
	if !ok {
		return method
	}
	return strings.ToUpper(method) + " " + strings.TrimSpace(path)
}

// rateLimited admits a request to the route pattern, or answers it 429
// and reports true.
func (s *Server) rateLimited(w http.ResponseWriter, method, pattern string) bool {
	wait, limited, header := s.admit(method, pattern)
	if !limited {
		return false
	}
	if header {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (wait+time.Second-1)/time.Second))))
	}
	writeError(w, newAPIError(http.StatusTooManyRequests, "rate_limit_exceeded_error", "finch_application_rl",
		"Rate limit exceeded for this endpoint; retry later"))
	return true
}

// admit records a request against the limits that match it, unless one
// is full: then it reports how long until that one has room.
func (s *Server) admit(method, pattern string) (wait time.Duration, limited, header bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.limits) == 0 {
		return 0, false, false
	}
	now := s.nowLocked()
	var match []*rateLimit
	for _, key := range []string{pattern, strings.ToUpper(method) + " " + pattern} {
		l := s.limits[key]
		if l == nil || l.perMinute == 0 {
			continue
		}
		for len(l.hits) > 0 && !l.hits[0].After(now.Add(-rateWindow)) {
			l.hits = l.hits[1:]
		}
		if len(l.hits) >= l.perMinute {
			l.refused++
			limited = true
			wait = max(wait, l.hits[len(l.hits)-l.perMinute].Add(rateWindow).Sub(now))
		}
		match = append(match, l)
	}
	if limited {
		return wait, true, s.retryAfter
	}
	for _, l := range match {
		l.hits = append(l.hits, now)
	}
	return 0, false, false
}
