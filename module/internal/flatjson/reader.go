// Package flatjson reads and writes the small JSON objects of the gateway's hot path without
// reflection: a strict reader of flat objects of strings (the PUT and batch item bodies) and
// appending writers (the answers). The handler's tests check both against encoding/json.
package flatjson

import (
	"encoding/json"
	"errors"
	"fmt"
)

// maxEcho is the most bytes of an unknown member's name that an error repeats.
const maxEcho = 256

// ReadObject decodes a JSON object whose members are all strings (or null, read as absent).
// Each key must be one of names, spelled exactly (encoding/json would take "STATUS" for
// "status") and given at most once (encoding/json would keep the last of two): a kill switch
// must not mean one thing to a proxy that reads the first key and another to the gateway.
//
// vals[i] receives the value of the member named names[i], unescaped; it stays nil when the
// member is absent or null. A value that needs no unescaping is a sub-slice of data. It
// returns the offset just past the object, so that a caller can read further.
func ReadObject(data []byte, names []string, vals [][]byte) (int, error) {
	s := scanner{b: data}
	s.space()
	if !s.take('{') {
		return 0, errors.New("the body must be a JSON object")
	}
	s.space()
	if s.take('}') {
		return s.i, nil
	}
	var seen uint32
	for {
		s.space()
		if s.peek() != '"' {
			return 0, s.errorf("expected a member name")
		}
		key, err := s.str()
		if err != nil {
			return 0, err
		}
		field := -1
		for i, n := range names {
			if string(key) == n {
				field = i
				break
			}
		}
		if field < 0 {
			if len(key) > maxEcho {
				key = append(key[:maxEcho:maxEcho], "..."...)
			}
			return 0, fmt.Errorf("unknown field %q", key)
		}
		if seen&(1<<field) != 0 {
			return 0, fmt.Errorf("field %q appears twice", names[field])
		}
		seen |= 1 << field
		s.space()
		if !s.take(':') {
			return 0, s.errorf("expected ':' after %q", names[field])
		}
		s.space()
		switch s.peek() {
		case '"':
			if vals[field], err = s.str(); err != nil {
				return 0, err
			}
		case 'n':
			if !s.literal("null") {
				return 0, fmt.Errorf("%s must be a string", names[field])
			}
		default:
			return 0, fmt.Errorf("%s must be a string", names[field])
		}
		s.space()
		if s.take(',') {
			continue
		}
		if s.take('}') {
			return s.i, nil
		}
		return 0, s.errorf("expected ',' or '}'")
	}
}

// scanner reads JSON tokens from b, from offset i on.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) take(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *scanner) errorf(format string, args ...any) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("unexpected end of JSON input")
	}
	return fmt.Errorf(format+" at offset %d", append(args, s.i)...)
}

// str reads a JSON string at s.i. Plain printable ASCII without escapes, the common case, is
// returned as a sub-slice; anything else is unescaped by encoding/json, which also checks the
// escapes and replaces invalid UTF-8.
func (s *scanner) str() ([]byte, error) {
	start := s.i + 1
	plain := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			if plain {
				return s.b[start:j], nil
			}
			var out string
			if err := json.Unmarshal(s.b[start-1:j+1], &out); err != nil {
				return nil, errors.New("malformed string")
			}
			return []byte(out), nil
		case c == '\\':
			plain = false
			j++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, errors.New("control character in a string")
		case c >= 0x80:
			plain = false
		}
	}
	s.i = len(s.b)
	return nil, errors.New("unexpected end of JSON input")
}
