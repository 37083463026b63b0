package finchreauth

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"hash/fnv"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The health sweep. With SweepEvery set, every connection whose token the
// Store holds owes a check at /introspect once per period: an owed effect
// of its record (owedSweep), like a reminder, so that it happens once across
// replicas and at least once, and so that the Store's listing of due records
// finds it. A connection's first check falls at a point of the period fixed
// by its token (spread evenly over the period), and each next one a period
// after the last. The check is read as every answer of /introspect is (see
// onRead): a status at any level that needs the employer opens an episode,
// and its notification goes out from the sweep, before any sync fails; a
// connection that works again ends its episode (after a data call confirms
// the saved token works). Sweeps are paced: at most SweepRate checks in any
// rolling minute in a process, and a 429 pauses them for its Retry-After.

const (
	owedSweep = "sweep"

	defaultSweepRate  = 30
	defaultStaleAfter = 48 * time.Hour // two of Finch's daily syncs missed
	sweepWindow       = time.Minute    // Finch's rate limits' rolling window
	maxSweepPause     = 10 * time.Minute
)

// sweepSeed: the sweep's listing of every record gives one that has no
// check scheduled its first (a record written before SweepEvery was set).
type sweepSeed struct{}

func (sweepSeed) isInput() {}

// scheduleSweep makes the sweep's owed check agree with the policy and the
// token: one while there is a token to check, none otherwise. It reports
// whether it changed l.
func (l *life) scheduleSweep(now time.Time, p policy) bool {
	ow := l.owedItem(owedSweep, "")
	switch {
	case p.sweep <= 0 || l.Token == "":
		if ow == nil {
			return false
		}
		l.drop(owedSweep, "")
		return true
	case ow != nil:
		return false
	}
	l.Owed = append(l.Owed, owed{Kind: owedSweep, NotBefore: now.Add(spread(l.savedFP(), p.sweep))})
	return true
}

// spread is where in a period of every the first check of the token with
// fingerprint fp falls: the same for every replica, even over tokens.
func spread(fp string, every time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(fp))
	return time.Duration(h.Sum64() % uint64(every))
}

// swept reschedules the sweep's check held by holder, whose reading was
// just taken in: a period from now.
func (l *life) swept(holder string, now time.Time, p policy) bool {
	ow := l.owedItem(owedSweep, "")
	if ow == nil || holder == "" || ow.Holder != holder {
		return false
	}
	*ow = owed{Kind: owedSweep, NotBefore: now.Add(p.sweep)}
	return true
}

// sweepDue reports whether l's sweep check is due and free at now.
func (l *life) sweepDue(now time.Time) bool {
	ow := l.owedItem(owedSweep, "")
	return ow != nil && l.free(ow, now)
}

// Sweep carries out the health checks that are due (see SweepEvery), paced
// by SweepRate, and returns when none is left or ctx is done. It also gives
// a first check to every connection that has none yet (a record written
// before SweepEvery was set): it lists the whole Store for that once per
// SweepEvery in a process, page by page. Run calls it every minute; call it
// from the application's scheduler instead if Run does not run. Without
// SweepEvery it does nothing. A record the Store cannot read is skipped and
// reported; Sweep returns the error of a listing that failed as a whole, or
// ctx's when it stopped waiting for Finch's window.
func (t *Transport) Sweep(ctx context.Context) error {
	t.init()
	if t.pol.sweep <= 0 {
		return nil
	}
	if t.sweeper.seedDue(t.now(), t.pol.sweep) {
		err := t.each(ctx, Query{Every: true, Limit: remindPage}, func(r Record, l life) bool {
			if l.Token != "" && l.owedItem(owedSweep, "") == nil {
				t.apply(ctx, r.ConnectionID, sweepSeed{})
			}
			return true
		})
		if err != nil {
			return err
		}
		t.sweeper.seeded(t.now())
	}
	var waitErr error
	err := t.each(ctx, Query{DueBy: t.now(), Limit: remindPage}, func(r Record, l life) bool {
		if !l.sweepDue(t.now()) {
			return true // due for something else: Remind's
		}
		done, err := t.sweeper.wait(ctx, t.sweepRate())
		if err != nil {
			waitErr = err
			return false
		}
		defer done()
		holder := rand.Text()
		next, o, err := t.apply(ctx, r.ConnectionID, due{holder: holder, sweep: true})
		if err == nil {
			t.carry(ctx, r.ConnectionID, next, o.run, carrier{})
		}
		return ctx.Err() == nil
	})
	return cmp.Or(err, waitErr, ctx.Err())
}

func (t *Transport) sweepRate() int {
	if t.SweepRate > 0 {
		return t.SweepRate
	}
	return defaultSweepRate
}

// sweepCheck carries out an owed sweep check: /introspect (and, when Finch
// says the connection works while an episode is open, a data call with the
// saved token), taken in as any reading, the check rescheduled in the same
// write. A 429 pauses the sweep for Finch's Retry-After.
func (t *Transport) sweepCheck(ctx context.Context, conn string, l life, ow owed, base http.RoundTripper) (life, []owed) {
	if l.Token == "" {
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedSweep, ok: true})
		return l, nil
	}
	in, err := t.readingErr(ctx, base, conn, l.Token, l.Breaks, ow.Holder, true)
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
			t.sweeper.pause(apiErr.retryAfter)
		}
		l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedSweep})
		return l, nil
	}
	in.sweep = true
	if in.conn != nil && needOf(in.conn.Status) == "" && l.Episode != nil {
		// Finch says it works while an episode is open: the saved token
		// itself must work before that ends anything. Without an episode
		// there is nothing to end, and no data call is made (Finch's
		// limits on data endpoints are tighter than on /introspect).
		in.probe = t.probe(ctx, base, conn, l.Token, in.conn.Products)
	}
	next, o, err := t.apply(ctx, conn, in)
	if err != nil {
		return l, nil
	}
	return next, o.run
}

// sweeper paces one process's sweep checks: at most rate in any rolling
// sweepWindow, none while a 429's pause lasts. A check counts from when it
// goes out until sweepWindow after it came back (Finch counted it somewhere
// in between), so that the rate holds whatever the network delays. It
// measures real time, whatever the Transport's clock.
type sweeper struct {
	mu       sync.Mutex
	calls    []*sweepCall // those that still count
	until    time.Time    // paused until
	lastSeed time.Time    // by the Transport's clock
	window   time.Duration
}

type sweepCall struct {
	at   time.Time // when it came back; when it went out while open
	open bool
}

// wait blocks until a check may go out under rate, and counts it; done
// says it came back.
func (s *sweeper) wait(ctx context.Context, rate int) (done func(), err error) {
	for {
		s.mu.Lock()
		now := time.Now()
		window := s.window
		if window == 0 {
			window = sweepWindow
		}
		s.calls = slices.DeleteFunc(s.calls, func(c *sweepCall) bool { return !c.open && !c.at.After(now.Add(-window)) })
		at := now // when the next check may go
		if now.Before(s.until) {
			at = s.until
		}
		if len(s.calls) >= rate {
			// The earliest to stop counting, or, if all are out, soon.
			free := now.Add(10 * time.Millisecond)
			for _, c := range s.calls {
				if !c.open && c.at.Add(window).Before(free) {
					free = c.at.Add(window)
				}
			}
			at = maxTime(at, free)
		}
		if !at.After(now) {
			c := &sweepCall{at: now, open: true}
			s.calls = append(s.calls, c)
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				c.at, c.open = time.Now(), false
			}, nil
		}
		s.mu.Unlock()
		if !sleep(ctx, at.Sub(now)) {
			return nil, ctx.Err()
		}
	}
}

// pause stops the checks for d (a minute if Finch did not say, at most
// maxSweepPause).
func (s *sweeper) pause(d time.Duration) {
	if d <= 0 {
		d = sweepWindow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if until := time.Now().Add(min(d, maxSweepPause)); until.After(s.until) {
		s.until = until
	}
}

func (s *sweeper) seedDue(now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeed.IsZero() || now.Sub(s.lastSeed) >= every
}

func (s *sweeper) seeded(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSeed = now
}
