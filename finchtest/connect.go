package finchtest

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// defaultSessionMinutes is the default minutes_to_expire of a Connect
// session: 30 days.
const defaultSessionMinutes = 43200

// connectSession is a Connect session made by
// POST /connect/sessions/reauthenticate.
type connectSession struct {
	connID      string
	products    []string
	redirectURI string
	state       string // the body's "state"; "" if none
	expires     time.Time
	used        bool // approved once; a session completes only once
}

// SessionStateSource selects which state Finch Connect echoes to the
// application when the employer completes (or cancels) a Connect session
// link, one made by POST /connect/sessions/reauthenticate. Finch's Connect
// guide lists state among a session's parameters, the session API reference
// does not, and which one Connect echoes for a reauthentication session
// (the body's, the connect_url's, or none) is unconfirmed: a test picks one
// with SetSessionStateSource and can try all three.
//
// It applies to session links only. The classic link (client_id,
// redirect_uri, products and state on the /authorize query) always echoes
// its query's state.
type SessionStateSource int

const (
	// StateFromSessionBody echoes the "state" given in the JSON body of
	// POST /connect/sessions/reauthenticate, and no state if the body had
	// none. It is the default (the zero value).
	StateFromSessionBody SessionStateSource = iota

	// StateFromConnectURL echoes the state query parameter the application
	// added to the session's connect_url, and no state if it added none.
	StateFromConnectURL

	// StateOmitted echoes no state at all, whatever the body and the URL
	// carried.
	StateOmitted
)

// String returns the constant's name.
func (src SessionStateSource) String() string {
	switch src {
	case StateFromSessionBody:
		return "StateFromSessionBody"
	case StateFromConnectURL:
		return "StateFromConnectURL"
	case StateOmitted:
		return "StateOmitted"
	}
	return fmt.Sprintf("SessionStateSource(%d)", int(src))
}

// SetSessionStateSource sets which state the fake echoes for a Connect
// session link: in the redirect to the redirect_uri, in the URL Approve,
// ApproveAs and Cancel return, and on the page the Connect decision shows
// in the embedded flow. It is read when the employer decides, so it
// applies to links already handed out. A value other than the three
// constants acts as StateFromSessionBody.
func (s *Server) SetSessionStateSource(src SessionStateSource) {
	s.mu.Lock()
	s.stateSource = src
	s.mu.Unlock()
}

// authzState is one showing of the Connect page: the employer's pending
// decision. It is single-use.
type authzState struct {
	connID       string // "" when approving creates a new connection
	sessionID    string // "" for the classic query
	redirectURI  string // "" for the embedded flow
	queryState   string // the state on the /authorize query
	sessionState string // the session body's state (sessions only)
	products     []string
	providerID   string
}

// echoedStateLocked returns the state Connect sends back for az. s.mu
// must be held.
func (s *Server) echoedStateLocked(az *authzState) string {
	if az.sessionID == "" {
		return az.queryState
	}
	switch s.stateSource {
	case StateFromConnectURL:
		return az.queryState
	case StateOmitted:
		return ""
	}
	return az.sessionState
}

// serveReauthSession answers POST /connect/sessions/reauthenticate.
func (s *Server) serveReauthSession(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || !s.validClient(id, secret) {
		writeError(w, errInvalidClient())
		return
	}
	req, apiErr := s.readSessionRequest(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	minutes := defaultSessionMinutes
	switch {
	case req.ConnectionID == "":
		writeError(w, errInvalidRequest("connection_id is required"))
		return
	case req.MinutesToExpire != nil && *req.MinutesToExpire <= 0:
		writeError(w, errInvalidRequest("minutes_to_expire must be positive"))
		return
	case req.RedirectURI != "" && !validRedirect(req.RedirectURI):
		writeError(w, errInvalidRequest("redirect_uri must be an absolute http or https URL"))
		return
	case req.MinutesToExpire != nil:
		minutes = *req.MinutesToExpire
	}

	sid := "sess_" + randomHex(12)
	s.mu.Lock()
	cs, known := s.conns[req.ConnectionID]
	known = known && !cs.disconnected // a disconnected connection is gone
	if known {
		if s.sessions == nil {
			s.sessions = make(map[string]*connectSession)
		}
		s.sessions[sid] = &connectSession{
			connID:      req.ConnectionID,
			products:    slices.Clone(req.Products),
			redirectURI: req.RedirectURI,
			state:       req.State,
			expires:     s.nowLocked().Add(time.Duration(minutes) * time.Minute),
		}
	}
	s.mu.Unlock()
	if !known {
		writeError(w, errNotFound("Connection not found"))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{
		"session_id":  sid,
		"connect_url": s.baseURL(r) + "/authorize?" + url.Values{"session": {sid}}.Encode(),
	})
}

// sessionRequest is the body of POST /connect/sessions/reauthenticate:
// the fields Finch's API reference lists, and state, which it does not.
type sessionRequest struct {
	ConnectionID    string   `json:"connection_id"`
	MinutesToExpire *int     `json:"minutes_to_expire"`
	Products        []string `json:"products"`
	RedirectURI     string   `json:"redirect_uri"`
	State           string   `json:"state"`
}

// listedSessionField reports whether Finch's API reference lists name
// among the fields of POST /connect/sessions/reauthenticate.
func listedSessionField(name string) bool {
	switch name {
	case "connection_id", "minutes_to_expire", "products", "redirect_uri":
		return true
	}
	return false
}

// SetRefuseUnlistedSessionFields makes POST /connect/sessions/reauthenticate
// refuse a body with a field that Finch's API reference does not list for
// it (connection_id, minutes_to_expire, products and redirect_uri are
// listed; state is not), with 400 invalid_request_error naming the field:
// what a Finch that validates its input strictly would answer. Whether
// Finch does is unconfirmed. Off by default: the fake then ignores unknown
// fields and keeps the body's state (see SetSessionStateSource).
func (s *Server) SetRefuseUnlistedSessionFields(refuse bool) {
	s.mu.Lock()
	s.refuseExtra = refuse
	s.mu.Unlock()
}

// readSessionRequest decodes a session request, refusing unlisted fields
// if SetRefuseUnlistedSessionFields asked for it.
func (s *Server) readSessionRequest(r *http.Request) (sessionRequest, *apiError) {
	var req sessionRequest
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(b, &req) != nil {
		return sessionRequest{}, errInvalidRequest("Request body is not valid JSON")
	}
	s.mu.Lock()
	refuse := s.refuseExtra
	s.mu.Unlock()
	if !refuse {
		return req, nil
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(b, &fields) // an object or null: it decoded into req
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if !listedSessionField(name) {
			return sessionRequest{}, errInvalidRequest("Unrecognized field: " + name)
		}
	}
	return req, nil
}

// validRedirect reports whether u is an absolute http(s) URL.
func validRedirect(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

// authorizeView is what the Connect page shows.
type authorizeView struct {
	id           string
	providerID   string
	connectionID string
	customerName string
	products     []string
}

// beginAuthorize validates a Connect query (a session, or the classic
// client_id/redirect_uri/products query) and records the pending
// decision. GET /authorize and Approve both go through it.
func (s *Server) beginAuthorize(q url.Values) (authorizeView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var az authzState
	var err error
	if sid := q.Get("session"); sid != "" {
		az, err = s.sessionLocked(sid, q.Get("state"))
	} else {
		az, err = s.classicLocked(q)
	}
	if err != nil {
		return authorizeView{}, err
	}
	if cs, ok := s.conns[az.connID]; ok && cs.disconnected {
		return authorizeView{}, errors.New("finchtest: the connection was disconnected")
	}

	v := authorizeView{
		id:           "authz_" + randomHex(16),
		providerID:   az.providerID,
		connectionID: az.connID,
		products:     az.products,
	}
	if cs, ok := s.conns[az.connID]; ok {
		v.customerName = cs.conn.CustomerName
		if v.providerID == "" {
			v.providerID = cs.conn.ProviderID
		}
		if v.products == nil {
			v.products = slices.Clone(cs.conn.Products)
		}
	}
	if s.authzs == nil {
		s.authzs = make(map[string]*authzState)
	}
	s.authzs[v.id] = &az
	return v, nil
}

// sessionLocked validates a session link. s.mu must be held.
func (s *Server) sessionLocked(sid, queryState string) (authzState, error) {
	ss, ok := s.sessions[sid]
	switch {
	case !ok:
		return authzState{}, errors.New("finchtest: unknown Connect session")
	case !s.nowLocked().Before(ss.expires):
		return authzState{}, errors.New("finchtest: Connect session expired")
	case ss.used:
		return authzState{}, errors.New("finchtest: Connect session already completed")
	}
	return authzState{
		connID:       ss.connID,
		sessionID:    sid,
		redirectURI:  ss.redirectURI,
		queryState:   queryState,
		sessionState: ss.state,
		products:     slices.Clone(ss.products),
	}, nil
}

// classicLocked validates a classic link's query. s.mu must be held.
func (s *Server) classicLocked(q url.Values) (authzState, error) {
	redirect := q.Get("redirect_uri")
	products := strings.Fields(q.Get("products"))
	switch {
	case subtle.ConstantTimeCompare([]byte(q.Get("client_id")), []byte(s.clientID())) != 1:
		return authzState{}, errors.New("finchtest: unknown client_id")
	case redirect == "":
		return authzState{}, errors.New("finchtest: redirect_uri is required")
	case !validRedirect(redirect):
		return authzState{}, errors.New("finchtest: redirect_uri must be an absolute http or https URL")
	case len(products) == 0:
		return authzState{}, errors.New("finchtest: products is required")
	}
	az := authzState{
		connID:      q.Get("connection_id"),
		redirectURI: redirect,
		queryState:  q.Get("state"),
		products:    products,
		providerID:  q.Get("payroll_provider"),
	}
	if _, ok := s.conns[az.connID]; az.connID != "" && !ok {
		return authzState{}, errors.New("finchtest: unknown connection_id")
	}
	return az, nil
}

// decision is the outcome of the employer's choice.
type decision struct {
	redirect string     // redirect_uri; "" for the embedded flow
	params   url.Values // code or error, and state
}

// location is where the browser goes: redirect_uri with the parameters
// added, or, for the embedded flow, just "?" and the parameters.
func (d decision) location() string {
	if d.redirect == "" {
		return "?" + d.params.Encode()
	}
	u, err := url.Parse(d.redirect)
	if err != nil { // validated when the authorization began
		return "?" + d.params.Encode()
	}
	q := u.Query()
	for k, vs := range d.params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// decide completes a pending authorization: approve issues a code (into
// the connection named by into, if not empty), otherwise the employer
// cancelled. POST /authorize/decision, Approve, ApproveAs and Cancel all
// go through it.
func (s *Server) decide(authzID string, approve bool, into string) (decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	az, ok := s.authzs[authzID]
	if !ok {
		return decision{}, errors.New("finchtest: unknown or already used authorization")
	}
	delete(s.authzs, authzID)
	var ss *connectSession
	if az.sessionID != "" {
		ss = s.sessions[az.sessionID]
		if !s.nowLocked().Before(ss.expires) {
			return decision{}, errors.New("finchtest: Connect session expired")
		}
		if ss.used {
			return decision{}, errors.New("finchtest: Connect session already completed")
		}
	}

	d := decision{redirect: az.redirectURI, params: url.Values{}}
	if state := s.echoedStateLocked(az); state != "" {
		d.params.Set("state", state)
	}
	if !approve {
		d.params.Set("error", "access_denied")
		d.params.Set("error_description", "The employer cancelled Finch Connect")
		return d, nil
	}

	target := cmp.Or(into, az.connID)
	if cs, exists := s.conns[target]; exists && cs.disconnected {
		return decision{}, errors.New("finchtest: the connection was disconnected")
	}
	if _, exists := s.conns[target]; target == "" || !exists {
		// A connection that does not exist yet: the employer connected
		// another account. It belongs to the same customer, if known.
		nc := Connection{ID: target, ProviderID: az.providerID, Products: slices.Clone(az.products)}
		if src, ok := s.conns[az.connID]; ok {
			nc.CustomerID = src.conn.CustomerID
			nc.CustomerName = src.conn.CustomerName
			nc.CustomerEmail = src.conn.CustomerEmail
			nc.ClientType = src.conn.ClientType
			if nc.ProviderID == "" {
				nc.ProviderID = src.conn.ProviderID
			}
		}
		target = s.addConnectionLocked(nc).conn.ID
	}
	if ss != nil {
		ss.used = true
	}
	d.params.Set("code", s.issueCodeLocked(target, az.redirectURI, az.products))
	return d, nil
}

// Approve does what the employer clicking Reconnect on the Connect page
// does, without a browser: it validates authorizeURL as GET /authorize
// would, then approves, and returns the URL Connect redirects to:
// redirect_uri?code=<code>&state=<state>. For a session without a
// redirect_uri (the embedded flow) it returns "?code=<code>&state=<state>".
// The state is the classic link's state query parameter or, for a session
// link, the one SetSessionStateSource selects; there is no state parameter
// when there is none to echo. Only the path (which must end in /authorize)
// and query of authorizeURL are read, so a link built for
// https://connect.tryfinch.com works too. Approve makes no HTTP request: it
// is not counted by Calls and faults do not apply.
//
// When the link names a connection (a session, or connection_id in the
// classic query) the code re-connects it. A classic query without
// connection_id creates a new connection, as when an employer connects
// for the first time or connects another account.
func (s *Server) Approve(authorizeURL string) (callbackURL string, err error) {
	return s.approve(authorizeURL, true, "")
}

// ApproveAs is Approve, but the employer ends up connecting the
// connection connectionID instead of the one the link was for: how a test
// provokes "the employer connected another account". If no connection
// has that id, one is created with it, for the same customer
// (CustomerID, CustomerName, CustomerEmail) as the link's connection.
func (s *Server) ApproveAs(authorizeURL, connectionID string) (callbackURL string, err error) {
	if connectionID == "" {
		return "", errors.New("finchtest: ApproveAs needs a connection id")
	}
	return s.approve(authorizeURL, true, connectionID)
}

// Cancel does what the employer clicking Cancel does and returns the URL
// Connect redirects to:
// redirect_uri?error=access_denied&error_description=...&state=<state>,
// with the state chosen as for Approve. A cancelled session can still be
// completed later. Like Approve, it makes no HTTP request.
func (s *Server) Cancel(authorizeURL string) (callbackURL string, err error) {
	return s.approve(authorizeURL, false, "")
}

func (s *Server) approve(authorizeURL string, approve bool, into string) (string, error) {
	u, err := url.Parse(authorizeURL)
	if err != nil || !strings.HasSuffix(u.Path, "/authorize") {
		return "", errors.New("finchtest: not a Finch Connect /authorize URL")
	}
	v, err := s.beginAuthorize(u.Query())
	if err != nil {
		return "", err
	}
	d, err := s.decide(v.id, approve, into)
	if err != nil {
		return "", err
	}
	return d.location(), nil
}

// serveAuthorize answers GET /authorize with the Connect page: the
// provider, the connection, and a form with Reconnect and Cancel buttons
// that posts to /authorize/decision.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	v, err := s.beginAuthorize(r.URL.Query())
	if err != nil {
		writePage(w, http.StatusBadRequest, "Finch Connect: error", "<p>"+html.EscapeString(err.Error())+"</p>")
		return
	}
	subject := "a new connection"
	if v.connectionID != "" {
		subject = fmt.Sprintf("%s (connection %s)", v.customerName, v.connectionID)
	}
	provider := v.providerID
	if provider == "" {
		provider = "your provider"
	}
	body := fmt.Sprintf(`<h1>Reconnect %s</h1>
<p id="connection">%s</p>
<p id="products">Permissions: %s</p>
<form method="post" action="/authorize/decision">
<input type="hidden" name="authorization_id" value="%s">
<button type="submit" name="decision" value="reconnect">Reconnect</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form>`,
		html.EscapeString(provider),
		html.EscapeString("Reconnect "+provider+" for "+subject+"."),
		html.EscapeString(strings.Join(v.products, ", ")),
		html.EscapeString(v.id))
	writePage(w, http.StatusOK, "Finch Connect", body)
}

// serveDecision answers POST /authorize/decision (form fields
// authorization_id and decision=reconnect|cancel) with a 303 to the
// redirect_uri. In the embedded flow (no redirect_uri) it answers 200 with
// a page holding the code, as embedded Connect hands it to the page.
func (s *Server) serveDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, "Finch Connect: error", "<p>malformed form</p>")
		return
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "reconnect":
		approve = true
	case "cancel":
	default:
		writePage(w, http.StatusBadRequest, "Finch Connect: error", "<p>decision must be reconnect or cancel</p>")
		return
	}
	d, err := s.decide(r.PostForm.Get("authorization_id"), approve, "")
	if err != nil {
		writePage(w, http.StatusBadRequest, "Finch Connect: error", "<p>"+html.EscapeString(err.Error())+"</p>")
		return
	}
	if d.redirect != "" {
		http.Redirect(w, r, d.location(), http.StatusSeeOther)
		return
	}
	var out strings.Builder
	for _, k := range []string{"code", "error", "error_description", "state"} {
		if v := d.params.Get(k); v != "" {
			fmt.Fprintf(&out, "<output id=\"%s\">%s</output>\n", k, html.EscapeString(v))
		}
	}
	writePage(w, http.StatusOK, "Finch Connect", out.String())
}

// writePage writes a small HTML page; body is already escaped.
func writePage(w http.ResponseWriter, status int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title></head>\n<body>\n%s\n</body></html>\n",
		html.EscapeString(title), body)
}
