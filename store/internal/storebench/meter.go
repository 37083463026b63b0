package storebench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Meter is a Store that times every call to the Store it wraps: how many
// there were, how long they took (a Transport's step includes the wait for a
// connection of the driver's pool), how many were in flight at once, and
// how many failed other than with ErrNotFound or ErrConflict. Wrap the store
// of a run whose own figures may not come out (stormfinch.RunMass stops the
// benchmark on its first failed check) and log it from b.Cleanup.
type Meter struct {
	finchreauth.Store

	inFlight, peak atomic.Int64
	failed         atomic.Int64
	conflicts      atomic.Int64
	deadline       atomic.Int64 // failures that are context.DeadlineExceeded
	mu             sync.Mutex
	lat            []time.Duration
	firstErr       error
}

// NewMeter wraps s.
func NewMeter(s finchreauth.Store) *Meter { return &Meter{Store: s} }

func (m *Meter) observe(t0 time.Time, err error) {
	d := time.Since(t0)
	m.inFlight.Add(-1)
	switch {
	case err == nil, errors.Is(err, finchreauth.ErrNotFound):
	case errors.Is(err, finchreauth.ErrConflict):
		m.conflicts.Add(1)
	default:
		m.failed.Add(1)
		if errors.Is(err, context.DeadlineExceeded) {
			m.deadline.Add(1)
		}
	}
	m.mu.Lock()
	m.lat = append(m.lat, d)
	if err != nil && m.firstErr == nil && !errors.Is(err, finchreauth.ErrNotFound) && !errors.Is(err, finchreauth.ErrConflict) {
		m.firstErr = err
	}
	m.mu.Unlock()
}

func (m *Meter) start() time.Time {
	if n := m.inFlight.Add(1); n > m.peak.Load() {
		for {
			p := m.peak.Load()
			if n <= p || m.peak.CompareAndSwap(p, n) {
				break
			}
		}
	}
	return time.Now()
}

// Get implements finchreauth.Store.
func (m *Meter) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	t0 := m.start()
	r, err := m.Store.Get(ctx, id)
	m.observe(t0, err)
	return r, err
}

// Put implements finchreauth.Store.
func (m *Meter) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	t0 := m.start()
	v, err := m.Store.Put(ctx, r)
	m.observe(t0, err)
	return v, err
}

// Lookup implements finchreauth.Store.
func (m *Meter) Lookup(ctx context.Context, fp string) (string, error) {
	t0 := m.start()
	id, err := m.Store.Lookup(ctx, fp)
	m.observe(t0, err)
	return id, err
}

// List implements finchreauth.Store.
func (m *Meter) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	t0 := m.start()
	recs, err := m.Store.List(ctx, q)
	m.observe(t0, err)
	return recs, err
}

// Reset forgets the calls so far. Call it while no call is in flight.
func (m *Meter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peak.Store(0)
	m.failed.Store(0)
	m.conflicts.Store(0)
	m.deadline.Store(0)
	m.lat, m.firstErr = nil, nil
}

// Dist returns the calls' latency distribution so far.
func (m *Meter) Dist() Dist {
	m.mu.Lock()
	d := slices.Clone(m.lat)
	m.mu.Unlock()
	return distOf(d)
}

func (m *Meter) String() string {
	s := fmt.Sprintf("store calls: %s; at most %d in flight; %d conflicts; %d failed (%d past their deadline)",
		m.Dist(), m.peak.Load(), m.conflicts.Load(), m.failed.Load(), m.deadline.Load())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.firstErr != nil {
		s += "; first failure: " + redact(m.firstErr).Error()
	}
	return s
}

// Report adds the Meter's figures to b: store-calls, store-p50-ms,
// store-p99-ms, store-max-ms, store-peak-calls, store-failures.
func (m *Meter) Report(b *testing.B) {
	d := m.Dist()
	b.ReportMetric(float64(d.N), "store-calls")
	b.ReportMetric(float64(d.P50)/1e6, "store-p50-ms")
	b.ReportMetric(float64(d.P99)/1e6, "store-p99-ms")
	b.ReportMetric(float64(d.Max)/1e6, "store-max-ms")
	b.ReportMetric(float64(m.peak.Load()), "store-peak-calls")
	b.ReportMetric(float64(m.failed.Load()), "store-failures")
}
