package finchtest_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

func TestDataRoutesAuth(t *testing.T) {
	s := newServer(t)
	live := s.AddConnection(finchtest.Connection{})
	broken := s.AddConnection(finchtest.Connection{})
	s.Break(connectionOf(t, s, broken).ID)

	routes := []string{"/employer/company", "/employer/directory"}
	tests := []struct {
		name      string
		header    map[string]string
		token     string
		status    int
		errName   string
		finchCode string
	}{
		{name: "no token", status: 401, errName: "unauthorized_request_error"},
		{name: "not bearer", header: map[string]string{"Authorization": "Basic abc"}, status: 401, errName: "unauthorized_request_error"},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}, status: 401, errName: "unauthorized_request_error"},
		{name: "unknown token", token: "tok_sandbox_nope", status: 401, errName: "invalid_token_error"},
		{name: "broken connection", token: broken, status: 401, errName: "authentication_error", finchCode: "reauthenticate_user"},
		{name: "live", token: live, status: 200},
		{name: "lowercase scheme", header: map[string]string{"Authorization": "bearer " + live}, status: 200},
	}
	for _, route := range routes {
		for _, tt := range tests {
			t.Run(route+"/"+tt.name, func(t *testing.T) {
				res := send(t, s, req{method: "GET", path: route, token: tt.token, header: tt.header})
				if res.header.Get("Finch-Request-Id") == "" {
					t.Error("no Finch-Request-Id")
				}
				if tt.status != 200 {
					checkError(t, res, tt.status, tt.errName, tt.finchCode)
					return
				}
				if res.status != 200 {
					t.Fatalf("status %d: %s", res.status, res.body)
				}
				if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q", ct)
				}
			})
		}
	}
}

func TestReauthBodyIsExact(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	s.Break(connectionOf(t, s, tok).ID)
	res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok})
	const want = `{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`
	if got := string(res.body); got != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
}

func TestStatusEffectOnData(t *testing.T) {
	tests := []struct {
		status    string
		code      int
		errName   string
		finchCode string
	}{
		{"connected", 200, "", ""},
		{"", 200, "", ""},
		{"reauth", 401, "authentication_error", "reauthenticate_user"},
		{"pending", 202, "", ""},
		{"processing", 202, "", ""},
		{"error_no_account_setup", 401, "authentication_error", "account_setup_required"},
		{"error_permissions", 401, "authentication_error", "account_setup_required"},
		{"some_future_status", 200, "", ""},
	}
	s := newServer(t)
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			tok := s.AddConnection(finchtest.Connection{})
			c := connectionOf(t, s, tok)
			s.SetStatus(c.ID, tt.status)
			res := send(t, s, req{method: "GET", path: "/employer/company", token: tok})
			if tt.errName != "" {
				checkError(t, res, tt.code, tt.errName, tt.finchCode)
			} else if res.status != tt.code {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.code, res.body)
			}
			in := send(t, s, req{method: "GET", path: "/introspect", token: tok})
			if in.status != 200 {
				t.Fatalf("introspect status = %d", in.status)
			}
			want := tt.status
			if want == "" {
				want = "connected"
			}
			if got := in.json(t)["connection_status"].(map[string]any)["status"]; got != want {
				t.Errorf("introspect status = %v, want %q", got, want)
			}
			got, _ := s.Connection(c.ID)
			if got.Status != want {
				t.Errorf("Connection.Status = %q, want %q", got.Status, want)
			}
		})
	}
}

func TestIntrospect(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{
		CustomerName:  "Acme, Inc.",
		CustomerEmail: "founders@acme.example",
		ProviderID:    "adp_run",
		Products:      []string{"company", "directory"},
		Entities: []finchtest.Entity{
			{Name: "Acme East", SourceID: "east-1"},
			{Name: "Acme West", Status: "disconnected"},
		},
	})
	c := connectionOf(t, s, tok)

	res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var got struct {
		ID               string `json:"id"`
		ClientID         string `json:"client_id"`
		ClientType       string `json:"client_type"`
		ConnectionID     string `json:"connection_id"`
		ConnectionStatus struct {
			Status             string  `json:"status"`
			Message            string  `json:"message"`
			LastSuccessfulSync *string `json:"last_successful_sync"`
		} `json:"connection_status"`
		ConnectionType string   `json:"connection_type"`
		Products       []string `json:"products"`
		ProviderID     string   `json:"provider_id"`
		CompanyID      string   `json:"company_id"`
		CustomerID     string   `json:"customer_id"`
		CustomerName   string   `json:"customer_name"`
		CustomerEmail  string   `json:"customer_email"`
		Entities       []struct {
			ID       string  `json:"id"`
			Name     string  `json:"name"`
			SourceID *string `json:"source_id"`
			Status   string  `json:"status"`
		} `json:"entities"`
		AuthenticationMethods []struct {
			Type             string `json:"type"`
			ConnectionStatus struct {
				Status string `json:"status"`
			} `json:"connection_status"`
			Products []string `json:"products"`
		} `json:"authentication_methods"`
		Username          string `json:"username"`
		AccountID         string `json:"account_id"`
		PayrollProviderID string `json:"payroll_provider_id"`
		Manual            *bool  `json:"manual"`
	}
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	check := func(field, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if got.ID == "" {
		t.Error("no id")
	}
	check("client_id", got.ClientID, s.ClientID)
	check("client_type", got.ClientType, "sandbox")
	check("connection_id", got.ConnectionID, c.ID)
	check("connection_status.status", got.ConnectionStatus.Status, "connected")
	check("connection_type", got.ConnectionType, "provider")
	check("provider_id", got.ProviderID, "adp_run")
	check("payroll_provider_id", got.PayrollProviderID, "adp_run")
	check("company_id", got.CompanyID, c.CompanyID)
	check("customer_id", got.CustomerID, c.CustomerID)
	check("customer_name", got.CustomerName, "Acme, Inc.")
	check("customer_email", got.CustomerEmail, "founders@acme.example")
	check("username", got.Username, "founders@acme.example")
	if got.ConnectionStatus.LastSuccessfulSync == nil {
		t.Error("no last_successful_sync")
	} else if _, err := time.Parse(time.RFC3339, *got.ConnectionStatus.LastSuccessfulSync); err != nil {
		t.Errorf("last_successful_sync: %v", err)
	}
	if !slices.Equal(got.Products, []string{"company", "directory"}) {
		t.Errorf("products = %v", got.Products)
	}
	if got.AccountID == "" {
		t.Error("no account_id")
	}
	if got.Manual == nil || *got.Manual {
		t.Errorf("manual = %v, want false", got.Manual)
	}
	if len(got.Entities) != 2 {
		t.Fatalf("entities = %+v", got.Entities)
	}
	e0, e1 := got.Entities[0], got.Entities[1]
	if e0.ID == "" || e0.ID != c.Entities[0].ID || e0.Name != "Acme East" || e0.SourceID == nil || *e0.SourceID != "east-1" || e0.Status != "connected" {
		t.Errorf("entity 0 = %+v", e0)
	}
	if e1.Name != "Acme West" || e1.SourceID != nil || e1.Status != "disconnected" {
		t.Errorf("entity 1 = %+v", e1)
	}
	if len(got.AuthenticationMethods) != 1 || got.AuthenticationMethods[0].Type != "credential" ||
		got.AuthenticationMethods[0].ConnectionStatus.Status != "connected" ||
		!slices.Equal(got.AuthenticationMethods[0].Products, got.Products) {
		t.Errorf("authentication_methods = %+v", got.AuthenticationMethods)
	}

	// Broken: still 200, status reauth, entities that follow the connection too.
	s.Break(c.ID)
	res = send(t, s, req{method: "GET", path: "/introspect", token: tok})
	if res.status != 200 {
		t.Fatalf("introspect after Break: %d", res.status)
	}
	m := res.json(t)
	if st := m["connection_status"].(map[string]any)["status"]; st != "reauth" {
		t.Errorf("status after Break = %v", st)
	}
	if st := m["entities"].([]any)[0].(map[string]any)["status"]; st != "reauth" {
		t.Errorf("entity status after Break = %v", st)
	}
	if st := m["authentication_methods"].([]any)[0].(map[string]any)["connection_status"].(map[string]any)["status"]; st != "reauth" {
		t.Errorf("authentication_methods status after Break = %v", st)
	}
}

func TestIntrospectErrors(t *testing.T) {
	s := newServer(t)
	checkError(t, send(t, s, req{method: "GET", path: "/introspect"}), 401, "unauthorized_request_error", "")
	checkError(t, send(t, s, req{method: "GET", path: "/introspect", token: "tok_x"}), 401, "invalid_token_error", "")
}

func TestDefaults(t *testing.T) {
	s := newServer(t)
	c1 := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	c2 := connectionOf(t, s, s.AddConnection(finchtest.Connection{}))
	if c1.ID == "" || c1.ID == c2.ID || c1.CustomerID == c2.CustomerID || c1.CompanyID == c2.CompanyID {
		t.Errorf("ids not filled or not distinct: %+v %+v", c1, c2)
	}
	if c1.ID == c1.CompanyID || c1.ID == c1.CustomerID {
		t.Errorf("ids of different kinds collide: %+v", c1)
	}
	want := finchtest.Connection{
		ID:             c1.ID,
		CustomerID:     c1.CustomerID,
		CustomerName:   "Customer 1",
		CustomerEmail:  "admin@customer1.example.com",
		CompanyID:      c1.CompanyID,
		ProviderID:     "gusto",
		Products:       []string{"company", "directory", "individual", "employment", "payment", "pay_statement"},
		Entities:       []finchtest.Entity{{ID: c1.Entities[0].ID, Name: "Customer 1"}},
		ClientType:     "sandbox",
		ConnectionType: "provider",
		Status:         "connected",
		Username:       "admin@customer1.example.com",
		Methods:        []finchtest.AuthMethod{{Type: "credential"}},
	}
	if !reflect.DeepEqual(c1, want) {
		t.Errorf("defaults =\n%+v\nwant\n%+v", c1, want)
	}
	// Same defaults from a second server: deterministic.
	s2 := newServer(t)
	d1 := connectionOf(t, s2, s2.AddConnection(finchtest.Connection{}))
	if !reflect.DeepEqual(d1, c1) {
		t.Errorf("defaults differ between servers:\n%+v\n%+v", d1, c1)
	}
}

func TestConnectionIsACopy(t *testing.T) {
	s := newServer(t)
	products := []string{"company"}
	tok := s.AddConnection(finchtest.Connection{ID: "conn_a", Products: products})
	products[0] = "mutated"
	c, ok := s.Connection("conn_a")
	if !ok || c.Products[0] != "company" {
		t.Fatalf("AddConnection kept the caller's slice: %+v", c)
	}
	c.Products[0] = "mutated"
	c.Entities[0].Name = "mutated"
	c2, _ := s.Connection("conn_a")
	if c2.Products[0] != "company" || c2.Entities[0].Name == "mutated" {
		t.Errorf("Connection returned shared state: %+v", c2)
	}
	if _, ok := s.Connection("nope"); ok {
		t.Error("Connection(unknown) reported ok")
	}
	methodProducts := []string{"company"}
	s.AddConnection(finchtest.Connection{ID: "conn_m", Methods: []finchtest.AuthMethod{{Products: methodProducts}}})
	methodProducts[0] = "mutated"
	m, _ := s.Connection("conn_m")
	m.Methods[0].Products[0] = "mutated too"
	if m2, _ := s.Connection("conn_m"); m2.Methods[0].Products[0] != "company" {
		t.Errorf("a method's products are shared: %+v", m2.Methods)
	}
	if _, ok := s.ConnectionForToken("nope"); ok {
		t.Error("ConnectionForToken(unknown) reported ok")
	}
	if got := connectionOf(t, s, tok); got.ID != "conn_a" {
		t.Errorf("ConnectionForToken = %q", got.ID)
	}
	// Unknown ids are ignored.
	s.Break("nope")
	s.SetStatus("nope", "connected")
}

func TestAddConnectionTwice(t *testing.T) {
	s := newServer(t)
	t1 := s.AddConnection(finchtest.Connection{ID: "conn_a", CustomerName: "Old"})
	t2 := s.AddConnection(finchtest.Connection{ID: "conn_a", CustomerName: "New"})
	if t1 == t2 {
		t.Fatal("same token twice")
	}
	for _, tok := range []string{t1, t2} {
		res := send(t, s, req{method: "GET", path: "/introspect", token: tok})
		if name := res.json(t)["customer_name"]; name != "New" {
			t.Errorf("customer_name = %v", name)
		}
		if res := send(t, s, req{method: "GET", path: "/employer/company", token: tok}); res.status != 200 {
			t.Errorf("status = %d", res.status)
		}
	}
}

func TestCompany(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{CustomerName: "Acme, Inc.", CustomerEmail: "hr@acme.example"})
	c := connectionOf(t, s, tok)
	res := send(t, s, req{method: "GET", path: "/employer/company", token: tok})
	m := res.json(t)
	if m["id"] != c.CompanyID || m["legal_name"] != "Acme, Inc." || m["primary_email"] != "hr@acme.example" {
		t.Errorf("company = %s", res.body)
	}
	for _, k := range []string{"entity", "ein", "primary_phone_number", "departments", "locations", "accounts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("company has no %q", k)
		}
	}
	if phone, _ := m["primary_phone_number"].(string); !regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`).MatchString(phone) {
		t.Errorf("primary_phone_number = %q, want E.164", phone)
	}
}

type directoryPage struct {
	Paging struct {
		Count  int `json:"count"`
		Offset int `json:"offset"`
	} `json:"paging"`
	Individuals []struct {
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
		IsActive *bool `json:"is_active"`
	} `json:"individuals"`
}

func getDirectory(t *testing.T, s *finchtest.Server, tok, query string) directoryPage {
	t.Helper()
	res := send(t, s, req{method: "GET", path: "/employer/directory" + query, token: tok})
	if res.status != 200 {
		t.Fatalf("directory%s: status %d: %s", query, res.status, res.body)
	}
	var p directoryPage
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDirectory(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	all := getDirectory(t, s, tok, "")
	n := len(all.Individuals)
	if n < 3 || all.Paging.Count != n || all.Paging.Offset != 0 {
		t.Fatalf("paging = %+v with %d individuals", all.Paging, n)
	}
	ids := map[string]bool{}
	for i, in := range all.Individuals {
		if in.ID == "" || in.FirstName == "" || in.LastName == "" || in.Department.Name == "" || in.IsActive == nil {
			t.Errorf("individual %d incomplete: %+v", i, in)
		}
		ids[in.ID] = true
		if i > 0 && (in.Manager == nil || in.Manager.ID != all.Individuals[0].ID) {
			t.Errorf("individual %d manager = %+v", i, in.Manager)
		}
	}
	if len(ids) != n {
		t.Error("duplicate individual ids")
	}

	tests := []struct {
		query       string
		first, size int
		offset      int
	}{
		{"?limit=2", 0, 2, 0},
		{"?limit=2&offset=2", 2, 2, 2},
		{"?offset=3", 3, n - 3, 3},
		{"?limit=0", 0, n, 0},
		{"?limit=100", 0, n, 0},
		{"?offset=100", 0, 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p := getDirectory(t, s, tok, tt.query)
			if p.Paging.Count != n || p.Paging.Offset != tt.offset {
				t.Errorf("paging = %+v", p.Paging)
			}
			if len(p.Individuals) != tt.size {
				t.Fatalf("%d individuals, want %d", len(p.Individuals), tt.size)
			}
			for i, in := range p.Individuals {
				if in.ID != all.Individuals[tt.first+i].ID {
					t.Errorf("individual %d = %s, want %s", i, in.ID, all.Individuals[tt.first+i].ID)
				}
			}
		})
	}
	for _, q := range []string{"?limit=-1", "?offset=x", "?limit=1.5"} {
		t.Run(q, func(t *testing.T) {
			res := send(t, s, req{method: "GET", path: "/employer/directory" + q, token: tok})
			checkError(t, res, 400, "invalid_request_error", "")
		})
	}

	// Another token of the same connection sees the same ids; another
	// connection sees other ids.
	c := connectionOf(t, s, tok)
	tok2 := s.AddConnection(finchtest.Connection{ID: c.ID})
	if p := getDirectory(t, s, tok2, ""); p.Individuals[0].ID != all.Individuals[0].ID {
		t.Error("ids differ between tokens of one connection")
	}
	other := s.AddConnection(finchtest.Connection{})
	if p := getDirectory(t, s, other, ""); p.Individuals[0].ID == all.Individuals[0].ID {
		t.Error("two connections share individual ids")
	}
}

func TestSandboxAccounts(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)

	res := send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tok, body: `{"connection_status":"reauth"}`})
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	m := res.json(t)
	// The official SDKs' model: every one of these fields is required,
	// entity_id included; the status set is not echoed.
	want := map[string]any{
		"connection_id": c.ID, "entity_id": c.Entities[0].ID, "authentication_type": "credential",
		"company_id": c.CompanyID, "provider_id": c.ProviderID,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if id, _ := m["account_id"].(string); id == "" || m["products"] == nil || len(m) != len(want)+2 {
		t.Errorf("body = %s", res.body)
	}
	checkError(t, send(t, s, req{method: "GET", path: "/employer/directory", token: tok}), 401, "authentication_error", "reauthenticate_user")
	if got, _ := s.Connection(c.ID); got.Status != "reauth" {
		t.Errorf("Status = %q", got.Status)
	}

	// The sandbox endpoint works while broken, so a test can heal it.
	res = send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tok, body: `{"connection_status":"connected"}`})
	if res.status != 200 {
		t.Fatalf("heal: status %d: %s", res.status, res.body)
	}
	if res := send(t, s, req{method: "GET", path: "/employer/directory", token: tok}); res.status != 200 {
		t.Errorf("after heal: %d", res.status)
	}

	tests := []struct {
		name, token, body string
		status            int
		errName           string
	}{
		{"malformed JSON", tok, `{"connection_status":`, 400, "invalid_request_error"},
		{"empty body", tok, ``, 400, "invalid_request_error"},
		{"unknown status", tok, `{"connection_status":"sleepy"}`, 400, "invalid_request_error"},
		{"no token", "", `{"connection_status":"reauth"}`, 401, "unauthorized_request_error"},
		{"unknown token", "tok_x", `{"connection_status":"reauth"}`, 401, "invalid_token_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := send(t, s, req{method: "PUT", path: "/sandbox/connections/accounts", token: tt.token, body: tt.body})
			checkError(t, res, tt.status, tt.errName, "")
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	tests := []struct {
		method, path string
		status       int
		name, allow  string
	}{
		{"GET", "/nope", 404, "not_found_error", ""},
		{"GET", "/employer/nope", 404, "not_found_error", ""},
		{"POST", "/introspect", 405, "method_not_allowed_error", "GET"},
		{"DELETE", "/employer/directory", 405, "method_not_allowed_error", "GET"},
		{"GET", "/auth/token", 405, "method_not_allowed_error", "POST"},
		{"GET", "/sandbox/connections/accounts", 405, "method_not_allowed_error", "PUT"},
		{"POST", "/authorize", 405, "method_not_allowed_error", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := send(t, s, req{method: tt.method, path: tt.path, token: tok})
			checkError(t, res, tt.status, tt.name, "")
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	s := newServer(t)
	seen := map[string]bool{}
	for range 50 {
		id := send(t, s, req{method: "GET", path: "/introspect"}).header.Get("Finch-Request-Id")
		if id == "" || seen[id] {
			t.Fatalf("request id %q empty or repeated", id)
		}
		seen[id] = true
	}
}

func TestCalls(t *testing.T) {
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	for range 3 {
		send(t, s, req{method: "GET", path: "/introspect", token: tok})
	}
	send(t, s, req{method: "GET", path: "/employer/directory?limit=1", token: tok})
	send(t, s, req{method: "POST", path: "/introspect"})
	send(t, s, req{method: "GET", path: "/nope"})
	s.InjectFault(finchtest.Fault{Path: "/employer/company", Status: 500})
	send(t, s, req{method: "GET", path: "/employer/company", token: tok})

	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/introspect", 3},
		{"get", "/introspect", 3},
		{"POST", "/introspect", 1},
		{"", "/introspect", 4},
		{"GET", "/employer/directory", 1},
		{"GET", "/employer/company", 1},
		{"GET", "/nope", 1},
		{"PUT", "/introspect", 0},
		{"GET", "", 6},
		{"", "", 7},
	}
	for _, tt := range tests {
		if got := s.Calls(tt.method, tt.path); got != tt.want {
			t.Errorf("Calls(%q, %q) = %d, want %d", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestClientIsHTTPTestClient(t *testing.T) {
	s := newServer(t)
	if s.Client() == nil || s.Client().Transport == nil {
		t.Fatal("no client")
	}
	if s.ClientID != "client_test_1" || s.ClientSecret != "secret_test_1" {
		t.Errorf("credentials = %q/%q", s.ClientID, "...")
	}
	if !strings.HasPrefix(s.URL, "http://") {
		t.Errorf("URL = %q", s.URL)
	}
	res, err := http.Get(s.URL + "/introspect") // any client works
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("status = %d", res.StatusCode)
	}
}

func TestZeroServer(t *testing.T) {
	var s finchtest.Server
	defer s.Close()
	tok := s.AddConnection(finchtest.Connection{})
	c := s.Client()
	r, _ := http.NewRequestWithContext(t.Context(), "GET", "http://finch.test/employer/directory", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Finch-Request-Id") == "" {
		t.Fatalf("status %d", res.StatusCode)
	}

	// Connect URLs come from the request's host; default credentials work.
	r, _ = http.NewRequestWithContext(t.Context(), "POST", "http://finch.test/connect/sessions/reauthenticate",
		strings.NewReader(`{"connection_id":"`+connectionOf(t, &s, tok).ID+`"}`))
	r.SetBasicAuth("client_test_1", "secret_test_1")
	res, err = c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		ConnectURL string `json:"connect_url"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != 201 || !strings.HasPrefix(body.ConnectURL, "http://finch.test/authorize?session=") {
		t.Fatalf("status %d, connect_url %q", res.StatusCode, body.ConnectURL)
	}
	if _, err := s.Approve(body.ConnectURL); err != nil {
		t.Fatal(err)
	}
}
