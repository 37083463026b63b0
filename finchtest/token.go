package finchtest

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"time"
)

// codeLifetime is how long an authorization code can be exchanged.
const codeLifetime = 10 * time.Minute

// codeState is the server's record of an authorization code.
type codeState struct {
	connID      string
	redirectURI string   // "" for the embedded flow: the exchange must omit redirect_uri
	products    []string // granted products; nil keeps the connection's
	expires     time.Time
	used        bool
}

// issueCodeLocked issues a single-use code for a connection. s.mu must be
// held.
func (s *Server) issueCodeLocked(connID, redirectURI string, products []string) string {
	code := "code_" + randomHex(16)
	if s.codes == nil {
		s.codes = make(map[string]*codeState)
	}
	s.codes[code] = &codeState{
		connID:      connID,
		redirectURI: redirectURI,
		products:    slices.Clone(products),
		expires:     s.nowLocked().Add(codeLifetime),
	}
	return code
}

// IssueCode returns an authorization code for the connection, as the
// embedded Connect flow hands one to the page's JavaScript: no
// redirect_uri is bound to it, so POST /auth/token must omit redirect_uri.
// The code is single-use and expires after 10 minutes of server clock. It
// returns "" for an unknown or disconnected connection.
func (s *Server) IssueCode(connectionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.conns[connectionID]; !ok || cs.disconnected {
		return ""
	}
	return s.issueCodeLocked(connectionID, "", nil)
}

type tokenResponse struct {
	AccessToken    string   `json:"access_token"`
	TokenType      string   `json:"token_type"`
	ConnectionID   string   `json:"connection_id"`
	CustomerID     string   `json:"customer_id"`
	CompanyID      string   `json:"company_id"`
	ProviderID     string   `json:"provider_id"`
	Products       []string `json:"products"`
	EntityIDs      []string `json:"entity_ids"`
	ClientType     string   `json:"client_type"`
	ConnectionType string   `json:"connection_type"`
	CustomerName   string   `json:"customer_name"`
	AccountID      string   `json:"account_id"`
}

// serveToken answers POST /auth/token: it exchanges a code for a new
// access token. The exchange is what re-connects: the connection becomes
// "connected", its entities and authentication methods in "reauth" are
// healed, every older token of
// the connection dies (answering reauthenticate_user), and the ids stay the
// same. The account.updated webhooks of those status changes are delivered
// before the answer is sent.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID     string  `json:"client_id"`
		ClientSecret string  `json:"client_secret"`
		Code         string  `json:"code"`
		RedirectURI  *string `json:"redirect_uri"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, errInvalidRequest("Request body is not valid JSON"))
		return
	}
	if !s.validClient(req.ClientID, req.ClientSecret) {
		writeError(w, errInvalidClient())
		return
	}
	if req.Code == "" {
		writeError(w, errInvalidRequest("code is required"))
		return
	}
	res, events, e := s.exchange(req.Code, req.RedirectURI)
	if e != nil {
		writeError(w, e)
		return
	}
	// The webhooks of the reconnect go out before the answer, so a test
	// that exchanged a code finds them delivered.
	s.sendEvents(events)
	writeJSON(w, http.StatusOK, res)
}

// exchange redeems a code and returns the account.updated events of the
// status changes it made. A failed exchange leaves the code as it was.
func (s *Server) exchange(code string, redirectURI *string) (*tokenResponse, []webhookEvent, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cd, e := s.redeemLocked(code, redirectURI)
	if e != nil {
		return nil, nil, e
	}
	cs := s.conns[cd.connID]
	before := cs.statuses()
	tok := s.reconnectLocked(cs, cd.products)
	return s.tokenResponseLocked(cs, tok), s.accountEventsLocked(cs, before), nil
}

// redeemLocked checks a code and the exchange's redirect_uri, and uses
// the code up. s.mu must be held.
func (s *Server) redeemLocked(code string, redirectURI *string) (*codeState, *apiError) {
	cd, ok := s.codes[code]
	switch {
	case !ok:
		return nil, errInvalidGrant("Invalid authorization code")
	case cd.used:
		return nil, errInvalidGrant("Authorization code has already been used")
	case !s.nowLocked().Before(cd.expires):
		return nil, errInvalidGrant("Authorization code has expired")
	case cd.redirectURI == "" && redirectURI != nil:
		return nil, errInvalidGrant("redirect_uri must be omitted for a code from the embedded flow")
	case cd.redirectURI != "" && redirectURI == nil:
		return nil, errInvalidGrant("redirect_uri is required")
	case cd.redirectURI != "" && *redirectURI != cd.redirectURI:
		return nil, errInvalidGrant("redirect_uri does not match the one the code was issued for")
	case s.conns[cd.connID].disconnected:
		return nil, errInvalidGrant("The connection was disconnected")
	}
	cd.used = true
	return cd, nil
}

// reconnectLocked re-connects cs with the products asked for (nil: the
// connection's): every older token dies, the connection and its entities
// and methods in "reauth" heal, the changes SetNextReconnect asked for are
// made, and a new token is issued and returned. s.mu must be held.
func (s *Server) reconnectLocked(cs *connState, asked []string) string {
	for _, old := range cs.tokens {
		s.tokens[old].dead = true
	}
	c := &cs.conn
	c.Status = "connected"
	for i := range c.Entities {
		if c.Entities[i].Status == "reauth" {
			c.Entities[i].Status = "connected"
		}
	}
	for i := range c.Methods {
		if c.Methods[i].Status == "reauth" {
			c.Methods[i].Status = "connected"
		}
	}
	if asked != nil {
		c.Products = slices.Clone(asked)
	}
	if next := cs.next; next != nil {
		cs.next = nil
		s.applyReconnectLocked(cs, next)
	}
	cs.lastSync = s.nowLocked()
	return s.issueTokenLocked(cs)
}

// tokenResponseLocked is the answer of an exchange that issued tok for
// cs. s.mu must be held.
func (s *Server) tokenResponseLocked(cs *connState, tok string) *tokenResponse {
	c := &cs.conn
	entityIDs := make([]string, len(c.Entities))
	for i, en := range c.Entities {
		entityIDs[i] = en.ID
	}
	return &tokenResponse{
		AccessToken:    tok,
		TokenType:      "bearer",
		ConnectionID:   c.ID,
		CustomerID:     c.CustomerID,
		CompanyID:      c.CompanyID,
		ProviderID:     c.ProviderID,
		Products:       slices.Clone(c.Products),
		EntityIDs:      entityIDs,
		ClientType:     c.ClientType,
		ConnectionType: c.ConnectionType,
		CustomerName:   c.CustomerName,
		AccountID:      cs.accountID,
	}
}

// validClient compares application credentials in constant time.
func (s *Server) validClient(id, secret string) bool {
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.clientID()))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.clientSecret()))
	return idOK&secretOK == 1
}
