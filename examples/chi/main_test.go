package main

import (
	"testing"

	"github.com/finchkit/finchreauth/examples/internal/tenants/tenantstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun plays the scenario, as CI does with go run: it must succeed,
// tell the story, show no secret and leave nothing running.
func TestRun(t *testing.T) {
	tenantstest.Play(t, routes)
}

// TestRefusals: only a tenant's members get past /tenants/{tenant}/.
func TestRefusals(t *testing.T) { tenantstest.Refusals(t, routes) }
