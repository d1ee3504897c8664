package digicert

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
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

// fuzzAnswer plants secrets in a fuzzed Answer: the full API key under "api_key" (DigiCert's
// answers carry only api_key_last4), and the partner key echoed in messages.
func fuzzAnswer(body []byte, partnerKey, planted string) []byte {
	body = providertest.Plant(body, fuzzErrors, "message", "partner key "+partnerKey+" refused")
	return providertest.Plant(body, providertest.Top, "api_key", planted, "message", "partner key "+partnerKey+" refused")
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
		status = providertest.Status(status)
		partnerKey, planted := providertest.Secret("partner-key"), providertest.Secret("api-key")
		body = fuzzAnswer(body, partnerKey, planted)
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != keyPath+fuzzKeyID || strings.Join(r.Header[HeaderAPIKey], ",") != partnerKey {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := NewClient("https://dc.example", partnerKey, providertest.Upstream(ft)).Read(context.Background(), fuzzKeyID)
		ft.Check(t)
		providertest.CheckCredential(t, cred, err, partnerKey, planted)
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("a credential from an answer %d", status)
			}
			return
		}
		pe := providertest.Err(t, err)
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
		status = providertest.Status(status)
		partnerKey, planted := providertest.Secret("partner-key"), providertest.Secret("api-key")
		body = fuzzAnswer(body, partnerKey, planted)
		want, was := provider.StatusActive, "inactive"
		if !active {
			want, was = provider.StatusInactive, "active"
		}
		puts := 0
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
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
		res, err := NewClient("https://dc.example", partnerKey, providertest.Upstream(ft)).Change(context.Background(), &provider.Change{ID: fuzzKeyID, Status: want})
		ft.Check(t)
		if puts != 1 {
			t.Fatalf("%d PUTs", puts)
		}
		if err != nil {
			providertest.CheckCredential(t, nil, err, partnerKey, planted)
			pe := providertest.Err(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			fuzzKindByStatus(t, pe, status)
			return
		}
		providertest.CheckCredential(t, &res.Credential, nil, partnerKey, planted)
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
