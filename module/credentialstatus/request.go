package credentialstatus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/internal/flatjson"
	"github.com/credgate/credgate/module/provider"
)

const (
	pathPrefix = "/credentials/"
	pathSuffix = "/status"

	// MaxIDLength is the longest credential ID, in bytes.
	MaxIDLength = 256
	// MaxReasonLength is the longest reason, in bytes.
	MaxReasonLength = 1024
	// MaxIdempotencyKeyLength is the longest Idempotency-Key, in bytes.
	MaxIdempotencyKeyLength = 64
	// DefaultMaxBody is the default limit of a request body.
	DefaultMaxBody = 64 << 10
)

// credentialID extracts the ID from a path of the form /credentials/{id}/status. ours is false
// when the path has another form, and the request belongs to the next handler. The ID is the
// one segment of the escaped path between the prefix and the suffix, percent-decoded; err
// says why it is not a valid ID (1 to 256 bytes of visible ASCII, no '/', not '.' or '..').
func credentialID(u *url.URL) (id string, ours bool, err error) {
	p := u.EscapedPath()
	if len(p) < len(pathPrefix)+len(pathSuffix) || !strings.HasPrefix(p, pathPrefix) || !strings.HasSuffix(p, pathSuffix) {
		return "", false, nil
	}
	seg := p[len(pathPrefix) : len(p)-len(pathSuffix)]
	if strings.IndexByte(seg, '/') >= 0 {
		return "", true, errors.New("the credential ID must be one path segment; escape '/' as %2F")
	}
	if strings.IndexByte(seg, '%') >= 0 {
		if seg, err = url.PathUnescape(seg); err != nil {
			return "", true, errors.New("the credential ID has a malformed percent-escape")
		}
	}
	if err := validateID(seg); err != nil {
		return "", true, err
	}
	return seg, true, nil
}

// validateID checks the API's rules for a credential ID.
func validateID(id string) error {
	if id == "" {
		return errors.New("the credential ID is empty")
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("the credential ID is longer than %d bytes", MaxIDLength)
	}
	if id == "." || id == ".." {
		return errors.New("the credential ID cannot be '.' or '..'")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == '/' {
			return fmt.Errorf("the credential ID may hold only visible ASCII other than '/' (byte %d is 0x%02x)", i, c)
		}
	}
	return nil
}

// changeBody is the body of PUT /credentials/{id}/status, as JSON. parseChange reads it with
// flatjson.ReadObject, stricter than encoding/json; the type documents the shape.
type changeBody struct {
	Status    provider.Status `json:"status"`
	Provider  string          `json:"provider,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	ExpiresAt string          `json:"expires_at,omitempty"`
}

// changeRequest is a validated change.
type changeRequest struct {
	status    provider.Status
	hint      string
	reason    string
	expiresAt time.Time
	key       string
}

// checkJSONContentType accepts application/json and any application/*+json type.
func checkJSONContentType(r *http.Request) *Problem {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return nil // the common case, without ParseMediaType's map
	}
	if ct == "" {
		return newProblem(probMediaType, "the request body must be JSON: send Content-Type: application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return newProblem(probMediaType, "the request body must be JSON: send Content-Type: application/json")
	}
	return nil
}

// bodyPool holds the buffers that request bodies are read into: a body is parsed and
// dropped before its request ends, and nothing keeps a reference to its bytes.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readBody reads the whole request body, at most max bytes, into a buffer of bodyPool. The
// caller gives the buffer back with putBody once it is done with the bytes.
func readBody(r *http.Request, max int64) (*[]byte, *Problem) {
	if r.ContentLength > max {
		return nil, newProblem(probTooLarge, fmt.Sprintf("the request body is larger than %d bytes", max))
	}
	buf := bodyPool.Get().(*[]byte)
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > max {
			*buf = b
			putBody(buf)
			return nil, newProblem(probTooLarge, fmt.Sprintf("the request body is larger than %d bytes", max))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			*buf = b
			putBody(buf)
			return nil, newProblem(probInvalid, "the request body could not be read")
		}
	}
	*buf = b
	return buf, nil
}

// putBody gives a buffer of readBody back to the pool, unless it grew large: one big body
// must not pin its memory for good.
func putBody(buf *[]byte) {
	if cap(*buf) <= 64<<10 {
		bodyPool.Put(buf)
	}
}

// changeFields are the members of a PUT body, in the order of flatjson.ReadObject's values.
var changeFields = []string{"status", "provider", "reason", "expires_at"}

// parseChange validates a PUT request: its body (see changeBody; keys exact and once each,
// nothing after the object) and its Idempotency-Key header.
func parseChange(r *http.Request, body []byte) (changeRequest, *Problem) {
	if len(bytes.TrimSpace(body)) == 0 {
		return changeRequest{}, newProblem(probInvalid, "the request body is empty")
	}
	var vals [4][]byte
	end, err := flatjson.ReadObject(body, changeFields, vals[:])
	if err == nil && len(bytes.TrimSpace(body[end:])) > 0 {
		err = errors.New("unexpected data after the JSON object")
	}
	if err != nil {
		return changeRequest{}, newProblem(probInvalid, "malformed JSON: "+err.Error())
	}
	c, p := changeFromValues(vals[0], vals[1], vals[2], vals[3])
	if p != nil {
		return c, p
	}
	key, p := idempotencyKey(r)
	if p != nil {
		return c, p
	}
	c.key = key
	return c, nil
}

// changeFromValues validates the members of a change, as flatjson.ReadObject gave them (nil: absent).
func changeFromValues(status, hint, reason, expiresAt []byte) (changeRequest, *Problem) {
	var c changeRequest
	switch string(status) {
	case "active":
		c.status = provider.StatusActive
	case "inactive":
		c.status = provider.StatusInactive
	case "revoked":
		c.status = provider.StatusRevoked
	case "":
		return c, newProblem(probInvalid, "status is required: active, inactive or revoked")
	default:
		return c, newProblem(probInvalid, "status must be active, inactive or revoked")
	}
	if hint != nil {
		c.hint = string(hint)
	}
	if len(reason) > MaxReasonLength {
		return c, newProblem(probInvalid, fmt.Sprintf("reason is longer than %d bytes", MaxReasonLength))
	}
	if reason != nil {
		c.reason = string(reason)
	}
	if len(expiresAt) > 0 {
		t, err := time.Parse(time.RFC3339, string(expiresAt))
		if err != nil {
			return c, newProblem(probInvalid, "expires_at must be an RFC 3339 time, such as 2027-01-01T00:00:00Z")
		}
		if c.status != provider.StatusActive {
			return c, newProblem(probUnsupported, "expires_at goes only with status active")
		}
		if !t.After(time.Now()) {
			return c, newProblem(probUnsupported, "expires_at must be in the future")
		}
		c.expiresAt = t.UTC()
	}
	return c, nil
}

// idempotencyKey returns the request's Idempotency-Key: 1 to 64 bytes of printable ASCII.
func idempotencyKey(r *http.Request) (string, *Problem) {
	vals := r.Header.Values("Idempotency-Key")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", newProblem(probInvalid, "send one Idempotency-Key header")
	}
	k := vals[0]
	if k == "" || len(k) > MaxIdempotencyKeyLength {
		return "", newProblem(probInvalid, fmt.Sprintf("Idempotency-Key must be 1 to %d characters", MaxIdempotencyKeyLength))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", newProblem(probInvalid, "Idempotency-Key must be printable ASCII")
		}
	}
	return k, nil
}
