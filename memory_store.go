package finchreauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// MemoryStore is a Store held in the memory of one process: a map under a
// mutex, and the records whose Since or Due is set in (time, connection id)
// order, as the shared stores index them, so that a page of List costs the
// page, however many records the store holds. Use it for a single replica
// and in tests; use a shared store when several processes talk to Finch.
// The zero value is ready to use.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string]Record // connection id -> record
	index   map[string]string // fingerprint -> connection id
	since   timeline          // the records whose Since is set
	due     timeline          // the records whose Due is set
	all     timeline          // every record, at the zero time: by connection id
}

var _ Store = (*MemoryStore)(nil)

// String describes s without the tokens it holds.
func (s *MemoryStore) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("finchreauth.MemoryStore{records:%d}", len(s.records))
}

// Format implements fmt.Formatter: every verb prints s.String() (fmt would
// print the tokens in s's unexported map as they are).
func (s *MemoryStore) Format(f fmt.State, verb rune) { io.WriteString(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s *MemoryStore) LogValue() slog.Value { return slog.StringValue(s.String()) }

var errEmptyID = errors.New("finchreauth: empty connection id or fingerprint")

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, connectionID string) (Record, error) {
	if err := check(ctx, connectionID); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[connectionID]
	if !ok {
		return Record{}, ErrNotFound
	}
	return r.clone(), nil
}

// Put implements Store.
func (s *MemoryStore) Put(ctx context.Context, rec Record) (int64, error) {
	if err := check(ctx, rec.ConnectionID); err != nil {
		return 0, err
	}
	for _, fp := range rec.Fingerprints {
		if fp == "" {
			return 0, errEmptyID
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records[rec.ConnectionID].Version != rec.Version {
		return 0, ErrConflict
	}
	if s.records == nil {
		s.records, s.index = map[string]Record{}, map[string]string{}
	}
	rec = rec.clone()
	rec.Version++
	old, existed := s.records[rec.ConnectionID]
	if !existed {
		s.all.insert(place{id: rec.ConnectionID})
	}
	s.since.move(rec.ConnectionID, old.Since, rec.Since)
	s.due.move(rec.ConnectionID, old.Due, rec.Due)
	s.records[rec.ConnectionID] = rec
	for _, fp := range rec.Fingerprints {
		s.index[fp] = rec.ConnectionID
	}
	return rec.Version, nil
}

// Lookup implements Store.
func (s *MemoryStore) Lookup(ctx context.Context, fingerprint string) (string, error) {
	if err := check(ctx, fingerprint); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.index[fingerprint]
	if !ok {
		return "", ErrNotFound
	}
	return id, nil
}

// List implements Store: it walks the timeline q orders by from its cursor,
// and stops at the page's end.
func (s *MemoryStore) List(ctx context.Context, q Query) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, errors.New("finchreauth: Query.Limit must be positive")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	line, from := &s.since, place{q.AfterTime, q.AfterID}
	switch {
	case !q.DueBy.IsZero():
		line = &s.due
	case q.Every:
		line, from = &s.all, place{id: q.AfterID}
	}
	out := make([]Record, 0, min(q.Limit, len(s.records)))
	line.ascend(from, func(m place) bool {
		if !q.DueBy.IsZero() && m.at.After(q.DueBy) {
			return false
		}
		out = append(out, s.records[m.id].clone())
		return len(out) < q.Limit
	})
	return out, nil
}

func check(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" {
		return errEmptyID
	}
	return nil
}

// clone copies r's slices, so that neither the caller nor the store sees
// the other's later changes.
func (r Record) clone() Record {
	r.Fingerprints = slices.Clone(r.Fingerprints)
	r.Data = slices.Clone(r.Data)
	return r
}

// place is a record's place in a timeline: a time, then its connection id.
type place struct {
	at time.Time
	id string
}

func (m place) compare(o place) int { return cmp.Or(m.at.Compare(o.at), cmp.Compare(m.id, o.id)) }

// chunkMax is how many places a chunk of a timeline holds at most.
const chunkMax = 512

// timeline holds places in order, in chunks of at most chunkMax: adding or
// removing one moves the places of its chunk and the list of chunks, never
// every place. Its zero value is empty; the MemoryStore's mutex guards it.
type timeline struct{ chunks [][]place }

// move moves id's place from the time from to the time to; a zero time is
// no place.
func (l *timeline) move(id string, from, to time.Time) {
	if from.Equal(to) {
		return
	}
	if !from.IsZero() {
		l.remove(place{from, id})
	}
	if !to.IsZero() {
		l.insert(place{to, id})
	}
}

// find returns where m is or would go: the first chunk whose last place does
// not sort before m, and the place in it (len(l.chunks), 0 past the end).
func (l *timeline) find(m place) (c, i int) {
	c = sort.Search(len(l.chunks), func(c int) bool { return l.chunks[c][len(l.chunks[c])-1].compare(m) >= 0 })
	if c < len(l.chunks) {
		i, _ = slices.BinarySearchFunc(l.chunks[c], m, place.compare)
	}
	return c, i
}

func (l *timeline) insert(m place) {
	c, i := l.find(m)
	if c == len(l.chunks) { // past the end: onto the last chunk, or a new one
		if c == 0 {
			l.chunks = append(l.chunks, nil)
		} else {
			c, i = c-1, len(l.chunks[c-1])
		}
	}
	l.chunks[c] = slices.Insert(l.chunks[c], i, m)
	if n := len(l.chunks[c]); n > chunkMax {
		right := slices.Clone(l.chunks[c][n/2:])
		l.chunks[c] = slices.Clip(l.chunks[c][:n/2])
		l.chunks = slices.Insert(l.chunks, c+1, right)
	}
}

func (l *timeline) remove(m place) {
	c, i := l.find(m)
	if c == len(l.chunks) || l.chunks[c][i].compare(m) != 0 {
		return
	}
	l.chunks[c] = slices.Delete(l.chunks[c], i, i+1)
	switch n := len(l.chunks[c]); {
	case n == 0:
		l.chunks = slices.Delete(l.chunks, c, c+1)
	case n < chunkMax/4 && c+1 < len(l.chunks) && n+len(l.chunks[c+1]) <= chunkMax:
		// A small chunk joins its successor, so that chunks stay few.
		l.chunks[c] = append(l.chunks[c], l.chunks[c+1]...)
		l.chunks = slices.Delete(l.chunks, c+1, c+2)
	}
}

// ascend calls fn with each place after from, in order, until fn returns
// false.
func (l *timeline) ascend(from place, fn func(place) bool) {
	for c, i := l.find(from); c < len(l.chunks); c, i = c+1, 0 {
		for _, m := range l.chunks[c][i:] {
			if m.compare(from) > 0 && !fn(m) {
				return
			}
		}
	}
}
