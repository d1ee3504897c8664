package prefactor

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

// Fuzz targets of the Prefactor answer decoders: every answer is served in memory (no network)
// with a fuzzed status and body. `make fuzz` runs them; the seeds below and those in
// testdata/fuzz/<FuzzName>/ run with every `go test`.

// fuzzTokenID is the API token every fuzzed call asks for.
const fuzzTokenID = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"

// fuzzDetails is ApiToken_Details as the vendor page shows it, at a given status.
func fuzzDetails(status string) string {
	return `{"details": {"account_id": "013xrzp12g3nqk8ngskn1wtxgka5b0nf",
		"available_actions": {"activate": false, "delete": true, "revoke": true, "suspend": true},
		"created_by_admin_user_id": "013xrzp12g3nqk8nh0qrc2b1jfanmvb9", "environment_id": "013xrzp12g3nqk8nzxvq7jm2arsfg5h1",
		"expires_at": "2024-01-01T00:00:00Z", "id": "013xrzp12g3nqk8n7f8f9jbg8d18q7tm", "inserted_at": "2024-01-01T00:00:00Z",
		"last_used_at": null, "status": "` + status + `", "token_scope": "account", "type": "api_token",
		"updated_at": "2024-01-01T00:00:00Z"}, "status": "success"}`
}

// Real answers and error shapes, from the vendor page and PROVIDERS.md, and their variations.
var fuzzAnswers = []struct {
	status int
	body   string
}{
	{200, fuzzDetails("active")},
	{200, fuzzDetails("suspended")},
	{200, fuzzDetails("revoked")},
	{200, fuzzDetails("expired")},
	{200, `{"details": {"id": 12345, "account_id": "acc", "environment_id": null, "last_used_at": "2026-11-20T17:02:11Z", "available_actions": {"activate": "maybe", "suspend": true}, "status": "suspended", "future_field": {"x": 1}}}`},
	{200, `{"status": "success", "details": {"id": "x", "available_actions": "all", "status": "revoked"}}`},
	{200, `{"status": "success", "details": {"status": {"state": "active"}}}`},
	{200, `{"status": "success", "details": {"status": 1e400, "expires_at": 99999999999999999999}}`},
	{200, `{"status": "success", "details": {"status": "active", "token_scope": "\u00e9\ud83d\ude00\ud800"}}`},
	{200, `{"status": "success", "details": null}`},
	{200, `{"status": "success", "details": [1]}`},
	{200, `{"status": "success"}`},
	{200, `{"status": "succ`},
	{200, `{"status": "error", "code": "not_found", "message": "API token not found"}`},
	{201, `OK`},
	{204, ``},
	{400, `{"status": "error", "code": "bad_request", "message": "bad request"}`},
	{400, `{"status": "error", "code": "validation_errors", "message": "invalid", "errors": {"idempotency_key": ["is too long"]}}`},
	{401, `{"status": "error", "code": "not_authenticated", "message": "token is not valid"}`},
	{403, `{"status": "error", "code": "not_permitted", "message": "not permitted"}`},
	{404, `{"status": "error", "code": "not_found", "message": "not found"}`},
	{409, `{"status": "error", "code": "invalid_action", "message": "revoked tokens cannot be activated"}`},
	{412, `{"status": "error", "code": "a b", "message": "x"}`},
	{422, `{"status": "error", "code": "` + strings.Repeat("c", 65) + `"}`},
	{404, `<html>nope</html>`},
}

// fuzzDetailsAt matches the start of the details object.
var fuzzDetailsAt = regexp.MustCompile(`"details"\s*:\s*\{`)

// fuzzAnswer plants secrets in a fuzzed answer: a token value in the details (Prefactor never
// sends it in these answers; the adapter must drop it should it come), and the gateway's
// bearer token echoed in the message.
func fuzzAnswer(body []byte, bearer, planted string) []byte {
	body = fuzzPlant(body, fuzzDetailsAt, "token", planted, "value", planted)
	return fuzzPlant(body, fuzzTop, "message", "token "+bearer+" is not valid here")
}

// fuzzWords maps the normalized statuses to Prefactor's words.
var fuzzWords = map[provider.Status]string{provider.StatusActive: "active", provider.StatusInactive: "suspended", provider.StatusRevoked: "revoked"}

// FuzzRead serves a fuzzed answer to GET api_token/{id}.
//
// Invariants: it never panics; it returns a credential with a normalized status that matches
// Prefactor's word, or a *provider.Error that carries the vendor's status and a short printable
// detail; 401, 403 and 404 are auth, foreign forbidden and not found whatever the body; no
// answer outside 2xx yields a credential; the bearer token and a token value planted in the
// answer appear in no error and no metadata.
func FuzzRead(f *testing.F) {
	for _, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = fuzzStatus(status)
		bearer, planted := fuzzSecret("bearer"), fuzzSecret("token-value")
		body = fuzzAnswer(body, bearer, planted)
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != tokenPath+fuzzTokenID || r.Header.Get("Authorization") != "Bearer "+bearer {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := NewClient("https://pf.example", bearer, fuzzUpstream(ft)).Read(context.Background(), fuzzTokenID)
		ft.check(t)
		fuzzCheck(t, cred, err, bearer, planted)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("a credential from an answer %d", status)
			}
			if cred.Status != provider.StatusUnknown && fuzzWords[cred.Status] != cred.ProviderStatus {
				t.Fatalf("status %q from Prefactor's %q", cred.Status, cred.ProviderStatus)
			}
			return
		}
		pe := fuzzError(t, err)
		if pe.StatusCode != status {
			t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
		}
		want := map[int]provider.Kind{401: provider.KindAuth, 403: provider.KindForbidden, 404: provider.KindNotFound}
		if k, ok := want[status]; ok && pe.Kind != k {
			t.Fatalf("answer %d classified %v", status, pe.Kind)
		}
		if status == http.StatusForbidden && !pe.Foreign {
			t.Fatalf("a 403 to a read not marked foreign: %v", pe)
		}
	})
}

// FuzzChange serves a fixed token (suspended when the change asks for active, active when it
// asks for inactive or revoked) and a fuzzed answer to the POST of the transition.
//
// Invariants: as FuzzRead; exactly one POST, to the transition of the requested status, with
// the idempotency key; a success reports a known status, changed; 400, 409 and 422 are a
// refused transition; 401, 403 and 404 are auth, forbidden (not foreign) and not found, or a
// refused transition.
func FuzzChange(f *testing.F) {
	for i, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body), uint8(i))
	}
	statuses := []provider.Status{provider.StatusActive, provider.StatusInactive, provider.StatusRevoked}
	f.Fuzz(func(t *testing.T, status int, body []byte, which uint8) {
		status = fuzzStatus(status)
		bearer, planted := fuzzSecret("bearer"), fuzzSecret("token-value")
		body = fuzzAnswer(body, bearer, planted)
		want := statuses[int(which)%len(statuses)]
		was := "active"
		if want == provider.StatusActive {
			was = "suspended"
		}
		key := "INC-42-" + string(want)
		posts := 0
		ft := &fuzzTransport{answer: func(r *http.Request) (int, []byte) {
			if r.Header.Get("Authorization") != "Bearer "+bearer {
				t.Errorf("%s %s without the bearer token", r.Method, r.URL)
			}
			switch {
			case r.Method == http.MethodGet && r.URL.Path == tokenPath+fuzzTokenID:
				return 200, []byte(fuzzDetails(was))
			case r.Method == http.MethodPost && r.URL.Path == tokenPath+fuzzTokenID+"/"+actions[want]:
				posts++
				var sent struct {
					IdempotencyKey string `json:"idempotency_key"`
				}
				if err := json.NewDecoder(r.Body).Decode(&sent); err != nil || sent.IdempotencyKey != key {
					t.Errorf("the transition was sent without the idempotency key (%v)", err)
				}
				return status, body
			}
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return 500, nil
		}}
		res, err := NewClient("https://pf.example", bearer, fuzzUpstream(ft)).Change(context.Background(),
			&provider.Change{ID: fuzzTokenID, Status: want, IdempotencyKey: key})
		ft.check(t)
		if posts != 1 {
			t.Fatalf("%d POSTs", posts)
		}
		if err != nil {
			fuzzCheck(t, nil, err, bearer, planted)
			pe := fuzzError(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			switch status {
			case 400, 409, 422:
				if pe.Kind != provider.KindConflict {
					t.Fatalf("answer %d to a transition classified %v", status, pe.Kind)
				}
			case 401, 403, 404:
				want := map[int]provider.Kind{401: provider.KindAuth, 403: provider.KindForbidden, 404: provider.KindNotFound}[status]
				if pe.Kind != want && pe.Kind != provider.KindConflict {
					t.Fatalf("answer %d to a transition classified %v", status, pe.Kind)
				}
			}
			if pe.Foreign {
				t.Fatalf("a transition's refusal marked foreign: %v", pe)
			}
			return
		}
		fuzzCheck(t, &res.Credential, nil, bearer, planted)
		if status < 200 || status > 299 {
			t.Fatalf("a change accepted from an answer %d", status)
		}
		if !res.Changed || res.Status == provider.StatusUnknown {
			t.Fatalf("changed %v to %q, asked %q", res.Changed, res.Status, want)
		}
		if fuzzWords[res.Status] != res.ProviderStatus {
			t.Fatalf("status %q from Prefactor's %q", res.Status, res.ProviderStatus)
		}
	})
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
