package credentialstatus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	credentialstatus "github.com/credgate/credgate/module/credentialstatus"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors" // every vendor's adapter and fixture
)

// Fuzz targets of the handler as Caddy uses it: the Caddyfile parser, and ServeHTTP with the
// fake adapter. `make fuzz` runs them; the seeds below and those in testdata/fuzz/<FuzzName>/
// run with every `go test`.

// The adapters a Caddyfile may name: the four of the repository (the fake adapter of these
// tests is registered too, but has no Caddyfile syntax).
var caddyfileAdapters = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range providertest.Fixtures() {
		m[f.Name] = true
	}
	return m
}()

// FuzzCaddyfile feeds Handler.UnmarshalCaddyfile the tokens of fuzzed Caddyfile text.
//
// Invariants: it never panics; when it succeeds, every provider has a valid name-free JSON
// object whose "adapter" names one of the four registered adapters, and that object loads
// into the adapter's module the way Caddy loads it (the inline key removed, unknown fields
// refused); the handler's JSON, as `caddy adapt` writes it, decodes back to the same config.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		`credential_status {
			cache_size   100000
			cache_ttl    24h
			negative_ttl 30s
			max_body     64KiB
			provider custody-eu palisade {
				base_url      https://api.palisade.co
				client_id     {env.PALISADE_CLIENT_ID}
				client_secret {env.PALISADE_CLIENT_SECRET}
				timeout 5s
				breaker {
					failures           5
					open_for           30s
					half_open_requests 1
				}
			}
			provider vault zstack {
				base_url       https://zstack.internal:8443
				token          {env.ZSTACK_TOKEN}
				operator       credgate
				reactivate_for 2160h
			}
			provider tokens prefactor {
				token {env.PREFACTOR_TOKEN}
			}
			provider digicert-parent digicert {
				api_key {env.DIGICERT_PARTNER_KEY}
				id_pattern ^[0-9]+$
			}
		}`,
		"credential_status {\n provider p digicert {\n api_key k\n retries 0\n max_response 512KiB\n max_connections 8\n tls_ca_file /etc/ca.pem\n }\n}",
		"credential_status {\n provider org-us palisade {\n token {file./run/secrets/palisade}\n }\n}",
		"credential_status {\n provider p digicert {\n api_key k\n }\n provider p digicert {\n api_key k\n }\n}",
		"credential_status {\n provider p vaultwarden {\n }\n}",
		"credential_status {\n provider p fake {\n }\n}",
		"credential_status {\n provider p\n}",
		"credential_status {\n provider\n}",
		"credential_status {\n cache_size lots\n}",
		"credential_status {\n cache_size 99999999999999999999\n}",
		"credential_status {\n max_body 2TiB\n}",
		"credential_status {\n cache_ttl -5s\n}",
		"credential_status {\n cache_ttl 9223372036854775807\n}",
		"credential_status {\n provider p digicert {\n timeout 106751d\n api_key k\n }\n}",
		"credential_status {\n provider p zstack {\n breaker {\n trips 3\n }\n }\n}",
		"credential_status {\n provider p zstack {\n breaker extra {\n }\n }\n}",
		"credential_status {\n provider p palisade {\n token\n }\n}",
		"credential_status {\n provider \"p q\" palisade {\n token \"a b\"\n }\n}",
		"credential_status {\n provider é digicert {\n api_key `k`\n }\n}",
		"credential_status {\n provider p digicert {\n id_pattern \"\\\\\"\n }\n}",
		"credential_status foo {\n}",
		"credential_status",
		"credential_status {",
		"credential_status {\n provider p digicert {\n api_key <<EOF\n  k\n  EOF\n }\n}",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return // the lexer refuses it before any handler sees it
		}
		h := new(credentialstatus.Handler)
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			if err.Error() == "" {
				t.Fatal("an error without text")
			}
			return
		}
		for name, raw := range h.ProvidersRaw {
			checkProviderJSON(t, name, raw)
		}
		adapted, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("the handler does not encode: %v", err)
		}
		var back credentialstatus.Handler
		if err := json.Unmarshal(adapted, &back); err != nil {
			t.Fatalf("the handler's JSON does not decode: %v\n%s", err, adapted)
		}
		again, err := json.Marshal(&back)
		if err != nil || !bytes.Equal(again, adapted) {
			t.Fatalf("the handler's JSON does not round-trip (%v):\n%s\n%s", err, adapted, again)
		}
	})
}

func checkProviderJSON(t *testing.T, name string, raw json.RawMessage) {
	t.Helper()
	if !json.Valid(raw) {
		t.Fatalf("provider %q: invalid JSON %s", name, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("provider %q: not a JSON object: %s", name, raw)
	}
	adapter, ok := obj["adapter"].(string)
	if !ok || !caddyfileAdapters[adapter] {
		t.Fatalf("provider %q: adapter %v is not one of the four", name, obj["adapter"])
	}
	info, err := caddy.GetModule(provider.Namespace + "." + adapter)
	if err != nil {
		t.Fatalf("provider %q: adapter %q is not registered: %v", name, adapter, err)
	}
	// As Caddy loads an inline module: the name key removed, the rest strictly decoded.
	delete(obj, "adapter")
	rest, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("provider %q: %v", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(info.New()); err != nil {
		t.Fatalf("provider %q: Caddy could not load the adapter's JSON: %v\n%s", name, err, raw)
	}
}

// fuzzGateway is a handler provisioned once for FuzzServeHTTP: provider "p" owns numeric IDs
// (no revoked state), provider "q" owns lower-case IDs with dashes and can revoke; both claim
// digits, so that numeric IDs are probed. Both answer fine, at once.
type fuzzGateway struct {
	h    *credentialstatus.Handler
	p, q *fakeClient
}

func newFuzzGateway(f *testing.F) *fuzzGateway {
	f.Helper()
	g := &fuzzGateway{p: owns("12345", "67890", "4242"), q: owns("abc", "ce4918bf-a199-4ce2-85a3-d0d296855384", "4242")}
	raw := map[string]json.RawMessage{}
	for name, c := range map[string]struct {
		client  *fakeClient
		pattern string
		revoke  bool
	}{"p": {g.p, `[0-9]+`, false}, "q": {g.q, `[a-z0-9-]+`, true}} {
		script := fmt.Sprintf("fuzz-%s-%d", name, scriptSeq.Add(1))
		fakeMu.Lock()
		fakeClients[script] = c.client
		fakeMu.Unlock()
		b, err := json.Marshal(map[string]any{"adapter": "fake", "script": script, "pattern": c.pattern, "revoke": c.revoke})
		if err != nil {
			f.Fatal(err)
		}
		raw[name] = b
	}
	g.h = &credentialstatus.Handler{MaxBody: 512, ProvidersRaw: raw}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	f.Cleanup(cancel)
	if err := g.h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = g.h.Cleanup() })
	return g
}

func (g *fuzzGateway) calls() int32 {
	return g.p.reads.Load() + g.p.changes.Load() + g.q.reads.Load() + g.q.changes.Load()
}

// FuzzServeHTTP sends fuzzed requests (method, request target, Content-Type, Idempotency-Key,
// body) through ServeHTTP, in front of fake providers that answer fine.
//
// Invariants: a path of another shape goes to the next handler, and only such a path; every
// status >= 400 is application/problem+json whose body has a type urn:credgate:problem:...,
// a title, a detail and the HTTP status as "status"; 405 says Allow: GET, PUT; after 400,
// 405, 413 or 415 no provider saw a call; no 5xx (nor 499) comes from the handler; a success
// is JSON for the ID asked, with a valid status, and a PUT's success comes from a change of
// that ID to the status asked, with the request's Idempotency-Key; a problem's id is the ID
// asked.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []struct{ method, target, contentType, key, body string }{
		{"GET", "/credentials/12345/status", "", "", ""},
		{"GET", "/credentials/4242/status", "", "", ""},
		{"GET", "/credentials/4242/status?provider=q", "", "", ""},
		{"GET", "/credentials/12345/status?provider=nope", "", "", ""},
		{"GET", "/credentials/abc/status", "", "", ""},
		{"GET", "/credentials/ABC/status", "", "", ""},
		{"GET", "/credentials/99/status", "", "", ""},
		{"GET", "/credentials/a%2Fb/status", "", "", ""},
		{"GET", "/credentials/%2E%2E/status", "", "", ""},
		{"GET", "/credentials//status", "", "", ""},
		{"GET", "/credentials/12345/status/", "", "", ""},
		{"GET", "/other", "", "", ""},
		{"PUT", "/credentials/12345/status", "application/json", "", `{"status":"inactive"}`},
		{"PUT", "/credentials/12345/status", "application/json; charset=utf-8", "INC-42", `{"status":"active","reason":"leaked"}`},
		{"PUT", "/credentials/abc/status", "application/merge-patch+json", "k", `{"status":"revoked"}`},
		{"PUT", "/credentials/12345/status", "application/json", "", `{"status":"revoked"}`},
		{"PUT", "/credentials/4242/status", "application/json", "", `{"status":"inactive"}`},
		{"PUT", "/credentials/4242/status", "application/json", "", `{"status":"inactive","provider":"p"}`},
		{"PUT", "/credentials/12345/status", "application/json", "", `{"status":"active","expires_at":"2099-01-01T00:00:00Z"}`},
		{"PUT", "/credentials/12345/status", "text/plain", "", `{"status":"inactive"}`},
		{"PUT", "/credentials/12345/status", "", "", `{"status":"inactive"}`},
		{"PUT", "/credentials/12345/status", "application/json", "", `{"status":"inactive","reason":"` + strings.Repeat("r", 600) + `"}`},
		{"PUT", "/credentials/12345/status", "application/json", "", `{"status":`},
		{"PUT", "/credentials/12345/status", "application/json", "a\x01b", `{"status":"inactive"}`},
		{"PUT", "/credentials/%C3%A9/status", "application/json", "", `{"status":"inactive"}`},
		{"DELETE", "/credentials/12345/status", "", "", ""},
		{"POST", "/credentials/12345/status", "application/json", "", `{"status":"inactive"}`},
		{"PATCH", "/credentials/a/b/status", "", "", ""},
	} {
		f.Add(seed.method, seed.target, seed.contentType, seed.key, []byte(seed.body))
	}
	g := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, method, target, contentType, key string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" {
			return // the server refuses such a request target itself
		}
		req, err := http.NewRequest(method, "http://localhost/", bytes.NewReader(body))
		if err != nil || method == "" {
			return // not a method token: the server answers 400 before any handler
		}
		req.URL, req.RequestURI = u, target
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))

		calls := g.calls()
		changesP, changesQ := g.p.changes.Load(), g.q.changes.Load()
		rec := httptest.NewRecorder()
		nextCalled := false
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			nextCalled = true
			w.WriteHeader(http.StatusTeapot)
			return nil
		})
		if err := g.h.ServeHTTP(rec, req, next); err != nil {
			t.Fatalf("ServeHTTP returned %v", err)
		}
		called := g.calls() - calls

		p := u.EscapedPath()
		ours := len(p) >= len("/credentials//status") && strings.HasPrefix(p, "/credentials/") && strings.HasSuffix(p, "/status")
		if nextCalled == ours {
			t.Fatalf("%s %q: next handler called = %v for escaped path %q", method, target, nextCalled, p)
		}
		if !ours {
			if called != 0 {
				t.Fatalf("%s %q: not ours, yet %d provider calls", method, target, called)
			}
			return
		}

		id, _ := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(p, "/credentials/"), "/status"))
		code := rec.Code
		if code >= 500 || code == 499 {
			t.Fatalf("%s %q: %d from providers that answer fine: %s", method, target, code, rec.Body)
		}
		switch code {
		case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			if called != 0 {
				t.Fatalf("%s %q: %d after %d provider calls: %s", method, target, code, called, rec.Body)
			}
		}
		if code >= 400 {
			if pid := checkProblem(t, rec); pid != "" && pid != id {
				t.Fatalf("problem about id %q, asked %q", pid, id)
			}
			if code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, PUT" {
				t.Fatalf("405 with Allow %q", rec.Header().Get("Allow"))
			}
			return
		}
		if code != http.StatusOK && code != http.StatusAccepted {
			t.Fatalf("%s %q: status %d", method, target, code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("success with Content-Type %q", ct)
		}
		var ans struct {
			ID     string          `json:"id"`
			Status provider.Status `json:"status"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatalf("success body is not JSON: %v: %s", err, rec.Body)
		}
		if ans.ID != id {
			t.Fatalf("answer for id %q, asked %q", ans.ID, id)
		}
		if !ans.Status.Valid() && ans.Status != provider.StatusUnknown {
			t.Fatalf("answer with status %q", ans.Status)
		}
		if called == 0 {
			t.Fatalf("%s %q: %d without a provider call", method, target, code)
		}
		if method != http.MethodPut {
			return
		}
		// The change the provider saw is the one asked for, with the caller's Idempotency-Key.
		var last *provider.Change
		switch {
		case g.p.changes.Load() != changesP:
			last = g.p.last.Load()
		case g.q.changes.Load() != changesQ:
			last = g.q.last.Load()
		default:
			t.Fatalf("PUT %q: %d without a change", target, code)
		}
		var asked struct {
			Status provider.Status `json:"status"`
		}
		_ = json.Unmarshal(body, &asked)
		if last.ID != id || last.Status != asked.Status || last.IdempotencyKey != key {
			t.Fatalf("PUT %q (status %q, key %q): the provider saw %+v", target, asked.Status, key, last)
		}
	})
}

// checkProblem asserts that an error answer is an RFC 9457 problem of the API, and returns its
// id member.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d with Content-Type %q: %s", rec.Code, ct, rec.Body)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%d: problem body is not JSON: %v: %s", rec.Code, err, rec.Body)
	}
	if !strings.HasPrefix(p.Type, credentialstatus.ProblemTypePrefix) || len(p.Type) == len(credentialstatus.ProblemTypePrefix) {
		t.Fatalf("%d: problem type %q", rec.Code, p.Type)
	}
	if p.Status != rec.Code {
		t.Fatalf("problem status %d, HTTP status %d", p.Status, rec.Code)
	}
	if p.Title == "" || p.Detail == "" {
		t.Fatalf("%d: problem without title or detail: %s", rec.Code, rec.Body)
	}
	return p.ID
}
