package finchreauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// The model-based test of a connection's life: random sequences of what
// Finch and the application do (breaks, heals, the assisted statuses, calls
// with the current token and with old ones, webhooks late, twice and out of
// order, tokens saved, Remind, clocks moving, processes crashing), spread
// over three Transports that share one Store, each step checked against a
// small model of Finch. Go's fuzzer drives the sequences (FuzzModel: each
// byte pair is a step); go test runs the seed corpus, and .ci/run a short
// fuzzing session.

// modelFinch is the model: one connection, its tokens, its status. It is
// also the Finch the Transports call.
type modelFinch struct {
	mu      sync.Mutex
	status  string          // connected, reauth, error_permissions, pending
	current string          // the token a reconnect issued last
	tokens  map[string]bool // every token issued: true while it is current
	seq     int
	// staleIntrospect: /introspect of a replaced token answers "reauth"
	// (one reading of Finch), rather than the connection's status.
	staleIntrospect bool
	// fail500 is how many data calls Finch answers 500 next.
	fail500 int
	// wrongDisconnect records a POST /disconnect made with a token that
	// worked: what the library must never do.
	wrongDisconnect string
}

const modelConn = "conn_model"

func newModelFinch() *modelFinch {
	f := &modelFinch{status: "connected", tokens: map[string]bool{}}
	f.reissue()
	return f
}

// reissue is a reconnect: a new token, the old ones replaced.
func (f *modelFinch) reissue() string {
	for t := range f.tokens {
		f.tokens[t] = false
	}
	f.seq++
	f.current = fmt.Sprintf("tok-%03d", f.seq)
	f.tokens[f.current] = true
	return f.current
}

// works reports whether a data call with tok is answered 200.
func (f *modelFinch) works(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens[tok] && f.status == "connected"
}

// needs reports whether the connection needs its employer, per Finch.
func (f *modelFinch) needs() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status == "reauth" || f.status == "error_permissions"
}

func (f *modelFinch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	current, known, status := f.tokens[tok], false, f.status
	_, known = f.tokens[tok]
	stale := f.staleIntrospect
	fail := f.fail500 > 0 && req.URL.Path != "/introspect"
	if fail {
		f.fail500--
	}
	f.mu.Unlock()
	if fail {
		return jsonResponse(req, 500, `{"code":500,"name":"server_error","message":"Internal server error"}`), nil
	}
	if !known {
		return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
	}
	if req.URL.Path == "/disconnect" && req.Method == http.MethodPost {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.status == "disconnected" {
			return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
		}
		if current && f.status == "connected" {
			f.wrongDisconnect = fmt.Sprintf("%s, which worked", tok)
		}
		f.status = "disconnected"
		return jsonResponse(req, 200, `{"status":"success"}`), nil
	}
	if status == "disconnected" {
		return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error","message":"Invalid token"}`), nil
	}
	if strings.HasPrefix(req.URL.Path, "/jobs/automated") && current && status == "connected" {
		if req.Method == http.MethodPost {
			return jsonResponse(req, 202, `{"job_id":"job_model"}`), nil
		}
		return jsonResponse(req, 200, `{"job_id":"job_model","status":"complete"}`), nil
	}
	if req.URL.Path == "/introspect" {
		if !current && stale {
			status = "reauth"
		}
		return jsonResponse(req, 200, `{"connection_id":"`+modelConn+`","customer_name":"Model Co","products":["company"],"connection_status":{"status":"`+status+`"}}`), nil
	}
	switch {
	case !current || status == "reauth":
		return jsonResponse(req, 401, reauthJSON), nil
	case status == "error_permissions":
		return jsonResponse(req, 401, `{"code":401,"name":"authentication_error","finch_code":"account_setup_required","message":"Finch lost its permissions"}`), nil
	case status == "pending":
		return jsonResponse(req, 202, `{"code":202,"name":"accepted"}`), nil
	}
	return jsonResponse(req, 200, `{"id":"company"}`), nil
}

// modelWorld is the model, three replicas on one Store, their clock, the
// webhooks Finch has not delivered yet, and what the hooks were told.
type modelWorld struct {
	t        *testing.T
	finch    *modelFinch
	store    *finchreauth.MemoryStore
	clk      *clock
	replicas [3]*finchreauth.Transport
	pending  []modelWebhook
	events   int
	crashed  bool // a replica was closed with work in flight: at least once, not exactly once

	mu          sync.Mutex
	firsts      map[string]int // first notifications per episode
	reconnected map[string]int // OnReconnected per episode
	notified    map[string]bool
	asks        map[string]int // notifications per request
	answered    map[string]int // OnAnswered per request
}

type modelWebhook struct {
	id, status string
}

func newModelWorld(t *testing.T) *modelWorld {
	w := &modelWorld{t: t, finch: newModelFinch(), store: new(finchreauth.MemoryStore), clk: newClock(),
		firsts: map[string]int{}, reconnected: map[string]int{}, notified: map[string]bool{},
		asks: map[string]int{}, answered: map[string]int{}}
	for i := range w.replicas {
		w.replicas[i] = w.replica()
	}
	if err := w.replicas[0].SaveToken(context.Background(), modelConn, finchreauth.Token(w.finch.current)); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *modelWorld) replica() *finchreauth.Transport {
	return &finchreauth.Transport{
		Base: w.finch, Store: w.store, Now: w.clk.Now, Timeout: time.Second, RetryInterval: 10 * time.Second,
		SweepEvery: modelSweep, SweepRate: 1000, AbandonAfter: 6 * time.Hour, AbandonNotice: time.Hour,
		Notifier: finchreauth.NotifierFunc(func(_ context.Context, e finchreauth.Event) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			if e.Request != "" {
				w.asks[e.Episode]++
				if w.isOpen(e.Episode) {
					w.t.Errorf("a request's notification carries the open episode's id %s", e.Episode)
				}
				return nil
			}
			if e.Reminder == 0 {
				w.firsts[e.Episode]++
			}
			w.notified[e.Episode] = true
			return nil
		}),
		OnAnswered: func(_ context.Context, r finchreauth.Reconnection) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.answered[r.Episode]++
		},
		OnReconnected: func(_ context.Context, r finchreauth.Reconnection) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.reconnected[r.Episode]++
		},
		OnDisconnected: func(_ context.Context, r finchreauth.Reconnection) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.reconnected[r.Episode]++ // told it ended, as disconnected
		},
	}
}

func (w *modelWorld) close() {
	for _, tr := range w.replicas {
		tr.Close()
	}
}

func (w *modelWorld) flush() {
	for _, tr := range w.replicas {
		tr.Flush(context.Background())
	}
}

// modelSweep is the replicas' health sweep period.
const modelSweep = time.Hour

// setSilently changes Finch's status and sends no webhook.
func (w *modelWorld) setSilently(status string) {
	w.finch.mu.Lock()
	if w.finch.status != "disconnected" { // for good
		w.finch.status = status
	}
	w.finch.mu.Unlock()
}

// setStatus changes Finch's status; Finch has a webhook to deliver.
func (w *modelWorld) setStatus(status string) {
	w.finch.mu.Lock()
	if w.finch.status == "disconnected" {
		status = "disconnected" // for good
	}
	changed := w.finch.status != status
	w.finch.status = status
	w.finch.mu.Unlock()
	if changed {
		w.events++
		w.pending = append(w.pending, modelWebhook{id: fmt.Sprintf("msg_%04d", w.events), status: status})
	}
}

// call makes a data call through replica i with tok.
func (w *modelWorld) call(i int, tok string) {
	resp, err := w.replicas[i].RoundTrip(newRequest(w.t, "GET", api+"/employer/company", tok, nil))
	if err != nil {
		w.t.Fatal(err)
	}
	readAll(w.t, resp)
}

// deliver sends the pending webhook k to replica i, signed now; keep leaves
// it pending (Finch will deliver it again).
func (w *modelWorld) deliver(i, k int, keep bool) {
	if len(w.pending) == 0 {
		return
	}
	k %= len(w.pending)
	d := w.pending[k]
	if !keep {
		w.pending = slices.Delete(w.pending, k, k+1)
	}
	code := postWebhook(w.t, w.replicas[i].WebhookHandler(vectorSecret), d.id, w.clk.Now(), modelConn, "", d.status)
	if code != 200 {
		w.t.Fatalf("webhook %s answered %d", d.id, code)
	}
}

// step applies one step of the sequence: op says what, arg how.
func (w *modelWorld) step(op, arg byte) {
	ctx := context.Background()
	i := int(arg) % len(w.replicas)
	switch op % 17 {
	case 0:
		w.setStatus("reauth")
	case 1:
		w.setStatus("connected") // a heal: the same token works again
	case 2:
		w.setStatus("error_permissions")
	case 3: // the application calls with its saved token
		tok, err := w.replicas[i].Token(ctx, modelConn)
		if err == nil {
			w.call(i, string(tok))
		}
	case 4: // a job still holding an old token
		if w.finch.seq > 1 {
			w.call(i, fmt.Sprintf("tok-%03d", 1+int(arg)%(w.finch.seq-1)))
		}
	case 5, 6:
		w.deliver(i, int(arg)/3, op%12 == 6 && arg%2 == 0)
	case 7: // the employer reconnects; the application saves the new token
		w.finch.mu.Lock()
		if w.finch.status == "disconnected" {
			w.finch.mu.Unlock()
			break // Connect cannot reconnect it
		}
		tok := w.finch.reissue()
		if w.finch.status == "reauth" {
			w.finch.status = "connected"
		}
		w.finch.mu.Unlock()
		w.replicas[i].SaveToken(ctx, modelConn, finchreauth.Token(tok))
	case 8: // a retry queue offers an old token
		if w.finch.seq > 1 {
			w.replicas[i].SaveToken(ctx, modelConn, finchreauth.Token(fmt.Sprintf("tok-%03d", 1+int(arg)%(w.finch.seq-1))))
		}
	case 9:
		w.clk.advance(time.Duration(arg) * 37 * time.Second)
	case 10:
		w.replicas[i].Remind(ctx)
	case 11: // a crash: the replica dies with its work in flight
		if tok, err := w.replicas[i].Token(ctx, modelConn); err == nil {
			w.call(i, string(tok)) // the caller has its answer; the handling is queued or under way
		}
		w.replicas[i].Close()
		w.replicas[i] = w.replica()
		w.crashed = true
		return
	case 12: // the health sweep
		w.replicas[i].Sweep(ctx)
	case 13: // Finch's status changes and no webhook says so
		w.setSilently([]string{"reauth", "connected", "error_permissions"}[int(arg)%3])
	case 14: // Finch answers the next calls 500, and the application calls
		w.finch.mu.Lock()
		w.finch.fail500 = 1 + int(arg)%4
		w.finch.mu.Unlock()
		if tok, err := w.replicas[i].Token(ctx, modelConn); err == nil {
			for range 3 {
				w.call(i, string(tok))
			}
		}
	case 15: // a sweep period passes
		w.clk.advance(modelSweep)
	case 16: // the application asks the employer for another product
		w.replicas[i].RequestProducts(ctx, modelConn, "directory")
	}
	w.flush()
}

// check checks what holds after every step.
func (w *modelWorld) check() {
	ctx := context.Background()
	rec, err := w.store.Get(ctx, modelConn)
	if err != nil {
		w.t.Fatalf("the record: %v", err)
	}
	if len(rec.Fingerprints) > 16 || len(rec.Data) > 64<<10 {
		w.t.Fatalf("the record is over its caps: %d fingerprints, %d bytes", len(rec.Fingerprints), len(rec.Data))
	}
	// The saved token is never one Finch refuses while the current one,
	// which works, was offered (every reconnect's token is offered).
	if w.finch.works(w.finch.current) && rec.Token != finchreauth.Token(w.finch.current) {
		w.t.Fatalf("the saved token is %s; Finch's working token %s was offered", rec.Token, finchreauth.Token(w.finch.current))
	}
	w.finch.mu.Lock()
	wrong := w.finch.wrongDisconnect
	w.finch.mu.Unlock()
	if wrong != "" {
		w.t.Fatalf("POST /disconnect with %s", wrong)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ep, n := range w.firsts {
		if n > 1 && !w.crashed {
			w.t.Fatalf("episode %s: %d first notifications without a fault", ep, n)
		}
	}
	st, err := w.replicas[0].Status(ctx, modelConn)
	if err != nil {
		w.t.Fatal(err)
	}
	for ep := range w.reconnected {
		if st.NeedsReauth && w.isOpen(ep) {
			w.t.Fatalf("OnReconnected for episode %s, which is still open", ep)
		}
	}
	for id, n := range w.answered {
		if n > 1 && !w.crashed {
			w.t.Fatalf("request %s answered %d times without a fault", id, n)
		}
	}
}

// isOpen reports whether ep is the open episode (from the record).
func (w *modelWorld) isOpen(ep string) bool {
	rec, _ := w.store.Get(context.Background(), modelConn)
	var d struct {
		Episode *struct{ ID string } `json:"episode"`
	}
	json.Unmarshal(rec.Data, &d)
	return d.Episode != nil && d.Episode.ID == ep
}

// settle delivers every webhook, lets every lease run out, runs Remind and
// the sweep, and makes a call with the saved token on each replica: whatever
// Finch said, with a webhook or silently, now reached the library. Then the
// library must agree with Finch.
func (w *modelWorld) settle() {
	for len(w.pending) > 0 {
		w.deliver(0, 0, false)
	}
	w.flush()
	ctx := context.Background()
	w.finch.mu.Lock()
	w.finch.fail500 = 0
	w.finch.mu.Unlock()
	w.clk.advance(modelSweep)
	for _, tr := range w.replicas {
		tr.Sweep(ctx)
	}
	w.flush()
	for range 3 {
		w.clk.advance(10 * time.Minute)
		for i, tr := range w.replicas {
			if tok, err := tr.Token(ctx, modelConn); err == nil {
				w.call(i, string(tok))
			}
			tr.Remind(ctx)
		}
		w.flush()
	}
	st, err := w.replicas[0].Status(ctx, modelConn)
	if err != nil {
		w.t.Fatal(err)
	}
	tok, _ := w.replicas[0].Token(ctx, modelConn)
	needs := w.finch.needs() || !w.finch.works(string(tok)) && !w.pendingOnly() && !w.gone()
	if st.NeedsReauth != needs {
		w.t.Fatalf("settled: NeedsReauth %v, but Finch says %q (saved token %s works: %v); history:\n%s",
			st.NeedsReauth, w.finch.status, tok, w.finch.works(string(tok)), history(st))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ep := range w.notified {
		if !w.isOpen(ep) && w.reconnected[ep] == 0 {
			w.t.Fatalf("episode %s ended, OnReconnected never called; history:\n%s", ep, history(st))
		}
	}
	for ep := range w.firsts {
		if !w.isOpen(ep) && w.reconnected[ep] == 0 {
			w.t.Fatalf("episode %s ended, OnReconnected never called", ep)
		}
	}
}

// gone: Finch disconnected the connection.
func (w *modelWorld) gone() bool {
	w.finch.mu.Lock()
	defer w.finch.mu.Unlock()
	return w.finch.status == "disconnected"
}

// pendingOnly: Finch's status is pending (data calls answered 202).
func (w *modelWorld) pendingOnly() bool {
	w.finch.mu.Lock()
	defer w.finch.mu.Unlock()
	return w.finch.status == "pending"
}

func history(st finchreauth.Status) string {
	var b strings.Builder
	for _, h := range st.History {
		fmt.Fprintf(&b, "  %s %s %s\n", h.At.Format("Jan 2 15:04:05"), h.What, h.Detail)
	}
	return b.String()
}

func FuzzModel(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 3, 0, 10, 0},                         // break, a call, Remind
		{0, 0, 5, 0, 7, 1, 3, 2},                    // break, its webhook, a reconnect, a call
		{0, 0, 1, 0, 5, 0, 5, 0},                    // break, heal, the webhooks
		{0, 0, 1, 0, 6, 3, 5, 0, 5, 1},              // webhooks twice and out of order
		{0, 0, 3, 0, 7, 0, 8, 0, 6, 0, 5, 0},        // a reconnect, then an old token offered, stale webhooks
		{2, 0, 5, 0, 3, 1, 9, 200, 10, 2, 1, 0},     // error_permissions, a day later healed
		{0, 0, 3, 0, 11, 0, 9, 50, 10, 1, 7, 2},     // a crash with work in flight
		{0, 0, 3, 1, 4, 0, 7, 0, 4, 2, 4, 1, 3, 0},  // old tokens during and after
		{7, 0, 0, 0, 3, 0, 1, 0, 6, 0, 3, 2, 6, 1},  // reconnect first, then a break and a heal
		{0, 0, 5, 1, 9, 255, 10, 0, 9, 255, 10, 1},  // reminders over days
		{1, 0, 0, 0, 7, 2, 5, 1, 5, 0, 3, 0, 11, 2}, // everything at once
		{12, 0, 13, 0, 15, 0, 12, 1, 12, 2},         // a silent break, found by the sweep
		{0, 0, 3, 0, 13, 1, 15, 0, 12, 0, 10, 0},    // a silent heal of an open episode
		{14, 0, 14, 1, 14, 2, 13, 0, 14, 0, 12, 1},  // 500s, then a silent break
		{0, 0, 3, 0, 15, 0, 10, 0, 15, 0, 10, 1, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 10, 2, 15, 0, 10, 0}, // abandoned
		{0, 0, 3, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 15, 0, 10, 0, 13, 1, 15, 0, 10, 1},               // repaired after the last notice
		{16, 0, 0, 0, 3, 0, 16, 1, 9, 100, 10, 0, 7, 0, 3, 1, 10, 2},                                     // an upgrade beside an episode, one reconnect
		{16, 0, 7, 1, 16, 2, 9, 255, 10, 1, 8, 0, 7, 2},                                                  // upgrades answered, an old token offered
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, steps []byte) {
		if len(steps) > 64 {
			steps = steps[:64]
		}
		w := newModelWorld(t)
		defer w.close()
		if len(steps) > 0 && steps[0]%7 == 6 {
			w.finch.staleIntrospect = true // the other reading of Finch
		}
		for i := 0; i+1 < len(steps); i += 2 {
			w.step(steps[i], steps[i+1])
			w.check()
		}
		w.settle()
	})
}
