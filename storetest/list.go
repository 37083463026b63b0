package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Rule 4: List returns, in order, at most q.Limit records matching q (see
// Query): by Since, by Due up to DueBy, or, with Every, every record by
// connection id.
//
// The suite reads it as: List returns the first q.Limit records that q
// selects and that sort after q's cursor, or all of them if fewer, each as
// Get would return it. The store may hold records the suite did not write;
// checkPage checks every record returned against the rules, and the suite's
// own records exactly.

// listDueBy is the DueBy of most List tests, relative to the base.
const listDueBy = 20 * time.Second

// listSet stores the records the List tests share and returns them by
// connection id: ties on time broken by ids whose order changes with case
// folded, times a microsecond apart with ids in the other order, times in
// other locations, a Since order that is not the Due order, a Due on listDueBy
// and one a microsecond after, and records without Since or Due.
//
// In Since order: _B _a _c _z _y _x _u _v _r _w (not _s _t).
// In Due order, up to listDueBy: _w _r _s _y _z _B _a _c _u (not _v _x _t).
func (f *fixture) listSet() map[string]finchreauth.Record {
	f.t.Helper()
	s := time.Second
	set := map[string]finchreauth.Record{}
	for _, r := range []struct {
		suffix     string
		since, due time.Time
	}{
		{"_a", f.at(0), f.at(10 * s)},
		{"_B", f.at(0), f.at(10 * s)},
		{"_c", f.at(0), f.at(10 * s)},
		{"_z", f.at(usec), f.at(9 * s)},
		{"_y", f.at(2 * usec), f.at(8*s + usec)},
		{"_x", f.at(time.Millisecond).In(east), time.Time{}},
		{"_s", time.Time{}, f.at(5 * s)},
		{"_t", time.Time{}, time.Time{}},
		{"_u", f.at(3 * s), f.at(listDueBy)},
		{"_v", f.at(4 * s), f.at(listDueBy + usec)},
		{"_w", f.at(time.Hour).In(west), f.at(2 * s).In(east)},
		{"_r", f.at(30 * time.Minute).In(east), f.at(2*s + usec).In(west)},
	} {
		rec := f.put(finchreauth.Record{
			ConnectionID: f.id(r.suffix),
			Token:        newToken(),
			Fingerprints: []string{newFP()},
			Since:        r.since,
			Due:          r.due,
			Data:         []byte(`{"suffix":"` + r.suffix + `"}`),
		})
		set[rec.ConnectionID] = rec
	}
	return set
}

// every reports whether q lists the whole store, by connection id.
func every(q finchreauth.Query) bool { return q.Every && q.DueBy.IsZero() }

// timeOf returns the time by which q orders r: none when q lists every
// record.
func timeOf(q finchreauth.Query, r finchreauth.Record) time.Time {
	switch {
	case every(q):
		return time.Time{}
	case q.DueBy.IsZero():
		return r.Since
	}
	return r.Due
}

// cursorOf returns q's cursor as the suite compares it: AfterTime is
// ignored when q lists every record.
func cursorOf(q finchreauth.Query) (time.Time, string) {
	if every(q) {
		return time.Time{}, q.AfterID
	}
	return q.AfterTime, q.AfterID
}

// selects reports whether q selects r, cursor aside.
func selects(q finchreauth.Query, r finchreauth.Record) bool {
	if every(q) {
		return true
	}
	at := timeOf(q, r)
	return !at.IsZero() && (q.DueBy.IsZero() || !at.After(q.DueBy))
}

// compareKeys orders listings: by time, then by connection id.
func compareKeys(at1 time.Time, id1 string, at2 time.Time, id2 string) int {
	return cmp.Or(at1.Compare(at2), strings.Compare(id1, id2))
}

// expected returns the records of mine that q selects after its cursor, in
// q's order, Limit aside. A record of mine with Version 0 is one the store
// must not hold.
func expected(q finchreauth.Query, mine map[string]finchreauth.Record) []finchreauth.Record {
	var out []finchreauth.Record
	afterTime, afterID := cursorOf(q)
	for _, r := range mine {
		if r.Version > 0 && selects(q, r) && compareKeys(timeOf(q, r), r.ConnectionID, afterTime, afterID) > 0 {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b finchreauth.Record) int {
		return compareKeys(timeOf(q, a), a.ConnectionID, timeOf(q, b), b.ConnectionID)
	})
	return out
}

// checkPage checks one page List returned for q: at most q.Limit records,
// each selected by q, in order after q's cursor, with a connection id; the
// records of mine among them as stored; and none of mine missing: all that
// sort up to the page's last record, or, on a page shorter than the Limit,
// all there are. It reports whether the page passed.
func (f *fixture) checkPage(what string, q finchreauth.Query, page []finchreauth.Record, mine map[string]finchreauth.Record) bool {
	f.t.Helper()
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(page) > q.Limit {
		fail("%d records, more than the Limit", len(page))
	}
	at, id := cursorOf(q)
	var listed []string
	for i, r := range page {
		rt := timeOf(q, r)
		switch {
		case r.ConnectionID == "":
			fail("record %d has no ConnectionID", i)
		case !selects(q, r):
			fail("record %d, %s, is not selected: Since %s, Due %s", i, f.short(r.ConnectionID), f.rel(r.Since), f.rel(r.Due))
		case compareKeys(rt, r.ConnectionID, at, id) <= 0:
			fail("record %d, %s at %s, does not sort after (%s, %s)", i, f.short(r.ConnectionID), f.rel(rt), f.rel(at), f.short(id))
		}
		at, id = rt, r.ConnectionID
		want, ok := mine[r.ConnectionID]
		if !ok {
			continue
		}
		listed = append(listed, f.short(r.ConnectionID))
		if want.Version == 0 {
			fail("record %d, %s, is of a connection the store must not hold", i, f.short(r.ConnectionID))
		} else if d := f.diff(r, want); len(d) > 0 {
			fail("record %d, %s, is not the stored one: %s", i, f.short(r.ConnectionID), strings.Join(d, "; "))
		}
	}
	var due []string
	for _, r := range expected(q, mine) {
		if len(page) >= q.Limit && compareKeys(timeOf(q, r), r.ConnectionID, at, id) > 0 {
			break
		}
		due = append(due, f.short(r.ConnectionID))
	}
	if !slices.Equal(listed, due) {
		fail("the suite's records on the page: %s; want %s", strings.Join(listed, " "), strings.Join(due, " "))
	}
	if len(errs) > 0 {
		f.t.Errorf("%s: %d records:\n\t%s", what, len(page), strings.Join(errs, "\n\t"))
		return false
	}
	return true
}

// maxPages bounds a walk, so that a store whose pages never end fails rather
// than hangs.
const maxPages = 1000

// walk lists q page by page, continuing from each page's last record, until
// it has seen all of mine that q selects or the list ends, and checks every
// page.
func (f *fixture) walk(what string, q finchreauth.Query, mine map[string]finchreauth.Record) {
	f.t.Helper()
	what = fmt.Sprintf("%s, List(%s)", what, f.fmtQuery(q))
	want := len(expected(q, mine))
	seen := 0
	for page := 1; ; page++ {
		if page > maxPages {
			f.t.Errorf("%s: still listing after %d pages", what, maxPages)
			return
		}
		recs, err := f.s.List(f.ctx, q)
		if err != nil {
			f.t.Errorf("%s, page %d: %s", what, page, redact(err))
			return
		}
		if !f.checkPage(fmt.Sprintf("%s, page %d", what, page), q, recs, mine) {
			return
		}
		for _, r := range recs {
			if _, ok := mine[r.ConnectionID]; ok {
				seen++
			}
		}
		if seen >= want || len(recs) < q.Limit {
			return
		}
		last := recs[len(recs)-1]
		if !every(q) {
			q.AfterTime = timeOf(q, last)
		}
		q.AfterID = last.ConnectionID
	}
}

// short names a connection id by what follows the fixture's prefix.
func (f *fixture) short(id string) string {
	if s, ok := strings.CutPrefix(id, f.prefix); ok {
		return s
	}
	return fmt.Sprintf("%q", id)
}

func (f *fixture) fmtQuery(q finchreauth.Query) string {
	var b strings.Builder
	if q.Every {
		b.WriteString("Every ")
	}
	if !q.DueBy.IsZero() {
		fmt.Fprintf(&b, "DueBy:%s ", f.rel(q.DueBy))
	}
	if !q.AfterTime.IsZero() || q.AfterID != "" {
		fmt.Fprintf(&b, "After:(%s, %s) ", f.rel(q.AfterTime), f.short(q.AfterID))
	}
	fmt.Fprintf(&b, "Limit:%d", q.Limit)
	return b.String()
}

func testListSince(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	f.walk("the Since list", finchreauth.Query{AfterTime: f.base, Limit: 100}, mine)
	f.walk("the Since list, its cursor in another location", finchreauth.Query{AfterTime: f.base.In(east), Limit: 100}, mine)
}

func testListDueBy(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	for _, c := range []struct {
		name  string
		dueBy time.Time
	}{
		{"on a Due", f.at(listDueBy)},
		{"a microsecond before a Due", f.at(listDueBy - usec)},
		{"on a tie", f.at(10 * time.Second)},
		{"a microsecond before a tie", f.at(10*time.Second - usec)},
		{"before the suite's records", f.at(-usec)},
		{"after the suite's records", f.at(2 * time.Hour)},
		{"in another location", f.at(listDueBy).In(west)},
	} {
		f.walk("DueBy "+c.name, finchreauth.Query{DueBy: c.dueBy, AfterTime: f.base, Limit: 100}, mine)
	}
}

func testListPages(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	for _, q := range []finchreauth.Query{
		{AfterTime: f.base},
		{DueBy: f.at(listDueBy), AfterTime: f.base},
	} {
		for _, limit := range []int{1, 2, 3, 5} {
			q.Limit = limit
			f.walk(fmt.Sprintf("pages of %d", limit), q, mine)
		}
		// From every record, and from the first of every instant.
		q.Limit = 2
		for _, r := range expected(q, mine) {
			at := timeOf(q, r)
			f.walk("after a record", finchreauth.Query{DueBy: q.DueBy, AfterTime: at, AfterID: r.ConnectionID, Limit: 2}, mine)
			f.walk("from an instant", finchreauth.Query{DueBy: q.DueBy, AfterTime: at.In(west), Limit: 2}, mine)
		}
	}
	// Every record, by connection id, from the prefix; AfterTime, which
	// is ignored, on a record's Since.
	q := finchreauth.Query{Every: true, AfterTime: f.at(0), AfterID: f.prefix}
	for _, limit := range []int{1, 2, 3, 5, 7} {
		q.Limit = limit
		f.walk(fmt.Sprintf("Every, pages of %d", limit), q, mine)
	}
	for _, r := range expected(q, mine) {
		f.walk("Every, after a record", finchreauth.Query{Every: true, AfterID: r.ConnectionID, Limit: 2}, mine)
	}
}

// testListEvery lists every record, by connection id: those without Since
// or Due too, whatever AfterTime says, and AfterID's own record excluded.
// The store may hold other records, so the walk starts at the fixture's
// prefix: the suite's records all sort after it. Besides the List set, ids
// that sort between its ids by their bytes: a trailing space, '%' and a
// non-ASCII letter, which sorts after every ASCII one; and the prefix
// itself, which the walk must leave out.
func testListEvery(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	for _, suffix := range []string{"_a ", "_a%", "_\u00e4", ""} {
		id := f.id(suffix)
		mine[id] = f.put(finchreauth.Record{ConnectionID: id, Token: newToken(), Fingerprints: []string{newFP()}, Data: []byte("x")})
	}
	for _, c := range []struct {
		name  string
		after time.Time
	}{
		{"from the prefix", time.Time{}},
		{"AfterTime after every record", f.at(2 * time.Hour)},
		{"AfterTime before every record", f.at(-time.Hour)},
		{"AfterTime on a Since, in another location", f.at(time.Millisecond).In(west)},
	} {
		f.walk("Every, "+c.name, finchreauth.Query{Every: true, AfterTime: c.after, AfterID: f.prefix, Limit: 100}, mine)
	}
}

// testListStart lists from the zero cursor. Only the first page is
// checked: in a shared store it may hold other records, and the listing
// from there all the store holds.
func testListStart(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	for _, q := range []finchreauth.Query{
		{Limit: 1},
		{Limit: 3},
		{DueBy: f.at(listDueBy), Limit: 1},
		{DueBy: f.at(listDueBy), Limit: 3},
		{Every: true, Limit: 1},
		{Every: true, Limit: 3},
	} {
		what := fmt.Sprintf("from the start, List(%s)", f.fmtQuery(q))
		page, err := f.s.List(f.ctx, q)
		if err != nil {
			t.Errorf("%s: %s", what, redact(err))
			continue
		}
		f.checkPage(what, q, page, mine)
	}
}

// testListUpdates checks that a Put that changes Since or Due moves the
// record in the listings, or out of them, or into them.
func testListUpdates(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	mine := f.listSet()
	for _, c := range []struct {
		name   string
		suffix string
		change func(*finchreauth.Record)
	}{
		{"Since cleared", "_a", func(r *finchreauth.Record) { r.Since = time.Time{} }},
		{"Due cleared", "_z", func(r *finchreauth.Record) { r.Due = time.Time{} }},
		{"Due moved past DueBy", "_y", func(r *finchreauth.Record) { r.Due = f.at(time.Hour) }},
		{"Since moved later", "_c", func(r *finchreauth.Record) { r.Since = f.at(5 * time.Second) }},
		{"Due moved earlier", "_u", func(r *finchreauth.Record) { r.Due = f.at(time.Second) }},
		{"Since and Due set", "_t", func(r *finchreauth.Record) { r.Since, r.Due = f.at(usec), f.at(usec) }},
		{"Due set", "_x", func(r *finchreauth.Record) { r.Due = f.at(3 * time.Second) }},
	} {
		r := mine[f.id(c.suffix)]
		c.change(&r)
		mine[r.ConnectionID] = f.put(r)
		for _, q := range []finchreauth.Query{
			{AfterTime: f.base, Limit: 3},
			{DueBy: f.at(listDueBy), AfterTime: f.base, Limit: 3},
			{Every: true, AfterID: f.prefix, Limit: 3},
		} {
			f.walk(fmt.Sprintf("after a Put of %s: %s", c.suffix, c.name), q, mine)
		}
	}
}

func testListLimit(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	f.listSet()
	for _, q := range []finchreauth.Query{
		{Limit: 0},
		{Limit: -1},
		{AfterTime: f.base, Limit: 0},
		{DueBy: f.at(listDueBy), Limit: 0},
		{DueBy: f.at(listDueBy), AfterTime: f.base, Limit: -1},
		{Every: true, Limit: 0},
		{Every: true, AfterID: f.prefix, Limit: -1},
	} {
		if page, err := f.s.List(f.ctx, q); err == nil {
			t.Errorf("List(%s) = %d records, nil; want an error: the Limit must be positive", f.fmtQuery(q), len(page))
		}
	}
}
