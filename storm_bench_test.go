package finchreauth_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// stormFinch is a lean in-memory Finch for the storm. Until hold is set it
// answers data calls 200 at once; after, it holds each data call until gate
// closes and then answers the re-authentication 401. /introspect answers at
// once. It counts calls and remembers when it sent its first 401.
type stormFinch struct {
	hold     atomic.Bool
	held     atomic.Int64 // data calls waiting at the gate
	gate     chan struct{}
	first401 atomic.Int64 // unix nanoseconds

	data, refusals, introspect atomic.Int64
}

const stormIntrospection = `{"connection_id":"conn_storm","customer_id":"cust_1","customer_name":"Acme","provider_id":"gusto","products":["company"],"connection_status":{"status":"reauth"}}`

func (f *stormFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/introspect" {
		f.introspect.Add(1)
		return stormResponse(req, 200, stormIntrospection), nil
	}
	f.data.Add(1)
	if !f.hold.Load() {
		return stormResponse(req, 200, `{"id":"c1"}`), nil
	}
	f.held.Add(1)
	select {
	case <-f.gate:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	f.first401.CompareAndSwap(0, time.Now().UnixNano())
	f.refusals.Add(1)
	return stormResponse(req, 401, reauthJSON), nil
}

func stormResponse(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// minInt64 lowers v to x if x is after floor (a non-zero floor).
func minInt64(v *atomic.Int64, x, floor int64) {
	if floor == 0 || x < floor {
		return
	}
	for {
		old := v.Load()
		if (old != 0 && x >= old) || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// maxInt64 raises v to at least x.
func maxInt64(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// BenchmarkDetectionStorm is issue 4's benchmark 4, in its worst case. Each
// iteration is one storm: 10,000 goroutines share one Transport and one
// token; each makes a call that succeeds, then a second call, which Finch
// holds; when all 10,000 are in flight the token breaks and Finch refuses
// them all at once with the re-authentication 401. The Notifier takes 50 ms.
//
// release-ms is the time from Finch's first 401 until the last goroutine
// has its answer (a 401 it can recognise); to-notify-ms the part of it
// before the Notifier is called (the /introspect call and the Store's
// MarkReauth, under the storm's load), after-notify-ms the part after the
// Notifier returned (waking the 10,000 waiting callers). introspect-calls,
// transitions and notifications are exact counts per storm; a count other
// than 1 fails the benchmark.
func BenchmarkDetectionStorm(b *testing.B) {
	const (
		callers  = 10_000
		hookTime = 50 * time.Millisecond
		token    = "storm-token-0123456789abcdef"
	)
	var release, toNotify, afterNotify, firstWake time.Duration
	for b.Loop() {
		finch := &stormFinch{gate: make(chan struct{})}
		store := &countingStore{Store: finchreauth.NewMemoryStore()}
		var notified, notifyStart, notifyEnd atomic.Int64
		tr := &finchreauth.Transport{
			Base:  finch,
			Store: store,
			Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
				notified.Add(1)
				notifyStart.Store(time.Now().UnixNano())
				time.Sleep(hookTime)
				notifyEnd.Store(time.Now().UnixNano())
				return nil
			}),
		}
		var warm, done sync.WaitGroup
		var lastAnswer, firstAfter atomic.Int64
		start := make(chan struct{})
		warm.Add(callers)
		for range callers {
			done.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				for i := 0; ; i++ {
					resp, err := tr.RoundTrip(req)
					answered := time.Now().UnixNano()
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if i == 0 {
						warm.Done()
						<-start
					}
					if resp.StatusCode == http.StatusUnauthorized {
						maxInt64(&lastAnswer, answered)
						minInt64(&firstAfter, answered, notifyEnd.Load())
						if !finchreauth.IsReauthResponse(resp) {
							b.Error("a 401 the caller cannot recognise")
						}
						return
					}
				}
			})
		}
		warm.Wait()
		finch.hold.Store(true)
		close(start)
		for finch.held.Load() < callers {
			time.Sleep(100 * time.Microsecond)
		}
		close(finch.gate)
		done.Wait()
		tr.Close()

		first := finch.first401.Load()
		release += time.Duration(lastAnswer.Load() - first)
		toNotify += time.Duration(notifyStart.Load() - first)
		afterNotify += time.Duration(lastAnswer.Load() - notifyEnd.Load())
		firstWake += time.Duration(firstAfter.Load() - notifyEnd.Load())
		if i, tr, n := finch.introspect.Load(), store.transitions.Load(), notified.Load(); i != 1 || tr != 1 || n != 1 {
			b.Fatalf("storm: %d introspect calls, %d transitions, %d notifications; want 1 each", i, tr, n)
		}
		if r := finch.refusals.Load(); r != callers {
			b.Fatalf("storm: Finch refused %d calls, want %d", r, callers)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(release)/n/1e6, "release-ms")
	b.ReportMetric(float64(toNotify)/n/1e6, "to-notify-ms")
	b.ReportMetric(float64(afterNotify)/n/1e6, "after-notify-ms")
	b.ReportMetric(float64(firstWake)/n/1e6, "first-wake-ms")
	// Checked above for every storm: exactly one each.
	b.ReportMetric(1, "introspect-calls")
	b.ReportMetric(1, "transitions")
	b.ReportMetric(1, "notifications")
}
