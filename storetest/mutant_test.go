package storetest_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
)

// mutant is a MemoryStore that breaks one rule on purpose: bug names the
// mistake, "" for none. Bugs named "List ..." list in Go (listInGo) rather
// than through the MemoryStore; "List in Go" is that listing without a
// mistake.
type mutant struct {
	bug string
	mem *finchreauth.MemoryStore

	mu    sync.Mutex
	ids   map[string]bool               // connections Put created, for listInGo
	first map[string]finchreauth.Record // each connection's first record
	owner map[string]string             // fingerprint -> connection, for Lookup bugs
	extra map[string]string             // fingerprint -> connection, indexed by a Put that failed
	alias map[string][]byte             // connection -> the caller's Data
}

var _ finchreauth.Store = (*mutant)(nil)

func newMutant(bug string) *mutant {
	return &mutant{
		bug: bug, mem: new(finchreauth.MemoryStore),
		ids: map[string]bool{}, first: map[string]finchreauth.Record{},
		owner: map[string]string{}, extra: map[string]string{}, alias: map[string][]byte{},
	}
}

// context applies the context bugs: it returns the context to call the
// MemoryStore with, or the error to return instead.
func (s *mutant) context(ctx context.Context) (context.Context, error) {
	switch s.bug {
	case "ignores a done context":
		return context.WithoutCancel(ctx), nil
	case "only cancellation counts":
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return context.WithoutCancel(ctx), nil
		}
	case "a done context is a plain error":
		if ctx.Err() != nil {
			return nil, errors.New("mutant: call abandoned")
		}
	}
	return ctx, nil
}

func (s *mutant) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	ctx, err := s.context(ctx)
	if err != nil {
		return finchreauth.Record{}, err
	}
	switch s.bug {
	case "ids fold case":
		id = strings.ToLower(id)
	case "Get of an empty id is ErrNotFound":
		if id == "" {
			return finchreauth.Record{}, finchreauth.ErrNotFound
		}
	}
	r, err := s.mem.Get(ctx, id)
	if err != nil {
		return r, err
	}
	switch s.bug {
	case "Get keeps milliseconds":
		r.Since, r.Due = r.Since.Truncate(time.Millisecond), r.Due.Truncate(time.Millisecond)
	case "the Unix epoch is the zero time":
		for _, t := range []*time.Time{&r.Since, &r.Due} {
			if t.Equal(time.Unix(0, 0)) {
				*t = time.Time{}
			}
		}
	case "zero time is the Unix epoch":
		for _, t := range []*time.Time{&r.Since, &r.Due} {
			if t.IsZero() {
				*t = time.Unix(0, 0)
			}
		}
	case "Get sorts Fingerprints":
		slices.Sort(r.Fingerprints)
	case "Get reports the Version Put was given":
		r.Version--
	case "Get shares the caller's Data":
		s.mu.Lock()
		r.Data = s.alias[id]
		s.mu.Unlock()
	}
	return r, nil
}

func (s *mutant) Put(ctx context.Context, rec finchreauth.Record) (int64, error) {
	ctx, err := s.context(ctx)
	if err != nil {
		return 0, err
	}
	switch s.bug {
	case "ids fold case":
		rec.ConnectionID = strings.ToLower(rec.ConnectionID)
	case "Put of an empty id is ErrNotFound":
		if rec.ConnectionID == "" {
			return 0, finchreauth.ErrNotFound
		}
	case "Put drops empty fingerprints":
		rec.Fingerprints = slices.DeleteFunc(slices.Clone(rec.Fingerprints), func(fp string) bool { return fp == "" })
	case "Put indexes the fingerprints before an empty one":
		if i := slices.Index(rec.Fingerprints, ""); i >= 0 {
			s.index(s.extra, rec.ConnectionID, rec.Fingerprints[:i])
		}
	case "Data kept as text":
		rec.Data = []byte(strings.ToValidUTF8(string(rec.Data), "\uFFFD"))
	case "an update keeps the Token when given none":
		if cur, err := s.mem.Get(ctx, rec.ConnectionID); err == nil && rec.Token == "" {
			rec.Token = cur.Token
		}
	case "Put ignores Version":
		return s.force(ctx, rec)
	case "Put accepts a future Version":
		if rec.Version > s.version(ctx, rec.ConnectionID) {
			return s.force(ctx, rec)
		}
	case "Put of Version 0 overwrites":
		if rec.Version == 0 {
			return s.force(ctx, rec)
		}
	case "Put creates at any Version":
		if _, err := s.mem.Get(ctx, rec.ConnectionID); errors.Is(err, finchreauth.ErrNotFound) {
			rec.Version = 0
		}
	case "check then act":
		if s.version(ctx, rec.ConnectionID) != rec.Version {
			return 0, finchreauth.ErrConflict
		}
		time.Sleep(time.Millisecond) // as long as a round trip
		return s.force(ctx, rec)
	case "a done Put still writes":
		if err := ctx.Err(); err != nil {
			s.mem.Put(context.WithoutCancel(ctx), rec)
			return 0, err
		}
	}
	v, err := s.mem.Put(ctx, rec)
	switch {
	case err == nil:
		s.stored(rec)
		if s.bug == "Put returns the Version it was given" {
			return rec.Version, nil
		}
	case errors.Is(err, finchreauth.ErrConflict) && s.bug == "a conflicting Put indexes its fingerprints":
		s.index(s.extra, rec.ConnectionID, rec.Fingerprints)
	case errors.Is(err, finchreauth.ErrConflict) && s.bug == "a conflict is another error, naming the token":
		return 0, fmt.Errorf("mutant: lost the race to save token %s", string(rec.Token))
	}
	return v, err
}

// version returns the stored Version of id, 0 if none.
func (s *mutant) version(ctx context.Context, id string) int64 {
	r, _ := s.mem.Get(ctx, id)
	return r.Version
}

// force stores rec whatever the stored Version.
func (s *mutant) force(ctx context.Context, rec finchreauth.Record) (int64, error) {
	for {
		rec.Version = s.version(ctx, rec.ConnectionID)
		v, err := s.mem.Put(ctx, rec)
		if err == nil {
			s.stored(rec)
		}
		if !errors.Is(err, finchreauth.ErrConflict) {
			return v, err
		}
	}
}

// stored notes a successful Put of rec.
func (s *mutant) stored(rec finchreauth.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[rec.ConnectionID] = true
	if _, ok := s.first[rec.ConnectionID]; !ok {
		s.first[rec.ConnectionID] = rec
	}
	s.alias[rec.ConnectionID] = rec.Data
	switch s.bug {
	case "Lookup keeps the first owner":
		for _, fp := range rec.Fingerprints {
			if _, ok := s.owner[fp]; !ok {
				s.owner[fp] = rec.ConnectionID
			}
		}
	case "Lookup indexes only the newest fingerprint":
		if len(rec.Fingerprints) > 0 {
			s.owner[rec.Fingerprints[0]] = rec.ConnectionID
		}
	}
}

func (s *mutant) index(m map[string]string, id string, fps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fp := range fps {
		m[fp] = id
	}
}

func (s *mutant) Lookup(ctx context.Context, fp string) (string, error) {
	ctx, err := s.context(ctx)
	if err != nil {
		return "", err
	}
	if s.bug == "Lookup of an empty fingerprint is ErrNotFound" && fp == "" {
		return "", finchreauth.ErrNotFound
	}
	id, err := s.mem.Lookup(ctx, fp)
	if err != nil && !errors.Is(err, finchreauth.ErrNotFound) {
		return id, err
	}
	s.mu.Lock()
	owner, owned := s.owner[fp]
	extra, indexed := s.extra[fp]
	s.mu.Unlock()
	switch s.bug {
	case "Lookup keeps the first owner", "Lookup indexes only the newest fingerprint":
		if !owned {
			return "", finchreauth.ErrNotFound
		}
		return owner, nil
	case "Lookup forgets dropped fingerprints":
		if err == nil {
			if r, err := s.mem.Get(ctx, id); err != nil || !slices.Contains(r.Fingerprints, fp) {
				return "", finchreauth.ErrNotFound
			}
		}
	case "a Lookup miss is no error":
		if err != nil {
			return "", nil
		}
	}
	if err != nil && indexed {
		return extra, nil
	}
	return id, err
}

func (s *mutant) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	ctx, err := s.context(ctx)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(s.bug, "List ") {
		return s.listInGo(ctx, q)
	}
	return s.mem.List(ctx, q)
}

// listInGo lists the connections Put created, selecting and ordering them
// in Go as Query's documentation says, but for s.bug.
func (s *mutant) listInGo(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 && s.bug != "List of Limit 0 lists everything" {
		return nil, errors.New("mutant: Limit must be positive")
	}
	s.mu.Lock()
	ids := slices.Collect(maps.Keys(s.ids))
	first := maps.Clone(s.first)
	s.mu.Unlock()

	type row struct {
		at, sortAt time.Time
		r          finchreauth.Record
	}
	var rows []row
	for _, id := range ids {
		r, err := s.mem.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		idx := r // what the index holds
		if s.bug == "List keeps the first Put's times" {
			idx = first[id]
		}
		at, cursorAt, sortAt := idx.Since, idx.Since, idx.Since
		if q.Every && q.DueBy.IsZero() && s.bug != "List of Every lists the open episodes" {
			// By id alone: every record is at the same (zero) time.
			at, cursorAt, sortAt = time.Unix(0, 0), time.Time{}, time.Time{}
			if s.bug == "List of Every honours AfterTime" {
				cursorAt = idx.Since
			}
		} else if !q.DueBy.IsZero() {
			at, sortAt = idx.Due, idx.Due
			if s.bug != "List pages DueBy by Since" {
				cursorAt = idx.Due
			}
		} else if s.bug == "List orders the Since list by Due" {
			sortAt = idx.Due
		}
		sel := !at.IsZero()
		switch s.bug {
		case "List selects a zero Since":
			sel = sel || q.DueBy.IsZero()
		case "List selects a zero Due":
			sel = sel || !q.DueBy.IsZero()
		}
		if !q.DueBy.IsZero() {
			if s.bug == "List excludes a Due equal to DueBy" {
				sel = sel && at.Before(q.DueBy)
			} else {
				sel = sel && !at.After(q.DueBy)
			}
		}
		if sel && s.after(cursorAt, id, q) {
			if s.bug == "List leaves out Data" {
				r.Data = nil
			}
			rows = append(rows, row{at, sortAt, r})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return s.compare(a.sortAt, a.r.ConnectionID, b.sortAt, b.r.ConnectionID)
	})
	n := q.Limit
	switch {
	case s.bug == "List ignores Limit", n <= 0:
		n = len(rows)
	case s.bug == "List comes up short" && n > 1 && len(rows) >= n:
		n--
	}
	var out []finchreauth.Record
	for _, row := range rows[:min(n, len(rows))] {
		out = append(out, row.r)
	}
	return out, nil
}

// after reports whether (at, id) sorts after q's cursor.
func (s *mutant) after(at time.Time, id string, q finchreauth.Query) bool {
	if q.Every && q.DueBy.IsZero() && s.bug != "List of Every lists the open episodes" && s.bug != "List of Every honours AfterTime" {
		q.AfterTime = time.Time{}
	}
	switch s.bug {
	case "List includes the cursor":
		return s.compare(at, id, q.AfterTime, q.AfterID) >= 0
	case "List cursor ignores AfterID":
		return s.compareTimes(at, q.AfterTime) > 0
	}
	return s.compare(at, id, q.AfterTime, q.AfterID) > 0
}

func (s *mutant) compare(at1 time.Time, id1 string, at2 time.Time, id2 string) int {
	if c := s.compareTimes(at1, at2); c != 0 {
		return c
	}
	switch s.bug {
	case "List breaks ties by descending id":
		return strings.Compare(id2, id1)
	case "List breaks ties with case folded":
		return cmp.Or(strings.Compare(strings.ToLower(id1), strings.ToLower(id2)), strings.Compare(id1, id2))
	}
	return strings.Compare(id1, id2)
}

func (s *mutant) compareTimes(a, b time.Time) int {
	switch s.bug {
	case "List compares milliseconds":
		a, b = a.Truncate(time.Millisecond), b.Truncate(time.Millisecond)
	case "List compares wall clocks":
		a, b = wallClock(a), wallClock(b)
	}
	return a.Compare(b)
}

// wallClock returns the UTC instant that reads as t reads in its location.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// liberties is a MemoryStore that takes every liberty the contract allows:
// times back in another location, nil and empty slices swapped, errors
// wrapped. The suite must pass it.
type liberties struct{ mem *finchreauth.MemoryStore }

var elsewhere = time.FixedZone("elsewhere", 3*3600+30*60)

func (s liberties) out(r finchreauth.Record) finchreauth.Record {
	r.Since, r.Due = r.Since.In(elsewhere), r.Due.In(elsewhere)
	if len(r.Fingerprints) == 0 {
		if r.Fingerprints == nil {
			r.Fingerprints = []string{}
		} else {
			r.Fingerprints = nil
		}
	}
	if len(r.Data) == 0 {
		if r.Data == nil {
			r.Data = []byte{}
		} else {
			r.Data = nil
		}
	}
	return r
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("liberties: %w", err)
}

func (s liberties) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	r, err := s.mem.Get(ctx, id)
	return s.out(r), wrap(err)
}

func (s liberties) Put(ctx context.Context, rec finchreauth.Record) (int64, error) {
	rec.Since, rec.Due = rec.Since.Truncate(time.Microsecond).UTC(), rec.Due.Truncate(time.Microsecond).UTC()
	v, err := s.mem.Put(ctx, rec)
	return v, wrap(err)
}

func (s liberties) Lookup(ctx context.Context, fp string) (string, error) {
	id, err := s.mem.Lookup(ctx, fp)
	return id, wrap(err)
}

func (s liberties) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	recs, err := s.mem.List(ctx, q)
	for i := range recs {
		recs[i] = s.out(recs[i])
	}
	return recs, wrap(err)
}
