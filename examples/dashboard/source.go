package main

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/message"
)

// The "how it works" panel: each step of the flow, with the library's file
// and function that does it. The demo serves those files read-only from
// where the build found the packages, so that each reference links to the
// code itself (TestHowItWorksReferences checks that every one resolves).

// ref names a function in a package's source: Func is "Name" or
// "Recv.Name".
type ref struct {
	Pkg, File, Func string
}

// step is one step of the panel.
type step struct {
	Title, Text string
	Refs        []ref
}

// Package keys of ref.Pkg.
const (
	pkgRoot    = "finchreauth"
	pkgMessage = "message"
	pkgDemo    = "demo"
)

var howItWorks = []step{
	{"The application calls Finch through the Transport",
		"A sync sends GET /employer/company and /employer/directory through tr.Client(connection), which puts the connection's current token from the Store on each request: the application holds none. Every answer but a 401 passes through untouched.",
		[]ref{{pkgDemo, "handlers.go", "demo.runSync"}, {pkgRoot, "client.go", "Transport.Client"}, {pkgRoot, "client.go", "Transport.currentToken"}, {pkgRoot, "transport.go", "Transport.RoundTrip"}}},
	{"Finch answers 401 reauthenticate_user",
		"The Transport reads the 401's body under a cap and hands the caller Finch's answer intact, at once, marked \"Finchreauth: detected\"; the token is latched and its handling queued.",
		[]ref{{pkgRoot, "detection.go", "Transport.on401"}, {pkgRoot, "apierror.go", "peekAPIError"}, {pkgRoot, "detection.go", "Transport.enqueue"}}},
	{"One handling per broken token",
		"A worker finds whose token it is (the Store, or /introspect) and feeds the detection to the connection's state machine: load, step, compare-and-set.",
		[]ref{{pkgRoot, "detection.go", "Transport.handleDetection"}, {pkgRoot, "record.go", "Transport.apply"}, {pkgRoot, "transition.go", "life.step"}}},
	{"What Finch says decides",
		"The episode is derived from Finch's statuses (connection, entities, methods). A webhook that contradicts what the record believes is checked at /introspect first; an old or repeated one changes nothing.",
		[]ref{{pkgRoot, "webhook_handler.go", "Transport.onWebhook"}, {pkgRoot, "transition.go", "life.onHeard"}, {pkgRoot, "transition.go", "life.settle"}, {pkgRoot, "life.go", "life.need"}}},
	{"A reconnect link",
		"A Connect session (POST /connect/sessions/reauthenticate), bound to the connection by a signed, expiring state.",
		[]ref{{pkgRoot, "connect.go", "Connect.mint"}, {pkgRoot, "connect.go", "Connect.sessionURL"}, {pkgRoot, "state.go", "signState"}}},
	{"The customer is told once",
		"The episode owes its notification in the record; whoever holds the lease makes the link, calls the Notifier and records it. Package message renders the e-mail.",
		[]ref{{pkgRoot, "effects.go", "Transport.notify"}, {pkgMessage, "message.go", "Render"}, {pkgDemo, "inbox.go", "inbox.Notify"}}},
	{"Later calls do not reach Finch",
		"For LatchTTL, requests with the refused token are answered locally: \"Finchreauth: latched\". The latch follows the record: a heal on any replica releases it.",
		[]ref{{pkgRoot, "latch.go", "latch.add"}, {pkgRoot, "latch.go", "latchedResponse"}, {pkgRoot, "transport.go", "Transport.recheck"}}},
	{"What failed is listed",
		"Each request that failed in the episode, refused by Finch or answered by the latch, is counted in the record by method and path (Status.Refused, Reconnection.Refused): what the application runs again.",
		[]ref{{pkgRoot, "transition.go", "life.refused"}, {pkgRoot, "latch.go", "latchConn.answer"}, {pkgRoot, "transport.go", "Transport.lookAgain"}}},
	{"Reminders",
		"Remind (or Run) carries out what is owed: reminders after 1, 3 and 7 days, then weekly; failed notifications, backing off.",
		[]ref{{pkgRoot, "reminders.go", "Transport.Remind"}, {pkgRoot, "transition.go", "life.onDue"}, {pkgRoot, "transition.go", "policy.reminder"}, {pkgDemo, "handlers.go", "demo.nextDay"}}},
	{"The dashboard's status",
		"Needs reconnecting since when and for what, messages sent, the next reminder, the broken entities, Finch's statuses and the timeline.",
		[]ref{{pkgRoot, "status.go", "Transport.Status"}, {pkgRoot, "status.go", "Transport.statusOf"}}},
	{"Reconnect from the dashboard",
		"The start endpoint: a 303 to the episode's link, or a new one.",
		[]ref{{pkgRoot, "urlbuilder.go", "Transport.StartHandler"}, {pkgRoot, "urlbuilder.go", "Transport.ReconnectURL"}}},
	{"Back from Finch Connect",
		"The callback verifies and claims the state, exchanges the code at POST /auth/token, checks the token is for the link's connection, and sends the browser to SuccessURL or FailureURL?reason=... The embedded flow POSTs JSON and gets JSON.",
		[]ref{{pkgRoot, "callback_handler.go", "Transport.CallbackHandler"}, {pkgRoot, "callback_handler.go", "Transport.reconnect"}, {pkgRoot, "finch.go", "Transport.exchange"}, {pkgRoot, "callback_handler.go", "readEmbedded"}, {pkgRoot, "callback_handler.go", "Transport.redirectOutcome"}}},
	{"The new token is saved",
		"Finch is asked about the new token; the live one wins. The episode ends, the latch is cleared, OnReconnected is owed in the record and called.",
		[]ref{{pkgRoot, "callback_handler.go", "Transport.keep"}, {pkgRoot, "savetoken.go", "Transport.save"}, {pkgRoot, "transition.go", "life.onSaved"}, {pkgRoot, "effects.go", "Transport.announce"}}},
	{"The next request carries the new token",
		"tr.Client reads the token again when Finch refuses the one it sent (or every RetryInterval): a request refused with a token since replaced is sent again, once, with the new one. No restart.",
		[]ref{{pkgRoot, "client.go", "connClient.RoundTrip"}}},
	{"The data is synced again",
		"The ended episode owes Finch's data_sync_all job (POST /jobs/automated): started once, followed by polling (Remind) or Finch's job.data_sync_all.completed webhook; then OnDataSynced, and Status says the data is fresh.",
		[]ref{{pkgRoot, "resync.go", "life.oweResync"}, {pkgRoot, "resync.go", "Transport.startJob"}, {pkgRoot, "resync.go", "Transport.followJob"}, {pkgRoot, "resync.go", "life.onJobDone"}, {pkgRoot, "resync.go", "Transport.synced"}}},
	{"The health sweep finds what nobody said",
		"With SweepEvery, each connection owes a look at /introspect once per period, at its own time in it, paced by SweepRate: a status that needs the employer opens an episode, and its notification goes out, before any sync fails.",
		[]ref{{pkgRoot, "sweep.go", "Transport.Sweep"}, {pkgRoot, "sweep.go", "Transport.sweepCheck"}, {pkgRoot, "sweep.go", "life.scheduleSweep"}, {pkgDemo, "handlers.go", "demo.later"}}},
	{"An upgrade: products the token lacks",
		"RequestProducts asks the employer, with its own link and reminders, while the saved token keeps working; a token saved after it answers it, and OnAnswered says which products Finch did not grant.",
		[]ref{{pkgRoot, "ask.go", "Transport.RequestProducts"}, {pkgRoot, "ask.go", "life.settleRequests"}, {pkgRoot, "ask.go", "Transport.answered"}, {pkgDemo, "requests.go", "demo.onAnswered"}}},
	{"A campaign: every connection of a provider, by a date",
		"StartCampaign asks each connection of the provider, its links minted at most PerHour an hour and its reminders counting down to the deadline; CampaignProgress counts those asked, done and overdue.",
		[]ref{{pkgRoot, "ask.go", "Transport.StartCampaign"}, {pkgRoot, "ask.go", "countdown"}, {pkgRoot, "ask.go", "Transport.CampaignProgress"}, {pkgDemo, "requests.go", "demo.startCampaign"}}},
}

// sourceIndex knows where the packages' source files are.
type sourceIndex struct {
	dirs map[string]string // package key -> directory; missing if unknown
}

// newSourceIndex finds the directories from the file names the compiler
// recorded for a function of each package. A binary built with -trimpath
// records module paths instead: the panel then shows names without links.
func newSourceIndex() *sourceIndex {
	x := &sourceIndex{dirs: map[string]string{}}
	for key, fn := range map[string]any{pkgRoot: finchreauth.ParseAPIError, pkgMessage: message.Render, pkgDemo: baseURL} {
		pc := reflect.ValueOf(fn).Pointer()
		f := runtime.FuncForPC(pc)
		if f == nil {
			continue
		}
		file, _ := f.FileLine(pc)
		if st, err := os.Stat(file); err == nil && st.Mode().IsRegular() {
			x.dirs[key] = filepath.Dir(file)
		}
	}
	return x
}

var goFileName = regexp.MustCompile(`^[a-z0-9_]+\.go$`)

// read returns the source of a file of a known package.
func (x *sourceIndex) read(pkg, file string) ([]byte, error) {
	dir, ok := x.dirs[pkg]
	if !ok || !goFileName.MatchString(file) || strings.HasSuffix(file, "_test.go") {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(dir, file))
}

// locate returns the lines of r's declaration (doc comment included), 1-based.
func (x *sourceIndex) locate(r ref) (from, to int, err error) {
	src, err := x.read(r.Pkg, r.File)
	if err != nil {
		return 0, 0, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, r.File, src, parser.ParseComments)
	if err != nil {
		return 0, 0, err
	}
	recv, name, ok := strings.Cut(r.Func, ".")
	if !ok {
		recv, name = "", r.Func
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Name.Name != name || receiver(fd) != recv {
			continue
		}
		start := fd.Pos()
		if fd.Doc != nil {
			start = fd.Doc.Pos()
		}
		return fset.Position(start).Line, fset.Position(fd.End()).Line, nil
	}
	return 0, 0, errors.New("no func " + r.Func + " in " + r.File)
}

// receiver returns the name of fd's receiver type, "" for a function.
func receiver(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// refView is a ref as the panel shows it.
type refView struct {
	ref
	Href string // "" when the source is not at hand
}

type stepView struct {
	step
	Links []refView
}

// steps returns the panel's steps with their links.
func (x *sourceIndex) steps() []stepView {
	out := make([]stepView, len(howItWorks))
	for i, s := range howItWorks {
		out[i].step = s
		for _, r := range s.Refs {
			v := refView{ref: r}
			if from, _, err := x.locate(r); err == nil {
				v.Href = "/source/" + r.Pkg + "/" + r.File + "?func=" + r.Func + "#L" + strconv.Itoa(from)
			}
			out[i].Links = append(out[i].Links, v)
		}
	}
	return out
}

// sourceLine is one line of a file on the source page.
type sourceLine struct {
	N    int
	Text string
	Mark bool // in the function asked for
}
