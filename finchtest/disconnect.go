package finchtest

import (
	"fmt"
	"net/http"
)

// RevokedAnswer selects what a token revoked by POST /disconnect answers,
// on every route that takes a bearer token (/introspect included). Finch
// says /disconnect deletes the tokens, and answers an unknown token with
// 401 invalid_token_error; it also notes that a revoked connection
// sometimes comes back as 500 server_error. Neither is confirmed for a
// token revoked this way, so a test picks one with SetRevokedAnswer.
type RevokedAnswer int

const (
	// RevokedInvalidToken answers 401 invalid_token_error, as for a token
	// Finch never issued: the tokens were deleted. The default (the zero
	// value). It is not a re-authentication: no finch_code.
	RevokedInvalidToken RevokedAnswer = iota

	// RevokedServerError answers 500 server_error, as Finch notes a
	// revoked connection sometimes does.
	RevokedServerError
)

// String returns the constant's name.
func (a RevokedAnswer) String() string {
	switch a {
	case RevokedInvalidToken:
		return "RevokedInvalidToken"
	case RevokedServerError:
		return "RevokedServerError"
	}
	return fmt.Sprintf("RevokedAnswer(%d)", int(a))
}

// SetRevokedAnswer sets what a token revoked by POST /disconnect answers
// (see RevokedAnswer). It applies to tokens already revoked. A value other
// than the two constants acts as RevokedInvalidToken.
func (s *Server) SetRevokedAnswer(a RevokedAnswer) {
	s.mu.Lock()
	s.revoked = a
	s.mu.Unlock()
}

// revokedErrorLocked is the answer to a revoked token. s.mu must be held.
func (s *Server) revokedErrorLocked() *apiError {
	if s.revoked == RevokedServerError {
		return newAPIError(http.StatusInternalServerError, "server_error", "", "Internal server error")
	}
	return errInvalidToken()
}

// serveDisconnect answers POST /disconnect: it disconnects the bearer
// token's connection for good, and answers 200 {"status":"success"}. Every
// token of the connection is revoked (see RevokedAnswer), the connection's
// status becomes "disconnected" and stays so (SetStatus and the other
// setters ignore it, and Connect refuses to reconnect it), its running job
// ends in "error" without a webhook, and an account.updated event with
// status "disconnected" is sent (or held) before the answer. Its entities
// and authentication methods keep their own statuses. A token superseded
// by a reconnect answers 401 reauthenticate_user, as for data calls.
func (s *Server) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	s.sendEvents(s.disconnect(p.conn.ID))
	writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
}

// disconnect revokes every token of a connection and marks it
// disconnected; it returns the account.updated events of the change.
func (s *Server) disconnect(connID string) []webhookEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.conns[connID]
	before := cs.statuses()
	for _, tok := range cs.tokens {
		s.tokens[tok].revoked = true
	}
	cs.disconnected = true
	cs.conn.Status = "disconnected"
	if j := s.runningJobLocked(cs); j != nil {
		s.endJobLocked(j, "error", s.nowLocked()) // quietly: the connection is gone
	}
	return s.accountEventsLocked(cs, before)
}
