package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/finchkit/finchreauth"
)

// What the command prints comes from the Store, from Finch or from the
// command line: a connection id, a customer's name, an error that quotes
// them. None of it may reach the terminal as something the terminal
// interprets (an escape sequence, a bidi override that reorders the line),
// and none may make a line of a megabyte. So every such text goes through
// shown, cell or clean, and the writers the command prints to pass no
// ASCII control but the newline and the tab (terminalSafe).

// Caps on what is printed of one text.
const (
	maxShown = 64   // bytes of an id in an error or a note
	maxError = 1024 // bytes of an error message
	maxCell  = 40   // runes of a table cell
)

// maxCursorID is the longest connection id -after takes, in bytes.
const maxCursorID = 256

// shown returns s as text a terminal shows as it is: every control, format
// (bidi) and other non-printing character, and every byte that is not
// UTF-8, escaped as Go writes them (\x1b, \u202e); cut after max bytes of s,
// saying how long s was.
func shown(s string, max int) string {
	var tail string
	if len(s) > max {
		tail = fmt.Sprintf("... (%d bytes)", len(s))
		s = s[:max]
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < utf8.RuneSelf && (r < ' ' || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == ' ' || (unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r)):
			b.WriteRune(r)
		case r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String() + tail
}

// shownError is err's message for a line of its own.
func shownError(err error) string { return shown(err.Error(), maxError) }

// cell returns an id for a table cell: shown, then cut to maxCell runes.
func cell(id string) string { return cut(shown(id, 4*maxCell)) }

// clean returns text from Finch (a customer's name) for a table cell:
// every control, format (bidi) or non-printing character becomes a space
// (a tab would shift the columns), then it is cut to maxCell runes.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || !unicode.IsGraphic(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.TrimSpace(cut(s))
}

// cut cuts s to maxCell runes, marking the cut.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	return string([]rune(s)[:maxCell]) + "..."
}

// plural returns one if n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// A cursor is the last row's Since (RFC 3339, to the nanosecond) and its
// connection id, percent-encoded so that it is plain ASCII a shell and a
// terminal leave alone, joined by a slash: what NeedsReauth continues
// after.
func formatCursor(st finchreauth.Status) string {
	return st.Since.UTC().Format(time.RFC3339Nano) + "/" + escapeID(cursorID(st.ConnectionID))
}

// cursorID is id as a cursor holds it: id itself if it is maxCursorID bytes
// or shorter; else the shortest id that sorts after every id that begins
// with id's first maxCursorID bytes, so that the next run goes on after id
// (and after any other such id at the same instant: only a hostile id
// shares 256 bytes with another).
func cursorID(id string) string {
	if len(id) <= maxCursorID {
		return id
	}
	b := []byte(id[:maxCursorID])
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return id[:maxCursorID] // 256 bytes of 0xff: the next run starts at id again
}

// escapeID percent-encodes every byte of id but letters, digits and -._~
func escapeID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func parseCursor(s string) (finchreauth.Status, error) {
	if s == "" {
		return finchreauth.Status{}, nil
	}
	at, enc, ok := strings.Cut(s, "/")
	since, err := time.Parse(time.RFC3339Nano, at)
	id, uerr := url.PathUnescape(enc)
	if !ok || err != nil || uerr != nil || id == "" {
		return finchreauth.Status{}, errors.New("-after: want TIME/CONNECTION_ID, as printed by a run cut short by -limit")
	}
	if len(id) > maxCursorID {
		return finchreauth.Status{}, fmt.Errorf("-after: the connection id is %d bytes; a cursor holds at most %d", len(id), maxCursorID)
	}
	return finchreauth.Status{Since: since, ConnectionID: id}, nil
}

// terminalSafe is a writer that escapes every ASCII control but the
// newline and the tab: a last guard for whatever reaches the terminal
// without going through shown (the flag package's messages).
type terminalSafe struct{ w io.Writer }

func (t terminalSafe) Write(p []byte) (int, error) {
	i := 0
	for i < len(p) && (p[i] >= ' ' && p[i] != 0x7f || p[i] == '\n' || p[i] == '\t') {
		i++
	}
	if i == len(p) {
		return t.w.Write(p)
	}
	var b strings.Builder
	for _, c := range p {
		if c < ' ' && c != '\n' && c != '\t' || c == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
