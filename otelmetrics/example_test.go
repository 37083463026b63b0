package otelmetrics_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/otelmetrics"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func ExampleNew() {
	// In an application, the MeterProvider is the one the program set up
	// with its exporter; here a ManualReader lets the example read it.
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	m, err := otelmetrics.New(provider.Meter("github.com/finchkit/finchreauth"))
	if err != nil {
		panic(err)
	}

	// A fake Finch, whose employer needs to re-authenticate.
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})
	c, _ := s.ConnectionForToken(token)
	s.Break(c.ID)

	tr := &finchreauth.Transport{
		Base:       s.Client().Transport,
		APIBaseURL: s.URL,
		Metrics:    m,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			return nil // send the e-mail here
		}),
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}
	for range 2 {
		req, _ := http.NewRequest("GET", s.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
	}
	tr.Flush(context.Background()) // the handling of the broken token runs on its own

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	var out []string
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					outcome, _ := dp.Attributes.Value(otelmetrics.OutcomeKey)
					out = append(out, fmt.Sprintf("%s %q %d", mt.Name, outcome.AsString(), dp.Value))
				}
			}
		}
	}
	slices.Sort(out)
	fmt.Println(strings.Join(out, "\n"))
	// Output:
	// finchreauth.detections "" 1
	// finchreauth.finch_calls "ok" 1
	// finchreauth.latched "" 1
	// finchreauth.notifications "sent" 1
}
