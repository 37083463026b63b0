package finchreauth

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// The finch_code values and names this package acts on. Finch documents them in
// its error-handling guide; see FINCH.md in the repository for the full list.
const (
	finchCodeReauth = "reauthenticate_user"
	nameAuthError   = "authentication_error"
)

// maxPeek bounds how much of an error body is read to classify it. Finch's
// error bodies are well under a kilobyte; 64 KiB leaves room for proxies that
// pad their answers without letting a hostile body exhaust memory.
const maxPeek = 64 << 10

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrReauthRequired is matched, through errors.Is, by an *APIError whose
	// finch_code is reauthenticate_user.
	ErrReauthRequired = errors.New("finchreauth: re-authentication required")

	// ErrNotFound is returned by a Store that holds nothing for a key.
	ErrNotFound = errors.New("finchreauth: not found")

	// ErrStaleToken is returned by Store.SaveToken when the store already
	// holds a token for the connection that was issued after the one offered.
	ErrStaleToken = errors.New("finchreauth: a newer token is already saved")
)

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
}

func (e *APIError) Error() string {
	if e == nil {
		// A nil *APIError in an error interface (ParseAPIError of a
		// success, returned as an error) is a bug of the caller's, but
		// printing it must not panic.
		return "finchreauth: <nil *APIError>"
	}
	var b strings.Builder
	b.WriteString("finchreauth: finch API error ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	if e.FinchCode != "" {
		b.WriteString(" (")
		b.WriteString(e.FinchCode)
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request ")
		b.WriteString(e.RequestID)
		b.WriteString("]")
	}
	return b.String()
}

// Is reports whether e matches target: ErrReauthRequired matches a
// re-authentication error.
func (e *APIError) Is(target error) bool {
	return target == ErrReauthRequired && e.IsReauth()
}

// IsReauth reports whether e is Finch's signal that the employer must go
// through Finch Connect again: HTTP 401 with finch_code reauthenticate_user.
func (e *APIError) IsReauth() bool {
	return e != nil && e.StatusCode == http.StatusUnauthorized && e.FinchCode == finchCodeReauth
}

// errorBody is the JSON shape of a Finch error. Fields are decoded one by one
// and leniently: a field of the wrong JSON type is ignored rather than making
// the whole body unreadable.
type errorBody struct {
	Code      json.RawMessage `json:"code"`
	Name      json.RawMessage `json:"name"`
	FinchCode json.RawMessage `json:"finch_code"`
	Message   json.RawMessage `json:"message"`
}

// typedErrorBody is errorBody when every field has its JSON type, as in all
// of Finch's errors: decoded in one pass instead of one per field, which
// matters when thousands of callers see the same 401 at once.
type typedErrorBody struct {
	Code      json.Number `json:"code"`
	Name      string      `json:"name"`
	FinchCode string      `json:"finch_code"`
	Message   string      `json:"message"`
}

// parseErrorBody fills e from a JSON body. It reports whether body was a JSON
// object. Duplicate keys resolve as encoding/json resolves them: the last wins.
func (e *APIError) parseBody(body []byte) bool {
	typed, ok := scanErrorBody(body)
	if !ok {
		typed = typedErrorBody{}
		ok = json.Unmarshal(body, &typed) == nil
	}
	if ok {
		// Every field had its type: the field-by-field decoding below
		// would find the same.
		e.Name, e.FinchCode, e.Message = typed.Name, typed.FinchCode, typed.Message
		e.setCode(typed.Code)
		return true
	}
	var raw errorBody
	if err := json.Unmarshal(body, &raw); err != nil {
		return false
	}
	e.Name = jsonString(raw.Name)
	e.FinchCode = jsonString(raw.FinchCode)
	e.Message = jsonString(raw.Message)
	var code json.Number
	if json.Unmarshal(raw.Code, &code) == nil {
		e.setCode(code)
	}
	return true
}

func (e *APIError) setCode(code json.Number) {
	if n, err := code.Int64(); err == nil && n >= 0 && n < 1000 {
		e.Code = int(n)
	}
}

func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// ParseAPIError reads the error a Finch response carries. It returns nil for a
// response whose status is below 400: check for nil before using the result
// as an error, since a nil *APIError in an error interface is not a nil
// error.
//
// It reads at most 64 KiB of the body and then replaces resp.Body with a body
// that reads the very same bytes Finch sent (the part already read, then the
// rest) and whose Close closes the original, so the caller, or an SDK reading
// the response after it, sees the response unchanged. A body that is empty,
// not JSON, truncated or compressed with an encoding other than gzip or
// deflate yields an *APIError with only StatusCode and RequestID set.
func ParseAPIError(resp *http.Response) *APIError {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	e, body := peekAPIError(resp)
	resp.Body = body
	return e
}

// readPrefix is io.ReadAll(io.LimitReader(r, maxPeek)), with its buffer sized
// for a body of size bytes when that is known (size > 0; hand-made responses
// often leave a zero ContentLength on a body): a 401 then costs one small
// allocation instead of 512 bytes and a reader.
func readPrefix(r io.Reader, size int64) ([]byte, error) {
	c := int64(512)
	if size > 0 && size < maxPeek {
		c = size + 1 // room for the read that finds EOF
	}
	lr := io.LimitedReader{R: r, N: maxPeek}
	b := make([]byte, 0, c)
	for {
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// peekAPIError parses the error resp carries and returns it with a body that
// replays resp.Body. It modifies neither resp nor the headers.
func peekAPIError(resp *http.Response) (*APIError, io.ReadCloser) {
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("Finch-Request-Id")}
	if resp.Body == nil || resp.Body == http.NoBody {
		return e, resp.Body
	}
	prefix, readErr := readPrefix(resp.Body, resp.ContentLength)
	body := prefix
	if readErr == nil {
		body = decodeContent(resp.Header.Get("Content-Encoding"), prefix)
	}
	e.Body = body
	e.parseBody(body)
	return e, newReplayBody(prefix, readErr, resp.Body)
}

// decodeContent undoes a Content-Encoding that the caller asked for itself (Go's
// Transport removes the header when it decompressed the body on its own). It
// returns the decoded bytes, at most maxPeek of them, or nil when the encoding
// is unknown or the data is damaged.
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
	if err != nil {
		return nil
	}
	return out
}

// IsReauthResponse reports whether resp is Finch asking for re-authentication:
// HTTP 401 with finch_code reauthenticate_user. A response that went through a
// Transport carries a header saying so, which is checked first, so this works
// even after the body was read (as the official SDK does before it returns
// its error). Otherwise the body is examined as ParseAPIError does, and
// resp.Body is replaced by one that reads the same bytes.
func IsReauthResponse(resp *http.Response) bool {
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	switch resp.Header.Get(HeaderMark) {
	case MarkDetected, MarkLatched:
		return true
	}
	return ParseAPIError(resp).IsReauth()
}

// IsReauth reports whether err means that the employer must re-authenticate.
// It recognises an *APIError (errors.Is(err, ErrReauthRequired)) and the error
// type of the official Finch Go SDK, which exposes the response body through a
// RawJSON method and the *http.Response through a Response field:
//
//	_, err := client.HRIS.Directory.List(ctx, params)
//	if finchreauth.IsReauth(err) { ... }
//
// The SDK has read the body by the time it returns; a response that went
// through a Transport is recognised by the header the Transport sets on it,
// and any other by the JSON that RawJSON returns.
func IsReauth(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrReauthRequired) {
		return true
	}
	if IsReauthResponse(responseOf(err)) {
		return true
	}
	var raw interface{ RawJSON() string }
	if errors.As(err, &raw) {
		e := APIError{StatusCode: http.StatusUnauthorized}
		if e.parseBody([]byte(raw.RawJSON())) && e.FinchCode == finchCodeReauth && (e.Code == 0 || e.Code == http.StatusUnauthorized) {
			return true
		}
	}
	return false
}

// responseOf finds the first error in err's tree that is a pointer to a struct
// with a field Response of type *http.Response, as the official Finch SDK's
// error is, and returns that response.
func responseOf(err error) *http.Response {
	respType := reflect.TypeFor[*http.Response]()
	var walk func(error) *http.Response
	walk = func(err error) *http.Response {
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
					if resp := walk(e); resp != nil {
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
	return walk(err)
}

// HookError reports a failure of one of the hooks a Transport calls while it
// handles a detection (the /introspect call, the Store, the LinkBuilder, the
// Notifier). It reaches the application through Transport.ErrorHandler and
// never the caller of RoundTrip: the caller still gets Finch's 401.
//
// It names the token by its fingerprint, never by its value.
type HookError struct {
	Hook             string // "introspect", "store", "link" or "notify"
	ConnectionID     string // empty when /introspect did not answer
	TokenFingerprint string
	Panic            any   // the value the hook panicked with, if it panicked
	Err              error // the hook's error; context.DeadlineExceeded when it ran past its timeout
}

func (e *HookError) Error() string {
	who := e.ConnectionID
	if who == "" {
		who = "token " + e.TokenFingerprint
	}
	if e.Panic != nil {
		return fmt.Sprintf("finchreauth: %s hook for %s panicked: %v", e.Hook, who, e.Panic)
	}
	return fmt.Sprintf("finchreauth: %s hook for %s: %v", e.Hook, who, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }
