package finchreauth

import (
	"context"
	"fmt"
	"time"

	"github.com/finchkit/finchreauth/internal/finchapi"
)

// After a reconnect Finch serves the connection's last successful sync until
// its next daily run. Unless SkipResync is set, the end of an episode owes a
// resync: Finch's data_sync_all job is started (one per connection at a
// time: Finch hands back the one under way; one forced refresh an hour: a
// refusal waits for Finch's retry_at), followed until it ends (by polling,
// or sooner on Finch's job.data_sync_all.completed webhook), and the
// application is told when the data is fresh (OnDataSynced, and Status). A
// job that ends in reauth_error or permissions_error is a status Finch
// reports, as a webhook's. Each step is owed in the record, so it happens
// once across replicas, and at least once.

const (
	owedResync = "resync" // start the job
	owedFollow = "follow" // read it until it ends
	owedSynced = "synced" // tell the application (OnDataSynced)

	followFirst = 30 * time.Second // the first look at a job, then doubling
	followCap   = 10 * time.Minute
)

// resync is the job started after an episode ended.
type resync struct {
	Episode string    `json:"episode"`
	JobID   string    `json:"job_id,omitempty"`
	Status  string    `json:"status"` // pending, in_progress, complete, error, reauth_error, permissions_error
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// jobAnswer: Finch answered about the resync's job: started it (job.ID), or
// refused to for now (job.RetryAt), or said how it is (job.Status).
type jobAnswer struct {
	holder string
	job    finchapi.Job
}

// jobDone: Finch's webhook says the job ended; it is read now.
type jobDone struct {
	jobID  string
	holder string
}

func (jobAnswer) isInput() {}
func (jobDone) isInput()   {}

// oweResync owes the resync of the episode e that just ended, leased to
// holder, when there is a token to sync with and Finch runs jobs for the
// connection (not for an assisted one).
func (l *life) oweResync(o *outcome, e *ended, holder string, now time.Time, p policy) {
	if !p.resync || l.Token == "" || e.Via == statusDisconnected || e.Via == viaAbandoned || (l.Identity != nil && l.Identity.Assisted) {
		return
	}
	l.drop(owedResync, "")
	l.drop(owedFollow, "")
	ow := owed{Kind: owedResync, Episode: e.ID, NotBefore: now}
	if holder != "" {
		l.take(&ow, holder, now, p)
		o.lease(ow)
	}
	l.Owed = append(l.Owed, ow)
	l.Resync = &resync{Episode: e.ID, Status: "owed"}
}

func (l *life) onJobAnswer(in jobAnswer, now time.Time, p policy) outcome {
	j, r := in.job, l.Resync
	if r == nil {
		return outcome{}
	}
	if ow := l.owedItem(owedResync, ""); ow != nil && ow.Holder == in.holder {
		if j.ID == "" { // Finch's quota: try again when it allows
			ow.Holder, ow.Until, ow.NotBefore = "", time.Time{}, maxTime(j.RetryAt, now)
			l.note(now, "resync", "Finch allows the next refresh at "+j.RetryAt.Format(time.RFC3339))
			return outcome{changed: true}
		}
		l.drop(owedResync, "")
		r.JobID, r.Status, r.Started = j.ID, "pending", now
		l.Owed = append(l.Owed, owed{Kind: owedFollow, Episode: r.Episode, NotBefore: now.Add(followFirst)})
		l.note(now, "resync", "Finch's data_sync_all job "+j.ID+" started")
		return outcome{changed: true}
	}
	ow := l.owedItem(owedFollow, "")
	if ow == nil || ow.Holder != in.holder || j.ID != r.JobID {
		return outcome{}
	}
	if j.Status == "pending" || j.Status == "in_progress" {
		r.Status = j.Status
		ow.Tries++
		ow.Holder, ow.Until, ow.NotBefore = "", time.Time{}, now.Add(min(followFirst<<min(ow.Tries, 10), followCap))
		return outcome{changed: true}
	}
	return l.jobEnded(j, in.holder, now, p)
}

// jobEnded records how the job ended, owes the application's being told
// (leased to holder, who read it), and takes a reauth_error or
// permissions_error in as Finch's status.
func (l *life) jobEnded(j finchapi.Job, holder string, now time.Time, p policy) outcome {
	r := l.Resync
	r.Status, r.Ended = j.Status, now
	l.drop(owedFollow, "")
	o := outcome{changed: true}
	tell := owed{Kind: owedSynced, Episode: r.Episode, NotBefore: now}
	l.take(&tell, holder, now, p)
	o.lease(tell)
	l.Owed = append(l.Owed, tell)
	l.note(now, "resync", fmt.Sprintf("job %s ended: %s", j.ID, j.Status))
	if n := needOf(j.Status); n != "" {
		l.setMark(mark{Level: levelConnection, Status: j.Status, At: now, Via: "job"})
		l.Breaks++
	}
	return o
}

func (l *life) onJobDone(in jobDone, now time.Time, p policy) outcome {
	ow := l.owedItem(owedFollow, "")
	if ow == nil || l.Resync == nil || l.Resync.JobID != in.jobID || ow.Holder != "" && now.Before(ow.Until) {
		return outcome{} // not this job's, or its holder reads it already
	}
	ow.NotBefore = now
	var o outcome
	l.take(ow, in.holder, now, p)
	o.lease(*ow)
	o.changed = true
	return o
}

// startJob carries out an owed resync: it asks Finch to start the job.
func (t *Transport) startJob(ctx context.Context, conn string, l life, ow owed) (life, []owed) {
	return t.askJob(ctx, conn, l, ow, func(c finchapi.Client) (finchapi.Job, error) {
		return c.StartJob(ctx, string(l.Token))
	})
}

// followJob carries out an owed follow: it reads the job.
func (t *Transport) followJob(ctx context.Context, conn string, l life, ow owed) (life, []owed) {
	if l.Resync == nil {
		return l, nil
	}
	id := l.Resync.JobID
	return t.askJob(ctx, conn, l, ow, func(c finchapi.Client) (finchapi.Job, error) {
		return c.ReadJob(ctx, string(l.Token), id)
	})
}

func (t *Transport) askJob(ctx context.Context, conn string, l life, ow owed, call func(finchapi.Client) (finchapi.Job, error)) (life, []owed) {
	j, err := callHook(t, ctx, "resync", subject{conn: conn}, func(ctx context.Context) (finchapi.Job, error) {
		if t.apiErr != nil {
			return finchapi.Job{}, t.apiErr
		}
		j, err := call(t.finch(ctx, t.base()))
		return j, apiErrorOf(err)
	})
	if err != nil {
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: ow.Kind, episode: ow.Episode})
		return l, nil
	}
	next, o, err := t.apply(ctx, conn, jobAnswer{holder: ow.Holder, job: j})
	if err != nil {
		return l, nil
	}
	return next, o.run
}

// synced tells the application the data of the reconnected connection is
// fresh (or how the job ended): OnDataSynced.
func (t *Transport) synced(ctx context.Context, conn string, l life, ow owed) []owed {
	var err error
	if f := t.OnDataSynced; f != nil && l.Resync != nil {
		r := Reconnection{ConnectionID: conn, Token: l.Token, Episode: ow.Episode, JobID: l.Resync.JobID,
			SyncStatus: l.Resync.Status, DataFreshAt: l.Resync.Ended}
		if l.Resync.Status != "complete" {
			r.DataFreshAt = time.Time{}
		}
		_, err = callHook(t, ctx, "synced", subject{conn: conn}, func(ctx context.Context) (struct{}, error) {
			f(ctx, r)
			return struct{}{}, nil
		})
	}
	_, o, _ := t.apply(context.WithoutCancel(ctx), conn, done{holder: ow.Holder, kind: owedSynced, episode: ow.Episode, ok: err == nil})
	return o.run
}
