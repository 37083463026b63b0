package finchreauth

import (
	"bytes"
	"encoding/json"
)

// scanErrorBody decodes the common shape of a Finch error without
// encoding/json: a flat JSON object whose values are strings free of escapes
// and non-ASCII bytes, numbers, true, false or null, whose keys are plain
// ASCII, and whose code, name, finch_code and message, when present, have
// their JSON types (or are null). On such a body it returns what
// json.Unmarshal into typedErrorBody returns, and ok; on anything else it
// returns ok false and the caller decodes the body with encoding/json.
//
// It exists for the detection storm: when Finch refuses thousands of calls
// at once, each caller classifies its own 401, and encoding/json's
// reflection and deep call stacks (which grow every fresh goroutine's stack)
// would cost more than everything else the Transport does.
func scanErrorBody(body []byte) (out typedErrorBody, ok bool) {
	s := scanner{b: body}
	s.space()
	if s.next() != '{' {
		return out, false
	}
	s.space()
	if s.peek() == '}' {
		s.i++
		return out, s.end()
	}
	for {
		s.space()
		key, ok := s.plainString()
		if !ok {
			return out, false
		}
		s.space()
		if s.next() != ':' {
			return out, false
		}
		s.space()
		// encoding/json matches keys to fields without regard to ASCII case.
		var field *string
		isCode := false
		switch {
		case bytes.EqualFold(key, keyCode):
			isCode = true
		case bytes.EqualFold(key, keyName):
			field = &out.Name
		case bytes.EqualFold(key, keyFinchCode):
			field = &out.FinchCode
		case bytes.EqualFold(key, keyMessage):
			field = &out.Message
		}
		switch c := s.peek(); {
		case c == '"':
			v, ok := s.plainString()
			if !ok || isCode {
				// A quoted code is for encoding/json to judge.
				return out, false
			}
			if field != nil {
				*field = string(v)
			}
		case c == '-' || c >= '0' && c <= '9':
			v, ok := s.number(isCode)
			if !ok || field != nil {
				return out, false
			}
			if isCode {
				out.Code = json.Number(v)
			}
		case s.literal("null"):
			// null leaves a field as it was, as encoding/json does.
		case s.literal("true"), s.literal("false"):
			if field != nil || isCode {
				return out, false
			}
		default:
			return out, false
		}
		s.space()
		switch s.next() {
		case ',':
			continue
		case '}':
			return out, s.end()
		}
		return out, false
	}
}

var (
	keyCode      = []byte("code")
	keyName      = []byte("name")
	keyFinchCode = []byte("finch_code")
	keyMessage   = []byte("message")
)

type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) next() byte {
	c := s.peek()
	s.i++
	return c
}

func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// end reports whether only whitespace follows.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// plainString reads a string of printable ASCII without escapes and returns
// its contents, which alias the body.
func (s *scanner) plainString() ([]byte, bool) {
	if s.next() != '"' {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// literal consumes word if it comes next.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number reads a JSON number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// and returns it if keep is set, or "".
func (s *scanner) number(keep bool) (string, bool) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return "", false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return "", false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return "", false
		}
	}
	if !keep {
		return "", true
	}
	return string(s.b[start:s.i]), true
}

// digits consumes one or more digits and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
