package finchtest

import (
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Job is a data sync job (POST /jobs/automated {"type":"data_sync_all"})
// as the fake knows it: see Jobs.
type Job struct {
	// ID is the job_id, a UUID.
	ID string

	// ConnectionID is the connection the job syncs.
	ConnectionID string

	// Status is "pending", "in_progress", or how it ended: "complete",
	// "error", "reauth_error" or "permissions_error".
	Status string

	// CreatedAt is when the job was enqueued, by the server's clock.
	// StartedAt and CompletedAt are when it started and ended; zero until
	// then.
	CreatedAt   time.Time
	StartedAt   time.Time
	CompletedAt time.Time
}

// ended reports whether j has ended.
func (j Job) ended() bool { return !j.CompletedAt.IsZero() }

// jobDuration is how jobs advance by the server's clock: pending for
// queued, then in_progress for running.
type jobDuration struct{ queued, running time.Duration }

// jobState is the server's record of a job.
type jobState struct {
	Job
	url string // job_url
	seq int    // the order jobs were enqueued in
}

// advance brings j up to now as d says, and reports whether it ended:
// then its CompletedAt is set, and its status is left for the caller to
// decide. It is a pure function of (j, now, d).
func (j jobState) advance(now time.Time, d jobDuration) (jobState, bool) {
	if j.ended() {
		return j, false
	}
	if j.StartedAt.IsZero() {
		at := j.CreatedAt.Add(d.queued)
		if now.Before(at) {
			return j, false
		}
		j.StartedAt, j.Status = at, "in_progress"
	}
	end := j.StartedAt.Add(d.running)
	if now.Before(end) {
		return j, false
	}
	j.CompletedAt = end
	return j, true
}

// SetJobDuration makes jobs advance by the server's clock (see SetClock):
// a job is "pending" for queued after it was enqueued, then "in_progress"
// for running, then it ends. Until it is called, or after it is called
// with a negative queued, jobs advance only by SetJobStatus. It applies to
// jobs already enqueued.
//
// Time passing is noticed, and jobs that are due end (sending their
// webhooks), at the start of every request the server receives and in
// Jobs and SetJobStatus. A job ends in "reauth_error" if its connection is
// then in "reauth", "permissions_error" if in "error_permissions", "error"
// if in "error_no_account_setup"; else in the completion_status set with
// PUT /sandbox/jobs/configuration, "complete" by default.
func (s *Server) SetJobDuration(queued, running time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if queued < 0 {
		s.jobClock = nil
		return
	}
	s.jobClock = &jobDuration{queued: queued, running: max(running, 0)}
}

// SetJobStatus moves a job on at once, whatever SetJobDuration says:
// "in_progress" starts a pending job; "complete", "error", "reauth_error"
// or "permissions_error" ends it with that status. Ending a job has the
// effects of any end: a job.data_sync_all.completed webhook; for
// "complete", the connection's last_successful_sync; for "reauth_error",
// the connection's status becomes "reauth", and for "permissions_error"
// "error_permissions" (with their account.updated), as Finch's sandbox
// does. It returns once the webhooks were answered, or held.
//
// It reports an error for an unknown job, a job already ended, or another
// status.
func (s *Server) SetJobStatus(jobID, status string) error {
	s.settleJobs()
	s.mu.Lock()
	j, ok := s.jobs[jobID]
	var err error
	var events []webhookEvent
	switch {
	case !ok:
		err = errors.New("finchtest: no such job")
	case j.ended():
		err = errors.New("finchtest: the job has ended")
	case status == "in_progress":
		if j.StartedAt.IsZero() {
			j.StartedAt, j.Status = s.nowLocked(), "in_progress"
		}
	case slices.Contains(jobEnds(), status):
		events = s.endJobLocked(j, status, s.nowLocked())
	default:
		err = errors.New("finchtest: SetJobStatus takes in_progress, complete, error, reauth_error or permissions_error")
	}
	s.mu.Unlock()
	s.sendEvents(events)
	return err
}

// jobEnds lists the statuses a job can end in.
func jobEnds() []string {
	return []string{"complete", "error", "reauth_error", "permissions_error"}
}

// Jobs returns the jobs of a connection, oldest first ("" for every
// connection's). Like a request, it first ends the jobs that are due (see
// SetJobDuration), which sends their webhooks.
func (s *Server) Jobs(connectionID string) []Job {
	s.settleJobs()
	s.mu.Lock()
	defer s.mu.Unlock()
	var states []*jobState
	for _, j := range s.jobs {
		if connectionID == "" || j.ConnectionID == connectionID {
			states = append(states, j)
		}
	}
	slices.SortFunc(states, func(a, b *jobState) int { return a.seq - b.seq })
	out := make([]Job, len(states))
	for i, j := range states {
		out[i] = j.Job
	}
	return out
}

// settleJobs brings every job up to the server's clock and sends the
// webhooks of those that ended.
func (s *Server) settleJobs() {
	s.mu.Lock()
	var events []webhookEvent
	if s.jobClock != nil {
		now := s.nowLocked()
		for _, j := range s.jobs {
			next, ended := j.advance(now, *s.jobClock)
			j.Job = next.Job
			if ended {
				events = append(events, s.endJobLocked(j, "", j.CompletedAt)...)
			}
		}
	}
	s.mu.Unlock()
	s.sendEvents(events)
}

// endJobLocked ends j at the time at, with status (if empty, the outcome
// its connection's state decides), makes the end's effects on the
// connection and returns the webhooks to send. A job of a disconnected
// connection ends quietly. s.mu must be held.
func (s *Server) endJobLocked(j *jobState, status string, at time.Time) []webhookEvent {
	cs := s.conns[j.ConnectionID]
	if status == "" {
		status = cs.jobOutcome()
	}
	j.Status, j.CompletedAt = status, at
	if j.StartedAt.IsZero() {
		j.StartedAt = at
	}
	if cs.disconnected {
		return nil
	}
	before := cs.statuses()
	switch status {
	case "complete":
		cs.lastSync = at
	case "reauth_error":
		cs.conn.Status = "reauth"
	case "permissions_error":
		cs.conn.Status = "error_permissions"
	}
	var events []webhookEvent
	if s.webhook.URL != "" {
		events = append(events, s.jobCompletedLocked(cs, j))
	}
	return append(events, s.accountEventsLocked(cs, before)...)
}

// jobOutcome is how a job of cs ends when nothing forces it: by the
// connection's status, else by the sandbox's job configuration.
func (cs *connState) jobOutcome() string {
	switch cs.conn.Status {
	case "reauth":
		return "reauth_error"
	case "error_permissions":
		return "permissions_error"
	case "error_no_account_setup", "disconnected":
		return "error"
	}
	if cs.jobCompletion != "" {
		return cs.jobCompletion
	}
	return "complete"
}

// runningJobLocked returns the job of cs that has not ended, if any. s.mu
// must be held.
func (s *Server) runningJobLocked(cs *connState) *jobState {
	for _, id := range cs.jobs {
		if j := s.jobs[id]; !j.ended() {
			return j
		}
	}
	return nil
}

// jobCompleted is the body of a job.data_sync_all.completed event, as the
// official SDKs model it (JobCompletionEvent): no status, the job_url
// tells where to read it.
type jobCompleted struct {
	EventType    string `json:"event_type"`
	ConnectionID string `json:"connection_id"`
	CompanyID    string `json:"company_id"`
	AccountID    string `json:"account_id"`
	Data         struct {
		JobID  string `json:"job_id"`
		JobURL string `json:"job_url"`
	} `json:"data"`
}

// jobCompletedLocked builds the event of j's end. s.mu must be held.
func (s *Server) jobCompletedLocked(cs *connState, j *jobState) webhookEvent {
	ev := jobCompleted{
		EventType:    "job.data_sync_all.completed",
		ConnectionID: cs.conn.ID,
		CompanyID:    cs.conn.CompanyID,
		AccountID:    cs.accountID,
	}
	ev.Data.JobID, ev.Data.JobURL = j.ID, j.url
	body, _ := json.Marshal(ev)
	return webhookEvent{id: newEventID(), typ: ev.EventType, body: body, at: s.eventTimeLocked()}
}
