package zstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider"
)

// Fuzz targets of the ZStack answer decoders: every answer is served in memory (no network)
// with a fuzzed status and body. `make fuzz` runs them; the seeds below and those in
// testdata/fuzz/<FuzzName>/ run with every `go test`.

// fuzzCredID is the credential every fuzzed call asks for.
const fuzzCredID = "cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890"

// fuzzNow is the client's clock in every fuzzed call, so that a run does not depend on the day.
var fuzzNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fuzzCredential is a credential as the vendor page shows it, with the given expiry member
// (empty: none).
func fuzzCredential(expiresAt string) string {
	if expiresAt != "" {
		expiresAt = `"expiresAt": ` + expiresAt + `,`
	}
	return `{"uuid": "cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890", "name": "prod-db-password",
		"description": "Primary database password for production environment", "type": "CREDENTIAL_TYPE_PASSWORD",
		"healthStatus": "CREDENTIAL_HEALTH_STATUS_HEALTHY", ` + expiresAt + ` "createdBy": "admin@example.com",
		"createDate": "2026-01-15T08:00:00Z", "lastOpDate": "2026-01-15T08:00:00Z"}`
}

// Real answers and error shapes, from the vendor page and PROVIDERS.md, and their variations.
var fuzzAnswers = []struct {
	status int
	body   string
}{
	// The page's own response example: enums as {}, timestamps as "example".
	{200, `{"uuid": "cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890", "name": "prod-db-password", "description": "Primary database password for production environment", "type": {}, "healthStatus": {}, "expiresAt": "example", "createdBy": "admin@example.com", "createDate": "example"}`},
	{200, fuzzCredential(`"2027-06-30T00:00:00Z"`)},
	{200, fuzzCredential(`"2026-01-15T08:00:00Z"`)},
	{200, fuzzCredential(`"2026-11-23T12:00:00Z"`)},
	{200, fuzzCredential(`"2026-11-23T12:00:00.000000001+00:00"`)},
	{200, fuzzCredential(`"2026-11-23T13:00:00+01:00"`)},
	{200, fuzzCredential(`""`)},
	{200, fuzzCredential(`null`)},
	{200, fuzzCredential(``)},
	{200, fuzzCredential(`1798675200`)},
	{200, fuzzCredential(`"99999-01-01T00:00:00Z"`)},
	{200, fuzzCredential(`"2026-02-30T00:00:00Z"`)},
	{200, `{"uuid": 7, "name": ["x"], "healthStatus": "CREDENTIAL_HEALTH_STATUS_EXPIRED", "expiresAt": "2001-01-01T00:00:00Z", "value": "s3cr3t"}`},
	{200, `{"name": "\u00e9\ud83d\ude00\ud800", "expiresAt": "\u0032026-01-01T00:00:00Z"}`},
	{200, `{"uuid": "cred-`},
	{200, `[]`},
	{200, `"text"`},
	{200, ``},
	{204, ``},
	{201, fuzzCredential(`"2027-06-30T00:00:00Z"`)},
	{400, `{"error": {"code": "SYS.1001", "description": "invalid argument", "details": "expiresAt must be a time"}}`},
	{401, `{"error": {"code": "ID.1001", "description": "unauthorized", "details": "bad token"}}`},
	{403, `{"error": {"code": "ID.1003", "description": "forbidden"}}`},
	{404, `{"error": {"code": "SYS.1004", "description": "credential not found"}}`},
	{409, `{"error": {"code": "SYS 1009 conflict", "description": "x"}}`},
	{412, `{"error": "precondition failed"}`},
	{422, `{"error": {"code": 1001}}`},
	{404, `<html>nope</html>`},
}

// fuzzErrorAt matches the start of ZStack's error object.
var fuzzErrorAt = regexp.MustCompile(`"error"\s*:\s*\{`)

// fuzzAnswer plants secrets in a fuzzed answer: the stored value (ZStack does not send it; the
// adapter must drop it should it come), and the gateway's bearer token echoed in the error's
// free text.
func fuzzAnswer(body []byte, token, value string) []byte {
	body = fuzzPlant(body, fuzzErrorAt, "description", "token "+token+" refused", "details", "value "+value)
	return fuzzPlant(body, fuzzTop, "value", value)
}

// fuzzClient is a client with the fixed clock.
func fuzzClient(token string, ft *fuzzTransport) *Client {
	c := NewClient("https://zstack.example:8443", token, "", 0, fuzzUpstream(ft))
	c.now = func() time.Time { return fuzzNow }
	return c
}

// FuzzRead serves a fuzzed answer to GET credentials/{uuid}.
//
// Invariants: it never panics; it returns a credential whose status is its expiry read at the
// client's clock (none: active; at or before now: inactive; after: active; not a time:
// unknown), or a *provider.Error that carries the vendor's status and a short printable
// detail; 401, 403 and 404 are auth, forbidden and not found whatever the body; no answer other
// than 200 yields a credential; the bearer token and a stored value planted in the answer
// appear in no error and no metadata.
func FuzzRead(f *testing.F) {
	for _, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = fuzzStatus(status)
		token, value := fuzzSecret("bearer"), fuzzSecret("stored-value")
		body = fuzzAnswer(body, token, value)
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != credentialPath+fuzzCredID || r.Header.Get("Authorization") != "Bearer "+token {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := fuzzClient(token, ft).Read(context.Background(), fuzzCredID)
		ft.check(t)
		fuzzCheck(t, cred, err, token, value)
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("a credential from an answer %d", status)
			}
			var ans struct {
				ExpiresAt json.RawMessage `json:"expiresAt"`
			}
			_ = json.Unmarshal(body, &ans)
			if want := fuzzExpiryStatus(ans.ExpiresAt); cred.Status != want {
				t.Fatalf("expiresAt %s read as %q, want %q", ans.ExpiresAt, cred.Status, want)
			}
			return
		}
		pe := fuzzError(t, err)
		if pe.StatusCode != status {
			t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
		}
		fuzzKindByStatus(t, pe, status)
	})
}

// fuzzExpiryStatus is the status an expiry gives at fuzzNow, read independently.
func fuzzExpiryStatus(raw json.RawMessage) provider.Status {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return provider.StatusActive
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return provider.StatusUnknown
	}
	if s == "" {
		return provider.StatusActive
	}
	t, err := time.Parse(time.RFC3339, s)
	switch {
	case err != nil:
		return provider.StatusUnknown
	case t.After(fuzzNow):
		return provider.StatusActive
	}
	return provider.StatusInactive
}

// FuzzChange serves a fixed credential (expired when the change asks for active, expiring next
// year when it asks for inactive) and a fuzzed answer to the PUT of the new expiry. which picks
// the change: inactive, active, or active until a given time.
//
// Invariants: as FuzzRead; exactly one PUT, whose body holds only expiresAt (RFC 3339: now for
// inactive, the caller's time or now + reactivate_for for active) and the operator, never the
// value; a success is changed, with a normalized status.
func FuzzChange(f *testing.F) {
	for i, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body), uint8(i))
	}
	until := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, which uint8) {
		status = fuzzStatus(status)
		token, value := fuzzSecret("bearer"), fuzzSecret("stored-value")
		body = fuzzAnswer(body, token, value)
		ch := &provider.Change{ID: fuzzCredID, Status: provider.StatusInactive, Operator: "ops@example.com"}
		was, wantExpiry := `"2027-01-01T00:00:00Z"`, fuzzNow
		switch which % 3 {
		case 1:
			ch.Status, was, wantExpiry = provider.StatusActive, `"2026-01-15T08:00:00Z"`, fuzzNow.Add(DefaultReactivateFor)
		case 2:
			ch.Status, ch.ExpiresAt, was, wantExpiry = provider.StatusActive, until, `"2026-01-15T08:00:00Z"`, until
		}
		puts := 0
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				t.Errorf("%s %s without the bearer token", r.Method, r.URL)
			}
			switch {
			case r.Method == http.MethodGet && r.URL.Path == credentialPath+fuzzCredID:
				return 200, []byte(fuzzCredential(was))
			case r.Method == http.MethodPut && r.URL.Path == credentialPath+fuzzCredID:
				puts++
				var sent map[string]string
				if err := json.NewDecoder(r.Body).Decode(&sent); err != nil {
					t.Errorf("PUT body: %v", err)
				}
				if len(sent) != 2 || sent["operator"] != ch.Operator || sent["expiresAt"] != wantExpiry.Format(time.RFC3339) {
					t.Errorf("PUT body %v, want expiresAt %s and operator %s only", sent, wantExpiry.Format(time.RFC3339), ch.Operator)
				}
				return status, body
			}
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return 500, nil
		}}
		res, err := fuzzClient(token, ft).Change(context.Background(), ch)
		ft.check(t)
		if puts != 1 {
			t.Fatalf("%d PUTs", puts)
		}
		if err != nil {
			fuzzCheck(t, nil, err, token, value)
			pe := fuzzError(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			fuzzKindByStatus(t, pe, status)
			return
		}
		fuzzCheck(t, &res.Credential, nil, token, value)
		if status != http.StatusOK && status != http.StatusNoContent {
			t.Fatalf("a change accepted from an answer %d", status)
		}
		if !res.Changed {
			t.Fatal("a change that wrote reported unchanged")
		}
	})
}

// fuzzKindByStatus checks the kinds that an HTTP status decides alone.
func fuzzKindByStatus(t *testing.T, pe *provider.Error, status int) {
	t.Helper()
	want := map[int]provider.Kind{401: provider.KindAuth, 403: provider.KindForbidden, 404: provider.KindNotFound}
	if k, ok := want[status]; ok && pe.Kind != k {
		t.Fatalf("answer %d classified %v", status, pe.Kind)
	}
}

// The helpers below are the same in every adapter's fuzz_test.go.

// fuzzStatuses are the statuses a fuzzed answer may have: those an adapter classifies itself
// (Upstream handles 429 and 5xx before any adapter sees them).
var fuzzStatuses = []int{200, 201, 204, 400, 401, 403, 404, 409, 412, 422}

// fuzzStatus maps any fuzzed number onto fuzzStatuses, keeping those already in it.
func fuzzStatus(s int) int {
	for _, v := range fuzzStatuses {
		if v == s {
			return s
		}
	}
	return fuzzStatuses[uint(s)%uint(len(fuzzStatuses))]
}

// fuzzSecret returns a secret that no fuzzed input holds (the fuzzer learns no words from the
// code, and no seed holds one). It is fixed, so that a run's coverage does not depend on it.
func fuzzSecret(what string) string {
	return what + "-7Qm2xV9kR4tW8zJ3"
}

// fuzzTop matches the start of a body that is a JSON object.
var fuzzTop = regexp.MustCompile(`^\s*\{`)

// fuzzPlant inserts members (name, value, name, value, ...) as string members right after the
// first match of at, an expression that ends with an object's '{'; the rest of the body stays
// as it was, byte for byte. A body without a match is returned as it is.
func fuzzPlant(body []byte, at *regexp.Regexp, members ...string) []byte {
	loc := at.FindIndex(body)
	if loc == nil {
		return body
	}
	var ins []byte
	for i := 0; i+1 < len(members); i += 2 {
		if i > 0 {
			ins = append(ins, ',')
		}
		ins = fmt.Appendf(ins, "%q: %q", members[i], members[i+1])
	}
	rest := body[loc[1]:]
	if r := bytes.TrimLeft(rest, " \t\r\n"); len(r) > 0 && r[0] != '}' {
		ins = append(ins, ',')
	}
	out := append([]byte{}, body[:loc[1]]...)
	out = append(out, ins...)
	return append(out, rest...)
}

// fuzzTransport answers every request in memory. It notes a request that a real
// http.Transport would refuse to send (a header value with a control character).
type fuzzTransport struct {
	answer  func(*http.Request) (int, []byte)
	refused []string
}

func (ft *fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b)) // for answer to read
	}
	for name, values := range r.Header {
		for _, v := range values {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					ft.refused = append(ft.refused, fmt.Sprintf("%s %s: header %s holds byte 0x%02x", r.Method, r.URL.Path, name, c))
					return nil, fmt.Errorf("net/http: invalid header field value for %q", name)
				}
			}
		}
	}
	code, body := ft.answer(r)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", code, http.StatusText(code)),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// check fails the test when a request was one that a real transport would refuse.
func (ft *fuzzTransport) check(t *testing.T) {
	t.Helper()
	if len(ft.refused) > 0 {
		t.Fatalf("a request that a real http.Transport refuses: %s", strings.Join(ft.refused, "; "))
	}
}

// fuzzUpstream is the host's Upstream around ft, without retries.
func fuzzUpstream(ft *fuzzTransport) *provider.Upstream {
	return &provider.Upstream{
		Transport:   ft,
		MaxResponse: 1 << 20,
	}
}

// fuzzError returns err's *provider.Error, failing the test when it has none.
func fuzzError(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *provider.Error", err, err)
	}
	return pe
}

// fuzzCheck checks what a client call returned: either a credential with a normalized status
// and metadata that encodes, or a classified error whose detail (what clients and logs see) is
// a short line of printable ASCII; no secret in either.
func fuzzCheck(t *testing.T, cred *provider.Credential, err error, secrets ...string) {
	t.Helper()
	var text string
	switch {
	case err != nil:
		pe := fuzzError(t, err)
		switch pe.Kind {
		case provider.KindUnavailable, provider.KindCanceled, provider.KindTimeout:
			t.Fatalf("kind %v, which only the host or a deadline makes: %v", pe.Kind, err)
		}
		if len(pe.Detail) > 200 {
			t.Fatalf("a detail of %d bytes: %q", len(pe.Detail), pe.Detail)
		}
		for i := 0; i < len(pe.Detail); i++ {
			if c := pe.Detail[i]; c < 0x20 || c > 0x7e {
				t.Fatalf("detail %q holds byte 0x%02x: free text of the answer?", pe.Detail, c)
			}
		}
		text = err.Error() + "\n" + pe.Detail
	case cred == nil:
		t.Fatal("neither a credential nor an error")
	default:
		switch cred.Status {
		case provider.StatusActive, provider.StatusInactive, provider.StatusRevoked, provider.StatusUnknown:
		default:
			t.Fatalf("status %q", cred.Status)
		}
		switch cred.PendingStatus {
		case "", provider.StatusActive, provider.StatusInactive, provider.StatusRevoked:
		default:
			t.Fatalf("pending status %q", cred.PendingStatus)
		}
		meta, err := json.Marshal(cred.Metadata)
		if err != nil {
			t.Fatalf("metadata does not encode: %v", err)
		}
		all, err := json.Marshal(cred)
		if err != nil {
			t.Fatalf("credential does not encode: %v", err)
		}
		text = string(meta) + "\n" + string(all) + "\n" + cred.ProviderStatus
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("secret %q leaked: %s", s, text)
		}
	}
}
