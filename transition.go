package finchreauth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The inputs of a connection's life, and step, which applies one. Each
// input that may create owed work carries the holder that will carry it out
// (a random id per flow), so that a step re-run after a conflict leases to
// the same holder.

// input is one of the types below.
type input interface{ isInput() }

// detected: Finch answered a data call made with the token fp with 401
// reauthenticate_user, at At.
type detected struct {
	fp           string
	at           time.Time
	method, path string
	holder       string
}

// answered: the latch answered requests carrying the connection's refused
// token, in this process, without calling Finch: they failed as the ones
// Finch refused did, and are counted with them.
type answered struct {
	refused []refusal
}

// heard: Finch sent a status in a webhook (account.updated) or as a job's
// result, at At (Finch-Timestamp), for the connection or one entity.
type heard struct {
	status, entity string
	event          string // the webhook's id, for deduplication
	at             time.Time
	via            string // "webhook" or "job"
	holder         string
}

// read: /introspect answered for the token fp. conn is its answer, or nil
// when Finch refused the token (refused). basis is the life's Breaks when
// the check began (-1: no basis to compare). A read that identified an
// unknown token a data call was refused with carries that detection.
type read struct {
	fp      string
	token   Token // the token itself, on a detection: kept if the record has none
	conn    *Connection
	refused bool
	// probe is Finch's answer to a data call made with the token (see
	// Transport.probe), nil when none was made: whether the token itself
	// works, which /introspect may not say.
	probe     *bool
	at        time.Time
	basis     int
	holder    string
	detection *detected
	sweep     bool // the sweep's periodic check
}

// claimed: a code came back to the callback with the state nonce, which
// expires at expires; unclaimed: that attempt ended without a reconnect.
type claimed struct {
	nonce   string
	expires time.Time
}

type unclaimed struct{ nonce string }

// linkSpent: the employer went through Finch Connect with the link whose
// state has nonce, and the callback turned them away before claiming it:
// the link's Connect session is spent, the next link is new.
type linkSpent struct{ nonce string }

// saved: a token is offered as the connection's: by the callback (via
// "callback", with the state's nonce, or stateless) or SaveToken ("save").
// offered is the verdict on it, when there is one (from /introspect, or the
// exchange that just issued it), conn what /introspect said with it.
type saved struct {
	token     Token
	via       string
	nonce     string
	stateless bool
	offered   *verdict
	conn      *Connection
	// unverified: Finch could not be asked; save without a verdict.
	unverified bool
	holder     string
}

// linked: a link was made for the connection (the start endpoint, or a
// notification's holder); keep it unless another good one is kept.
type linked struct {
	link    link
	margin  time.Duration
	request string // the request it is for; "" for the episode's
}

// renewed: the holder of a notification is about to send it; extend its
// lease and keep the link it made.
type renewed struct {
	holder string
	kind   string // owedNotify or owedLastNotice
	link   *link
}

// done: the holder carried out its owed work of kind (ok), or failed.
type done struct {
	holder, kind, episode string
	ok                    bool
}

// due: take every owed effect that is due and free (Remind); with sweep,
// only the sweep's check (Sweep).
type due struct {
	holder string
	sweep  bool
}

func (detected) isInput()  {}
func (heard) isInput()     {}
func (read) isInput()      {}
func (claimed) isInput()   {}
func (unclaimed) isInput() {}
func (linkSpent) isInput() {}
func (answered) isInput()  {}
func (saved) isInput()     {}
func (linked) isInput()    {}
func (renewed) isInput()   {}
func (done) isInput()      {}
func (due) isInput()       {}

// Refusals of inputs, for their callers.
var (
	errSpent     = errors.New("finchreauth: the link's state is spent")
	errBusy      = errors.New("finchreauth: another reconnect with this link is under way")
	errNoLink    = errors.New("finchreauth: no link of this application is open for the connection")
	errNeedCheck = errors.New("finchreauth: Finch must be asked which token works")
	errNoLease   = errors.New("finchreauth: the lease is held by another")
)

// step applies in to l at now. It never changes l: it returns the next life
// and what happened. The time written is never before the record's Clock.
func (l life) step(in input, now time.Time, p policy) (life, outcome) {
	l = l.clone()
	if now.Before(l.Clock) {
		now = l.Clock
	}
	before := l.Clock
	o, via, holder := l.onInput(in, now, p)
	if o.err == nil && !o.stale && o.changed {
		if via != "" {
			l.settle(&o, now, p, via, holder)
		}
		l.pushed(in, &o, now, p)
		l.scheduleSweep(now, p)
		l.scheduleAbandon(now, p)
		l.settleRequests(&o, now, p, holder)
	}
	if o.changed {
		l.Clock = now
		l.bound(now)
	} else {
		l.Clock = before
	}
	return l, o
}

// onInput takes in one input: what it changed, and, for a signal that
// may open or end an episode, what brought it (via) and the flow that
// carries out what it owes (holder).
func (l *life) onInput(in input, now time.Time, p policy) (o outcome, via, holder string) {
	switch in := in.(type) {
	case detected:
		o, via, holder = l.onDetected(in, now, p), "detection", in.holder
	case heard:
		o, via, holder = l.onHeard(in, now, p), in.via, in.holder
	case read:
		via, holder = "introspect", in.holder
		if ow := l.owedItem(owedVerify, ""); ow != nil && ow.Holder == in.holder && ow.Cause != "" {
			via = ow.Cause // a check a webhook asked for ends the episode "via" the webhook
		}
		if in.detection != nil {
			via = "detection"
		}
		o = l.onRead(in, now, p)
		o.changed = l.swept(in.holder, now, p) || o.changed
	case claimed:
		o = l.onClaimed(in, now, p)
	case unclaimed:
		o = l.onUnclaimed(in)
	case linkSpent:
		if l.Link != nil && l.Link.Nonce == in.nonce {
			l.Link, o.changed = nil, true
		}
	case saved:
		o, via, holder = l.onSaved(in, now, p), in.via, in.holder
	case linked:
		o = l.onLinked(in, now)
	case renewed:
		o = l.onRenewed(in, now, p)
	case done:
		o = l.onDone(in, now, p)
	case due:
		o, holder = l.onDue(in, now, p), in.holder
	case jobAnswer:
		o, via, holder = l.onJobAnswer(in, now, p), "job", in.holder
	case jobDone:
		o = l.onJobDone(in, now, p)
	case answered:
		o = l.onAnswered(in)
	case sweepSeed:
		o.changed = l.scheduleSweep(now, p)
	case suspected:
		o = l.onSuspected(in, now, p)
	case abandonNow:
		o = l.onAbandonNow(now, p)
	case asked:
		o = l.onAsked(in, now, p)
	case disconnecting:
		o = l.onDisconnecting(in, now)
	case disconnected:
		o, via, holder = l.onDisconnected(in, now), viaAbandoned, in.holder
	}
	return o, via, holder
}

// pushed records what a signal adds once the episode is settled: the
// request Finch refused, and the first notification, which the flow that
// brought a signal pushes when it is due and free.
func (l *life) pushed(in input, o *outcome, now time.Time, p policy) {
	var holder string
	switch in := in.(type) {
	case detected:
		holder = in.holder
		o.changed = l.refused(in) || o.changed
	case read:
		holder = in.holder
		if in.detection != nil {
			o.changed = l.refused(*in.detection) || o.changed
		}
	case heard:
		holder = in.holder
	}
	if holder == "" {
		return
	}
	if ow := l.owedItem(owedNotify, ""); ow != nil && ow.Reminder == 0 && l.free(ow, now) {
		l.take(ow, holder, now, p)
		o.lease(*ow)
		o.changed = true
	}
}

// settle derives the episode from the marks: it opens one when the
// employer is needed and none is open, and ends the open one when they are
// not, owing the notification or the announcement.
func (l *life) settle(o *outcome, now time.Time, p policy, via, holder string) {
	need, entities := l.need()
	e := l.Episode
	switch {
	case need != "" && e == nil:
		l.Episode = &episode{ID: rand.Text(), Since: now, Need: need, Source: via, Entities: entities}
		l.Episode.remember(l.Identity)
		l.note(now, "opened", need+" ("+via+")")
		if p.notify {
			l.Owed = append(l.Owed, owed{Kind: owedNotify, Episode: l.Episode.ID, NotBefore: now})
		}
		o.changed = true
	case need != "" && (e.Need != need || !slices.Equal(e.Entities, entities)):
		e.Need, e.Entities = need, entities
		l.note(now, "changed", need)
		o.changed = true
	case need == "" && e != nil:
		end := &ended{ID: e.ID, Since: e.Since, At: now, Via: via, Need: e.Need, Sent: e.Sent, Refused: e.Refused, Drift: drift(e.Before, l.Identity)}
		if end.Drift != nil {
			l.note(now, "drift", end.Drift.String())
		}
		if m := l.mark(levelConnection, ""); l.disconnected() && m.Via != viaAbandoned {
			end.Via = statusDisconnected
		}
		l.Episode, l.Ended, l.Link = nil, end, nil
		l.drop(owedNotify, e.ID)
		ann := owed{Kind: owedAnnounce, Episode: e.ID, Ended: end, NotBefore: now}
		if holder != "" {
			l.take(&ann, holder, now, p)
			o.lease(ann)
		}
		l.Owed = append(l.Owed, ann)
		l.oweResync(o, end, holder, now, p)
		l.note(now, "ended", fmt.Sprintf("%s after %s", end.Via, end.At.Sub(end.Since).Round(time.Second)))
		o.changed, o.forget = true, true
	}
}

// free reports whether nobody holds ow and it is due.
func (l *life) free(ow *owed, now time.Time) bool {
	return !now.Before(ow.NotBefore) && (ow.Holder == "" || !now.Before(ow.Until))
}

// take leases ow to holder. A reminder taken late is the latest one due:
// reminders missed while nothing ran collapse into one.
func (l *life) take(ow *owed, holder string, now time.Time, p policy) {
	ow.Holder, ow.Until = holder, now.Add(p.lease)
	if ow.Kind == owedNotify && ow.Reminder > 0 && l.Episode != nil {
		for k := ow.Reminder + 1; ; k++ {
			at, ok := p.reminder(l.Episode.Since, k)
			if !ok || now.Before(at) {
				break
			}
			ow.Reminder = k
		}
	}
	if ow.Kind == owedNotify && l.Episode != nil && !ow.Escalate {
		ow.Escalate = l.Episode.Escalated.IsZero() && p.escalates(l.Episode.Since, ow.Reminder, now)
	}
	if ow.Kind == owedLastNotice && ow.DisconnectAt.IsZero() && l.Episode != nil {
		// Its date, and its number in the episode's messages (the next
		// reminder's), kept across its retries.
		ow.DisconnectAt, ow.Reminder = now.Add(p.abandonNote), max(l.Episode.Sent, 1)
	}
}

// escalates reports whether a notification at now, reminder k of an
// episode that began at since, is past the escalation's threshold.
func (p policy) escalates(since time.Time, k int, now time.Time) bool {
	return p.escalate > 0 && !now.Before(since.Add(p.escalate)) || p.escalateN > 0 && k >= p.escalateN
}

func (l *life) onDetected(in detected, now time.Time, p policy) outcome {
	if l.Token != "" && in.fp != l.savedFP() || l.Token == "" && !l.knows(in.fp) {
		return outcome{stale: true} // an old copy: the saved token is another
	}
	var o outcome
	c := l.Check
	switch {
	case c != nil && c.FP == in.fp && c.At.After(in.at.Add(p.skew)):
		// Finch's word on this token came after it refused this call: the
		// 401 is old news.
		l.note(now, "ignored", "a 401 older than Finch's last word on the token")
		return outcome{changed: true}
	case c != nil && c.FP == in.fp && c.Works && c.At.After(in.at.Add(-p.skew)):
		// Too close to tell which came first: ask.
		l.verify(&o, "detection", nil, in.holder, now, p)
		return o
	}
	if !l.savedRefused() {
		l.note(now, "detected", in.method+" "+in.path)
	}
	l.Check = &verdict{FP: in.fp, At: in.at, Via: "detection"}
	l.Breaks++
	return outcome{changed: true}
}

// refused counts the request in the open episode, and reports whether it
// did.
func (l *life) refused(in detected) bool {
	e := l.Episode
	if e == nil || in.method == "" {
		return false
	}
	e.Refused = countRefusal(e.Refused, refusal{Method: in.method, Path: in.path, Count: 1, First: in.at, Last: in.at})
	return true
}

// onAnswered counts the requests the latch answered in the open episode.
func (l *life) onAnswered(in answered) outcome {
	e := l.Episode
	if e == nil || len(in.refused) == 0 {
		return outcome{}
	}
	for _, r := range in.refused {
		e.Refused = countRefusal(e.Refused, r)
	}
	return outcome{changed: true}
}

// countRefusal adds r to rs: to the entry of its method and path, or as a
// new one (bound keeps the first maxRefused).
func countRefusal(rs []refusal, r refusal) []refusal {
	for i := range rs {
		if c := &rs[i]; c.Method == r.Method && c.Path == r.Path {
			c.Count += r.Count
			c.First, c.Last = minTime(c.First, r.First), maxTime(c.Last, r.Last)
			return rs
		}
	}
	if len(rs) >= maxRefused {
		return rs
	}
	return append(rs, r)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// verify owes a check of the saved token at /introspect before a signal
// that contradicts what the record believes is applied. claim is the
// status to apply if Finch refuses the token outright.
func (l *life) verify(o *outcome, cause string, claim *mark, holder string, now time.Time, p policy) {
	ow := l.owedItem(owedVerify, "")
	if ow == nil {
		l.Owed = append(l.Owed, owed{Kind: owedVerify, NotBefore: now})
		ow = &l.Owed[len(l.Owed)-1]
	}
	ow.Cause, ow.Basis, ow.Claim = cause, l.Breaks, claim
	what := cause + ": Finch is asked"
	if claim != nil {
		what = cause + " says " + claim.Status + "; Finch is asked"
	}
	l.note(now, "asking", what)
	if holder != "" && l.free(ow, now) {
		l.take(ow, holder, now, p)
		o.lease(*ow)
	}
	o.changed = true
}

func (l *life) onHeard(in heard, now time.Time, p policy) outcome {
	if in.event != "" {
		if slices.Contains(l.Events, in.event) {
			return outcome{}
		}
		l.Events = slices.Insert(l.Events, 0, in.event)
	}
	o := outcome{changed: true}
	level := levelConnection
	if in.entity != "" {
		level = levelEntity
	}
	m := mark{Level: level, ID: in.entity, Status: in.status, At: in.at, Via: in.via}
	old := l.mark(level, in.entity)
	what := in.via + " " + in.status
	switch {
	case old != nil && (old.Via == "webhook" || old.Via == "job") && in.at.Before(old.At):
		// Older than the status Finch sent last (to the second: sent in
		// the same second, the order cannot be told, and what follows
		// asks Finch when it contradicts the record).
		l.note(now, "ignored", what+", older than the last status Finch sent")
		return o
	case needOf(in.status) != "" && l.Ended != nil && in.at.Before(l.Ended.At.Add(-p.skew)):
		// Older than the end of the last episode by more than clocks
		// disagree: Finch's word from before the reconnect. (Closer than
		// that, the order cannot be told: Finch is asked, below.)
		l.note(now, "ignored", what+", older than the end of the last episode")
		return o
	case level == levelConnection && l.disconnected() && in.status != statusDisconnected:
		// Disconnected is for good: its tokens are revoked, and a status
		// sent about the connection cannot bring them back (a delivery
		// late from before, or one about a new connection, whose token
		// the application saves: a reading with it replaces the mark).
		l.note(now, "ignored", what+", after the connection was disconnected")
		return o
	}
	if l.Token != "" && l.contradicts(m) {
		l.verify(&o, in.via, &m, in.holder, now, p)
		return o
	}
	l.setMark(m)
	if needOf(in.status) != "" {
		l.Breaks++
	}
	l.note(now, "status", what)
	return o
}

// contradicts reports whether m says the opposite of what the record
// believes: that the employer is needed (or for something else) while the
// saved token's last verdict is that it works, or not needed while an
// episode is open (which a new token may be about to end). Finch's
// /introspect answers for every level at once, so it settles either.
func (l *life) contradicts(m mark) bool {
	n := needOf(m.Status)
	cur, _ := l.need()
	switch {
	case n == "":
		return cur != ""
	case l.savedRefused():
		return false // the saved token's verdict agrees
	}
	return cur == "" || (m.Level == levelConnection && n != cur)
}

func (l *life) onRead(in read, now time.Time, p policy) outcome {
	ow := l.owedItem(owedVerify, "")
	mine := ow != nil && in.holder != "" && ow.Holder == in.holder
	switch {
	case l.Token != "" && in.fp != l.savedFP():
		return l.readOther(in, ow, mine)
	case in.refused:
		l.Check = &verdict{FP: in.fp, At: in.at, Via: "introspect"}
		if mine && ow.Claim != nil {
			l.setMark(*ow.Claim) // Finch refuses the token: the signal stands
		}
		if mine {
			l.drop(owedVerify, "")
		}
		l.note(now, "checked", "Finch refuses the saved token")
		return outcome{changed: true}
	}
	says := needOf(in.conn.Status) == "" // Finch says the connection works
	if says && (in.probe == nil || *in.probe) && in.basis >= 0 && l.Breaks > in.basis {
		return l.askAgain(in, ow, mine, now, p)
	}
	if l.Token == "" && in.detection != nil && !l.knows(in.fp) {
		if says {
			// Finch refused the call but says the connection works: the
			// token is an old copy, not a broken connection.
			return outcome{stale: true}
		}
		// The token the application uses: the Store keeps it, so that
		// Transport.Token knows it and the reconnect replaces it.
		l.Token = in.token
		l.addFingerprint(in.fp)
	}
	was := l.mark(levelConnection, "")
	quiet := in.sweep && was != nil && was.Status == in.conn.Status && l.Episode == nil && says
	l.apply(in.conn, in.at, "introspect")
	if !says && l.Episode != nil {
		l.Episode.remember(l.Identity)
	}
	switch {
	case quiet:
		// A sweep that finds the connection as it was adds no line to the
		// timeline: a day's check of a healthy connection is not news.
	case in.detection != nil:
		l.Check = &verdict{FP: in.fp, At: in.detection.at, Via: "detection"} // Finch refused a call with it
		l.note(now, "detected", in.detection.method+" "+in.detection.path)
	case in.probe != nil:
		l.Check = &verdict{FP: in.fp, Works: *in.probe, At: in.at, Via: "probe"}
		fallthrough
	default:
		l.note(now, "checked", "Finch says "+in.conn.Status)
	}
	if mine {
		l.drop(owedVerify, "")
	}
	if !says {
		l.Breaks++
	}
	return outcome{changed: true}
}

// readOther takes in an answer about another token than the saved one: it
// says nothing of the connection. A data call refused with that token was
// an old copy, which the record now names (after the saved token: the
// Store's index keeps it when the record's list no longer does), so that the
// next refusal needs no question. A check it was for is tried again.
func (l *life) readOther(in read, ow *owed, mine bool) outcome {
	var o outcome
	if mine {
		ow.Holder, ow.Until = "", time.Time{}
		o.changed = true
	}
	if in.detection != nil && !l.knows(in.fp) {
		l.Fingerprints = slices.Insert(l.Fingerprints, min(1, len(l.Fingerprints)), in.fp)
		o.changed = true
	}
	o.stale = in.detection != nil
	return o
}

// askAgain: a signal that the connection broke came while the check ran,
// so its answer cannot say the connection works. The check is owed again,
// at most maxVerify times.
func (l *life) askAgain(in read, ow *owed, mine bool, now time.Time, p policy) outcome {
	tries := 0
	if ow != nil {
		tries = ow.Tries
	}
	if tries >= maxVerify {
		l.drop(owedVerify, "")
		return outcome{changed: true}
	}
	if mine {
		ow.Holder, ow.Until = "", time.Time{}
	}
	var o outcome
	l.verify(&o, "a break during a check", nil, in.holder, now, p)
	l.owedItem(owedVerify, "").Tries = tries + 1
	return o
}

// apply records what /introspect (or an exchange) said of every level.
func (l *life) apply(c *Connection, at time.Time, via string) {
	id := l.Identity
	cc := c.clone()
	l.Identity = &cc
	if id != nil && cc.ConnectionID == "" {
		l.Identity.ConnectionID = id.ConnectionID
	}
	if c.Status != "" {
		l.setMark(mark{Level: levelConnection, Status: c.Status, At: at, Via: via})
	}
	// The answer lists every entity and method: those it does not list
	// have gone.
	l.Marks = slices.DeleteFunc(l.Marks, func(m mark) bool { return m.Level != levelConnection })
	for _, en := range c.Entities {
		if en.Status != "" {
			l.setMark(mark{Level: levelEntity, ID: en.ID, Status: en.Status, At: at, Via: via})
		}
	}
	for _, am := range c.AuthenticationMethods {
		if am.Status != "" {
			l.setMark(mark{Level: levelMethod, ID: am.Type, Status: am.Status, At: at, Via: via})
		}
	}
}

func (l *life) onClaimed(in claimed, now time.Time, p policy) outcome {
	c := l.claim(in.nonce)
	switch {
	case !in.expires.After(l.Spent):
		return outcome{err: errSpent}
	case c != nil && (c.Done || c.Attempts >= p.attempts):
		return outcome{err: errSpent}
	case c != nil && c.Busy && now.Sub(c.Started) < p.lease:
		return outcome{err: errBusy}
	case c == nil:
		l.Claims = append(l.Claims, claim{Nonce: in.nonce, Expires: in.expires})
		c = &l.Claims[len(l.Claims)-1]
	}
	c.Attempts++
	c.Started, c.Busy = now, true
	if l.Link != nil && l.Link.Nonce == in.nonce {
		l.Link = nil // Connect spent the link's session: the next one is new
	}
	l.note(now, "returned", "the employer came back from Finch Connect")
	return outcome{changed: true}
}

func (l *life) onUnclaimed(in unclaimed) outcome {
	c := l.claim(in.nonce)
	if c == nil || !c.Busy {
		return outcome{}
	}
	c.Busy = false
	return outcome{changed: true}
}

// onSaved decides which token the connection keeps. No clock decides: a
// token replaces the saved one only if Finch accepts it, or if the saved one
// is known to be refused and there was no way to ask (or nothing is saved).
func (l *life) onSaved(in saved, now time.Time, p policy) outcome {
	if in.token == l.Token {
		// Saved already: by an earlier try of this save whose answer was
		// lost (it carries out what that try owes), or by another.
		var o outcome
		for _, ow := range l.Owed {
			if ow.Kind == owedAnnounce && ow.Holder == in.holder {
				o.lease(ow)
			}
		}
		if c := l.claim(in.nonce); c != nil && !c.Done {
			c.Done, c.Busy, o.changed = true, false, true
		}
		return o
	}
	if err := l.admit(in); err != nil {
		return outcome{err: err}
	}
	if err := l.refusal(in); err != nil {
		return outcome{err: err}
	}
	fp := in.token.Fingerprint()
	l.Token = in.token
	l.addFingerprint(fp)
	var o outcome
	if v := in.offered; v != nil {
		l.takeVerdict(*v, in.conn)
	} else {
		l.Check = nil
		if l.Episode != nil {
			// Not known to work until Finch says so: the episode stays
			// open, and the check that can end it is owed.
			l.Check = &verdict{FP: fp, At: now, Via: "unverified"}
			l.verify(&o, in.via, nil, in.holder, now, p)
		}
	}
	l.note(now, "saved", "token "+fp+" ("+in.via+")")
	o.changed = true
	return o
}

// refusal is why in.token may not replace the saved token, or nil.
func (l *life) refusal(in saved) error {
	v := in.offered
	mayWork := l.Token != "" && !l.savedRefused() // the saved token may still work
	switch {
	case v == nil && !in.unverified && (mayWork || l.Episode != nil):
		return errNeedCheck
	case in.unverified && mayWork:
		return errNeedCheck // there is no deciding without Finch
	case v == nil:
		return nil
	case v.Via == "exchange" && mayWork:
		// Two exchanges can answer in either order: a token fresh from
		// one does not beat a saved token that may work without asking.
		return errNeedCheck
	case v.Via == "inconclusive" && l.knows(v.FP):
		// Finch's answer says nothing of either token, and this one is an
		// old copy the record knew: the saved one stays. (One it never
		// saw, as a reconnect's, is taken.)
		return ErrStaleToken
	case !v.Works && v.Via != "inconclusive" && l.Token != "":
		// Finch refuses it: it is no better than the saved token, which
		// may be the newer (a reconnect's) whether Finch accepts it now or
		// not. The saved one stays.
		return ErrStaleToken
	}
	return nil
}

// takeVerdict records Finch's verdict on a token just saved, and what
// Finch said of the connection with it.
func (l *life) takeVerdict(v verdict, conn *Connection) {
	l.Check = &v
	if v.Via == "inconclusive" {
		l.Check = nil // nothing is known of it yet
	}
	switch {
	case conn != nil:
		l.apply(conn, v.At, "introspect")
	case v.Works && v.Via == "exchange":
		// Finch issued it for this connection just now: the connection,
		// and each entity it had, works.
		l.setMark(mark{Level: levelConnection, Status: statusConnected, At: v.At, Via: "exchange"})
		for i, m := range l.Marks {
			if needOf(m.Status) == statusReauth {
				l.Marks[i] = mark{Level: m.Level, ID: m.ID, Status: statusConnected, At: v.At, Via: "exchange"}
			}
		}
	}
	if !v.Works && l.Check != nil {
		l.Breaks++
	}
}

// admit checks that a callback may complete a reconnect with its state, and
// marks the state done.
func (l *life) admit(in saved) error {
	switch {
	case in.nonce != "":
		c := l.claim(in.nonce)
		if c == nil || c.Done {
			return errSpent
		}
		c.Done, c.Busy = true, false
	case in.stateless:
		if l.Episode == nil || l.Link == nil {
			return errNoLink
		}
	}
	return nil
}

func (l *life) onLinked(in linked, now time.Time) outcome {
	if in.request != "" {
		r := l.requestByID(in.request)
		if r == nil || r.Link.good(now, in.margin) {
			return outcome{}
		}
		k := in.link
		r.Link = &k
		return outcome{changed: true}
	}
	if l.linkFor(now, in.margin) != "" {
		return outcome{} // kept meanwhile, elsewhere: hand out one link
	}
	k := in.link
	l.Link = &k
	l.note(now, "link", "a reconnect link was made")
	return outcome{changed: true}
}

func (l *life) onRenewed(in renewed, now time.Time, p policy) outcome {
	var ow *owed
	for i := range l.Owed {
		if l.Owed[i].Kind == in.kind && l.Owed[i].Holder == in.holder {
			ow = &l.Owed[i]
		}
	}
	r := (*request)(nil)
	if ow != nil && in.kind == owedAsk {
		r = l.requestByID(ow.Episode)
	}
	if ow == nil || (r == nil && l.Episode == nil) {
		return outcome{err: errNoLease}
	}
	ow.Until = now.Add(p.lease)
	if in.link != nil {
		k := *in.link
		if r != nil {
			r.Link = &k
		} else {
			l.Link = &k
		}
	}
	return outcome{changed: true}
}

func (l *life) onDone(in done, now time.Time, p policy) outcome {
	ow := l.owedItem(in.kind, in.episode)
	if ow == nil || ow.Holder != in.holder {
		return outcome{}
	}
	if !in.ok {
		ow.Tries++
		ow.Holder, ow.Until = "", time.Time{}
		ow.NotBefore = now.Add(p.backoff(ow.Tries))
		if (ow.Kind == owedAnnounce || ow.Kind == owedSynced || ow.Kind == owedAnswered) && ow.Tries >= maxAnnounce {
			l.drop(ow.Kind, in.episode)
		}
		if ow.Kind == owedNotify {
			l.note(now, "notify_failed", fmt.Sprintf("try %d; next at %s", ow.Tries, ow.NotBefore.Format(time.RFC3339)))
		}
		return outcome{changed: true}
	}
	switch ow.Kind {
	case owedNotify:
		e := l.Episode
		what := "notified"
		if ow.Reminder > 0 {
			what = fmt.Sprintf("reminded (%d)", ow.Reminder)
		}
		l.note(now, what, e.Need)
		e.Sent++
		e.LastSent = now
		if ow.Escalate {
			e.Escalated = now
			l.note(now, "escalated", fmt.Sprintf("after %s and %d reminder(s)", now.Sub(e.Since).Round(time.Minute), ow.Reminder))
		}
		next, ok := p.reminder(e.Since, ow.Reminder+1)
		if esc := e.Since.Add(p.escalate); e.Escalated.IsZero() && p.escalate > 0 && esc.After(now) && (!ok || esc.Before(next)) {
			// The escalation is due before the next reminder: it goes
			// out on its day, as a reminder of its own.
			next, ok = esc, true
		}
		if !ok {
			l.drop(owedNotify, e.ID)
			break
		}
		// A first notification that went out late is not followed at
		// once by a reminder.
		if gap := min(p.firstReminder(), time.Hour); next.Before(now.Add(gap)) {
			next = now.Add(gap)
		}
		*ow = owed{Kind: owedNotify, Episode: e.ID, Reminder: ow.Reminder + 1, NotBefore: next}
	case owedSweep:
		*ow = owed{Kind: owedSweep, NotBefore: now.Add(p.sweep)}
	case owedLastNotice:
		l.noticed(ow, now)
	case owedAsk:
		l.askSent(ow, now, p)
	default:
		l.drop(ow.Kind, in.episode)
	}
	return outcome{changed: true}
}

func (l *life) onDue(in due, now time.Time, p policy) outcome {
	var o outcome
	for i := range l.Claims {
		// A code came back during this episode and its token was never
		// saved: the process that spent it may have died. Say so once.
		c := &l.Claims[i]
		if c.Busy && !c.Reported && l.Episode != nil && !c.Started.Before(l.Episode.Since) && now.Sub(c.Started) > p.lease {
			c.Reported = true
			o.abandoned = append(o.abandoned, *c)
			o.changed = true
		}
	}
	for i := range l.Owed {
		ow := &l.Owed[i]
		if ow.Kind == owedNotify && !p.notify || (ow.Kind == owedSweep) != in.sweep || !l.free(ow, now) {
			continue
		}
		l.take(ow, in.holder, now, p)
		o.lease(*ow)
		o.changed = true
	}
	return o
}

// reminder is when reminder k (1, 2, ...) of an episode that began at since
// is due; false when there is none.
func (p policy) reminder(since time.Time, k int) (time.Time, bool) {
	offsets := p.reminders
	if k > p.maxReminders || len(offsets) == 0 {
		return time.Time{}, false
	}
	if k <= len(offsets) {
		return since.Add(offsets[k-1]), true
	}
	return since.Add(offsets[len(offsets)-1] + time.Duration(k-len(offsets))*p.remindEvery), true
}

func (p policy) firstReminder() time.Duration {
	if len(p.reminders) == 0 {
		return time.Hour
	}
	return p.reminders[0]
}

// backoff is the wait after the n-th failure in a row: retry, doubling,
// capped.
func (p policy) backoff(n int) time.Duration {
	d := p.retry
	for i := 1; i < n && d < p.retryCap; i++ {
		d *= 2
	}
	return min(d, p.retryCap)
}
