package zstack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
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

// fuzzAnswer plants secrets in a fuzzed Answer: the stored value (ZStack does not send it; the
// adapter must drop it should it come), and the gateway's bearer token echoed in the error's
// free text.
func fuzzAnswer(body []byte, token, value string) []byte {
	body = providertest.Plant(body, fuzzErrorAt, "description", "token "+token+" refused", "details", "value "+value)
	return providertest.Plant(body, providertest.Top, "value", value)
}

// fuzzClient is a client with the fixed clock.
func fuzzClient(token string, ft *providertest.Transport) *Client {
	c := NewClient("https://zstack.example:8443", token, "", 0, providertest.Upstream(ft))
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
		status = providertest.Status(status)
		token, value := providertest.Secret("bearer"), providertest.Secret("stored-value")
		body = fuzzAnswer(body, token, value)
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			if r.Method != http.MethodGet || r.URL.Path != credentialPath+fuzzCredID || r.Header.Get("Authorization") != "Bearer "+token {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := fuzzClient(token, ft).Read(context.Background(), fuzzCredID)
		ft.Check(t)
		providertest.CheckCredential(t, cred, err, token, value)
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
		pe := providertest.Err(t, err)
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
		status = providertest.Status(status)
		token, value := providertest.Secret("bearer"), providertest.Secret("stored-value")
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
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
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
		ft.Check(t)
		if puts != 1 {
			t.Fatalf("%d PUTs", puts)
		}
		if err != nil {
			providertest.CheckCredential(t, nil, err, token, value)
			pe := providertest.Err(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			fuzzKindByStatus(t, pe, status)
			return
		}
		providertest.CheckCredential(t, &res.Credential, nil, token, value)
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
