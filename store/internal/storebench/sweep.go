package storebench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// EnvLarge names the variable that adds the sweep of 100,000 connections
// to BenchmarkSweep ("1"); without it only 10,000 are swept, which is what
// .ci/bench-smoke runs.
const EnvLarge = "FINCHREAUTH_BENCH_LARGE"

// SweepSizes returns the numbers of connections BenchmarkSweep sweeps:
// 10,000, and 100,000 when EnvLarge is "1".
func SweepSizes() []int {
	if os.Getenv(EnvLarge) == "1" {
		return []int{10_000, 100_000}
	}
	return []int{10_000}
}

// SweepResult is what one pass of the health sweep measured.
type SweepResult struct {
	Connections int
	// Pass is the Sweep call that checked every connection, from its
	// start until the Transport was idle: the listing of every record,
	// the listing of those due, and a check of each.
	Pass time.Duration
	// HeapBefore is the heap in use before the pass, after a collection
	// (the store, if in memory, and the fake Finch's connections are in
	// it); PeakHeap the most the heap held during the pass, sampled, with
	// its garbage; HeapAfter the heap in use after the pass, after a
	// collection: what the pass left (a MemoryStore's records, grown by
	// the checks' readings).
	HeapBefore, PeakHeap, HeapAfter uint64
	// Pages is the List calls of the pass; MaxPage the most records one
	// returned.
	Pages, MaxPage int64
	// Checks is the /introspect calls of the pass, each of a different
	// connection (Sweep fails otherwise); PerWindow the most of them in
	// any rolling 60 seconds; RateLimited the 429s Finch answered.
	Checks, PerWindow, RateLimited int
}

func (r SweepResult) String() string {
	return fmt.Sprintf("%d connections: pass %s (%s a connection); %d checks, at most %d in a minute, %d answered 429; %d List pages of at most %d records; heap %.0f MiB before, %.0f MiB at the peak, %.0f MiB after",
		r.Connections, round(r.Pass), round(r.Pass/time.Duration(max(r.Connections, 1))), r.Checks, r.PerWindow, r.RateLimited,
		r.Pages, r.MaxPage, float64(r.HeapBefore)/(1<<20), float64(r.PeakHeap)/(1<<20), float64(r.HeapAfter)/(1<<20))
}

// SweepRig is a fake Finch with n healthy connections, their tokens saved
// in the store by a Transport that sweeps daily (SweepEvery 24h) at up to n
// checks a minute (SweepRate n), on a clock of its own. Finch limits
// /introspect to n a minute too, in real time, as the sweeper paces itself.
type SweepRig struct {
	n      int
	finch  *finchtest.Server
	tr     *finchreauth.Transport
	store  *pagingStore
	calls  *introspections
	clock  *clock
	failed atomic.Value
}

// PrepareSweep builds the rig on s: it saves n connections' tokens, workers
// at once, and sweeps once, which schedules each connection's first check
// within the day. Close it when done.
func PrepareSweep(ctx context.Context, s finchreauth.Store, n, workers int) (*SweepRig, error) {
	r := &SweepRig{n: n, finch: finchtest.NewServer(), store: &pagingStore{Store: s},
		clock: &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}
	r.calls = &introspections{base: r.finch.Client().Transport, tokens: make(map[string]int, n)}
	r.tr = &finchreauth.Transport{
		Base: r.calls, APIBaseURL: r.finch.URL, Store: r.store, Now: r.clock.Now,
		SweepEvery: 24 * time.Hour, SweepRate: n,
		ErrorHandler: func(_ context.Context, err error) { r.failed.CompareAndSwap(nil, err) },
	}
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = r.finch.AddConnection(finchtest.Connection{})
		r.calls.tokens[tokens[i]] = 0
	}
	err := each(n, workers, func(i int) error {
		c, _ := r.finch.ConnectionForToken(tokens[i])
		if err := r.tr.SaveToken(ctx, c.ID, finchreauth.Token(tokens[i])); err != nil {
			return fmt.Errorf("storebench: saving the token of %s: %w", c.ID, r.redact(err))
		}
		return nil
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := r.tr.Sweep(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("storebench: the first sweep: %w", r.redact(err))
	}
	if err := r.tr.Flush(ctx); err != nil {
		r.Close()
		return nil, err
	}
	if err, _ := r.failed.Load().(error); err != nil {
		r.Close()
		return nil, fmt.Errorf("storebench: while saving the tokens, the Transport reported: %w", r.redact(err))
	}
	return r, nil
}

// redact keeps the rig's tokens out of a failure message: a store's or
// the Transport's error must not hold one.
func (r *SweepRig) redact(err error) error {
	msg := err.Error()
	r.calls.mu.Lock()
	defer r.calls.mu.Unlock()
	for tok := range r.calls.tokens {
		if strings.Contains(msg, tok) {
			return fmt.Errorf("storebench: an error that holds the token %s (redacted)", finchreauth.Token(tok).Fingerprint())
		}
	}
	return err
}

// Close stops the Transport and the fake Finch.
func (r *SweepRig) Close() {
	r.tr.Close()
	r.finch.Close()
}

// Run moves the clock a day and a second on, so that every connection's
// check is due, and sweeps once: the pass it measures. It fails unless
// every connection was checked exactly once, Finch answered no 429, the
// store was read in pages of at most 100 records, and the Transport
// reported no error.
func (r *SweepRig) Run(ctx context.Context) (SweepResult, error) {
	res := SweepResult{Connections: r.n}
	r.finch.SetRateLimit("/introspect", r.n)
	r.calls.reset()
	r.store.reset()
	r.clock.advance(24*time.Hour + time.Second)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapBefore = ms.HeapInuse
	peak := sampleHeap(20 * time.Millisecond)

	start := time.Now()
	err := r.tr.Sweep(ctx)
	if err == nil {
		err = r.tr.Flush(ctx)
	}
	res.Pass = time.Since(start)
	res.PeakHeap = peak()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.HeapAfter = ms.HeapInuse
	if err != nil {
		return res, fmt.Errorf("storebench: the sweep: %w", r.redact(err))
	}

	res.Pages, res.MaxPage = r.store.pages.Load(), r.store.maxPage.Load()
	res.RateLimited = r.finch.RateLimited("/introspect")
	var twice []string
	res.Checks, res.PerWindow, twice = r.calls.summary(time.Minute)
	switch {
	case r.failed.Load() != nil:
		return res, fmt.Errorf("storebench: the Transport reported: %w", r.redact(r.failed.Load().(error)))
	case res.Checks != r.n || len(twice) > 0:
		return res, fmt.Errorf("storebench: %d checks of %d connections; %d connections checked other than once (tokens %v)", res.Checks, r.n, len(twice), twice[:min(len(twice), 3)])
	case res.RateLimited > 0:
		return res, fmt.Errorf("storebench: Finch answered %d checks 429", res.RateLimited)
	case res.MaxPage > 100 || res.Pages < int64(2*r.n/100):
		return res, fmt.Errorf("storebench: %d List pages of at most %d records; want pages of at most 100, at least %d", res.Pages, res.MaxPage, 2*r.n/100)
	}
	return res, nil
}

// BenchSweep sweeps n connections once per iteration, each on a fresh store
// from newStore (the preparation outside the timer: saving the tokens,
// workers at once, and the first sweep), and reports the pass's figures:
// ns/conn, pass-s, checks, max-per-min (the most checks in any rolling
// minute), 429s, list-pages, heap-before-MiB, peak-heap-MiB and
// heap-after-MiB. It fails
// on any check Run makes.
func BenchSweep(b *testing.B, n, workers int, newStore func(testing.TB) finchreauth.Store) {
	b.ReportAllocs()
	var last SweepResult
	for b.Loop() {
		b.StopTimer()
		r, err := PrepareSweep(b.Context(), newStore(b), n, workers)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		last, err = r.Run(b.Context())
		b.StopTimer()
		r.Close()
		b.Log(last)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(last.Pass.Nanoseconds())/float64(n), "ns/conn")
	b.ReportMetric(last.Pass.Seconds(), "pass-s")
	b.ReportMetric(float64(last.Checks), "checks")
	b.ReportMetric(float64(last.PerWindow), "max-per-min")
	b.ReportMetric(float64(last.RateLimited), "429s")
	b.ReportMetric(float64(last.Pages), "list-pages")
	b.ReportMetric(float64(last.HeapBefore)/(1<<20), "heap-before-MiB")
	b.ReportMetric(float64(last.PeakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(last.HeapAfter)/(1<<20), "heap-after-MiB")
}

// sampleHeap samples the heap in use every interval until the function it
// returns is called, which returns the most it saw.
func sampleHeap(interval time.Duration) (stop func() uint64) {
	done := make(chan struct{})
	result := make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				result <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-result
	}
}

// pagingStore counts the List calls and the largest page.
type pagingStore struct {
	finchreauth.Store
	pages, maxPage atomic.Int64
}

func (p *pagingStore) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	recs, err := p.Store.List(ctx, q)
	p.pages.Add(1)
	for n := int64(len(recs)); ; {
		m := p.maxPage.Load()
		if n <= m || p.maxPage.CompareAndSwap(m, n) {
			break
		}
	}
	return recs, err
}

func (p *pagingStore) reset() { p.pages.Store(0); p.maxPage.Store(0) }

// introspections counts the /introspect calls of each token, and when each
// went out.
type introspections struct {
	base http.RoundTripper

	mu     sync.Mutex
	tokens map[string]int // token -> calls
	at     []time.Time
}

func (c *introspections) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/introspect" {
		tok := req.Header.Get("Authorization")
		if len(tok) > len("Bearer ") {
			tok = tok[len("Bearer "):]
		}
		c.mu.Lock()
		c.tokens[tok]++
		c.at = append(c.at, time.Now())
		c.mu.Unlock()
	}
	return c.base.RoundTrip(req)
}

func (c *introspections) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tok := range c.tokens {
		c.tokens[tok] = 0
	}
	c.at = nil
}

// summary returns the calls, the most that went out in any window, and
// the fingerprints of the tokens not called exactly once.
func (c *introspections) summary(window time.Duration) (calls, perWindow int, notOnce []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tok, k := range c.tokens {
		calls += k
		if k != 1 {
			notOnce = append(notOnce, finchreauth.Token(tok).Fingerprint())
		}
	}
	for i, j := 0, 0; j < len(c.at); j++ { // c.at is in order
		for c.at[j].Sub(c.at[i]) >= window {
			i++
		}
		perWindow = max(perWindow, j-i+1)
	}
	return calls, perWindow, notOnce
}

// clock is the Transport's clock, moved by the rig.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
