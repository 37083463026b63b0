package stormfinch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// MassFinch is an in-memory Finch for a mass breakage: many connections,
// several tokens each, all refused once Break is called. It answers
// /introspect for any token (after a short pause, as Finch takes its time)
// and counts the library's calls in flight.
type MassFinch struct {
	// IntrospectDelay is how long /introspect takes.
	IntrospectDelay time.Duration

	broken atomic.Bool
	calls  atomic.Int64 // the library's calls in flight
	peak   atomic.Int64
}

// MassToken is the k-th token of the i-th connection.
func MassToken(i, k int) string { return fmt.Sprintf("tok-%06d-%d", i, k) }

// MassConnection is the i-th connection's id.
func MassConnection(i int) string { return fmt.Sprintf("conn-%06d", i) }

// Break makes every token refused from now on.
func (f *MassFinch) Break() { f.broken.Store(true) }

// PeakCalls is the most /introspect calls that were in flight at once.
func (f *MassFinch) PeakCalls() int64 { return f.peak.Load() }

// RoundTrip implements http.RoundTripper.
func (f *MassFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	token := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if req.URL.Path == "/introspect" {
		MaxInt64(&f.peak, f.calls.Add(1))
		defer f.calls.Add(-1)
		var i, k int
		if _, err := fmt.Sscanf(token, "tok-%06d-%d", &i, &k); err != nil {
			return response(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
		}
		time.Sleep(f.IntrospectDelay)
		return response(req, 200, fmt.Sprintf(`{"connection_id":%q,"customer_name":"Customer %d","provider_id":"gusto","products":["company"],"connection_status":{"status":"reauth"}}`, MassConnection(i), i)), nil
	}
	if f.broken.Load() {
		return response(req, 401, reauthBody), nil
	}
	return response(req, 200, `{"id":"c1"}`), nil
}

// MassResult is what RunMass saw.
type MassResult struct {
	Notifications int64         // exactly one per connection, or RunMass failed
	PeakCalls     int64         // the library's calls to Finch in flight, at most
	PeakGoroutine int           // sampled every 10 ms
	PeakHeap      uint64        // bytes in use, sampled every 10 ms
	MaxWait       time.Duration // the longest a caller waited for its answer
	P99Wait       time.Duration
	Settled       time.Duration // from the first refusal until every notification went out
}

// RunMass breaks conns connections of tokens tokens each within one second
// on one Transport over store (limit calls to Finch at once, a Timeout of
// timeout), makes one call with every token, waits until every connection
// was notified, and checks: exactly conns notifications, at most limit calls
// to Finch in flight, every caller answered within timeout.
func RunMass(b *testing.B, store finchreauth.Store, conns, tokens, limit int, timeout time.Duration) MassResult {
	b.Helper()
	finch := &MassFinch{IntrospectDelay: time.Millisecond}
	var notified atomic.Int64
	var closing atomic.Bool
	seen := make([]atomic.Bool, conns)
	tr := &finchreauth.Transport{
		Base: finch, Store: store, MaxFinchCalls: limit, Timeout: timeout,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			var i int
			fmt.Sscanf(e.Connection.ConnectionID, "conn-%06d", &i)
			if seen[i].Swap(true) {
				b.Errorf("%s notified twice", e.Connection.ConnectionID)
			}
			notified.Add(1)
			return nil
		}),
		ErrorHandler: func(_ context.Context, err error) {
			if !closing.Load() { // what the Close below cancels is not a failure
				b.Error(err)
			}
		},
	}
	defer func() { closing.Store(true); tr.Close() }()

	var res MassResult
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			res.PeakGoroutine = max(res.PeakGoroutine, runtime.NumGoroutine())
			runtime.ReadMemStats(&m)
			res.PeakHeap = max(res.PeakHeap, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	finch.Break()
	start := time.Now()
	waits := make([]time.Duration, conns*tokens)
	var callers sync.WaitGroup
	// Every token's call starts within one second, in 100 waves.
	const waves = 100
	for w := range waves {
		for n := w; n < conns*tokens; n += waves {
			callers.Go(func() {
				i, k := n/tokens, n%tokens
				req, _ := http.NewRequest(http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
				req.Header.Set("Authorization", "Bearer "+MassToken(i, k))
				t0 := time.Now()
				resp, err := tr.RoundTrip(req)
				waits[n] = time.Since(t0)
				if err != nil || !finchreauth.ParseAPIError(resp).IsReauth() {
					b.Errorf("call %d: %v %v", n, resp, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		time.Sleep(time.Second / waves)
	}
	callers.Wait()
	for deadline := time.Now().Add(10 * timeout); notified.Load() < int64(conns) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	res.Settled = time.Since(start)
	close(stop)
	sampler.Wait()

	slices.Sort(waits)
	res.MaxWait, res.P99Wait = waits[len(waits)-1], waits[len(waits)*99/100]
	res.Notifications, res.PeakCalls = notified.Load(), finch.PeakCalls()
	switch {
	case res.Notifications != int64(conns):
		b.Fatalf("%d notifications for %d connections", res.Notifications, conns)
	case res.PeakCalls > int64(limit):
		b.Fatalf("%d calls to Finch in flight, over the limit of %d", res.PeakCalls, limit)
	case res.MaxWait > timeout:
		b.Fatalf("a caller waited %s, with a Timeout of %s", res.MaxWait, timeout)
	}
	return res
}

// Report adds r's figures to b.
func (r MassResult) Report(b *testing.B) {
	b.ReportMetric(float64(r.Notifications), "notifications")
	b.ReportMetric(float64(r.PeakCalls), "peak-finch-calls")
	b.ReportMetric(float64(r.PeakGoroutine), "peak-goroutines")
	b.ReportMetric(float64(r.PeakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(r.MaxWait.Milliseconds()), "max-wait-ms")
	b.ReportMetric(float64(r.P99Wait.Milliseconds()), "p99-wait-ms")
	b.ReportMetric(r.Settled.Seconds(), "settled-s")
}
