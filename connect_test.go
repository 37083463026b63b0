package finchreauth_test

import (
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNilConnectValidate: a nil *Connect is a configuration error that
// Validate reports, not a panic.
func TestNilConnectValidate(t *testing.T) {
	var c *finchreauth.Connect
	var err error
	require.NotPanics(t, func() { err = c.Validate() })
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "finchreauth: "), err.Error())
	assert.Contains(t, err.Error(), "nil")
}
