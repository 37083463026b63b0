// Package otelmetrics reports a finchreauth.Transport's metrics to
// OpenTelemetry.
//
// It lives in a module of its own, so that finchreauth itself does not
// depend on OpenTelemetry. Make a Metrics from a metric.Meter and set it as
// the Transport's Metrics:
//
//	m, err := otelmetrics.New(provider.Meter("github.com/finchkit/finchreauth"))
//	if err != nil {
//		return err
//	}
//	tr := &finchreauth.Transport{Metrics: m}
//
// New creates one instrument per name that finchreauth.Metrics lists: an
// Int64Counter for each counter, whose outcome ("sent", "ok", ...) becomes
// the attribute "outcome", left off when the Transport gives none, and a
// Float64Histogram, in seconds, for finchreauth.time_to_reconnect, with
// buckets from a minute to four weeks. A name that New does not know (one
// added by a later finchreauth) gets an instrument of its own on first use.
package otelmetrics
