package storetest

import (
	"strings"
	"testing"

	"github.com/finchkit/finchreauth"
)

// Rule 3: After a Put, Lookup of each fingerprint in rec.Fingerprints
// returns rec.ConnectionID, even after a later Put no longer lists it;
// Lookup of a fingerprint no Put listed returns ErrNotFound.

func testLookupNotFound(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	f.wantNoLookup("a fingerprint never listed", newFP())
	fp := newFP()
	id := f.id("_conn")
	f.put(finchreauth.Record{ConnectionID: id, Fingerprints: []string{fp}})
	f.wantNoLookup("a listed fingerprint in upper case", strings.ToUpper(fp))
	f.wantNoLookup("a connection id", id)
}

func testLookupFingerprints(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	id := f.id("_conn")
	fps := make([]string, 12)
	for i := range fps {
		fps[i] = newFP()
	}
	r := f.put(finchreauth.Record{ConnectionID: id, Fingerprints: fps[:3]})
	for _, fp := range fps[:3] {
		f.wantLookup("after a Put listing 3 fingerprints", fp, id)
	}
	r.Fingerprints = fps[3:]
	r = f.put(r)
	for _, fp := range fps {
		f.wantLookup("after a second Put, listing 9 others", fp, id)
	}
	r.Fingerprints = nil
	f.put(r)
	for _, fp := range fps {
		f.wantLookup("after a third Put, listing none", fp, id)
	}
}

// testLookupConnections checks that each connection's fingerprints lead to
// it, and that a fingerprint leads to the connection whose Put listed it
// last.
func testLookupConnections(t *testing.T, newStore func(*testing.T) finchreauth.Store) {
	f := start(t, newStore)
	a, b := f.id("_a"), f.id("_b")
	a1, a2, b1 := newFP(), newFP(), newFP()
	ra := f.put(finchreauth.Record{ConnectionID: a, Fingerprints: []string{a1, a2}})
	rb := f.put(finchreauth.Record{ConnectionID: b, Fingerprints: []string{b1}})
	f.wantLookup("a's first fingerprint", a1, a)
	f.wantLookup("a's second fingerprint", a2, a)
	f.wantLookup("b's fingerprint", b1, b)

	rb.Fingerprints = []string{a2, b1}
	rb = f.put(rb)
	f.wantLookup("after b's Put listed a's second fingerprint", a2, b)
	f.wantLookup("a's first fingerprint, after b's Put", a1, a)

	ra.Fingerprints = []string{a1}
	ra = f.put(ra)
	f.wantLookup("after a's Put listed only its first fingerprint", a2, b)

	ra.Fingerprints = []string{a2, a1}
	f.put(ra)
	f.wantLookup("after a's Put listed its second fingerprint again", a2, a)
	f.wantLookup("b's fingerprint, after a's Puts", b1, b)
}
