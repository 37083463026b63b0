package finchtest

import (
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

// serveIntrospect answers GET /introspect. It answers 200 whatever the
// connection's status, reauth included: that is how a client learns whom a
// broken token belongs to.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticate(r)
	if e != nil {
		writeError(w, e)
		return
	}
	c := p.conn
	status := connectionStatus{Status: p.status(), Message: statusMessage(p.status())}
	if !p.lastSync.IsZero() {
		t := p.lastSync.UTC().Format(time.RFC3339)
		status.LastSuccessfulSync = &t
	}
	entities := make([]entityJSON, len(c.Entities))
	for i, en := range c.Entities {
		entities[i] = entityJSON{ID: en.ID, Name: en.Name, Status: en.Status}
		if en.Status == "" {
			entities[i].Status = p.status()
		}
		if en.SourceID != "" {
			entities[i].SourceID = &en.SourceID
		}
	}
	method := authenticationMethod{Type: "credential", Products: c.Products}
	method.ConnectionStatus.Status, method.ConnectionStatus.Message = status.Status, status.Message
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
		Entities:              entities,
		AuthenticationMethods: []authenticationMethod{method},
		Username:              c.CustomerEmail,
		AccountID:             p.accountID,
		PayrollProviderID:     c.ProviderID,
		Manual:                false,
	})
}
