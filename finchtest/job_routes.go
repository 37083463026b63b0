package finchtest

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"
)

// allowedRefreshes is how many jobs a connection may enqueue per window of
// refreshWindow: Finch allows one forced refresh per hour.
const (
	allowedRefreshes = 1
	refreshWindow    = time.Hour
)

// refreshQuota is the answer of POST /jobs/automated: the job and the
// connection's quota. A 429 carries the quota and retry_at only.
type refreshQuota struct {
	JobID              string `json:"job_id,omitempty"`
	JobURL             string `json:"job_url,omitempty"`
	AllowedRefreshes   int    `json:"allowed_refreshes"`
	RemainingRefreshes int    `json:"remaining_refreshes"`
	RetryAt            string `json:"retry_at,omitempty"`
}

// serveJobCreate answers POST /jobs/automated {"type":"data_sync_all"}:
// 201 with a new job; 202 with the running job if the connection has one
// (one job per connection at a time); 429 when the connection's forced
// refresh of the hour is spent. Any live token of the connection may call
// it, whatever the connection's status (a job of a connection in reauth
// ends in reauth_error); an assisted connection's is refused (400), as
// Finch's spec says.
func (s *Server) serveJobCreate(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var body struct {
		Type string `json:"type"`
	}
	switch err := decodeJSON(r, &body); {
	case err != nil:
		e = errInvalidRequest("Request body is not valid JSON")
	case body.Type != "data_sync_all":
		e = errInvalidRequest("type must be data_sync_all")
	case p.conn.Assisted:
		// The name and message of Finch's spec's example.
		e = newAPIError(http.StatusBadRequest, "bad_request", "", "cannot create automated job for Assisted Connect token")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	status, answer := s.enqueueJob(p.conn.ID, s.baseURL(r))
	writeJSON(w, status, answer)
}

// enqueueJob starts a job for a connection, or returns the running one,
// or refuses when the connection's quota is spent.
func (s *Server) enqueueJob(connID, base string) (int, refreshQuota) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.conns[connID]
	now := s.nowLocked()
	remaining := cs.remainingRefreshes(now)
	if j := s.runningJobLocked(cs); j != nil {
		return http.StatusAccepted, refreshQuota{JobID: j.ID, JobURL: j.url, AllowedRefreshes: allowedRefreshes, RemainingRefreshes: remaining}
	}
	if remaining == 0 {
		retry := cs.refreshSince.Add(refreshWindow).UTC().Format(time.RFC3339)
		return http.StatusTooManyRequests, refreshQuota{AllowedRefreshes: allowedRefreshes, RetryAt: retry}
	}
	if remaining == allowedRefreshes {
		cs.refreshSince, cs.refreshes = now, 0 // a new window
	}
	cs.refreshes++
	id := hashID(randomHex(16), "job", 0)
	s.seq++
	j := &jobState{Job: Job{ID: id, ConnectionID: connID, Status: "pending", CreatedAt: now}, url: base + "/jobs/automated/" + id, seq: s.seq}
	if s.jobs == nil {
		s.jobs = make(map[string]*jobState)
	}
	s.jobs[id] = j
	cs.jobs = append(cs.jobs, id)
	return http.StatusCreated, refreshQuota{JobID: id, JobURL: j.url, AllowedRefreshes: allowedRefreshes, RemainingRefreshes: remaining - 1}
}

// remainingRefreshes is how many jobs cs may still enqueue at now. The
// window of an hour begins with the first job enqueued in it: Finch calls
// it a fixed window, without saying where windows begin.
func (cs *connState) remainingRefreshes(now time.Time) int {
	if cs.refreshSince.IsZero() || !now.Before(cs.refreshSince.Add(refreshWindow)) {
		return allowedRefreshes
	}
	return max(allowedRefreshes-cs.refreshes, 0)
}

// jobJSON is a job as GET /jobs/automated/{job_id} answers it: Finch's
// AutomatedAsyncJob. params is null: a data_sync_all job has none.
type jobJSON struct {
	JobID       string  `json:"job_id"`
	JobURL      string  `json:"job_url"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	CreatedAt   string  `json:"created_at"`
	ScheduledAt *string `json:"scheduled_at"`
	StartedAt   *string `json:"started_at"`
	CompletedAt *string `json:"completed_at"`
	Params      any     `json:"params"`
}

func (j jobState) answer() jobJSON {
	stamp := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.UTC().Format(time.RFC3339)
		return &v
	}
	return jobJSON{
		JobID:       j.ID,
		JobURL:      j.url,
		Type:        "data_sync_all",
		Status:      j.Status,
		CreatedAt:   *stamp(j.CreatedAt),
		StartedAt:   stamp(j.StartedAt),
		CompletedAt: stamp(j.CompletedAt),
	}
}

// serveJob answers GET /jobs/automated/{job_id}, for a job of the bearer
// token's connection; 404 for any other.
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/jobs/automated/")
	s.mu.Lock()
	j, ok := s.jobs[id]
	var out jobJSON
	if ok && j.ConnectionID == p.conn.ID {
		out = j.answer()
	}
	s.mu.Unlock()
	if out.JobID == "" {
		writeError(w, errNotFound("Job not found"))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// serveJobList answers GET /jobs/automated (?limit= &offset=): the bearer
// token's connection's jobs, newest first, and its quota, as the official
// SDKs model the answer ({data, meta: {quotas: {data_sync_all}}}).
func (s *Server) serveJobList(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	limit, err1 := queryInt(r.URL.Query().Get("limit"))
	offset, err2 := queryInt(r.URL.Query().Get("offset"))
	if err1 != nil || err2 != nil {
		writeError(w, errInvalidRequest("limit and offset must be non-negative integers"))
		return
	}
	s.mu.Lock()
	cs := s.conns[p.conn.ID]
	data := make([]jobJSON, 0, len(cs.jobs))
	for _, id := range slices.Backward(cs.jobs) {
		data = append(data, s.jobs[id].answer())
	}
	quota := map[string]int{"allowed_refreshes": allowedRefreshes, "remaining_refreshes": cs.remainingRefreshes(s.nowLocked())}
	s.mu.Unlock()
	data = data[min(offset, len(data)):]
	if limit > 0 && limit < len(data) {
		data = data[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"meta": map[string]any{"quotas": map[string]any{"data_sync_all": quota}},
	})
}

// sandboxJobConfig is a sandbox job configuration, Finch's
// SandboxJobConfiguration.
type sandboxJobConfig struct {
	Type             string `json:"type"`
	CompletionStatus string `json:"completion_status"`
}

// serveSandboxJobConfig answers GET /sandbox/jobs/configuration: how the
// bearer token's connection's jobs end when its status does not decide
// (see SetJobDuration), as a list of one configuration.
func (s *Server) serveSandboxJobConfig(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	if e != nil {
		writeError(w, e)
		return
	}
	s.mu.Lock()
	config := sandboxJobConfig{Type: "data_sync_all", CompletionStatus: cmp.Or(s.conns[p.conn.ID].jobCompletion, "complete")}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, []sandboxJobConfig{config})
}

// serveSandboxJobConfigSet answers PUT /sandbox/jobs/configuration
// {"type":"data_sync_all","completion_status":...}: the bearer token's
// connection's jobs end so from now on, when its status does not decide.
// completion_status is "complete", "error", "reauth_error" (which also
// puts the connection in "reauth" when a job ends) or "permissions_error"
// ("error_permissions"). It echoes the configuration.
func (s *Server) serveSandboxJobConfigSet(w http.ResponseWriter, r *http.Request) {
	p, e := s.authenticateLive(r)
	var body sandboxJobConfig
	if e == nil {
		switch err := decodeJSON(r, &body); {
		case err != nil:
			e = errInvalidRequest("Request body is not valid JSON")
		case body.Type != "data_sync_all":
			e = errInvalidRequest("type must be data_sync_all")
		case !slices.Contains(jobEnds(), body.CompletionStatus):
			e = errInvalidRequest("completion_status must be one of " + strings.Join(jobEnds(), ", "))
		}
	}
	if e != nil {
		writeError(w, e)
		return
	}
	s.mu.Lock()
	s.conns[p.conn.ID].jobCompletion = body.CompletionStatus
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
