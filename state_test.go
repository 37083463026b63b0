package finchreauth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	keyA = []byte("key-A-0123456789abcdef0123456789")
	keyB = []byte("key-B-0123456789abcdef0123456789")
)

func TestStateRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, _, err := signState([][]byte{keyA}, "conn_1", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, string(keyA)) {
		t.Fatal("state carries the key")
	}
	p, err := verifyState([][]byte{keyA}, s, now)
	if err != nil || p.connectionID != "conn_1" || !p.expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("verify = %+v, %v", p, err)
	}
	s2, _, _ := signState([][]byte{keyA}, "conn_1", now.Add(time.Hour))
	if s2 == s {
		t.Fatal("two states for one connection are equal: no nonce")
	}
}

func TestStateRotationAndRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	oldState, _, _ := signState([][]byte{keyA}, "conn_1", now.Add(time.Hour))
	newState, _, _ := signState([][]byte{keyB, keyA}, "conn_1", now.Add(time.Hour))
	cases := []struct {
		name  string
		keys  [][]byte
		state string
		at    time.Time
		want  error
	}{
		{"old key still verifies after rotation", [][]byte{keyB, keyA}, oldState, now, nil},
		{"new key signs", [][]byte{keyB}, newState, now, nil},
		{"dropped key refused", [][]byte{keyB}, oldState, now, errInvalidState},
		{"expired at its expiry", [][]byte{keyA}, oldState, now.Add(time.Hour), errExpiredState},
		{"empty", [][]byte{keyA}, "", now, errInvalidState},
		{"no dot", [][]byte{keyA}, strings.ReplaceAll(oldState, ".", ""), now, errInvalidState},
		{"bad base64", [][]byte{keyA}, "!!!." + strings.Split(oldState, ".")[1], now, errInvalidState},
		{"truncated mac", [][]byte{keyA}, oldState[:len(oldState)-2], now, errInvalidState},
		{"too long", [][]byte{keyA}, oldState + strings.Repeat("A", stateMaxLen), now, errInvalidState},
		{"swapped halves", [][]byte{keyA}, strings.Split(oldState, ".")[1] + "." + strings.Split(oldState, ".")[0], now, errInvalidState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyState(tc.keys, tc.state, tc.at)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("verify: %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tc.state[:min(len(tc.state), 10)]) && tc.state != "" {
				t.Fatal("the error quotes the state")
			}
		})
	}
}

func TestStateSignRefuses(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	for name, keys := range map[string][][]byte{"no keys": nil, "short key": {[]byte("short")}} {
		if _, _, err := signState(keys, "c", exp); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, _, err := signState([][]byte{keyA}, "", exp); err == nil {
		t.Error("signed an empty connection id")
	}
	if _, _, err := signState([][]byte{keyA}, strings.Repeat("c", stateMaxConnID+1), exp); err == nil {
		t.Error("signed an oversized connection id")
	}
}
