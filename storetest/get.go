package storetest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
)

// Rule 1: Get returns the record the last successful Put stored for the
// connection, every field as it was given (Since and Due to the microsecond,
// in any location), with the Version that Put returned; or ErrNotFound.

func testGetNotFound(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	f.wantNotFound("a connection never stored", newID())
	// A fingerprint is no connection id, even when a Put listed it.
	fp := newFP()
	f.put(finchreauth.Record{ConnectionID: f.id("_conn"), Fingerprints: []string{fp}})
	f.wantNotFound("a fingerprint a Put listed", fp)
}

// roundTrips are the records Get/RoundTrip stores, each in a subtest of its
// own: first on a new connection, then, to see every field replaced, with
// the next one's fields.
var roundTrips = []struct {
	name   string
	suffix string // of the connection id; "_conn" if empty
	rec    func(f *fixture) finchreauth.Record
}{
	{name: "AllFields", rec: func(f *fixture) finchreauth.Record {
		return finchreauth.Record{
			Token:        newToken(),
			Fingerprints: []string{newFP(), newFP(), newFP()},
			Since:        f.at(0),
			Due:          f.at(time.Hour + usec).In(east),
			Data:         []byte(`{"episode":{"id":"ep1","sent":2}}`),
		}
	}},
	{name: "Empty", rec: func(*fixture) finchreauth.Record { return finchreauth.Record{} }},
	{name: "EmptySlices", rec: func(*fixture) finchreauth.Record {
		return finchreauth.Record{Fingerprints: []string{}, Data: []byte{}}
	}},
	{name: "TokenOnly", rec: func(*fixture) finchreauth.Record { return finchreauth.Record{Token: newToken()} }},
	{name: "MicrosecondEdges", rec: func(f *fixture) finchreauth.Record {
		s := f.base.Truncate(time.Second)
		return finchreauth.Record{Since: s.Add(usec).In(west), Due: s.Add(999999 * usec)}
	}},
	{name: "Before1970", rec: func(*fixture) finchreauth.Record {
		return finchreauth.Record{
			Since: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
			Due:   time.Date(1900, 1, 1, 0, 0, 0, 1000, east),
		}
	}},
	{name: "UnixEpoch", rec: func(*fixture) finchreauth.Record {
		return finchreauth.Record{Since: time.Unix(0, 0), Due: time.Unix(0, 0).In(west)}
	}},
	{name: "DueOnly", rec: func(f *fixture) finchreauth.Record {
		return finchreauth.Record{Fingerprints: []string{newFP()}, Due: f.at(-time.Hour)}
	}},
	{name: "BinaryData", rec: func(*fixture) finchreauth.Record {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return finchreauth.Record{Data: b}
	}},
	{name: "JSONData", rec: func(*fixture) finchreauth.Record {
		return finchreauth.Record{Data: []byte(" { \"a\" : [1, 2.50, \"\\u00e9\\n\", null] ,\"b\":{}}\n\t")}
	}},
	{name: "Large", rec: func(f *fixture) finchreauth.Record {
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		fps := make([]string, 16)
		for i := range fps {
			fps[i] = newFP()
		}
		return finchreauth.Record{Token: newToken(), Fingerprints: fps, Since: f.at(time.Second), Data: b}
	}},
	{name: "UnusualID", suffix: ` 'quote' "dq" 100% _*:\ Ünïcödé`, rec: func(f *fixture) finchreauth.Record {
		return finchreauth.Record{Token: newToken(), Since: f.at(2 * time.Second)}
	}},
}

// east and west are locations the suite gives times in.
var (
	east = time.FixedZone("storetest+05:45", 5*3600+45*60)
	west = time.FixedZone("storetest-09:30", -(9*3600 + 30*60))
)

func testRoundTrip(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	for i, c := range roundTrips {
		next := roundTrips[(i+1)%len(roundTrips)]
		t.Run(c.name, func(t *testing.T) {
			f := start(t, newStore)
			suffix := c.suffix
			if suffix == "" {
				suffix = "_conn"
			}
			first := c.rec(f)
			first.ConnectionID = f.id(suffix)
			stored := f.put(first)
			f.wantRecord("after the first Put", stored)

			second := next.rec(f)
			second.ConnectionID, second.Version = stored.ConnectionID, stored.Version
			f.wantRecord("after a second Put, of the "+next.name+" record", f.put(second))
		})
	}
}

func testCopies(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	rec := finchreauth.Record{
		ConnectionID: f.id("_conn"),
		Token:        newToken(),
		Fingerprints: []string{newFP(), newFP()},
		Since:        f.at(0),
		Data:         []byte(`{"n":1}`),
	}
	rec = f.put(rec)
	want := clone(rec)

	rec.Fingerprints[0], rec.Data[0] = "changed", 'X'
	f.wantRecord("after the caller changed the slices it gave Put", want)

	got := f.get(rec.ConnectionID)
	if len(got.Fingerprints) > 0 && len(got.Data) > 0 {
		got.Fingerprints[0], got.Data[0] = "changed", 'X'
	}
	f.wantRecord("after the caller changed the slices Get returned", want)

	page, err := f.s.List(f.ctx, finchreauth.Query{AfterTime: f.base.Add(-usec), Limit: 10})
	if err != nil {
		t.Fatalf("List: %s", redact(err))
	}
	for _, r := range page {
		if r.ConnectionID == rec.ConnectionID && len(r.Fingerprints) > 0 && len(r.Data) > 0 {
			r.Fingerprints[0], r.Data[0] = "changed", 'X'
		}
	}
	f.wantRecord("after the caller changed the slices List returned", want)
}

// testIndependent checks that connection ids that differ only in case or by
// a trailing space name different connections.
func testIndependent(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	ids := []string{f.id("_Conn"), f.id("_conn"), f.id("_Conn ")}
	recs := make([]finchreauth.Record, len(ids))
	for i, id := range ids {
		for _, other := range ids[i:] {
			f.wantNotFound("before the first Put of "+other, other)
		}
		recs[i] = f.put(finchreauth.Record{ConnectionID: id, Token: newToken(), Fingerprints: []string{newFP()}, Data: []byte(id)})
	}
	recs[0].Data = []byte("changed")
	recs[0] = f.put(recs[0])
	recs[0] = f.put(recs[0])
	for _, r := range recs {
		f.wantRecord("after three Puts of "+ids[0]+" and one of each other id", r)
		f.wantLookup("after a Put of each id", r.Fingerprints[0], r.ConnectionID)
	}
}
