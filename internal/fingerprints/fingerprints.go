// Package fingerprints holds the Store contract's rule for the list of
// superseded token fingerprints, shared by the root package's MemoryStore and
// the store modules that compute the list in Go.
package fingerprints

// Max is how many replaced token fingerprints a store keeps per connection.
// The contract asks for at least 8; re-authentication is rare, and a
// connection that went through more than a few in a latch's lifetime is not
// worth the memory.
const Max = 16

// Supersede returns the superseded list after the token old was replaced by
// cur: old first, cur never in it, at most Max long. It never modifies list.
func Supersede(list []string, old, cur string) []string {
	out := make([]string, 0, min(len(list)+1, Max))
	if old != "" && old != cur {
		out = append(out, old)
	}
	for _, fp := range list {
		if len(out) == Max {
			break
		}
		if fp != cur && fp != old {
			out = append(out, fp)
		}
	}
	return out
}
