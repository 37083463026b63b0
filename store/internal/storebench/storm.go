package storebench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/internal/stormfinch"
)

// StormResult is what one storm measured.
type StormResult struct {
	Callers, Transports int
	// Release runs from Finch's first 401 until the last caller has its
	// answer; ToNotify is the part before the Notifier is called (the
	// Store's loads and compare-and-sets and the /introspect call, under
	// the storm's load), AfterNotify the part after the Notifier returned
	// (waking the waiting callers).
	Release, ToNotify, AfterNotify time.Duration
	// Exact counts, checked: Storm fails unless each is 1.
	Introspects, Episodes, Notifications int64
	// Store calls made during the storm, over all Transports.
	Gets, Puts, Lookups int64
	// CallersWaited, in a gated storm (see Storm), says that the Notifier
	// gave up waiting for the callers: they were waiting for it.
	CallersWaited bool
}

func (r StormResult) String() string {
	return fmt.Sprintf("%d callers on %d Transport(s): release %s, to-notify %s, after-notify %s; %d /introspect, %d episode, %d notification; store calls: %d Get, %d Put, %d Lookup",
		r.Callers, r.Transports, round(r.Release), round(r.ToNotify), round(r.AfterNotify),
		r.Introspects, r.Episodes, r.Notifications, r.Gets, r.Puts, r.Lookups)
}

// StormNotifyDelay is how long the storm's Notifier takes, as in the root
// package's BenchmarkDetectionStorm.
const StormNotifyDelay = 50 * time.Millisecond

// Storm plays the root package's BenchmarkDetectionStorm against s, once:
// callers goroutines, spread over transports Transports that share s
// (replicas, in one process), each make a call that succeeds, then a second
// call, which Finch holds; when all are in flight the token breaks and
// Finch refuses them all at once with the re-authentication 401. The
// connection's token was saved beforehand, as an application does, so the
// Transports find it in the Store. The Notifier takes StormNotifyDelay.
// Storm fails unless there was exactly one /introspect call, one episode
// and one notification in all, and every caller was refused by Finch and
// recognised the 401. A gated storm's Notifier first waits until every
// caller has its answer, then takes StormNotifyDelay: if the callers waited
// for the Notifier, it gives up when its context ends (the Transport's
// Timeout) and CallersWaited says so; whether callers wait for the
// Notifier is then told by the order of events, not by a duration.
func Storm(ctx context.Context, s finchreauth.Store, callers, transports int, gated bool) (StormResult, error) {
	res := StormResult{Callers: callers, Transports: transports}
	// Each storm has a connection of its own, so that storms on one store
	// do not meet.
	conn := "conn_storm_" + randHex(8)
	token := "storm-token-" + randHex(16)
	finch := stormfinch.New()
	finch.Introspection = `{"connection_id":"` + conn + `","customer_id":"cust_1","customer_name":"Acme","provider_id":"gusto","products":["company"],"connection_status":{"status":"reauth"}}`
	cs := &countingStore{Store: s}
	var notified, notifyStart, notifyEnd atomic.Int64
	var failed atomic.Value
	var waited atomic.Bool
	allAnswered := make(chan struct{})
	trs := make([]*finchreauth.Transport, transports)
	for i := range trs {
		trs[i] = &finchreauth.Transport{
			Base:  finch,
			Store: cs,
			Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
				notified.Add(1)
				notifyStart.Store(time.Now().UnixNano())
				if gated {
					select {
					case <-allAnswered:
					case <-ctx.Done():
						waited.Store(true)
					}
				}
				time.Sleep(StormNotifyDelay)
				notifyEnd.Store(time.Now().UnixNano())
				return nil
			}),
			ErrorHandler: func(_ context.Context, err error) { failed.CompareAndSwap(nil, err) },
		}
	}
	defer func() {
		for _, tr := range trs {
			tr.Close()
		}
	}()
	if err := trs[0].SaveToken(ctx, conn, finchreauth.Token(token)); err != nil {
		return res, err
	}
	cs.reset()

	var warm, done sync.WaitGroup
	var lastAnswer atomic.Int64
	errs := make(chan error, callers)
	start := make(chan struct{})
	warm.Add(callers)
	for c := range callers {
		tr := trs[c%transports]
		done.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.tryfinch.com/employer/company", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			for i := 0; ; i++ {
				resp, err := tr.RoundTrip(req)
				answered := time.Now().UnixNano()
				if err != nil {
					errs <- err
					if i == 0 {
						warm.Done()
					}
					return
				}
				if i == 0 {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("storebench: a caller's first call got %d, want 200", resp.StatusCode)
					}
					warm.Done()
					<-start
					continue
				}
				stormfinch.MaxInt64(&lastAnswer, answered)
				if !finchreauth.ParseAPIError(resp).IsReauth() {
					errs <- fmt.Errorf("storebench: a caller got %d, not a re-authentication 401", resp.StatusCode)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return
			}
		})
	}
	warm.Wait()
	finch.Hold()
	close(start)
	for finch.Held() < int64(callers) && len(errs) == 0 {
		time.Sleep(100 * time.Microsecond)
	}
	finch.Release()
	done.Wait()
	close(allAnswered)
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	// The callers had their answers at once; the handling runs on its own
	// (the notification, then its last write): wait for it.
	for _, tr := range trs {
		if err := tr.Flush(ctx); err != nil {
			return res, err
		}
		tr.Close()
	}
	if err, _ := failed.Load().(error); err != nil {
		return res, err
	}

	first := finch.First401()
	res.Release = time.Duration(lastAnswer.Load() - first)
	res.ToNotify = time.Duration(notifyStart.Load() - first)
	res.AfterNotify = time.Duration(lastAnswer.Load() - notifyEnd.Load())
	res.Introspects, res.Episodes, res.Notifications = finch.Introspects(), cs.episodes(conn), notified.Load()
	res.Gets, res.Puts, res.Lookups = cs.gets.Load(), cs.puts.Load(), cs.lookups.Load()
	res.CallersWaited = waited.Load()
	if res.Introspects != 1 || res.Episodes != 1 || res.Notifications != 1 {
		return res, fmt.Errorf("storebench: storm: %d /introspect calls, %d episodes, %d notifications; want 1 each", res.Introspects, res.Episodes, res.Notifications)
	}
	if r := finch.Refusals(); r != int64(callers) {
		return res, fmt.Errorf("storebench: storm: Finch refused %d calls, want %d", r, callers)
	}
	return res, nil
}

// BenchStorm runs Storm on s, one storm per iteration, and reports its
// figures as means over the storms: release-ms, to-notify-ms,
// after-notify-ms, and per storm the exact counts introspect-calls,
// episodes and notifications (a storm with another count fails), and the
// Store calls it made.
func BenchStorm(b *testing.B, s finchreauth.Store, callers, transports int) {
	var sum StormResult
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		r, err := Storm(b.Context(), s, callers, transports, false)
		if err != nil {
			b.Fatal(err)
		}
		sum.Release += r.Release
		sum.ToNotify += r.ToNotify
		sum.AfterNotify += r.AfterNotify
		sum.Introspects += r.Introspects
		sum.Episodes += r.Episodes
		sum.Notifications += r.Notifications
		sum.Gets += r.Gets
		sum.Puts += r.Puts
		sum.Lookups += r.Lookups
		n++
	}
	f := float64(n)
	b.ReportMetric(float64(sum.Release)/f/1e6, "release-ms")
	b.ReportMetric(float64(sum.ToNotify)/f/1e6, "to-notify-ms")
	b.ReportMetric(float64(sum.AfterNotify)/f/1e6, "after-notify-ms")
	b.ReportMetric(float64(sum.Introspects)/f, "introspect-calls")
	b.ReportMetric(float64(sum.Episodes)/f, "episodes")
	b.ReportMetric(float64(sum.Notifications)/f, "notifications")
	b.ReportMetric(float64(sum.Gets+sum.Puts+sum.Lookups)/f, "store-calls")
}

// countingStore counts the Store calls and remembers, for each successful
// Put, whether the record it wrote has an open episode (Since set). Puts are
// compare-and-sets, so their Versions order them: an episode opens at each
// Version with Since set whose previous Version had none.
type countingStore struct {
	finchreauth.Store
	gets, puts, lookups atomic.Int64

	mu   sync.Mutex
	open map[string]map[int64]bool // connection -> Version -> Since set
}

func (c *countingStore) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Lookup(ctx context.Context, fp string) (string, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, fp)
}

func (c *countingStore) Put(ctx context.Context, r finchreauth.Record) (int64, error) {
	c.puts.Add(1)
	v, err := c.Store.Put(ctx, r)
	if err == nil {
		c.mu.Lock()
		if c.open == nil {
			c.open = map[string]map[int64]bool{}
		}
		if c.open[r.ConnectionID] == nil {
			c.open[r.ConnectionID] = map[int64]bool{}
		}
		c.open[r.ConnectionID][v] = !r.Since.IsZero()
		c.mu.Unlock()
	}
	return v, err
}

// reset zeroes the call counters (not what it knows of the versions).
func (c *countingStore) reset() { c.gets.Store(0); c.puts.Store(0); c.lookups.Store(0) }

// episodes counts the episodes opened on conn through c.
func (c *countingStore) episodes(conn string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	vs := c.open[conn]
	for _, v := range slices.Sorted(maps.Keys(vs)) {
		if vs[v] && !vs[v-1] {
			n++
		}
	}
	return n
}
