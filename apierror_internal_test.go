package finchreauth

import (
	"encoding/json"
	"testing"
)

// FuzzReadMembers: on a whole JSON document, reading the members one by
// one (what a body cut at 64 KiB gets) finds what json.Unmarshal finds
// (what a whole body gets); on any cut of it, no panic.
func FuzzReadMembers(f *testing.F) {
	f.Add([]byte(`{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user","statusCode":401,"status":401}`), 40)
	f.Add([]byte(`{"finch_code":"reauthenticate_user","FINCH_CODE":7,"Code":"401","code":4.5e2}`), 30)
	f.Add([]byte(`{"error":{"finch_code":"reauthenticate_user"},"name":null,"message":["m"]}`), 20)
	f.Add([]byte("{\"n\\u0061me\":\"a\xffb\",\"\\u212Aode\":401,\"finch_code\":\"reauthenticate_user\"}"), 12)
	f.Add([]byte(`[{"finch_code":"reauthenticate_user"}]`), 5)
	f.Fuzz(func(t *testing.T, body []byte, cut int) {
		if cut >= 0 && cut <= len(body) {
			readMembers(body[:cut])
		}
		if len(body) > maxPeek || !json.Valid(body) {
			return
		}
		var want, got APIError
		var m errorMembers
		if json.Unmarshal(body, &m) == nil {
			want.setFields(m)
		}
		got.setFields(readMembers(body))
		if got.Code != want.Code || got.Name != want.Name || got.FinchCode != want.FinchCode || got.Message != want.Message {
			t.Fatalf("read %q %q %q %d, json.Unmarshal reads %q %q %q %d",
				got.Name, got.FinchCode, got.Message, got.Code, want.Name, want.FinchCode, want.Message, want.Code)
		}
	})
}
