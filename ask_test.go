package finchreauth_test

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// askRig is a reconnectRig that records OnAnswered.
func askRig(t *testing.T) (*reconnectRig, func() []finchreauth.Reconnection) {
	t.Helper()
	var mu sync.Mutex
	var answers []finchreauth.Reconnection
	r := newReconnectRig(t, func(r *reconnectRig) {
		r.tr.OnAnswered = func(_ context.Context, rec finchreauth.Reconnection) {
			mu.Lock()
			answers = append(answers, rec)
			mu.Unlock()
		}
	})
	return r, func() []finchreauth.Reconnection {
		waitIdle(t, r.tr)
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(answers)
	}
}

func requests(r *reconnectRig, kind string) []finchreauth.Event {
	var out []finchreauth.Event
	for _, e := range r.notes.delivered() {
		if e.Request == kind {
			out = append(out, e)
		}
	}
	return out
}

// approve goes through Connect with link and the callback.
func approve(t *testing.T, r *reconnectRig, link string) {
	t.Helper()
	callback, err := r.finch.Approve(link)
	require.NoError(t, err)
	require.Equal(t, "", query(t, browse(t, callback).Header.Get("Location")).Get("reason"), "errors: %v", r.errs.all())
	waitIdle(t, r.tr)
}

// TestRequestProducts (issue 19 #3): the application asks for a product the
// token lacks; the customer gets a link whose Connect session asks for the
// old products and the new one, the old token keeps working (never
// latched), and the token Connect issues replaces it, granted everything.
// Before, there was no way to ask.
func TestRequestProducts(t *testing.T) {
	r, answers := askRig(t)
	conn, _ := r.finch.Connection(r.connID)
	old := conn.Products
	require.NoError(t, r.tr.RequestProducts(context.Background(), r.connID, "benefits"))
	asks := requests(r, "upgrade")
	require.Len(t, asks, 1, "errors: %v", r.errs.all())
	assert.ElementsMatch(t, append(slices.Clone(old), "benefits"), asks[0].Products)
	require.NotEmpty(t, asks[0].ReconnectURL)
	st, err := r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	require.Len(t, st.Requests, 1)
	assert.False(t, st.NeedsReauth)

	assert.Equal(t, 200, r.call(t, r.token), "the old token keeps working")
	approve(t, r, asks[0].ReconnectURL)
	got := answers()
	require.Len(t, got, 1)
	assert.Equal(t, "upgrade", got[0].Request)
	assert.Empty(t, got[0].ProductsMissing)
	assert.NotEqual(t, finchreauth.Token(r.token), r.savedToken(t), "the new token replaced it")
	assert.Contains(t, got[0].Products, "benefits")
	st, err = r.tr.Status(context.Background(), r.connID)
	require.NoError(t, err)
	assert.Empty(t, st.Requests)
	reconnected, _ := r.hooks()
	assert.Empty(t, reconnected, "no episode was open: no OnReconnected")
}

// TestRequestProductsPartialGrant: the employer unticks the new product in
// Connect; the token still replaces the old one (Finch accepts it) and
// OnAnswered says what was not granted.
func TestRequestProductsPartialGrant(t *testing.T) {
	r, answers := askRig(t)
	conn, _ := r.finch.Connection(r.connID)
	require.NoError(t, r.tr.RequestProducts(context.Background(), r.connID, "benefits"))
	require.NoError(t, r.finch.SetNextReconnect(r.connID, finchtest.NextReconnect{GrantOnly: conn.Products}))
	approve(t, r, requests(r, "upgrade")[0].ReconnectURL)
	got := answers()
	require.Len(t, got, 1)
	assert.Equal(t, []string{"benefits"}, got[0].ProductsMissing)
}

// TestUpgradeAndEpisodeAtOnce: an upgrade is open when the connection
// breaks; the two have their own notifications, ids and links; the
// episode's link asks for the upgrade's products too, so one trip through
// Connect ends the episode and answers the upgrade.
func TestUpgradeAndEpisodeAtOnce(t *testing.T) {
	r, answers := askRig(t)
	require.NoError(t, r.tr.RequestProducts(context.Background(), r.connID, "benefits"))
	upgrade := requests(r, "upgrade")[0]
	link := r.breakAndNotify(t)
	var reauth finchreauth.Event
	for _, e := range r.notes.delivered() {
		if e.Request == "" {
			reauth = e
		}
	}
	assert.NotEqual(t, upgrade.Episode, reauth.Episode)
	assert.NotEqual(t, upgrade.ReconnectURL, link)
	assert.Contains(t, reauth.Products, "benefits")

	r.clk.advance(24 * time.Hour)
	require.NoError(t, r.tr.Remind(context.Background()))
	waitIdle(t, r.tr)
	assert.Len(t, requests(r, "upgrade"), 2, "the upgrade's own reminder")

	approve(t, r, link)
	reconnected, _ := r.hooks()
	require.Len(t, reconnected, 1)
	got := answers()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].ProductsMissing)
	assert.False(t, r.needsReauth(t))
}

// TestCampaign (issue 19 #7): every gusto connection is asked to
// re-authenticate before a date, one link at a time at most PerHour;
// reminders count down to the deadline; progress is counted; a connection
// that reconnects is done; starting it again asks nobody twice.
func TestCampaign(t *testing.T) {
	r, answers := askRig(t)
	ids := []string{r.connID}
	for _, p := range []string{"gusto", "gusto", "adp_wfn"} {
		tok := r.finch.AddConnection(finchtest.Connection{CustomerName: "Co " + p, ProviderID: p})
		c, _ := r.finch.ConnectionForToken(tok)
		require.NoError(t, r.tr.SaveToken(context.Background(), c.ID, finchreauth.Token(tok)))
		ids = append(ids, c.ID)
	}
	deadline := r.clk.Now().Add(30 * day)
	n, err := r.tr.StartCampaign(context.Background(), finchreauth.Campaign{Name: "gusto-2027", ProviderID: "gusto", Deadline: deadline, PerHour: 2})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	sessions := func() int { return r.finch.Calls("POST", "/connect/sessions/reauthenticate") }
	require.NoError(t, r.tr.Remind(context.Background()))
	waitIdle(t, r.tr)
	assert.Equal(t, 1, sessions(), "one link in the first half hour")
	for range 2 {
		r.clk.advance(30 * time.Minute)
		require.NoError(t, r.tr.Remind(context.Background()))
		waitIdle(t, r.tr)
	}
	assert.Equal(t, 3, sessions())
	first := requests(r, "campaign")
	require.Len(t, first, 3)
	assert.Equal(t, deadline, first[0].Deadline)
	p, err := r.tr.CampaignProgress(context.Background(), "gusto-2027")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.CampaignProgress{Asked: 3}, p)

	approve(t, r, first[0].ReconnectURL)
	require.Len(t, answers(), 1)
	assert.Equal(t, "gusto-2027", answers()[0].Campaign)
	p, err = r.tr.CampaignProgress(context.Background(), "gusto-2027")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.CampaignProgress{Asked: 2, Done: 1}, p)

	// Reminders: 14, 7, 3 and 1 days before the deadline, for the two left.
	remindDaily(t, r, 31)
	left := requests(r, "campaign")[3:]
	var days []int
	for _, e := range left {
		days = append(days, int(math.Ceil(e.Deadline.Sub(e.At).Hours()/24)))
	}
	slices.Sort(days)
	assert.Equal(t, []int{1, 1, 3, 3, 7, 7, 14, 14}, days)
	p, err = r.tr.CampaignProgress(context.Background(), "gusto-2027")
	require.NoError(t, err)
	assert.Equal(t, finchreauth.CampaignProgress{Asked: 2, Done: 1, Overdue: 2}, p)
	n, err = r.tr.StartCampaign(context.Background(), finchreauth.Campaign{Name: "gusto-2027", ProviderID: "gusto", Deadline: deadline})
	require.NoError(t, err)
	assert.Zero(t, n, "nobody asked twice")
}
