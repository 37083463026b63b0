// Package quote writes a connection id or a fingerprint into an error
// message of a store: quoted, with every control, format (bidi) and
// non-printing character escaped, and cut after MaxBytes. An id comes from
// an application, a database or a Finch account: it must neither reach a
// terminal as an escape sequence nor make a 1 MiB id a 1 MiB error.
package quote

import (
	"strconv"
	"unicode/utf8"
)

// MaxBytes is how much of an id an error shows.
const MaxBytes = 64

// ID returns id as Go would quote it, keeping printable Unicode (see
// strconv.QuoteToGraphic), cut to its first MaxBytes bytes on a rune
// boundary, with its length said when cut.
func ID(id string) string {
	if len(id) <= MaxBytes {
		return strconv.QuoteToGraphic(id)
	}
	cut := id[:MaxBytes]
	for i := 0; i < utf8.UTFMax && !utf8.ValidString(cut); i++ {
		cut = cut[:len(cut)-1] // a rune split at the cut; invalid bytes stay
	}
	return strconv.QuoteToGraphic(cut) + "... (" + strconv.Itoa(len(id)) + " bytes)"
}
