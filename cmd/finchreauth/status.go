package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

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
	var c storeConfig
	fs.StringVar(&c.spec, "store", "", "the Store: postgres://..., sqlite:PATH or redis://HOST:PORT/DB (required)")
	fs.StringVar(&c.table, "table", "", "the SQL table, as the application's sqlstore.Store.Table (default finchreauth)")
	fs.StringVar(&c.prefix, "prefix", "", "the Redis key prefix, as the application's redisstore.Store.Prefix (default finchreauth:)")
	fs.BoolVar(&c.sealed, "sealed", false, "the Store's tokens are sealed: read the records leaving the tokens unopened")
	limit := fs.Int("limit", 0, "print at most this many connections (0: all)")
	after := fs.String("after", "", "start after this cursor, as printed when -limit cut the listing short")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(msg string) int {
		fmt.Fprintf(stderr, "finchreauth: status: %s\n", msg)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument " + fmt.Sprintf("%q", fs.Arg(0)))
	case c.spec == "":
		return bad("-store is required")
	case *limit < 0:
		return bad("-limit must not be negative")
	}
	cursor, err := parseCursor(*after)
	if err != nil {
		return bad(err.Error())
	}

	s, name, done, err := openStore(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer done()
	tr := &finchreauth.Transport{Store: s, Now: now}
	defer tr.Close()
	if err := list(ctx, tr, cursor, *limit, pageSize, stdout, now()); err != nil {
		fmt.Fprintf(stderr, "finchreauth: reading %s: %v%s\n", name, err, hint(err, c))
		return 1
	}
	return 0
}

// list prints the connections after cursor that need re-authentication, at
// most limit of them (0: all), as a table, reading page at a time.
func list(ctx context.Context, tr *finchreauth.Transport, cursor finchreauth.Status, limit, page int, w io.Writer, now time.Time) error {
	// The table is written once the listing is read: a failure prints
	// only the error.
	var rows []finchreauth.Status
	more := false
	for {
		n := page
		if limit > 0 {
			n = min(n, limit-len(rows)+1) // one more, to tell whether there are more
		}
		got, err := tr.NeedsReauth(ctx, cursor, n)
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
	if len(rows) == 0 {
		fmt.Fprintln(w, "No connection needs re-authentication.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tCUSTOMER\tPROVIDER\tNEEDS RECONNECTING SINCE\tAGE\tNOTIFICATIONS\tNEXT REMINDER\tBROKEN ENTITIES")
	for _, st := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", clean(st.ConnectionID), orDash(st.CustomerName), orDash(st.ProviderID),
			stamp(st.Since), age(now.Sub(st.Since)), st.Notifications, reminder(st.NextReminder, now), entities(st.BrokenEntities))
	}
	tw.Flush()
	noun := "connections need"
	if len(rows) == 1 {
		noun = "connection needs"
	}
	if more {
		last := rows[len(rows)-1]
		fmt.Fprintf(w, "\nThe first %d %s re-authentication; for the next ones: -after %s\n", len(rows), noun, formatCursor(last))
		return nil
	}
	fmt.Fprintf(w, "\n%d %s re-authentication.\n", len(rows), noun)
	return nil
}

// A cursor is the last row's Since (RFC 3339, to the nanosecond) and
// connection id, joined by a slash: what NeedsReauth continues after.
func formatCursor(st finchreauth.Status) string {
	return st.Since.UTC().Format(time.RFC3339Nano) + "/" + st.ConnectionID
}

func parseCursor(s string) (finchreauth.Status, error) {
	if s == "" {
		return finchreauth.Status{}, nil
	}
	at, id, ok := strings.Cut(s, "/")
	since, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || id == "" {
		return finchreauth.Status{}, errors.New("-after: want TIME/CONNECTION_ID, as printed by a run cut short by -limit")
	}
	return finchreauth.Status{Since: since, ConnectionID: id}, nil
}

// hint says what may be wrong with the flags for err.
func hint(err error, c storeConfig) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "is sealed and the Store has no Sealer"):
		return "\n(the Store's tokens are sealed: add -sealed, which reads the records without opening them)"
	case strings.Contains(msg, "stored in plaintext and the Store has a Sealer"):
		return "\n(the Store's tokens are not sealed: drop -sealed)"
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
		out[i] = clean(id)
	}
	return strings.Join(out, ",")
}

func orDash(s string) string {
	if s = clean(s); s == "" {
		return "-"
	}
	return s
}

// clean makes text from Finch or the Store safe for one cell of the table:
// valid UTF-8, no control characters (a tab would shift the columns, an
// escape sequence would reach the terminal), at most 40 runes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 40 {
			b.WriteString("...")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
