package prefactor

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
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

// fuzzAnswer plants secrets in a fuzzed Answer: a token value in the details (Prefactor never
// sends it in these answers; the adapter must drop it should it come), and the gateway's
// bearer token echoed in the message.
func fuzzAnswer(body []byte, bearer, planted string) []byte {
	body = providertest.Plant(body, fuzzDetailsAt, "token", planted, "value", planted)
	return providertest.Plant(body, providertest.Top, "message", "token "+bearer+" is not valid here")
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
		status = providertest.Status(status)
		bearer, planted := providertest.Secret("bearer"), providertest.Secret("token-value")
		body = fuzzAnswer(body, bearer, planted)
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != tokenPath+fuzzTokenID || r.Header.Get("Authorization") != "Bearer "+bearer {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := NewClient("https://pf.example", bearer, providertest.Upstream(ft)).Read(context.Background(), fuzzTokenID)
		ft.Check(t)
		providertest.CheckCredential(t, cred, err, bearer, planted)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("a credential from an answer %d", status)
			}
			if cred.Status != provider.StatusUnknown && fuzzWords[cred.Status] != cred.ProviderStatus && !fuzzExpired(cred) {
				t.Fatalf("status %q from Prefactor's %q", cred.Status, cred.ProviderStatus)
			}
			return
		}
		pe := providertest.Err(t, err)
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
		status = providertest.Status(status)
		bearer, planted := providertest.Secret("bearer"), providertest.Secret("token-value")
		body = fuzzAnswer(body, bearer, planted)
		want := statuses[int(which)%len(statuses)]
		was := "active"
		if want == provider.StatusActive {
			was = "suspended"
		}
		key := "INC-42-" + string(want)
		posts := 0
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
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
		res, err := NewClient("https://pf.example", bearer, providertest.Upstream(ft)).Change(context.Background(),
			&provider.Change{ID: fuzzTokenID, Status: want, IdempotencyKey: key})
		ft.Check(t)
		if posts != 1 {
			t.Fatalf("%d POSTs", posts)
		}
		if err != nil {
			providertest.CheckCredential(t, nil, err, bearer, planted)
			pe := providertest.Err(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			switch status {
			case 409:
				if pe.Kind != provider.KindConflict {
					t.Fatalf("answer %d to a transition classified %v", status, pe.Kind)
				}
			case 400, 422: // invalid_action is a refusal; any other, a request error
				if pe.Kind != provider.KindConflict && pe.Kind != provider.KindRejected {
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
		providertest.CheckCredential(t, &res.Credential, nil, bearer, planted)
		if status < 200 || status > 299 {
			t.Fatalf("a change accepted from an answer %d", status)
		}
		if !res.Changed || res.Status == provider.StatusUnknown {
			t.Fatalf("changed %v to %q, asked %q", res.Changed, res.Status, want)
		}
		if fuzzWords[res.Status] != res.ProviderStatus && !fuzzExpired(&res.Credential) {
			t.Fatalf("status %q from Prefactor's %q", res.Status, res.ProviderStatus)
		}
	})
}

// fuzzExpired says the credential is inactive because its expires_at has passed, whatever its
// word.
func fuzzExpired(c *provider.Credential) bool {
	m, ok := c.Metadata.(*Metadata)
	if !ok || m == nil || c.Status != provider.StatusInactive {
		return false
	}
	t, err := time.Parse(time.RFC3339, m.ExpiresAt)
	return err == nil && !t.After(time.Now())
}
