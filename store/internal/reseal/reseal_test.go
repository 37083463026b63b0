package reseal

import (
	"errors"
	"strings"
	"testing"

	"github.com/finchkit/finchreauth/store/tokenseal"
)

func TestReseal(t *testing.T) {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	newKey[0] = 1
	before, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 2, Secret: newKey}, tokenseal.Key{ID: 1, Secret: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	old, err := before.Seal([]byte("tok"), []byte("conn_1"))
	if err != nil {
		t.Fatal(err)
	}
	if !Stale(rot, old, true) || !Stale(rot, []byte("tok"), false) || Stale(rot, nil, false) {
		t.Fatal("Stale: a token under the old key and a plaintext one are stale, an empty one is not")
	}
	again, err := Token("teststore", rot, "conn_1", old, true)
	if err != nil || Stale(rot, again, true) {
		t.Fatalf("Token: %v; stale after: %v", err, Stale(rot, again, true))
	}
	if plain, err := rot.Open(again, []byte("conn_1")); err != nil || string(plain) != "tok" {
		t.Fatalf("the token sealed again opens as %q, %v", plain, err)
	}
	_, err = Token("teststore", rot, "conn_2", old, true) // sealed for another connection: no key opens it
	var oe *OpenError
	if !errors.As(err, &oe) || strings.Contains(err.Error(), "tok\"") {
		t.Fatalf("Token of a token no key opens: %v", err)
	}

	var tally Tally
	other := errors.New("the store failed")
	if tally.Add(true, nil) != nil || tally.Add(false, nil) != nil || tally.Add(false, err) != nil || tally.Add(false, err) != nil {
		t.Fatal("Add returned an error for an outcome it counts")
	}
	if got := tally.Add(false, other); got != other {
		t.Fatalf("Add(another error) = %v", got)
	}
	if tally.Resealed != 1 {
		t.Errorf("Resealed = %d, want 1", tally.Resealed)
	}
	if e := tally.Err("teststore"); !errors.Is(e, oe.Err) || !strings.Contains(e.Error(), "teststore: reseal: 2 tokens") {
		t.Errorf("Err = %v", e)
	}
	if (Tally{}).Err("teststore") != nil {
		t.Error("a run that left nothing has an error")
	}
}
