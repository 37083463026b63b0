package finchreauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFakeFinchOverHTTP is the collapse test again, over real HTTP to the fake
// Finch: 1,000 goroutines on a token that breaks while they run.
func TestFakeFinchOverHTTP(t *testing.T) {
	const n = 1000
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{CustomerName: "Acme Corp", ProviderID: "gusto"})
	conn, _ := s.ConnectionForToken(token)

	store := &countingStore{Store: new(finchreauth.MemoryStore)}
	notes := &recorder{}
	tr := &finchreauth.Transport{Store: store, Notifier: notes, APIBaseURL: s.URL}
	defer tr.Close()
	client := tr.WrapClient(s.Client())

	get := func() (int, string, error) {
		req, _ := http.NewRequest("GET", s.URL+"/employer/directory", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	status, _, err := get()
	require.NoError(t, err)
	require.Equal(t, 200, status)

	// Break the connection through Finch's sandbox endpoint, as one would
	// against Finch's own sandbox.
	req, _ := http.NewRequest("PUT", s.URL+"/sandbox/connections/accounts", strings.NewReader(`{"connection_status":"reauth"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	var wg sync.WaitGroup
	var reauth atomic.Int64
	for range n {
		wg.Go(func() {
			status, body, err := get()
			if err != nil {
				t.Error(err)
				return
			}
			if status == 401 && strings.Contains(body, `"finch_code":"reauthenticate_user"`) {
				reauth.Add(1)
			}
		})
	}
	wg.Wait()
	waitIdle(t, tr) // the callers had their 401s at once; the handling runs on its own
	assert.EqualValues(t, n, reauth.Load(), "every caller gets Finch's 401")
	assert.Equal(t, 1, s.Calls("GET", "/introspect"))
	assert.EqualValues(t, 1, store.transitions.Load())
	require.Len(t, notes.delivered(), 1)
	e := notes.delivered()[0]
	assert.Equal(t, conn.ID, e.Connection.ConnectionID)
	assert.Equal(t, "Acme Corp", e.Connection.CustomerName)
	assert.Equal(t, "gusto", e.Connection.ProviderID)
	assert.Equal(t, conn.Products, e.Connection.Products)
	t.Logf("%d of %d calls reached the fake Finch", s.Calls("GET", "/employer/directory")-1, n)
}

// TestFakeFinchFaults: Finch's 5xx and 429 on data calls, and a proxy's HTML
// 401, are not re-authentications; they pass through as they came.
func TestFakeFinchFaults(t *testing.T) {
	s := finchtest.NewServer()
	defer s.Close()
	token := s.AddConnection(finchtest.Connection{})
	notes := &recorder{}
	tr := &finchreauth.Transport{Notifier: notes, APIBaseURL: s.URL}
	defer tr.Close()
	client := tr.WrapClient(s.Client())
	get := func(header http.Header) *http.Response {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", s.URL+"/employer/company", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		require.NoError(t, err)
		return resp
	}
	for _, status := range []int{500, 502, 503, 429} {
		s.InjectFault(finchtest.Fault{Path: "/employer/company", Status: status, Times: 1})
		resp := get(nil)
		readAll(t, resp)
		assert.Equal(t, status, resp.StatusCode)
	}
	s.InjectFault(finchtest.Fault{Path: "/employer/company", Status: 401, Body: "<html>proxy says no</html>", Times: 1})
	resp := get(nil)
	assert.Equal(t, "<html>proxy says no</html>", string(readAll(t, resp)))
	assert.EqualValues(t, 0, notes.n.Load())

	c, _ := s.ConnectionForToken(token)
	s.Break(c.ID)
	resp = get(http.Header{"Accept-Encoding": {"gzip"}})
	raw := readAll(t, resp)
	assert.Equal(t, "detected", resp.Header.Get("Finchreauth"))
	assert.True(t, bytes.Contains(raw, []byte("reauthenticate_user")))
	waitIdle(t, tr)
	assert.EqualValues(t, 1, notes.n.Load())
}
