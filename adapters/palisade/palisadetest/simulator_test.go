package palisadetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider/providertest"
)

const (
	palisadeTestTreasury   = "ce4918bf-a199-4ce2-85a3-d0d296855384"
	palisadeTestSettlement = "5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13"
)

// palisadeDo sends one request and decodes the JSON answer.
func palisadeDo(t *testing.T, p *Simulator, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.URL+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func palisadeNewSim(t *testing.T) *Simulator {
	t.Helper()
	p := New("")
	t.Cleanup(p.Close)
	p.SeedDemo()
	return p
}

func palisadeAssertRPC(t *testing.T, body map[string]any, code int) {
	t.Helper()
	assert.Equal(t, float64(code), body["code"])
	assert.NotEmpty(t, body["message"])
	details, ok := body["details"].([]any)
	require.True(t, ok, "details is a list")
	require.Len(t, details, 1)
	assert.Equal(t, "type.googleapis.com/google.rpc.ErrorInfo", details[0].(map[string]any)["@type"])
}

func TestPalisadeTokenEndpoint(t *testing.T) {
	p := palisadeNewSim(t)
	status, body := palisadeDo(t, p, http.MethodPost, "/v2/credentials/oauth/token", "", `{"clientId": "local-client-id", "clientSecret": "local-client-secret"}`)
	require.Equal(t, http.StatusOK, status)
	tok, _ := body["accessToken"].(string)
	assert.Len(t, tok, 64)
	assert.Equal(t, float64(3600), body["expiresIn"])
	assert.Equal(t, "Bearer", body["tokenType"])
	assert.NotEmpty(t, body["scope"])

	status, body = palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, tok, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Treasury", body["name"])

	p.SetExpiresInAsString(true)
	p.SetTokenLifetime(2 * time.Minute)
	_, body = palisadeDo(t, p, http.MethodPost, "/v2/credentials/oauth/token", "", `{"clientId": "local-client-id", "clientSecret": "local-client-secret"}`)
	assert.Equal(t, "120", body["expiresIn"])

	status, body = palisadeDo(t, p, http.MethodPost, "/v2/credentials/oauth/token", "", `{"clientId": "local-client-id", "clientSecret": "nope"}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	palisadeAssertRPC(t, body, 16)
	status, body = palisadeDo(t, p, http.MethodPost, "/v2/credentials/oauth/token", "", `{"clientId": "local-client-id"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	palisadeAssertRPC(t, body, 3)
	assert.Equal(t, 4, p.TokenCalls())

	p.ExpireTokens()
	status, body = palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, tok, "")
	assert.Equal(t, http.StatusUnauthorized, status)
	palisadeAssertRPC(t, body, 16)
	assert.Equal(t, "unauthenticated", body["message"])
}

func TestPalisadeTokenLifetime(t *testing.T) {
	p := palisadeNewSim(t)
	p.SetTokenLifetime(50 * time.Millisecond)
	_, body := palisadeDo(t, p, http.MethodPost, "/v2/credentials/oauth/token", "", `{"clientId": "local-client-id", "clientSecret": "local-client-secret"}`)
	tok := body["accessToken"].(string)
	status, _ := palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, tok, "")
	assert.Equal(t, http.StatusOK, status)
	time.Sleep(60 * time.Millisecond)
	status, _ = palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, tok, "")
	assert.Equal(t, http.StatusUnauthorized, status)
}

func TestPalisadeCredentialAndOrganizations(t *testing.T) {
	p := palisadeNewSim(t)
	p.AddToken("org-other", "other-token")
	p.AddCredential("org-other", "11111111-2222-4333-8444-555555555555", "Other", "AUDIT", "ENABLED", true, false)

	status, body := palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, "local-palisade-token", "")
	require.Equal(t, http.StatusOK, status)
	for _, k := range []string{"id", "name", "description", "category", "permissions", "createdBy", "organizationId",
		"createdAt", "updatedAt", "clientId", "clientSecret", "active", "status", "proposedPermissions", "allowedIps"} {
		assert.Contains(t, body, k)
	}
	assert.NotEmpty(t, body["clientSecret"], "the real API answers the secret")
	assert.Equal(t, "Credentials that belong to trading desk #1", body["description"])
	assert.Equal(t, "WALLETS", body["category"])
	assert.Equal(t, "org-demo", body["organizationId"])
	assert.Equal(t, true, body["active"])
	assert.Equal(t, "ENABLED", body["status"])

	status, body = palisadeDo(t, p, http.MethodGet, "/v2/credentials/11111111-2222-4333-8444-555555555555", "local-palisade-token", "")
	assert.Equal(t, http.StatusNotFound, status, "another organization's credential")
	palisadeAssertRPC(t, body, 5)
	status, _ = palisadeDo(t, p, http.MethodGet, "/v2/credentials/11111111-2222-4333-8444-555555555555", "other-token", "")
	assert.Equal(t, http.StatusOK, status)
	status, body = palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	palisadeAssertRPC(t, body, 16)
}

func TestPalisadeSetActive(t *testing.T) {
	p := palisadeNewSim(t)
	path := "/v2/credentials/" + palisadeTestTreasury + "/active"
	for _, bad := range []string{`{}`, `{"active": "false"}`, `{"active": 0}`, `not json`} {
		status, body := palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", bad)
		assert.Equal(t, http.StatusBadRequest, status, bad)
		palisadeAssertRPC(t, body, 3)
	}

	status, body := palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", `{"active": false}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, false, body["active"])
	assert.Equal(t, "DISABLED", body["status"])
	assert.NotEqual(t, "2022-03-29T10:22:22.420Z", body["updatedAt"])
	c, _ := p.Credential(palisadeTestTreasury)
	assert.False(t, c.Active)

	p.Update(palisadeTestTreasury, func(c *Credential) { c.Status = "DELETED" })
	status, body = palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", `{"active": true}`)
	assert.Equal(t, http.StatusBadRequest, status)
	palisadeAssertRPC(t, body, 9)
	assert.Equal(t, "credential is deleted", body["message"])

	status, body = palisadeDo(t, p, http.MethodPost, path, "local-palisade-token", `{"active": true}`)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	palisadeAssertRPC(t, body, 12)
}

func TestPalisadeApproval(t *testing.T) {
	p := palisadeNewSim(t)
	path := "/v2/credentials/" + palisadeTestSettlement + "/active"
	status, body := palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", `{"active": false}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, true, body["active"], "unchanged until approved")
	assert.Equal(t, "DISABLE_APPROVAL_PENDING", body["status"])

	assert.True(t, p.Approve(palisadeTestSettlement))
	c, _ := p.Credential(palisadeTestSettlement)
	assert.False(t, c.Active)
	assert.Equal(t, "DISABLED", c.Status)
	assert.False(t, p.Approve(palisadeTestSettlement), "nothing pending any more")

	_, body = palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", `{"active": true}`)
	assert.Equal(t, false, body["active"])
	assert.Equal(t, "ENABLE_APPROVAL_PENDING", body["status"])
	_, body = palisadeDo(t, p, http.MethodPut, path, "local-palisade-token", `{"active": false}`)
	assert.Equal(t, false, body["active"])
	assert.Equal(t, "DISABLED", body["status"], "asking for the flag it has withdraws the pending change")
}

func TestPalisadeFaultBody(t *testing.T) {
	p := palisadeNewSim(t)
	p.SetFault(providertest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	status, body := palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, "local-palisade-token", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	palisadeAssertRPC(t, body, 14)
	status, _ = palisadeDo(t, p, http.MethodGet, "/v2/credentials/"+palisadeTestTreasury, "local-palisade-token", "")
	assert.Equal(t, http.StatusOK, status)
}
