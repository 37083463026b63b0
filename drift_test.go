package finchreauth_test

import (
	"context"
	"testing"

	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDriftAfterAReconnect (issue 19 #4): another admin reconnects (the
// first left), unticks a product and brings an entity; the Reconnection
// says what changed, and the timeline too. Before, the application learnt
// of it from syncs that returned less. With Finch's webhooks sent to the
// application, the connected webhook of the reconnect has the old token
// read while the code is exchanged, and that reading (the connection as it
// is now) once became the "before": no Drift at all.
func TestDriftAfterAReconnect(t *testing.T) {
	for _, c := range driftRigs {
		t.Run(c.name, func(t *testing.T) { testDrift(t, c.rig(t)) })
	}
}

// driftRigs: the reconnect without webhooks, and with them.
var driftRigs = []struct {
	name string
	rig  func(*testing.T) *reconnectRig
}{
	{"without webhooks", func(t *testing.T) *reconnectRig { return newReconnectRig(t, nil) }},
	{"with Finch's webhooks", func(t *testing.T) *reconnectRig { return webhookRig(t, nil) }},
}

func testDrift(t *testing.T, r *reconnectRig) {
	link := r.breakAndNotify(t)
	conn, _ := r.finch.Connection(r.connID)
	require.GreaterOrEqual(t, len(conn.Products), 2)
	lost := conn.Products[len(conn.Products)-1]
	require.NoError(t, r.finch.SetNextReconnect(r.connID, finchtest.NextReconnect{
		GrantOnly:   conn.Products[:len(conn.Products)-1],
		Username:    "second-admin@acme.example",
		AddEntities: []finchtest.Entity{{ID: "ent_new", Name: "Acme West"}},
	}))
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
	waitIdle(t, r.tr)
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	d := reconnected[0].Drift
	require.NotNil(t, d, "errors: %v", r.errs.all())
	assert.Equal(t, []string{lost}, d.ProductsLost)
	assert.Equal(t, "second-admin@acme.example", d.UsernameAfter)
	assert.NotEmpty(t, d.UsernameBefore)
	assert.Equal(t, []string{"ent_new"}, d.EntitiesAdded)
	assert.Empty(t, d.EntitiesMissing)
	assert.Empty(t, d.ProviderAfter)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	var line string
	for _, h := range st.History {
		if h.What == "drift" {
			line = h.Detail
		}
	}
	assert.Contains(t, line, "products lost: "+lost)
	assert.NotContains(t, line, "second-admin", "the timeline names no person")
}

// TestNoDriftWhenNothingChanged: a plain reconnect has no Drift.
func TestNoDriftWhenNothingChanged(t *testing.T) {
	for _, c := range driftRigs {
		t.Run(c.name, func(t *testing.T) {
			r := c.rig(t)
			link := r.breakAndNotify(t)
			callback, err := r.finch.Approve(link)
			require.NoError(t, err)
			require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"))
			waitIdle(t, r.tr)
			reconnected, _ := r.hooks()
			require.Len(t, reconnected, 1)
			assert.Nil(t, reconnected[0].Drift)
		})
	}
}
