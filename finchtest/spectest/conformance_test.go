package spectest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// overlay is where FINCH.md (and the official SDKs it summarises, newer
// than the January 2024 specs) wins over the specs. Each entry is laid
// over the spec's schema for one kind of answer (mappings merge, "required"
// lists add up, other values replace); an answer the specs do not have
// (they predate Connect sessions and webhooks, and do not describe
// /auth/token) is described whole. Every exception names its source.
const overlay = `
introspect:
  # FINCH.md "GET /introspect": the current SDK fields. The spec knows only
  # account_id, client_id, client_type, connection_type, company_id,
  # products, username, payroll_provider_id, manual, authentication_methods.
  required: [id, client_id, client_type, connection_id, connection_status, connection_type, products, provider_id,
             account_id, payroll_provider_id, manual] # FINCH.md: deprecated, still sent
  properties:
    id: {type: string}
    connection_id: {type: string}
    connection_status:
      type: object
      required: [status]
      properties:
        status: {$ref: 'management#/components/schemas/ConnectionStatus'}
        message: {type: string}
        last_successful_sync: {type: string, format: date-time, nullable: true}
    provider_id: {type: string}
    customer_id: {type: string, nullable: true}
    customer_name: {type: string, nullable: true}
    customer_email: {type: string, nullable: true}
    entities:
      # FINCH.md: entities[] {id, name, source_id, status}; entities may
      # also be "disconnected".
      type: array
      items:
        type: object
        required: [id, name, source_id, status]
        properties:
          id: {type: string}
          name: {type: string, nullable: true}
          source_id: {type: string, nullable: true}
          status: {enum: [pending, processing, connected, error_no_account_setup, error_permissions, reauth, disconnected]}
    authentication_methods:
      items:
        required: [type, connection_status]
        properties:
          # FINCH.md: authentication_methods[] {type, connection_status, products}.
          products: {type: array, items: {type: string}}
          connection_status:
            required: [status]

company:
  # FINCH.md "Learned from the official Go SDK": phone numbers are E.164.
  # The spec says "Format: XXXXXXXXXX" (pattern [0-9]{10}, unanchored).
  properties:
    primary_phone_number: {pattern: '^\+[1-9][0-9]{1,14}$'}

sandbox_account:
  # FINCH.md: the SDK's model of this answer requires entity_id; the Go
  # SDK's SandboxConnectionAccountUpdateResponse also requires
  # connection_id (format uuid, like entity_id). The spec has neither.
  required: [connection_id, entity_id]
  properties:
    connection_id: {type: string}
    entity_id: {type: string, format: uuid}

disconnect:
  # The Go SDK's DisconnectResponse (v2.4.0) requires status; the spec and
  # Finch's reference say it is "success".
  required: [status]
  properties:
    status: {enum: [success]}

job_enqueued:
  # POST /jobs/automated, 201 (a new job) and 202 (the running one): the
  # spec's fields; the Go SDK's JobAutomatedNewResponse (v2.4.0) requires
  # allowed_refreshes and remaining_refreshes, and FINCH.md "Data syncs"
  # says the answer carries the job's id; so does its url, which the job's
  # webhook carries too.
  required: [job_id, job_url, allowed_refreshes, remaining_refreshes]

job_quota:
  # POST /jobs/automated, 429 (the hour's forced refresh is spent): the
  # spec's body, which is not a Finch error; FINCH.md "Data syncs": it
  # carries remaining_refreshes and retry_at.
  required: [allowed_refreshes, remaining_refreshes, retry_at]

job:
  # GET /jobs/automated/{job_id}: the spec's AutomatedAsyncJob; the Go
  # SDK's (v2.4.0) requires every field, the nullable ones included, and
  # adds params (required, nullable: a data_sync_all job has none).
  required: [job_id, job_url, type, status, created_at, scheduled_at, started_at, completed_at, params]
  properties:
    params: {type: object, nullable: true, properties: {individual_id: {type: string}}}

job_list:
  # GET /jobs/automated: the Go SDK's JobAutomatedListResponse (v2.4.0)
  # requires data and meta; its jobs are AutomatedAsyncJob as above. The
  # spec's odd "" paging field is not sent.
  required: [data, meta]
  properties:
    data: {items: {$ref: '#/job'}}

token:
  # FINCH.md "POST /auth/token": the specs do not describe this endpoint.
  type: object
  required: [access_token, token_type, connection_id, customer_id, company_id, provider_id, products, entity_ids,
             client_type, connection_type, customer_name]
  properties:
    access_token: {type: string}
    token_type: {enum: [bearer]}
    connection_id: {type: string}
    customer_id: {type: string, nullable: true}
    company_id: {type: string}
    provider_id: {type: string}
    products: {type: array, items: {type: string}}
    entity_ids: {type: array, items: {type: string}}
    client_type: {$ref: 'management#/components/schemas/ClientType'}
    connection_type: {$ref: 'management#/components/schemas/ConnectionType'}
    customer_name: {type: string, nullable: true}
    account_id: {type: string} # FINCH.md: deprecated

reauth_session:
  # FINCH.md "Reconnect links": 201 {"session_id", "connect_url"}. The specs
  # predate Connect sessions.
  type: object
  required: [session_id, connect_url]
  properties:
    session_id: {type: string}
    connect_url: {type: string, format: uri}

error:
  # FINCH.md "Errors": code, name and message always, finch_code optional;
  # many real bodies also carry the redundant integers statusCode and
  # status, which the spec's Error does not list.
  required: [code, name, message]
  properties:
    statusCode: {type: integer}
    status: {type: integer}

account_updated:
  # FINCH.md "Webhooks" (the specs have no webhooks): event_type,
  # connection_id, company_id, data.status (the SDKs' statuses) and
  # data.authentication_method (the SDKs' object, the spec's
  # AuthenticationMethod). account_id: the SDKs' BaseWebhookEvent requires
  # it. entity_id: entity-scoped events only (the brief for finchtest).
  type: object
  required: [event_type, connection_id, company_id, account_id, data]
  properties:
    event_type: {enum: [account.updated]}
    connection_id: {type: string}
    company_id: {type: string}
    account_id: {type: string}
    entity_id: {type: string}
    data:
      type: object
      required: [status, authentication_method]
      properties:
        # FINCH.md "Connection health beyond reauth": the spec's and the
        # SDKs' statuses, and "disconnected" (the current webhook docs; sent
        # after POST /disconnect).
        status: {enum: [pending, processing, connected, error_no_account_setup, error_permissions, reauth, disconnected]}
        authentication_method:
          $ref: 'management#/components/schemas/AuthenticationMethod'
          required: [type]

job_completed:
  # FINCH.md "Data syncs": job.data_sync_all.completed tells a job ended;
  # the official SDKs' JobCompletionEvent: data {job_id, job_url} both
  # required, and BaseWebhookEvent's account_id and company_id.
  type: object
  required: [event_type, connection_id, company_id, account_id, data]
  properties:
    event_type: {enum: [job.data_sync_all.completed]}
    connection_id: {type: string}
    company_id: {type: string}
    account_id: {type: string}
    entity_id: {type: string}
    data:
      type: object
      required: [job_id, job_url]
      properties:
        job_id: {type: string}
        job_url: {type: string, format: uri}

account_updated_docs:
  # FINCH.md: the older docs' account.updated, which finchtest sends with
  # Webhook.LegacyStatus and Webhook.StringAuthMethod: "error_reauth", and a
  # plain-string authentication_method.
  $ref: '#/account_updated'
  properties:
    data:
      properties:
        status: {enum: [pending, processing, connected, error_no_account_setup, error_permissions, reauth, disconnected, error_reauth]}
        authentication_method: {x-replace: true, type: string}
`

// answerSchemas names, for each successful JSON answer finchtest gives
// ("METHOD path status"), the spec schema and the overlay entry it is
// checked against. Error answers (4xx, 5xx) and the 202 of a connection
// whose first sync is not done are checked against errorSchema.
var answerSchemas = map[string][2]string{
	"GET /introspect 200":                       {ref("management", "/introspect", "get", "200"), "introspect"},
	"GET /employer/company 200":                 {ref("employer", "/employer/company", "get", "200"), "company"},
	"GET /employer/directory 200":               {ref("employer", "/employer/directory", "get", "200"), ""},
	"PUT /sandbox/connections/accounts 200":     {ref("management", "/sandbox/connections/accounts", "put", "200"), "sandbox_account"},
	"POST /disconnect 200":                      {ref("management", "/disconnect", "post", "200"), "disconnect"},
	"POST /jobs/automated 201":                  {ref("management", "/jobs/automated", "post", "201"), "job_enqueued"},
	"POST /jobs/automated 202":                  {ref("management", "/jobs/automated", "post", "202"), "job_enqueued"},
	"POST /jobs/automated 429":                  {ref("management", "/jobs/automated", "post", "429"), "job_quota"},
	"GET /jobs/automated 200":                   {ref("management", "/jobs/automated", "get", "200"), "job_list"},
	"GET /jobs/automated/{job_id} 200":          {ref("management", "/jobs/automated/{job_id}", "get", "200"), "job"},
	"GET /sandbox/jobs/configuration 200":       {ref("management", "/sandbox/jobs/configuration", "get", "200"), ""},
	"PUT /sandbox/jobs/configuration 200":       {ref("management", "/sandbox/jobs/configuration", "put", "200"), ""},
	"POST /auth/token 200":                      {"", "token"},
	"POST /connect/sessions/reauthenticate 201": {"", "reauth_session"},
}

var errorSchema = [2]string{"management#/components/schemas/Error", "error"}

// webhookSchemas names the overlay entry each webhook's body, by its
// event_type, is checked against (the specs have no webhooks).
var webhookSchemas = map[string]string{
	"account.updated":             "account_updated",
	"job.data_sync_all.completed": "job_completed",
}

// htmlRoutes are Finch Connect's pages: HTML (or a redirect), not JSON.
var htmlRoutes = []string{"GET /authorize", "POST /authorize/decision"}

func loadSpecs(t *testing.T) docs {
	t.Helper()
	d, err := loadDocs(map[string]string{
		"employer":   "testdata/openapi-employer-2024-01.yaml",
		"management": "testdata/openapi-management-2024-01.yaml",
	}, []byte(overlay))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// compiled compiles (once per test) the schema for base and overlay key.
type compiled struct {
	t     *testing.T
	d     docs
	cache map[[2]string]*schema
}

func (c *compiled) get(which [2]string) *schema {
	c.t.Helper()
	if s, ok := c.cache[which]; ok {
		return s
	}
	s, err := c.d.schemaFor(which[0], which[1])
	if err != nil {
		c.t.Fatalf("schema %v: %v", which, err)
	}
	c.cache[which] = s
	return s
}

// exchange is one request the scenario made and the answer it got.
type exchange struct {
	label  string // what the scenario was doing
	method string
	path   string
	status int
	ctype  string
	body   []byte
}

// recorder is a RoundTripper that keeps every answer, handing back a body
// that reads the same bytes.
type recorder struct {
	base http.RoundTripper

	mu    sync.Mutex
	label string
	got   []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.got = append(r.got, exchange{label: r.label, method: req.Method, path: req.URL.Path, status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: b})
	r.mu.Unlock()
	return res, nil
}

// hooks is the application's webhook endpoint: it keeps every body.
type hooks struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hooks) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

const webhookSecret = "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"

// scenario drives s through every route and status finchtest knows, the
// error paths included, through a recording client.
type scenario struct {
	t   *testing.T
	s   *finchtest.Server
	rec *recorder
	c   *http.Client
}

func (sc *scenario) do(label, method, path, token, body string, basic ...string) map[string]any {
	sc.t.Helper()
	sc.rec.mu.Lock()
	sc.rec.label = label
	sc.rec.mu.Unlock()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(sc.t.Context(), method, sc.s.URL+path, rd)
	if err != nil {
		sc.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := sc.c.Do(req)
	if err != nil {
		sc.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return m
}

// decide shows the Connect page of link and posts the employer's decision.
func (sc *scenario) decide(link, decision string) {
	sc.t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		sc.t.Fatal("link does not parse")
	}
	res, err := sc.c.Get(sc.s.URL + u.RequestURI())
	if err != nil {
		sc.t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="authorization_id" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		sc.t.Fatal("no authorization id on the Connect page")
	}
	sc.do("Connect decision "+decision, "POST", "/authorize/decision", "", url.Values{"authorization_id": {string(m[1])}, "decision": {decision}}.Encode())
}

func (sc *scenario) run(hookURL string) {
	t, s := sc.t, sc.s
	if err := s.SetWebhook(finchtest.Webhook{URL: hookURL, Secrets: []string{webhookSecret}}); err != nil {
		t.Fatal(err)
	}
	tok := s.AddConnection(finchtest.Connection{
		CustomerName: "Acme, Inc.",
		Entities:     []finchtest.Entity{{Name: "Acme East", SourceID: "east-1"}, {Name: "Acme West"}, {Name: "Acme North", Status: "disconnected"}},
		Methods:      []finchtest.AuthMethod{{Type: "credential"}, {Type: "api_token", Products: []string{"company"}}},
	})
	c, _ := s.ConnectionForToken(tok)
	other := s.AddConnection(finchtest.Connection{ClientType: "production", ConnectionType: "finch", ProviderID: "adp_run"})
	assisted := s.AddConnection(finchtest.Connection{Assisted: true, Status: "error_no_account_setup"})

	sc.healthy(tok, other, assisted)
	sc.brokenParts(tok, c)
	newTok := sc.reconnect(c)
	sc.statuses(newTok)
	sc.errors(newTok)
	sc.jobs(newTok, other, assisted)
	sc.disconnect(other)
}

// jobs forces data syncs: a job waited for and ended by the test, the
// quota, the list, the sandbox's configuration and a job that ends in
// reauth_error by it, and the refusals.
func (sc *scenario) jobs(tok, other, assisted string) {
	t, s := sc.t, sc.s
	const sync = `{"type":"data_sync_all"}`
	job, _ := sc.do("job", "POST", "/jobs/automated", tok, sync)["job_id"].(string)
	if job == "" {
		t.Fatal("no job was enqueued")
	}
	sc.do("job running", "POST", "/jobs/automated", tok, sync)
	sc.do("job pending", "GET", "/jobs/automated/"+job, tok, "")
	for _, st := range []string{"in_progress", "complete"} {
		if err := s.SetJobStatus(job, st); err != nil {
			t.Fatal(err)
		}
		sc.do("job "+st, "GET", "/jobs/automated/"+job, tok, "")
	}
	sc.do("job quota spent", "POST", "/jobs/automated", tok, sync)
	sc.do("jobs", "GET", "/jobs/automated", tok, "")
	sc.do("jobs, paged", "GET", "/jobs/automated?limit=1&offset=1", tok, "")
	sc.do("job, unknown", "GET", "/jobs/automated/nope", tok, "")
	sc.do("job, another connection's", "GET", "/jobs/automated/"+job, other, "")
	sc.do("job, wrong type", "POST", "/jobs/automated", tok, `{"type":"w4_form_employee_sync"}`)
	sc.do("job, assisted", "POST", "/jobs/automated", assisted, sync)

	sc.do("job configuration", "GET", "/sandbox/jobs/configuration", other, "")
	sc.do("job configuration", "PUT", "/sandbox/jobs/configuration", other, `{"type":"data_sync_all","completion_status":"reauth_error"}`)
	sc.do("job configuration, unknown status", "PUT", "/sandbox/jobs/configuration", other, `{"type":"data_sync_all","completion_status":"done"}`)
	s.SetJobDuration(0, 0)
	failed, _ := sc.do("job to fail", "POST", "/jobs/automated", other, sync)["job_id"].(string)
	sc.do("job failed", "GET", "/jobs/automated/"+failed, other, "")
	sc.do("job failed, connection in reauth", "GET", "/introspect", other, "")
	s.SetJobDuration(-1, 0)
}

// healthy reads every data route and /introspect with working tokens.
func (sc *scenario) healthy(tok, other, assisted string) {
	for _, token := range []string{tok, other} {
		sc.do("healthy", "GET", "/introspect", token, "")
		sc.do("healthy", "GET", "/employer/company", token, "")
		sc.do("healthy", "GET", "/employer/directory", token, "")
	}
	sc.do("paged", "GET", "/employer/directory?limit=2&offset=1", tok, "")
	sc.do("past the end", "GET", "/employer/directory?offset=100", tok, "")
	sc.do("assisted", "GET", "/introspect", assisted, "")
	sc.do("assisted", "GET", "/employer/company", assisted, "")
}

// brokenParts breaks an authentication method, then one entity, then all
// of them.
func (sc *scenario) brokenParts(tok string, c finchtest.Connection) {
	s := sc.s
	s.SetMethodStatus(c.ID, "api_token", "error_permissions")
	sc.do("one method broken", "GET", "/introspect", tok, "")
	s.BreakEntity(c.ID, c.Entities[1].ID)
	sc.do("one entity broken", "GET", "/introspect", tok, "")
	sc.do("one entity broken", "GET", "/employer/directory", tok, "")
	s.BreakEntity(c.ID, c.Entities[0].ID)
	sc.do("every entity broken", "GET", "/introspect", tok, "")
	sc.do("every entity broken", "GET", "/employer/company", tok, "")
}

// reconnect goes through sessions, the Connect page and the exchange,
// then reads with the superseded token; it returns a live token.
func (sc *scenario) reconnect(c finchtest.Connection) string {
	t, s := sc.t, sc.s
	creds := []string{s.ClientID, s.ClientSecret}
	body := `{"connection_id":"` + c.ID + `","redirect_uri":"https://app.example.com/cb","products":["company","directory"],"state":"st","minutes_to_expire":60}`
	sess := sc.do("session", "POST", "/connect/sessions/reauthenticate", "", body, creds...)
	sc.do("session, bad credentials", "POST", "/connect/sessions/reauthenticate", "", body, s.ClientID, "wrong")
	sc.do("session, malformed", "POST", "/connect/sessions/reauthenticate", "", `{"connection_id":`, creds...)
	sc.do("session, no connection_id", "POST", "/connect/sessions/reauthenticate", "", `{}`, creds...)
	sc.do("session, unknown connection", "POST", "/connect/sessions/reauthenticate", "", `{"connection_id":"conn_nope"}`, creds...)
	link, _ := sess["connect_url"].(string)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal("connect_url does not parse")
	}
	sc.do("Connect page", "GET", u.RequestURI(), "", "")
	sc.do("Connect page, unknown session", "GET", "/authorize?session=sess_nope", "", "")
	sc.do("Connect decision, unknown", "POST", "/authorize/decision", "", "authorization_id=authz_nope&decision=reconnect")
	sc.decide(link, "cancel")
	cb, err := s.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	cbu, _ := url.Parse(cb)
	code := cbu.Query().Get("code")
	exch := func(code string, secret string) string {
		b, _ := json.Marshal(map[string]string{"client_id": s.ClientID, "client_secret": secret, "code": code, "redirect_uri": "https://app.example.com/cb"})
		return string(b)
	}
	sc.do("exchange, bad credentials", "POST", "/auth/token", "", exch(code, "wrong"))
	newTok, _ := sc.do("exchange", "POST", "/auth/token", "", exch(code, s.ClientSecret))["access_token"].(string)
	sc.do("exchange, code used", "POST", "/auth/token", "", exch(code, s.ClientSecret))
	sc.do("exchange, malformed", "POST", "/auth/token", "", `{"code":`)
	// A reconnect that grants less, by another admin, with another entity.
	err = s.SetNextReconnect(c.ID, finchtest.NextReconnect{GrantOnly: []string{"company"}, Username: "admin2@acme.example", AddEntities: []finchtest.Entity{{Name: "Acme South"}}})
	if err != nil {
		t.Fatal(err)
	}
	embedded, _ := json.Marshal(map[string]string{"client_id": s.ClientID, "client_secret": s.ClientSecret, "code": s.IssueCode(c.ID)})
	newTok2, _ := sc.do("exchange, embedded", "POST", "/auth/token", "", string(embedded))["access_token"].(string)
	if newTok == "" || newTok2 == "" {
		t.Fatal("an exchange failed")
	}

	// The superseded token: refused by data calls forever; /introspect in
	// both readings.
	for _, mode := range []finchtest.SupersededIntrospection{finchtest.SupersededConnectionStatus, finchtest.SupersededReauth} {
		s.SetSupersededIntrospection(mode)
		sc.do("superseded token, "+mode.String(), "GET", "/introspect", newTok, "")
	}
	sc.do("superseded token", "GET", "/employer/directory", newTok, "")
	sc.do("superseded token", "PUT", "/sandbox/connections/accounts", newTok, `{"connection_status":"connected"}`)
	return newTok2
}

// statuses puts the connection in every status through the sandbox
// endpoint, and reads what each does.
func (sc *scenario) statuses(tok string) {
	for _, st := range []string{"pending", "processing", "error_no_account_setup", "error_permissions", "reauth", "connected"} {
		sc.do("sandbox "+st, "PUT", "/sandbox/connections/accounts", tok, `{"connection_status":"`+st+`"}`)
		sc.do("status "+st, "GET", "/introspect", tok, "")
		sc.do("status "+st, "GET", "/employer/company", tok, "")
		sc.do("status "+st, "GET", "/employer/directory", tok, "")
	}
	sc.do("sandbox, unknown status", "PUT", "/sandbox/connections/accounts", tok, `{"connection_status":"sleepy"}`)
	sc.do("sandbox, malformed", "PUT", "/sandbox/connections/accounts", tok, `{`)
}

// errors provokes the authentication and routing errors, and a fault of
// every status finchtest has a default body for.
func (sc *scenario) errors(tok string) {
	sc.do("no token", "GET", "/employer/company", "", "")
	sc.do("no token", "GET", "/introspect", "", "")
	sc.do("unknown token", "GET", "/employer/directory", "tok_sandbox_nope", "")
	sc.do("bad query", "GET", "/employer/directory?limit=-1", tok, "")
	sc.do("unknown route", "GET", "/employer/nope", tok, "")
	sc.do("wrong method", "POST", "/introspect", tok, "")
	sc.do("wrong method", "GET", "/auth/token", "", "")
	sc.do("wrong method", "POST", "/authorize", "", "")
	for _, st := range []int{400, 401, 403, 404, 405, 408, 409, 418, 422, 429, 500, 501, 502, 503, 504, 599} {
		sc.s.InjectFault(finchtest.Fault{Path: "/employer/company", Status: st, Times: 1})
		sc.do(fmt.Sprintf("fault %d", st), "GET", "/employer/company", tok, "")
	}
	// A rate limit: the second request of the minute is refused.
	sc.s.SetRateLimit("/employer/directory", 1)
	sc.s.SetRateLimitRetryAfter(true)
	sc.do("rate limited", "GET", "/employer/directory", tok, "")
	sc.do("rate limited", "GET", "/employer/directory", tok, "")
	sc.s.SetRateLimit("/employer/directory", 0)
}

// disconnect disconnects a connection and reads with its revoked token,
// in both of RevokedAnswer's readings.
func (sc *scenario) disconnect(tok string) {
	sc.do("disconnect, no token", "POST", "/disconnect", "", "")
	sc.do("disconnect", "POST", "/disconnect", tok, "")
	for _, a := range []finchtest.RevokedAnswer{finchtest.RevokedInvalidToken, finchtest.RevokedServerError} {
		sc.s.SetRevokedAnswer(a)
		sc.do("revoked, "+a.String(), "GET", "/introspect", tok, "")
		sc.do("revoked, "+a.String(), "GET", "/employer/company", tok, "")
		sc.do("revoked, "+a.String(), "POST", "/disconnect", tok, "")
	}
	sc.s.SetRevokedAnswer(finchtest.RevokedInvalidToken)
}

// TestConformance drives finchtest through every route and checks each
// JSON answer against Finch's specs with FINCH.md's exceptions (see
// overlay): the fields and their JSON types, required fields, enum
// values, patterns and formats, and no field the schema does not know.
func TestConformance(t *testing.T) {
	c := &compiled{t: t, d: loadSpecs(t), cache: map[[2]string]*schema{}}
	s := finchtest.NewServer()
	defer s.Close()
	h := newHooks(t)
	rec := &recorder{base: s.Client().Transport}
	client := &http.Client{Transport: rec, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	(&scenario{t: t, s: s, rec: rec, c: client}).run(h.URL)

	used, served := checkAnswers(t, c, rec.got)
	t.Logf("checked %d answers; per schema: %v", len(rec.got), used)

	// Every schema was used: a scenario that stopped covering an answer
	// would otherwise pass unnoticed.
	for _, which := range append(slices.Collect(maps.Values(answerSchemas)), errorSchema) {
		if used[which] == 0 {
			t.Errorf("no answer was checked against %v", which)
		}
	}
	// Every route finchtest documents was exercised with success.
	for _, route := range documentedRoutes(t) {
		if !served[route] {
			t.Errorf("route %s (from finchtest's doc.go) was not exercised", route)
		}
	}
	checkWebhooks(t, c, h.received())

	// ErrorBody, which tests use for Fault bodies.
	for _, body := range []string{
		finchtest.ErrorBody(401, "authentication_error", "reauthenticate_user", "Please reauthenticate user"),
		finchtest.ErrorBody(500, "server_error", "", "Internal Server Error"),
	} {
		v, _ := decode([]byte(body))
		for _, p := range c.get(errorSchema).validate(v, "$") {
			t.Errorf("ErrorBody: %s", p)
		}
	}
}

// routeOf names the route of a request: its method and path, with an id
// in the path replaced by its placeholder, as doc.go lists routes.
func routeOf(method, path string) string {
	if id, ok := strings.CutPrefix(path, "/jobs/automated/"); ok && id != "" {
		path = "/jobs/automated/{job_id}"
	}
	return method + " " + path
}

// checkAnswers checks every recorded answer against its schema, and
// returns how many answers each schema checked and which routes answered
// with success.
func checkAnswers(t *testing.T, c *compiled, got []exchange) (used map[[2]string]int, served map[string]bool) {
	t.Helper()
	used, served = map[[2]string]int{}, map[string]bool{}
	for _, ex := range got {
		route := routeOf(ex.method, ex.path)
		where := fmt.Sprintf("%s %d (%s)", route, ex.status, ex.label)
		if ex.status < 400 {
			served[route] = true
		}
		if slices.Contains(htmlRoutes, route) && ex.status < 405 {
			continue // a Connect page or redirect, not JSON
		}
		if mt, _, _ := mime.ParseMediaType(ex.ctype); mt != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", where, ex.ctype)
			continue
		}
		which, ok := answerSchemas[fmt.Sprintf("%s %d", route, ex.status)]
		if !ok && (ex.status >= 400 || ex.status == http.StatusAccepted) {
			which, ok = errorSchema, true
		}
		if !ok {
			t.Errorf("%s: no schema for this answer", where)
			continue
		}
		used[which]++
		v, err := decode(ex.body)
		if err != nil {
			t.Errorf("%s: not JSON: %v", where, err)
			continue
		}
		for _, p := range c.get(which).validate(v, "$") {
			t.Errorf("%s: %s", where, p)
		}
	}
	return used, served
}

// checkWebhooks checks the webhook bodies the scenario's changes sent,
// each against the schema of its event_type.
func checkWebhooks(t *testing.T, c *compiled, bodies [][]byte) {
	t.Helper()
	if len(bodies) < 10 {
		t.Errorf("only %d webhooks", len(bodies))
	}
	seen := map[string]int{}
	for i, b := range bodies {
		v, err := decode(b)
		if err != nil {
			t.Fatalf("webhook %d: %v", i, err)
		}
		m, _ := v.(map[string]any)
		typ, _ := m["event_type"].(string)
		if m["entity_id"] != nil {
			typ += " (entity)"
		}
		seen[typ]++
		key, ok := webhookSchemas[strings.TrimSuffix(typ, " (entity)")]
		if !ok {
			t.Errorf("webhook %d: no schema for event_type %q", i, typ)
			continue
		}
		for _, p := range c.get([2]string{"", key}).validate(v, "$") {
			t.Errorf("webhook %d (%s): %s", i, typ, p)
		}
	}
	for typ := range webhookSchemas {
		if seen[typ] == 0 {
			t.Errorf("no %s webhook was checked", typ)
		}
	}
	if seen["account.updated (entity)"] == 0 {
		t.Error("no entity-scoped webhook was checked")
	}
}

// TestLegacyWebhookShapes: the older shapes finchtest sends on request
// match the older docs, and are off the SDKs' model exactly where FINCH.md
// says they are (a receiver must decode both).
func TestLegacyWebhookShapes(t *testing.T) {
	c := &compiled{t: t, d: loadSpecs(t), cache: map[[2]string]*schema{}}
	s := finchtest.NewServer()
	defer s.Close()
	h := newHooks(t)
	if err := s.SetWebhook(finchtest.Webhook{URL: h.URL, Secrets: []string{webhookSecret}, LegacyStatus: true, StringAuthMethod: true}); err != nil {
		t.Fatal(err)
	}
	conn, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	s.Break(conn.ID)
	bodies := h.received()
	if len(bodies) != 1 {
		t.Fatalf("%d webhooks", len(bodies))
	}
	v, _ := decode(bodies[0])
	if p := c.get([2]string{"", "account_updated_docs"}).validate(v, "$"); len(p) != 0 {
		t.Errorf("against the older docs: %q", p)
	}
	want := []string{
		"$.data.authentication_method: the string \"credential\", want object",
		"$.data.status: error_reauth is not one of",
	}
	got := c.get([2]string{"", "account_updated"}).validate(v, "$")
	if len(got) != len(want) {
		t.Fatalf("against the SDKs' model: %q, want %d problems", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want %q...", i, got[i], want[i])
		}
	}
}

// documentedRoutes reads the "Routes served" list of finchtest's doc.go,
// so that a route added there without a conformance check fails here.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(b), "// Routes served:")
	if !ok {
		t.Fatal(`finchtest's doc.go has no "Routes served:" list`)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`(?m)^//\s+(GET|POST|PUT|PATCH|DELETE)\s+(/\S*)`).FindAllStringSubmatch(list, -1) {
		routes = append(routes, m[1]+" "+m[2])
	}
	if len(routes) < 8 {
		t.Fatalf("read only %d routes from doc.go: %v", len(routes), routes)
	}
	return routes
}
