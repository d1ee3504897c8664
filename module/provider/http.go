package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
)

// UserAgent is sent on every call to a provider.
const UserAgent = "credgate"

// NewRequest builds a call to a vendor: body, when not nil, is sent as JSON. It sets Accept,
// Content-Type and User-Agent; the adapter adds its authentication header.
func NewRequest(ctx context.Context, method, url string, body any) (*http.Request, error) {
	var req *http.Request
	var err error
	if body == nil {
		req, err = http.NewRequestWithContext(ctx, method, url, nil)
	} else {
		var buf []byte
		if buf, err = json.Marshal(body); err != nil {
			return nil, err
		}
		req, err = http.NewRequestWithContext(ctx, method, url, bytes.NewReader(buf))
		if err == nil {
			req.Header["Content-Type"] = []string{"application/json"}
		}
	}
	if err != nil {
		return nil, &Error{Kind: KindUpstream, Detail: "cannot build the provider request", Err: err}
	}
	req.Header["Accept"] = []string{"application/json"}
	req.Header["User-Agent"] = []string{UserAgent}
	return req, nil
}

// DecodeJSON decodes a vendor answer into v; a body that is not the documented JSON is a
// malformed answer (a provider failure). Unknown fields are ignored: vendors add fields.
func DecodeJSON(resp *Response, what string, v any) error {
	if len(bytes.TrimSpace(resp.Body)) == 0 {
		return Malformed(resp.StatusCode, what+": empty body", nil)
	}
	if err := json.Unmarshal(resp.Body, v); err != nil {
		return Malformed(resp.StatusCode, what, err)
	}
	return nil
}

// Scalar holds a JSON string, number or boolean as the vendor sent it, for metadata fields
// whose type a vendor documents loosely (an ID that is a number on one page and a string on
// another). Anything else (an object, an array, null) is dropped, and marshals as null;
// use it with omitempty.
type Scalar []byte

// UnmarshalJSON keeps a scalar and drops anything else.
func (s *Scalar) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '{', '[', 'n':
		*s = nil
	default:
		*s = append((*s)[:0], b...)
	}
	return nil
}

// MarshalJSON writes the value as it came.
func (s Scalar) MarshalJSON() ([]byte, error) {
	if len(s) == 0 {
		return []byte("null"), nil
	}
	return s, nil
}

// String returns a string scalar's text, or the literal of a number or boolean.
func (s Scalar) String() string {
	if len(s) > 0 && s[0] == '"' {
		var out string
		if json.Unmarshal(s, &out) == nil {
			return out
		}
	}
	return string(s)
}
