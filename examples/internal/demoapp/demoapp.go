// Package demoapp is the plumbing the examples' applications share and that
// none of them is about: serving on a loopback port, a stand-in sign-in, and
// a record of what the library's ErrorHandler reported. What each example
// shows (how it mounts the Transport's handlers, who may reconnect what, its
// Notifier) stays in the example's own code.
package demoapp

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves an app on a loopback port.
type Server struct {
	URL string // where the app is served, e.g. http://127.0.0.1:41235
	ln  net.Listener
	srv *http.Server
}

// Listen reserves a loopback port. Listening before configuring the app lets
// Connect.RedirectURI name the app's real address.
func Listen() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Server{URL: "http://" + ln.Addr().String(), ln: ln}, nil
}

// Serve starts serving h in the background.
func (s *Server) Serve(h http.Handler) {
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(s.ln)
}

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	return s.srv.Shutdown(ctx)
}

// sessionCookie names the cookie of the stand-in sign-in.
const sessionCookie = "session"

// Sessions is a stand-in for an app's own sign-in: a cookie names a session,
// the session names a user. The zero value is ready to use.
type Sessions struct {
	mu    sync.Mutex
	users map[string]string // session cookie value -> user
}

// SignIn starts a session for user and sets its cookie on the response.
func (s *Sessions) SignIn(w http.ResponseWriter, user string) {
	id := rand.Text()
	s.mu.Lock()
	if s.users == nil {
		s.users = map[string]string{}
	}
	s.users[id] = user
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// User returns the signed-in user of a request.
func (s *Sessions) User(r *http.Request) (string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", errors.New("not signed in")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok := s.users[c.Value]
	if !ok {
		return "", errors.New("unknown session")
	}
	return user, nil
}

// Errors records what the library's ErrorHandler reports. It names tokens
// by fingerprint only, so it is safe to log. The zero value is ready to use.
type Errors struct {
	mu   sync.Mutex
	errs []error
}

// Record is a Transport.ErrorHandler.
func (e *Errors) Record(ctx context.Context, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

// Take returns what was reported since the last Take, and forgets it.
func (e *Errors) Take() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	errs := e.errs
	e.errs = nil
	return errs
}
