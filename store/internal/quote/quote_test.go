package quote

import (
	"strings"
	"testing"
	"unicode"
)

func TestID(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"conn_a", `"conn_a"`},
		{"conn ünïcode", `"conn ünïcode"`},
		{"conn\x1b]0;pwned\x07", `"conn\x1b]0;pwned\a"`},
		{"a\u202eb\u2066c\u200fd", `"a\u202eb\u2066c\u200fd"`},
		{"line\nbreak\u2028", `"line\nbreak\u2028"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 1<<20), `"` + strings.Repeat("x", 64) + `"... (1048576 bytes)`},
		{strings.Repeat("x", 63) + "é" + "tail", `"` + strings.Repeat("x", 63) + `"... (69 bytes)`},
	} {
		got := ID(c.in)
		if got != c.want {
			t.Errorf("ID(%.80q) = %s; want %s", c.in, got, c.want)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r > unicode.MaxASCII && !unicode.IsGraphic(r) {
				t.Errorf("ID(%.80q) holds %U", c.in, r)
			}
		}
	}
}
