package finchtest

import (
	"cmp"
	"fmt"
	"net/http"
	"time"
)

// statusMessage is the connection_status message Finch sends per status.
func statusMessage(status string) string {
	switch status {
	case "connected":
		return "This employer is working as expected"
	case "reauth":
		return "This employer needs to re-authenticate"
	case "pending":
		return "This employer has created a token, and we are waiting for access to its provider"
	case "processing":
		return "We have received an invitation from this employer's provider and are pulling their data for the first time"
	case "error_no_account_setup":
		return "This employer has not added Finch to its provider"
	case "error_permissions":
		return "This employer has added Finch with improper permissions"
	}
	return ""
}

type connectionStatus struct {
	Status             string  `json:"status"`
	Message            string  `json:"message,omitempty"`
	LastSuccessfulSync *string `json:"last_successful_sync"`
}

// authenticationMethod is one of /introspect's authentication_methods[].
// Its connection_status has no last_successful_sync: neither Finch's spec
// nor its SDKs know one there.
type authenticationMethod struct {
	Type             string `json:"type"`
	ConnectionStatus struct {
		Status  string `json:"status"`
		Message string `json:"message,omitempty"`
	} `json:"connection_status"`
	Products []string `json:"products"`
}

type entityJSON struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	SourceID *string `json:"source_id"`
	Status   string  `json:"status"`
}

type introspection struct {
	ID                    string                 `json:"id"`
	ClientID              string                 `json:"client_id"`
	ClientType            string                 `json:"client_type"`
	ConnectionID          string                 `json:"connection_id"`
	ConnectionStatus      connectionStatus       `json:"connection_status"`
	ConnectionType        string                 `json:"connection_type"`
	Products              []string               `json:"products"`
	ProviderID            string                 `json:"provider_id"`
	CompanyID             string                 `json:"company_id"`
	CustomerID            string                 `json:"customer_id"`
	CustomerName          string                 `json:"customer_name"`
	CustomerEmail         string                 `json:"customer_email"`
	Entities              []entityJSON           `json:"entities"`
	AuthenticationMethods []authenticationMethod `json:"authentication_methods"`
	Username              string                 `json:"username"`
	AccountID             string                 `json:"account_id"`
	PayrollProviderID     string                 `json:"payroll_provider_id"`
	Manual                bool                   `json:"manual"`
}

// SupersededIntrospection selects what GET /introspect reports for a
// superseded token: one replaced by a reconnect, which answers data calls
// with 401 reauthenticate_user forever. Finch documents connection_status
// as the connection's status, so an old copy of a token may well show the
// connection healed; whether it does is unconfirmed, so a test picks a
// reading with SetSupersededIntrospection and can try both.
type SupersededIntrospection int

const (
	// SupersededConnectionStatus reports the connection's statuses (the
	// connection's, each entity's and each authentication method's) as
	// for a live token of the connection. It is the default (the zero
	// value): a client can then tell "this old copy of a token is
	// refused" from "the connection needs the employer".
	SupersededConnectionStatus SupersededIntrospection = iota

	// SupersededReauth reports connection_status "reauth", and "reauth"
	// for every entity and method that follows the connection's status:
	// what the fake answered before SupersededConnectionStatus existed.
	SupersededReauth
)

// String returns the constant's name.
func (m SupersededIntrospection) String() string {
	switch m {
	case SupersededConnectionStatus:
		return "SupersededConnectionStatus"
	case SupersededReauth:
		return "SupersededReauth"
	}
	return fmt.Sprintf("SupersededIntrospection(%d)", int(m))
}

// SetSupersededIntrospection sets what GET /introspect reports for a
// superseded token (see SupersededIntrospection). A value other than the
// two constants acts as SupersededConnectionStatus. Data calls with a
// superseded token answer 401 reauthenticate_user whatever the mode.
func (s *Server) SetSupersededIntrospection(m SupersededIntrospection) {
	s.mu.Lock()
	s.superseded = m
	s.mu.Unlock()
}

// introspectStatus is the connection status /introspect reports for p.
func (s *Server) introspectStatus(p principal) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.dead && s.superseded == SupersededReauth {
		return "reauth"
	}
	return p.conn.Status
}

// serveIntrospect answers GET /introspect. It answers 200 whatever the
// connection's status, reauth included: that is how a client learns whom a
// broken token belongs to. A superseded token reports what
// SetSupersededIntrospection selects.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticate(r)
	if e != nil {
		writeError(w, e)
		return
	}
	c := p.conn
	view := s.introspectStatus(p)
	status := connectionStatus{Status: view, Message: statusMessage(view)}
	if !p.lastSync.IsZero() {
		t := p.lastSync.UTC().Format(time.RFC3339)
		status.LastSuccessfulSync = &t
	}
	writeJSON(w, http.StatusOK, introspection{
		ID:                    p.tokenID,
		ClientID:              s.clientID(),
		ClientType:            c.ClientType,
		ConnectionID:          c.ID,
		ConnectionStatus:      status,
		ConnectionType:        c.ConnectionType,
		Products:              c.Products,
		ProviderID:            c.ProviderID,
		CompanyID:             c.CompanyID,
		CustomerID:            c.CustomerID,
		CustomerName:          c.CustomerName,
		CustomerEmail:         c.CustomerEmail,
		Entities:              entitiesJSON(c.Entities, view),
		AuthenticationMethods: methodsJSON(c, view),
		Username:              c.Username,
		AccountID:             p.accountID,
		PayrollProviderID:     c.ProviderID,
		Manual:                c.Assisted,
	})
}

// entitiesJSON renders entities; one with no status of its own reports
// the connection's, status.
func entitiesJSON(entities []Entity, status string) []entityJSON {
	out := make([]entityJSON, len(entities))
	for i, en := range entities {
		out[i] = entityJSON{ID: en.ID, Name: en.Name, Status: cmp.Or(en.Status, status)}
		if en.SourceID != "" {
			out[i].SourceID = &en.SourceID
		}
	}
	return out
}

// methodsJSON renders c's authentication methods; one with no status of
// its own reports the connection's, status, and one with no products the
// connection's.
func methodsJSON(c Connection, status string) []authenticationMethod {
	out := make([]authenticationMethod, len(c.Methods))
	for i, m := range c.Methods {
		out[i] = authenticationMethod{Type: m.Type, Products: m.Products}
		if m.Products == nil {
			out[i].Products = c.Products
		}
		st := cmp.Or(m.Status, status)
		out[i].ConnectionStatus.Status, out[i].ConnectionStatus.Message = st, statusMessage(st)
	}
	return out
}
