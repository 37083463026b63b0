package finchreauth

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/finchkit/finchreauth/internal/finchapi"
)

// The state machine alone: every kind of life against every input, by
// table. No I/O, no clock but the one given.

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func testPolicy() policy {
	return policy{
		lease: 100 * time.Second, retry: 30 * time.Second, retryCap: time.Hour,
		reminders: defaultReminders[:], remindEvery: 168 * time.Hour, maxReminders: 8,
		notify: true, skew: time.Minute, attempts: 3,
	}
}

const tokA, tokB Token = "token-a", "token-b"

// Lives to start from.
func lifeEmpty() life { return life{} }

func lifeHealthy() life {
	return life{
		Token: tokA, Fingerprints: []string{tokA.Fingerprint()},
		Marks: []mark{{Level: levelConnection, Status: statusConnected, At: t0.Add(-time.Hour), Via: "introspect"}},
		Check: &verdict{FP: tokA.Fingerprint(), Works: true, At: t0.Add(-time.Hour), Via: "introspect"},
	}
}

// lifeBroken: the saved token was refused, the episode is open, its first
// notification owed.
func lifeBroken() life {
	l := lifeHealthy()
	next, o := l.step(detected{fp: tokA.Fingerprint(), at: t0.Add(-10 * time.Minute), method: "GET", path: "/employer/company"}, t0.Add(-10*time.Minute), testPolicy())
	if o.err != nil || next.Episode == nil {
		panic("lifeBroken")
	}
	return next
}

// lifeEntity: one entity of two broken, the saved token works.
func lifeEntity() life {
	l := lifeHealthy()
	l.Marks = append(l.Marks,
		mark{Level: levelEntity, ID: "ent_a", Status: statusReauth, At: t0.Add(-time.Hour), Via: "introspect"},
		mark{Level: levelEntity, ID: "ent_b", Status: statusConnected, At: t0.Add(-time.Hour), Via: "introspect"})
	var o outcome
	l.settle(&o, t0.Add(-time.Hour), testPolicy(), "introspect", "")
	return l
}

// lifeEnded: healthy again, the last episode ended a minute ago.
func lifeEnded() life {
	l := lifeBroken()
	next, o := l.step(saved{token: tokB, via: "callback", offered: &verdict{FP: tokB.Fingerprint(), Works: true, At: t0.Add(-time.Minute), Via: "exchange"}, holder: "h"}, t0.Add(-time.Minute), testPolicy())
	if o.err != nil || next.Episode != nil {
		panic("lifeEnded")
	}
	next.Owed = nil // announced
	return next
}

// lifeWebhookOnly: no token; Finch's webhook opened the episode.
func lifeWebhookOnly() life {
	l, _ := life{}.step(heard{status: statusReauth, event: "msg_1", at: t0.Add(-time.Hour), via: "webhook"}, t0.Add(-time.Hour), testPolicy())
	return l
}

func owedKinds(l life) []string {
	var k []string
	for _, o := range l.Owed {
		k = append(k, o.Kind)
	}
	return k
}

func ranKinds(o outcome) []string {
	var k []string
	for _, ow := range o.run {
		k = append(k, ow.Kind)
	}
	return k
}

func reading(status string, entities ...Entity) *Connection {
	return &Connection{ConnectionID: "conn_1", Status: status, Entities: entities}
}

func TestTransitions(t *testing.T) {
	now := t0
	fpA, fpB := tokA.Fingerprint(), tokB.Fingerprint()
	works := func(fp, via string) *verdict { return &verdict{FP: fp, Works: true, At: now, Via: via} }
	refused := func(fp string) *verdict { return &verdict{FP: fp, At: now, Via: "introspect"} }
	yes, no := true, false
	type want struct {
		open     bool     // an episode is open after
		need     string   // and needs this
		err      error    // the step refuses the input
		stale    bool     // the input was about an old token
		token    Token    // the saved token after ("" : unchanged)
		owed     []string // the kinds owed after (nil: don't check)
		run      []string // the kinds leased to the input's holder (nil: none)
		forget   bool
		unchaged bool // the step wrote nothing
	}
	for _, tc := range []struct {
		name  string
		from  func() life
		input input
		want  want
	}{
		// Detections.
		{"healthy, its saved token refused: the episode opens, its notification leased", lifeHealthy,
			detected{fp: fpA, at: now, method: "GET", path: "/employer/directory", holder: "h"},
			want{open: true, need: statusReauth, owed: []string{owedNotify}, run: []string{owedNotify}}},
		{"healthy, an old copy refused: stale, nothing opens", lifeHealthy,
			detected{fp: fpB, at: now, holder: "h"}, want{stale: true, unchaged: true}},
		{"healthy, a 401 older than Finch's last word on the token: ignored", func() life {
			l := lifeHealthy()
			l.Check.At = now
			return l
		}, detected{fp: fpA, at: now.Add(-2 * time.Minute), holder: "h"}, want{open: false}},
		{"healthy, a 401 too close to Finch's last word on the token to order: asked", func() life {
			l := lifeHealthy()
			l.Check.At = now
			return l
		}, detected{fp: fpA, at: now.Add(-10 * time.Second), holder: "h"}, want{open: false, owed: []string{owedVerify}, run: []string{owedVerify}}},
		{"broken, refused again: the same episode, no second notification", lifeBroken,
			detected{fp: fpA, at: now, holder: "h2"}, want{open: true, need: statusReauth, owed: []string{owedNotify}, run: []string{owedNotify}}},
		{"empty, an unknown token: stale (only a reading names it)", lifeEmpty,
			detected{fp: fpA, at: now, holder: "h"}, want{stale: true, unchaged: true}},

		// Webhooks.
		{"healthy, reauth webhook: contradicts the working token, asked", lifeHealthy,
			heard{status: statusReauth, event: "e1", at: now, via: "webhook", holder: "h"},
			want{open: false, owed: []string{owedVerify}, run: []string{owedVerify}}},
		{"broken, reauth webhook: agrees, applied, one episode", lifeBroken,
			heard{status: statusReauth, event: "e1", at: now, via: "webhook", holder: "h"},
			want{open: true, need: statusReauth, run: []string{owedNotify}}},
		{"broken, connected webhook: asked before the episode ends", lifeBroken,
			heard{status: statusConnected, event: "e1", at: now, via: "webhook", holder: "h"},
			want{open: true, owed: []string{owedNotify, owedVerify}, run: []string{owedVerify, owedNotify}}},
		{"ended, a reauth from before the end: ignored", lifeEnded,
			heard{status: statusReauth, event: "e1", at: now.Add(-time.Hour), via: "webhook", holder: "h"}, want{open: false, owed: []string{}}},
		{"ended, a reauth around the end: asked", lifeEnded,
			heard{status: statusReauth, event: "e1", at: now.Add(-30 * time.Second), via: "webhook", holder: "h"}, want{open: false, owed: []string{owedVerify}, run: []string{owedVerify}}},
		{"no token, reauth webhook: nothing to ask with, applied", lifeEmpty,
			heard{status: statusReauth, event: "e1", at: now, via: "webhook", holder: "h"}, want{open: true, need: statusReauth, run: []string{owedNotify}}},
		{"webhook-only episode, connected newer: ends it", lifeWebhookOnly,
			heard{status: statusConnected, event: "e2", at: now, via: "webhook", holder: "h"}, want{open: false, run: []string{owedAnnounce}, forget: true}},
		{"webhook-only episode, connected older than the reauth: ignored (the flow pushes the owed notification)", lifeWebhookOnly,
			heard{status: statusConnected, event: "e2", at: now.Add(-2 * time.Hour), via: "webhook", holder: "h"}, want{open: true, run: []string{owedNotify}}},
		{"a webhook seen before: nothing", lifeWebhookOnly,
			heard{status: statusConnected, event: "msg_1", at: now, via: "webhook", holder: "h"}, want{open: true, unchaged: true}},
		{"pending: recorded, no episode", lifeEmpty,
			heard{status: "pending", event: "e1", at: now, via: "webhook", holder: "h"}, want{open: false}},
		{"an unknown status: recorded, nothing else", lifeEmpty,
			heard{status: "rebooting", event: "e1", at: now, via: "webhook", holder: "h"}, want{open: false}},
		{"error_permissions without a token: an episode whose remedy is the payroll system", lifeEmpty,
			heard{status: statusPermissions, event: "e1", at: now, via: "webhook", holder: "h"}, want{open: true, need: statusPermissions, run: []string{owedNotify}}},
		{"a job that ends in reauth_error, no token: as a webhook", lifeEmpty,
			heard{status: "reauth_error", at: now, via: "job", holder: "h"}, want{open: true, need: statusReauth, run: []string{owedNotify}}},
		{"disconnected while broken, no token: ends as disconnected", lifeWebhookOnly,
			heard{status: statusDisconnected, event: "e2", at: now, via: "webhook", holder: "h"}, want{open: false, run: []string{owedAnnounce}, forget: true}},

		// Readings of /introspect.
		{"broken, Finch says connected and a call with the saved token works: ends", lifeBroken,
			read{fp: fpA, conn: reading(statusConnected), probe: &yes, at: now, basis: -1, holder: "h"}, want{open: false, run: []string{owedAnnounce}, forget: true}},
		{"broken, Finch says connected but refuses a call with the saved token (a replaced token): stays open", lifeBroken,
			read{fp: fpA, conn: reading(statusConnected), probe: &no, at: now, basis: -1, holder: "h"}, want{open: true, run: []string{owedNotify}}},
		{"broken, Finch says connected, the token not asked about: stays open (only the token's word ends it)", lifeBroken,
			read{fp: fpA, conn: reading(statusConnected), at: now, basis: -1, holder: "h"}, want{open: true, run: []string{owedNotify}}},
		{"broken, a reading begun before a break signal: cannot end it, asked again", lifeBroken,
			read{fp: fpA, conn: reading(statusConnected), probe: &yes, at: now, basis: 0, holder: "h"}, want{open: true, owed: []string{owedNotify, owedVerify}, run: []string{owedVerify, owedNotify}}},
		{"healthy, Finch says reauth: opens", lifeHealthy,
			read{fp: fpA, conn: reading(statusReauth), at: now, basis: -1, holder: "h"}, want{open: true, need: statusReauth, run: []string{owedNotify}}},
		{"healthy, a reading about another token: nothing", lifeHealthy,
			read{fp: fpB, conn: reading(statusReauth), at: now, basis: -1}, want{open: false, unchaged: true}},
		{"healthy, an unknown token refused, Finch names the connection: an old copy, named", lifeHealthy,
			read{fp: fpB, token: tokB, conn: reading(statusReauth), at: now, basis: -1, detection: &detected{fp: fpB, at: now}}, want{stale: true, open: false}},
		{"empty, an unknown token refused and the connection needs the employer: kept, opens", lifeEmpty,
			read{fp: fpA, token: tokA, conn: reading(statusReauth), at: now, basis: -1, holder: "h", detection: &detected{fp: fpA, at: now, method: "GET", path: "/x"}},
			want{open: true, need: statusReauth, token: tokA, run: []string{owedNotify}}},
		{"empty, an unknown token refused but the connection works: an old copy, no episode", lifeEmpty,
			read{fp: fpA, token: tokA, conn: reading(statusConnected), at: now, basis: -1, detection: &detected{fp: fpA, at: now}}, want{stale: true, unchaged: true}},
		{"one entity broken (the saved token works), Finch says the entity works: ends", lifeEntity,
			read{fp: fpA, conn: reading(statusConnected, Entity{ID: "ent_a", Status: statusConnected}, Entity{ID: "ent_b", Status: statusConnected}), at: now, basis: -1, holder: "h"},
			want{open: false, run: []string{owedAnnounce}, forget: true}},

		// A resync's job (resync.go).
		{"the job after a reconnect ends in reauth_error: Finch's status, the episode opens", func() life {
			l := lifeEnded()
			l.Resync = &resync{Episode: l.Ended.ID, JobID: "job_1", Status: "pending"}
			l.Owed = []owed{{Kind: owedFollow, Episode: l.Ended.ID, Holder: "h", Until: t0.Add(time.Minute)}}
			return l
		}, jobAnswer{holder: "h", job: finchapi.Job{ID: "job_1", Status: "reauth_error"}},
			want{open: true, need: statusReauth, run: []string{owedSynced}}},
		{"Finch's quota: the job waits for retry_at", func() life {
			l := lifeEnded()
			l.Resync = &resync{Episode: l.Ended.ID, Status: "owed"}
			l.Owed = []owed{{Kind: owedResync, Episode: l.Ended.ID, Holder: "h", Until: t0.Add(time.Minute)}}
			return l
		}, jobAnswer{holder: "h", job: finchapi.Job{RetryAt: t0.Add(30 * time.Minute)}}, want{open: false, owed: []string{owedResync}}},

		// The callback's claims.
		{"a new state is claimed", lifeBroken, claimed{nonce: "n1", expires: now.Add(time.Hour)}, want{open: true}},

		// Saves.
		{"broken, a fresh token from the exchange: saved, the episode ends", lifeBroken,
			saved{token: tokB, via: "callback", offered: works(fpB, "exchange"), holder: "h"},
			want{open: false, token: tokB, run: []string{owedAnnounce}, forget: true}},
		{"one entity broken (the saved token works), an older token Finch refuses: stale", lifeEntity,
			saved{token: tokB, via: "save", offered: refused(fpB), holder: "h"}, want{open: true, err: ErrStaleToken}},
		{"one entity broken, a token not checked yet: Finch must be asked", lifeEntity,
			saved{token: tokB, via: "save", holder: "h"}, want{open: true, err: errNeedCheck}},
		{"one entity broken, a fresh exchange's word only: Finch must be asked", lifeEntity,
			saved{token: tokB, via: "callback", offered: works(fpB, "exchange"), holder: "h"}, want{open: true, err: errNeedCheck}},
		{"both refused: the saved one stays (it may be the newer), the episode too", lifeBroken,
			saved{token: tokB, via: "save", offered: refused(fpB), holder: "h"}, want{open: true, err: ErrStaleToken}},
		{"empty, an import: saved without asking", lifeEmpty,
			saved{token: tokA, via: "save", holder: "h"}, want{open: false, token: tokA}},
		{"healthy, another token not checked: Finch must be asked", lifeHealthy,
			saved{token: tokB, via: "save", holder: "h"}, want{err: errNeedCheck}},
		{"healthy, the same token again: nothing", lifeHealthy,
			saved{token: tokA, via: "save", holder: "h"}, want{unchaged: true}},
		{"broken, Finch could not be asked and the saved token is refused: kept, checked later", lifeBroken,
			saved{token: tokB, via: "save", unverified: true, holder: "h"}, want{open: true, token: tokB, run: []string{owedVerify}}},
		{"healthy, Finch could not be asked and the saved token may work: no deciding", lifeHealthy,
			saved{token: tokB, via: "save", unverified: true, holder: "h"}, want{err: errNeedCheck}},
		{"a spent state cannot save", lifeBroken, saved{token: tokB, via: "callback", nonce: "never-claimed", offered: works(fpB, "exchange")}, want{open: true, err: errSpent}},
		{"no state, no link of ours: refused", lifeBroken, saved{token: tokB, via: "callback", stateless: true, offered: works(fpB, "exchange")}, want{open: true, err: errNoLink}},

		// Leases and outcomes.
		{"due: the owed notification is leased", func() life {
			l := lifeBroken()
			l.Owed[0].Holder = ""
			return l
		}, due{holder: "r"}, want{open: true, run: []string{owedNotify}}},
		{"due, leased to another: nothing", func() life {
			l := lifeBroken()
			l.Owed[0].Holder, l.Owed[0].Until = "other", t0.Add(time.Minute)
			return l
		}, due{holder: "r"}, want{open: true, unchaged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from()
			before := from.clone()
			after, o := from.step(tc.input, now, testPolicy())
			if !lifeEqual(from, before) {
				t.Fatal("step changed the life it was given")
			}
			w := tc.want
			switch {
			case !errors.Is(o.err, w.err):
				t.Fatalf("err %v, want %v", o.err, w.err)
			case o.stale != w.stale:
				t.Errorf("stale %v, want %v", o.stale, w.stale)
			case w.unchaged && o.changed:
				t.Errorf("changed the record, want no write")
			case (after.Episode != nil) != w.open:
				t.Errorf("episode open %v, want %v; history %v", after.Episode != nil, w.open, after.Lines)
			case w.need != "" && after.Episode.Need != w.need:
				t.Errorf("need %q, want %q", after.Episode.Need, w.need)
			case w.token != "" && after.Token != w.token:
				t.Errorf("token %v, want %v", after.Token, w.token)
			case w.owed != nil && !slices.Equal(owedKinds(after), w.owed):
				t.Errorf("owed %v, want %v", owedKinds(after), w.owed)
			case !slices.Equal(ranKinds(o), w.run):
				t.Errorf("leased %v, want %v", ranKinds(o), w.run)
			case o.forget != w.forget:
				t.Errorf("forget %v, want %v", o.forget, w.forget)
			}
			if o.err == nil && o.changed {
				checkInvariants(t, after, now)
			}
		})
	}
}

func lifeEqual(a, b life) bool {
	ra, err1 := a.into(Record{ConnectionID: "c"})
	rb, err2 := b.into(Record{ConnectionID: "c"})
	return err1 == nil && err2 == nil && ra.Token == rb.Token && slices.Equal(ra.Fingerprints, rb.Fingerprints) && string(ra.Data) == string(rb.Data)
}

// checkInvariants checks what holds of every life a step writes.
func checkInvariants(t *testing.T, l life, now time.Time) {
	t.Helper()
	n, _ := l.need()
	if (n != "") != (l.Episode != nil) {
		t.Errorf("the marks say need %q, the episode is %v", n, l.Episode)
	}
	for _, ow := range l.Owed {
		if ow.Kind == owedNotify && (l.Episode == nil || ow.Episode != l.Episode.ID) {
			t.Errorf("a notification owed for episode %q, the open one is %v", ow.Episode, l.Episode)
		}
	}
	if len(l.Fingerprints) > maxFingerprints || len(l.Claims) > maxClaims || len(l.Events) > maxEvents ||
		len(l.Lines) > maxHistory || len(l.Marks) > maxMarks {
		t.Errorf("over a cap: %d fingerprints, %d claims, %d events, %d lines, %d marks",
			len(l.Fingerprints), len(l.Claims), len(l.Events), len(l.Lines), len(l.Marks))
	}
	if l.Episode != nil && l.Ended != nil && l.Ended.At.Before(l.Ended.Since) {
		t.Errorf("an episode ended before it began")
	}
}

// TestNotificationBackoff: a notification that keeps failing is tried after
// 30 s, then 60 s, 2 min, ... up to an hour apart: a Notify that fails after
// sending reaches the customer 7 times in an hour, not 121.
func TestNotificationBackoff(t *testing.T) {
	p := testPolicy()
	l := lifeBroken()
	now := t0
	tries := 0
	for end := now.Add(time.Hour); now.Before(end); now = now.Add(30 * time.Second) {
		next, o := l.step(due{holder: "r"}, now, p)
		l = next
		for _, ow := range o.run {
			if ow.Kind == owedNotify {
				tries++
				l, _ = l.step(done{holder: "r", kind: owedNotify, episode: ow.Episode}, now, p)
			}
		}
	}
	if tries != 7 {
		t.Errorf("%d tries in an hour of Remind every 30 s, want 7 (0, 30 s, 1.5, 3.5, 7.5, 15.5, 31.5 min)", tries)
	}
	if ow := l.owedItem(owedNotify, ""); ow == nil || ow.Tries != 7 {
		t.Fatalf("owed %+v", ow)
	}
}

// TestMissedRemindersCollapse: after Remind did not run for 30 days, the
// customer gets one reminder (the latest one due), not six in a row.
func TestMissedRemindersCollapse(t *testing.T) {
	p := testPolicy()
	l := lifeBroken()
	since := l.Episode.Since
	l, o := l.step(due{holder: "r"}, t0, p)
	l, _ = l.step(done{holder: "r", kind: owedNotify, episode: o.run[0].Episode, ok: true}, t0, p)
	var sent []int
	for now := since.Add(30 * 24 * time.Hour); now.Before(since.Add(30*24*time.Hour + 12*time.Hour)); now = now.Add(30 * time.Minute) {
		next, o := l.step(due{holder: "r"}, now, p)
		l = next
		for _, ow := range o.run {
			sent = append(sent, ow.Reminder)
			l, _ = l.step(done{holder: "r", kind: owedNotify, episode: ow.Episode, ok: true}, now, p)
		}
	}
	// 30 days in: reminders 1-3 (1, 3, 7 days) and 4-6 (14, 21, 28 days)
	// are all past; the one sent is number 6.
	if !slices.Equal(sent, []int{6}) {
		t.Errorf("reminders sent over 12 hours after a 30-day gap: %v, want [6]", sent)
	}
	if l.Episode.Sent != 2 {
		t.Errorf("Sent %d, want 2 (the first, then one reminder)", l.Episode.Sent)
	}
}

// TestSpentStateStaysSpent: a state that completed a reconnect stays spent
// however many later states the record sees (it used to come back once 16
// later claims pushed its claim out).
func TestSpentStateStaysSpent(t *testing.T) {
	p := testPolicy()
	l := lifeBroken()
	exp := t0.Add(30 * 24 * time.Hour)
	l, o := l.step(claimed{nonce: "spent", expires: exp}, t0, p)
	if o.err != nil {
		t.Fatal(o.err)
	}
	l, o = l.step(saved{token: tokB, via: "callback", nonce: "spent", offered: &verdict{FP: tokB.Fingerprint(), Works: true, At: t0, Via: "exchange"}}, t0, p)
	if o.err != nil || l.Episode != nil {
		t.Fatalf("the reconnect: %v", o.err)
	}
	for i := range 40 {
		now := t0.Add(time.Duration(i+1) * time.Minute)
		l, o = l.step(claimed{nonce: "later-" + string(rune('a'+i)), expires: now.Add(30 * 24 * time.Hour)}, now, p)
		if o.err != nil {
			t.Fatalf("claim %d: %v", i, o.err)
		}
		if len(l.Claims) > maxClaims {
			t.Fatalf("%d claims kept", len(l.Claims))
		}
	}
	if _, o = l.step(claimed{nonce: "spent", expires: exp}, t0.Add(time.Hour), p); !errors.Is(o.err, errSpent) {
		t.Errorf("the spent state claimed again: %v", o.err)
	}
}

// TestCaps: a record stays within its caps whatever comes: 500 refused old
// copies of the connection's tokens, 500 webhook events, 500 entities'
// statuses.
func TestCaps(t *testing.T) {
	p := testPolicy()
	l := lifeHealthy()
	now := t0
	for i := range 500 {
		now = now.Add(time.Second)
		tok := Token("old-copy-" + string(rune(0x4e00+i)))
		l, _ = l.step(read{fp: tok.Fingerprint(), token: tok, conn: reading(statusReauth), at: now, basis: -1, detection: &detected{fp: tok.Fingerprint(), at: now}}, now, p)
		l, _ = l.step(heard{status: statusReauth, entity: "ent-" + string(rune(0x4e00+i)), event: "msg-" + string(rune(0x4e00+i)), at: now, via: "webhook"}, now, p)
	}
	checkInvariants(t, l, now)
	if len(l.Fingerprints) != maxFingerprints || l.Fingerprints[0] != tokA.Fingerprint() {
		t.Errorf("fingerprints: %d, first %s; want %d, the saved token's first", len(l.Fingerprints), l.Fingerprints[0], maxFingerprints)
	}
	r, err := l.into(Record{ConnectionID: "c"})
	if err != nil || len(r.Data) > 32<<10 {
		t.Errorf("the record's data is %d bytes, %v", len(r.Data), err)
	}
}
