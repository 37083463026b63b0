package finchreauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

var errorBodySeeds = []string{
	`{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`,
	` { "code" : 401 , "FINCH_CODE" : "reauthenticate_user" } `,
	"{\n\t\"finch_code\":\"reauthenticate_user\",\r\n\"finch_code\":\"other\"}",
	`{"finch_code":"reauthenticate_user","finch_code":null}`,
	`{"finch_code":5}`,
	`{"code":"401","finch_code":"reauthenticate_user"}`,
	`{"code":4.01e2}`,
	`{"code":-0.5E-3,"x":true,"y":false,"z":null}`,
	`{"code":01}`,
	`{"code":1.}`,
	`{"code":1e}`,
	`{"code":true}`,
	`{"message":{"text":"nested"}}`,
	`{"name":"a\"b"}`,
	`{"name":"caf\u00e9"}`,
	"{\"name\":\"café\"}",
	`{"name":"\u0007"}`,
	`{"a":1,}`,
	`{"a":1}x`,
	`{}`,
	`{ }`,
	`[]`,
	`null`,
	`"x"`,
	``,
	`{"a":[1,2]}`,
	`{"code":401`,
	`{"code" 401}`,
	`{"finch_code":"reauthenticate_user"}{}`,
	`{"Finch_Code":"reauthenticate_user","finch_code":"x"}`,
	`{"finch_code":nul}`,
	`{"finch_code":"reauthenticate_user","code":-}`,
}

// checkScan holds scanErrorBody to its promise: whenever it answers, it
// answers what encoding/json answers.
func checkScan(t *testing.T, body string) {
	got, ok := scanErrorBody([]byte(body))
	if !ok {
		return
	}
	var want typedErrorBody
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatalf("scanErrorBody(%q) accepted what encoding/json rejects: %v", body, err)
	}
	if got != want {
		t.Fatalf("scanErrorBody(%q) = %+v, encoding/json says %+v", body, got, want)
	}
}

func TestScanErrorBody(t *testing.T) {
	accepted := 0
	for _, body := range errorBodySeeds {
		checkScan(t, body)
		if _, ok := scanErrorBody([]byte(body)); ok {
			accepted++
		}
	}
	if _, ok := scanErrorBody([]byte(errorBodySeeds[0])); !ok {
		t.Fatal("Finch's own re-authentication error is not on the fast path")
	}
	if accepted < 8 {
		t.Fatalf("only %d seeds on the fast path", accepted)
	}
}

func FuzzScanErrorBody(f *testing.F) {
	for _, body := range errorBodySeeds {
		f.Add(body)
	}
	f.Fuzz(checkScan)
}

// TestReadPrefix holds readPrefix to io.ReadAll(io.LimitReader(r, maxPeek))
// whatever the size hint says, a wrong one included.
func TestReadPrefix(t *testing.T) {
	boom := errors.New("boom")
	for _, n := range []int{0, 1, 150, 511, 512, 513, maxPeek - 1, maxPeek, maxPeek + 1, 3 * maxPeek} {
		body := strings.Repeat("x", n)
		for _, hint := range []int64{-1, 0, 1, int64(n) / 2, int64(n), int64(n) + 7, maxPeek + 1} {
			for _, fail := range []bool{false, true} {
				reader := func() io.Reader {
					var r io.Reader = iotest.HalfReader(strings.NewReader(body))
					if fail {
						r = io.MultiReader(r, iotest.ErrReader(boom))
					}
					return r
				}
				want, wantErr := io.ReadAll(io.LimitReader(reader(), maxPeek))
				got, err := readPrefix(reader(), hint)
				if !bytes.Equal(got, want) || err != wantErr {
					t.Fatalf("n=%d hint=%d fail=%v: got %d bytes, %v; want %d bytes, %v", n, hint, fail, len(got), err, len(want), wantErr)
				}
			}
		}
	}
}
