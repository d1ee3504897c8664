package palisade

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
)

// Fuzz targets of the Palisade answer decoders: every answer is served in memory (no network)
// with a fuzzed status and body. `make fuzz` runs them; the seeds below and those in
// testdata/fuzz/<FuzzName>/ run with every `go test`.

// fuzzCredID is the credential every fuzzed call asks for.
const fuzzCredID = "ce4918bf-a199-4ce2-85a3-d0d296855384"

// fuzzCredential is a credential as the vendor page shows it, with its clientSecret, at the
// given active flag and status word.
func fuzzCredential(active, status string) string {
	return `{"id": "ce4918bf-a199-4ce2-85a3-d0d296855384", "name": "Treasury",
		"description": "Credentials that belong to trading desk #1", "category": "WALLETS",
		"permissions": ["vault:read:org:id=ce4918bf-a199-4ce2-85a3-d0d296855384:*"],
		"createdBy": "ce4918bf-a199-4ce2-85a3-d0d296855384", "organizationId": "ce4918bf-a199-4ce2-85a3-d0d296855384",
		"createdAt": "2022-03-29T10:22:22.420Z", "updatedAt": "2022-03-29T10:22:22.420Z",
		"clientId": "ce4918bf-a199-4ce2-85a3-d0d296855384", "clientSecret": "ce4918bf-a199-4ce2-85a3-d0d296855384",
		"active": ` + active + `, "status": "` + status + `",
		"proposedPermissions": ["vault:read:org:id=ce4918bf-a199-4ce2-85a3-d0d296855384:*"],
		"allowedIps": ["88.9.2.1", "88.10.2.1/0"]}`
}

// Real answers and error shapes, from the vendor page and PROVIDERS.md, and their variations.
var fuzzAnswers = []struct {
	status int
	body   string
}{
	{200, fuzzCredential("true", "ENABLED")},
	{200, fuzzCredential("false", "DISABLED")},
	{200, fuzzCredential("true", "DISABLE_APPROVAL_PENDING")},
	{200, fuzzCredential("false", "ENABLE_APPROVAL_PENDING")},
	{200, fuzzCredential("true", "DELETED")},
	{200, fuzzCredential("false", "deletion_approval_pending")},
	{200, fuzzCredential("true", "MODIFICATION_APPROVAL_COMPLETE")},
	{200, `{"id": 12345, "name": "N", "category": {}, "active": "false", "status": "DISABLED", "permissions": "not-a-list", "proposedPermissions": [1, {"x": 1}, "p"], "allowedIps": null, "extra": [1]}`},
	{200, `{"id": "x", "status": "ENABLED"}`},
	{200, `{"active": 1, "status": 4}`},
	{200, `{"active": true, "status": "ENABLED", "name": "\u00e9\ud83d\ude00\ud800", "id": 1e400}`},
	{200, `{"id": "x", "active": tru`},
	{200, `[1, 2]`},
	{200, `"text"`},
	{200, ``},
	{204, ``},
	{201, fuzzCredential("false", "DISABLED")},
	{400, `{"code": 3, "message": "invalid argument", "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest"}]}`},
	{400, `{"code": 9, "message": "credential is deleted", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}]}`},
	{412, `{"code": "10"}`},
	{412, `{"code": 9.5}`},
	{409, `{"code": 6, "message": "already exists"}`},
	{401, `{"code": 16, "message": "unauthenticated"}`},
	{403, `{"code": 7, "message": "permission denied"}`},
	{404, `{"code": 5, "message": "not found"}`},
	{404, `<html>nope</html>`},
	{422, `{"code": 99999999999999999999}`},
}

// fuzzAnswer plants secrets in a fuzzed Answer: the credential's clientSecret, and the
// gateway's token echoed in the error message.
func fuzzAnswer(body []byte, token, clientSecret string) []byte {
	return providertest.Plant(body, providertest.Top, "clientSecret", clientSecret, "message", "token "+token+" refused")
}

// fuzzCheckRequest checks what every call sends: no DELETE (the gateway never deletes), the
// bearer token on API calls.
func fuzzCheckRequest(t *testing.T, r *http.Request, token string) {
	t.Helper()
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodPost:
	default:
		t.Errorf("a %s request", r.Method)
	}
	if r.URL.Path != tokenPath && token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		t.Errorf("%s %s without the access token", r.Method, r.URL)
	}
}

// FuzzRead serves a fuzzed answer to GET credentials/{id}, with a static access token.
//
// Invariants: it never panics; it returns a credential with a normalized status (revoked only
// for the deleted words, pending only with the approval words), or a *provider.Error that
// carries the vendor's status and a short printable detail; 401, 403, 404 and 409 are auth,
// forbidden, not found and conflict whatever the body; no answer other than 200 yields a
// credential; the access token and the credential's clientSecret appear in no error and no
// metadata.
func FuzzRead(f *testing.F) {
	for _, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = providertest.Status(status)
		token, secret := providertest.Secret("access-token"), providertest.Secret("client-secret")
		body = fuzzAnswer(body, token, secret)
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			fuzzCheckRequest(t, r, token)
			if r.Method != http.MethodGet || r.URL.Path != credentialsPath+fuzzCredID {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			return status, body
		}}
		cred, err := NewClient("https://palisade.example", token, providertest.Upstream(ft)).Read(context.Background(), fuzzCredID)
		ft.Check(t)
		providertest.CheckCredential(t, cred, err, token, secret)
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("a credential from an answer %d", status)
			}
			fuzzCheckWords(t, cred)
			return
		}
		pe := providertest.Err(t, err)
		if pe.StatusCode != status {
			t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
		}
		fuzzKindByStatus(t, pe, status)
	})
}

// fuzzCheckWords checks the normalized status against Palisade's word.
func fuzzCheckWords(t *testing.T, cred *provider.Credential) {
	t.Helper()
	word := strings.ToUpper(cred.ProviderStatus)
	deleted := word == StatusDeleted || word == StatusDeletionApprovalComplete
	if (cred.Status == provider.StatusRevoked) != deleted {
		t.Fatalf("status %q from Palisade's %q", cred.Status, cred.ProviderStatus)
	}
	want := map[string]provider.Status{StatusEnableApprovalPending: provider.StatusActive, StatusDisableApprovalPending: provider.StatusInactive, StatusCreationApprovalPending: provider.StatusActive}[word]
	if !deleted && cred.PendingStatus != want {
		t.Fatalf("pending %q from Palisade's %q", cred.PendingStatus, cred.ProviderStatus)
	}
	// Words that decide the status whatever the active flag says.
	if fixed, ok := map[string]provider.Status{StatusError: provider.StatusUnknown, StatusRejected: provider.StatusInactive, StatusCreationApprovalPending: provider.StatusInactive}[word]; ok && cred.Status != fixed {
		t.Fatalf("status %q from Palisade's %q", cred.Status, cred.ProviderStatus)
	}
}

// fuzzKindByStatus checks the kinds that an HTTP status decides alone.
func fuzzKindByStatus(t *testing.T, pe *provider.Error, status int) {
	t.Helper()
	want := map[int]provider.Kind{401: provider.KindAuth, 403: provider.KindForbidden, 404: provider.KindNotFound, 409: provider.KindConflict}
	if k, ok := want[status]; ok && pe.Kind != k {
		t.Fatalf("answer %d classified %v", status, pe.Kind)
	}
}

// FuzzChange serves a fixed credential (disabled when the change asks for active, enabled when
// it asks for inactive) and a fuzzed answer to the PUT of the active flag; a body-less success
// is read back, and the read answers the fixed credential again.
//
// Invariants: as FuzzRead; exactly one PUT, of {"active": <the requested status>}; no DELETE;
// a success is changed, and pending only toward the requested status.
func FuzzChange(f *testing.F) {
	for i, a := range fuzzAnswers {
		f.Add(a.status, []byte(a.body), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, active bool) {
		status = providertest.Status(status)
		token, secret := providertest.Secret("access-token"), providertest.Secret("client-secret")
		body = fuzzAnswer(body, token, secret)
		want, was := provider.StatusActive, fuzzCredential("false", "DISABLED")
		if !active {
			want, was = provider.StatusInactive, fuzzCredential("true", "ENABLED")
		}
		puts := 0
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			fuzzCheckRequest(t, r, token)
			switch {
			case r.Method == http.MethodGet && r.URL.Path == credentialsPath+fuzzCredID:
				return 200, fuzzAnswer([]byte(was), token, secret)
			case r.Method == http.MethodPut && r.URL.Path == credentialsPath+fuzzCredID+"/active":
				puts++
				var sent map[string]any
				if err := json.NewDecoder(r.Body).Decode(&sent); err != nil || len(sent) != 1 || sent["active"] != active {
					t.Errorf("PUT body %v (%v), want {\"active\": %v}", sent, err, active)
				}
				return status, body
			}
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return 500, nil
		}}
		res, err := NewClient("https://palisade.example", token, providertest.Upstream(ft)).Change(context.Background(), &provider.Change{ID: fuzzCredID, Status: want})
		ft.Check(t)
		if puts != 1 {
			t.Fatalf("%d PUTs", puts)
		}
		if err != nil {
			providertest.CheckCredential(t, nil, err, token, secret)
			pe := providertest.Err(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, answer %d", pe.StatusCode, status)
			}
			fuzzKindByStatus(t, pe, status)
			return
		}
		providertest.CheckCredential(t, &res.Credential, nil, token, secret)
		if status < 200 || status > 299 {
			t.Fatalf("a change accepted from an answer %d", status)
		}
		if !res.Changed {
			t.Fatal("a change that wrote reported unchanged")
		}
		if res.PendingStatus != "" && res.PendingStatus != want {
			t.Fatalf("pending %q after asking %q", res.PendingStatus, want)
		}
	})
}

// Real answers of the token endpoint and their variations.
var fuzzTokenAnswers = []struct {
	status int
	body   string
}{
	{200, `{"accessToken": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2ln", "scope": "vault:read vault:write credentials:write", "expiresIn": 3600, "tokenType": "Bearer"}`},
	{200, `{"accessToken": "tok", "expiresIn": "120"}`},
	{200, `{"expiresIn": 3600, "tokenType": "Bearer"}`},
	{200, `{"accessToken": "", "expiresIn": 3600}`},
	{200, `{"accessToken": 12345}`},
	{200, `{"accessToken": "tok", "expiresIn": 1e400}`},
	{200, `{"accessToken": "tok", "expiresIn": -1}`},
	{200, `{"accessToken": "tok", "expiresIn": "NaN"}`},
	{200, `{"accessToken": "tok", "expiresIn": 99999999999999999999}`},
	{200, `{"accessToken": "t\u00e9k"}`},
	{200, `{"accessToken": "two words"}`},
	{200, `{"accessToken": "tok`},
	{200, ``},
	{201, `{"accessToken": "tok"}`},
	{204, ``},
	{400, `{"code": 3, "message": "clientId and clientSecret are required"}`},
	{401, `{"code": 16, "message": "invalid client credentials"}`},
	{403, `{"code": 7, "message": "forbidden"}`},
	{404, `{"code": 5, "message": "not found"}`},
	{409, `{}`},
	{422, `{"code": "x y"}`},
}

// FuzzToken serves a fuzzed answer of the OAuth token endpoint; the API call made with the
// token it gave answers 200, 401, 403 or 404 (get picks which); plant puts a known access token
// first in the answer (a later accessToken of the answer wins).
//
// Invariants: it never panics; 400, 401 and 403 of the token endpoint are auth, another
// status outside 2xx a provider error, with the endpoint's status and no API call; a 2xx
// without a usable token is a provider error without an API call; a token is sent only as a
// valid header value; a 401 of the API fetches the token once more, and a second 401 is auth;
// the client secret, a planted access token and the credential's clientSecret appear in no
// error and no metadata.
func FuzzToken(f *testing.F) {
	for i, a := range fuzzTokenAnswers {
		f.Add(a.status, []byte(a.body), uint8(i), i%3 == 0)
	}
	gets := []int{200, 401, 403, 404}
	f.Fuzz(func(t *testing.T, status int, body []byte, get uint8, plant bool) {
		status = providertest.Status(status)
		getStatus := gets[int(get)%len(gets)]
		clientID, clientSecret, credSecret := providertest.Secret("client-id"), providertest.Secret("oauth-secret"), providertest.Secret("client-secret")
		planted := providertest.Secret("planted-token")
		if plant {
			body = providertest.Plant(body, providertest.Top, "accessToken", planted)
		}
		body = providertest.Plant(body, providertest.Top, "message", "client "+clientSecret+" refused")
		posts, apiCalls := 0, 0
		ft := &providertest.Transport{Answer: func(r *http.Request) (int, []byte) {
			fuzzCheckRequest(t, r, "")
			if r.Method == http.MethodPost && r.URL.Path == tokenPath {
				posts++
				var sent map[string]string
				if err := json.NewDecoder(r.Body).Decode(&sent); err != nil || len(sent) != 2 || sent["clientId"] != clientID || sent["clientSecret"] != clientSecret {
					t.Errorf("token request %v (%v)", sent, err)
				}
				if r.Header.Get("Authorization") != "" {
					t.Errorf("token request with Authorization")
				}
				return status, body
			}
			if r.Method != http.MethodGet || r.URL.Path != credentialsPath+fuzzCredID {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
			}
			apiCalls++
			if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") || len(auth) == len("Bearer ") {
				t.Errorf("API call with Authorization %q", auth)
			}
			switch getStatus {
			case 200:
				return 200, fuzzAnswer([]byte(fuzzCredential("true", "ENABLED")), planted, credSecret)
			case 401:
				return 401, []byte(`{"code": 16, "message": "token expired"}`)
			case 403:
				return 403, []byte(`{"code": 7, "message": "permission denied"}`)
			}
			return 404, []byte(`{"code": 5, "message": "not found"}`)
		}}
		c := NewOAuthClient("https://palisade.example", clientID, clientSecret, providertest.Upstream(ft))
		cred, err := c.Read(context.Background(), fuzzCredID)
		ft.Check(t)
		providertest.CheckCredential(t, cred, err, clientSecret, planted, credSecret)
		if posts < 1 || posts > 2 || apiCalls > posts {
			t.Fatalf("%d token requests, %d API calls", posts, apiCalls)
		}
		if apiCalls == 0 {
			pe := providertest.Err(t, err)
			if pe.StatusCode != status {
				t.Fatalf("error with status %d, token endpoint answered %d", pe.StatusCode, status)
			}
			switch {
			case status == 400 || status == 401 || status == 403:
				if pe.Kind != provider.KindAuth {
					t.Fatalf("token endpoint %d classified %v", status, pe.Kind)
				}
			case pe.Kind != provider.KindUpstream:
				t.Fatalf("token endpoint %d classified %v", status, pe.Kind)
			}
			return
		}
		if status < 200 || status > 299 {
			t.Fatalf("an API call after the token endpoint answered %d", status)
		}
		switch getStatus {
		case 200:
			if err != nil {
				t.Fatalf("API answered 200, yet %v", err)
			}
			fuzzCheckWords(t, cred)
		case 401:
			if posts != 2 || apiCalls != 2 || provider.KindOf(err) != provider.KindAuth {
				t.Fatalf("after 401s: %d token requests, %d API calls, %v", posts, apiCalls, err)
			}
		default:
			fuzzKindByStatus(t, providertest.Err(t, err), getStatus)
		}
	})
}
