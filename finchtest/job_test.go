package finchtest_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// jobAnswer is POST /jobs/automated's answer.
type jobAnswer struct {
	JobID              string `json:"job_id"`
	JobURL             string `json:"job_url"`
	AllowedRefreshes   int    `json:"allowed_refreshes"`
	RemainingRefreshes int    `json:"remaining_refreshes"`
	RetryAt            string `json:"retry_at"`
}

// postJob enqueues a data_sync_all job, failing unless the answer has
// the status want.
func postJob(t *testing.T, s *finchtest.Server, tok string, want int) jobAnswer {
	t.Helper()
	res := send(t, s, req{method: "POST", path: "/jobs/automated", token: tok, body: `{"type":"data_sync_all"}`})
	if res.status != want {
		t.Fatalf("POST /jobs/automated: status %d, want %d: %s", res.status, want, res.body)
	}
	var a jobAnswer
	json.Unmarshal(res.body, &a)
	return a
}

// jobRead is GET /jobs/automated/{job_id}'s answer.
type jobRead struct {
	JobID       string  `json:"job_id"`
	JobURL      string  `json:"job_url"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	CreatedAt   string  `json:"created_at"`
	StartedAt   *string `json:"started_at"`
	CompletedAt *string `json:"completed_at"`
}

func getJob(t *testing.T, s *finchtest.Server, tok, id string) jobRead {
	t.Helper()
	res := send(t, s, req{method: "GET", path: "/jobs/automated/" + id, token: tok})
	if res.status != 200 {
		t.Fatalf("GET job: status %d: %s", res.status, res.body)
	}
	var j jobRead
	json.Unmarshal(res.body, &j)
	return j
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// TestJobByClock: a job is pending, then in progress, then complete, by
// the server's clock; one job at a time; one forced refresh an hour.
func TestJobByClock(t *testing.T) {
	s := newServer(t)
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	t0 := clk.now
	s.SetClock(clk.Now)
	s.SetJobDuration(time.Minute, 5*time.Minute)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)

	a := postJob(t, s, tok, 201)
	if !uuidShape.MatchString(a.JobID) || a.JobURL != s.URL+"/jobs/automated/"+a.JobID || a.AllowedRefreshes != 1 || a.RemainingRefreshes != 0 {
		t.Errorf("created = %+v", a)
	}
	if again := postJob(t, s, tok, 202); again.JobID != a.JobID || again.JobURL != a.JobURL || again.RemainingRefreshes != 0 {
		t.Errorf("while running = %+v", again)
	}
	steps := []struct {
		at        time.Duration
		status    string
		started   *string
		completed *string
	}{
		{59 * time.Second, "pending", nil, nil},
		{time.Minute, "in_progress", ptr(stamp(t0.Add(time.Minute))), nil},
		{6 * time.Minute, "complete", ptr(stamp(t0.Add(time.Minute))), ptr(stamp(t0.Add(6 * time.Minute)))},
	}
	for _, st := range steps {
		clk.now = t0.Add(st.at)
		j := getJob(t, s, tok, a.JobID)
		if j.Status != st.status || j.Type != "data_sync_all" || j.CreatedAt != stamp(t0) ||
			(j.StartedAt == nil) != (st.started == nil) || (j.StartedAt != nil && *j.StartedAt != *st.started) ||
			(j.CompletedAt == nil) != (st.completed == nil) || (j.CompletedAt != nil && *j.CompletedAt != *st.completed) {
			t.Errorf("at %v: %+v", st.at, j)
		}
	}
	got := rc.received()
	want := `{"event_type":"job.data_sync_all.completed","connection_id":"` + c.ID + `","company_id":"` + c.CompanyID +
		`","account_id":"` + introspectAccount(t, s, tok) + `","data":{"job_id":"` + a.JobID + `","job_url":"` + a.JobURL + `"}}`
	if len(got) != 1 || string(got[0].body) != want || len(got[0].verified) != 1 {
		t.Fatalf("webhooks = %d, first %s\nwant %s", len(got), got[0].body, want)
	}
	if in := introspect(t, s, tok); in.ConnectionStatus.LastSuccessfulSync == nil || *in.ConnectionStatus.LastSuccessfulSync != stamp(t0.Add(6*time.Minute)) {
		t.Errorf("last_successful_sync = %v", in.ConnectionStatus.LastSuccessfulSync)
	}

	// The hour's refresh is spent until an hour after the first.
	clk.now = t0.Add(59 * time.Minute)
	if q := postJob(t, s, tok, 429); q.RetryAt != stamp(t0.Add(time.Hour)) || q.RemainingRefreshes != 0 || q.JobID != "" {
		t.Errorf("429 = %+v", q)
	}
	clk.now = t0.Add(time.Hour)
	if b := postJob(t, s, tok, 201); b.JobID == a.JobID {
		t.Error("same job id")
	}
	if jobs := s.Jobs(c.ID); len(jobs) != 2 || jobs[0].ID != a.JobID || jobs[0].Status != "complete" || jobs[1].Status != "pending" {
		t.Errorf("Jobs = %+v", jobs)
	}
}

func introspectAccount(t *testing.T, s *finchtest.Server, tok string) string {
	t.Helper()
	id, _ := send(t, s, req{method: "GET", path: "/introspect", token: tok}).json(t)["account_id"].(string)
	return id
}

// TestJobOutcome: how a job ends follows its connection's status when it
// ends, then the sandbox's job configuration.
func TestJobOutcome(t *testing.T) {
	tests := []struct {
		status, config, want string
		wantConn             string
	}{
		{"connected", "", "complete", "connected"},
		{"pending", "", "complete", "pending"},
		{"reauth", "", "reauth_error", "reauth"},
		{"error_permissions", "", "permissions_error", "error_permissions"},
		{"error_no_account_setup", "", "error", "error_no_account_setup"},
		{"connected", "error", "error", "connected"},
		{"connected", "reauth_error", "reauth_error", "reauth"},
		{"connected", "permissions_error", "permissions_error", "error_permissions"},
		{"reauth", "complete", "reauth_error", "reauth"},
	}
	for _, tt := range tests {
		t.Run(tt.status+"/"+tt.config, func(t *testing.T) {
			s := newServer(t)
			s.SetJobDuration(0, 0) // a job ends as soon as time is looked at
			tok := s.AddConnection(finchtest.Connection{})
			c := connectionOf(t, s, tok)
			if tt.config != "" {
				res := send(t, s, req{method: "PUT", path: "/sandbox/jobs/configuration", token: tok, body: `{"type":"data_sync_all","completion_status":"` + tt.config + `"}`})
				if res.status != 200 || string(res.body) != `{"type":"data_sync_all","completion_status":"`+tt.config+`"}` {
					t.Fatalf("PUT configuration: %d %s", res.status, res.body)
				}
			}
			a := postJob(t, s, tok, 201)
			s.SetStatus(c.ID, tt.status) // the status when the job ends decides
			if j := getJob(t, s, tok, a.JobID); j.Status != tt.want {
				t.Errorf("job status %q, want %q", j.Status, tt.want)
			}
			if got, _ := s.Connection(c.ID); got.Status != tt.wantConn {
				t.Errorf("connection status %q, want %q", got.Status, tt.wantConn)
			}
		})
	}
}

// TestSetJobStatus: by default jobs wait for the test; a reauth_error
// flips the connection, with its webhooks.
func TestSetJobStatus(t *testing.T) {
	s := newServer(t)
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	s.SetClock(clk.Now)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	a := postJob(t, s, tok, 201)
	clk.now = clk.now.Add(24 * time.Hour)
	if j := getJob(t, s, tok, a.JobID); j.Status != "pending" {
		t.Fatalf("without SetJobDuration a job waits: %q", j.Status)
	}
	for _, st := range []string{"in_progress", "in_progress"} {
		if err := s.SetJobStatus(a.JobID, st); err != nil {
			t.Fatal(err)
		}
	}
	if j := getJob(t, s, tok, a.JobID); j.Status != "in_progress" || j.StartedAt == nil || *j.StartedAt != stamp(clk.now) {
		t.Errorf("started: %+v", j)
	}
	if err := s.SetJobStatus(a.JobID, "reauth_error"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range s.Webhooks() {
		types = append(types, d.EventType+":"+d.Status)
	}
	if want := []string{"job.data_sync_all.completed:", "account.updated:reauth"}; !slices.Equal(types, want) {
		t.Errorf("webhooks = %v, want %v", types, want)
	}
	checkError(t, send(t, s, req{method: "GET", path: "/employer/company", token: tok}), 401, "authentication_error", "reauthenticate_user")
	if j := getJob(t, s, tok, a.JobID); j.Status != "reauth_error" {
		t.Errorf("job %q", j.Status) // readable while the connection is in reauth
	}
	if got, _ := s.Connection(c.ID); got.Status != "reauth" {
		t.Errorf("connection %q", got.Status)
	}
	for _, bad := range [][2]string{{a.JobID, "complete"}, {"nope", "complete"}, {a.JobID, "pending"}} {
		if err := s.SetJobStatus(bad[0], bad[1]); err == nil {
			t.Errorf("SetJobStatus(%q, %q): no error", bad[0], bad[1])
		}
	}
	b := postJob(t, s, tok, 201) // the next day's refresh; the connection is in reauth
	if err := s.SetJobStatus(b.JobID, "bogus"); err == nil {
		t.Error("bogus status: no error")
	}
}

// TestJobRefusals: tokens, bodies, an assisted connection, another
// connection's job.
func TestJobRefusals(t *testing.T) {
	s := newServer(t)
	old := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, old)
	tok := accessToken(t, exchange(t, s, s.IssueCode(c.ID), nil))
	assisted := s.AddConnection(finchtest.Connection{Assisted: true})
	other := s.AddConnection(finchtest.Connection{})
	job := postJob(t, s, tok, 201).JobID

	post := func(tok, body string) response {
		return send(t, s, req{method: "POST", path: "/jobs/automated", token: tok, body: body})
	}
	const sync = `{"type":"data_sync_all"}`
	checkError(t, post("", sync), 401, "unauthorized_request_error", "")
	checkError(t, post("tok_nope", sync), 401, "invalid_token_error", "")
	checkError(t, post(old, sync), 401, "authentication_error", "reauthenticate_user")
	checkError(t, post(tok, `{"type":"w4_form_employee_sync"}`), 400, "invalid_request_error", "")
	checkError(t, post(tok, `{"type":`), 400, "invalid_request_error", "")
	checkError(t, post(assisted, sync), 400, "bad_request", "")
	get := func(tok, path string) response { return send(t, s, req{method: "GET", path: path, token: tok}) }
	checkError(t, get(old, "/jobs/automated/"+job), 401, "authentication_error", "reauthenticate_user")
	checkError(t, get(other, "/jobs/automated/"+job), 404, "not_found_error", "")
	checkError(t, get(tok, "/jobs/automated/nope"), 404, "not_found_error", "")
	checkError(t, get(tok, "/jobs/automated?limit=-1"), 400, "invalid_request_error", "")
	checkError(t, get(old, "/sandbox/jobs/configuration"), 401, "authentication_error", "reauthenticate_user")
	for _, body := range []string{`{"type":"data_sync_all","completion_status":"success"}`, `{"type":"other","completion_status":"error"}`, `{`} {
		checkError(t, send(t, s, req{method: "PUT", path: "/sandbox/jobs/configuration", token: tok, body: body}), 400, "invalid_request_error", "")
	}
	if n := s.Calls("GET", "/jobs/automated/{job_id}"); n != 3 {
		t.Errorf("Calls(GET, /jobs/automated/{job_id}) = %d, want 3", n)
	}
}

// TestJobList: newest first, paged, with the quota; the sandbox
// configuration reads back.
func TestJobList(t *testing.T) {
	s := newServer(t)
	clk := &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	s.SetClock(clk.Now)
	tok := s.AddConnection(finchtest.Connection{})
	var ids []string
	for range 3 {
		a := postJob(t, s, tok, 201)
		s.SetJobStatus(a.JobID, "complete")
		ids = append(ids, a.JobID)
		clk.now = clk.now.Add(time.Hour)
	}
	var list struct {
		Data []jobRead `json:"data"`
		Meta struct {
			Quotas struct {
				DataSyncAll struct {
					Allowed   int `json:"allowed_refreshes"`
					Remaining int `json:"remaining_refreshes"`
				} `json:"data_sync_all"`
			} `json:"quotas"`
		} `json:"meta"`
	}
	res := send(t, s, req{method: "GET", path: "/jobs/automated?limit=2&offset=1", token: tok})
	if err := json.Unmarshal(res.body, &list); err != nil || res.status != 200 {
		t.Fatalf("list: %d %s", res.status, res.body)
	}
	if len(list.Data) != 2 || list.Data[0].JobID != ids[1] || list.Data[1].JobID != ids[0] || list.Meta.Quotas.DataSyncAll.Allowed != 1 || list.Meta.Quotas.DataSyncAll.Remaining != 1 {
		t.Errorf("list = %+v", list)
	}
	res = send(t, s, req{method: "GET", path: "/sandbox/jobs/configuration", token: tok})
	if res.status != 200 || string(res.body) != `[{"type":"data_sync_all","completion_status":"complete"}]` {
		t.Errorf("configuration: %d %s", res.status, res.body)
	}
}

// TestJobWebhookHeldAndDisconnect: a job's end is held like any event; a
// disconnect ends the running job quietly.
func TestJobWebhookHeldAndDisconnect(t *testing.T) {
	s := newServer(t)
	rc := newReceiver(t, vectorSecret)
	rc.register(t, s, finchtest.Webhook{})
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	s.HoldWebhooks(true)
	s.SetJobStatus(postJob(t, s, tok, 201).JobID, "complete")
	if held := s.HeldWebhooks(); len(held) != 1 || held[0].EventType != "job.data_sync_all.completed" || len(rc.received()) != 0 {
		t.Errorf("held = %+v", held)
	}
	s.HoldWebhooks(false)

	tok2 := s.AddConnection(finchtest.Connection{})
	s.SetJobDuration(time.Hour, time.Hour)
	a := postJob(t, s, tok2, 201)
	send(t, s, req{method: "POST", path: "/disconnect", token: tok2})
	c2 := connectionOf(t, s, tok2)
	if jobs := s.Jobs(c2.ID); len(jobs) != 1 || jobs[0].ID != a.JobID || jobs[0].Status != "error" || jobs[0].CompletedAt.IsZero() {
		t.Errorf("Jobs = %+v", jobs)
	}
	if got := statusOf(t, rc.received()); !slices.Equal(got, []string{"disconnected"}) {
		t.Errorf("webhooks = %v", got)
	}
	if jobs := s.Jobs(""); len(jobs) != 2 || jobs[0].ConnectionID != c.ID {
		t.Errorf("Jobs(\"\") = %+v", jobs)
	}
}
