package finchreauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// A detection is a 401 reauthenticate_user from Finch. Concurrent detections
// of one token collapse into one handling, which runs detached from the
// callers: it finds the token's connection (in the Store, or from
// /introspect), opens the episode and, holding the lease, notifies.

// detection is what a handling knows of the request Finch refused.
type detection struct {
	token             string
	at                time.Time
	method, path, rid string
	base              http.RoundTripper
	ctx               context.Context // the caller's, for its values
	queued            chan struct{}   // closed if the handling waits for a slot
}

// on401 examines a 401 from Finch and returns what the caller gets: a copy of
// resp whose body replays what was read, marked if it is a re-authentication.
// resp itself is left as the base returned it.
func (t *Transport) on401(req *http.Request, resp *http.Response, base http.RoundTripper) *http.Response {
	apiErr, body := peekAPIError(resp)
	out := *resp
	out.Body = body
	if !apiErr.IsReauth() {
		return &out
	}
	out.Header = resp.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Header.Set(Header, Detected)
	token := bearer(req.Header)
	if token == "" {
		return &out // nothing names the connection
	}
	ctx := req.Context()
	t.count(ctx, "finchreauth.detections", "")
	// A 401 that was in flight while a handling of its token ran, and
	// arrives after it finished, was covered by it. One that arrives while
	// a handling runs joins it; the first one latches the token at once,
	// briefly, so that requests sent from now on do not reach Finch.
	e, latched := t.latch.get(token)
	switch {
	case latched && e.handled:
		return &out
	case latched:
		t.count(ctx, "finchreauth.detections.collapsed", "")
	default:
		e, _ = t.latch.add(token, "", false, t.retryLatch())
	}
	d := &detection{token: token, at: t.now(), method: req.Method, path: req.URL.Path, rid: apiErr.RequestID, base: base, ctx: ctx, queued: e.queued}
	// The flight is keyed by the latch's keyed hash: the group's map never
	// holds a token.
	k := t.latch.key(token)
	ch := t.group.DoChan(string(k[:]), func() (any, error) {
		t.handle(d)
		return nil, nil
	})
	// The caller waits for the handling at most Timeout, no longer than
	// its own context allows, and not at all once the handling waits for
	// its turn behind others; the handling goes on either way.
	timer := time.NewTimer(t.timeout())
	defer timer.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-timer.C:
	case <-e.queued: // nil, so never, when the latch is off
	}
	return &out
}

// handle runs once per collapsed detection, in singleflight's goroutine.
func (t *Transport) handle(d *detection) {
	if !t.begin() {
		return
	}
	defer t.end()
	// A request carrying a token that a finished handling latched cannot
	// reach Finch; its 401 was in flight while that handling ran.
	if e, ok := t.latch.get(d.token); ok && e.handled {
		return
	}
	// The handling's turn, when a slot is free; its Timeouts start then.
	select {
	case t.slots <- struct{}{}:
	default:
		if d.queued != nil {
			close(d.queued)
		}
		select {
		case t.slots <- struct{}{}:
		case <-t.stop.Done():
			return
		}
	}
	defer func() { <-t.slots }()
	ctx, cancel := t.detach(d.ctx)
	defer cancel()
	conn, ttl := t.handleDetection(ctx, d)
	t.latch.add(d.token, conn, true, ttl)
}

// handleDetection does the work of a handling and returns the token's
// connection (if known) and how long to latch the token.
func (t *Transport) handleDetection(ctx context.Context, d *detection) (conn string, ttl time.Duration) {
	fp := Fingerprint(d.token)
	s := subject{fp: fp}
	retry := t.retryLatch()
	conn, err := storeStep(t, ctx, s, func(ctx context.Context, st Store) (string, error) { return st.Lookup(ctx, fp) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", retry
	}
	var fresh *Connection
	if conn == "" {
		// Unknown token: only Finch can say whose it is. Without that
		// nothing is recorded and nobody is told; the next detection,
		// after RetryInterval, asks again.
		in, err := t.introspect(ctx, d.base, d.token, s)
		if err != nil {
			return "", retry
		}
		conn, fresh = in.ConnectionID, &in
	}
	s.conn = conn
	res, err := t.open(ctx, conn, opening{source: "detection", fp: fp, identity: fresh})
	if err != nil {
		return conn, retry
	}
	t.log(ctx, slog.LevelInfo, "finchreauth: Finch asks for re-authentication",
		"connection_id", conn, "token", fp, "request_id", d.rid, "stale", res.stale, "notify", res.holder != "")
	switch {
	case res.stale:
		return conn, t.latchTTL()
	case res.owed:
		return conn, retry
	case res.holder == "":
		return conn, t.latchTTL()
	}
	if fresh == nil {
		// Known token: ask Finch for the connection's details now (its
		// entities' statuses change), and do without if it cannot say.
		if in, err := t.introspect(ctx, d.base, d.token, s); err == nil {
			res.d.Identity = &in
		}
	}
	ev := t.event(res.rec, res.d, "detection")
	ev.TokenFingerprint, ev.Method, ev.Path, ev.RequestID = fp, d.method, d.path, d.rid
	ev.At = d.at
	if !t.deliver(ctx, res.holder, ev, res.d) {
		return conn, retry
	}
	return conn, t.latchTTL()
}
