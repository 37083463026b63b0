package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Bounds on what one record keeps.
const (
	maxFingerprints = 16 // the Store's index keeps the older ones
	maxEvents       = 64 // webhook event ids remembered, for deduplication
	maxClaims       = 16 // link states spent at the callback, until they expire
	maxConflicts    = 16 // compare-and-set attempts before giving up
)

// recordData is the Transport's part of a Record, kept in Record.Data as
// JSON. The Store indexes the rest: the token's fingerprints, the open
// episode's start (Record.Since) and when it next needs attention
// (Record.Due).
type recordData struct {
	// Identity is what Finch said of the connection last.
	Identity *Connection `json:"identity,omitempty"`

	Episode *episode `json:"episode,omitempty"` // the open episode
	Ended   *ended   `json:"ended,omitempty"`   // the last one that ended

	// Link is the reconnect link the connection's customer is given, kept
	// until it expires, its state is spent, or the episode ends.
	Link   *link    `json:"link,omitempty"`
	Claims []claim  `json:"claims,omitempty"`
	Events []string `json:"events,omitempty"` // webhook event ids, newest first
}

type episode struct {
	ID     string `json:"id"`
	Source string `json:"source"` // what opened it: "detection" or "webhook"
	// Entities lists the broken entities when a webhook named only some;
	// empty means the whole connection.
	Entities []string  `json:"entities,omitempty"`
	Sent     int       `json:"sent,omitempty"` // notifications sent: the first, then reminders
	LastSent time.Time `json:"last_sent,omitzero"`
	// The notification lease: who holds it and until when.
	Holder string    `json:"holder,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

type ended struct {
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
	Via   string    `json:"via"`
	Sent  int       `json:"sent,omitempty"`
	By    string    `json:"by,omitempty"` // the nonce of the write that ended it
}

type link struct {
	URL     string    `json:"url"`
	Nonce   string    `json:"nonce,omitempty"`  // of the state it carries, when Connect minted it
	Expires time.Time `json:"expires,omitzero"` // zero: good while the episode lasts
}

// claim is a link state that reached the callback: how many times a code
// came back with it, and whether one of them reconnected.
type claim struct {
	Nonce    string    `json:"nonce"`
	Expires  time.Time `json:"expires"` // the state's own expiry
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started"`        // the last attempt
	Busy     bool      `json:"busy,omitempty"` // an attempt is under way
	Done     bool      `json:"done,omitempty"`
	Reported bool      `json:"reported,omitempty"` // an abandoned attempt was reported
}

func (d *recordData) claim(nonce string) *claim {
	for i := range d.Claims {
		if d.Claims[i].Nonce == nonce {
			return &d.Claims[i]
		}
	}
	return nil
}

// linkFor returns the episode's link if it is good at now.
func (d *recordData) linkFor(now time.Time, margin time.Duration) string {
	if d.Link == nil || (!d.Link.Expires.IsZero() && !now.Before(d.Link.Expires.Add(-margin))) {
		return ""
	}
	return d.Link.URL
}

func decodeRecord(r Record) (recordData, error) {
	var d recordData
	if len(r.Data) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return d, fmt.Errorf("finchreauth: the record of %s is unreadable: %w", r.ConnectionID, err)
	}
	return d, nil
}

// load returns the connection's record, or a new one.
func (t *Transport) load(ctx context.Context, conn string) (Record, recordData, error) {
	r, err := storeStep(t, ctx, subject{conn: conn}, func(ctx context.Context, s Store) (Record, error) {
		return s.Get(ctx, conn)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Record{ConnectionID: conn}, recordData{}, nil
	case err != nil:
		return Record{}, recordData{}, err
	}
	d, err := decodeRecord(r)
	if err != nil {
		t.report(ctx, &HookError{Hook: "store", ConnectionID: conn, Err: err})
	}
	return r, d, err
}

// put writes r with d as its Data: a compare-and-set on r.Version.
func (t *Transport) put(ctx context.Context, r Record, d recordData) (Record, error) {
	d.prune(t.now())
	data, err := json.Marshal(d)
	if err != nil {
		return r, err
	}
	r.Data = data
	r.Since, r.Due = r.Since.Truncate(time.Microsecond), r.Due.Truncate(time.Microsecond)
	v, err := storeStep(t, ctx, subject{conn: r.ConnectionID}, func(ctx context.Context, s Store) (int64, error) {
		return s.Put(ctx, r)
	})
	if err != nil {
		return r, err
	}
	r.Version = v
	return r, nil
}

// update reads the connection's record, lets change modify it and writes it
// back, again from a fresh read when another write came first. change
// reports false to write nothing; it may be called several times.
func (t *Transport) update(ctx context.Context, conn string, change func(r *Record, d *recordData) (bool, error)) (Record, recordData, error) {
	for range maxConflicts {
		r, d, err := t.load(ctx, conn)
		if err != nil {
			return r, d, err
		}
		write, err := change(&r, &d)
		if err != nil || !write {
			return r, d, err
		}
		r, err = t.put(ctx, r, d)
		if !errors.Is(err, ErrConflict) {
			return r, d, err
		}
	}
	err := fmt.Errorf("finchreauth: the record of %s kept changing under %d writes", conn, maxConflicts)
	t.report(ctx, &HookError{Hook: "store", ConnectionID: conn, Err: err})
	return Record{}, recordData{}, err
}

// prune drops what the record no longer needs.
func (d *recordData) prune(now time.Time) {
	d.Claims = slices.DeleteFunc(d.Claims, func(c claim) bool { return !now.Before(c.Expires) })
	if n := len(d.Claims); n > maxClaims {
		d.Claims = d.Claims[n-maxClaims:]
	}
	if len(d.Events) > maxEvents {
		d.Events = d.Events[:maxEvents]
	}
}

// addFingerprint puts fp first in r's list.
func addFingerprint(r *Record, fp string) {
	r.Fingerprints = slices.Insert(slices.DeleteFunc(r.Fingerprints, func(x string) bool { return x == fp }), 0, fp)
	if len(r.Fingerprints) > maxFingerprints {
		r.Fingerprints = r.Fingerprints[:maxFingerprints]
	}
}

// knows reports whether fp is in r's list.
func knows(r *Record, fp string) bool { return slices.Contains(r.Fingerprints, fp) }

// each calls fn with the readable records q selects, in q's order, reading
// the Store page records at a time, until fn returns false or the listing
// ends. A record the Store could not read (Record.Err) or whose Data does not
// decode costs that record alone: it is reported to the ErrorHandler, counted
// as finchreauth.unreadable, and skipped. each returns the error of a page
// that could not be read at all, or ctx's.
func (t *Transport) each(ctx context.Context, q Query, fn func(Record, recordData) bool) error {
	for {
		recs, err := storeStep(t, ctx, subject{}, func(ctx context.Context, s Store) ([]Record, error) { return s.List(ctx, q) })
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			var d recordData
			if r.Err == nil {
				d, err = decodeRecord(r)
			} else {
				err = r.Err
			}
			if err != nil {
				t.count(ctx, "finchreauth.unreadable", "")
				t.report(ctx, &HookError{Hook: "store", ConnectionID: r.ConnectionID, Err: err})
				continue
			}
			if !fn(r, d) {
				return nil
			}
		}
		if len(recs) < q.Limit {
			return nil
		}
		last := recs[len(recs)-1]
		q.AfterTime, q.AfterID = last.Since, last.ConnectionID
		if !q.DueBy.IsZero() {
			q.AfterTime = last.Due
		}
	}
}
