package finchreauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
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

// BenchmarkDetectionStorm is issue 4's benchmark 4, in its worst case. Each
// iteration is one storm: N goroutines (10,000, and 1,000 for scale) share
// one Transport and one token; each makes a call that succeeds, then a
// second call, which Finch holds; when all N are in flight the token breaks
// and Finch refuses them all at once with the re-authentication 401. The
// Notifier takes 50 ms.
//
// release-ms is the time from Finch's first 401 until the last goroutine
// has its answer (a 401 it can recognise). Its parts: to-notify-ms, before
// the Notifier is called (the /introspect call and the Store's compare-and-set,
// under the storm's load); after-notify-ms, after the Notifier returned
// (waking the N waiting callers), of which first-wake-ms until the first
// caller has its answer. refusals-ms is how long the N refusals take to
// come out of the fake Finch and into the Transport, one goroutine after
// another on two cores. introspect-calls, transitions and notifications
// are exact counts per storm; a count other than 1 fails the benchmark.
//
// rt=floor is the physical limit of any design in which every caller waits
// for the hook: N goroutines parked on a channel each, released one by one
// by a goroutine that slept 50 ms, each taking the time when it runs again.
func BenchmarkDetectionStorm(b *testing.B) {
	for _, callers := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("callers=%d/rt=floor", callers), func(b *testing.B) { stormFloor(b, callers) })
		b.Run(fmt.Sprintf("callers=%d/rt=finchreauth", callers), func(b *testing.B) { storm(b, callers) })
	}
}

const stormHook = 50 * time.Millisecond

func storm(b *testing.B, callers int) {
	const token = "storm-token-0123456789abcdef"
	var release, toNotify, afterNotify, firstWake, spread time.Duration
	var introspects, transitions, notifications int64
	b.ReportAllocs()
	for b.Loop() {
		finch := stormfinch.New()
		store := &countingStore{Store: new(finchreauth.MemoryStore)}
		var notified, notifyStart, notifyEnd atomic.Int64
		tr := &finchreauth.Transport{
			Base:  finch,
			Store: store,
			Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
				notified.Add(1)
				notifyStart.Store(time.Now().UnixNano())
				time.Sleep(stormHook)
				notifyEnd.Store(time.Now().UnixNano())
				return nil
			}),
		}
		var warm, done sync.WaitGroup
		var lastAnswer, firstAfter atomic.Int64
		start := make(chan struct{})
		answers := make([]*http.Response, callers)
		warm.Add(callers)
		for c := range callers {
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
					if resp.StatusCode == http.StatusUnauthorized {
						// The caller has its answer. What it does with it
						// is its own work, left out of the release time:
						// the answers are checked and read after the storm.
						stormfinch.MaxInt64(&lastAnswer, answered)
						minInt64(&firstAfter, answered, notifyEnd.Load())
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

		first := finch.First401()
		release += time.Duration(lastAnswer.Load() - first)
		toNotify += time.Duration(notifyStart.Load() - first)
		afterNotify += time.Duration(lastAnswer.Load() - notifyEnd.Load())
		firstWake += time.Duration(firstAfter.Load() - notifyEnd.Load())
		spread += time.Duration(finch.Last401() - first)
		i, t, n := finch.Introspects(), store.transitions.Load(), notified.Load()
		if i != 1 || t != 1 || n != 1 {
			b.Fatalf("storm: %d introspect calls, %d transitions, %d notifications; want 1 each", i, t, n)
		}
		if r := finch.Refusals(); r != int64(callers) {
			b.Fatalf("storm: Finch refused %d calls, want %d", r, callers)
		}
		introspects += i
		transitions += t
		notifications += n
	}
	n := float64(b.N)
	b.ReportMetric(float64(release)/n/1e6, "release-ms")
	b.ReportMetric(float64(toNotify)/n/1e6, "to-notify-ms")
	b.ReportMetric(float64(afterNotify)/n/1e6, "after-notify-ms")
	b.ReportMetric(float64(firstWake)/n/1e6, "first-wake-ms")
	b.ReportMetric(float64(spread)/n/1e6, "refusals-ms")
	b.ReportMetric(float64(introspects)/n, "introspect-calls")
	b.ReportMetric(float64(transitions)/n, "transitions")
	b.ReportMetric(float64(notifications)/n, "notifications")
}

func stormFloor(b *testing.B, callers int) {
	var release, afterNotify time.Duration
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
		hookEnd := time.Now().UnixNano()
		for _, ch := range chans {
			ch <- struct{}{}
		}
		done.Wait()
		release += time.Duration(lastAnswer.Load() - first)
		afterNotify += time.Duration(lastAnswer.Load() - hookEnd)
	}
	n := float64(b.N)
	b.ReportMetric(float64(release)/n/1e6, "release-ms")
	b.ReportMetric(float64(afterNotify)/n/1e6, "after-notify-ms")
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
