package finchtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// Fault makes matching requests misbehave: answer with another status or
// a malformed body, add headers, or answer late.
type Fault struct {
	// Method and Path select the requests the fault applies to (Path is
	// the URL path, without query). Empty matches any. Method is compared
	// case-insensitively.
	Method, Path string

	// Status is the status to answer with instead of the route's answer.
	// If 0, the route answers normally, after Latency and with Header.
	Status int

	// Body is the raw body sent with Status; it may be malformed on
	// purpose (an HTML 502 page, truncated JSON, nothing). If empty and
	// Status >= 400, a Finch-shaped JSON error for that status is sent
	// (ErrorBody builds other ones). Ignored when Status is 0.
	Body string

	// Header holds headers added to the response, e.g. Retry-After. Keys
	// are sent with the spelling given, so a test can send a lowercase
	// "finch-request-id". Without a Content-Type, one is chosen: JSON for
	// a body that is valid JSON, else sniffed from the body.
	Header http.Header

	// Latency delays the answer. The wait ends early, with no answer, when
	// the request's context is cancelled (the client gave up), and with a
	// 503 when the server is closed. No lock is held while waiting.
	Latency time.Duration

	// Times is how many matching requests the fault applies to; 0 means
	// every matching request until ClearFaults.
	Times int
}

type faultState struct {
	f         Fault
	remaining int // counts down from Times; unused when Times is 0
}

// InjectFault adds a fault. Faults are matched in insertion order against
// each request (after it is counted, before it is handled); the first
// matching fault with remaining applications applies, and only that one.
// The fault is copied: changing f afterwards has no effect.
func (s *Server) InjectFault(f Fault) {
	f.Header = f.Header.Clone()
	s.mu.Lock()
	s.faults = append(s.faults, &faultState{f: f, remaining: f.Times})
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// takeFault returns the fault that applies to a request, if any, and uses
// up one of its applications.
func (s *Server) takeFault(method, path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, fs := range s.faults {
		if fs.f.Method != "" && !strings.EqualFold(fs.f.Method, method) {
			continue
		}
		if fs.f.Path != "" && fs.f.Path != path {
			continue
		}
		if fs.f.Times > 0 {
			fs.remaining--
			if fs.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return fs.f, true
	}
	return Fault{}, false
}

// applyFault applies f and reports whether the response is complete.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) (done bool) {
	h := w.Header()
	for k, vs := range f.Header {
		if ck := http.CanonicalHeaderKey(k); ck != k {
			delete(h, ck)
		}
		h[k] = append([]string(nil), vs...)
	}

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true // the client is gone: nobody reads an answer
		case <-s.closed():
			writeError(w, newAPIError(http.StatusServiceUnavailable, "service_unavailable_error", "", "finchtest: server closed"))
			return true
		}
	}

	if f.Status == 0 {
		return false
	}
	body := f.Body
	if body == "" && f.Status >= 400 {
		b, _ := json.Marshal(defaultError(f.Status))
		body = string(b)
	}
	if !hasHeader(h, "Content-Type") && body != "" {
		if json.Valid([]byte(body)) {
			h.Set("Content-Type", contentTypeJSON)
		} else {
			h.Set("Content-Type", http.DetectContentType([]byte(body)))
		}
	}
	w.WriteHeader(f.Status)
	io.WriteString(w, body)
	return true
}

// hasHeader reports whether h holds key in any spelling.
func hasHeader(h http.Header, key string) bool {
	for k := range h {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}
