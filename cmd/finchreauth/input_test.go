package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
)

// got is an entry as the tests compare it: its line, id, token and, if
// refused, why.
type got struct {
	line    int
	id, tok string
	why     string
}

func (g got) String() string { return fmt.Sprintf("{%d %+q %+q %q}", g.line, g.id, g.tok, g.why) }

func entriesOf(es []*entry) []got {
	out := make([]got, len(es))
	for i, e := range es {
		why := ""
		if e.res.kind == lineRefused {
			why = e.res.why
		}
		out[i] = got{e.line, e.id, string(e.tok), why}
	}
	return out
}

// TestReadCSV: the header names the columns, in either order; a line that
// is not a pair is refused with why, without stopping the others; blank
// lines, \r\n and a byte order mark are taken as a spreadsheet writes them.
func TestReadCSV(t *testing.T) {
	long := "conn-long," + strings.Repeat("x", maxLine)
	for _, c := range []struct {
		name, in string
		want     []got
	}{
		{"plain", "connection_id,access_token\nconn-a,tok_a\nconn-b,tok_b\n",
			[]got{{2, "conn-a", "tok_a", ""}, {3, "conn-b", "tok_b", ""}}},
		{"spreadsheet", "\ufeffconnection_id, access_token\r\nconn-a,tok_a\r\n\r\n\"conn,b\",tok_b", // no newline at the end
			[]got{{2, "conn-a", "tok_a", ""}, {4, "conn,b", "tok_b", ""}}},
		{"reversed header", "Access_Token,Connection_ID\ntok_a,conn-a\n",
			[]got{{2, "conn-a", "tok_a", ""}}},
		{"header only", "connection_id,access_token\n", []got{}},
		{"malformed", "connection_id,access_token\nconn-a,tok_a,extra\nconn-b\nconn-\"c,tok_c\n\"conn-d,tok_d\n" + long + "\nconn-e,tok_e\nconnection_id,access_token\n",
			[]got{
				{2, "", "", "3 fields; want 2, connection_id and access_token"},
				{3, "", "", "1 fields; want 2, connection_id and access_token"},
				{4, "", "", `not CSV: bare " in non-quoted-field`},
				{5, "", "", `not CSV: extraneous or missing " in quoted-field`},
				{6, "", "", fmt.Sprintf("longer than %d bytes", maxLine)},
				{7, "conn-e", "tok_e", ""},
				{8, "", "", "the header again (two files joined?)"},
			}},
		{"bad pairs", "connection_id,access_token\n,tok_a\nconn-b,\nconn-c,tok c\nconn-d,tok_d\t\nconn-\xff,tok_e\nconn-\x00,tok_f\n" + strings.Repeat("x", 257) + ",tok_g\n",
			[]got{
				{2, "", "tok_a", "the connection id is empty"},
				{3, "conn-b", "", "the access token is empty"},
				{4, "conn-c", "tok c", "the access token holds a space, a control or a byte that is not ASCII"},
				{5, "conn-d", "tok_d\t", "the access token holds a space, a control or a byte that is not ASCII"},
				{6, "conn-\xff", "tok_e", "the connection id is not UTF-8, or holds a NUL byte"},
				{7, "conn-\x00", "tok_f", "the connection id is not UTF-8, or holds a NUL byte"},
				{8, strings.Repeat("x", 257), "tok_g", "the connection id is 257 bytes; a Transport takes at most 256"},
			}},
		{"duplicates", "connection_id,access_token\nconn-a,tok_1\nconn-b,tok_b\nconn-a,tok_2\nconn-b,tok_b\nconn-a,tok_1\n",
			[]got{
				{2, "conn-a", "tok_1", "the connection has different tokens on lines 2, 4, 6: the input must give one token per connection"},
				{3, "conn-b", "tok_b", ""},
				{4, "conn-a", "tok_2", "the connection has different tokens on lines 2, 4, 6: the input must give one token per connection"},
				{5, "conn-b", "tok_b", ""}, // follows line 3
				{6, "conn-a", "tok_1", "the connection has different tokens on lines 2, 4, 6: the input must give one token per connection"},
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			es, err := readEntries(strings.NewReader(c.in), "csv")
			if err != nil {
				t.Fatal(err)
			}
			if g := entriesOf(es); fmt.Sprint(g) != fmt.Sprint(c.want) {
				t.Errorf("got  %v\nwant %v", g, c.want)
			}
		})
	}
	es, _ := readEntries(strings.NewReader("connection_id,access_token\nconn-b,tok_b\nconn-b,tok_b\n"), "csv")
	if es[1].same != es[0] || es[0].same != nil {
		t.Error("a repeated line does not follow the first")
	}
}

// TestReadJSONL: a line is an object with the two string fields and
// nothing else; why a line is refused quotes nothing of it.
func TestReadJSONL(t *testing.T) {
	in := strings.Join([]string{
		`{"connection_id": "conn-a", "access_token": "tok_a"}`,
		``,
		`  {"access_token":"tok_b","connection_id":"conn-\u00e9\"b"}  `,
		`not json tok_secret1`,
		`{"connection_id": "conn-c"}`,
		`{"access_token": "tok_secret2"}`,
		`{"connection_id": 7, "access_token": "tok_secret3"}`,
		`{"connection_id": "conn-d", "access_token": "tok_secret4", "tok_secret5": 1}`,
		`{"connection_id": "conn-e", "access_token": "tok_secret6"} {}`,
		"{\"connection_id\": \"conn-\xff\", \"access_token\": \"tok_secret7\"}",
		`{"connection_id": "conn-\ud800", "access_token": "tok_secret8"}`,
		`["conn-f", "tok_secret9"]`,
		`{"connection_id": "conn-g", "access_token": null}`,
		`{"connection_id": "conn-h", "access_token": "tok_secret10"`,
	}, "\n")
	es, err := readEntries(strings.NewReader(in), "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{1, "conn-a", "tok_a", ""},
		{3, "conn-é\"b", "tok_b", ""},
		{4, "", "", "not a JSON object"},
		{5, "", "", "no access_token"},
		{6, "", "", "no connection_id"},
		{7, "", "", "connection_id and access_token must be JSON strings"},
		{8, "", "", "a field other than connection_id and access_token"},
		{9, "", "", "more than one JSON value"},
		{10, "", "", "not UTF-8, as JSON must be"},
		{11, "", "", "the connection id holds an escape that is not a character (a lone surrogate)"},
		{12, "", "", "not a JSON object"},
		{13, "", "", "no access_token"},
		{14, "", "", "not a JSON object"},
	}
	if g := entriesOf(es); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", g, want)
	}
	for _, e := range es {
		if strings.Contains(e.res.why, "secret") {
			t.Errorf("line %d: why quotes the line: %s", e.line, e.res.why)
		}
	}
}

// TestReadWhole: what stops the import before any line is saved.
func TestReadWhole(t *testing.T) {
	for _, c := range []struct{ name, format, in, says string }{
		{"empty", "csv", "", "the input is empty"},
		{"blank", "jsonl", "\n \n", "the input is empty"},
		{"no header", "csv", "conn-a,tok_secret\n", "line 1 is not the CSV header connection_id,access_token: nothing was imported"},
		{"another header", "csv", "\nid,token\nconn-a,tok_secret\n", "line 2 is not the CSV header"},
		{"JSON as CSV", "csv", `{"connection_id": "conn-a", "access_token": "tok_secret"}`, "(JSON lines? -format jsonl)"},
		{"a long first line", "csv", strings.Repeat("tok_secret", maxLine), "line 1 is not the CSV header"},
	} {
		_, err := readEntries(strings.NewReader(c.in), c.format)
		if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.says)
		}
	}
	_, err := readEntries(iotestErr{}, "csv")
	if err == nil || !strings.Contains(err.Error(), "reading line 1") {
		t.Errorf("a failing reader: %v", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestIDRule: the command refuses exactly the connection ids a
// Transport's SaveToken refuses.
func TestIDRule(t *testing.T) {
	tr := &finchreauth.Transport{Store: new(finchreauth.MemoryStore), Base: offline{}}
	defer tr.Close()
	for _, id := range []string{
		"", "conn-a", "é", strings.Repeat("x", 256), strings.Repeat("x", 257), strings.Repeat("é", 128),
		strings.Repeat("é", 128) + "x", "conn-\xff", "conn-\x00", "conn-\x1b[2J\u202e", " ",
	} {
		cmd := checkPair(id, "tok_a") == ""
		lib := tr.SaveToken(t.Context(), id, "tok_a") == nil
		if cmd != lib {
			t.Errorf("id %q (%d bytes): the command takes it: %v, SaveToken: %v", id, len(id), cmd, lib)
		}
	}
}
