package finchreauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
)

// MemoryStore is a Store held in the memory of one process: a map under a
// mutex. Use it for a single replica and in tests; use a shared store when
// several processes talk to Finch. The zero value is ready to use.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string]Record // connection id -> record
	index   map[string]string // fingerprint -> connection id
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

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return new(MemoryStore) }

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

// List implements Store. It scans every record: fine for the one process
// a MemoryStore serves.
func (s *MemoryStore) List(ctx context.Context, q Query) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, errors.New("finchreauth: Query.Limit must be positive")
	}
	s.mu.Lock()
	var out []Record
	for _, r := range s.records {
		if q.matches(r) && q.after(r) {
			out = append(out, r) // cloned below, once cut to Limit
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int {
		ta, tb := a.Since, b.Since
		if !q.DueBy.IsZero() {
			ta, tb = a.Due, b.Due
		}
		return cmp.Or(ta.Compare(tb), cmp.Compare(a.ConnectionID, b.ConnectionID))
	})
	out = out[:min(len(out), q.Limit)]
	for i := range out {
		out[i] = out[i].clone()
	}
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
