package finchtest

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// Connection is an employer's connection to a provider, as the fake knows
// it. AddConnection fills every zero field with a default.
type Connection struct {
	// ID is the connection_id. Default: a UUID-shaped id derived from a
	// per-server counter, e.g. "c0000000-0000-4000-8000-000000000001".
	ID string

	// CustomerID, CustomerName and CustomerEmail describe your customer.
	// Defaults: a counter-derived UUID, "Customer <n>" and
	// "admin@customer<n>.example.com".
	CustomerID    string
	CustomerName  string
	CustomerEmail string

	// CompanyID is the company_id. Default: a counter-derived UUID.
	CompanyID string

	// ProviderID is the payroll provider, e.g. "gusto" (the default).
	ProviderID string

	// Products are the products the connection grants. Default: company,
	// directory, individual, employment, payment, pay_statement.
	Products []string

	// Entities are the connection's entities (multi-entity connections).
	// Default (nil or empty): one entity named after the customer. See
	// BreakEntity for what an entity's status does.
	Entities []Entity

	// ClientType is "production", "development" or "sandbox" (the default).
	ClientType string

	// ConnectionType is "provider" (the default) or "finch".
	ConnectionType string

	// Status is the connection status: "connected" (the default),
	// "pending", "processing", "error_no_account_setup",
	// "error_permissions" or "reauth"; POST /disconnect sets
	// "disconnected". Any other value is reported as is by /introspect and
	// otherwise treated like "connected". See SetStatus for what each
	// status does to data requests.
	Status string

	// Username is the login of whoever authenticated the connection, as
	// /introspect reports it. Default: CustomerEmail. A reconnect can
	// change it (see SetNextReconnect).
	Username string

	// Assisted marks an assisted connection: Finch's staff, not the
	// employer, log in to the provider. /introspect then reports
	// manual: true, and the default authentication method is of type
	// "assisted". AddConnection sets it when one of Methods is of type
	// "assisted". Assisted connections are repaired in the payroll system
	// rather than through Connect: their statuses are typically
	// "error_no_account_setup" and "error_permissions" (see SetStatus).
	// POST /jobs/automated refuses them.
	Assisted bool

	// Methods are the connection's authentication methods, which
	// /introspect lists in authentication_methods[], each with its own
	// status and products. Default (nil or empty): one method, of type
	// "assisted" if Assisted, else "credential". See SetMethodStatus.
	Methods []AuthMethod
}

// AuthMethod is one authentication method of a connection.
type AuthMethod struct {
	// Type is "credential" (the default), "api_token", "oauth" or
	// "assisted".
	Type string

	// Products are the products granted through this method. If nil, the
	// method reports the connection's Products.
	Products []string

	// Status is the method's own status ("connected", "reauth",
	// "error_permissions", ...). Empty means it follows the connection's
	// Status.
	Status string
}

// Entity is one entity of a multi-entity connection.
type Entity struct {
	// ID is the entity id. Default: a UUID derived from the connection id.
	ID string
	// Name defaults to the connection's CustomerName.
	Name string
	// SourceID is the provider's id for the entity; empty is sent as null.
	SourceID string
	// Status is the entity's own status ("connected", "reauth",
	// "disconnected", ...). Empty means it follows the connection's Status.
	Status string
}

// clone returns a deep copy of c.
func (c Connection) clone() Connection {
	c.Products = slices.Clone(c.Products)
	c.Entities = slices.Clone(c.Entities)
	c.Methods = slices.Clone(c.Methods)
	for i := range c.Methods {
		c.Methods[i].Products = slices.Clone(c.Methods[i].Products)
	}
	return c
}

// fillMethods fills c's authentication methods and Assisted with their
// defaults.
func (c *Connection) fillMethods() {
	if len(c.Methods) == 0 {
		c.Methods = []AuthMethod{{Type: "credential"}}
		if c.Assisted {
			c.Methods[0].Type = "assisted"
		}
	}
	for i := range c.Methods {
		if c.Methods[i].Type == "" {
			c.Methods[i].Type = "credential"
		}
		if c.Methods[i].Type == "assisted" {
			c.Assisted = true
		}
	}
}

// connState is the server's record of a connection.
type connState struct {
	conn         Connection
	accountID    string
	lastSync     time.Time
	tokens       []string       // every token ever issued for the connection
	disconnected bool           // by POST /disconnect: its tokens are revoked, its status stays
	next         *NextReconnect // what the next reconnect changes; nil: nothing

	jobs          []string  // ids of its jobs, oldest first
	refreshSince  time.Time // when its window of forced refreshes began
	refreshes     int       // jobs enqueued in that window
	jobCompletion string    // PUT /sandbox/jobs/configuration's completion_status; "" for complete
}

// tokenState is the server's record of an access token.
type tokenState struct {
	id      string // the token's own id, reported by /introspect as "id"
	connID  string
	dead    bool // replaced by a reconnect: answers reauthenticate_user forever
	revoked bool // by POST /disconnect: answers as SetRevokedAnswer says
}

// AddConnection registers a connection, fills its zero fields with
// defaults (see Connection) and returns a new access token for it. If a
// connection with c.ID already exists, its fields are replaced and an
// additional token is issued; its earlier tokens keep working (those
// revoked by POST /disconnect stay revoked, though the connection is
// registered anew). Use ConnectionForToken to read the filled Connection
// back.
func (s *Server) AddConnection(c Connection) (token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.addConnectionLocked(c)
	return s.issueTokenLocked(cs)
}

// addConnectionLocked registers c with defaults filled. s.mu must be held.
func (s *Server) addConnectionLocked(c Connection) *connState {
	s.seq++
	c = c.clone()
	c.fill(s.seq)
	if s.conns == nil {
		s.conns = make(map[string]*connState)
	}
	cs := s.conns[c.ID]
	if cs == nil {
		cs = &connState{accountID: hashID(c.ID, "account", 0)}
		s.conns[c.ID] = cs
	}
	cs.conn = c
	cs.disconnected = false // registered anew; its revoked tokens stay revoked
	if c.Status == "connected" {
		cs.lastSync = s.nowLocked()
	}
	return cs
}

// fill fills c's zero fields with their defaults; n is the server's
// counter the default ids and names derive from.
func (c *Connection) fill(n int) {
	c.ID = cmp.Or(c.ID, counterID(0xc0, n))
	c.CustomerID = cmp.Or(c.CustomerID, counterID(0xc1, n))
	c.CustomerName = cmp.Or(c.CustomerName, fmt.Sprintf("Customer %d", n))
	c.CustomerEmail = cmp.Or(c.CustomerEmail, fmt.Sprintf("admin@customer%d.example.com", n))
	c.CompanyID = cmp.Or(c.CompanyID, counterID(0xc2, n))
	c.ProviderID = cmp.Or(c.ProviderID, "gusto")
	if c.Products == nil {
		c.Products = []string{"company", "directory", "individual", "employment", "payment", "pay_statement"}
	}
	if len(c.Entities) == 0 {
		c.Entities = []Entity{{}}
	}
	for i := range c.Entities {
		c.Entities[i].ID = cmp.Or(c.Entities[i].ID, hashID(c.ID, "entity", i))
		c.Entities[i].Name = cmp.Or(c.Entities[i].Name, c.CustomerName)
	}
	c.ClientType = cmp.Or(c.ClientType, "sandbox")
	c.ConnectionType = cmp.Or(c.ConnectionType, "provider")
	c.Status = cmp.Or(c.Status, "connected")
	c.Username = cmp.Or(c.Username, c.CustomerEmail)
	c.fillMethods()
}

// issueTokenLocked issues a new live token for cs. s.mu must be held.
func (s *Server) issueTokenLocked(cs *connState) string {
	tok := "tok_sandbox_" + randomHex(16)
	if s.tokens == nil {
		s.tokens = make(map[string]*tokenState)
	}
	s.tokens[tok] = &tokenState{id: hashID(randomHex(16), "token", 0), connID: cs.conn.ID}
	cs.tokens = append(cs.tokens, tok)
	return tok
}

// Connection returns a copy of the connection with that id.
func (s *Server) Connection(id string) (Connection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.conns[id]
	if !ok {
		return Connection{}, false
	}
	return cs.conn.clone(), true
}

// ConnectionForToken returns a copy of the connection an access token was
// issued for, whether or not the token still works.
func (s *Server) ConnectionForToken(token string) (Connection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tokens[token]
	if !ok {
		return Connection{}, false
	}
	return s.conns[ts.connID].conn.clone(), true
}

// Break puts the connection in the re-authentication state, as when the
// employer changes their password at the provider: it is
// SetStatus(connectionID, "reauth"). Unknown ids are ignored.
func (s *Server) Break(connectionID string) {
	s.SetStatus(connectionID, "reauth")
}

// SetStatus sets a connection's status; empty means "connected". Unknown
// ids, and connections disconnected by POST /disconnect, are ignored (as
// by SetEntityStatus and SetMethodStatus): a disconnected connection stays
// so. /introspect always answers 200 and reports the status.
// Data endpoints (/employer/...) answer, per status:
//
//   - "reauth": 401 authentication_error, finch_code reauthenticate_user;
//   - "pending", "processing": 202 (the first sync is not done);
//   - "error_no_account_setup", "error_permissions": 401
//     authentication_error, finch_code account_setup_required;
//   - "connected" and any other value: 200 with data.
//
// The connection's tokens stay the same: setting "connected" again heals
// them (unlike a reconnect through Connect, which replaces them). The
// entities' own statuses (see SetEntityStatus) are left as they are.
//
// If the status changed and a webhook is registered (see SetWebhook),
// SetStatus sends an account.updated event and returns once the
// application answered it or the delivery failed.
func (s *Server) SetStatus(connectionID, status string) {
	if status == "" {
		status = "connected"
	}
	s.mu.Lock()
	cs, ok := s.conns[connectionID]
	if !ok || cs.disconnected {
		s.mu.Unlock()
		return
	}
	before := cs.statuses()
	cs.conn.Status = status
	if status == "connected" {
		cs.lastSync = s.nowLocked()
	}
	events := s.accountEventsLocked(cs, before)
	s.mu.Unlock()
	s.sendEvents(events)
}

// BreakEntity puts one entity of a multi-entity connection in the
// re-authentication state: it is SetEntityStatus(connectionID, entityID,
// "reauth"). Unknown ids are ignored.
func (s *Server) BreakEntity(connectionID, entityID string) {
	s.SetEntityStatus(connectionID, entityID, "reauth")
}

// SetEntityStatus sets the own status of one entity of a connection
// ("connected", "reauth", "disconnected", ...); empty makes the entity
// follow the connection's status again. Unknown ids are ignored.
// /introspect reports each entity's status in entities[].
//
// The connection's own status does not change, with one exception: when
// an entity is set to "reauth" and no entity works any more (every
// entity's status, its own or the connection's it follows, is "reauth"
// or "disconnected"), the connection becomes "reauth" too. Healing an
// entity does not heal the connection; SetStatus or a reconnect does.
//
// Data endpoints answer for the connection as a whole, by the connection's
// status (see SetStatus): while at least one entity works they keep
// answering 200, with the same data, whatever the other entities' status.
// The fake does not split data by entity. A reconnect (a code exchanged at
// POST /auth/token) heals every entity in "reauth".
//
// If the entity's status changed and a webhook is registered, it sends an
// account.updated event carrying the entity_id (and, when the connection
// broke with it, one for the connection), and returns once they were
// answered or failed.
func (s *Server) SetEntityStatus(connectionID, entityID, status string) {
	s.mu.Lock()
	cs, ok := s.conns[connectionID]
	i := -1
	if ok && !cs.disconnected {
		i = slices.IndexFunc(cs.conn.Entities, func(e Entity) bool { return e.ID == entityID })
	}
	if i < 0 {
		s.mu.Unlock()
		return
	}
	before := cs.statuses()
	cs.conn.Entities[i].Status = status
	if status == "reauth" && !cs.anyEntityWorks() {
		cs.conn.Status = "reauth"
	}
	events := s.accountEventsLocked(cs, before)
	s.mu.Unlock()
	s.sendEvents(events)
}

// SetMethodStatus sets the own status of a connection's authentication
// methods of type methodType ("credential", "assisted", ...): "connected",
// "reauth", "error_permissions", ...; empty makes them follow the
// connection's status again. Unknown connections and types are ignored.
// /introspect reports each method's status in
// authentication_methods[].connection_status.status.
//
// A method's status is reported, never enforced: data endpoints answer by
// the connection's status alone (see SetStatus), whatever its methods say,
// and the connection's status does not change with its methods'. A test
// that wants a connection whose only method is broken to refuse data sets
// both. A reconnect (a code exchanged at POST /auth/token) heals every
// method in "reauth".
//
// If a method's status changed and a webhook is registered, it sends an
// account.updated event whose data.authentication_method.type is the
// method's, and returns once it was answered or failed.
func (s *Server) SetMethodStatus(connectionID, methodType, status string) {
	s.mu.Lock()
	cs, ok := s.conns[connectionID]
	if !ok || cs.disconnected {
		s.mu.Unlock()
		return
	}
	before := cs.statuses()
	for i := range cs.conn.Methods {
		if cs.conn.Methods[i].Type == methodType {
			cs.conn.Methods[i].Status = status
		}
	}
	events := s.accountEventsLocked(cs, before)
	s.mu.Unlock()
	s.sendEvents(events)
}

// anyEntityWorks reports whether some entity of cs is neither "reauth" nor
// "disconnected", by its own status or the connection's it follows.
func (cs *connState) anyEntityWorks() bool {
	for _, en := range cs.conn.Entities {
		st := en.Status
		if st == "" {
			st = cs.conn.Status
		}
		if st != "reauth" && st != "disconnected" {
			return true
		}
	}
	return false
}

// statuses is what account.updated events report: the connection's
// status, each entity's own status, by entity id, and each authentication
// method's, in the order of Methods.
type statuses struct {
	conn     string
	entities map[string]string
	methods  []string
}

func (cs *connState) statuses() statuses {
	st := statuses{
		conn:     cs.conn.Status,
		entities: make(map[string]string, len(cs.conn.Entities)),
		methods:  make([]string, len(cs.conn.Methods)),
	}
	for _, en := range cs.conn.Entities {
		st.entities[en.ID] = en.Status
	}
	for i, m := range cs.conn.Methods {
		st.methods[i] = m.Status
	}
	return st
}

// counterID returns a deterministic UUID-shaped id whose first byte tells
// the kind of object: c0 connection, c1 customer, c2 company.
func counterID(kind byte, n int) string {
	return fmt.Sprintf("%02x000000-0000-4000-8000-%012d", kind, n)
}

// hashID returns a UUID (version 4 shaped) derived from its arguments, so
// that the same connection always gets the same data ids.
func hashID(base, kind string, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", base, kind, i))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
