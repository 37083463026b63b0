package finchreauth_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAPIError(t *testing.T) {
	t.Run("fields", func(t *testing.T) {
		resp := jsonResponse(nil, 401, reauthJSON)
		resp.Header.Set("finch-request-id", "req_abc") // header names are case-insensitive
		e := finchreauth.ParseAPIError(resp)
		require.NotNil(t, e)
		assert.Equal(t, 401, e.StatusCode)
		assert.Equal(t, 401, e.Code)
		assert.Equal(t, "authentication_error", e.Name)
		assert.Equal(t, "reauthenticate_user", e.FinchCode)
		assert.Equal(t, "Please reauthenticate user", e.Message)
		assert.Equal(t, "req_abc", e.RequestID)
		assert.Equal(t, "finchreauth: finch API error 401 authentication_error (reauthenticate_user): Please reauthenticate user [request req_abc]", e.Error())
		assert.True(t, e.IsReauth())
		assert.ErrorIs(t, e, finchreauth.ErrReauthRequired)
		assert.ErrorIs(t, fmt.Errorf("sync failed: %w", e), finchreauth.ErrReauthRequired)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, reauthJSON, string(b), "the body still reads the same")
	})
	t.Run("success has no error", func(t *testing.T) {
		assert.Nil(t, finchreauth.ParseAPIError(jsonResponse(nil, 200, `{}`)))
		assert.Nil(t, finchreauth.ParseAPIError(nil))
	})
	t.Run("other errors", func(t *testing.T) {
		e := finchreauth.ParseAPIError(jsonResponse(nil, 429, `{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_api_ip_rl","message":"slow down"}`))
		assert.Equal(t, "finch_api_ip_rl", e.FinchCode)
		assert.False(t, e.IsReauth())
		assert.NotErrorIs(t, e, finchreauth.ErrReauthRequired)
	})
	t.Run("reauth code on a non-401 is not a re-authentication", func(t *testing.T) {
		e := finchreauth.ParseAPIError(jsonResponse(nil, 500, reauthJSON))
		assert.False(t, e.IsReauth())
	})
	t.Run("not JSON", func(t *testing.T) {
		e := finchreauth.ParseAPIError(jsonResponse(nil, 502, "<html>Bad Gateway</html>"))
		assert.Equal(t, 502, e.StatusCode)
		assert.Empty(t, e.Name)
		assert.Equal(t, "finchreauth: finch API error 502", strings.Split(e.Error(), " [")[0])
	})
	t.Run("body is kept out of Error", func(t *testing.T) {
		e := finchreauth.ParseAPIError(jsonResponse(nil, 400, `{"code":400,"name":"invalid_request_error","extra":"do-not-print"}`))
		assert.NotContains(t, e.Error(), "do-not-print")
		assert.Contains(t, string(e.Body), "do-not-print")
	})
}

// sdkError has the shape of the official Finch Go SDK's error
// (*finchgo.Error in github.com/Finch-API/finch-api-go/v2): StatusCode,
// Request and Response fields, and the body in a JSON field whose RawJSON
// method returns it. It has no RawJSON method of its own. By the time the
// SDK returns it, it has read the response body.
type sdkError struct {
	StatusCode int
	Request    *http.Request
	Response   *http.Response
	JSON       sdkErrorJSON
}

type sdkErrorJSON struct{ raw string }

func (j sdkErrorJSON) RawJSON() string { return j.raw }

func (e *sdkError) Error() string { return fmt.Sprintf("GET \"/x\": %d %s", e.StatusCode, e.JSON.raw) }

func TestIsReauth(t *testing.T) {
	drained := func(r *http.Response) *http.Response { io.ReadAll(r.Body); return r }
	marked := func() *http.Response {
		r := jsonResponse(nil, 401, reauthJSON)
		r.Header.Set(finchreauth.Header, finchreauth.Detected)
		return drained(r)
	}
	sdk := func(status int, resp *http.Response, raw string) error {
		return &sdkError{StatusCode: status, Response: resp, JSON: sdkErrorJSON{raw}}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"APIError", finchreauth.ParseAPIError(jsonResponse(nil, 401, reauthJSON)), true},
		{"wrapped APIError", fmt.Errorf("x: %w", finchreauth.ParseAPIError(jsonResponse(nil, 401, reauthJSON))), true},
		{"other APIError", finchreauth.ParseAPIError(jsonResponse(nil, 401, `{"name":"invalid_token_error"}`)), false},
		{"SDK error, response marked by a Transport", sdk(401, marked(), reauthJSON), true},
		{"SDK error wrapped with %w", fmt.Errorf("sync: %w", sdk(401, marked(), reauthJSON)), true},
		{"SDK error wrapped twice", fmt.Errorf("job: %w", fmt.Errorf("sync: %w", sdk(401, marked(), reauthJSON))), true},
		{"joined SDK error", errors.Join(errors.New("a"), sdk(401, marked(), reauthJSON)), true},
		{"SDK error, unmarked response still unread", sdk(401, jsonResponse(nil, 401, reauthJSON), reauthJSON), true},
		// Documented: without a Transport in the SDK's chain, the body
		// the SDK read is gone from the response.
		{"SDK error, unmarked response the SDK read", sdk(401, drained(jsonResponse(nil, 401, reauthJSON)), reauthJSON), false},
		{"SDK error, other 401", sdk(401, drained(jsonResponse(nil, 401, `{"code":401,"name":"invalid_token_error"}`)), `{"code":401,"name":"invalid_token_error"}`), false},
		{"SDK error, 500 with a reauth-looking body", sdk(500, jsonResponse(nil, 500, `{"code":500,"finch_code":"reauthenticate_user"}`), ""), false},
		{"SDK error without a response", sdk(401, nil, reauthJSON), false},
		{"plain error", errors.New("reauthenticate_user"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, finchreauth.IsReauth(tc.err))
		})
	}
}

func TestIsReauthResponse(t *testing.T) {
	assert.False(t, finchreauth.ParseAPIError(nil).IsReauth())
	assert.False(t, finchreauth.ParseAPIError(jsonResponse(nil, 200, reauthJSON)).IsReauth())
	resp := jsonResponse(nil, 401, reauthJSON)
	assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, reauthJSON, string(b), "the body is replayed")
}

func TestNilAPIErrorPrints(t *testing.T) {
	var err error = finchreauth.ParseAPIError(jsonResponse(nil, 202, `{}`))
	assert.True(t, err != nil, "the typed-nil trap the doc warns about")
	assert.Equal(t, "finchreauth: <nil *APIError>", err.Error())
}

func TestHeader(t *testing.T) {
	resp := jsonResponse(nil, 401, `{}`)
	resp.Header.Set(finchreauth.Header, finchreauth.Latched)
	assert.True(t, finchreauth.ParseAPIError(resp).IsReauth())
	resp.Header.Set(finchreauth.Header, "something else")
	assert.False(t, finchreauth.ParseAPIError(resp).IsReauth())
}

// bigError is a Finch error body of about size bytes: the fields Finch
// sends, with finch_code first or after a message of size bytes. The
// message is random hex repeated at a distance gzip's window does not
// reach, so that gzip cannot shrink it below about half.
func bigError(size int, finchCodeFirst bool) string {
	block := make([]byte, 24<<10)
	rand.NewChaCha8([32]byte{1}).Read(block) // not secret: padding
	msg := strings.Repeat(hex.EncodeToString(block), size/len(block)/2+1)[:size]
	if finchCodeFirst {
		return `{"finch_code":"reauthenticate_user","code":401,"name":"authentication_error","message":"` + msg + `"}`
	}
	return `{"code":401,"name":"authentication_error","message":"` + msg + `","finch_code":"reauthenticate_user"}`
}

func gzipped(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	require.NoError(t, err)
	_, err = w.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.String()
}

// TestBigErrorBodies: a 401 body larger than the 64 KiB that is read is
// still recognised when finch_code comes within those 64 KiB (the members
// before the cut are read), plain or gzip'd, through ParseAPIError and
// through a Transport; the body replays exactly and its Close reaches the
// original once. A finch_code past 64 KiB is not seen (documented limit).
func TestBigErrorBodies(t *testing.T) {
	cases := []struct {
		name string
		size int
		gzip bool
		want bool
	}{
		{"100 KiB, finch_code first", 100 << 10, false, true},
		{"10 MiB, finch_code first", 10 << 20, false, true},
		{"100 KiB gzip, finch_code first", 100 << 10, true, true},
		{"10 MiB gzip, finch_code first", 10 << 20, true, true},
		{"100 KiB, finch_code past 64 KiB", 100 << 10, false, false},
		{"10 MiB gzip, finch_code past 64 KiB", 10 << 20, true, false},
	}
	for _, tc := range cases {
		b := bigBody{body: bigError(tc.size, tc.want)}
		if tc.gzip {
			b.body, b.encoding = gzipped(t, b.body), "gzip"
			// 100 KiB compresses below the cap, which then cuts the
			// decompressed JSON; 10 MiB does not: the cap cuts the
			// compressed stream itself.
			require.Equal(t, tc.size > 1<<20, len(b.body) > 64<<10, "%d compressed bytes", len(b.body))
		}
		t.Run(tc.name+"/ParseAPIError", func(t *testing.T) {
			resp, orig := b.respond(nil)
			e := finchreauth.ParseAPIError(resp)
			assert.Equal(t, tc.want, e.IsReauth())
			assert.Equal(t, 401, e.Code)
			assert.Equal(t, "authentication_error", e.Name)
			b.checkReplay(t, resp, orig)
		})
		t.Run(tc.name+"/Transport", func(t *testing.T) {
			var orig *closeCounter
			base := &staticRT{fn: func(req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/introspect" {
					return jsonResponse(req, 401, `{"code":401,"name":"invalid_token_error"}`), nil
				}
				var resp *http.Response
				resp, orig = b.respond(req)
				return resp, nil
			}}
			tr := &finchreauth.Transport{Base: base}
			defer tr.Close()
			resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok", nil))
			require.NoError(t, err)
			want := ""
			if tc.want {
				want = finchreauth.Detected
			}
			assert.Equal(t, want, resp.Header.Get(finchreauth.Header))
			b.checkReplay(t, resp, orig)
		})
	}
}

// bigBody is a 401's body, as sent, and its Content-Encoding.
type bigBody struct{ body, encoding string }

// respond returns a 401 with b and the body whose closes it counts.
func (b bigBody) respond(req *http.Request) (*http.Response, *closeCounter) {
	orig := &closeCounter{Reader: strings.NewReader(b.body)}
	resp := jsonResponse(req, 401, "")
	resp.Body, resp.ContentLength = orig, int64(len(b.body))
	if b.encoding != "" {
		resp.Header.Set("Content-Encoding", b.encoding)
	}
	return resp, orig
}

// checkReplay reads resp's body, which must be b's bytes, and closes it
// twice: the original is closed once.
func (b bigBody) checkReplay(t *testing.T, resp *http.Response, orig *closeCounter) {
	t.Helper()
	got := readAll(t, resp) // closes
	assert.True(t, bytes.Equal([]byte(b.body), got), "replayed %d bytes of %d", len(got), len(b.body))
	require.NoError(t, resp.Body.Close())
	assert.EqualValues(t, 1, orig.closes.Load(), "the original is closed once")
}

// TestErrorBodyMembers: the top-level members are read one by one, as
// json.Unmarshal would read them, up to a cut.
func TestErrorBodyMembers(t *testing.T) {
	cases := []struct {
		name, body string
		want       finchreauth.APIError
	}{
		{"nested finch_code is not the top-level one", `{"error":{"finch_code":"reauthenticate_user"},"name":"n"}`, finchreauth.APIError{Name: "n"}},
		{"nested, then the top-level one", `{"error":{"finch_code":"x","a":[{"finch_code":"y"}]},"finch_code":"reauthenticate_user"}`, finchreauth.APIError{FinchCode: "reauthenticate_user"}},
		{"nested object cut", `{"name":"n","error":{"finch_code":"reauthenticate_user"`, finchreauth.APIError{Name: "n"}},
		{"cut inside a value", `{"name":"n","finch_code":"reauthenticate_us`, finchreauth.APIError{Name: "n"}},
		{"cut after a value", `{"finch_code":"reauthenticate_user","message":"Please re`, finchreauth.APIError{FinchCode: "reauthenticate_user"}},
		{"a number at the cut may be cut", `{"name":"n","code":40`, finchreauth.APIError{Name: "n"}},
		{"a number before the cut is whole", `{"code":401,"name":"n`, finchreauth.APIError{Code: 401}},
		{"wrong type left zero", `{"code":"x","name":7,"finch_code":["reauthenticate_user"],"message":"m"}`, finchreauth.APIError{Message: "m"}},
		{"duplicate keys: last wins", `{"finch_code":"reauthenticate_user","finch_code":"other"}`, finchreauth.APIError{FinchCode: "other"}},
		{"duplicate keys: last wins, even of the wrong type", `{"finch_code":"reauthenticate_user","finch_code":17}`, finchreauth.APIError{}},
		{"keys match as json.Unmarshal matches them", `{"Finch_Code":"reauthenticate_user"}`, finchreauth.APIError{FinchCode: "reauthenticate_user"}},
		{"invalid UTF-8 in a value", "{\"name\":\"a\xffb\",\"finch_code\":\"reauthenticate_user\"}", finchreauth.APIError{Name: "a\ufffdb", FinchCode: "reauthenticate_user"}},
		{"invalid UTF-8 outside a string", "{\"name\":\"n\",\xff\"finch_code\":\"reauthenticate_user\"}", finchreauth.APIError{Name: "n"}},
		{"not an object", `[{"finch_code":"reauthenticate_user"}]`, finchreauth.APIError{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := finchreauth.ParseAPIError(jsonResponse(nil, 401, tc.body))
			got := finchreauth.APIError{Code: e.Code, Name: e.Name, FinchCode: e.FinchCode, Message: e.Message}
			assert.Equal(t, tc.want, got)
			if !strings.Contains(tc.name, "cut") && json.Valid([]byte(tc.body)) {
				// Where the body is whole, the reading is json.Unmarshal's.
				var u struct {
					Name      any `json:"name"`
					FinchCode any `json:"finch_code"`
				}
				err := json.Unmarshal([]byte(tc.body), &u)
				if s, ok := u.FinchCode.(string); ok && err == nil {
					assert.Equal(t, s, got.FinchCode)
				}
			}
		})
	}
}

// TestCutGzipBody: a compressed body that ends early (cut by the server or
// the network) decodes as far as it goes, as a plain body does.
func TestCutGzipBody(t *testing.T) {
	body := gzipped(t, bigError(100<<10, true))[:2000]
	resp := jsonResponse(nil, 401, body)
	resp.Header.Set("Content-Encoding", "gzip")
	e := finchreauth.ParseAPIError(resp)
	assert.True(t, e.IsReauth())
	assert.NotEmpty(t, e.Body)
	assert.True(t, bytes.Equal([]byte(body), readAll(t, resp)), "the body replays")
}
