package finchreauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/finchkit/finchreauth/internal/hook"
)

var errNoLinks = errors.New("finchreauth: the Transport has neither Connect nor Links")

// mint makes a new reconnect link for ev's connection with Links or Connect.
func (t *Transport) mint(ctx context.Context, ev Event) (link, error) {
	s := subject{conn: ev.Connection.ConnectionID}
	return callHook(t, ctx, "link", s, func(ctx context.Context) (link, error) {
		switch {
		case t.Links != nil:
			u, err := t.Links.ReconnectURL(ctx, ev)
			if err == nil && u == "" {
				err = errors.New("finchreauth: the LinkBuilder returned no link")
			}
			return link{URL: u}, err
		case t.Connect != nil:
			return t.Connect.mint(ctx, t.finch(ctx, t.base()), ev.Connection, ev.Products, t.now())
		}
		return link{}, errNoLinks
	})
}

// errNotConnect is the answer for a connection that Finch Connect cannot
// repair: an assisted one, or one whose employer must fix something in the
// payroll system.
var errNotConnect = errors.New("finchreauth: this connection is repaired in the payroll system, not through Finch Connect")

// ReconnectURL returns the link that reopens Finch Connect for the
// connection: the one its customer was sent while it is still good, or a new
// one, kept for the next call. It is what a dashboard's "reconnect" button
// leads to: call it from a handler of any router, once the signed-in user is
// known to own the connection (StartHandler does that for routers whose
// path parameters an *http.Request carries). For an assisted connection, or
// an episode whose remedy is in the payroll system (Status.Need), no link is
// made: Finch Connect cannot repair those.
func (t *Transport) ReconnectURL(ctx context.Context, connectionID string) (string, error) {
	t.init()
	if err := checkID(connectionID); err != nil {
		return "", err
	}
	_, l, err := t.load(ctx, connectionID)
	if err != nil {
		return "", err
	}
	if u := l.linkFor(t.now(), t.linkMargin()); u != "" {
		return u, nil
	}
	// One mint at a time per connection in this process; across
	// processes, the first link stored wins.
	v, err, _ := t.group.Do("link:"+connectionID, func() (any, error) {
		// Read again: a flight that ended while this call read the record
		// may have kept a link.
		_, l, err := t.load(ctx, connectionID)
		if err != nil {
			return "", err
		}
		if u := l.linkFor(t.now(), t.linkMargin()); u != "" {
			return u, nil
		}
		return t.mintFor(ctx, connectionID, l)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// mintFor mints a link for conn and keeps it in the record, unless another
// was kept meanwhile.
func (t *Transport) mintFor(ctx context.Context, conn string, l life) (string, error) {
	if (l.Identity != nil && l.Identity.Assisted) || (l.Episode != nil && l.Episode.Need != statusReauth) {
		return "", errNotConnect
	}
	ev := Event{Connection: Connection{ConnectionID: conn}, Since: l.since(), At: t.now(), Source: "start", Status: statusReauth}
	if l.Identity != nil {
		ev.Connection = l.Identity.clone()
		ev.Connection.ConnectionID = conn
	}
	var req string
	if l.Episode != nil {
		ev.Episode = l.Episode.ID
	} else if len(l.Requests) > 0 {
		// No episode: the link answers the open request.
		r := l.Requests[0]
		req, ev.Episode, ev.Request, ev.Campaign, ev.Deadline = r.ID, r.ID, r.Kind, r.Campaign, r.Deadline
		if r.Kind == requestUpgrade {
			ev.Products = slices.Clone(r.Products)
		}
	}
	if l.Identity == nil && l.Token != "" && t.Connect != nil && t.Connect.AuthorizeURLs && len(t.Connect.Products) == 0 {
		// An authorize URL needs the connection's products and provider.
		if in, ok := t.reading(ctx, t.base(), conn, l.Token, l.Breaks, ""); ok && in.conn != nil {
			ev.Connection = *in.conn
			t.apply(ctx, conn, in) // what Finch said is worth keeping
		}
	}
	k, err := t.mint(ctx, ev)
	if err != nil {
		return "", err
	}
	next, _, err := t.apply(ctx, conn, linked{link: k, margin: t.linkMargin(), request: req})
	if err != nil {
		return "", err
	}
	return next.linkFor(t.now(), t.linkMargin()), nil
}

// StartHandler returns a handler that sends the signed-in user to Finch
// Connect for the connection authorize names (for "reconnect from the
// dashboard"): a 303 to ReconnectURL. authorize decides from the request
// (the application's session, a path value) which connection the user may
// reconnect; an error, or a panic, answers 403. A link that cannot be made
// answers 303 to Connect.FailureURL with reason=link_failed. It panics if
// the Transport has neither a valid Connect nor a LinkBuilder (Links), or
// Validate refuses it.
func (t *Transport) StartHandler(authorize func(*http.Request) (connectionID string, err error)) http.Handler {
	t.mustConnect("StartHandler", true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, ok := t.authorized(w, r, authorize, startMethods...); ok {
			t.ServeReconnect(w, r, conn)
		}
	})
}

var startMethods = []string{http.MethodGet, http.MethodPost}

// ServeReconnect answers r as StartHandler does, for a connection the
// application resolved and authorized itself: for a router that keeps path
// parameters in its own context (gin's c.Param, echo's), in the way of
// http.ServeFile,
//
//	r.POST("/tenants/:tenant/finch/reconnect", func(c *gin.Context) {
//		conn, err := app.Member(c.Request, c.Param("tenant"))
//		if err != nil {
//			c.AbortWithStatus(http.StatusForbidden)
//			return
//		}
//		tr.ServeReconnect(c.Writer, c.Request, conn)
//	})
//
// It sets the same headers (no-store, no referrer), and answers 405 to a
// method other than GET or POST.
func (t *Transport) ServeReconnect(w http.ResponseWriter, r *http.Request, connectionID string) {
	if !t.allowed(w, r, startMethods...) {
		return
	}
	u, err := t.ReconnectURL(r.Context(), connectionID)
	if err != nil {
		t.redirectFailure(w, r, ReasonLinkFailed, connectionID)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// allowed sets the headers of the start and status endpoints and answers a
// request that is not one of methods (405).
func (t *Transport) allowed(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	t.init()
	noStore(w)
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

// authorized answers a request to StartHandler or StatusHandler that is not
// one of methods (405), or that authorize refuses (403), and otherwise
// returns the connection authorize names. A refusal is the application's
// answer, not a failure: only a panic is reported.
func (t *Transport) authorized(w http.ResponseWriter, r *http.Request, authorize func(*http.Request) (string, error), methods ...string) (string, bool) {
	if !t.allowed(w, r, methods...) {
		return "", false
	}
	var conn string
	var err error = errors.New("finchreauth: no authorize function")
	if authorize != nil {
		conn, err = hook.Run(r.Context(), t.timeout(), func(context.Context) (string, error) { return authorize(r) })
	}
	if p, ok := err.(hook.Panic); ok {
		t.report(r.Context(), &HookError{Hook: "authorize", Panic: p.Value, Err: errPanicked})
	}
	if err != nil || conn == "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return "", false
	}
	return conn, true
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
