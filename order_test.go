package finchreauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Signals in any order, late, twice, on any replica: the behaviours the
// state machine fixed, each through the Transport's own handlers. Each of
// these failed on the library before it (f61213e), as its comment says.

// postWebhook delivers a signed account.updated for conn (entity "" for the
// connection) to h, sent at ts, and returns the status h answered.
func postWebhook(t *testing.T, h http.Handler, id string, ts time.Time, conn, entity, status string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"event_type": "account.updated", "connection_id": conn, "entity_id": entity,
		"data": map[string]any{"status": status, "authentication_method": map[string]any{"type": "credential"}}})
	req := httptest.NewRequest("POST", "/finch/webhooks", strings.NewReader(string(body)))
	req.Header.Set("Finch-Event-Id", id)
	req.Header.Set("Finch-Timestamp", fmt.Sprint(ts.Unix()))
	req.Header.Set("Finch-Signature", finchtest.SignWebhook(id, ts, body, vectorSecret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestStaleReauthDoesNotReopen (1): a reauth webhook that comes after the
// connection was fixed reopens nothing: redelivered after the callback
// fixed it (it had failed with 503 during a deploy), or older than a
// connected delivered first. It used to open a new episode on a working
// connection, notify the customer and remind them for 84 days.
func TestStaleReauthDoesNotReopen(t *testing.T) {
	t.Run("redelivered after the callback fixed it", func(t *testing.T) {
		var deploying atomic.Bool
		deploying.Store(true)
		r := webhookRig(t, func(r *reconnectRig, w *finchtest.Webhook) { w.URL = r.app.URL + "/flaky" })
		r.app.Config.Handler.(*http.ServeMux).Handle("/flaky", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if deploying.Load() {
				http.Error(w, "deploying", http.StatusServiceUnavailable)
				return
			}
			r.tr.WebhookHandler(vectorSecret).ServeHTTP(w, req)
		}))
		link := r.breakAndNotify(t) // the webhook failed; the 401 opened the episode
		reauth := r.finch.Webhooks()[0]
		require.Equal(t, 503, reauth.StatusCode)
		r.clk.advance(time.Hour)
		callback, err := r.finch.Approve(link)
		require.NoError(t, err)
		require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
		require.False(t, r.needsReauth(t))
		deploying.Store(false)

		r.clk.advance(time.Minute)
		d, err := r.finch.Redeliver(context.Background(), reauth.EventID)
		require.NoError(t, err)
		require.Equal(t, 200, d.StatusCode)
		waitIdle(t, r.tr)
		assert.False(t, r.needsReauth(t), "the redelivered reauth reopened the fixed connection")
		r.clk.advance(30 * 24 * time.Hour)
		require.NoError(t, r.tr.Remind(context.Background()))
		waitIdle(t, r.tr)
		assert.Len(t, r.notes.delivered(), 1, "nobody told again, nor reminded")
	})

	t.Run("connected delivered before an older reauth", func(t *testing.T) {
		ff := newFakeFinch()
		ff.add("tok", "conn_1") // it works
		notes := &recorder{}
		clk := newClock()
		tr := &finchreauth.Transport{Base: ff, Notifier: notes, Now: clk.Now}
		defer tr.Close()
		require.NoError(t, tr.SaveToken(context.Background(), "conn_1", "tok"))
		h := tr.WebhookHandler(vectorSecret)
		// Finch said reauth at 9:00 and connected at 9:02; they arrive the
		// other way round.
		broke, healed := clk.Now().Add(-3*time.Minute), clk.Now().Add(-time.Minute)
		require.Equal(t, 200, postWebhook(t, h, "msg_connected", healed, "conn_1", "", "connected"))
		require.Equal(t, 200, postWebhook(t, h, "msg_reauth", broke, "conn_1", "", "reauth"))
		waitIdle(t, tr)
		st, err := tr.Status(context.Background(), "conn_1")
		require.NoError(t, err)
		assert.False(t, st.NeedsReauth, "an older reauth opened an episode after a newer connected")
		assert.Zero(t, notes.n.Load())
	})
}

// TestDeadTokenNeverReplacesALiveOne (2): one entity of a multi-entity
// connection breaks, so an episode is open while the saved token works; a
// superseded token offered to SaveToken (what a retry queue fed from
// OnUnsaved produces) is refused with ErrStaleToken, the live token stays,
// the episode stays open and OnReconnected is not called. It used to
// return nil, replace the live token and end the episode.
func TestDeadTokenNeverReplacesALiveOne(t *testing.T) {
	r := webhookRig(t, func(r *reconnectRig, w *finchtest.Webhook) { w.URL = "" })
	ctx := context.Background()
	// Two entities; then a reconnect outside the library replaces the
	// first token, which Finch refuses from then on.
	r.finch.AddConnection(finchtest.Connection{ID: r.connID, CustomerName: "Acme Corp",
		Entities: []finchtest.Entity{{ID: "ent_a", Name: "Acme East"}, {ID: "ent_b", Name: "Acme West"}}})
	superseded := finchreauth.Token(r.token)
	live := exchangeIssued(t, r)
	require.NoError(t, r.tr.SaveToken(ctx, r.connID, live))
	require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: r.app.URL + "/finch/webhooks", Secrets: []string{vectorSecret}}))
	r.finch.BreakEntity(r.connID, "ent_a")
	waitIdle(t, r.tr)
	st, err := r.tr.Status(ctx, r.connID)
	require.NoError(t, err)
	require.True(t, st.NeedsReauth, "errors: %v", r.errs.all())
	require.Equal(t, []string{"ent_a"}, st.BrokenEntities)

	err = r.tr.SaveToken(ctx, r.connID, superseded)
	assert.ErrorIs(t, err, finchreauth.ErrStaleToken)
	assert.Equal(t, live, r.savedToken(t), "the live token stays")
	assert.True(t, r.needsReauth(t), "the episode stays open")
	reconnected, _ := r.hooks()
	assert.Empty(t, reconnected)
}

// exchangeIssued spends a code issued by the fake directly (no redirect_uri),
// as a reconnect the library did not see, and returns the new token.
func exchangeIssued(t *testing.T, r *reconnectRig) finchreauth.Token {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": r.finch.ClientID, "client_secret": r.finch.ClientSecret, "code": r.finch.IssueCode(r.connID)})
	resp, err := r.finch.Client().Post(r.finch.URL+"/auth/token", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(readAll(t, resp), &out))
	require.NotEmpty(t, out.AccessToken)
	return finchreauth.Token(out.AccessToken)
}

// staleFirstRead is a Store whose next Get, once armed, reads the record
// and then waits for release before returning what it read: the read is
// stale by the time the caller writes. Put is a compare-and-set, as every
// Store's: a write on the stale read conflicts.
type staleFirstRead struct {
	finchreauth.Store
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (s *staleFirstRead) Get(ctx context.Context, conn string) (finchreauth.Record, error) {
	r, err := s.Store.Get(ctx, conn)
	if s.armed.CompareAndSwap(true, false) {
		close(s.read)
		<-s.release
	}
	return r, err
}

// TestHealOnAStaleRead (3): replica A reads the record to act on a
// connected webhook; meanwhile replica B sees Finch refuse the saved token
// and opens the episode; A's decision must hold on the record as it is when
// A writes. It used to end B's episode from its stale read while Finch
// still refused the token: the dashboard said healthy and no reminder ever
// went out.
func TestHealOnAStaleRead(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	mem := new(finchreauth.MemoryStore)
	slow := &staleFirstRead{Store: mem, read: make(chan struct{}), release: make(chan struct{})}
	notes := &recorder{}
	clk := newClock()
	a := &finchreauth.Transport{Base: ff, Store: slow, Notifier: notes, Now: clk.Now}
	b := &finchreauth.Transport{Base: ff, Store: mem, Notifier: notes, Now: clk.Now}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, b.SaveToken(ctx, "conn_1", "tok"))

	slow.armed.Store(true)
	answered := make(chan int)
	go func() {
		answered <- postWebhook(t, a.WebhookHandler(vectorSecret), "msg_1", clk.Now(), "conn_1", "", "connected")
	}()
	<-slow.read // A has read: no episode
	ff.setBroken("tok", true)
	resp, err := b.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, b)
	require.EqualValues(t, 1, notes.n.Load(), "B opened the episode and notified")
	close(slow.release)
	require.Equal(t, 200, <-answered)
	waitIdle(t, a)
	st, err := b.Status(ctx, "conn_1")
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth, "the connected webhook's stale read ended the episode Finch still refuses")
	assert.False(t, st.NextReminder.IsZero(), "a reminder is planned")
}

// TestSpentStateNeverComesBack (4): a link state that completed a reconnect
// completes no other, however many later states the record sees. It came
// back once 16 later claims pushed its claim out of the record.
func TestSpentStateNeverComesBack(t *testing.T) {
	r := newReconnectRig(t, nil)
	ctx := context.Background()
	link := r.breakAndNotify(t)
	spent, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", serveCallback(t, r.tr, spent).Get("reason"))
	state := query(t, spent).Get("state")
	for i := range 17 {
		l, err := r.tr.ReconnectURL(ctx, r.connID)
		require.NoError(t, err, "link %d", i)
		cb, err := r.finch.Approve(l)
		require.NoError(t, err)
		q := query(t, cb)
		// A code that Finch will not exchange: the state is claimed,
		// nothing is spent.
		garbage := "/finch/callback?code=garbage-" + fmt.Sprint(i) + "&state=" + q.Get("state")
		assert.Equal(t, "exchange_failed", serveCallback(t, r.tr, "http://app"+garbage).Get("reason"))
	}
	replay := "http://app/finch/callback?code=" + r.finch.IssueCode(r.connID) + "&state=" + state
	assert.Equal(t, "invalid_state", serveCallback(t, r.tr, replay).Get("reason"), "the spent state reconnected again")
}

// TestRecordStaysWithinItsCaps (5): 500 refused old copies of a
// connection's tokens leave the record within its cap of 16 fingerprints
// (the Store's index keeps the others). It used to keep all 501.
func TestRecordStaysWithinItsCaps(t *testing.T) {
	ff := newFakeFinch()
	ff.add("live", "conn_1")
	store := new(finchreauth.MemoryStore)
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: &recorder{}}
	defer tr.Close()
	ctx := context.Background()
	require.NoError(t, tr.SaveToken(ctx, "conn_1", "live"))
	for i := range 500 {
		tok := fmt.Sprintf("old-%03d", i)
		ff.add(tok, "conn_1")
		ff.setBroken(tok, true)
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", tok, nil))
		require.NoError(t, err)
		readAll(t, resp)
	}
	waitIdle(t, tr)
	rec, err := store.Get(ctx, "conn_1")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(rec.Fingerprints), 16)
	assert.Equal(t, finchreauth.Token("live").Fingerprint(), rec.Fingerprints[0])
	assert.Less(t, len(rec.Data), 32<<10, "the record's data")
	st, err := tr.Status(ctx, "conn_1")
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth, "old copies open nothing")
}

// TestLatchFollowsTheRecord (6): when a connection is healed on one replica
// (a new token saved, or Finch saying the same token works again), the
// other replicas stop answering its tokens locally within RetryInterval.
// They kept answering 401 until LatchTTL (10 minutes).
func TestLatchFollowsTheRecord(t *testing.T) {
	for _, heal := range []string{"a new token saved", "the same token works again"} {
		t.Run(heal, func(t *testing.T) {
			ff := newFakeFinch()
			ff.add("tok", "conn_1")
			ff.setBroken("tok", true)
			store := new(finchreauth.MemoryStore)
			clk := newClock()
			replica := func() *finchreauth.Transport {
				tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: &recorder{}, Now: clk.Now}
				t.Cleanup(func() { tr.Close() })
				return tr
			}
			a, b := replica(), replica()
			call := func(tr *finchreauth.Transport) int {
				resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
				require.NoError(t, err)
				readAll(t, resp)
				waitIdle(t, tr)
				return resp.StatusCode
			}
			require.Equal(t, 401, call(a))
			require.Equal(t, 401, call(b))
			ff.setBroken("tok", false)
			if heal == "a new token saved" {
				ff.add("new", "conn_1")
				require.NoError(t, a.SaveToken(context.Background(), "conn_1", "new"))
			} else {
				require.Equal(t, 200, postWebhook(t, a.WebhookHandler(vectorSecret), "msg_1", clk.Now(), "conn_1", "", "connected"))
			}
			waitIdle(t, a)
			require.Equal(t, 200, call(a), "the replica that healed it")
			clk.advance(31 * time.Second) // RetryInterval, 30 s by default
			call(b)                       // answered locally; B looks at the record meanwhile
			assert.Equal(t, 200, call(b), "B still answers a healed connection's token from its latch")
		})
	}
}

// TestNotifyFailuresBackOff (7): a Notify that keeps failing (after sending,
// for all the Transport knows) is tried again backing off: 7 tries in an
// hour of Remind every 30 seconds. It was tried every 30 seconds, forever:
// 121 tries in an hour.
func TestNotifyFailuresBackOff(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	var tries atomic.Int64
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Now: clk.Now, Notifier: finchreauth.NotifierFunc(func(context.Context, finchreauth.Event) error {
		tries.Add(1)
		return errors.New("sent, then the mail API timed out")
	})}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	for range 120 {
		clk.advance(30 * time.Second)
		require.NoError(t, tr.Remind(context.Background()))
	}
	waitIdle(t, tr)
	assert.EqualValues(t, 7, tries.Load(), "tries in an hour")
}

// TestMissedRemindersCollapse (7): after Remind was stopped for 30 days, the
// customer gets one reminder, not one per reminder missed: it used to send
// 6 within 12 hours.
func TestMissedRemindersCollapse(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	notes := &recorder{}
	clk := newClock()
	tr := &finchreauth.Transport{Base: ff, Notifier: notes, Now: clk.Now}
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, tr)
	require.EqualValues(t, 1, notes.n.Load())
	clk.advance(30 * 24 * time.Hour)
	for range 24 {
		require.NoError(t, tr.Remind(context.Background()))
		clk.advance(30 * time.Minute)
	}
	waitIdle(t, tr)
	var reminders []int
	for _, e := range notes.delivered()[1:] {
		reminders = append(reminders, e.Reminder)
	}
	assert.Equal(t, []int{6}, reminders, "one reminder, the latest due")
}

// TestDowntimeWithClocksThatDisagree (8): the replica that ends an episode
// may run behind the one that opened it: the time to reconnect is never
// negative, and the end is never before the start. It was -59 minutes.
func TestDowntimeWithClocksThatDisagree(t *testing.T) {
	ff := newFakeFinch()
	ff.add("tok", "conn_1")
	ff.setBroken("tok", true)
	ff.add("new", "conn_1")
	store := new(finchreauth.MemoryStore)
	ahead, behind := newClock(), newClock()
	ahead.advance(time.Hour)
	var got []finchreauth.Reconnection
	var mu sync.Mutex
	onReconnected := func(_ context.Context, r finchreauth.Reconnection) { mu.Lock(); got = append(got, r); mu.Unlock() }
	a := &finchreauth.Transport{Base: ff, Store: store, Notifier: &recorder{}, Now: ahead.Now}
	b := &finchreauth.Transport{Base: ff, Store: store, Now: behind.Now, OnReconnected: onReconnected}
	defer a.Close()
	resp, err := a.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
	require.NoError(t, err)
	readAll(t, resp)
	waitIdle(t, a)
	behind.advance(time.Minute)
	require.NoError(t, b.SaveToken(context.Background(), "conn_1", "new"))
	b.Close()
	require.Len(t, got, 1)
	assert.GreaterOrEqual(t, got[0].Downtime(), time.Duration(0))
	assert.False(t, got[0].At.Before(got[0].BrokenSince))
}

// TestStoreThatLostItsData (9): the Store lost its records (Redis restarted
// without persistence); a job still holding a token a reconnect replaced
// gets Finch's 401. Finch says the connection works: the token is an old
// copy, and nobody is told the healthy connection is broken. One refused
// token used to open an episode and notify the customer.
func TestStoreThatLostItsData(t *testing.T) {
	ff := newFakeFinch()
	ff.add("old", "conn_1")
	ff.add("new", "conn_1")
	ff.mu.Lock()
	ff.superseded["old"] = true
	ff.mu.Unlock()
	notes := &recorder{}
	tr := &finchreauth.Transport{Base: ff, Notifier: notes} // an empty Store
	defer tr.Close()
	resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "old", nil))
	require.NoError(t, err)
	assert.Equal(t, 401, resp.StatusCode)
	readAll(t, resp)
	waitIdle(t, tr)
	st, err := tr.Status(context.Background(), "conn_1")
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	assert.Zero(t, notes.n.Load(), "the customer of a healthy connection was told it is broken")
}
