package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/finchkit/finchreauth"
)

// The input of the import command: one connection id and its access token
// a line, as CSV under a header or as JSON lines. A line that cannot be
// imported as it stands is refused on its own, saying why, and never shown:
// it may hold a token.

// maxLine bounds a line of the input, in bytes: a connection id is at most
// maxIDLen bytes, and an access token a few dozen. A longer line is refused
// without being kept.
const maxLine = 64 << 10

// maxIDLen is the longest connection id a finchreauth.Transport takes, in
// bytes (TestIDRule holds the command's rule to the library's).
const maxIDLen = 256

// entry is a line of the input that is not blank, and what the import did
// with it (res): pending until decided.
type entry struct {
	line int
	id   string
	tok  finchreauth.Token // never printed: a Token prints as its fingerprint
	held finchreauth.Token // the other token the Store holds for id, if any
	same *entry            // an earlier line with the same id and token: this one follows it
	res  result
}

// readEntries reads the input in format (csv or jsonl), an entry per line
// that is not blank. Its error is the input's as a whole: it could not be
// read, it is empty, or its CSV header is missing; then nothing is imported.
func readEntries(r io.Reader, format string) ([]*entry, error) {
	var es []*entry
	idCol, tokCol := -1, -1
	err := eachLine(r, func(n int, text string, long bool) error {
		if !long && strings.TrimSpace(text) == "" {
			return nil
		}
		if format == "csv" && idCol < 0 {
			if long {
				return errNoHeader(n, "")
			}
			var err error
			idCol, tokCol, err = csvHeader(n, text)
			return err
		}
		e := &entry{line: n}
		es = append(es, e)
		var why string
		switch {
		case long:
			why = fmt.Sprintf("longer than %d bytes", maxLine)
		case format == "csv":
			e.id, why = csvPair(text, idCol, tokCol, &e.tok)
		default:
			e.id, why = jsonPair(text, &e.tok)
		}
		if why == "" {
			why = checkPair(e.id, string(e.tok))
		}
		if why != "" {
			e.res = result{kind: lineRefused, why: why}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case len(es) == 0 && idCol < 0:
		return nil, errors.New("finchreauth: import: the input is empty")
	}
	markDuplicates(es)
	return es, nil
}

// eachLine calls fn with each line of r, numbered from 1, without its line
// ending (\n or \r\n) or, on the first line, a UTF-8 byte order mark. A
// line longer than maxLine is skipped unread: fn gets long and no text.
func eachLine(r io.Reader, fn func(n int, text string, long bool) error) error {
	br := bufio.NewReaderSize(r, maxLine+2)
	for n := 1; ; n++ {
		b, rerr := br.ReadSlice('\n')
		long := errors.Is(rerr, bufio.ErrBufferFull)
		for errors.Is(rerr, bufio.ErrBufferFull) {
			_, rerr = br.ReadSlice('\n')
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("finchreauth: import: reading line %d: %w", n, rerr)
		}
		if len(b) == 0 && rerr == io.EOF {
			return nil
		}
		var text string
		if !long {
			text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if n == 1 {
				text = strings.TrimPrefix(text, "\ufeff")
			}
		}
		if err := fn(n, text, long); err != nil {
			return err
		}
		if rerr == io.EOF {
			return nil
		}
	}
}

// csvHeader returns the columns of connection_id and access_token, in
// either order, from the header line.
func csvHeader(n int, text string) (idCol, tokCol int, err error) {
	if f, err := csvFields(text); err == nil && len(f) == 2 {
		a, b := strings.ToLower(strings.TrimSpace(f[0])), strings.ToLower(strings.TrimSpace(f[1]))
		switch {
		case a == "connection_id" && b == "access_token":
			return 0, 1, nil
		case a == "access_token" && b == "connection_id":
			return 1, 0, nil
		}
	}
	return -1, -1, errNoHeader(n, text)
}

func errNoHeader(n int, text string) error {
	hint := ""
	if strings.HasPrefix(strings.TrimSpace(text), "{") {
		hint = " (JSON lines? -format jsonl)"
	}
	return fmt.Errorf("finchreauth: import: line %d is not the CSV header connection_id,access_token%s: nothing was imported", n, hint)
}

// csvFields splits a line of CSV into its fields. Its error quotes
// nothing of the line.
func csvFields(text string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(text))
	r.FieldsPerRecord = -1
	f, err := r.Read()
	if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
		err = pe.Err
	}
	return f, err
}

// csvPair reads a line of CSV: the connection id, and the token into tok;
// or why the line is not a pair.
func csvPair(text string, idCol, tokCol int, tok *finchreauth.Token) (id, why string) {
	f, err := csvFields(text)
	switch {
	case err != nil:
		return "", "not CSV: " + err.Error()
	case len(f) != 2:
		return "", fmt.Sprintf("%d fields; want 2, connection_id and access_token", len(f))
	case strings.EqualFold(strings.TrimSpace(f[idCol]), "connection_id") && strings.EqualFold(strings.TrimSpace(f[tokCol]), "access_token"):
		return "", "the header again (two files joined?)"
	}
	*tok = finchreauth.Token(f[tokCol])
	return f[idCol], ""
}

// jsonPair reads a JSON line: the connection id, and the token into tok;
// or why the line is not a pair. Its reasons quote nothing of the line (a
// field's name may be a token).
func jsonPair(text string, tok *finchreauth.Token) (id, why string) {
	if !utf8.ValidString(text) {
		return "", "not UTF-8, as JSON must be"
	}
	var v struct {
		ConnectionID *string `json:"connection_id"`
		AccessToken  *string `json:"access_token"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return "", "connection_id and access_token must be JSON strings"
	case err != nil && strings.HasPrefix(err.Error(), "json: unknown field"):
		return "", "a field other than connection_id and access_token"
	case err != nil:
		return "", "not a JSON object"
	case strings.TrimSpace(text[dec.InputOffset():]) != "":
		return "", "more than one JSON value"
	case v.ConnectionID == nil:
		return "", "no connection_id"
	case v.AccessToken == nil:
		return "", "no access_token"
	case strings.ContainsRune(*v.ConnectionID, utf8.RuneError) && !strings.ContainsRune(text, utf8.RuneError):
		// encoding/json makes U+FFFD of an escaped lone surrogate: the
		// id would not be the one the line names.
		return "", "the connection id holds an escape that is not a character (a lone surrogate)"
	}
	*tok = finchreauth.Token(*v.AccessToken)
	return *v.ConnectionID, ""
}

// checkPair says why a connection id and a token cannot be imported, or
// "": the Transport's rule for ids (SaveToken refuses the same ones), and
// a token that can go in an HTTP header, with no space around it.
func checkPair(id, tok string) string {
	switch {
	case id == "":
		return "the connection id is empty"
	case len(id) > maxIDLen:
		return fmt.Sprintf("the connection id is %d bytes; a Transport takes at most %d", len(id), maxIDLen)
	case !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0:
		return "the connection id is not UTF-8, or holds a NUL byte"
	case tok == "":
		return "the access token is empty"
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return "the access token holds a space, a control or a byte that is not ASCII"
		}
	}
	return ""
}

// markDuplicates decides the lines that name a connection an earlier line
// names too. With the same token, a line follows the first (e.same): it
// ends as that one does. With different tokens, the input does not say
// which is the connection's: every line of the connection is refused.
func markDuplicates(es []*entry) {
	byID := map[string][]*entry{}
	for _, e := range es {
		if e.res.kind == linePending {
			byID[e.id] = append(byID[e.id], e)
		}
	}
	for _, group := range byID {
		if len(group) < 2 {
			continue
		}
		differ := false
		for _, e := range group[1:] {
			differ = differ || e.tok != group[0].tok
		}
		if !differ {
			for _, e := range group[1:] {
				e.same = group[0]
			}
			continue
		}
		lines := make([]string, len(group))
		for i, e := range group {
			lines[i] = fmt.Sprint(e.line)
		}
		why := "the connection has different tokens on lines " + listed(lines, 5) + ": the input must give one token per connection"
		for _, e := range group {
			e.res = result{kind: lineRefused, why: why}
		}
	}
}

// listed joins the first max of s with commas, counting the others.
func listed(s []string, max int) string {
	if len(s) <= max {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:max], ", ") + fmt.Sprintf(" and %d more", len(s)-max)
}
