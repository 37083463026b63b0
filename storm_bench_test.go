package finchreauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/internal/stormfinch"
)

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

// BenchmarkDetectionStorm: N goroutines (1,000 and 10,000) share one
// Transport and one token; each makes a call that succeeds, then a second
// call, which Finch holds; when all N are in flight the token breaks and
// Finch refuses them all at once with the re-authentication 401. The
// Notifier takes 50 ms, and no caller waits for it.
//
// release-ms is the time from Finch's first 401 until the last goroutine has
// its answer (a 401 it can recognise); refusals-ms how long the N refusals
// take to come out of the fake Finch, one goroutine after another on two
// cores. For rt=finchreauth, introspect-calls, transitions and notifications
// are exact counts per storm once the handling is done (a count other than
// 1 fails the benchmark), and to-notify-ms is when the Notifier was called.
//
// Two floors, in the same run: rt=bare is the same storm through the bare
// base (nothing recognises the 401s, and nothing reads them before the
// caller); rt=hook-floor is the floor of issue 4's design, in which every
// caller waited for the Notifier: N goroutines parked on channels, woken one
// by one by a goroutine that slept 50 ms.
func BenchmarkDetectionStorm(b *testing.B) {
	for _, callers := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("callers=%d/rt=bare", callers), func(b *testing.B) { storm(b, callers, true) })
		b.Run(fmt.Sprintf("callers=%d/rt=hook-floor", callers), func(b *testing.B) { hookFloor(b, callers) })
		b.Run(fmt.Sprintf("callers=%d/rt=finchreauth", callers), func(b *testing.B) { storm(b, callers, false) })
	}
}

// hookFloor is the release of N callers that all wait for a 50 ms hook: the
// physical limit of a design in which the caller waits for the handling.
func hookFloor(b *testing.B, callers int) {
	var release time.Duration
	b.ReportAllocs()
	for b.Loop() {
		chans := make([]chan struct{}, callers)
		var parked, done sync.WaitGroup
		var lastAnswer atomic.Int64
		parked.Add(callers)
		for i := range chans {
			ch := make(chan struct{}, 1)
			chans[i] = ch
			done.Go(func() {
				parked.Done()
				<-ch
				stormfinch.MaxInt64(&lastAnswer, time.Now().UnixNano())
			})
		}
		parked.Wait()
		first := time.Now().UnixNano()
		time.Sleep(stormHook)
		for _, ch := range chans {
			ch <- struct{}{}
		}
		done.Wait()
		release += time.Duration(lastAnswer.Load() - first)
	}
	b.ReportMetric(float64(release)/float64(b.N)/1e6, "release-ms")
}

const stormHook = 50 * time.Millisecond

// stormRun is one storm's figures.
type stormRun struct {
	release, toNotify, spread               time.Duration
	introspects, transitions, notifications int64
}

func storm(b *testing.B, callers int, bare bool) {
	var sum stormRun
	b.ReportAllocs()
	for b.Loop() {
		r := stormOnce(b, callers, bare)
		sum.release += r.release
		sum.toNotify += r.toNotify
		sum.spread += r.spread
		sum.introspects += r.introspects
		sum.transitions += r.transitions
		sum.notifications += r.notifications
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.release)/n/1e6, "release-ms")
	b.ReportMetric(float64(sum.spread)/n/1e6, "refusals-ms")
	if !bare {
		b.ReportMetric(float64(sum.toNotify)/n/1e6, "to-notify-ms")
		b.ReportMetric(float64(sum.introspects)/n, "introspect-calls")
		b.ReportMetric(float64(sum.transitions)/n, "transitions")
		b.ReportMetric(float64(sum.notifications)/n, "notifications")
	}
}

func stormOnce(b *testing.B, callers int, bare bool) stormRun {
	const token = "storm-token-0123456789abcdef"
	finch := stormfinch.New()
	store := &countingStore{Store: new(finchreauth.MemoryStore)}
	var notified, notifyStart atomic.Int64
	tr := &finchreauth.Transport{
		Base:  finch,
		Store: store,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			notified.Add(1)
			notifyStart.Store(time.Now().UnixNano())
			time.Sleep(stormHook)
			return nil
		}),
	}
	var rt http.RoundTripper = tr
	if bare {
		rt = finch
	}
	var warm, done sync.WaitGroup
	var lastAnswer atomic.Int64
	start := make(chan struct{})
	answers := make([]*http.Response, callers)
	warm.Add(callers)
	for c := range callers {
		done.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			for i := 0; ; i++ {
				resp, err := rt.RoundTrip(req)
				answered := time.Now().UnixNano()
				if err != nil {
					b.Error(err)
					return
				}
				if resp.StatusCode == http.StatusUnauthorized {
					// The caller has its answer. What it does with it is
					// its own work, left out of the release time: the
					// answers are checked and read after the storm.
					stormfinch.MaxInt64(&lastAnswer, answered)
					answers[c] = resp
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if i == 0 {
					warm.Done()
					<-start
				}
			}
		})
	}
	warm.Wait()
	finch.Hold()
	close(start)
	for finch.Held() < int64(callers) {
		time.Sleep(100 * time.Microsecond)
	}
	finch.Release()
	done.Wait()
	first := finch.First401()
	r := stormRun{release: time.Duration(lastAnswer.Load() - first), spread: time.Duration(finch.Last401() - first)}
	tr.Flush(context.Background()) // the handling ran on its own: for the counts
	tr.Close()
	for _, resp := range answers {
		if resp == nil {
			continue // reported by b.Error
		}
		if !finchreauth.ParseAPIError(resp).IsReauth() {
			b.Fatal("a 401 the caller cannot recognise")
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if rf := finch.Refusals(); rf != int64(callers) {
		b.Fatalf("storm: Finch refused %d calls, want %d", rf, callers)
	}
	if bare {
		return r
	}
	r.toNotify = time.Duration(notifyStart.Load() - first)
	r.introspects, r.transitions, r.notifications = finch.Introspects(), store.transitions.Load(), notified.Load()
	if r.introspects != 1 || r.transitions != 1 || r.notifications != 1 {
		b.Fatalf("storm: %d introspect calls, %d transitions, %d notifications; want 1 each", r.introspects, r.transitions, r.notifications)
	}
	return r
}

// BenchmarkDetectedCall: what a caller whose call Finch refuses pays, over
// real HTTP on loopback, with a Notifier that takes 5 seconds: a new broken
// token each time (a detection each time, its handling queued behind the
// Notifier). Each iteration makes the same refused call twice, once through
// the bare transport and once through the Transport, in alternating order,
// on one connection pool: bare-us and detected-us are their mean times, and
// ratio is detected-us over bare-us. The caller gets Finch's 401 once its
// body is read; the handling runs on its own.
func BenchmarkDetectedCall(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/introspect" {
			io.WriteString(w, `{"connection_id":"conn-`+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+`","connection_status":{"status":"reauth"}}`)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, reauthJSON)
	}))
	defer srv.Close()
	base := srv.Client().Transport
	tr := &finchreauth.Transport{Base: base, APIBaseURL: srv.URL,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, _ finchreauth.Event) error {
			select {
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
			}
			return nil
		})}
	defer tr.Close()
	bare, detected := &http.Client{Transport: base}, &http.Client{Transport: tr}
	call := func(c *http.Client, token string) time.Duration {
		req, _ := http.NewRequest("GET", srv.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			b.Fatal(resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	var sumBare, sumDetected time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		token := fmt.Sprintf("tok-%09d", i)
		if i%2 == 0 {
			sumBare += call(bare, token)
			sumDetected += call(detected, token)
		} else {
			sumDetected += call(detected, token)
			sumBare += call(bare, token)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(sumBare)/n/1e3, "bare-us")
	b.ReportMetric(float64(sumDetected)/n/1e3, "detected-us")
	b.ReportMetric(float64(sumDetected)/float64(sumBare), "ratio")
}

// BenchmarkMassBreakage: a provider change breaks 10,000 connections, 3
// tokens each, within one second, on one Transport with the memory store.
// Exactly 10,000 notifications; at most MaxFinchCalls (16) calls to Finch in
// flight; every caller answered within Timeout (10 s). The store modules run
// the same with their stores (PostgreSQL's figures are in BENCHMARKS.md).
func BenchmarkMassBreakage(b *testing.B) {
	var last stormfinch.MassResult
	for b.Loop() {
		last = stormfinch.RunMass(b, new(finchreauth.MemoryStore), 10_000, 3, 16, 10*time.Second)
	}
	last.Report(b)
}

// BenchmarkQueuedDetections: distinct broken tokens (100,000 and a million),
// each refused once, behind a Notifier that hangs, against the same with a
// fast Notifier. Reported after the last caller has its answer: the
// goroutines the Transport added, the heap in use (after a collection), the
// detections waiting or in a handling, and those dropped because the queue
// was full (MaxQueued, 100,000 by default). Detections waiting are data, so
// the goroutines stay MaxHandlings' few whatever the number of tokens, and
// the heap is bounded by the queue and the latch.
func BenchmarkQueuedDetections(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, hang := range []bool{true, false} {
			notifier := "fast"
			if hang {
				notifier = "hanging"
			}
			b.Run(fmt.Sprintf("tokens=%d/notifier=%s", n, notifier), func(b *testing.B) {
				for b.Loop() {
					queuedDetections(b, n, hang)
				}
			})
		}
	}
}

func queuedDetections(b *testing.B, n int, hang bool) {
	release := make(chan struct{})
	m := &countingMetrics{}
	tr := &finchreauth.Transport{Base: manyTokensFinch{}, Metrics: m,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, _ finchreauth.Event) error {
			if hang {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		})}
	runtime.GC()
	before := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse
	req, _ := http.NewRequest("GET", "https://api.tryfinch.com/employer/company", nil)
	for i := range n {
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", fmt.Sprintf("Bearer tok%07d", i))
		resp, err := tr.RoundTrip(r)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(runtime.NumGoroutine()-before), "goroutines")
	b.ReportMetric(float64(ms.HeapInuse-min(heap0, ms.HeapInuse))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(finchreauth.InFlight(tr)), "in-flight")
	m.mu.Lock()
	b.ReportMetric(float64(m.counts["finchreauth.detections.dropped"]), "dropped")
	m.mu.Unlock()
	close(release)
	tr.Close()
}
