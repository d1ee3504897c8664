package digicert

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

	"github.com/credgate/credgate/module/provider"
)

// Fuzz targets of the DigiCert answer decoders: every answer is served in memory (no network)
// with a fuzzed status and body. `make fuzz` runs them; the seeds below and those in
// testdata/fuzz/<FuzzName>/ run with every `go test`.

// fuzzKeyID is the API key every fuzzed call asks for.
const fuzzKeyID = "12345"

// Real answers and error shapes, from the vendor page and PROVIDERS.md, and their variations.
var fuzzAnswers = []struct {
	status int
	body   string
}{
	{200, `{"id": 12345, "name": "build-server", "account_id": 1001, "status": "active", "created_at": "2024-05-01T09:30:00Z", "last_used_date": "2026-11-20T17:02:11Z", "api_key_last4": "4345"}`},
	{200, `{"id": 12345, "name": "build-server", "account_id": 1001, "status": "inactive"}`},
	{200, `{"id": "12345", "account_id": "7", "status": "suspended-by-digicert", "new_field": [1]}`},
	{200, `{"id": 1e400, "status": "active"}`},
	{200, `{"id": 12345, "name": 7, "status": "active"}`},
	{200, `{"status": ["active"]}`},
	{200, `{"status": "active", "name": "\u00e9\ud83d\ude00\ud800"}`},
	{200, `{"id": 12345, "status": "act`},
	{200, `[]`},
	{200, `null`},
	{200, ``},
	{204, ``},
	{201, `{"status": "active"}`},
	{400, `{"errors": [{"code": "invalid_status", "message": "Allowed values: active, inactive."}]}`},
	{401, `{"errors": [{"code": "invalid_api_key", "message": "The API key is invalid."}]}`},
	{403, `{"errors": [{"code": "access_denied", "message": "The API key belongs to an unrelated account."}]}`},
	{403, ``},
	{404, `{"errors": [{"code": "not_found", "message": "API key not found."}]}`},
	{404, `<html><body>Not Found</body></html>`},
	{409, `{"errors": []}`},
	{412, `{"errors": [{"code": 7}]}`},
	{422, `{"errors": {"code": "x"}}`},
}

// fuzzErrors matches the first error object of DigiCert's error shape.
var fuzzErrors = regexp.MustCompile(`"errors"\s*:\s*\[\s*\{`)

// fuzzAnswer plants secrets in a fuzzed answer: the full API key under "api_key" (DigiCert's
// answers carry only api_key_last4), and the partner key echoed in messages.
func fuzzAnswer(body []byte, partnerKey, planted string) []byte {
	body = fuzzPlant(body, fuzzErrors, "message", "partner key "+partnerKey+" refused")
	return fuzzPlant(body, fuzzTop, "api_key", planted, "message", "partner key "+partnerKey+" refused")
}

// FuzzRead serves a fuzzed answer to GET api-key/{id}.
//
// Invariants: it never panics; it returns a credential with a normalized status, or a
// *provider.Error that carries the vendor's status and a short printable detail; 401, 403 and
// 404 are auth, foreign forbidden and not found whatever the body; no answer other than 200
// yields a credential; the partner key and a key planted in the answer appear in no error and
// no metadata.
func FuzzRead(f *testing.F) {
	for _, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = fuzzStatus(status)
		partnerKey, planted := fuzzSecret("partner-key"), fuzzSecret("api-key")
		body = fuzzAnswer(body, partnerKey, planted)
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != keyPath+fuzzKeyID || strings.Join(r.Header[HeaderAPIKey], ",") != partnerKey {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := NewClient("https://dc.example", partnerKey, fuzzUpstream(ft)).Read(context.Background(), fuzzKeyID)
		ft.check(t)
		fuzzCheck(t, cred, err, partnerKey, planted)
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("a credential from an answer %d", status)
			}
			return
		}
		pe := fuzzError(t, err)
		if pe.StatusCode != status {
			t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
		}
		fuzzKindByStatus(t, pe, status)
		if status == http.StatusForbidden && !pe.Foreign {
			t.Fatalf("a 403 not marked foreign: %v", pe)
		}
	})
}

// FuzzChange serves a fixed key (inactive when the change asks for active, and the other way)
// and a fuzzed answer to the PUT api-key/{id}/status.
//
// Invariants: as FuzzRead; one PUT is sent; a success reports the requested status, changed.
func FuzzChange(f *testing.F) {
	for i, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, active bool) {
		status = fuzzStatus(status)
		partnerKey, planted := fuzzSecret("partner-key"), fuzzSecret("api-key")
		body = fuzzAnswer(body, partnerKey, planted)
		want, was := provider.StatusActive, "inactive"
		if !active {
			want, was = provider.StatusInactive, "active"
		}
		puts := 0
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if strings.Join(r.Header[HeaderAPIKey], ",") != partnerKey {
				t.Errorf("%s %s without the partner key", r.Method, r.URL)
			}
			switch {
			case r.Method == http.MethodGet && r.URL.Path == keyPath+fuzzKeyID:
				return 200, []byte(`{"id": 12345, "name": "build-server", "account_id": 1001, "status": "` + was + `", "api_key_last4": "4345"}`)
			case r.Method == http.MethodPut && r.URL.Path == keyPath+fuzzKeyID+"/status":
				puts++
				return status, body
			}
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return 500, nil
		}}
		res, err := NewClient("https://dc.example", partnerKey, fuzzUpstream(ft)).Change(context.Background(), &provider.Change{ID: fuzzKeyID, Status: want})
		ft.check(t)
		if puts != 1 {
			t.Fatalf("%d PUTs", puts)
		}
		if err != nil {
			fuzzCheck(t, nil, err, partnerKey, planted)
			pe := fuzzError(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			fuzzKindByStatus(t, pe, status)
			return
		}
		fuzzCheck(t, &res.Credential, nil, partnerKey, planted)
		if status != http.StatusOK && status != http.StatusNoContent {
			t.Fatalf("a change accepted from an answer %d", status)
		}
		if !res.Changed || res.Status != want {
			t.Fatalf("changed %v to %q, asked %q", res.Changed, res.Status, want)
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
