package finchreauth_test

import (
	"errors"
	"fmt"
	"io"
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
	assert.False(t, finchreauth.IsReauthResponse(nil))
	assert.False(t, finchreauth.IsReauthResponse(jsonResponse(nil, 200, reauthJSON)))
	resp := jsonResponse(nil, 401, reauthJSON)
	assert.True(t, finchreauth.IsReauthResponse(resp))
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
	assert.True(t, finchreauth.IsReauthResponse(resp))
	resp.Header.Set(finchreauth.Header, "something else")
	assert.False(t, finchreauth.IsReauthResponse(resp))
}
