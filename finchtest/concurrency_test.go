package finchtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
)

// TestConcurrentHammer sends 10,000 concurrent requests through the
// server's client while another goroutine breaks and heals the connection
// and injects faults: every answer must be one of the expected ones, and
// the counters exact.
func TestConcurrentHammer(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 10000
	s := newServer(t)
	tok := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, tok)
	client := s.Client()

	var ok200, reauth, faulted, other atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			path := "/employer/directory"
			if i%2 == 0 {
				path = "/introspect"
			}
			r, _ := http.NewRequest("GET", s.URL+path, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			res, err := client.Do(r)
			if err != nil {
				other.Add(1)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var e struct {
				FinchCode string `json:"finch_code"`
			}
			json.Unmarshal(b, &e)
			switch {
			case res.StatusCode == 200:
				ok200.Add(1)
			case res.StatusCode == 401 && e.FinchCode == "reauthenticate_user":
				reauth.Add(1)
			case res.StatusCode == 503:
				faulted.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // meddle while the requests run
		defer wg.Done()
		<-start
		for i := range 200 {
			if i%2 == 0 {
				s.Break(c.ID)
			} else {
				s.SetStatus(c.ID, "connected")
			}
			s.InjectFault(finchtest.Fault{Path: "/employer/directory", Status: 503, Times: 1})
			s.Connection(c.ID)
			s.Calls("", "")
		}
	}()
	close(start)
	wg.Wait()

	if other.Load() != 0 {
		t.Errorf("%d unexpected answers or errors", other.Load())
	}
	if total := ok200.Load() + reauth.Load() + faulted.Load(); total != n {
		t.Errorf("answers = %d, want %d", total, n)
	}
	if got := s.Calls("GET", "/introspect"); got != n/2 {
		t.Errorf("Calls(introspect) = %d, want %d", got, n/2)
	}
	if got := s.Calls("GET", "/employer/directory"); got != n/2 {
		t.Errorf("Calls(directory) = %d, want %d", got, n/2)
	}
	if f := faulted.Load(); f > 200 {
		t.Errorf("%d faulted answers from 200 single-use faults", f)
	}
}

// TestConcurrentReconnects exchanges many codes of one connection at
// once: exactly the last token issued stays alive.
func TestConcurrentReconnects(t *testing.T) {
	const n = 200
	s := newServer(t)
	first := s.AddConnection(finchtest.Connection{})
	c := connectionOf(t, s, first)
	codes := make([]string, n)
	for i := range codes {
		codes[i] = s.IssueCode(c.ID)
	}
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tokens[i] = redeem(s, codes[i])
		})
	}
	// The same code raced by several goroutines is redeemed once.
	shared := s.IssueCode(c.ID)
	sharedTokens := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			if tok := redeem(s, shared); tok != "" {
				sharedTokens <- tok
			}
		})
	}
	wg.Wait()
	close(sharedTokens)
	if len(sharedTokens) != 1 {
		t.Fatalf("shared code redeemed %d times", len(sharedTokens))
	}

	alive := 0
	for _, tok := range append(tokens, first, <-sharedTokens) {
		if tok == "" {
			t.Fatal("an exchange failed")
		}
		r, _ := http.NewRequest("GET", s.URL+"/employer/company", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		res, err := s.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 200 {
			alive++
		}
	}
	if alive != 1 {
		t.Errorf("%d tokens alive, want exactly 1: the last issued", alive)
	}
}

// redeem exchanges an embedded-flow code and returns the token, or "".
func redeem(s *finchtest.Server, code string) string {
	b, _ := json.Marshal(map[string]string{"client_id": s.ClientID, "client_secret": s.ClientSecret, "code": code})
	res, err := s.Client().Post(s.URL+"/auth/token", "application/json", strings.NewReader(string(b)))
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&out)
	return out.AccessToken
}
