package credentialstatus

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/credgate/credgate/module/internal/flatjson"
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
// passed it on as raw JSON (the DigiCert adapter projects its answer so), instead of validated and compacted again.
func appendStatusBody(dst []byte, v *statusBody) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = flatjson.AppendString(dst, v.ID)
	dst = append(dst, `,"provider":`...)
	dst = flatjson.AppendString(dst, v.Provider)
	dst = append(dst, `,"adapter":`...)
	dst = flatjson.AppendString(dst, v.Adapter)
	dst = append(dst, `,"status":`...)
	dst = flatjson.AppendString(dst, string(v.Status))
	if v.Changed != nil {
		if v.Changed == changedUnknown {
			dst = append(dst, `,"changed":null`...)
		} else if *v.Changed {
			dst = append(dst, `,"changed":true`...)
		} else {
			dst = append(dst, `,"changed":false`...)
		}
	}
	if v.PendingStatus != "" {
		dst = append(dst, `,"pending_status":`...)
		dst = flatjson.AppendString(dst, string(v.PendingStatus))
	}
	if v.ProviderStatus != "" {
		dst = append(dst, `,"provider_status":`...)
		dst = flatjson.AppendString(dst, v.ProviderStatus)
	}
	if v.DryRun {
		dst = append(dst, `,"dry_run":true`...)
	}
	if v.Current != "" {
		dst = append(dst, `,"current":`...)
		dst = flatjson.AppendString(dst, string(v.Current))
	}
	if v.RequestedStatus != "" {
		dst = append(dst, `,"requested_status":`...)
		dst = flatjson.AppendString(dst, string(v.RequestedStatus))
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
