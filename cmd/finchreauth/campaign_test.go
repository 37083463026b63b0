package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
)

// deadline is when the campaign of seedCampaign ends.
var deadline = t0.Add(14 * 24 * time.Hour)

// seedCampaign plays a campaign on s, through a Transport and a fake
// Finch, and returns every token it saved (none may be printed): three
// Gusto connections and one ADP Run connection are saved; campaign
// "gusto-2026" asks the three Gusto ones to reconnect before deadline; one
// of them does.
func seedCampaign(t *testing.T, s finchreauth.Store) []string {
	t.Helper()
	ctx := t.Context()
	clk := &clock{t: t0}
	fake := finchtest.NewServer()
	defer fake.Close()
	fake.SetClock(clk.now)
	tr := &finchreauth.Transport{
		Base: fake.Client().Transport, APIBaseURL: fake.URL, Store: s, Now: clk.now,
		ErrorHandler: func(_ context.Context, err error) { t.Error(err) },
	}
	defer tr.Close()
	var tokens []string
	save := func(c finchtest.Connection) {
		t.Helper()
		tok := fake.AddConnection(c)
		tokens = append(tokens, tok)
		if err := tr.SaveToken(ctx, c.ID, finchreauth.Token(tok)); err != nil {
			t.Fatal(err)
		}
	}
	save(finchtest.Connection{ID: "conn-acme", CustomerName: "Acme Corp", ProviderID: "gusto"})
	save(finchtest.Connection{ID: "conn-dune", CustomerName: "Dune Co", ProviderID: "gusto"})
	save(finchtest.Connection{ID: "conn-echo", CustomerName: "Echo Ltd", ProviderID: "gusto"})
	save(finchtest.Connection{ID: "conn-bolt", CustomerName: "Bolt Logistics", ProviderID: "adp_run"})

	clk.set(t0.Add(time.Hour))
	n, err := tr.StartCampaign(ctx, finchreauth.Campaign{Name: "gusto-2026", ProviderID: "gusto", Deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("StartCampaign asked %d connections, want the 3 of Gusto (does the Store list every record for Query{Every: true}?)", n)
	}
	clk.set(t0.Add(2 * 24 * time.Hour))
	save(finchtest.Connection{ID: "conn-echo"}) // Echo's employer reconnected: a new token
	tr.Flush(ctx)
	return tokens
}

// runCampaign runs the campaign command at at and returns its output.
func runCampaign(t *testing.T, at time.Time, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"campaign"}, args...), noEnv, nil, &out, &errOut, func() time.Time { return at })
	return code, out.String(), errOut.String()
}

func TestCampaignSQLite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sealer tokenseal.Sealer
		flags  []string
	}{
		{"plain", nil, nil},
		{"sealed", testSealer(), []string{"-sealed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := sqliteStore(t, tc.sealer)
			tokens := seedCampaign(t, s)
			store := "sqlite:" + path + " (table finchreauth)"
			args := append([]string{"-store", "sqlite:" + path, "-name", "gusto-2026"}, tc.flags...)
			for _, at := range []struct {
				name string
				at   time.Time
				want string
			}{
				{"before the deadline", deadline.Add(-time.Hour), "Campaign \"gusto-2026\" in " + store + ":\n" +
					"  asked    2  waiting for their employer to reconnect\n" +
					"  overdue  0  of those asked, past the deadline\n" +
					"  done     1  reconnected since they were asked\n"},
				{"after the deadline", deadline.Add(time.Hour), "Campaign \"gusto-2026\" in " + store + ":\n" +
					"  asked    2  waiting for their employer to reconnect\n" +
					"  overdue  2  of those asked, past the deadline\n" +
					"  done     1  reconnected since they were asked\n"},
			} {
				code, out, errOut := runCampaign(t, at.at, args...)
				if code != 0 || errOut != "" {
					t.Fatalf("%s: campaign exited %d: %s", at.name, code, errOut)
				}
				if out != at.want {
					t.Errorf("%s: campaign printed:\n%s\nwant:\n%s", at.name, out, at.want)
				}
				noSecrets(t, out+errOut, tokens)
			}

			// Another name: no connection was asked.
			code, out, errOut := runCampaign(t, deadline, "-store", "sqlite:"+path, "-name", "adp\x1b[2J-2026", "-sealed="+boolFlag(tc.sealer != nil))
			if want := "No connection was asked by campaign \"adp\\x1b[2J-2026\" in " + store + ".\n"; code != 0 || out != want {
				t.Errorf("another campaign: exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
			}
		})
	}
}

func boolFlag(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestCampaignReadOnly: the command writes nothing to the Store, and a
// Store it cannot read fails it with status 1.
func TestCampaignReadOnly(t *testing.T) {
	s, path := sqliteStore(t, nil)
	seedCampaign(t, s)
	before := dump(t, s)
	if code, _, errOut := runCampaign(t, deadline.Add(time.Hour), "-store", "sqlite:"+path, "-name", "gusto-2026"); code != 0 {
		t.Fatalf("campaign exited %d: %s", code, errOut)
	}
	if after := dump(t, s); after != before {
		t.Error("the campaign command changed the Store")
	}
	if code, _, errOut := runCampaign(t, deadline, "-store", "sqlite:"+path, "-table", "nope", "-name", "gusto-2026"); code != 1 || !strings.Contains(errOut, "-table") {
		t.Errorf("wrong table: exit %d, stderr %q; want 1 and a hint about -table", code, errOut)
	}
}

// dump returns every row of every table of the SQLite database of s.
func dump(t *testing.T, s *sqlstore.Store) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	tables, err := s.DB.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	tables.Close()
	for _, n := range names {
		rows, err := s.DB.QueryContext(ctx, `SELECT * FROM "`+n+`" ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %q\n", n, vals)
		}
		rows.Close()
	}
	return b.String()
}

func TestCampaignUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"campaign", "-name", "x"}, "-store is required"},
		{[]string{"campaign", "-store", "sqlite:x"}, "-name is required"},
		{[]string{"campaign", "-store", "sqlite:x", "-name", "x", "extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), c.args, noEnv, nil, &out, &errOut, fixedNow)
		if code != 2 || !strings.Contains(errOut.String(), c.says) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errOut.String(), c.says)
		}
	}
}
