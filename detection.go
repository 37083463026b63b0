package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// A detection is a 401 reauthenticate_user from Finch. The caller gets
// Finch's answer at once; the token is latched, and its handling waits in a
// queue (as data, not as a goroutine) for one of at most MaxHandlings
// workers: it finds the token's connection (in the Store, or from
// /introspect), steps the connection's life and carries out what that owes.
// Concurrent detections of one token are one handling: the first latches
// the token, and those that find it latched are covered by it.

// detection is a detection waiting for its handling.
type detection struct {
	token             string
	at                time.Time
	method, path, rid string
	base              http.RoundTripper
	ctx               context.Context // the caller's, for its values
	suspect           bool            // repeated 500s, not a 401 (suspicion.go)
}

// on401 examines a 401 from Finch and returns it to the caller, its body
// replaying what was read, marked if it is a re-authentication. The caller
// never waits for the handling.
func (t *Transport) on401(req *http.Request, resp *http.Response, base http.RoundTripper) *http.Response {
	apiErr, body := peekAPIError(resp, &t.lastError)
	resp.Body = body
	if !apiErr.IsReauth() {
		return resp
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	resp.Header.Set(Header, Detected)
	token := bearer(req.Header)
	if token == "" {
		return resp // nothing names the connection
	}
	ctx := req.Context()
	t.count(ctx, "finchreauth.detections", "")
	// A read lock finds the token latched for all but the first of a storm;
	// only that one takes the write lock to latch it.
	if _, latched := t.latch.get(token); latched || !t.latch.add(token, "", false, t.retryLatch(), 0) {
		// A handling of this token is queued or ran: this 401 is covered.
		t.count(ctx, "finchreauth.detections.collapsed", "")
		return resp
	}
	t.enqueue(ctx, detection{token: token, at: t.now(), method: req.Method, path: req.URL.Path, rid: apiErr.RequestID, base: base, ctx: ctx})
	return resp
}

// enqueue queues d for a worker, starting one if fewer than MaxHandlings
// run. A full queue drops d: its token stays latched for RetryInterval,
// after which the next 401 is a new detection.
func (t *Transport) enqueue(ctx context.Context, d detection) {
	t.qmu.Lock()
	full := len(t.queue) >= t.maxQueued()
	start := !full && t.workers < t.maxHandlings() && t.beginWorker()
	if full || t.workers == 0 && !start {
		// Full, or closed: no worker runs, and none may start.
		t.qmu.Unlock()
		t.count(ctx, "finchreauth.detections.dropped", "")
		return
	}
	if start {
		t.workers++
	}
	t.queue = append(t.queue, d)
	t.inFlight.Add(1)
	t.qmu.Unlock()
	if start {
		go t.work()
	}
}

// work handles queued detections until the queue is empty.
func (t *Transport) work() {
	defer t.running.Done()
	for {
		t.qmu.Lock()
		if len(t.queue) == 0 || t.stop.Err() != nil {
			t.inFlight.Add(-int64(len(t.queue)))
			t.queue, t.workers = nil, t.workers-1
			t.qmu.Unlock()
			return
		}
		d := t.queue[0]
		t.queue[0] = detection{}
		t.queue = t.queue[1:]
		t.qmu.Unlock()
		t.handle(d)
		t.inFlight.Add(-1)
	}
}

// handle runs one detection's handling and latches its token for as long
// as it says.
func (t *Transport) handle(d detection) {
	ctx, cancel := t.detach(d.ctx)
	defer cancel()
	if d.suspect {
		t.handleSuspicion(ctx, d) // nothing is latched: the token may work
		return
	}
	conn, ttl := t.handleDetection(ctx, d)
	t.latch.add(d.token, conn, true, ttl, t.recheckEvery())
}

// handleDetection does the work of a handling and returns the token's
// connection (if known) and how long to latch the token.
func (t *Transport) handleDetection(ctx context.Context, d detection) (conn string, ttl time.Duration) {
	fp := Token(d.token).Fingerprint()
	retry := t.retryLatch()
	conn, err := storeCall(t, ctx, subject{fp: fp}, func(ctx context.Context, s Store) (string, error) { return s.Lookup(ctx, fp) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", retry
	}
	holder := rand.Text()
	det := detected{fp: fp, at: d.at, method: d.method, path: d.path, holder: holder}
	var in input = det
	c := carrier{base: d.base, det: &det, rid: d.rid}
	if conn == "" {
		// Unknown token: only Finch can say whose it is, and whether the
		// connection (not just this token) needs the employer. Without
		// an answer nothing is recorded and nobody is told; the next
		// detection, after RetryInterval, asks again.
		r, ok := t.reading(ctx, d.base, "", Token(d.token), -1, holder)
		if !ok || r.conn == nil {
			return "", retry
		}
		conn, c.fresh = r.conn.ConnectionID, true
		r.token, r.detection = Token(d.token), &det
		in = r
	}
	l, o, err := t.apply(ctx, conn, in)
	if err != nil {
		return conn, retry
	}
	t.log(ctx, slog.LevelInfo, "finchreauth: Finch asks for re-authentication",
		"connection_id", quoteID(conn), "token", fp, "request_id", d.rid, "stale", o.stale, "episode", l.Episode != nil)
	t.carry(ctx, conn, l, o.run, c)
	if l, err = t.reload(ctx, conn); err == nil {
		if ow := l.owedItem(owedNotify, ""); ow != nil && ow.Reminder == 0 {
			return conn, retry // the first notification is still owed: the next detection pushes it
		}
	}
	return conn, t.latchTTL()
}

// reload reads the connection's life again.
func (t *Transport) reload(ctx context.Context, conn string) (life, error) {
	_, l, err := t.load(ctx, conn)
	return l, err
}
