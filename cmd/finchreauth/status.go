package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/finchkit/finchreauth"
)

// pageSize is how many connections each NeedsReauth call asks for.
const pageSize = 200

// status is the status command.
func status(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: finchreauth status -store STORE [flags]\n\nPrints every connection that needs re-authentication, oldest first.\n\n")
		fs.PrintDefaults()
	}
	c := storeFlags(fs)
	sealed := fs.Bool("sealed", false, "the Store's tokens are sealed: read the records leaving the tokens unopened")
	limit := fs.Int("limit", 0, "print at most this many connections (0: all)")
	after := fs.String("after", "", "start after this cursor, as printed when -limit cut the listing short")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	bad := func(msg string) int { return usageError(fs, stderr, msg) }
	switch {
	case c.spec == "":
		return bad("-store is required")
	case *limit < 0:
		return bad("-limit must not be negative")
	}
	cursor, err := parseCursor(*after)
	if err != nil {
		return bad(err.Error())
	}
	l := &listing{page: pageSize, now: now()}
	tr, name, done, err := readStore(ctx, *c, *sealed, now, &l.skipped)
	if err != nil {
		fmt.Fprintln(stderr, shownError(err))
		return 1
	}
	defer done()
	l.tr, l.name = tr, name
	if err := l.print(ctx, cursor, *limit, stdout); err != nil {
		fmt.Fprintf(stderr, "finchreauth: reading %s: %s%s\n", name, shownError(err), hint(err, *sealed))
		return 1
	}
	return l.skipped.report(stderr, name, *sealed)
}

// storeFlags defines the flags that name the Store.
func storeFlags(fs *flag.FlagSet) *storeConfig {
	var c storeConfig
	fs.StringVar(&c.spec, "store", "", "the Store: postgres://..., sqlite:PATH or redis://HOST:PORT/DB (required)")
	fs.StringVar(&c.table, "table", "", "the SQL table, as the application's sqlstore.Store.Table (default finchreauth)")
	fs.StringVar(&c.prefix, "prefix", "", "the Redis key prefix, as the application's redisstore.Store.Prefix (default finchreauth:)")
	return &c
}

// parse parses args into fs. It reports false, with the exit status, when
// the command should stop: -h, a bad flag or an argument.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument \""+shown(fs.Arg(0), maxShown)+"\""), false
	}
	return 0, true
}

// usageError prints msg and the command's usage, and returns 2.
func usageError(fs *flag.FlagSet, stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "finchreauth: %s: %s\n", fs.Name(), msg)
	fs.Usage()
	return 2
}

// listing is one listing of the status command: the connections after a
// cursor that need re-authentication, read page at a time.
type listing struct {
	tr      *finchreauth.Transport
	page    int       // connections per NeedsReauth call
	now     time.Time // for the ages and the reminders due
	name    string    // the Store, as describe says
	skipped skipped   // the records the Transport could not read
}

// print prints the connections after cursor, at most limit of them (0:
// all), as a table, then a line that says how many and in which Store.
func (l *listing) print(ctx context.Context, cursor finchreauth.Status, limit int, w io.Writer) error {
	// The table is written once the listing is read: a failure prints
	// only the error.
	var rows []finchreauth.Status
	more := false
	for {
		n := l.page
		if limit > 0 {
			n = min(n, limit-len(rows)+1) // one more, to tell whether there are more
		}
		got, err := l.tr.NeedsReauth(ctx, cursor, n)
		if err != nil {
			return err
		}
		rows = append(rows, got...)
		if limit > 0 && len(rows) > limit {
			rows, more = rows[:limit], true
			break
		}
		if len(got) < n {
			break
		}
		cursor = got[len(got)-1]
	}
	l.table(rows, w)
	l.summary(rows, more, w)
	return nil
}

// table prints rows as a table, if there are any.
func (l *listing) table(rows []finchreauth.Status, w io.Writer) {
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tCUSTOMER\tPROVIDER\tNEEDS RECONNECTING SINCE\tAGE\tNOTIFICATIONS\tNEXT REMINDER\tBROKEN ENTITIES")
	for _, st := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", cell(st.ConnectionID), orDash(st.CustomerName), orDash(st.ProviderID),
			stamp(st.Since), age(l.now.Sub(st.Since)), st.Notifications, reminder(st.NextReminder, l.now), entities(st.BrokenEntities))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// summary says how many connections need re-authentication in which
// Store, and the cursor of the next ones when -limit cut the listing.
func (l *listing) summary(rows []finchreauth.Status, more bool, w io.Writer) {
	noun := plural(len(rows), "connection needs", "connections need")
	switch {
	case len(rows) == 0 && l.skipped.count() > 0:
		fmt.Fprintf(w, "No readable connection needs re-authentication in %s.\n", l.name)
	case len(rows) == 0:
		fmt.Fprintf(w, "No connection needs re-authentication in %s.\n", l.name)
	case more:
		last := rows[len(rows)-1]
		fmt.Fprintf(w, "The first %d %s re-authentication in %s; for the next ones: -after %s\n", len(rows), noun, l.name, formatCursor(last))
	default:
		fmt.Fprintf(w, "%d %s re-authentication in %s.\n", len(rows), noun, l.name)
	}
}

// skipped collects the records the Transport could not read while
// listing (it skips them, and tells its ErrorHandler, add).
type skipped struct {
	mu  sync.Mutex
	ids []string
	why map[string]error
}

func (k *skipped) add(_ context.Context, err error) {
	var he *finchreauth.HookError
	if !errors.As(err, &he) || he.Hook != "store" || he.ConnectionID == "" {
		return // a page that failed: NeedsReauth returns its error
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.why == nil {
		k.why = map[string]error{}
	}
	if _, seen := k.why[he.ConnectionID]; !seen {
		k.ids = append(k.ids, he.ConnectionID)
	}
	k.why[he.ConnectionID] = he.Err
}

func (k *skipped) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ids)
}

// report prints a line per record that could not be read, then their
// count, and returns the exit status: 1 if there were any.
func (k *skipped) report(w io.Writer, name string, sealed bool) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.ids) == 0 {
		return 0
	}
	for _, id := range k.ids {
		fmt.Fprintf(w, "finchreauth: cannot read the record of \"%s\": %s\n", shown(id, maxShown), shownError(k.why[id]))
	}
	fmt.Fprintf(w, "finchreauth: %d %s in %s could not be read: the listing leaves %s out%s\n",
		len(k.ids), plural(len(k.ids), "record", "records"), name, plural(len(k.ids), "it", "them"), hint(k.why[k.ids[0]], sealed))
	return 1
}

// hint says what may be wrong with the flags for err.
func hint(err error, sealed bool) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "is sealed and the Store has no Sealer") && !sealed:
		return "\n(the Store's tokens are sealed: add -sealed, which reads the records without opening them)"
	case strings.Contains(msg, "stored in plaintext and the Store has a Sealer") && sealed:
		return "\n(those tokens are stored in plaintext: drop -sealed if the application has no Sealer; if it has one, its Migrate seals them)"
	case strings.Contains(msg, "no such table"), strings.Contains(msg, "does not exist"):
		return "\n(is -table the application's sqlstore.Store.Table? Its Migrate creates the tables)"
	}
	return ""
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime) + " UTC"
}

// reminder is when the next reminder is due; "due" once that time passed
// (Remind sends it).
func reminder(t, now time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case !t.After(now):
		return stamp(t) + " (due)"
	}
	return stamp(t)
}

// age is d in its two largest units: 5d3h, 3h12m, 12m, 40s.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	days, hours, mins := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}

func entities(ids []string) string {
	if len(ids) == 0 {
		return "all"
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = cell(id)
	}
	return strings.Join(out, ",")
}

func orDash(s string) string {
	if s = clean(s); s == "" {
		return "-"
	}
	return s
}
