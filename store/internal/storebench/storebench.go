// Package storebench measures a finchreauth.Store for BENCHMARKS: the
// latency of its decisions with many connections in it, and a storm of
// callers on one broken token through Transports that share it. Each store
// module runs it from a test that only runs when FINCHREAUTH_FIGURES is set:
//
//	FINCHREAUTH_FIGURES=1 go test -run '^TestFigures$' -v -timeout 30m ./...
package storebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/internal/stormfinch"
)

// Env is the variable that turns the figures on.
const Env = "FINCHREAUTH_FIGURES"

// Dist is a latency distribution.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

func dist(d []time.Duration) Dist {
	slices.Sort(d)
	if len(d) == 0 {
		return Dist{}
	}
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Dist{N: len(d), P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

func (d Dist) String() string {
	return fmt.Sprintf("p50 %s, p99 %s (max %s, %d samples)", round(d.P50), round(d.P99), round(d.Max), d.N)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// LatencyResult is what Latency measured.
type LatencyResult struct {
	Connections int           // connections in the store while measuring
	Preload     time.Duration // time to save their tokens (Workers at once)
	Workers     int
	// One caller at a time, on connections chosen among the preloaded ones:
	MarkStart Dist // MarkReauth that starts an episode
	MarkHeld  Dist // MarkReauth on an episode whose lease is held
	Notified  Dist // MarkNotified
	Save      Dist // SaveToken replacing the token (ending the episode)
	Token     Dist // Token
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Latency saves a token for each of n new connections (workers at once),
// then measures each operation samples times, one call at a time, each on
// a different connection.
func Latency(ctx context.Context, s finchreauth.Store, n, samples, workers int) (LatencyResult, error) {
	res := LatencyResult{Connections: n, Workers: workers}
	prefix := "bench_" + randHex(4) + "_"
	conn := func(i int) string { return fmt.Sprintf("%s%06d", prefix, i) }
	base := time.Now().UTC().Truncate(time.Microsecond)

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				tok := finchreauth.Token{ConnectionID: conn(i), AccessToken: "bench-token-" + randHex(16), IssuedAt: base.Add(-time.Hour)}
				if _, err := s.SaveToken(ctx, tok); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, fmt.Errorf("preloading: %w", err)
	}
	res.Preload = time.Since(start)

	// Spread the samples over the whole key space.
	pick := func(j int) string { return conn(j * (n / samples)) }
	measure := func(fn func(j int) error) (Dist, error) {
		d := make([]time.Duration, 0, samples)
		for j := range samples {
			t0 := time.Now()
			if err := fn(j); err != nil {
				return Dist{}, err
			}
			d = append(d, time.Since(t0))
		}
		return dist(d), nil
	}
	mark := func(j int, episode string) finchreauth.Mark {
		return finchreauth.Mark{Key: pick(j), ConnectionID: pick(j), TokenFingerprint: "0123456789abcdef",
			Episode: episode, At: base, LeaseUntil: base.Add(30 * time.Second)}
	}
	var err error
	if res.MarkStart, err = measure(func(j int) error {
		r, err := s.MarkReauth(ctx, mark(j, "ep1"))
		if err == nil && !r.Transitioned {
			err = fmt.Errorf("MarkReauth on %s did not start an episode", pick(j))
		}
		return err
	}); err != nil {
		return res, err
	}
	if res.MarkHeld, err = measure(func(j int) error {
		r, err := s.MarkReauth(ctx, mark(j, "ep2"))
		if err == nil && (r.Transitioned || r.Notify) {
			err = fmt.Errorf("MarkReauth on %s won a held lease", pick(j))
		}
		return err
	}); err != nil {
		return res, err
	}
	if res.Notified, err = measure(func(j int) error { return s.MarkNotified(ctx, pick(j), "ep1") }); err != nil {
		return res, err
	}
	if res.Save, err = measure(func(j int) error {
		_, err := s.SaveToken(ctx, finchreauth.Token{ConnectionID: pick(j), AccessToken: "bench-token-" + randHex(16), IssuedAt: base})
		return err
	}); err != nil {
		return res, err
	}
	res.Token, err = measure(func(j int) error { _, err := s.Token(ctx, pick(j)); return err })
	return res, err
}

// Markdown formats r as table rows: | operation | p50 | p99 | max |.
func (r LatencyResult) Markdown(store string) string {
	var b strings.Builder
	for _, row := range []struct {
		name string
		d    Dist
	}{
		{"MarkReauth, starts the episode", r.MarkStart},
		{"MarkReauth, lease held", r.MarkHeld},
		{"MarkNotified", r.Notified},
		{"SaveToken (replaces the token)", r.Save},
		{"Token", r.Token},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", store, row.name, round(row.d.P50), round(row.d.P99), round(row.d.Max))
	}
	return b.String()
}

// StormResult is what Storm measured, averaged over its storms.
type StormResult struct {
	Callers, Transports, Storms int
	NotifyDelay                 time.Duration
	// Release runs from Finch's first 401 until the last caller has its
	// answer; ToNotify is the part before the Notifier is called
	// (/introspect and MarkReauth under the storm's load), AfterNotify the
	// part after the Notifier returned (waking the waiting callers).
	Release, ToNotify, AfterNotify time.Duration
	MaxRelease                     time.Duration
	// Per storm, exact: Storm fails unless transitions and notifications
	// are 1 and every caller was refused by Finch.
	Introspects, Marks int64
}

func (r StormResult) String() string {
	return fmt.Sprintf("%d callers on %d Transport(s), Notifier %s, %d storms: release %s (max %s), to-notify %s, after-notify %s; per storm %d /introspect, %d MarkReauth, 1 transition, 1 notification",
		r.Callers, r.Transports, r.NotifyDelay, r.Storms, round(r.Release), round(r.MaxRelease), round(r.ToNotify), round(r.AfterNotify), r.Introspects, r.Marks)
}

// countingStore counts MarkReauth calls and transitions.
type countingStore struct {
	finchreauth.Store
	marks, transitions *atomic.Int64
}

func (c countingStore) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	c.marks.Add(1)
	r, err := c.Store.MarkReauth(ctx, m)
	if r.Transitioned {
		c.transitions.Add(1)
	}
	return r, err
}

// Storm plays the root package's BenchmarkDetectionStorm against s, storms
// times: callers goroutines, spread over transports Transports that share s
// (replicas, in one process), each make a call that succeeds, then a second
// call, which Finch holds; when all are in flight the token breaks and
// Finch refuses them all at once with the re-authentication 401. The
// Notifier takes notifyDelay. A storm fails unless there is exactly one
// transition and one notification in all.
func Storm(ctx context.Context, s finchreauth.Store, callers, transports, storms int, notifyDelay time.Duration) (StormResult, error) {
	res := StormResult{Callers: callers, Transports: transports, Storms: storms, NotifyDelay: notifyDelay}
	for range storms {
		conn := "conn_storm_" + randHex(8)
		token := "storm-token-" + randHex(16)
		// Each storm names a connection of its own, so that storms on one
		// store do not meet.
		finch := stormfinch.New()
		finch.Introspection = `{"connection_id":"` + conn + `","customer_id":"cust_1","customer_name":"Acme","provider_id":"gusto","products":["company"],"connection_status":{"status":"reauth"}}`
		if _, err := s.SaveToken(ctx, finchreauth.Token{ConnectionID: conn, AccessToken: token, IssuedAt: time.Now()}); err != nil {
			return res, err
		}
		var marks, transitions, notified, notifyStart, notifyEnd atomic.Int64
		trs := make([]*finchreauth.Transport, transports)
		for i := range trs {
			trs[i] = &finchreauth.Transport{
				Base:  finch,
				Store: countingStore{s, &marks, &transitions},
				Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
					notified.Add(1)
					notifyStart.Store(time.Now().UnixNano())
					time.Sleep(notifyDelay)
					notifyEnd.Store(time.Now().UnixNano())
					return nil
				}),
			}
		}
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
					if err != nil {
						errs <- err
						if i == 0 {
							warm.Done()
						}
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if i == 0 {
						warm.Done()
						<-start
					}
					if resp.StatusCode == http.StatusUnauthorized {
						stormfinch.MaxInt64(&lastAnswer, time.Now().UnixNano())
						if !finchreauth.IsReauthResponse(resp) {
							errs <- errors.New("a 401 the caller cannot recognise")
						}
						return
					}
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
		for _, tr := range trs {
			tr.Close()
		}
		close(errs)
		if err := <-errs; err != nil {
			return res, err
		}
		first := finch.First401()
		release := time.Duration(lastAnswer.Load() - first)
		res.Release += release
		res.MaxRelease = max(res.MaxRelease, release)
		res.ToNotify += time.Duration(notifyStart.Load() - first)
		res.AfterNotify += time.Duration(lastAnswer.Load() - notifyEnd.Load())
		res.Introspects, res.Marks = finch.Introspects(), marks.Load()
		if tr, n := transitions.Load(), notified.Load(); tr != 1 || n != 1 {
			return res, fmt.Errorf("storm: %d transitions, %d notifications; want 1 each", tr, n)
		}
		if r := finch.Refusals(); r != int64(callers) {
			return res, fmt.Errorf("storm: Finch refused %d calls, want %d", r, callers)
		}
	}
	res.Release /= time.Duration(storms)
	res.ToNotify /= time.Duration(storms)
	res.AfterNotify /= time.Duration(storms)
	return res, nil
}

// Run measures s and logs the figures as Markdown rows: Latency with n
// connections (100,000 unless testing.Short), then five storms of 10,000
// callers with a 50 ms Notifier, on one Transport and on four.
func Run(t *testing.T, name string, s finchreauth.Store, workers int) {
	ctx := t.Context()
	n, samples := 100_000, 5_000
	if testing.Short() {
		n, samples = 2_000, 500
	}
	lr, err := Latency(ctx, s, n, samples, workers)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d connections saved in %s (%d workers)\n| store | operation | p50 | p99 | max |\n|---|---|---|---|---|\n%s",
		name, lr.Connections, round(lr.Preload), lr.Workers, lr.Markdown(name))
	for _, tr := range []int{1, 4} {
		sr, err := Storm(ctx, s, 10_000, tr, 5, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s storm: %s", name, sr)
	}
}
