package finchreauth

import (
	"slices"

	"github.com/finchkit/finchreauth/internal/finchapi"
)

// Connection is what Finch says of a connection (GET /introspect): who the
// customer is, the provider, the products that stop working while it is
// broken, and its entities. Unknown values of Finch's enumerations are kept
// as they come.
type Connection struct {
	ConnectionID string `json:"connection_id"`
	CompanyID    string `json:"company_id,omitempty"`
	CustomerID   string `json:"customer_id,omitempty"`
	CustomerName string `json:"customer_name,omitempty"`
	// CustomerEmail is the contact Finch holds for the connection, when
	// the application set one.
	CustomerEmail string `json:"customer_email,omitempty"`
	// ProviderID is the payroll provider (the seed flow's
	// payroll_provider), such as "gusto".
	ProviderID string   `json:"provider_id,omitempty"`
	Products   []string `json:"products,omitempty"`
	// Status is connection_status.status: pending, processing, connected,
	// error_no_account_setup, error_permissions, reauth, or a value Finch
	// adds later. StatusMessage and LastSuccessfulSync (RFC 3339, as Finch
	// sent it) come with it.
	Status             string   `json:"status,omitempty"`
	StatusMessage      string   `json:"status_message,omitempty"`
	LastSuccessfulSync string   `json:"last_successful_sync,omitempty"`
	ClientType         string   `json:"client_type,omitempty"`     // production, development or sandbox
	ConnectionType     string   `json:"connection_type,omitempty"` // provider or finch
	Entities           []Entity `json:"entities,omitempty"`
	// AuthenticationMethods are the connection's ways in, each with its
	// own status and the products it serves.
	AuthenticationMethods []AuthenticationMethod `json:"authentication_methods,omitempty"`
	// Username is who authenticated the connection, as Finch says.
	Username string `json:"username,omitempty"`
	// Assisted is true for an assisted connection (Finch's deprecated
	// manual flag, or a method of type "assisted"): the employer repairs
	// it in the payroll system, never through Finch Connect.
	Assisted bool `json:"assisted,omitempty"`
}

// AuthenticationMethod is one of a connection's authentication methods
// ("credential", "api_token", "oauth", "assisted") with its own status.
type AuthenticationMethod struct {
	Type     string   `json:"type"`
	Status   string   `json:"status,omitempty"`
	Products []string `json:"products,omitempty"`
}

func (c Connection) clone() Connection {
	c.Products = slices.Clone(c.Products)
	c.Entities = slices.Clone(c.Entities)
	c.AuthenticationMethods = slices.Clone(c.AuthenticationMethods)
	for i := range c.AuthenticationMethods {
		c.AuthenticationMethods[i].Products = slices.Clone(c.AuthenticationMethods[i].Products)
	}
	return c
}

// Entity is one employer entity of a multi-entity connection. Status is its
// own: connected, reauth, disconnected, or another value Finch reports.
type Entity struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	SourceID string `json:"source_id,omitempty"`
	Status   string `json:"status,omitempty"`
}

func connectionOf(in finchapi.Introspection) Connection {
	c := Connection{
		ConnectionID:       in.ConnectionID,
		CompanyID:          in.CompanyID,
		CustomerID:         in.CustomerID,
		CustomerName:       in.CustomerName,
		CustomerEmail:      in.CustomerEmail,
		ProviderID:         in.ProviderID,
		Products:           slices.Clone(in.Products),
		Status:             in.ConnectionStatus.Status,
		StatusMessage:      in.ConnectionStatus.Message,
		LastSuccessfulSync: in.ConnectionStatus.LastSuccessfulSync,
		ClientType:         in.ClientType,
		ConnectionType:     in.ConnectionType,
		Username:           in.Username,
	}
	for _, en := range in.Entities {
		c.Entities = append(c.Entities, Entity{ID: en.ID, Name: en.Name, SourceID: en.SourceID, Status: en.Status})
	}
	c.Assisted = in.Manual
	for _, m := range in.AuthenticationMethods {
		c.AuthenticationMethods = append(c.AuthenticationMethods, AuthenticationMethod{Type: m.Type, Status: m.ConnectionStatus.Status, Products: slices.Clone(m.Products)})
		c.Assisted = c.Assisted || m.Type == "assisted"
	}
	return c
}
