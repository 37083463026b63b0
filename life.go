package finchreauth

import (
	"slices"
	"time"
)

// A connection's life, in one place. Everything the Transport knows of a
// connection is a life, kept in the connection's Record; every signal about
// the connection is an input; and step, a pure function of (life, input,
// now), returns the next life and what is owed. The Transport's flows all do
// the same four things: load the record, step, compare-and-set, carry out
// what the new life owes. An effect is owed in the record before it is
// carried out, and a lease says who carries it: a process that dies after
// the write leaves it owed, and Remind finds it (at least once, with the same
// episode id; never zero).
//
// What Finch said is kept as marks, one per level (the connection, each
// entity, each authentication method), each with the time Finch said it. A
// connection needs its employer exactly when the marks say so, and the
// episode is derived from that: it opens when they start to, and ends when
// they stop.

// Statuses Finch reports (FINCH.md, "Connection health beyond reauth").
const (
	statusConnected      = "connected"
	statusReauth         = "reauth"
	statusNoAccountSetup = "error_no_account_setup"
	statusPermissions    = "error_permissions"
	statusDisconnected   = "disconnected"
)

// needOf is what status asks of the employer: "reauth" (go through Finch
// Connect again), "error_no_account_setup" or "error_permissions" (fix it in
// the payroll system), or "" for nothing. Job results and old spellings are
// read as the status they mean.
func needOf(status string) string {
	switch status {
	case statusReauth, "error_reauth", "reauth_error":
		return statusReauth
	case statusPermissions, "permissions_error":
		return statusPermissions
	case statusNoAccountSetup:
		return statusNoAccountSetup
	}
	return ""
}

// Bounds on what one record keeps.
const (
	maxFingerprints = 16 // the Store's index keeps the older ones
	maxEvents       = 64 // webhook event ids remembered, for deduplication
	maxClaims       = 16 // link states seen at the callback
	maxMarks        = 64 // statuses, one per level
	maxHistory      = 48 // lines of the timeline
	maxRefused      = 16 // distinct requests refused during an episode
	maxAnnounce     = 8  // tries to tell the application an episode ended
	maxVerify       = 8  // tries of a check that Finch answers ambiguously
	maxConflicts    = 16 // compare-and-set attempts before giving up
)

// life is what the Transport knows of one connection. Token and
// Fingerprints are the Record's own fields; the rest is its Data.
type life struct {
	Token        Token    `json:"-"`
	Fingerprints []string `json:"-"`

	// Identity is what /introspect said of the connection last.
	Identity *Connection `json:"identity,omitempty"`
	// Marks are the latest status Finch gave for each level.
	Marks []mark `json:"marks,omitempty"`
	// Check is the last verdict on the saved token.
	Check *verdict `json:"check,omitempty"`
	// Breaks counts the signals that said the connection is broken: a
	// check that began before one of them cannot say it works.
	Breaks int `json:"breaks,omitempty"`

	Episode *episode `json:"episode,omitempty"` // open while the employer is needed
	// Requests are open requests to the employer while the connection
	// works (ask.go); CampaignsDone the campaigns answered, newest first.
	Requests      []request `json:"requests,omitempty"`
	CampaignsDone []string  `json:"campaigns_done,omitempty"`
	Ended         *ended    `json:"ended,omitempty"`  // the last episode that ended
	Resync        *resync   `json:"resync,omitempty"` // the data sync after it (resync.go)
	Owed          []owed    `json:"owed,omitempty"`

	// Link is the reconnect link the customer is given, kept until it
	// expires, its state is spent, or the episode ends.
	Link   *link   `json:"link,omitempty"`
	Claims []claim `json:"claims,omitempty"`
	// Spent: a state that expires at or before it is spent; it stands for
	// the claims the record no longer keeps.
	Spent  time.Time   `json:"spent,omitzero"`
	Events []string    `json:"events,omitempty"` // webhook event ids, newest first
	Lines  []happening `json:"history,omitempty"`
	// Clock is the latest time the record was written at: a process whose
	// clock runs behind writes no time before it.
	Clock time.Time `json:"clock,omitzero"`
}

// mark is one status Finch gave: for the connection, an entity or an
// authentication method.
type mark struct {
	Level  string    `json:"level"`        // levelConnection, levelEntity or levelMethod
	ID     string    `json:"id,omitempty"` // the entity id, or the method's type
	Status string    `json:"status"`
	At     time.Time `json:"at"`
	Via    string    `json:"via"` // "webhook", "job", "introspect", "detection" or "exchange"
}

const (
	levelConnection = "connection"
	levelEntity     = "entity"
	levelMethod     = "method"
)

// verdict is what Finch said of a token: Finch accepts it (Works) or not.
type verdict struct {
	FP    string    `json:"fp"`
	Works bool      `json:"works"`
	At    time.Time `json:"at"`
	Via   string    `json:"via"` // "introspect", "detection", "exchange"
}

type episode struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
	// Need is what the employer must do: needOf's answer.
	Need   string `json:"need"`
	Source string `json:"source"` // what opened it
	// Entities lists the broken entities when only some are; empty means
	// the whole connection.
	Entities []string  `json:"entities,omitempty"`
	Sent     int       `json:"sent,omitempty"` // notifications sent: the first, then reminders
	LastSent time.Time `json:"last_sent,omitzero"`
	Refused  []refusal `json:"refused,omitempty"`
	// Before is what Finch last said of the connection before the
	// reconnect: when the episode opened, or since while it said the
	// connection was broken; for the drift across the reconnect. A reading
	// that says it works (the reconnect's own webhook, read with the token
	// the reconnect replaces) is the connection after, not before.
	Before *Connection `json:"before,omitempty"`
	// Escalated is when the escalation went out.
	Escalated time.Time `json:"escalated,omitzero"`
	// Abandoning: the application abandoned the connection (Abandon).
	// Noticed is when the last notice went out.
	Abandoning bool      `json:"abandoning,omitempty"`
	Noticed    time.Time `json:"noticed,omitzero"`
}

// remember keeps c, what Finch says of the connection now, as the episode's
// before; nil (Finch never asked) keeps what it had.
func (e *episode) remember(c *Connection) {
	if c != nil {
		b := c.clone()
		e.Before = &b
	}
}

// refusal is a request Finch refused during an episode.
type refusal struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Count  int       `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

type ended struct {
	ID      string    `json:"id"`
	Since   time.Time `json:"since"`
	At      time.Time `json:"at"`
	Via     string    `json:"via"`
	Need    string    `json:"need,omitempty"`
	Sent    int       `json:"sent,omitempty"`
	Refused []refusal `json:"refused,omitempty"`
	Drift   *Drift    `json:"drift,omitempty"`
}

// owed is an effect the record owes: a notification or reminder
// (owedNotify), telling the application an episode ended (owedAnnounce), or
// asking Finch before believing a signal (owedVerify). Holder holds it until
// Until; nobody tries it before NotBefore.
type owed struct {
	Kind      string    `json:"kind"`
	Episode   string    `json:"episode,omitempty"`
	Reminder  int       `json:"reminder,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	Holder    string    `json:"holder,omitempty"`
	Until     time.Time `json:"until,omitzero"`
	Tries     int       `json:"tries,omitempty"`
	// A check: what caused it, the Breaks it began at, and the status it
	// would confirm.
	Cause string `json:"cause,omitempty"`
	Basis int    `json:"basis,omitempty"`
	Claim *mark  `json:"claim,omitempty"`
	// An announcement: the episode that ended.
	Ended *ended `json:"ended,omitempty"`
	// A notification: it is the episode's escalation (decided when it was
	// first leased, kept across its retries).
	Escalate bool `json:"escalate,omitempty"`
	// A last notice: the disconnect date it gives (set when it is first
	// leased). A disconnect: the token it is about.
	DisconnectAt time.Time `json:"disconnect_at,omitzero"`
	FP           string    `json:"fp,omitempty"`
	// Telling the application a request was answered: how.
	Answer *answer `json:"answer,omitempty"`
}

const (
	owedNotify   = "notify"
	owedAnnounce = "announce"
	owedVerify   = "verify"
)

type link struct {
	URL     string    `json:"url"`
	Nonce   string    `json:"nonce,omitempty"`  // of the state it carries, when Connect minted it
	Expires time.Time `json:"expires,omitzero"` // zero: good while the episode lasts
}

// claim is a link state that reached the callback: how many times a code
// came back with it, and whether one of them reconnected.
type claim struct {
	Nonce    string    `json:"nonce"`
	Expires  time.Time `json:"expires"` // the state's own expiry
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started"`        // the last attempt
	Busy     bool      `json:"busy,omitempty"` // an attempt is under way
	Done     bool      `json:"done,omitempty"`
	Reported bool      `json:"reported,omitempty"` // an abandoned attempt was reported
}

// happening is a line of the connection's timeline.
type happening struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// policy is the Transport's configuration that step reads.
type policy struct {
	lease        time.Duration // how long a lease lasts
	retry        time.Duration // the first wait after a failure
	retryCap     time.Duration // the longest
	reminders    []time.Duration
	remindEvery  time.Duration
	maxReminders int           // negative: none
	notify       bool          // a Notifier is set
	resync       bool          // a reconnect starts Finch's data_sync_all job
	sweep        time.Duration // the health sweep's period; 0: none
	escalate     time.Duration // an episode this old escalates; 0: never by age
	escalateN    int           // an episode with this many reminders escalates; 0: never by count
	abandon      time.Duration // an episode this old gets its last notice; 0: never
	abandonNote  time.Duration // from the last notice to the disconnect
	skew         time.Duration
	attempts     int // codes exchanged with one link state
}

// outcome is what a step did, besides the new life.
type outcome struct {
	changed bool
	// run is what the step leased to the input's holder: carry it out,
	// then report it done.
	run []owed
	// forget: tokens of the connection Finch refused may work now.
	forget bool
	// stale: the token the input was about is an old copy.
	stale bool
	// abandoned: attempts at the callback that never finished (their
	// process died), each reported once.
	abandoned []claim
	err       error
}

func (o *outcome) lease(ow owed) { o.run = append(o.run, ow) }

// need is what the employer must do, and which entities are broken when
// only some are (nil: the whole connection). A connection-level status comes
// first; then the saved token's verdict (Finch refuses the token the
// application uses: whatever /introspect says of the connection, its calls
// fail until a reconnect); then an authentication method's status, then the
// entities'.
func (l *life) need() (string, []string) {
	if l.disconnected() {
		return "", nil // gone: nothing the employer can do brings it back
	}
	var entities []string
	method := ""
	for _, m := range l.Marks {
		n := needOf(m.Status)
		switch {
		case n == "":
		case m.Level == levelConnection:
			return n, nil
		case m.Level == levelMethod && method == "":
			method = n
		case m.Level == levelEntity:
			entities = append(entities, m.ID)
		}
	}
	switch {
	case l.savedRefused():
		return statusReauth, nil
	case method != "":
		return method, nil
	case len(entities) > 0:
		slices.Sort(entities)
		return statusReauth, entities
	}
	return "", nil
}

// disconnected reports whether Finch says the connection is gone.
func (l *life) disconnected() bool {
	m := l.mark(levelConnection, "")
	return m != nil && m.Status == statusDisconnected
}

func (l *life) mark(level, id string) *mark {
	for i := range l.Marks {
		if l.Marks[i].Level == level && l.Marks[i].ID == id {
			return &l.Marks[i]
		}
	}
	return nil
}

// setMark records m in place of the mark of its level.
func (l *life) setMark(m mark) {
	if old := l.mark(m.Level, m.ID); old != nil {
		*old = m
		return
	}
	l.Marks = append(l.Marks, m)
}

// savedFP is the fingerprint of the saved token, or "".
func (l *life) savedFP() string {
	if l.Token == "" {
		return ""
	}
	return l.Token.Fingerprint()
}

// savedRefused reports whether the last verdict on the saved token is that
// Finch refuses it (or that nothing says it works yet, for a token saved
// without a verdict during an episode).
func (l *life) savedRefused() bool {
	return l.Token != "" && l.Check != nil && l.Check.FP == l.savedFP() && !l.Check.Works
}

func (l *life) owedItem(kind, episode string) *owed {
	for i := range l.Owed {
		if l.Owed[i].Kind == kind && (episode == "" || l.Owed[i].Episode == episode) {
			return &l.Owed[i]
		}
	}
	return nil
}

func (l *life) drop(kind, episode string) {
	l.Owed = slices.DeleteFunc(l.Owed, func(o owed) bool { return o.Kind == kind && (episode == "" || o.Episode == episode) })
}

func (l *life) claim(nonce string) *claim {
	for i := range l.Claims {
		if l.Claims[i].Nonce == nonce {
			return &l.Claims[i]
		}
	}
	return nil
}

// linkFor returns the episode's link if it is good at now.
func (l *life) linkFor(now time.Time, margin time.Duration) string {
	k := l.Link
	if l.Episode == nil && len(l.Requests) > 0 {
		k = l.Requests[0].Link // no episode: the open request's
	}
	if !k.good(now, margin) {
		return ""
	}
	return k.URL
}

// good reports whether k is a link still good margin after now.
func (k *link) good(now time.Time, margin time.Duration) bool {
	return k != nil && (k.Expires.IsZero() || now.Before(k.Expires.Add(-margin)))
}

func (l *life) note(now time.Time, what, detail string) {
	l.Lines = append(l.Lines, happening{At: now, What: what, Detail: detail})
}

// knows reports whether fp names a token of the connection.
func (l *life) knows(fp string) bool { return slices.Contains(l.Fingerprints, fp) }

// addFingerprint puts fp first.
func (l *life) addFingerprint(fp string) {
	l.Fingerprints = slices.Insert(slices.DeleteFunc(l.Fingerprints, func(x string) bool { return x == fp }), 0, fp)
}

// since and due are the Record's indexed fields, derived here and nowhere
// else: when the open episode began, and when the record next needs the
// Transport (the earliest owed effect: its lease's end while one holds it).
func (l *life) since() time.Time {
	if l.Episode == nil {
		return time.Time{}
	}
	return l.Episode.Since
}

func (l *life) due() time.Time {
	var due time.Time
	for _, o := range l.Owed {
		at := o.NotBefore
		if o.Holder != "" {
			at = o.Until
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return due
}

// clone copies l deeply enough that changing the copy leaves l as it was.
func (l life) clone() life {
	l.Fingerprints = slices.Clone(l.Fingerprints)
	if l.Identity != nil {
		c := l.Identity.clone()
		l.Identity = &c
	}
	l.Marks = slices.Clone(l.Marks)
	if l.Check != nil {
		c := *l.Check
		l.Check = &c
	}
	if l.Episode != nil {
		e := *l.Episode
		e.Entities, e.Refused = slices.Clone(e.Entities), slices.Clone(e.Refused)
		if e.Before != nil {
			c := e.Before.clone()
			e.Before = &c
		}
		l.Episode = &e
	}
	if l.Ended != nil {
		e := *l.Ended
		l.Ended = &e
	}
	if l.Resync != nil {
		r := *l.Resync
		l.Resync = &r
	}
	l.Requests = slices.Clone(l.Requests)
	for i := range l.Requests {
		r := &l.Requests[i]
		r.Products = slices.Clone(r.Products)
		if r.Link != nil {
			k := *r.Link
			r.Link = &k
		}
	}
	l.CampaignsDone = slices.Clone(l.CampaignsDone)
	l.Owed = slices.Clone(l.Owed)
	for i := range l.Owed {
		if c := l.Owed[i].Claim; c != nil {
			cc := *c
			l.Owed[i].Claim = &cc
		}
	}
	if l.Link != nil {
		k := *l.Link
		l.Link = &k
	}
	l.Claims = slices.Clone(l.Claims)
	l.Events = slices.Clone(l.Events)
	l.Lines = slices.Clone(l.Lines)
	return l
}

// firstToGo reports whether claim a gives way before b when the record
// keeps too many.
func firstToGo(a, b claim) bool {
	switch {
	case a.Done != b.Done:
		return !a.Done
	case !a.Done:
		return a.Started.Before(b.Started)
	}
	return a.Expires.Before(b.Expires)
}

// bound cuts what l keeps to its caps and drops what expired.
func (l *life) bound(now time.Time) {
	if len(l.Fingerprints) > maxFingerprints {
		l.Fingerprints = l.Fingerprints[:maxFingerprints]
	}
	if len(l.Events) > maxEvents {
		l.Events = l.Events[:maxEvents]
	}
	if len(l.Lines) > maxHistory {
		l.Lines = slices.Clone(l.Lines[len(l.Lines)-maxHistory:])
	}
	if len(l.Marks) > maxMarks {
		// Keep the marks that say something is wrong, then the newest.
		slices.SortStableFunc(l.Marks, func(a, b mark) int {
			if (needOf(a.Status) != "") != (needOf(b.Status) != "") {
				if needOf(a.Status) != "" {
					return -1
				}
				return 1
			}
			return b.At.Compare(a.At)
		})
		l.Marks = l.Marks[:maxMarks]
	}
	l.Claims = slices.DeleteFunc(l.Claims, func(c claim) bool { return !now.Before(c.Expires) })
	for len(l.Claims) > maxClaims {
		// A state whose attempts all failed gives way first, the oldest
		// attempt first; a spent one only when every claim kept is spent,
		// the first to expire. Every state that expires no later than a
		// spent one dropped (to the second) is spent from then on: it
		// cannot come back.
		i := 0
		for j := range l.Claims {
			if firstToGo(l.Claims[j], l.Claims[i]) {
				i = j
			}
		}
		if c := l.Claims[i]; c.Done && c.Expires.After(l.Spent) {
			l.Spent = c.Expires
		}
		l.Claims = slices.Delete(l.Claims, i, i+1)
	}
	if e := l.Episode; e != nil && len(e.Refused) > maxRefused {
		e.Refused = e.Refused[:maxRefused]
	}
}
