package otelmetrics_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/finchkit/finchreauth/otelmetrics"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newMetrics returns a Metrics recording to a real SDK MeterProvider, and
// the reader to collect from.
func newMetrics(t testing.TB) (*otelmetrics.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	m, err := otelmetrics.New(provider.Meter("github.com/finchkit/finchreauth/otelmetrics/test"))
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// collect reads every metric the reader holds, by name.
func collect(t testing.TB, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// counts flattens the counters in ms to "name" or "name outcome=X" → value.
// It fails the test on a data point with an attribute other than outcome.
func counts(t testing.TB, ms map[string]metricdata.Metrics) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	for name, m := range ms {
		sum, ok := m.Data.(metricdata.Sum[int64])
		if !ok {
			continue
		}
		if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
			t.Errorf("%s: not a monotonic cumulative sum: %+v", name, sum)
		}
		for _, dp := range sum.DataPoints {
			key := name
			if dp.Attributes.Len() > 1 {
				t.Errorf("%s: attributes %v, want at most outcome", name, dp.Attributes.ToSlice())
			}
			if v, ok := dp.Attributes.Value(otelmetrics.OutcomeKey); ok {
				key += " outcome=" + v.Emit()
			} else if dp.Attributes.Len() > 0 {
				t.Errorf("%s: attributes %v without outcome", name, dp.Attributes.ToSlice())
			}
			out[key] += dp.Value
		}
	}
	return out
}

// lines renders counts sorted, one "key value" a line.
func lines(c map[string]int64) []string {
	var out []string
	for k, v := range c {
		out = append(out, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(out)
	return out
}
