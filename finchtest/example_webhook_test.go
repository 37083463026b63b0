package finchtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/finchkit/finchreauth/finchtest"
)

func ExampleSignWebhook() {
	// The test vector of Finch's SDKs.
	sig := finchtest.SignWebhook("msg_2Lh9KRb0pzN4LePd3XiA4v12Axj", time.Unix(1676312382, 0),
		[]byte(`{"company_id":"720be419-0293-4d32-a707-32179b0827ab"}`), "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH")
	fmt.Println(sig)
	// Output:
	// v1,m7y0TV2C+hlHxU42wCieApTSTaA8/047OAplBqxIV/s=
}

func ExampleServer_SetWebhook() {
	s := finchtest.NewServer()
	defer s.Close()
	const secret = "5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"

	// The application's webhook endpoint.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		want := finchtest.SignWebhook(r.Header.Get("Finch-Event-Id"), parseUnix(r.Header.Get("Finch-Timestamp")), body, secret)
		var ev struct {
			EventType string `json:"event_type"`
			Data      struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		json.Unmarshal(body, &ev)
		fmt.Println("app got", ev.EventType, ev.Data.Status, "signed:", r.Header.Get("Finch-Signature") == want)
	}))
	defer app.Close()
	if err := s.SetWebhook(finchtest.Webhook{URL: app.URL + "/finch/webhook", Secrets: []string{secret}}); err != nil {
		panic(err)
	}

	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	s.Break(c.ID) // returns once the application answered

	d := s.Webhooks()[0]
	fmt.Println(strings.HasPrefix(d.EventID, "msg_"), d.EventType, d.ConnectionID == c.ID, d.Status, d.StatusCode)
	// Output:
	// app got account.updated reauth signed: true
	// true account.updated true reauth 200
}

func ExampleServer_Redeliver() {
	s := finchtest.NewServer()
	defer s.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	s.SetWebhook(finchtest.Webhook{URL: app.URL, Secrets: []string{"5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"}})
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))
	s.Break(c.ID)

	// Finch retries: the same event id and body again, freshly signed. The
	// receiver must deduplicate by event id.
	first := s.Webhooks()[0]
	d, err := s.Redeliver(context.Background(), first.EventID)
	if err != nil {
		panic(err)
	}
	fmt.Println("attempt", d.Attempt, "same id:", d.EventID == first.EventID, "same body:", string(d.Body) == string(first.Body))
	// Output:
	// attempt 2 same id: true same body: true
}

func ExampleServer_SendWebhook() {
	s := finchtest.NewServer()
	defer s.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Println(string(body))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer app.Close()
	s.SetWebhook(finchtest.Webhook{URL: app.URL, Secrets: []string{"5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"}})

	d, err := s.SendWebhook(context.Background(), "job.completed", map[string]any{
		"connection_id": "c0000000-0000-4000-8000-000000000001",
		"data":          map[string]string{"job_id": "job_1", "status": "complete"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(d.StatusCode)
	// Output:
	// {"connection_id":"c0000000-0000-4000-8000-000000000001","data":{"job_id":"job_1","status":"complete"},"event_type":"job.completed"}
	// 202
}

func parseUnix(s string) time.Time {
	var sec int64
	fmt.Sscan(s, &sec)
	return time.Unix(sec, 0)
}

// ExampleServer_HoldWebhooks makes Finch's webhooks arrive late, out of
// order and twice: the connection broke and was repaired, but the
// application hears of the repair first and of the break last.
func ExampleServer_HoldWebhooks() {
	s := finchtest.NewServer()
	defer s.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Data struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		fmt.Println("app got", ev.Data.Status)
	}))
	defer app.Close()
	s.SetWebhook(finchtest.Webhook{URL: app.URL, Secrets: []string{"5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"}})
	c, _ := s.ConnectionForToken(s.AddConnection(finchtest.Connection{}))

	s.HoldWebhooks(true)
	s.Break(c.ID)
	s.SetStatus(c.ID, "connected") // repaired before anything was delivered
	held := s.HeldWebhooks()
	fmt.Println(len(held), "held:", held[0].Status, held[1].Status)

	ctx := context.Background()
	s.DeliverHeld(ctx, held[1].EventID, finchtest.TimestampAtDelivery) // the repair first
	s.DeliverHeld(ctx, held[0].EventID, finchtest.TimestampAtDelivery) // then the break
	d, _ := s.DeliverHeld(ctx, held[0].EventID, finchtest.TimestampOfEvent)
	fmt.Println("the break again, attempt", d.Attempt, "same id:", d.EventID == held[0].EventID)
	// Output:
	// 2 held: reauth connected
	// app got connected
	// app got reauth
	// app got reauth
	// the break again, attempt 2 same id: true
}
