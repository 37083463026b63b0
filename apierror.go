package finchreauth

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxPeek bounds how much of an error body is read to classify it. Finch's
// error bodies are well under a kilobyte; 64 KiB leaves room for proxies that
// pad their answers without letting a hostile body exhaust memory.
const maxPeek = 64 << 10

// APIError is an error answer from the Finch API, parsed from its JSON body:
//
//	{"code": 401, "name": "authentication_error",
//	 "finch_code": "reauthenticate_user", "message": "Please reauthenticate user"}
//
// Fields Finch did not send are zero. The raw body is kept in Body, out of
// Error, so that printing the error never copies what the server sent.
type APIError struct {
	StatusCode int    // the HTTP status of the response
	Code       int    // "code" in the body; usually equal to StatusCode
	Name       string // "name", such as "authentication_error"
	FinchCode  string // "finch_code", such as "reauthenticate_user"; often absent
	Message    string // "message", meant for developers
	RequestID  string // the Finch-Request-Id header: what Finch support asks for
	Body       []byte // the first 64 KiB of the body, decompressed if it was gzip or deflate

	retryAfter time.Duration // a 429's Retry-After, from the library's own calls
}

func (e *APIError) Error() string {
	if e == nil {
		return "finchreauth: <nil *APIError>"
	}
	var b strings.Builder
	b.WriteString("finchreauth: finch API error ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	for _, part := range [][3]string{{" ", e.Name, ""}, {" (", e.FinchCode, ")"}, {": ", e.Message, ""}, {" [request ", e.RequestID, "]"}} {
		if part[1] != "" {
			b.WriteString(part[0] + part[1] + part[2])
		}
	}
	return b.String()
}

// Is reports whether e matches target: ErrReauthRequired matches a
// re-authentication error.
func (e *APIError) Is(target error) bool { return target == ErrReauthRequired && e.IsReauth() }

// IsReauth reports whether e is Finch's signal that the employer must go
// through Finch Connect again: HTTP 401 with finch_code reauthenticate_user.
func (e *APIError) IsReauth() bool {
	return e != nil && e.StatusCode == http.StatusUnauthorized && e.FinchCode == "reauthenticate_user"
}

// errorMembers are the raw values of the members of an error body that
// APIError reads.
type errorMembers struct {
	Code      json.RawMessage `json:"code"`
	Name      json.RawMessage `json:"name"`
	FinchCode json.RawMessage `json:"finch_code"`
	Message   json.RawMessage `json:"message"`
}

// parseBody fills e's fields from the top-level members of a JSON object. A
// whole document is decoded in one call; one that is cut (by the 64 KiB cap,
// or by the server) is read member by member, up to the cut. Either way, as
// with json.Unmarshal, nested values are skipped, keys match
// case-insensitively, the last of duplicate keys wins, and a field of the
// wrong JSON type is left zero rather than making the whole body unreadable.
func (e *APIError) parseBody(body []byte) {
	// The common body, every member of its type, in one typed decoding.
	// Anything else (a member of the wrong type, where a later duplicate
	// of the wrong type must still win and leave the field zero, or a
	// document cut short) is read as raw members.
	var v struct {
		Code      json.Number `json:"code"`
		Name      string      `json:"name"`
		FinchCode string      `json:"finch_code"`
		Message   string      `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil {
		e.Name, e.FinchCode, e.Message = v.Name, v.FinchCode, v.Message
		e.setCode(v.Code)
		return
	}
	var m errorMembers
	if json.Unmarshal(body, &m) != nil {
		m = readMembers(body)
	}
	e.setFields(m)
}

// setCode keeps a code that is an HTTP status.
func (e *APIError) setCode(n json.Number) {
	if c, err := n.Int64(); err == nil && c >= 0 && c < 1000 {
		e.Code = int(c)
	}
}

// setFields decodes the members' values; one of the wrong JSON type leaves
// its field zero.
func (e *APIError) setFields(m errorMembers) {
	var n json.Number
	if json.Unmarshal(m.Code, &n) == nil {
		e.setCode(n)
	}
	for _, f := range []struct {
		raw json.RawMessage
		dst *string
	}{{m.Name, &e.Name}, {m.FinchCode, &e.FinchCode}, {m.Message, &e.Message}} {
		json.Unmarshal(f.raw, f.dst)
	}
}

// readMembers reads the top-level members of a JSON object one by one with
// a streaming decoder, and keeps those that came whole before the document
// ends or turns invalid. FuzzAPIErrorMatchesUnmarshal checks that on a
// whole document it finds what json.Unmarshal finds.
func readMembers(body []byte) errorMembers {
	var m errorMembers
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return m
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil || cutNumber(v, dec.InputOffset(), len(body)) {
			break
		}
		switch { // json.Unmarshal's matching of keys to fields
		case strings.EqualFold(key, "code"):
			m.Code = v
		case strings.EqualFold(key, "name"):
			m.Name = v
		case strings.EqualFold(key, "finch_code"):
			m.FinchCode = v
		case strings.EqualFold(key, "message"):
			m.Message = v
		}
	}
	return m
}

// cutNumber reports whether v, which ends at offset end of a body of n
// bytes, is a number that the end of the body may have cut: the decoder
// takes "40" at the very end for a whole number.
func cutNumber(v json.RawMessage, end int64, n int) bool {
	return end >= int64(n) && len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9')
}

// ParseAPIError reads the error a Finch response carries. It returns nil for a
// response whose status is below 400: check for nil before using the result
// as an error, since a nil *APIError in an error interface is not a nil
// error. ParseAPIError(resp).IsReauth() tells whether resp is Finch asking
// for re-authentication (IsReauth is false for a nil *APIError).
//
// A response that went through a Transport and was recognised carries the
// Finchreauth header: it is read first, and the body is left alone, so that
// this works even after the body was read (the official SDK reads it before
// it returns its error).
//
// It reads at most 64 KiB of the body and then replaces resp.Body with a body
// that reads the very same bytes Finch sent (the part already read, then the
// rest) and whose Close closes the original, so the caller, or an SDK reading
// the response after it, sees the response unchanged.
//
// The fields come from the top-level members of a JSON object. A body
// longer than 64 KiB (decompressed, if it was gzip or deflate), or cut short,
// yields the members that came whole before the cut: finch_code is found if
// it begins within the first 64 KiB, and not after them. A body that is
// empty, not a JSON object, or compressed with an encoding other than gzip
// or deflate yields an *APIError with only StatusCode and RequestID set.
func ParseAPIError(resp *http.Response) *APIError {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	if h := resp.Header.Get(Header); resp.StatusCode == http.StatusUnauthorized && (h == Detected || h == Latched) {
		return &APIError{StatusCode: resp.StatusCode, Code: resp.StatusCode, Name: "authentication_error",
			FinchCode: "reauthenticate_user", RequestID: resp.Header.Get("Finch-Request-Id")}
	}
	e, body := peekAPIError(resp, nil)
	resp.Body = body
	return e
}

// peekAPIError parses the error resp carries and returns it with a body that
// replays resp.Body. It modifies neither resp nor its headers. With a memo,
// a body the memo holds is not parsed again.
func peekAPIError(resp *http.Response, memo *errorMemo) (*APIError, io.ReadCloser) {
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("Finch-Request-Id")}
	if resp.Body == nil || resp.Body == http.NoBody {
		return e, resp.Body
	}
	prefix, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	if err == nil {
		enc := resp.Header.Get("Content-Encoding")
		e.Body = decodeContent(enc, prefix)
		if !memo.recall(e, enc, prefix) {
			e.parseBody(e.Body)
			memo.keep(e, enc, prefix)
		}
	}
	return e, &replayBody{prefix: prefix, err: err, orig: resp.Body}
}

// errorMemo is the last error body a Transport parsed, and what it said.
// When a token breaks, Finch refuses every call in flight with the same
// bytes: the thousands of refusals of a storm are compared, not parsed (the
// parsing was most of what a refused caller paid for the detection).
type errorMemo struct {
	last atomic.Pointer[parsedBody]
}

type parsedBody struct {
	encoding string
	raw      []byte // as read, before any decoding
	code     int
	name     string
	finch    string
	message  string
}

// maxMemo bounds the body a memo keeps; Finch's error bodies are far shorter.
const maxMemo = 4 << 10

// recall sets e's parsed fields if raw, in encoding, is the body m holds.
func (m *errorMemo) recall(e *APIError, encoding string, raw []byte) bool {
	if m == nil {
		return false
	}
	p := m.last.Load()
	if p == nil || p.encoding != encoding || !bytes.Equal(p.raw, raw) {
		return false
	}
	e.Code, e.Name, e.FinchCode, e.Message = p.code, p.name, p.finch, p.message
	return true
}

// keep holds what e says of raw, in encoding, for the next one.
func (m *errorMemo) keep(e *APIError, encoding string, raw []byte) {
	if m == nil || len(raw) > maxMemo {
		return
	}
	m.last.Store(&parsedBody{encoding: encoding, raw: bytes.Clone(raw),
		code: e.Code, name: e.Name, finch: e.FinchCode, message: e.Message})
}

// decodeContent undoes a Content-Encoding the caller asked for itself (Go's
// Transport removes the header when it decompressed the body on its own). It
// returns at most maxPeek decoded bytes: of a stream that ends early, those
// it holds; nil when the encoding is unknown or the data damaged.
func decodeContent(encoding string, data []byte) []byte {
	var r io.ReadCloser
	var err error
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return data
	case "gzip", "x-gzip":
		r, err = gzip.NewReader(bytes.NewReader(data))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(data))
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxPeek))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	// A stream that ends early (the cap cut the compressed body) still
	// decodes as far as it goes.
	return out
}

// replayBody hands back a response body that was partly read to classify
// it: first the bytes read, then whatever the original still holds. If
// reading the prefix failed, that error comes once the prefix is exhausted,
// so a reader sees exactly what it would have seen without us. Close closes
// the original exactly once.
type replayBody struct {
	prefix []byte
	err    error // what reading the prefix ended with; nil means "more may follow"
	orig   io.ReadCloser

	closeOnce sync.Once
	closeErr  error
}

func (b *replayBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.orig.Read(p)
}

func (b *replayBody) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.orig.Close() })
	return b.closeErr
}

// IsReauth reports whether err means that the employer must re-authenticate.
// It recognises an *APIError (errors.Is(err, ErrReauthRequired)) and, through
// the *http.Response in its Response field, the error of the official Finch
// Go SDK, however deeply wrapped with %w:
//
//	_, err := client.HRIS.Directory.List(ctx, params)
//	if finchreauth.IsReauth(err) { ... }
//
// The SDK has read the response body by the time it returns its error, so
// its response is recognised by the Finchreauth header that a Transport (or
// its Middleware) put on it: the SDK's calls must go through one.
func IsReauth(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, ErrReauthRequired) || ParseAPIError(responseOf(err)).IsReauth()
}

// responseOf finds the first error in err's tree that is a pointer to a struct
// with a field Response of type *http.Response, as the official Finch SDK's
// error is, and returns that response.
func responseOf(err error) *http.Response {
	respType := reflect.TypeFor[*http.Response]()
	for err != nil {
		v := reflect.ValueOf(err)
		if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			if f := v.Elem().FieldByName("Response"); f.IsValid() && f.Type() == respType && f.CanInterface() {
				if resp, _ := f.Interface().(*http.Response); resp != nil {
					return resp
				}
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if resp := responseOf(e); resp != nil {
					return resp
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}
