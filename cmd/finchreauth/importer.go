package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/finchkit/finchreauth"
)

// kind is what the import did with a line.
type kind int

const (
	linePending   kind = iota // not decided yet: to save
	lineImported              // saved (in a dry run: would be)
	lineUnchanged             // the Store holds this token for the connection already
	lineSkipped               // the Store holds another token and -check is not set
	lineRefused               // the line cannot be imported as it stands, or Finch refuses its token
	lineFailed                // the Store or Finch could not be asked: run the import again
	lineToCheck               // a dry run with -check: Finch would be asked
	kinds
)

var kindNames = [kinds]string{"pending", "imported", "unchanged", "skipped", "refused", "failed", "Finch would be asked"}

// result is what the import did with a line, and why when it did not
// import it. why never holds a token, only fingerprints.
type result struct {
	kind kind
	why  string
}

// handBackAfter is when what an import's save owes the application (see
// newImporter) is due again, for the application's Remind.
const handBackAfter = time.Second

// errHandBack is how the import's hooks fail: what a save owes the
// application stays owed in the Store.
var errHandBack = errors.New("finchreauth: import: left to the application's Transport, whose Remind carries it out")

// importer decides and carries out what the import does with each entry,
// through a Transport.
type importer struct {
	tr   *finchreauth.Transport
	opts *importOptions

	mu         sync.Mutex
	handedBack int              // owed work left to the application
	said       map[string]error // the last failure asking Finch about a connection's token
}

// newImporter returns an importer that saves into s. Without -check its
// Transport sends nothing to Finch; with it, it asks Finch at -api.
//
// A save may end a re-authentication episode (OnReconnected is then owed,
// and a resync whose end OnDataSynced is told) or, through the check it
// owes, open one (a notification is owed). That is the application's to
// carry out, with its own hooks: the import's Notifier fails and its
// OnReconnected, OnDisconnected and OnDataSynced panic (the way a hook that
// returns nothing fails), so that what is owed is recorded as
// failed, stays owed and is due again after handBackAfter, for the
// application's Remind. Without a Notifier, an episode opened here would
// owe no notification at all.
func newImporter(s store, o *importOptions, now func() time.Time) *importer {
	im := &importer{opts: o}
	handBack := func(context.Context, finchreauth.Reconnection) { panic(errHandBack) }
	im.tr = &finchreauth.Transport{
		Store:          s,
		Now:            now,
		RetryInterval:  handBackAfter,
		Notifier:       finchreauth.NotifierFunc(func(context.Context, finchreauth.Event) error { return errHandBack }),
		OnReconnected:  handBack,
		OnDisconnected: handBack,
		OnDataSynced:   handBack,
		ErrorHandler:   im.heard,
	}
	if o.check {
		im.tr.APIBaseURL = o.api
	} else {
		im.tr.Base = offline{}
	}
	return im
}

// offline is the Base of an import without -check: it sends nothing.
type offline struct{}

func (offline) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errors.New("finchreauth: import asks Finch only with -check")
}

// heard takes what the Transport reports: it counts the work handed back,
// and keeps why Finch could not be asked about a connection's token, to
// say why its line failed. The rest comes back from the calls as well.
func (im *importer) heard(_ context.Context, err error) {
	var he *finchreauth.HookError
	if !errors.As(err, &he) {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	switch {
	case he.Panic == errHandBack || errors.Is(he.Err, errHandBack):
		im.handedBack++
	case he.Hook == "introspect" || he.Hook == "probe":
		if im.said == nil {
			im.said = map[string]error{}
		}
		im.said[he.ConnectionID] = he.Err
	}
}

// run decides every entry: it reads what the Store holds for each
// connection, then (unless in a dry run) saves the tokens to import. A
// line that repeats an earlier one ends as that one did.
func (im *importer) run(ctx context.Context, es []*entry) {
	im.each(ctx, es, im.classify)
	if why := im.sealedStore(es); why != "" {
		for _, e := range es {
			if e.res.kind == linePending {
				e.res = result{kind: lineFailed, why: why}
			}
		}
	}
	if im.opts.dryRun {
		for _, e := range es {
			if e.res.kind == linePending && e.same == nil {
				e.res.kind = lineImported
				if e.held != "" {
					e.res = result{kind: lineToCheck, why: heldWhy(e)}
				}
			}
		}
	} else {
		im.each(ctx, es, im.save)
	}
	for _, e := range es {
		if f := e.same; f != nil && e.res.kind == linePending {
			e.res = result{kind: lineUnchanged}
			if f.res.kind != lineImported && f.res.kind != lineUnchanged {
				e.res = result{kind: f.res.kind, why: fmt.Sprintf("as line %d: %s", f.line, f.res.why)}
			}
		}
	}
}

// each calls fn with each pending entry that does not repeat an earlier
// line, -concurrency of them at a time. Once ctx is done, the entries not
// started fail.
func (im *importer) each(ctx context.Context, es []*entry, fn func(context.Context, *entry)) {
	slots := make(chan struct{}, im.opts.concurrency)
	var wg sync.WaitGroup
	for _, e := range es {
		if e.res.kind != linePending || e.same != nil {
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			e.res = result{kind: lineFailed, why: "not done: " + err.Error()}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(ctx, e)
		})
	}
	wg.Wait()
}

// classify reads the token the Store holds for e's connection: none (e
// stays pending: to save), e's (unchanged), or another (to save with
// -check, which lets Finch decide; else skipped).
func (im *importer) classify(ctx context.Context, e *entry) {
	held, err := im.tr.Token(ctx, e.id)
	switch {
	case errors.Is(err, finchreauth.ErrNotFound):
	case err != nil:
		e.res = result{kind: lineFailed, why: "reading the Store: " + err.Error() + importHint(err, im.opts.sealed)}
	case held == e.tok:
		e.res = result{kind: lineUnchanged}
	default:
		e.held = held
		if !im.opts.check {
			e.res = result{kind: lineSkipped, why: heldWhy(e) + ": -check lets Finch decide which works"}
		}
	}
}

func heldWhy(e *entry) string {
	return fmt.Sprintf("the Store holds another token for it (%s; this line's is %s)", e.held.Fingerprint(), e.tok.Fingerprint())
}

// save saves e's token through SaveToken.
func (im *importer) save(ctx context.Context, e *entry) {
	err := im.tr.SaveToken(ctx, e.id, e.tok)
	switch {
	case err == nil:
		e.res = result{kind: lineImported}
	case errors.Is(err, finchreauth.ErrStaleToken):
		e.res = result{kind: lineRefused, why: fmt.Sprintf("Finch refuses this line's token (%s): the Store keeps the one it holds", e.tok.Fingerprint())}
		if e.held != "" {
			e.res.why += " (" + e.held.Fingerprint() + ")"
		}
	default:
		e.res = im.failure(ctx, e, err)
	}
}

// failure is the result of a save that failed with err. Without -check,
// the cause may be a token the Store got for the connection since it was
// read (Finch would then have to decide): e is skipped.
func (im *importer) failure(ctx context.Context, e *entry, err error) result {
	if !im.opts.check {
		if held, rerr := im.tr.Token(ctx, e.id); rerr == nil && held != e.tok {
			e.held = held
			return result{kind: lineSkipped, why: heldWhy(e) + " since it was read: -check lets Finch decide which works"}
		}
		return result{kind: lineFailed, why: err.Error()}
	}
	im.mu.Lock()
	said := im.said[e.id]
	im.mu.Unlock()
	why := err.Error()
	if said != nil {
		why += " (" + said.Error() + ")"
	}
	return result{kind: lineFailed, why: why}
}

// sealedStore returns why nothing may be written, when a read showed
// that the Store's tokens are sealed and -sealed is not set: the tokens
// would be written in plaintext, which the application's Store, with its
// Sealer, does not read until its Migrate seals them.
func (im *importer) sealedStore(es []*entry) string {
	if im.opts.sealed {
		return ""
	}
	for _, e := range es {
		if e.res.kind == lineFailed && strings.Contains(e.res.why, "is sealed and the Store has no Sealer") {
			return fmt.Sprintf("not written: the Store's tokens are sealed (line %d): add -sealed, with the keys in %s", e.line, envKeys)
		}
	}
	return ""
}

// importHint says what may be wrong with the flags for a read that
// failed with err.
func importHint(err error, sealed bool) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "is sealed and the Store has no Sealer") && !sealed:
		return " (add -sealed, with the keys in " + envKeys + ")"
	case strings.Contains(msg, "stored in plaintext and the Store has a Sealer") && sealed:
		return " (drop -sealed if the application's Store has no Sealer; if it has one, its Migrate seals the tokens)"
	case strings.Contains(msg, "no such table"), strings.Contains(msg, "does not exist"):
		return " (is -table the application's sqlstore.Store.Table? Its Migrate creates the tables)"
	}
	return ""
}

// report prints a line on stderr for each line that was not imported or
// unchanged, then the summary on stdout, and returns the exit status: 0
// if every line was (or, in a dry run, would be) imported or unchanged.
func (im *importer) report(es []*entry, name string, stdout, stderr io.Writer) int {
	var n [kinds]int
	for _, e := range es {
		n[e.res.kind]++
		if e.res.kind == lineImported || e.res.kind == lineUnchanged {
			continue
		}
		who := ""
		if e.id != "" {
			who = " (connection \"" + shown(e.id, maxShown) + "\")"
		}
		fmt.Fprintf(stderr, "finchreauth: line %d%s: %s: %s\n", e.line, who, kindNames[e.res.kind], shown(e.res.why, maxError))
	}
	im.mu.Lock()
	back := im.handedBack
	im.mu.Unlock()
	if back > 0 {
		fmt.Fprintf(stderr, "finchreauth: %d %s the saves owe the application (OnReconnected, or a customer's notification) %s left to its Transport, whose Remind or Run makes %s\n",
			back, plural(back, "call", "calls"), plural(back, "is", "are"), plural(back, "it", "them"))
	}
	if im.opts.dryRun {
		middle := fmt.Sprintf("would skip %d", n[lineSkipped])
		if im.opts.check {
			middle = fmt.Sprintf("would ask Finch about %d", n[lineToCheck])
		}
		fmt.Fprintf(stdout, "Dry run, nothing written to %s: would import %d, unchanged %d, %s, refused %d, failed %d.\n",
			name, n[lineImported], n[lineUnchanged], middle, n[lineRefused], n[lineFailed])
	} else {
		fmt.Fprintf(stdout, "Into %s: imported %d, unchanged %d, skipped %d, refused %d, failed %d.\n",
			name, n[lineImported], n[lineUnchanged], n[lineSkipped], n[lineRefused], n[lineFailed])
	}
	if n[lineImported]+n[lineUnchanged] < len(es) {
		return 1
	}
	return 0
}
