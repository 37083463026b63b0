package finchreauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vector of Finch's SDKs.
const (
	vectorSecret = "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"
	vectorID     = "msg_2Lh9KRb0pzN4LePd3XiA4v12Axj"
	vectorTS     = "1676312382"
	vectorBody   = `{"company_id":"720be419-0293-4d32-a707-32179b0827ab"}`
	vectorSig    = "v1,m7y0TV2C+hlHxU42wCieApTSTaA8/047OAplBqxIV/s="
	otherSecret  = "c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
)

func TestWebhookSignature(t *testing.T) {
	at := time.Unix(1676312382, 0)
	tr := &finchreauth.Transport{Now: func() time.Time { return at }}
	defer tr.Close()
	post := func(h http.Handler, ts, body string, sigs ...string) int {
		req := httptest.NewRequest("POST", "/finch/webhooks", strings.NewReader(body))
		req.Header.Set("Finch-Event-Id", vectorID)
		req.Header.Set("Finch-Timestamp", ts)
		for _, s := range sigs {
			req.Header.Add("Finch-Signature", s)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	h := tr.WebhookHandler(vectorSecret)
	wrong := "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	cases := []struct {
		name string
		ts   string
		body string
		sigs []string
		want int
	}{
		{"the SDKs' test vector", vectorTS, vectorBody, []string{vectorSig}, 200},
		{"rotation: two signatures in one header, space-separated", vectorTS, vectorBody, []string{wrong + " " + vectorSig}, 200},
		{"rotation: repeated header lines", vectorTS, vectorBody, []string{wrong, vectorSig}, 200},
		{"only v1 counts", vectorTS, vectorBody, []string{strings.Replace(vectorSig, "v1,", "v2,", 1)}, 400},
		{"body changed", vectorTS, vectorBody + " ", []string{vectorSig}, 400},
		{"timestamp changed", "1676312383", vectorBody, []string{vectorSig}, 400},
		{"no signature", vectorTS, vectorBody, nil, 400},
		{"garbage signature", vectorTS, vectorBody, []string{"v1,!!!"}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, post(h, tc.ts, tc.body, tc.sigs...))
		})
	}
	t.Run("timestamps more than 5 minutes off", func(t *testing.T) {
		for _, skew := range []time.Duration{-5*time.Minute - time.Second, 5*time.Minute + time.Second} {
			tr := &finchreauth.Transport{Now: func() time.Time { return at.Add(skew) }}
			assert.Equal(t, 400, post(tr.WebhookHandler(vectorSecret), vectorTS, vectorBody, vectorSig), skew)
			tr.Close()
		}
		tr := &finchreauth.Transport{Now: func() time.Time { return at.Add(5 * time.Minute) }}
		defer tr.Close()
		assert.Equal(t, 200, post(tr.WebhookHandler(vectorSecret), vectorTS, vectorBody, vectorSig), "5 minutes is fine")
	})
	t.Run("our side of a rotation: either secret verifies", func(t *testing.T) {
		h := tr.WebhookHandler(otherSecret, vectorSecret)
		assert.Equal(t, 200, post(h, vectorTS, vectorBody, vectorSig))
	})
	t.Run("methods and size", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/finch/webhooks", nil))
		assert.Equal(t, 405, rec.Code)
		assert.Equal(t, 413, post(h, vectorTS, strings.Repeat(" ", 1<<20+1), vectorSig))
	})
}

// webhookRig is the reconnect rig with Finch's webhooks sent to the
// application.
func webhookRig(t *testing.T, configure func(r *reconnectRig, w *finchtest.Webhook)) *reconnectRig {
	t.Helper()
	var hook finchtest.Webhook
	r := newReconnectRig(t, func(r *reconnectRig) {
		hook = finchtest.Webhook{URL: r.app.URL + "/finch/webhooks", Secrets: []string{vectorSecret}}
		if configure != nil {
			configure(r, &hook)
		}
	})
	r.app.Config.Handler.(*http.ServeMux).Handle("/finch/webhooks", r.tr.WebhookHandler(vectorSecret))
	require.NoError(t, r.finch.SetWebhook(hook))
	return r
}

// TestWebhookOpensTheEpisode: account.updated with status reauth opens the
// episode through the same pipeline as a detection: one notification in
// all, whichever comes first, and however often Finch delivers it.
func TestWebhookOpensTheEpisode(t *testing.T) {
	for _, shape := range []struct {
		name       string
		legacy     bool
		stringAuth bool
	}{{"current shape", false, false}, {"error_reauth", true, false}, {"authentication_method as a string", false, true}} {
		t.Run(shape.name, func(t *testing.T) {
			r := webhookRig(t, func(_ *reconnectRig, w *finchtest.Webhook) {
				w.LegacyStatus, w.StringAuthMethod = shape.legacy, shape.stringAuth
			})
			r.finch.Break(r.connID) // delivers the webhook, and returns once it was answered
			deliveries := r.finch.Webhooks()
			require.Len(t, deliveries, 1)
			assert.Equal(t, 200, deliveries[0].StatusCode)
			require.Eventually(t, func() bool { return r.notes.n.Load() == 1 }, 10*time.Second, time.Millisecond, "errors: %v", r.errs.all())
			e := r.notes.delivered()[0]
			assert.Equal(t, "webhook", e.Source)
			assert.Equal(t, r.connID, e.Connection.ConnectionID)
			assert.Equal(t, "Acme Corp", e.Connection.CustomerName, "described with the token the Store holds")
			assert.NotEmpty(t, e.ReconnectURL)
			assert.True(t, r.needsReauth(t))

			// Finch delivers it again; then a call sees the 401.
			_, err := r.finch.Redeliver(context.Background(), deliveries[0].EventID)
			require.NoError(t, err)
			assert.Equal(t, 401, r.call(t, r.token))
			r.tr.Close()
			assert.EqualValues(t, 1, r.notes.n.Load(), "one notification in all")
		})
	}
	t.Run("the 401 first, then the webhook", func(t *testing.T) {
		r := webhookRig(t, func(_ *reconnectRig, w *finchtest.Webhook) { w.URL = "" })
		r.finch.Break(r.connID)
		require.Equal(t, 401, r.call(t, r.token))
		require.EqualValues(t, 1, r.notes.n.Load())
		require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: r.app.URL + "/finch/webhooks", Secrets: []string{vectorSecret}}))
		_, err := r.finch.SendWebhook(context.Background(), "account.updated", map[string]any{
			"connection_id": r.connID, "data": map[string]any{"status": "reauth"},
		})
		require.NoError(t, err)
		r.tr.Close()
		assert.EqualValues(t, 1, r.notes.n.Load())
	})
	t.Run("replicas agree on an event", func(t *testing.T) {
		r := webhookRig(t, func(_ *reconnectRig, w *finchtest.Webhook) { w.URL = "" })
		other := &finchreauth.Transport{Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store, Notifier: r.notes, Connect: r.connect, Now: r.clk.Now}
		defer other.Close()
		otherApp := httptest.NewServer(other.WebhookHandler(vectorSecret))
		defer otherApp.Close()
		require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: otherApp.URL, Secrets: []string{vectorSecret}}))
		r.finch.Break(r.connID)
		id := r.finch.Webhooks()[0].EventID
		require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: r.app.URL + "/finch/webhooks", Secrets: []string{vectorSecret}}))
		require.Eventually(t, func() bool { return r.notes.n.Load() == 1 }, 10*time.Second, time.Millisecond)
		_, err := r.finch.Redeliver(context.Background(), id) // to the other replica this time
		require.NoError(t, err)
		other.Close()
		r.tr.Close()
		assert.EqualValues(t, 1, r.notes.n.Load())
	})
}

// TestWebhookEndsTheEpisode: account.updated with status connected is a
// recovery once Finch confirms it for the saved token: the episode ends once
// (OnReconnected, Via "webhook", with the working token: it was empty), and
// the connection's latched tokens reach Finch again.
func TestWebhookEndsTheEpisode(t *testing.T) {
	r := webhookRig(t, nil)
	r.breakAndNotify(t) // the webhook and the 401
	require.Equal(t, 401, r.call(t, r.token), "latched")
	r.clk.advance(time.Hour)
	r.finch.SetStatus(r.connID, "connected") // a sandbox heal: the same token works again
	assert.False(t, r.needsReauth(t))
	assert.Equal(t, 200, r.call(t, r.token))
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.Equal(t, "webhook", reconnected[0].Via)
	assert.Equal(t, time.Hour, reconnected[0].Downtime())
	assert.Equal(t, finchreauth.Token(r.token), reconnected[0].Token, "the token that works")
}

// TestWebhookOneEntity: a webhook for one entity does not mark the others
// broken, and the episode ends when that entity works again.
func TestWebhookOneEntity(t *testing.T) {
	r := webhookRig(t, nil)
	r.finch.SetWebhook(finchtest.Webhook{})
	conn, _ := r.finch.Connection(r.connID)
	r.finch.SetStatus(r.connID, "connected")
	// A second entity, so that one can break alone.
	tok2 := r.finch.AddConnection(finchtest.Connection{ID: r.connID, CustomerName: "Acme Corp", Entities: []finchtest.Entity{{ID: "ent_a", Name: "Acme East"}, {ID: "ent_b", Name: "Acme West"}}})
	_ = tok2
	_ = conn
	require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: r.app.URL + "/finch/webhooks", Secrets: []string{vectorSecret}}))
	r.finch.BreakEntity(r.connID, "ent_a")
	require.Eventually(t, func() bool { return r.notes.n.Load() == 1 }, 10*time.Second, time.Millisecond, "errors: %v", r.errs.all())
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Equal(t, []string{"ent_a"}, st.BrokenEntities)
	e := r.notes.delivered()[0]
	var broken []string
	for _, en := range e.BrokenEntities() {
		broken = append(broken, en.ID)
	}
	assert.Equal(t, []string{"ent_a"}, broken, "the event says which entity needs reconnecting")
	for _, en := range e.Connection.Entities {
		if en.ID == "ent_b" {
			assert.Equal(t, "connected", en.Status, "and which still works")
		}
	}
	r.finch.SetEntityStatus(r.connID, "ent_a", "connected")
	assert.False(t, r.needsReauth(t))
}

// TestWebhookIgnoresWhatItDoesNotKnow: other event types and statuses are
// acknowledged and change nothing; a Store failure answers 500 so that
// Finch delivers again.
func TestWebhookIgnoresWhatItDoesNotKnow(t *testing.T) {
	r := webhookRig(t, nil)
	for _, ev := range []struct {
		typ     string
		payload map[string]any
	}{
		{"job.benefit_create.updated", map[string]any{"connection_id": r.connID, "data": map[string]any{"status": "reauth"}}},
		{"account.updated", map[string]any{"connection_id": r.connID, "data": map[string]any{"status": "pending"}}},
		{"account.updated", map[string]any{"data": map[string]any{"status": "reauth"}}},
		{"company.updated", map[string]any{"company_id": "x"}},
	} {
		d, err := r.finch.SendWebhook(context.Background(), ev.typ, ev.payload)
		require.NoError(t, err)
		assert.Equal(t, 200, d.StatusCode, ev.typ)
	}
	assert.False(t, r.needsReauth(t))
	assert.Zero(t, r.notes.n.Load())

	failing := &failingStore{Store: r.store}
	tr := &finchreauth.Transport{Store: failing, Now: r.clk.Now}
	defer tr.Close()
	srv := httptest.NewServer(tr.WebhookHandler(vectorSecret))
	defer srv.Close()
	require.NoError(t, r.finch.SetWebhook(finchtest.Webhook{URL: srv.URL, Secrets: []string{vectorSecret}}))
	r.finch.Break(r.connID)
	assert.Equal(t, 500, r.finch.Webhooks()[len(r.finch.Webhooks())-1].StatusCode)
}

// failingStore fails every call.
type failingStore struct{ finchreauth.Store }

func (failingStore) Get(context.Context, string) (finchreauth.Record, error) {
	return finchreauth.Record{}, errors.New("database down")
}
func (failingStore) Put(context.Context, finchreauth.Record) (int64, error) {
	return 0, errors.New("database down")
}

// statusRig is a Transport on finchtest for one connection whose token the
// Store holds, with Finch's webhooks held so that the test delivers them:
// late, twice, in any order.
func statusRig(t *testing.T, c finchtest.Connection) (*reconnectRig, *[]finchreauth.Reconnection) {
	t.Helper()
	r := webhookRig(t, func(r *reconnectRig, w *finchtest.Webhook) {})
	var disconnected []finchreauth.Reconnection
	r.tr.OnDisconnected = func(_ context.Context, rec finchreauth.Reconnection) {
		r.mu.Lock()
		disconnected = append(disconnected, rec)
		r.mu.Unlock()
	}
	c.ID = r.connID
	tok := r.finch.AddConnection(c)
	r.token = tok
	require.NoError(t, r.tr.SaveToken(context.Background(), r.connID, finchreauth.Token(tok)))
	r.finch.HoldWebhooks(true)
	return r, &disconnected
}

// deliverAll delivers the held webhooks in the order given by order (indexes
// into what is held), each as Finch would deliver it again later.
func deliverAll(t *testing.T, r *reconnectRig, order ...int) {
	t.Helper()
	held := r.finch.HeldWebhooks()
	if order == nil {
		for i := range held {
			order = append(order, i)
		}
	}
	for _, i := range order {
		d, err := r.finch.DeliverHeld(context.Background(), held[i].EventID, finchtest.TimestampAtDelivery)
		require.NoError(t, err)
		require.Equal(t, 200, d.StatusCode)
	}
	waitIdle(t, r.tr)
}

// TestAssistedConnectionIsRepairedInThePayrollSystem: an assisted connection
// whose admin lost its permissions has an episode whose remedy is the
// payroll system: the Event and Status say so, no Connect session is ever
// minted for it (not for the notification, the reminders or the dashboard's
// button), and it ends when Finch says the permissions are back.
func TestAssistedConnectionIsRepairedInThePayrollSystem(t *testing.T) {
	r, _ := statusRig(t, finchtest.Connection{CustomerName: "Acme Corp", Assisted: true})
	ctx := context.Background()
	r.finch.SetStatus(r.connID, "error_permissions")
	deliverAll(t, r)
	require.Len(t, r.notes.delivered(), 1, "errors: %v", r.errs.all())
	e := r.notes.delivered()[0]
	assert.Equal(t, "error_permissions", e.Status)
	assert.True(t, e.Connection.Assisted)
	assert.Empty(t, e.ReconnectURL, "no link: Connect cannot repair it")
	st, err := r.tr.Status(ctx, r.connID)
	require.NoError(t, err)
	assert.True(t, st.NeedsReauth)
	assert.Equal(t, "error_permissions", st.Need)
	assert.Empty(t, st.ReconnectURL)
	_, err = r.tr.ReconnectURL(ctx, r.connID)
	assert.Error(t, err, "the dashboard's button has no link to give")
	r.clk.advance(25 * time.Hour)
	require.NoError(t, r.tr.Remind(ctx))
	waitIdle(t, r.tr)
	require.Len(t, r.notes.delivered(), 2)
	assert.Empty(t, r.notes.delivered()[1].ReconnectURL)
	assert.Zero(t, r.finch.Calls("POST", "/connect/sessions/reauthenticate"), "no Connect session, ever")

	r.finch.SetStatus(r.connID, "connected")
	deliverAll(t, r)
	assert.False(t, r.needsReauth(t))
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	assert.Equal(t, "error_permissions", reconnected[0].Status)
}

// TestPendingNotifiesNobody: an assisted connection being set up answers
// 202 and Finch says "pending", then "processing": nobody is told, and
// Status shows it.
func TestPendingNotifiesNobody(t *testing.T) {
	r, _ := statusRig(t, finchtest.Connection{CustomerName: "Acme Corp", Assisted: true})
	r.finch.SetStatus(r.connID, "pending")
	r.finch.SetStatus(r.connID, "processing")
	deliverAll(t, r)
	assert.Equal(t, 202, r.call(t, r.token))
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth)
	assert.Equal(t, "processing", st.FinchStatus)
	assert.Empty(t, r.notes.delivered())
}

// TestDisconnectedEndsTheEpisode: Finch says the connection is gone: the
// open episode ends as disconnected (OnDisconnected, not OnReconnected), and
// no reminder follows.
func TestDisconnectedEndsTheEpisode(t *testing.T) {
	r, disconnected := statusRig(t, finchtest.Connection{CustomerName: "Acme Corp"})
	ctx := context.Background()
	r.finch.Break(r.connID)
	deliverAll(t, r)
	require.True(t, r.needsReauth(t))
	require.Len(t, r.notes.delivered(), 1)
	// The application disconnects it at Finch (POST /disconnect).
	req, _ := http.NewRequest("POST", r.finch.URL+"/disconnect", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.finch.Client().Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, 200, resp.StatusCode)
	deliverAll(t, r)
	st, err := r.tr.Status(ctx, r.connID)
	require.NoError(t, err)
	assert.False(t, st.NeedsReauth, "history: %v", st.History)
	assert.Equal(t, "disconnected", st.FinchStatus)
	r.clk.advance(30 * 24 * time.Hour)
	require.NoError(t, r.tr.Remind(ctx))
	waitIdle(t, r.tr)
	assert.Len(t, r.notes.delivered(), 1, "no reminder")
	reconnected, _ := r.hooks()
	assert.Empty(t, reconnected)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, *disconnected, 1)
	assert.Equal(t, "disconnected", (*disconnected)[0].Via)
}

// TestWebhooksInAnyOrder: Finch breaks the connection, heals it, breaks it
// again and heals it; its webhooks arrive late, in reverse order and twice.
// Whatever the order, the episode ends open exactly when Finch's newest
// status needs the employer: here, not.
func TestWebhooksInAnyOrder(t *testing.T) {
	for _, order := range [][]int{{3, 2, 1, 0}, {0, 0, 1, 3, 2, 2}, {1, 3, 0, 2, 3}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			r, _ := statusRig(t, finchtest.Connection{CustomerName: "Acme Corp"})
			for _, s := range []string{"reauth", "connected", "reauth", "connected"} {
				r.finch.SetStatus(r.connID, s)
				r.clk.advance(time.Minute)
			}
			deliverAll(t, r, order...)
			st, err := r.tr.Status(context.Background(), r.connID)
			require.NoError(t, err)
			assert.False(t, st.NeedsReauth, "history:\n%v", st.History)
			assert.Equal(t, 200, r.call(t, r.token))
		})
	}
}
