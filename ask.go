package finchreauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Requests: the employer is asked to go through Finch Connect while the
// connection works. RequestProducts asks for products the token lacks (an
// upgrade: a reauthenticate session with the old products and the new
// ones); StartCampaign asks every connection of a provider to re-authenticate
// before a date (providers have forced this on everyone before). A request
// is not an episode: the saved token keeps working, nothing is latched, and
// the old token is replaced only by one Finch accepts (SaveToken's rules).
// It has its own id, link, notifications and reminders, so that an open
// episode and open requests never share a link, a reminder or an outcome. A
// request is answered when a token is saved after it was made (through its
// link, the episode's, or SaveToken): OnAnswered is told, with the products
// Finch granted and those it did not (a partial grant).

const (
	requestUpgrade  = "upgrade"
	requestCampaign = "campaign"

	owedAsk      = "ask"      // a request's notification or reminder
	owedAnswered = "answered" // telling the application a request was answered

	maxCampaignsDone = 8 // campaigns a record remembers it answered
)

// request is an open request to the employer.
type request struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"` // requestUpgrade or requestCampaign
	Since    time.Time `json:"since"`
	Products []string  `json:"products,omitempty"` // an upgrade's: every product the token must have
	Campaign string    `json:"campaign,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	FP       string    `json:"fp"` // the saved token when asked: a token saved since answers it
	Sent     int       `json:"sent,omitempty"`
	LastSent time.Time `json:"last_sent,omitzero"`
	Link     *link     `json:"link,omitempty"`
}

// answer is how a request was answered, for OnAnswered.
type answer struct {
	Request request   `json:"request"`
	At      time.Time `json:"at"`
	Missing []string  `json:"missing,omitempty"` // an upgrade's products Finch did not grant
}

// asked: the application asks the employer (RequestProducts,
// StartCampaign). Its first notification is due at notBefore.
type asked struct {
	kind      string
	products  []string
	campaign  string
	deadline  time.Time
	notBefore time.Time
	holder    string // takes the first notification, when it is due now
}

func (asked) isInput() {}

var (
	errNoToken = errors.New("finchreauth: the Store holds no token for the connection: it cannot be asked for anything")
	errGone    = errors.New("finchreauth: the connection was disconnected")
)

func (l *life) request(kind string) *request {
	for i := range l.Requests {
		if l.Requests[i].Kind == kind {
			return &l.Requests[i]
		}
	}
	return nil
}

func (l *life) requestByID(id string) *request {
	for i := range l.Requests {
		if l.Requests[i].ID == id {
			return &l.Requests[i]
		}
	}
	return nil
}

func (l *life) onAsked(in asked, now time.Time, p policy) outcome {
	switch {
	case l.Token == "":
		return outcome{err: errNoToken}
	case l.disconnected():
		return outcome{err: errGone}
	}
	if r := l.request(in.kind); r != nil {
		switch in.kind {
		case requestUpgrade:
			if merged := union(r.Products, in.products); len(merged) > len(r.Products) {
				r.Products, r.Link = merged, nil // the link asks for the old list
				l.note(now, "request", "products added: "+strings.Join(in.products, ", "))
				return outcome{changed: true}
			}
		case requestCampaign:
			if in.campaign != r.Campaign && slices.Contains(l.CampaignsDone, r.Campaign) {
				break
			}
		}
		return outcome{}
	}
	if in.kind == requestCampaign && slices.Contains(l.CampaignsDone, in.campaign) {
		return outcome{} // answered already
	}
	r := request{ID: rand.Text(), Kind: in.kind, Since: now, Products: in.products, Campaign: in.campaign, Deadline: in.deadline, FP: l.savedFP()}
	l.Requests = append(l.Requests, r)
	var o outcome
	if p.notify {
		ow := owed{Kind: owedAsk, Episode: r.ID, NotBefore: maxTime(now, in.notBefore)}
		if in.holder != "" && !ow.NotBefore.After(now) {
			l.take(&ow, in.holder, now, p)
			o.lease(ow)
		}
		l.Owed = append(l.Owed, ow)
	}
	what := "products " + strings.Join(in.products, ", ")
	if in.kind == requestCampaign {
		what = in.campaign + " by " + in.deadline.Format(time.DateOnly)
	}
	l.note(now, "request", in.kind+": "+what)
	o.changed = true
	return o
}

// settleRequests answers the requests a token saved since they were made
// answers, owing OnAnswered (leased to holder), and drops those of a
// disconnected connection.
func (l *life) settleRequests(o *outcome, now time.Time, p policy, holder string) {
	if len(l.Requests) == 0 {
		return
	}
	gone := l.disconnected()
	works := l.Check != nil && l.Check.FP == l.savedFP() && l.Check.Works
	l.Requests = slices.DeleteFunc(l.Requests, func(r request) bool {
		switch {
		case gone:
			l.drop(owedAsk, r.ID)
			l.note(now, "request dropped", r.Kind+": the connection was disconnected")
			return true
		case l.savedFP() == r.FP || !works:
			return false
		}
		a := answer{Request: r, At: now}
		a.Request.Link = nil
		if r.Kind == requestUpgrade {
			var granted []string
			if l.Identity != nil {
				granted = l.Identity.Products
			}
			a.Missing = difference(r.Products, granted)
		}
		if r.Kind == requestCampaign {
			l.CampaignsDone = append([]string{r.Campaign}, l.CampaignsDone...)
			if len(l.CampaignsDone) > maxCampaignsDone {
				l.CampaignsDone = l.CampaignsDone[:maxCampaignsDone]
			}
		}
		l.drop(owedAsk, r.ID)
		ow := owed{Kind: owedAnswered, Episode: r.ID, NotBefore: now, Answer: &a}
		if holder != "" {
			l.take(&ow, holder, now, p)
			o.lease(ow)
		}
		l.Owed = append(l.Owed, ow)
		what := "answered"
		if len(a.Missing) > 0 {
			what = "partly answered: not granted " + strings.Join(a.Missing, ", ")
		}
		l.note(now, "request", r.Kind+" "+what)
		o.changed = true
		return true
	})
}

// asked records a request's notification sent, and owes the next reminder:
// an upgrade's as an episode's; a campaign's counting down to its deadline.
func (l *life) askSent(ow *owed, now time.Time, p policy) {
	r := l.requestByID(ow.Episode)
	if r == nil {
		l.drop(owedAsk, ow.Episode)
		return
	}
	r.Sent++
	r.LastSent = now
	l.note(now, "asked", fmt.Sprintf("%s (%d)", r.Kind, ow.Reminder))
	next, ok := p.reminder(r.Since, ow.Reminder+1)
	if r.Kind == requestCampaign {
		next, ok = countdown(r.Deadline, now)
	}
	if !ok {
		l.drop(owedAsk, r.ID)
		return
	}
	*ow = owed{Kind: owedAsk, Episode: r.ID, Reminder: ow.Reminder + 1, NotBefore: next}
}

// countdown is a campaign's next reminder after now: the first of the
// countdown's days before the deadline still ahead.
func countdown(deadline, now time.Time) (time.Time, bool) {
	for _, days := range [...]int{14, 7, 3, 1} {
		d := time.Duration(days) * 24 * time.Hour
		if at := deadline.Add(-d); at.After(now.Add(time.Hour)) {
			return at, true
		}
	}
	return time.Time{}, false
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// RequestProducts asks the employer to grant the connection products its
// token lacks: a notification (Event.Request "upgrade", Event.Products) with
// a link to Finch Connect asking for the products the token has and these,
// and reminders, until a token Finch accepts is saved. Meanwhile the saved
// token keeps working. Asking again while a request is open adds to it.
// OnAnswered says what Finch granted (Reconnection.ProductsMissing: a partial
// grant). It returns an error for a connection whose token the Store does
// not hold.
func (t *Transport) RequestProducts(ctx context.Context, connectionID string, products ...string) error {
	t.init()
	if err := checkID(connectionID); err != nil {
		return err
	}
	if len(products) == 0 {
		return errors.New("finchreauth: RequestProducts needs products")
	}
	_, l, err := t.load(ctx, connectionID)
	if err != nil {
		return err
	}
	var have []string
	if l.Identity != nil {
		have = l.Identity.Products
	}
	if len(have) == 0 && l.Token != "" {
		if in, ok := t.reading(ctx, t.base(), connectionID, l.Token, -1, ""); ok && in.conn != nil {
			have = in.conn.Products
			t.apply(ctx, connectionID, in)
		}
	}
	if t.Connect != nil {
		have = union(t.Connect.Products, have)
	}
	want := union(have, products)
	next, o, err := t.apply(ctx, connectionID, asked{kind: requestUpgrade, products: want, holder: rand.Text()})
	if err == nil {
		t.carry(ctx, connectionID, next, o.run, carrier{})
	}
	return err
}

// A Campaign asks every connection of one provider to re-authenticate
// before Deadline: a notification each (Event.Request "campaign",
// Event.Campaign, Event.Deadline), their links minted at most PerHour an
// hour (default 600), and reminders 14, 7, 3 and 1 days before the
// deadline. A connection answers it with a token saved after it was asked.
type Campaign struct {
	Name       string // identifies it: CampaignProgress, Event.Campaign
	ProviderID string // the connections asked: Finch's provider_id
	Deadline   time.Time
	PerHour    int
}

// CampaignProgress is where a campaign stands.
type CampaignProgress struct {
	Asked   int // connections of the provider asked and not done
	Done    int // answered: a token saved since
	Overdue int // of Asked, past the deadline
}

// StartCampaign asks every connection of c.ProviderID whose token the Store
// holds (as /introspect last said of it; a connection Finch was never asked
// about is asked, paced by SweepRate) to re-authenticate before c.Deadline,
// and returns how many it asked. It lists the whole Store, page
// by page; a connection asked already, or that answered, is not asked
// again, so running it again after new connections were saved asks only
// those.
func (t *Transport) StartCampaign(ctx context.Context, c Campaign) (int, error) {
	t.init()
	if c.Name == "" || c.ProviderID == "" || c.Deadline.IsZero() {
		return 0, errors.New("finchreauth: a Campaign needs a Name, a ProviderID and a Deadline")
	}
	per := c.PerHour
	if per <= 0 {
		per = 600
	}
	gap := time.Hour / time.Duration(per)
	at, n := t.now(), 0
	err := t.each(ctx, Query{Every: true, Limit: remindPage}, func(r Record, l life) bool {
		if l.Token != "" && l.Identity == nil {
			// Never asked about: Finch says which provider it is, paced
			// as the sweep is.
			done, err := t.sweeper.wait(ctx, t.sweepRate())
			if err != nil {
				return false
			}
			in, ok := t.reading(ctx, t.base(), r.ConnectionID, l.Token, -1, "")
			done()
			if ok && in.conn != nil {
				if next, _, err := t.apply(ctx, r.ConnectionID, in); err == nil {
					l = next
				}
			}
		}
		if l.Token == "" || l.Identity == nil || l.Identity.ProviderID != c.ProviderID {
			return true
		}
		_, o, err := t.apply(ctx, r.ConnectionID, asked{kind: requestCampaign, campaign: c.Name, deadline: c.Deadline, notBefore: at})
		if err == nil && o.changed {
			n++
			at = at.Add(gap) // the next one's link is minted later: at most PerHour an hour
		}
		return true
	})
	return n, err
}

// CampaignProgress counts where the campaign named name stands, over the
// whole Store, page by page.
func (t *Transport) CampaignProgress(ctx context.Context, name string) (CampaignProgress, error) {
	t.init()
	var p CampaignProgress
	now := t.now()
	err := t.each(ctx, Query{Every: true, Limit: remindPage}, func(_ Record, l life) bool {
		if r := l.request(requestCampaign); r != nil && r.Campaign == name {
			p.Asked++
			if now.After(r.Deadline) {
				p.Overdue++
			}
		}
		if slices.Contains(l.CampaignsDone, name) {
			p.Done++
		}
		return true
	})
	return p, err
}

// ask sends a request's notification or reminder: a link for the request
// (made once, kept while it is good), the lease renewed, the Notifier.
func (t *Transport) ask(ctx context.Context, conn string, l life, ow owed) life {
	r := l.requestByID(ow.Episode)
	if r == nil {
		return l
	}
	ev := t.requestEvent(conn, l, *r, ow)
	var minted *link
	if ev.ReconnectURL == "" && (t.Links != nil || t.Connect != nil) && (l.Identity == nil || !l.Identity.Assisted) {
		k, err := t.mint(ctx, ev)
		if err != nil {
			l, _, _ = t.apply(ctx, conn, done{holder: ow.Holder, kind: owedAsk, episode: ow.Episode})
			return l
		}
		minted, ev.ReconnectURL = &k, k.URL
	}
	l, _, err := t.apply(ctx, conn, renewed{holder: ow.Holder, kind: owedAsk, link: minted})
	if err != nil {
		return l
	}
	if t.Notifier != nil {
		_, err = callHook(t, ctx, "notify", subject{conn: conn}, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, t.Notifier.Notify(ctx, ev)
		})
	}
	l, _, _ = t.apply(context.WithoutCancel(ctx), conn, done{holder: ow.Holder, kind: owedAsk, episode: ow.Episode, ok: err == nil})
	return l
}

// requestEvent is the Event of a request's notification.
func (t *Transport) requestEvent(conn string, l life, r request, ow owed) Event {
	ev := Event{Connection: Connection{ConnectionID: conn}, Episode: r.ID, Since: r.Since, At: t.now(), Reminder: ow.Reminder,
		Source: "request", Status: statusReauth, Request: r.Kind, Campaign: r.Campaign, Deadline: r.Deadline}
	if l.Identity != nil {
		ev.Connection = l.Identity.clone()
		ev.Connection.ConnectionID = conn
	}
	if ow.Reminder > 0 {
		ev.Source = "reminder"
	}
	if r.Kind == requestUpgrade {
		ev.Products = slices.Clone(r.Products)
	}
	if r.Link.good(t.now(), t.linkMargin()) {
		ev.ReconnectURL = r.Link.URL
	}
	return ev
}

// answered tells the application a request was answered: OnAnswered.
func (t *Transport) answered(ctx context.Context, conn string, l life, ow owed) []owed {
	a := ow.Answer
	var err error
	if f := t.OnAnswered; f != nil && a != nil {
		rec := Reconnection{ConnectionID: conn, Token: l.Token, Via: a.Request.Kind, Episode: a.Request.ID, BrokenSince: a.Request.Since,
			At: a.At, Request: a.Request.Kind, ProductsAsked: a.Request.Products, ProductsMissing: a.Missing, Campaign: a.Request.Campaign}
		if id := l.Identity; id != nil {
			rec.CustomerID, rec.CustomerName, rec.CompanyID, rec.ProviderID, rec.Products = id.CustomerID, id.CustomerName, id.CompanyID, id.ProviderID, id.Products
		}
		_, err = callHook(t, ctx, "answered", subject{conn: conn}, func(ctx context.Context) (struct{}, error) {
			f(ctx, rec)
			return struct{}{}, nil
		})
	}
	_, o, _ := t.apply(context.WithoutCancel(ctx), conn, done{holder: ow.Holder, kind: owedAnswered, episode: ow.Episode, ok: err == nil})
	return o.run
}
