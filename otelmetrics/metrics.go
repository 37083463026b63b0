package otelmetrics

import (
	"context"
	"errors"
	"sync"

	"github.com/finchkit/finchreauth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// OutcomeKey is the attribute that carries a count's outcome.
const OutcomeKey = attribute.Key("outcome")

// reconnectBuckets returns the bucket boundaries, in seconds, of the
// histograms: a customer reconnects within minutes of the first
// notification, within hours, after one of the reminders (by default at one,
// three and seven days), or weeks later.
func reconnectBuckets() []float64 {
	const minute, hour, day = 60, 3600, 86400
	return []float64{
		minute, 5 * minute, 15 * minute, 30 * minute,
		hour, 3 * hour, 6 * hour, 12 * hour,
		day, 2 * day, 3 * day, 7 * day, 14 * day, 28 * day,
	}
}

// counterSpec describes one counter that finchreauth.Metrics lists.
type counterSpec struct {
	name, unit, desc string
	outcomes         []string
}

func counterSpecs() []counterSpec {
	return []counterSpec{
		{"finchreauth.detections", "{response}",
			"Answers 401 reauthenticate_user from Finch.", nil},
		{"finchreauth.detections.collapsed", "{response}",
			"Answers 401 reauthenticate_user from Finch that joined a handling in flight.", nil},
		{"finchreauth.latched", "{request}",
			"Requests answered from the latch, without calling Finch.", nil},
		{"finchreauth.notifications", "{notification}",
			"First notifications of an episode, by outcome.", []string{"sent", "failed"}},
		{"finchreauth.reminders", "{reminder}",
			"Reminders of an episode, by outcome.", []string{"sent", "failed"}},
		{"finchreauth.reconnects", "{reconnect}",
			"Episodes ended, by what ended them.", []string{"callback", "save", "webhook"}},
		{"finchreauth.finch_calls", "{call}",
			"The library's own calls to Finch, by outcome.",
			[]string{"ok", "client_error", "rate_limited", "server_error", "network", "cancelled"}},
	}
}

const (
	reconnectName = "finchreauth.time_to_reconnect"
	reconnectDesc = "Time from the start of a connection's episode to its end."
)

// Metrics is a finchreauth.Metrics that records to OpenTelemetry
// instruments. It is safe for concurrent use.
//
// Count for a name that finchreauth.Metrics lists, with an outcome it lists
// (or none), does not allocate. Another outcome is recorded all the same,
// building its attribute per call. Another name gets, on its first use, an
// Int64Counter (Count) or a Float64Histogram in seconds (Observe) of that
// name; should the Meter refuse the name, its measurements are dropped.
type Metrics struct {
	meter    metric.Meter
	counters map[string]*counter // the listed names; read-only after New
	hists    map[string]metric.Float64Histogram
	// Instruments for names not listed, made on first use: name →
	// *counter and name → metric.Float64Histogram; nil when the Meter
	// refused the name.
	lazyCounters, lazyHists sync.Map
}

var _ finchreauth.Metrics = (*Metrics)(nil)

// counter is an Int64Counter and the options that record each of its known
// outcomes, made once.
type counter struct {
	c    metric.Int64Counter
	opts map[string][]metric.AddOption // by outcome; "" has none
}

// New creates the instruments for the names finchreauth.Metrics lists from
// meter, and returns a Metrics that records to them. It fails if meter
// fails to create one of them.
func New(meter metric.Meter) (*Metrics, error) {
	if meter == nil {
		return nil, errors.New("otelmetrics: New's meter is nil")
	}
	m := &Metrics{
		meter:    meter,
		counters: make(map[string]*counter),
		hists:    make(map[string]metric.Float64Histogram),
	}
	var errs []error
	for _, s := range counterSpecs() {
		c, err := newCounter(meter, s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range s.outcomes {
			c.opts[o] = outcomeOptions(o)
		}
		m.counters[s.name] = c
	}
	h, err := meter.Float64Histogram(reconnectName, metric.WithUnit("s"),
		metric.WithDescription(reconnectDesc), metric.WithExplicitBucketBoundaries(reconnectBuckets()...))
	if err != nil {
		errs = append(errs, err)
	} else {
		m.hists[reconnectName] = h
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(errors.New("otelmetrics: creating instruments"), err)
	}
	return m, nil
}

func newCounter(meter metric.Meter, name string, opts ...metric.Int64CounterOption) (*counter, error) {
	c, err := meter.Int64Counter(name, opts...)
	if err != nil {
		return nil, err
	}
	return &counter{c: c, opts: map[string][]metric.AddOption{"": nil}}, nil
}

func outcomeOptions(outcome string) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(OutcomeKey.String(outcome)))}
}

// Count adds n to the counter name, with the attribute outcome unless
// outcome is "".
func (m *Metrics) Count(ctx context.Context, name, outcome string, n int64) {
	c := m.counter(name)
	if c == nil {
		return
	}
	opts, ok := c.opts[outcome]
	if !ok {
		opts = outcomeOptions(outcome)
	}
	c.c.Add(ctx, n, opts...)
}

// Observe records seconds in the histogram name.
func (m *Metrics) Observe(ctx context.Context, name string, seconds float64) {
	if h := m.histogram(name); h != nil {
		h.Record(ctx, seconds)
	}
}

// counter returns the counter for name, creating it on first use if New did
// not; nil if the Meter refuses it.
func (m *Metrics) counter(name string) *counter {
	if c, ok := m.counters[name]; ok {
		return c
	}
	if v, ok := m.lazyCounters.Load(name); ok {
		c, _ := v.(*counter)
		return c
	}
	c, err := newCounter(m.meter, name)
	if err != nil {
		c = nil
	}
	v, _ := m.lazyCounters.LoadOrStore(name, c)
	c, _ = v.(*counter)
	return c
}

// histogram is counter's twin for histograms.
func (m *Metrics) histogram(name string) metric.Float64Histogram {
	if h, ok := m.hists[name]; ok {
		return h
	}
	if v, ok := m.lazyHists.Load(name); ok {
		h, _ := v.(metric.Float64Histogram)
		return h
	}
	h, err := m.meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(reconnectBuckets()...))
	if err != nil {
		h = nil
	}
	v, _ := m.lazyHists.LoadOrStore(name, h)
	h, _ = v.(metric.Float64Histogram)
	return h
}
