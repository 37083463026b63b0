package finchreauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// A connection's Record holds its life: Token and Fingerprints in the
// Record's own fields, the rest as JSON in Data, and Since and Due derived
// from it. The Transport changes a record only through apply: load, step,
// compare-and-set.

// lifeOf decodes r. A record written by an earlier release is upgraded: its
// open episode gets the marks and the owed notification that it implies.
func lifeOf(r Record) (life, error) {
	var l life
	if len(r.Data) > 0 {
		if err := json.Unmarshal(r.Data, &l); err != nil {
			return life{}, fmt.Errorf("finchreauth: the record of %s is unreadable: %w", quoteID(r.ConnectionID), err)
		}
	}
	l.Token, l.Fingerprints = r.Token, r.Fingerprints
	if e := l.Episode; e != nil && e.Need == "" {
		upgrade(&l, r)
	}
	return l, nil
}

// upgrade fills in what an episode recorded by the release before the
// state machine lacks: when it began, what it needs, the status that
// opened it, and its next notification (due when the record was).
func upgrade(l *life, r Record) {
	e := l.Episode
	e.Since, e.Need = r.Since, statusReauth
	if len(e.Entities) == 0 {
		l.setMark(mark{Level: levelConnection, Status: statusReauth, At: r.Since, Via: e.Source})
	}
	for _, id := range e.Entities {
		l.setMark(mark{Level: levelEntity, ID: id, Status: statusReauth, At: r.Since, Via: e.Source})
	}
	if r.Due.IsZero() && e.Sent > 0 {
		return // every reminder was sent
	}
	at := r.Due
	if at.IsZero() {
		at = r.Since
	}
	l.Owed = append(l.Owed, owed{Kind: owedNotify, Episode: e.ID, Reminder: e.Sent, NotBefore: at})
}

// into writes l into r, deriving Since and Due.
func (l life) into(r Record) (Record, error) {
	data, err := json.Marshal(l)
	if err != nil {
		return r, err
	}
	r.Token, r.Fingerprints, r.Data = l.Token, l.Fingerprints, data
	r.Since, r.Due = l.since().Truncate(time.Microsecond), l.due().Truncate(time.Microsecond)
	return r, nil
}

// load returns the connection's record and its life, or a new one.
func (t *Transport) load(ctx context.Context, conn string) (Record, life, error) {
	r, err := storeCall(t, ctx, subject{conn: conn}, func(ctx context.Context, s Store) (Record, error) {
		return s.Get(ctx, conn)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Record{ConnectionID: conn}, life{}, nil
	case err != nil:
		return Record{}, life{}, err
	}
	l, err := lifeOf(r)
	if err != nil {
		t.report(ctx, &HookError{Hook: "store", ConnectionID: conn, Err: err})
	}
	return r, l, err
}

// apply is the one way the Transport changes a connection's record: it
// loads it, steps in, and writes the result with a compare-and-set, again
// from a fresh read when another write came first. It returns the life as
// written (or as read, when the step changed nothing) and the step's
// outcome; o.err is the step's refusal, also returned as the error.
func (t *Transport) apply(ctx context.Context, conn string, in input) (life, outcome, error) {
	if err := checkID(conn); err != nil {
		return life{}, outcome{}, err
	}
	for range maxConflicts {
		r, l, err := t.load(ctx, conn)
		if err != nil {
			return l, outcome{}, err
		}
		next, o := l.step(in, t.now(), t.pol)
		if o.err != nil || !o.changed {
			return next, o, o.err
		}
		if r, err = next.into(r); err != nil {
			return l, outcome{}, err
		}
		_, err = storeCall(t, ctx, subject{conn: conn}, func(ctx context.Context, s Store) (int64, error) {
			return s.Put(ctx, r)
		})
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return l, outcome{}, err
		}
		if o.forget {
			t.latch.forget(conn)
		}
		if next.Token != l.Token && next.Token != "" {
			t.tokens.set(conn, next.Token, t.now()) // Client's next request carries it
		}
		return next, o, nil
	}
	err := fmt.Errorf("finchreauth: the record of %s kept changing under %d writes", quoteID(conn), maxConflicts)
	t.report(ctx, &HookError{Hook: "store", ConnectionID: conn, Err: err})
	return life{}, outcome{}, err
}

// each calls fn with the readable records q selects, in q's order, reading
// the Store q.Limit records at a time, until fn returns false or the
// listing ends. A record the Store could not read (Record.Err) or whose Data
// does not decode costs that record alone: it is reported to the
// ErrorHandler, counted as finchreauth.unreadable, and skipped. each returns
// the error of a page that could not be read at all, or ctx's.
func (t *Transport) each(ctx context.Context, q Query, fn func(Record, life) bool) error {
	for {
		recs, err := storeCall(t, ctx, subject{}, func(ctx context.Context, s Store) ([]Record, error) { return s.List(ctx, q) })
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			var l life
			if err = r.Err; err == nil {
				l, err = lifeOf(r)
			}
			if err != nil {
				t.count(ctx, "finchreauth.unreadable", "")
				t.report(ctx, &HookError{Hook: "store", ConnectionID: r.ConnectionID, Err: err})
				continue
			}
			if !fn(r, l) {
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

// maxIDLen bounds the connection ids the Transport accepts from anyone:
// Finch's are 36-byte UUIDs.
const maxIDLen = 256

var (
	errLongID = fmt.Errorf("finchreauth: connection id longer than %d bytes", maxIDLen)
	errBadID  = errors.New("finchreauth: connection id is not valid UTF-8, or holds a NUL byte")
)

// checkID refuses a connection id the Store contract does not allow (empty,
// not UTF-8, a NUL byte) or longer than maxIDLen.
func checkID(id string) error {
	switch {
	case id == "":
		return errEmptyID
	case len(id) > maxIDLen:
		return errLongID
	case !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0:
		return errBadID
	}
	return nil
}

// quoteID is a connection id as a message may show it: as it is when it is
// plain (letters, digits, punctuation, at most maxIDLen bytes), else quoted
// and escaped so that nothing in it is interpreted by a terminal, and cut.
func quoteID(id string) string {
	plain := len(id) <= maxIDLen
	for i := 0; plain && i < len(id); i++ {
		plain = id[i] > ' ' && id[i] < 0x7f && id[i] != '"' && id[i] != '\\'
	}
	switch {
	case plain:
		return id
	case len(id) > maxIDLen:
		return fmt.Sprintf("%+q...", id[:maxIDLen])
	}
	return fmt.Sprintf("%+q", id)
}
