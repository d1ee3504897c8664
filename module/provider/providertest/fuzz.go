// Package providertest is the test kit of adapters and of the tests that drive them:
//   - the registry of vendor fixtures (Fixture, Register, Fixtures): how to run each vendor's
//     simulator and configure its adapter against it, which generic tests iterate;
//   - the simulator base (Server, Fault): an HTTP server with fault switches and a request log
//     that each vendor's simulator builds on;
//   - what the adapters' fuzz tests share: an in-memory transport that refuses what a real one
//     would, fuzzed statuses, planted secrets, and the checks every answer of a client must
//     pass.
//
// Only tests and the simulators command import it.
package providertest

import (
	"bytes"
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

// Statuses are the statuses a fuzzed answer may have: those an adapter classifies itself
// (Upstream handles 429 and 5xx before any adapter sees them).
var Statuses = []int{200, 201, 204, 400, 401, 403, 404, 409, 412, 422}

// Status maps any fuzzed number onto Statuses, keeping those already in it.
func Status(s int) int {
	for _, v := range Statuses {
		if v == s {
			return s
		}
	}
	return Statuses[uint(s)%uint(len(Statuses))]
}

// Secret returns a secret that no fuzzed input holds (the fuzzer learns no words from the
// code, and no seed holds one). It is fixed, so that a run's coverage does not depend on it.
func Secret(what string) string {
	return what + "-7Qm2xV9kR4tW8zJ3"
}

// Top matches the start of a body that is a JSON object.
var Top = regexp.MustCompile(`^\s*\{`)

// Plant inserts members (name, value, name, value, ...) as string members right after the
// first match of at, an expression that ends with an object's '{'; the rest of the body stays
// as it was, byte for byte. A body without a match is returned as it is.
func Plant(body []byte, at *regexp.Regexp, members ...string) []byte {
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

// Transport answers every request in memory. It notes a request that a real
// http.Transport would refuse to send (a header value with a control character).
type Transport struct {
	Answer  func(*http.Request) (int, []byte)
	refused []string
}

func (ft *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b)) // for Answer to read
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
	code, body := ft.Answer(r)
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

// Check fails the test when a request was one that a real transport would refuse.
func (ft *Transport) Check(t *testing.T) {
	t.Helper()
	if len(ft.refused) > 0 {
		t.Fatalf("a request that a real http.Transport refuses: %s", strings.Join(ft.refused, "; "))
	}
}

// Upstream is the host's Upstream around ft, without retries.
func Upstream(ft *Transport) *provider.Upstream {
	return &provider.Upstream{
		Transport:   ft,
		MaxResponse: 1 << 20,
	}
}

// Err returns err's *provider.Error, failing the test when it has none.
func Err(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *provider.Error", err, err)
	}
	return pe
}

// CheckCredential checks what a client call returned: either a credential with a normalized status
// and metadata that encodes, or a classified error whose detail (what clients and logs see) is
// a short line of printable ASCII; no secret in either.
func CheckCredential(t *testing.T, cred *provider.Credential, err error, secrets ...string) {
	t.Helper()
	var text string
	switch {
	case err != nil:
		pe := Err(t, err)
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
