package credentialstatus

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider"
)

// Fuzz targets of the request decoding: the credential ID taken from the escaped path, and the
// PUT body with its Idempotency-Key. `make fuzz` runs them; the seeds below and those in
// testdata/fuzz/<FuzzName>/ run with every `go test`.

// FuzzCredentialID feeds credentialID escaped paths: the fuzzed text as a whole path, and as
// the segment of /credentials/{seg}/status. Each is parsed as the server parses a request
// target, so that Path and RawPath are consistent.
//
// Invariants: ours is true exactly when the escaped path has the /credentials/.../status
// shape; an accepted ID is 1 to 256 bytes of 0x21-0x7E, no '/', not "." or ".."; the answer
// agrees with an independent reading of the API's rule (one segment, percent-decoded, valid);
// and an accepted ID, escaped again, reads back as itself.
func FuzzCredentialID(f *testing.F) {
	for _, seed := range []string{
		"12345",
		"ce4918bf-a199-4ce2-85a3-d0d296855384",
		"cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890",
		"013xrzp12g3nqk8n7f8f9jbg8d18q7tm",
		"/credentials/12345/status",
		"/credentials//status",
		"/credentials/status",
		"/credentials/a/b/status",
		"/credentials/a%2Fb/status",
		"/credentials/%2E%2E/status",
		"/credentials/%zz/status",
		"/credentials/%C3%A9/status",
		"/credentials/12345/status?provider=p",
		"a%2Fb",
		"%2e",
		"..",
		".",
		"%00",
		"%7F",
		"%",
		"~!$&'()*+,;=:@",
		"é",
		strings.Repeat("a", 256),
		strings.Repeat("%41", 257),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkCredentialID(t, in)
		checkCredentialID(t, pathPrefix+in+pathSuffix)
	})
}

func checkCredentialID(t *testing.T, target string) {
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return // not a request target the server would hand the handler as a path
	}
	id, ours, idErr := credentialID(u)

	p := u.EscapedPath()
	shape := len(p) >= len(pathPrefix)+len(pathSuffix) && strings.HasPrefix(p, pathPrefix) && strings.HasSuffix(p, pathSuffix)
	if ours != shape {
		t.Fatalf("escaped path %q: ours = %v, want %v", p, ours, shape)
	}
	if !ours {
		if id != "" || idErr != nil {
			t.Fatalf("escaped path %q is not ours, yet id %q, err %v", p, id, idErr)
		}
		return
	}

	// The rule, read independently: one segment of the escaped path, percent-decoded, valid.
	seg := p[len(pathPrefix) : len(p)-len(pathSuffix)]
	want, uerr := url.PathUnescape(seg)
	valid := !strings.Contains(seg, "/") && uerr == nil && validIDBytes(want)
	if (idErr == nil) != valid {
		t.Fatalf("escaped path %q: err = %v, want valid = %v", p, idErr, valid)
	}
	if idErr != nil {
		if id != "" {
			t.Fatalf("escaped path %q: error %v with id %q", p, idErr, id)
		}
		if idErr.Error() == "" {
			t.Fatalf("escaped path %q: empty error text", p)
		}
		return
	}
	if id != want {
		t.Fatalf("escaped path %q: id %q, want %q", p, id, want)
	}
	if !validIDBytes(id) {
		t.Fatalf("escaped path %q: accepted invalid id %q", p, id)
	}

	// Round trip: the ID escaped as a client would escape it reads back as itself.
	again, err := url.ParseRequestURI(pathPrefix + url.PathEscape(id) + pathSuffix)
	if err != nil {
		t.Fatalf("id %q escaped does not parse: %v", id, err)
	}
	id2, ours2, err2 := credentialID(again)
	if !ours2 || err2 != nil || id2 != id {
		t.Fatalf("id %q escaped as %q reads back as %q, %v, %v", id, again.EscapedPath(), id2, ours2, err2)
	}
}

// validIDBytes is the API's rule for an ID, written out again: 1 to 256 bytes of 0x21-0x7E,
// no '/', not "." or "..".
func validIDBytes(id string) bool {
	if len(id) < 1 || len(id) > 256 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e || id[i] == '/' {
			return false
		}
	}
	return true
}

// FuzzChangeBody feeds parseChange a fuzzed body and Idempotency-Key header (sent keys times:
// 0, 1 or 2).
//
// Invariants: it never panics; a refusal is a *Problem of status 400 (invalid-request) or 422
// (unsupported-status) with a title and a non-empty detail; an acceptance has a valid status,
// a reason of at most 1024 bytes, a key of 0 to 64 printable ASCII bytes that is the header's
// value, an expiry only with active and in the future; the body it accepted is one JSON object
// that the plain decoder reads the same way.
func FuzzChangeBody(f *testing.F) {
	for _, seed := range []struct {
		body string
		key  string
		keys uint8
	}{
		{`{"status":"inactive"}`, "", 0},
		{`{"status":"inactive","reason":"leaked in INC-42"}`, "INC-42-revoke", 1},
		{`{"status":"revoked","provider":"tokens"}`, "INC-42-revoke", 1},
		{`{"status":"active","expires_at":"2099-06-30T00:00:00Z"}`, "", 0},
		{`{"status":"active","expires_at":"2001-01-01T00:00:00Z"}`, "", 0},
		{`{"status":"inactive","expires_at":"2099-01-01T00:00:00+02:00"}`, "", 0},
		{`{"status":"active","expires_at":"tomorrow"}`, "", 0},
		{`{"status":"off"}`, "", 0},
		{`{"status":"unknown"}`, "", 0},
		{`{"status":1}`, "", 0},
		{`{"status":null}`, "", 0},
		{`{"reason":"x"}`, "", 0},
		{`{"status":"active","enabled":true}`, "", 0},
		{`{"status":"active"} {}`, "", 0},
		{`["active"]`, "", 0},
		{`"active"`, "", 0},
		{`{"status":`, "", 0},
		{` `, "", 0},
		{``, "", 0},
		{`{"status":"active","reason":"` + strings.Repeat("r", 1025) + `"}`, "", 0},
		{`{"status":"active"}`, "", 1},
		{`{"status":"active"}`, strings.Repeat("k", 65), 1},
		{`{"status":"active"}`, "a\tb", 1},
		{`{"status":"active"}`, "k", 2},
		{`{"status":"active","reason":"\u00e9\ud83d\ude00"}`, "é", 1},
		{`{"status":"active","provider":1e999}`, "", 0},
	} {
		f.Add([]byte(seed.body), seed.key, seed.keys)
	}
	f.Fuzz(func(t *testing.T, body []byte, key string, keys uint8) {
		keys %= 3
		r := httptest.NewRequest(http.MethodPut, "/credentials/12345/status", nil)
		for i := uint8(0); i < keys; i++ {
			r.Header["Idempotency-Key"] = append(r.Header["Idempotency-Key"], key)
		}
		before := time.Now()
		c, p := parseChange(r, body)

		if p != nil {
			switch {
			case p.Status == http.StatusBadRequest && p.Type == ProblemTypePrefix+probInvalid.Suffix:
			case p.Status == http.StatusUnprocessableEntity && p.Type == ProblemTypePrefix+probUnsupported.Suffix:
			default:
				t.Fatalf("refusal %d %s, want 400 invalid-request or 422 unsupported-status", p.Status, p.Type)
			}
			if p.Title == "" || strings.TrimSpace(p.Detail) == "" {
				t.Fatalf("refusal without title or detail: %+v", p)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("problem does not encode: %v", err)
			}
			return
		}

		if keys == 2 {
			t.Fatalf("two Idempotency-Key headers accepted")
		}
		if !c.status.Valid() {
			t.Fatalf("accepted status %q", c.status)
		}
		if len(c.reason) > MaxReasonLength {
			t.Fatalf("accepted a reason of %d bytes", len(c.reason))
		}
		if len(c.key) > MaxIdempotencyKeyLength {
			t.Fatalf("accepted a key of %d bytes", len(c.key))
		}
		for i := 0; i < len(c.key); i++ {
			if c.key[i] < 0x20 || c.key[i] > 0x7e {
				t.Fatalf("accepted key %q: byte %d is 0x%02x", c.key, i, c.key[i])
			}
		}
		switch keys {
		case 0:
			if c.key != "" {
				t.Fatalf("key %q without a header", c.key)
			}
		case 1:
			if c.key != key || c.key == "" {
				t.Fatalf("key %q, header %q", c.key, key)
			}
		}
		if !c.expiresAt.IsZero() {
			if c.status != provider.StatusActive {
				t.Fatalf("expires_at accepted with status %q", c.status)
			}
			if !c.expiresAt.After(before) {
				t.Fatalf("expires_at %v accepted, not in the future", c.expiresAt)
			}
			if c.expiresAt.Location() != time.UTC {
				t.Fatalf("expires_at %v is not UTC", c.expiresAt)
			}
		}

		// What was accepted is one JSON object, which the plain decoder reads alike.
		trimmed := strings.TrimSpace(string(body))
		if !strings.HasPrefix(trimmed, "{") || !json.Valid(body) {
			t.Fatalf("accepted a body that is not one JSON object: %q", body)
		}
		var b changeBody
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("accepted a body the plain decoder refuses: %v", err)
		}
		if b.Status != c.status || b.Provider != c.hint || b.Reason != c.reason {
			t.Fatalf("decoded %+v, accepted %+v", b, c)
		}
		if (b.ExpiresAt == "") != c.expiresAt.IsZero() {
			t.Fatalf("expires_at %q read as %v", b.ExpiresAt, c.expiresAt)
		}
	})
}
