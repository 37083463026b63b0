package finchreauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
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

// TestStateKeyRotationMidDeploy: replicas share a Store, so a link minted
// by one replica is handed out by another and its callback lands on a
// third, while a rolling deploy runs different key lists side by side.
// The rollout of StateVerifyKeys' doc has four stages; whatever two
// neighbouring stages run at once, each verifies the other's states. Only
// stages a whole rollout apart (which never run together) refuse each
// other; and skipping the verify-only stage, as a plain prepend-and-drop
// rotation does, breaks mid-deploy.
func TestStateKeyRotationMidDeploy(t *testing.T) {
	oldKey := []byte("old-state-key-0123456789abcdef01")
	newKey := []byte("new-state-key-0123456789abcdef01")
	stages := []struct {
		name           string
		keys, verifies [][]byte
	}{
		{"1 old", [][]byte{oldKey}, nil},
		{"2 old + new verify-only", [][]byte{oldKey}, [][]byte{newKey}},
		{"3 new signs, old verifies", [][]byte{newKey}, [][]byte{oldKey}},
		{"4 new", [][]byte{newKey}, nil},
	}
	// ok[i][j]: a state signed at stage i verifies at stage j.
	ok := [4][4]bool{
		{true, true, true, false}, // old-signed: dropped at 4, LinkLifetime after 3 was everywhere
		{true, true, true, false},
		{false, true, true, true}, // new-signed: stage 1 never runs beside stage 3
		{false, true, true, true},
	}
	r := &replicas{finch: finchtest.NewServer(), store: new(finchreauth.MemoryStore)}
	t.Cleanup(r.finch.Close)
	for i, signing := range stages {
		for j, verifying := range stages {
			t.Run(signing.name+" -> "+verifying.name, func(t *testing.T) {
				a := r.replica(t, signing.keys, signing.verifies)
				b := r.replica(t, stages[(i+j)%4].keys, stages[(i+j)%4].verifies) // any stage: it only hands the link out
				c := r.replica(t, verifying.keys, verifying.verifies)
				want := "invalid_state"
				if ok[i][j] {
					want = ""
				}
				assert.Equal(t, want, r.reconnect(t, a, b, c))
			})
		}
	}
	t.Run("prepend and drop, without the verify-only stage, breaks mid-deploy", func(t *testing.T) {
		stage1 := r.replica(t, [][]byte{oldKey}, nil)
		rotated := r.replica(t, [][]byte{newKey, oldKey}, nil)
		assert.Equal(t, "", r.reconnect(t, stage1, stage1, rotated), "the rotated replica verifies the old key")
		assert.Equal(t, "invalid_state", r.reconnect(t, rotated, rotated, stage1), "a replica not yet rotated refuses the new key")
	})
}

// replicas are Transports that share one Store and one Finch, each with
// its own state keys.
type replicas struct {
	finch *finchtest.Server
	store *finchreauth.MemoryStore
}

func (r *replicas) replica(t *testing.T, keys, verifies [][]byte) *finchreauth.Transport {
	c := &finchreauth.Connect{
		ClientID: r.finch.ClientID, ClientSecret: r.finch.ClientSecret,
		RedirectURI: "https://app.example/finch/callback", SuccessURL: "https://app.example/ok",
		StateKeys: keys, StateVerifyKeys: verifies,
	}
	require.NoError(t, c.Validate())
	tr := &finchreauth.Transport{Base: r.finch.Client().Transport, APIBaseURL: r.finch.URL, Store: r.store, Connect: c}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// reconnect mints a link for a new connection on signer, hands it out from
// handout, and serves its callback on verifier; it returns the failure
// reason ("" for success).
func (r *replicas) reconnect(t *testing.T, signer, handout, verifier *finchreauth.Transport) string {
	t.Helper()
	ctx := context.Background()
	token := r.finch.AddConnection(finchtest.Connection{CustomerName: "Acme"})
	conn, _ := r.finch.ConnectionForToken(token)
	require.NoError(t, signer.SaveToken(ctx, conn.ID, finchreauth.Token(token)))
	link, err := signer.ReconnectURL(ctx, conn.ID)
	require.NoError(t, err)
	again, err := handout.ReconnectURL(ctx, conn.ID)
	require.NoError(t, err)
	require.Equal(t, link, again, "the link travels through the Store")
	callback, err := r.finch.Approve(again)
	require.NoError(t, err)
	return serveCallback(t, verifier, callback).Get("reason")
}

// TestStateVerifyKeysValidated: StateVerifyKeys are checked as StateKeys
// are, and stay out of every error and printed form of Connect.
func TestStateVerifyKeysValidated(t *testing.T) {
	verifyKey := "verify-only-key-0123456789abcdef"
	c := finchreauth.Connect{ClientID: "c", ClientSecret: "s", StateKeys: [][]byte{stateKey}, StateVerifyKeys: [][]byte{[]byte(verifyKey)}}
	require.NoError(t, c.Validate())

	c.StateVerifyKeys = [][]byte{[]byte(verifyKey), []byte("short-0123")}
	err := c.Validate()
	require.Error(t, err)
	assert.Equal(t, "finchreauth: Connect.StateVerifyKeys[1] is shorter than 16 bytes", err.Error())

	var out strings.Builder
	fmt.Fprintf(&out, "%v %+v %#v %s", c, c, &c, &c)
	b, err := json.Marshal(c)
	require.NoError(t, err)
	out.Write(b)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "connect", c)
	for _, k := range c.StateVerifyKeys {
		assert.False(t, strings.Contains(out.String(), string(k)), "a verify key is printed") // not quoted: a secret
	}
}

// TestSessionStateRefused: Finch's API reference does not list state for
// POST /connect/sessions/reauthenticate. Against a Finch that refuses it,
// links are still minted: the first without it after one refusal, the next
// ones without asking again; the state stays on the connect_url, and the
// reconnect completes under each reading of which state Connect echoes.
func TestSessionStateRefused(t *testing.T) {
	for _, src := range []finchtest.SessionStateSource{finchtest.StateFromSessionBody, finchtest.StateFromConnectURL} {
		t.Run(src.String(), func(t *testing.T) {
			r := newReconnectRig(t, func(r *reconnectRig) {
				r.finch.SetRefuseUnlistedSessionFields(true)
				r.finch.SetSessionStateSource(src)
			})
			const path = "/connect/sessions/reauthenticate"
			link := r.breakAndNotify(t)
			assert.NotEmpty(t, query(t, link).Get("state"), "the state stays on the connect_url")
			assert.Equal(t, 2, r.finch.Calls("POST", path), "refused once, then minted without state")

			other := r.finch.AddConnection(finchtest.Connection{CustomerName: "Other Corp"})
			conn, _ := r.finch.ConnectionForToken(other)
			require.NoError(t, r.tr.SaveToken(context.Background(), conn.ID, finchreauth.Token(other)))
			_, err := r.tr.ReconnectURL(context.Background(), conn.ID)
			require.NoError(t, err)
			assert.Equal(t, 3, r.finch.Calls("POST", path), "the refusal is remembered")

			callback, err := r.finch.Approve(link)
			require.NoError(t, err)
			q := query(t, browse(t, callback).Header.Get("Location"))
			assert.Equal(t, "", q.Get("reason"), "errors: %v", r.errs.all())
			assert.False(t, r.needsReauth(t))
		})
	}
}
