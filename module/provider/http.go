package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// UserAgent is sent on every call to a provider.
const UserAgent = "credgate"

// Endpoint is a vendor's origin and the headers every call to it carries (Accept,
// User-Agent and the adapter's authentication). Built once per client, it builds each call
// without parsing a URL or making a header: the same header map serves every call, which the
// http.RoundTripper contract allows (a transport never changes a request).
type Endpoint struct {
	base     url.URL
	baseErr  error
	header   http.Header // for calls without a body
	withBody http.Header // the same with Content-Type: application/json
}

// NewEndpoint returns the endpoint of a vendor origin (scheme, host, optional port and path
// prefix, no trailing slash), whose calls carry the given headers in addition to Accept and
// User-Agent: pairs of names (canonical, such as "Authorization") and values. The header
// values are secrets; they go to the vendor and nowhere else.
func NewEndpoint(baseURL string, header ...string) *Endpoint {
	e := &Endpoint{header: http.Header{"Accept": {"application/json"}, "User-Agent": {UserAgent}}}
	for i := 0; i+1 < len(header); i += 2 {
		e.header[header[i]] = []string{header[i+1]}
	}
	e.withBody = e.header.Clone()
	e.withBody["Content-Type"] = []string{"application/json"}
	if u, err := url.Parse(baseURL); err != nil {
		e.baseErr = err
	} else {
		e.base = *u
	}
	return e
}

// Request builds a call of method to path, which the endpoint's origin prefixes: the vendor's
// documented path with every ID already through url.PathEscape. body, when not nil, is sent
// as JSON.
func (e *Endpoint) Request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	if e.baseErr != nil {
		return nil, &Error{Kind: KindUpstream, Detail: "cannot build the provider request", Err: e.baseErr}
	}
	u := new(url.URL)
	*u = e.base
	if e.base.RawPath == "" && strings.IndexByte(path, '%') < 0 {
		u.Path = e.base.Path + path // nothing escaped: the path is its own escaped form
	} else {
		u.RawPath = e.base.EscapedPath() + path
		p, err := url.PathUnescape(u.RawPath)
		if err != nil {
			return nil, &Error{Kind: KindUpstream, Detail: "cannot build the provider request", Err: err}
		}
		u.Path = p
	}
	req := &http.Request{
		Method: method, URL: u, Host: u.Host, Header: e.header,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, &Error{Kind: KindUpstream, Detail: "cannot build the provider request", Err: err}
		}
		req.Header = e.withBody
		req.ContentLength = int64(len(buf))
		req.Body = io.NopCloser(bytes.NewReader(buf))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	}
	return req.WithContext(ctx), nil
}

// NewRequest builds one call to a vendor URL, for a call an adapter makes too seldom to keep an
// Endpoint for it; it sets Accept, User-Agent and, with a body, Content-Type.
func NewRequest(ctx context.Context, method, rawURL string, body any) (*http.Request, error) {
	return NewEndpoint(rawURL).Request(ctx, method, "", body)
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
