package storetest

import (
	"slices"
	"testing"

	"github.com/finchkit/finchreauth"
)

// TestExpectedOrder checks the suite's own idea of List's order on the
// records the List tests share, against the order written out by hand in
// listSet's documentation.
func TestExpectedOrder(t *testing.T) {
	f := start(t, func(*testing.T) finchreauth.Store { return new(finchreauth.MemoryStore) })
	set := f.listSet()
	for _, c := range []struct {
		q    finchreauth.Query
		want []string
	}{
		{finchreauth.Query{AfterTime: f.base}, []string{"_B", "_a", "_c", "_z", "_y", "_x", "_u", "_v", "_r", "_w"}},
		{finchreauth.Query{DueBy: f.at(listDueBy), AfterTime: f.base}, []string{"_w", "_r", "_s", "_y", "_z", "_B", "_a", "_c", "_u"}},
	} {
		var got []string
		for _, r := range expected(c.q, set) {
			got = append(got, f.short(r.ConnectionID))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("expected(%s) = %q, want %q", f.fmtQuery(c.q), got, c.want)
		}
	}
}
