package storetest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// Unreadable checks rule 1's unreadable records through a Transport: a
// record the store holds but cannot read costs that record alone. A store
// module calls it once for each way its records become unreadable, with a
// store that holds no record with Since or Due set (a table or prefix of its
// own), and spoil, which makes the record of the connection it is given
// unreadable that way: a token sealed under a key the store no longer holds,
// written in plaintext by a replica without the Sealer, and so on.
//
// Four connections break and their customers are notified; spoil spoils the
// first. Then:
//
//   - List returns the spoiled record in its place, with Err set (naming the
//     connection, never a token) and nothing but its ConnectionID and the time
//     the listing orders by: in the listings by Since and by Due, and in the
//     listing of every record (Query.Every), which orders by id and so sets
//     no time;
//   - Get of it fails;
//   - a day later, Remind sends the three other reminders;
//   - NeedsReauth(ctx, Status{}, 3) returns the three others;
//   - the Transport's ErrorHandler was told of the spoiled one.
func Unreadable(t *testing.T, s finchreauth.Store, spoil func(ctx context.Context, connectionID string) error) {
	t.Helper()
	u := newUnreadableRig(t, s)
	ids := u.breakFour(t)
	before := u.get(ids[0])
	if err := spoil(t.Context(), ids[0]); err != nil {
		t.Fatalf("spoiling %q: %s", ids[0], redact(err))
	}
	u.checkList(t, ids, before)
	if r, err := s.Get(t.Context(), ids[0]); err == nil {
		t.Errorf("Get(%q) of the spoiled record = %s, <nil>; want an error", ids[0], u.fmtRecord(r))
	}

	u.clk.advance(25 * time.Hour)
	if err := u.tr.Remind(t.Context()); err != nil {
		t.Fatalf("Remind: %s", redact(err))
	}
	reminded := u.wait(t, 3)
	slices.Sort(reminded)
	if !slices.Equal(reminded, ids[1:]) {
		t.Errorf("Remind reminded %q; want %q", reminded, ids[1:])
	}

	page, err := u.tr.NeedsReauth(t.Context(), finchreauth.Status{}, 3)
	if err != nil {
		t.Fatalf("NeedsReauth: %s", redact(err))
	}
	var listed []string
	for _, st := range page {
		listed = append(listed, st.ConnectionID)
	}
	if !slices.Equal(listed, ids[1:]) {
		t.Errorf("NeedsReauth(Status{}, 3) = %q; want %q", listed, ids[1:])
	}
	u.checkReported(t, ids[0])
}

// unreadableRig is a fake Finch, a Transport on the store under test with
// a clock of its own, and what its Notifier and ErrorHandler were given.
type unreadableRig struct {
	fixture
	finch  *finchtest.Server
	clk    *rigClock
	tr     *finchreauth.Transport
	events chan finchreauth.Event
	tokens []string

	mu     sync.Mutex
	errors []error
}

func newUnreadableRig(t *testing.T, s finchreauth.Store) *unreadableRig {
	u := &unreadableRig{
		fixture: fixture{t: t, s: s, ctx: t.Context(), base: newBase(), prefix: newID()},
		finch:   finchtest.NewServer(),
		events:  make(chan finchreauth.Event, 16),
	}
	t.Cleanup(u.finch.Close)
	u.clk = &rigClock{now: u.base}
	u.finch.SetClock(u.clk.Now)
	u.tr = &finchreauth.Transport{
		Base: u.finch.Client().Transport, APIBaseURL: u.finch.URL, Store: s, Now: u.clk.Now,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			u.events <- e
			return nil
		}),
		ErrorHandler: func(_ context.Context, err error) {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.errors = append(u.errors, err)
		},
	}
	t.Cleanup(func() { u.tr.Close() })
	return u
}

// breakFour saves a token for each of four connections, breaks them a
// second apart (the first leads every listing) and waits for their
// notifications. It returns their ids, in that order.
func (u *unreadableRig) breakFour(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, suffix := range []string{"_0", "_1", "_2", "_3"} {
		id := u.id(suffix)
		tok := u.finch.AddConnection(finchtest.Connection{ID: id})
		u.tokens = append(u.tokens, tok)
		if err := u.tr.SaveToken(t.Context(), id, finchreauth.Token(tok)); err != nil {
			t.Fatalf("SaveToken(%q): %s", id, redact(err))
		}
		u.finch.Break(id)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u.finch.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := u.tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("a call of %q: %s", id, redact(err))
		}
		resp.Body.Close()
		if !finchreauth.ParseAPIError(resp).IsReauth() {
			t.Fatalf("a call of broken %q got %d", id, resp.StatusCode)
		}
		if got := u.wait(t, 1); got[0] != id {
			t.Fatalf("notified %q; want %q", got[0], id)
		}
		// The handling records the notification on its own, after the
		// Notifier returned: wait for it before the clock moves.
		if err := u.tr.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		u.clk.advance(time.Second)
	}
	return ids
}

// wait returns the connections of the next n notifications.
func (u *unreadableRig) wait(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		select {
		case e := <-u.events:
			got = append(got, e.Connection.ConnectionID)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d notifications of %d after 10s: %q", len(got), n, got)
		}
	}
	return got
}

// checkList checks both listings: the spoiled record first, in its place,
// with Err set and nothing else but its id and the listing's time, the
// time it had before it was spoiled.
//
// The listing of every record starts at the rig's prefix and asks for as
// many records as the rig wrote, so that the store may hold others.
func (u *unreadableRig) checkList(t *testing.T, ids []string, before finchreauth.Record) {
	t.Helper()
	far := u.clk.Now().Add(365 * 24 * time.Hour)
	for _, q := range []finchreauth.Query{{Limit: 10}, {DueBy: far, Limit: 10}, {Every: true, AfterID: u.prefix, Limit: len(ids)}} {
		recs, err := u.s.List(t.Context(), q)
		if err != nil {
			t.Fatalf("List(%s) with a spoiled record: %s; want the record in its place", u.fmtQuery(q), redact(err))
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ConnectionID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("List(%s) = %q; want %q", u.fmtQuery(q), got, ids)
		}
		bad := recs[0]
		if bad.Err == nil {
			t.Fatalf("List(%s): the spoiled record %s has no Err", u.fmtQuery(q), u.fmtRecord(bad))
		}
		u.noToken(t, "List's Err", bad.Err)
		if !strings.Contains(bad.Err.Error(), ids[0]) {
			t.Errorf("List's Err %q does not name %q", redact(bad.Err), ids[0])
		}
		at, other := bad.Since, bad.Due
		if !q.DueBy.IsZero() {
			at, other = bad.Due, bad.Since
		}
		if want := timeOf(q, before); !at.Equal(want) || !other.IsZero() {
			t.Errorf("List(%s): the spoiled record has Since %s, Due %s; want only the listing's time, %s", u.fmtQuery(q), u.rel(bad.Since), u.rel(bad.Due), u.rel(want))
		}
		if bad.Version != 0 || bad.Token != "" || bad.Fingerprints != nil || bad.Data != nil {
			t.Errorf("List(%s): the spoiled record holds more than its id, its time and Err: %s", u.fmtQuery(q), u.fmtRecord(bad))
		}
		for _, r := range recs[1:] {
			if r.Err != nil {
				t.Errorf("List(%s): %q has Err %s", u.fmtQuery(q), r.ConnectionID, redact(r.Err))
			}
		}
	}
}

// checkReported checks that the ErrorHandler was told of id, and that no
// error it was given holds a token.
func (u *unreadableRig) checkReported(t *testing.T, id string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	told := false
	for _, err := range u.errors {
		u.noToken(t, "an error the ErrorHandler was given", err)
		var he *finchreauth.HookError
		if errors.As(err, &he) && he.ConnectionID == id {
			told = true
		}
	}
	if !told {
		t.Errorf("the ErrorHandler was not told of %q (it was given %d errors)", id, len(u.errors))
	}
}

func (u *unreadableRig) noToken(t *testing.T, what string, err error) {
	t.Helper()
	for _, tok := range u.tokens {
		if strings.Contains(err.Error(), tok) {
			t.Errorf("%s holds the token %s", what, finchreauth.Token(tok).Fingerprint())
		}
	}
}

// rigClock is the Transport's clock, moved by the test.
type rigClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *rigClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rigClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
