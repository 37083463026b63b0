package finchreauth

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Fuzz targets. `go test` replays their seeds (f.Add and testdata/fuzz);
// `go test -fuzz=FuzzX -fuzztime=10m` explores.

// FuzzParseAPIError: any bytes under any Content-Type and Content-Encoding.
// No panic; the caller reads back exactly the bytes sent; what is kept is
// bounded.
func FuzzParseAPIError(f *testing.F) {
	f.Add(401, []byte(`{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`), "application/json", "")
	f.Add(401, []byte(`{"finch_code":"reauthenticate_user","finch_code":17}`), "application/json", "")
	f.Add(401, []byte("<html>401</html>"), "text/html", "")
	f.Add(401, []byte{0x1f, 0x8b, 0x08, 0x00}, "application/json", "gzip")
	f.Add(401, []byte{0x78, 0x9c, 0x03, 0x00}, "application/json", "deflate")
	f.Add(429, []byte(`{"code":"429"}`), "", "br")
	f.Add(500, []byte("\xff\xfe{\"finch_code\":\"reauthenticate_user\"}"), "application/json; charset=utf-16", "identity")
	// Bodies past the 64 KiB read: members before the cut count, nested
	// ones never, a number at the cut is not trusted.
	big := `{"finch_code":"reauthenticate_user","message":"` + strings.Repeat("x", maxPeek) + `"}`
	f.Add(401, []byte(big), "application/json", "")
	f.Add(401, []byte(`{"message":"`+strings.Repeat("x", maxPeek)+`","finch_code":"reauthenticate_user"}`), "application/json", "")
	f.Add(401, []byte(`{"error":{"finch_code":"reauthenticate_user"},"finch_code":"x"}`), "application/json", "")
	f.Add(401, []byte(`{"name":"n","error":{"finch_code":"reauthenticate_user"`), "application/json", "")
	f.Add(401, []byte(`{"finch_code":"reauthenticate_user","code":40`), "application/json", "")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(big))
	zw.Close()
	f.Add(401, gz.Bytes(), "application/json", "gzip")
	f.Add(401, gz.Bytes()[:gz.Len()/2], "application/json", "gzip")
	f.Fuzz(func(t *testing.T, status int, body []byte, contentType, encoding string) {
		if status < 100 || status > 999 {
			status = 401
		}
		resp := &http.Response{
			StatusCode: status,
			Header:     http.Header{"Content-Type": {contentType}, "Content-Encoding": {encoding}},
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		e := ParseAPIError(resp)
		if status < 400 {
			if e != nil {
				t.Fatal("error for a success")
			}
			return
		}
		if len(e.Body) > maxPeek {
			t.Fatalf("kept %d bytes, more than %d", len(e.Body), maxPeek)
		}
		if e.IsReauth() && status != 401 {
			t.Fatal("a re-authentication on a status other than 401")
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("replayed body differs (%d bytes read of %d, err %v)", len(got), len(body), err)
		}
	})
}

// fuzzKeys sign the genuine states of the state fuzzer.
var fuzzKeys = [][]byte{[]byte("fuzz-key-0123456789abcdef01234567"), []byte("fuzz-old-key-0123456789abcdef0123")}

// FuzzVerifyState: a state the fuzzer makes (by mutating genuine ones)
// never verifies unless it is, byte for byte, one that was signed.
func FuzzVerifyState(f *testing.F) {
	exp := time.Unix(4_000_000_000, 0)
	genuine := map[string]bool{}
	// Fixed nonces: every fuzzing process must agree on what was signed.
	for i, conn := range []string{"conn_1", "c0000000-0000-4000-8000-000000000001", strings.Repeat("x", stateMaxConnID)} {
		for _, key := range fuzzKeys {
			s := encodeState(key, conn, exp, [stateNonceLen]byte{byte(i), 1, 2, 3})
			genuine[s] = true
			f.Add(s)
		}
	}
	// A key dropped after a rotation (or never configured) signs states
	// that never verify.
	f.Add(encodeState([]byte("dropped-key-0123456789abcdef01234"), "conn_1", exp, [stateNonceLen]byte{0, 1, 2, 3}))
	f.Add("")
	f.Add(".")
	f.Add("AQ.AQ")
	f.Add(strings.Repeat("A", stateMaxLen+1))
	f.Fuzz(func(t *testing.T, state string) {
		p, err := verifyState(fuzzKeys, state, time.Unix(1_800_000_000, 0))
		switch {
		case err == nil && !genuine[state]:
			t.Fatalf("a state that was never signed verifies (connection %q)", p.connectionID)
		case err != nil && !errors.Is(err, errInvalidState) && !errors.Is(err, errExpiredState):
			t.Fatalf("unexpected error %v", err)
		case err != nil && len(state) >= 8 && strings.Contains(err.Error(), state):
			t.Fatal("the error quotes the state")
		}
	})
}

// refuseExchange answers every token exchange as Finch answers a bad code.
type refuseExchange struct{}

func (refuseExchange) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	body := `{"code":400,"name":"invalid_grant_error","message":"code invalid"}`
	return &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

// FuzzCallback: the callback handler's query and body parsing. No panic;
// every answer is a 303 to a configured URL or a JSON error; nothing is
// ever saved (no code the fuzzer makes is good).
func FuzzCallback(f *testing.F) {
	store := new(MemoryStore)
	tr := &Transport{Store: store, Base: refuseExchange{}, Connect: &Connect{
		ClientID: "client", ClientSecret: "secret", RedirectURI: "https://app.example/cb",
		StateKeys: fuzzKeys, SuccessURL: "https://app.example/ok", FailureURL: "https://app.example/failed",
		AuthorizeURLs: true, Products: []string{"company"},
	}}
	f.Cleanup(func() { tr.Close() })
	link, err := tr.ReconnectURL(context.Background(), "conn_1")
	if err != nil {
		f.Fatal(err)
	}
	u, _ := url.Parse(link)
	state := u.Query().Get("state")
	f.Add("code=abc&state="+url.QueryEscape(state), []byte(`{"code":"abc","state":"`+state+`"}`), "application/json")
	f.Add("error=access_denied&error_description=x&state="+state, []byte(`{"code":1}`), "application/json")
	f.Add("code=%zz&state=;;", []byte(`{"code":"a","state":"b"} {}`), "application/json; charset=utf-8")
	f.Add("state=&code=&code=x", []byte("code=x&state=y"), "application/x-www-form-urlencoded")
	f.Add(strings.Repeat("a=b&", 1000), bytes.Repeat([]byte("["), 10000), "application/json")
	h := tr.CallbackHandler()
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, contentType string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/cb", nil)
		req.URL.RawQuery = rawQuery
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("GET answered %d", rec.Code)
		}
		loc := rec.Header().Get("Location")
		if !strings.HasPrefix(loc, "https://app.example/failed?") {
			t.Fatalf("GET redirected to %q", loc)
		}
		if lu, err := url.Parse(loc); err != nil {
			t.Fatalf("GET redirected to %q: %v", loc, err)
		} else {
			for k := range lu.Query() {
				if k != "reason" && k != "connection_id" {
					t.Fatalf("GET redirected with %q: only reason and connection_id are ours to add", k)
				}
			}
		}

		rec = httptest.NewRecorder()
		req = httptest.NewRequest("POST", "/cb", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		h.ServeHTTP(rec, req)
		if rec.Code < 400 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("POST answered %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if _, err := tr.Token(context.Background(), "conn_1"); !errors.Is(err, ErrNotFound) {
			t.Fatal("a token was saved")
		}
	})
}
