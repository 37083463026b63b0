package replicatest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// Tokens checks, on a shared store, that a live token is never replaced by
// a dead one and that a refused save is never reported as success, with two
// Transports on the store: whose clocks disagree by two hours, and whose
// code exchanges' answers arrive in the reverse of the order in which Finch
// issued the tokens.
func Tokens(t *testing.T, store finchreauth.Store) {
	t.Run("skewed clocks", func(t *testing.T) { skewedClocks(t, store) })
	t.Run("answers in reverse order", func(t *testing.T) { reversedAnswers(t, store) })
}

// tokenRig is a fake Finch, one broken connection whose token the store
// holds, and a way to make Transports on the store.
type tokenRig struct {
	finch  *finchtest.Server
	store  finchreauth.Store
	token  string
	connID string
}

func newTokenRig(t *testing.T, store finchreauth.Store) *tokenRig {
	r := &tokenRig{finch: finchtest.NewServer(), store: store}
	t.Cleanup(r.finch.Close)
	r.token = r.finch.AddConnection(finchtest.Connection{CustomerName: "Tokens Inc"})
	c, _ := r.finch.ConnectionForToken(r.token)
	r.connID = c.ID
	tr := r.transport(t, r.finch.Client().Transport, time.Now)
	if err := tr.SaveToken(t.Context(), r.connID, finchreauth.Token(r.token)); err != nil {
		t.Fatal(err)
	}
	r.finch.Break(r.connID)
	if status := r.call(t, tr, r.token); status != 401 {
		t.Fatalf("the broken token got %d", status)
	}
	return r
}

func (r *tokenRig) transport(t *testing.T, base http.RoundTripper, now func() time.Time) *finchreauth.Transport {
	tr := &finchreauth.Transport{
		Base: base, APIBaseURL: r.finch.URL, Store: r.store, Now: now,
		Connect: &finchreauth.Connect{
			ClientID: r.finch.ClientID, ClientSecret: r.finch.ClientSecret,
			RedirectURI: "https://app.example/finch/callback", SuccessURL: "https://app.example/ok",
			StateKeys: [][]byte{[]byte("replicatest-tokens-state-key-012")}, AuthorizeURLs: true, ConnectBaseURL: r.finch.URL,
		},
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (r *tokenRig) call(t *testing.T, tr *finchreauth.Transport, token string) int {
	req, _ := http.NewRequest("GET", r.finch.URL+"/employer/company", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := tr.Flush(context.Background()); err != nil { // the handling runs on its own
		t.Fatal(err)
	}
	return resp.StatusCode
}

// reconnect takes tr's link through Connect and tr's callback, and returns
// the reason it failed with ("" for success).
func (r *tokenRig) reconnect(t *testing.T, tr *finchreauth.Transport) string {
	link, err := tr.ReconnectURL(t.Context(), r.connID)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := r.finch.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, tr, cb)
}

func serve(t *testing.T, tr *finchreauth.Transport, callback string) string {
	u, err := url.Parse(callback)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	tr.CallbackHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/finch/callback?"+u.RawQuery, nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || rec.Code != http.StatusSeeOther {
		t.Fatalf("callback answered %d %q", rec.Code, rec.Header().Get("Location"))
	}
	return loc.Query().Get("reason")
}

// works reports whether the store's token gets a 200 from Finch.
func (r *tokenRig) works(t *testing.T, tr *finchreauth.Transport) bool {
	tok, err := tr.Token(t.Context(), r.connID)
	if err != nil {
		t.Fatal(err)
	}
	return r.call(t, tr, string(tok)) == 200
}

// skewedClocks: two replicas, one clock two hours ahead of the other,
// reconnect in turn; the later reconnect's token is the live one, whichever
// clock its replica reads, and is kept.
func skewedClocks(t *testing.T, store finchreauth.Store) {
	r := newTokenRig(t, store)
	ahead := r.transport(t, r.finch.Client().Transport, func() time.Time { return time.Now().Add(time.Hour) })
	behind := r.transport(t, r.finch.Client().Transport, func() time.Time { return time.Now().Add(-time.Hour) })
	for _, order := range [][2]*finchreauth.Transport{{ahead, behind}, {behind, ahead}} {
		for _, tr := range order {
			if reason := r.reconnect(t, tr); reason != "" {
				t.Fatalf("a reconnect failed: %s", reason)
			}
			if !r.works(t, tr) {
				t.Fatal("the saved token does not work: a live token was refused for a clock")
			}
		}
	}
}

// reversedAnswers: replica A's exchange is issued first, but its answer
// arrives after replica B has exchanged and saved a later token. A's token
// is dead by then: it must be refused (superseded), and B's kept.
func reversedAnswers(t *testing.T, store finchreauth.Store) {
	r := newTokenRig(t, store)
	hold := &holdAnswer{base: r.finch.Client().Transport, release: make(chan struct{}), held: make(chan struct{})}
	a := r.transport(t, hold, time.Now)
	b := r.transport(t, r.finch.Client().Transport, time.Now)
	link, err := a.ReconnectURL(t.Context(), r.connID)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := r.finch.Approve(link)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cb)
	hold.code = u.Query().Get("code")
	var wg sync.WaitGroup
	var reasonA string
	wg.Go(func() { reasonA = serve(t, a, cb) })
	<-hold.held // Finch issued A's token; its answer is on its way
	if reason := r.reconnect(t, b); reason != "" {
		t.Fatalf("B's reconnect failed: %s", reason)
	}
	live, err := b.Token(t.Context(), r.connID)
	if err != nil {
		t.Fatal(err)
	}
	close(hold.release)
	wg.Wait()
	if reasonA != string(finchreauth.ReasonSuperseded) {
		t.Fatalf("A's late, dead token: reason %q; want superseded, never success", reasonA)
	}
	if tok, _ := b.Token(t.Context(), r.connID); tok != live || !r.works(t, b) {
		t.Fatal("the live token was replaced")
	}
}

// holdAnswer lets Finch answer the exchange of one code, then holds the
// answer until released.
type holdAnswer struct {
	base          http.RoundTripper
	code          string
	release, held chan struct{}
	once          sync.Once
}

func (h *holdAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/auth/token" || req.GetBody == nil {
		return h.base.RoundTrip(req)
	}
	body, _ := req.GetBody()
	var in struct{ Code string }
	json.NewDecoder(body).Decode(&in)
	resp, err := h.base.RoundTrip(req)
	if h.code != "" && strings.Contains(in.Code, h.code) {
		h.once.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-req.Context().Done():
		}
	}
	return resp, err
}
