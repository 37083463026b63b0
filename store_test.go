package finchreauth_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) finchreauth.Store { return finchreauth.NewMemoryStore() })
}

// TestMemoryStoreShared runs the suite on one store for every subtest,
// as a store on a shared database would: the suite must not assume an empty
// store.
func TestMemoryStoreShared(t *testing.T) {
	s := finchreauth.NewMemoryStore()
	storetest.Run(t, func(*testing.T) finchreauth.Store { return s })
}

func TestMemoryStoreSupersededCopy(t *testing.T) {
	ctx := t.Context()
	s := finchreauth.NewMemoryStore()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var fps []string // newest first
	for i := range 4 {
		tok := finchreauth.Token{ConnectionID: "conn_1", AccessToken: fmt.Sprintf("secret-%d", i), IssuedAt: base.Add(time.Duration(i) * time.Second)}
		prev, err := s.SaveToken(ctx, tok)
		if err != nil {
			t.Fatalf("SaveToken(%d): %v", i, err)
		}
		// The previous state's list is the caller's too.
		for j := range prev.Superseded {
			prev.Superseded[j] = "scribbled"
		}
		prev.Superseded = append(prev.Superseded, "appended")
		fps = slices.Insert(fps, 0, tok.Fingerprint())
	}
	want := fps[1:]
	for _, c := range []struct {
		name   string
		modify func([]string) []string
	}{
		{"overwrite", func(l []string) []string {
			for i := range l {
				l[i] = "scribbled"
			}
			return l
		}},
		{"append", func(l []string) []string { return append(l, "appended") }},
		{"append to a prefix", func(l []string) []string { return append(l[:1], "appended") }},
		{"sort", func(l []string) []string { slices.Sort(l); return l }},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := s.State(ctx, "conn_1")
			if err != nil {
				t.Fatal(err)
			}
			c.modify(st.Superseded)
			st, err = s.State(ctx, "conn_1")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(st.Superseded, want) {
				t.Errorf("Superseded after the caller modified a copy = %q, want %q", st.Superseded, want)
			}
		})
	}
}

// TestMemoryStoreTokenRedacted checks that a Token as the store gives it
// back prints under no verb its access token.
func TestMemoryStoreTokenRedacted(t *testing.T) {
	const secret = "sk-live-0123456789abcdef"
	s := finchreauth.NewMemoryStore()
	if _, err := s.SaveToken(t.Context(), finchreauth.Token{ConnectionID: "conn_1", AccessToken: secret, IssuedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(t.Context(), "conn_1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != secret {
		t.Fatalf("Token returned token %s, want %s", tok.Fingerprint(), finchreauth.Fingerprint(secret))
	}
	type holder struct {
		Token finchreauth.Token
		Ptr   *finchreauth.Token
	}
	values := []struct {
		name string
		v    any
	}{
		{"Token", tok},
		{"*Token", &tok},
		{"struct holding a Token", holder{Token: tok, Ptr: &tok}},
		{"[]Token", []finchreauth.Token{tok}},
		{"map value", map[string]finchreauth.Token{"k": tok}},
	}
	for _, val := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q", "%T %v"} {
			t.Run(val.name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, val.v)
				if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
					t.Errorf("%s of a %s prints the access token %s", verb, val.name, tok.Fingerprint())
				}
			})
		}
	}
	if out := fmt.Sprint(tok); !strings.Contains(out, tok.Fingerprint()) || !strings.Contains(out, "conn_1") {
		t.Errorf("fmt.Sprint(Token) = %q, want the connection id and fingerprint %s", out, tok.Fingerprint())
	}
}

func BenchmarkMemoryStore(b *testing.B) {
	storetest.Bench(b, finchreauth.NewMemoryStore())
}
