package finchtest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// principal is what a bearer token resolves to: a snapshot taken under the
// lock, so handlers render without holding it.
type principal struct {
	conn      Connection
	accountID string
	lastSync  time.Time
	tokenID   string
	dead      bool
}

// status is the connection status data calls answer by: a token
// replaced by a reconnect sees "reauth" forever (what /introspect reports
// for it is SetSupersededIntrospection's).
func (p principal) status() string {
	if p.dead {
		return "reauth"
	}
	return p.conn.Status
}

// authenticate resolves the request's bearer token. Missing: 401
// unauthorized_request_error; unknown: 401 invalid_token_error; revoked by
// POST /disconnect: what SetRevokedAnswer selects. It does not judge the
// connection's status, nor whether the token was superseded: callers do.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, errUnauthorized()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tokens[tok]
	if !ok {
		return principal{}, errInvalidToken()
	}
	if ts.revoked {
		return principal{}, s.revokedErrorLocked()
	}
	cs := s.conns[ts.connID]
	return principal{
		conn:      cs.conn.clone(),
		accountID: cs.accountID,
		lastSync:  cs.lastSync,
		tokenID:   ts.id,
		dead:      ts.dead,
	}, nil
}

// authenticateLive is authenticate, refusing a token superseded by a
// reconnect with 401 reauthenticate_user, whatever the connection's
// status: for the routes that act on the connection rather than read its
// data (sandbox, jobs, disconnect).
func (s *Server) authenticateLive(r *http.Request) (principal, *apiError) {
	p, e := s.authenticate(r)
	if e == nil && p.dead {
		e = errReauthenticate()
	}
	return p, e
}

// authenticateData is authenticate plus the connection-status rules of the
// data endpoints. It writes the response and reports false when the
// request must not be served.
func (s *Server) authenticateData(w http.ResponseWriter, r *http.Request) (principal, bool) {
	p, e := s.authenticate(r)
	if e == nil {
		switch p.status() {
		case "reauth":
			e = errReauthenticate()
		case "error_no_account_setup", "error_permissions":
			e = errAccountSetup()
		case "pending", "processing":
			writeJSON(w, http.StatusAccepted, newAPIError(http.StatusAccepted, "accepted", "",
				"The connection is set up but its data is not available yet; retry later"))
			return p, false
		}
	}
	if e != nil {
		writeError(w, e)
		return p, false
	}
	return p, true
}

// serveCompany answers GET /employer/company.
func (s *Server) serveCompany(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticateData(w, r)
	if !ok {
		return
	}
	c := p.conn
	type name struct {
		Name string `json:"name"`
	}
	type department struct {
		Name   string `json:"name"`
		Parent *name  `json:"parent"`
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                   c.CompanyID,
		"legal_name":           c.CustomerName,
		"entity":               map[string]string{"type": "corporation", "subtype": "s_corporation"},
		"ein":                  "12-3456789",
		"primary_email":        c.CustomerEmail,
		"primary_phone_number": "+14155550100", // E.164, as the official SDKs expect
		"departments": []department{
			{Name: "Engineering"},
			{Name: "Platform", Parent: &name{Name: "Engineering"}},
			{Name: "Sales"},
		},
		"locations": []map[string]any{{
			"line1":       "628 Bear Ave",
			"line2":       nil,
			"city":        "Schenectady",
			"state":       "NY",
			"postal_code": "12345",
			"country":     "US",
		}},
		"accounts": []map[string]any{{
			"routing_number":   "123456789",
			"account_name":     "CHECKING ACCOUNT",
			"institution_name": "EXAMPLE BANK, N.A.",
			"account_type":     "checking",
			"account_number":   "98765432",
		}},
	})
}

type individual struct {
	ID         string  `json:"id"`
	FirstName  string  `json:"first_name"`
	MiddleName *string `json:"middle_name"`
	LastName   string  `json:"last_name"`
	Manager    *struct {
		ID string `json:"id"`
	} `json:"manager"`
	Department struct {
		Name string `json:"name"`
	} `json:"department"`
	IsActive bool `json:"is_active"`
}

// directory returns the connection's deterministic individuals. Their ids
// derive from the connection id only, so they are the same through every
// token of the connection, before and after a reconnect.
func directory(connectionID string) []individual {
	people := []struct{ first, middle, last, dept string }{
		{"Jane", "", "Doe", "Engineering"},
		{"John", "Q", "Smith", "Engineering"},
		{"Maria", "", "Garcia", "Sales"},
		{"Wei", "", "Chen", "Platform"},
		{"Amara", "", "Okafor", "Sales"},
	}
	out := make([]individual, len(people))
	for i, pp := range people {
		in := &out[i]
		in.ID = hashID(connectionID, "individual", i)
		in.FirstName, in.LastName = pp.first, pp.last
		if pp.middle != "" {
			m := pp.middle
			in.MiddleName = &m
		}
		if i > 0 {
			in.Manager = &struct {
				ID string `json:"id"`
			}{ID: out[0].ID}
		}
		in.Department.Name = pp.dept
		in.IsActive = i != len(people)-1
	}
	return out
}

// serveDirectory answers GET /employer/directory, honouring the limit and
// offset query parameters (absent or 0 limit: all).
func (s *Server) serveDirectory(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticateData(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err1 := queryInt(q.Get("limit"))
	offset, err2 := queryInt(q.Get("offset"))
	if err1 != nil || err2 != nil {
		writeError(w, errInvalidRequest("limit and offset must be non-negative integers"))
		return
	}
	all := directory(p.conn.ID)
	page := all[min(offset, len(all)):]
	if limit > 0 && limit < len(page) {
		page = page[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"paging":      map[string]int{"count": len(all), "offset": offset},
		"individuals": page,
	})
}

// queryInt parses a non-negative integer query value; empty is 0.
func queryInt(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err == nil && n < 0 {
		err = strconv.ErrRange
	}
	return n, err
}

// validStatuses lists the values Finch accepts at the sandbox endpoint.
func validStatuses() []string {
	return []string{"pending", "processing", "connected", "error_no_account_setup", "error_permissions", "reauth"}
}

// serveSandboxAccount answers PUT /sandbox/connections/accounts: it sets
// the status of the bearer token's connection, as Finch's sandbox does
// (through SetStatus, so a registered webhook hears of it before the
// answer). Any live token of the connection may call it, whatever the
// status, so a test can flip a connection to reauth and back. A token
// replaced by a reconnect answers reauthenticate_user.
func (s *Server) serveSandboxAccount(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var body struct {
		ConnectionStatus string `json:"connection_status"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, errInvalidRequest("Request body is not valid JSON"))
		return
	}
	if !slices.Contains(validStatuses(), body.ConnectionStatus) {
		writeError(w, errInvalidRequest("connection_status must be one of "+strings.Join(validStatuses(), ", ")))
		return
	}
	s.SetStatus(p.conn.ID, body.ConnectionStatus)
	c := p.conn
	writeJSON(w, http.StatusOK, sandboxAccount{
		AccountID:          p.accountID,
		AuthenticationType: c.Methods[0].Type,
		CompanyID:          c.CompanyID,
		ConnectionID:       c.ID,
		EntityID:           c.Entities[0].ID,
		Products:           c.Products,
		ProviderID:         c.ProviderID,
	})
}

// sandboxAccount is the answer of PUT /sandbox/connections/accounts, as
// the official SDKs model it: every field is required there, entity_id
// (the entity whose status was updated: here the connection's first)
// included. The status set is not echoed: neither the spec nor the SDKs
// know a connection_status field in this answer.
type sandboxAccount struct {
	AccountID          string   `json:"account_id"`
	AuthenticationType string   `json:"authentication_type"`
	CompanyID          string   `json:"company_id"`
	ConnectionID       string   `json:"connection_id"`
	EntityID           string   `json:"entity_id"`
	Products           []string `json:"products"`
	ProviderID         string   `json:"provider_id"`
}

// decodeJSON decodes a request body of at most 1 MiB into v.
func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
