package module

import (
	"encoding/json"
	"net/http"
	"sync"
	"unicode/utf8"
)

// respPool holds the buffers answers are encoded into; w.Write copies them.
var respPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeJSON writes the answer of GET and PUT.
func writeJSON(w http.ResponseWriter, status int, v *statusBody) {
	buf := respPool.Get().(*[]byte)
	body, err := appendStatusBody((*buf)[:0], v)
	if err != nil {
		writeProblem(w, newProblem(probProviderErr, "the provider's answer could not be encoded"))
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if cap(body) <= 64<<10 {
		*buf = body
		respPool.Put(buf)
	}
}

// appendStatusBody appends v as JSON: what json.Marshal writes (but for HTML escaping, which
// a JSON API has no use for), with the credential's metadata appended as it is when an adapter
// passed it on as raw JSON (see provider.Projection), instead of validated and compacted again.
func appendStatusBody(dst []byte, v *statusBody) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, v.ID)
	dst = append(dst, `,"provider":`...)
	dst = appendString(dst, v.Provider)
	dst = append(dst, `,"adapter":`...)
	dst = appendString(dst, v.Adapter)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, string(v.Status))
	if v.Changed != nil {
		if *v.Changed {
			dst = append(dst, `,"changed":true`...)
		} else {
			dst = append(dst, `,"changed":false`...)
		}
	}
	if v.PendingStatus != "" {
		dst = append(dst, `,"pending_status":`...)
		dst = appendString(dst, string(v.PendingStatus))
	}
	if v.ProviderStatus != "" {
		dst = append(dst, `,"provider_status":`...)
		dst = appendString(dst, v.ProviderStatus)
	}
	if v.DryRun {
		dst = append(dst, `,"dry_run":true`...)
	}
	if v.Current != "" {
		dst = append(dst, `,"current":`...)
		dst = appendString(dst, string(v.Current))
	}
	if v.RequestedStatus != "" {
		dst = append(dst, `,"requested_status":`...)
		dst = appendString(dst, string(v.RequestedStatus))
	}
	if v.WouldChange != nil {
		if *v.WouldChange {
			dst = append(dst, `,"would_change":true`...)
		} else {
			dst = append(dst, `,"would_change":false`...)
		}
	}
	switch c := v.Credential.(type) {
	case nil:
	case json.RawMessage:
		if len(c) > 0 {
			dst = append(dst, `,"credential":`...)
			dst = append(dst, c...)
		}
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return dst, err
		}
		if string(b) != "null" {
			dst = append(dst, `,"credential":`...)
			dst = append(dst, b...)
		}
	}
	return append(dst, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // as encoding/json: valid JSON, but not JavaScript
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
