package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/message"
)

// Requests to the employer made while the connection works: an upgrade
// (Transport.RequestProducts: products the token lacks) and a campaign
// (Transport.StartCampaign: every connection of a provider re-authenticates
// before a deadline). Neither is an episode: the saved token keeps working,
// and the card stays healthy. A request is answered when a token is saved
// after it (here, through its link and the callback); OnAnswered says so,
// with the products Finch did not grant.

// upgradeProducts are what the demo asks a connection for when it lacks
// them: the payroll products.
var upgradeProducts = []string{"payment", "pay_statement"}

// The campaign the demo starts: every Gusto connection re-authenticates
// within campaignDays; links minted at most campaignPerHour an hour, so
// that the second one waits a minute (A minute later sends it).
const (
	campaignName     = "gusto-reconsent"
	campaignProvider = "gusto"
	campaignDays     = 3
	campaignPerHour  = 60
)

// onAnswered is Transport.OnAnswered: the employer answered a request. For
// an upgrade, r.Products is what the new token grants and
// r.ProductsMissing what Finch did not grant of what was asked.
func (d *demo) onAnswered(_ context.Context, r finchreauth.Reconnection) {
	if c := d.byConnection(r.ConnectionID); c != nil {
		d.mu.Lock()
		d.answers[c.Key] = r
		d.mu.Unlock()
	}
	switch r.Request {
	case "upgrade":
		if len(r.ProductsMissing) > 0 {
			d.activity.add("OnAnswered", "%s answered the upgrade, partly: asked %s; granted %s; not granted %s", d.nameOf(r.ConnectionID),
				strings.Join(r.ProductsAsked, ", "), strings.Join(r.Products, ", "), strings.Join(r.ProductsMissing, ", "))
			return
		}
		d.activity.add("OnAnswered", "%s answered the upgrade: granted %s", d.nameOf(r.ConnectionID), strings.Join(r.Products, ", "))
	default:
		d.activity.add("OnAnswered", "%s answered the %s %s: a token saved since it was asked", d.nameOf(r.ConnectionID), r.Request, r.Campaign)
	}
}

// requestProducts asks the employer for the payroll products the
// connection lacks (Transport.RequestProducts): a message with a link to
// Finch Connect asking for them beside those it has. Until the employer
// answers, the saved token keeps working.
func (d *demo) requestProducts(w http.ResponseWriter, r *http.Request, c *customer) {
	st, err := d.tr.Status(r.Context(), c.ConnectionID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	missing := newCard(c, st).Missing()
	if len(missing) == 0 {
		http.Error(w, "the connection has every product the demo asks for", http.StatusConflict)
		return
	}
	if err := d.tr.RequestProducts(r.Context(), c.ConnectionID, missing...); err != nil {
		d.activity.add("RequestProducts", "%v", err)
	}
	d.flush(r.Context())
	back(w, r, c)
}

// grantPartly plays the employer who, at Finch Connect, unticks pay
// statements. finchtest's Connect page has no product boxes, so this tells
// the fake which products the next reconnect grants (SetNextReconnect
// GrantOnly) and opens the upgrade's link: Reconnect there grants the rest.
func (d *demo) grantPartly(w http.ResponseWriter, r *http.Request, c *customer) {
	st, err := d.tr.Status(r.Context(), c.ConnectionID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	i := slices.IndexFunc(st.Requests, func(q finchreauth.Request) bool { return q.Kind == "upgrade" && q.ReconnectURL != "" })
	if i < 0 {
		http.Error(w, "no upgrade with a link is open for "+c.Name, http.StatusConflict)
		return
	}
	q := st.Requests[i]
	grant := slices.DeleteFunc(slices.Clone(q.Products), func(p string) bool { return p == "pay_statement" })
	if err := d.finch.SetNextReconnect(c.ConnectionID, finchtest.NextReconnect{GrantOnly: grant}); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	http.Redirect(w, r, q.ReconnectURL, http.StatusSeeOther)
}

// startCampaign asks every Gusto connection to re-authenticate before a
// deadline (Transport.StartCampaign), and sends what is due at once
// (Transport.Remind): the first message; the next ones follow at most
// campaignPerHour an hour.
func (d *demo) startCampaign(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	started := d.campaign != nil
	d.mu.Unlock()
	if !started {
		c := finchreauth.Campaign{Name: campaignName, ProviderID: campaignProvider,
			Deadline: d.clock.Now().Add(campaignDays * 24 * time.Hour), PerHour: campaignPerHour}
		n, err := d.tr.StartCampaign(r.Context(), c)
		if err != nil {
			d.activity.add("StartCampaign", "%v", err)
		} else {
			d.activity.add("StartCampaign", "%s: %d %s connections asked to reconnect by %s", c.Name, n, providerWord(c.ProviderID), when(c.Deadline))
			d.mu.Lock()
			d.campaign = &c
			d.mu.Unlock()
		}
		if err := d.tr.Remind(r.Context()); err != nil {
			d.activity.add("Remind", "%v", err)
		}
		d.flush(r.Context())
	}
	http.Redirect(w, r, "/#campaign", http.StatusSeeOther)
}

// providerWord names a provider as the messages do.
func providerWord(id string) string {
	return message.NewData(finchreauth.Event{Connection: finchreauth.Connection{ProviderID: id}}).Provider
}

// campaignView is the campaign panel: the campaign, and where it stands
// (Transport.CampaignProgress).
type campaignView struct {
	Name, Provider string
	Deadline       time.Time
	PerHour        int
	Progress       finchreauth.CampaignProgress
	Err            string
}

// campaignPanel is the panel's view, or nil before the campaign starts.
func (d *demo) campaignPanel(ctx context.Context) *campaignView {
	d.mu.Lock()
	c := d.campaign
	d.mu.Unlock()
	if c == nil {
		return nil
	}
	v := &campaignView{Name: c.Name, Provider: providerWord(c.ProviderID), Deadline: c.Deadline, PerHour: c.PerHour}
	p, err := d.tr.CampaignProgress(ctx, c.Name)
	if err != nil {
		v.Err = err.Error()
	}
	v.Progress = p
	return v
}

// answerOf is the last request the customer answered, if any.
func (d *demo) answerOf(key string) *finchreauth.Reconnection {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.answers[key]; ok {
		return &a
	}
	return nil
}

// answered is the request the connection's saved token answered, if any:
// what OnAnswered said last, while that token is still the saved one.
func (d *demo) answered(ctx context.Context, conn string) *finchreauth.Reconnection {
	c := d.byConnection(conn)
	if c == nil {
		return nil
	}
	a := d.answerOf(c.Key)
	if a == nil {
		return nil
	}
	if tok, err := d.tr.Token(ctx, conn); err != nil || tok != a.Token {
		return nil
	}
	return a
}
