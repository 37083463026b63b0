package finchreauth_test

import (
	"errors"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrapClient(t *testing.T) {
	ff := newFakeFinch()
	ff.add("dead", "conn_1")
	ff.setBroken("dead", true)
	jar, _ := cookiejar.New(nil)
	errRedirect := errors.New("no redirects")
	orig := &http.Client{
		Transport:     ff,
		Jar:           jar,
		Timeout:       7 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	origCopy := *orig
	tr := &finchreauth.Transport{}
	defer tr.Close()
	c := tr.WrapClient(orig)

	require.NotSame(t, orig, c)
	assert.Same(t, jar, c.Jar)
	assert.Equal(t, 7*time.Second, c.Timeout)
	assert.ErrorIs(t, c.CheckRedirect(nil, nil), errRedirect)
	assert.Same(t, ff, orig.Transport, "the original client is untouched")
	assert.Equal(t, origCopy.Timeout, orig.Timeout)

	resp, err := c.Get(api + "/employer/company") // no token: the fake says invalid_token_error
	require.NoError(t, err)
	readAll(t, resp)
	assert.EqualValues(t, 1, ff.count("/employer/company"), "requests go through the original's transport")

	req := newRequest(t, "GET", api+"/employer/company", "dead", nil)
	for range 2 {
		resp, err := c.Do(req)
		require.NoError(t, err)
		readAll(t, resp)
		assert.True(t, finchreauth.IsReauthResponse(resp))
	}
	assert.EqualValues(t, 2, ff.count("/employer/company"), "the second call was latched by the wrapping Transport")

	t.Run("nil client", func(t *testing.T) {
		c := tr.WrapClient(nil)
		assert.NotNil(t, c.Transport)
		assert.Zero(t, c.Timeout)
	})
}
