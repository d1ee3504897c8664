package digicert

import (
	"encoding/json"
	"errors"
)

// errNotObject is the cause of a Malformed answer that is not one JSON object.
var errNotObject = errors.New("not a JSON object")

// members calls fn with each member of the JSON object in data: its key, unescaped, and its
// value as raw JSON. It checks first that data is one valid JSON value (json.Valid, which does
// not allocate) and that it is an object; then it walks the members without decoding them.
// The slices it passes alias data.
func members(data []byte, fn func(key, value []byte)) error {
	if !json.Valid(data) {
		return errNotObject
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return nil
	}
	for {
		end := skipString(data, i) // data is valid: a key is a string
		key := data[i+1 : end-1]
		if hasEscape(key) {
			var k string
			_ = json.Unmarshal(data[i:end], &k)
			key = []byte(k)
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the ':'
		vend := skipValue(data, i)
		fn(key, data[i:vend])
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // the ','
	}
}

// projection copies chosen members of a vendor's JSON object into a new object, under new
// names: the non-secret metadata of a credential, passed on without being decoded. A member
// it does not name is left out, so that a secret the vendor sends along cannot be copied by
// accident.
type projection struct {
	names map[string]string // the vendor's name -> the gateway's (snake_case) name, quoted
}

// newProjection returns the projection of pairs of names: the vendor's, then the gateway's.
func newProjection(pairs ...string) *projection {
	p := &projection{names: make(map[string]string, len(pairs)/2)}
	for i := 0; i+1 < len(pairs); i += 2 {
		q, _ := json.Marshal(pairs[i+1])
		p.names[pairs[i]] = string(q)
	}
	return p
}

// Append adds the member key: value to the object being built in dst (started with '{' by the
// caller, ended with EndObject) when the projection names key; a JSON null is left out.
func (p *projection) Append(dst, key, value []byte) []byte {
	name, ok := p.names[string(key)]
	if !ok || string(value) == "null" {
		return dst
	}
	if len(dst) > 1 {
		dst = append(dst, ',')
	}
	dst = append(dst, name...)
	dst = append(dst, ':')
	return append(dst, value...)
}

// endObject closes an object built with Append; an object with no member is nil, so that an
// omitempty field leaves it out.
func endObject(dst []byte) json.RawMessage {
	if len(dst) <= 1 {
		return nil
	}
	return append(dst, '}')
}

// stringValue returns the text of a raw JSON string value, and whether it is one. A string
// without escapes is returned without allocating when the caller converts it in a switch or
// comparison.
func stringValue(value []byte) ([]byte, bool) {
	if len(value) < 2 || value[0] != '"' {
		return nil, false
	}
	inner := value[1 : len(value)-1]
	if !hasEscape(inner) {
		return inner, true
	}
	var s string
	if json.Unmarshal(value, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// hasEscape reports whether a JSON string's inner bytes need decoding: an escape, or a byte
// outside ASCII (encoding/json replaces invalid UTF-8; decoding keeps it alike).
func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the JSON string that starts at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the offset just past the JSON value that starts at b[i]; b is valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}
