package prefactortest

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/prefactor"

	"github.com/credgate/credgate/module/provider/providertest"
)

// prefactorCall sends a request to the simulator and returns the status and decoded body.
func prefactorCall(t *testing.T, p *Simulator, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.URL+path, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func prefactorDemo(t *testing.T) *Simulator {
	t.Helper()
	p := New("")
	t.Cleanup(p.Close)
	p.SeedDemo()
	return p
}

const prefactorActivePath = "/api/v1/api_token/" + DemoActive

func TestPrefactorSeedDemoMatchesIDPattern(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + prefactor.IDPattern + `)$`)
	for _, id := range []string{DemoActive, DemoRevoked, DemoAccount} {
		assert.True(t, re.MatchString(id), id)
	}
	p := prefactorDemo(t)
	tok, ok := p.APIToken(DemoActive)
	require.True(t, ok)
	assert.Equal(t, "active", tok.Status)
	tok, ok = p.APIToken(DemoRevoked)
	require.True(t, ok)
	assert.Equal(t, "revoked", tok.Status)
}

func TestPrefactorRead(t *testing.T) {
	p := prefactorDemo(t)
	code, body := prefactorCall(t, p, http.MethodGet, prefactorActivePath, DemoBearer, "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "success", body["status"])
	d := body["details"].(map[string]any)
	assert.Equal(t, DemoActive, d["id"])
	assert.Equal(t, "active", d["status"])
	assert.Equal(t, "account", d["token_scope"])
	assert.Equal(t, "api_token", d["type"])
	assert.Contains(t, d, "last_used_at")
	assert.Nil(t, d["last_used_at"])
	assert.Equal(t, map[string]any{"activate": false, "suspend": true, "revoke": true, "delete": true}, d["available_actions"])

	code, body = prefactorCall(t, p, http.MethodGet, "/api/v1/api_token/"+DemoRevoked, DemoBearer, "")
	require.Equal(t, http.StatusOK, code)
	d = body["details"].(map[string]any)
	assert.Nil(t, d["environment_id"])
	assert.Equal(t, map[string]any{"activate": false, "suspend": false, "revoke": false, "delete": true}, d["available_actions"])
}

func TestPrefactorAuthAndOwnership(t *testing.T) {
	p := prefactorDemo(t)
	p.AddToken("other", "013xrzp12g3nqk8ngskn1wtxgka5b0zz")

	code, body := prefactorCall(t, p, http.MethodGet, prefactorActivePath, "", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, map[string]any{"status": "error", "code": "not_authenticated", "message": "missing or invalid API token"}, body)
	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", "wrong", "{}")
	assert.Equal(t, http.StatusUnauthorized, code)

	code, body = prefactorCall(t, p, http.MethodGet, prefactorActivePath, "other", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "not_found", body["code"])
	p.ForbidForeign = true
	code, body = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", "other", "{}")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "not_permitted", body["code"])

	code, body = prefactorCall(t, p, http.MethodGet, "/api/v1/api_token/013xrzp12g3nqk8nr5vkdt0k3n0000zz", DemoBearer, "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "not_found", body["code"])

	tok, _ := p.APIToken(DemoActive)
	assert.Equal(t, "active", tok.Status, "nothing applied")
}

func TestPrefactorMethodsAndPaths(t *testing.T) {
	p := prefactorDemo(t)
	req, _ := http.NewRequest(http.MethodDelete, p.URL+prefactorActivePath, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET", resp.Header.Get("Allow"))

	code, _ := prefactorCall(t, p, http.MethodGet, prefactorActivePath+"/suspend", DemoBearer, "")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/explode", DemoBearer, "{}")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, 1, p.Count(http.MethodPost), "every request is logged")
	tok, _ := p.APIToken(DemoActive)
	assert.Equal(t, "active", tok.Status)
}

func TestPrefactorTransitions(t *testing.T) {
	p := prefactorDemo(t)
	steps := []struct {
		action, want string
		code         int
	}{
		{"activate", "active", http.StatusConflict}, // repeat: refused by default
		{"suspend", "suspended", http.StatusOK},
		{"suspend", "suspended", http.StatusConflict},
		{"activate", "active", http.StatusOK},
		{"suspend", "suspended", http.StatusOK},
		{"revoke", "revoked", http.StatusOK},
		{"activate", "revoked", http.StatusConflict},
		{"suspend", "revoked", http.StatusConflict},
		{"revoke", "revoked", http.StatusConflict},
	}
	for i, s := range steps {
		code, body := prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/"+s.action, DemoBearer, "{}")
		assert.Equal(t, s.code, code, "step %d", i)
		if code == http.StatusOK {
			assert.Equal(t, s.want, body["details"].(map[string]any)["status"], "step %d", i)
		} else {
			assert.Equal(t, "error", body["status"], "step %d", i)
			assert.Equal(t, "invalid_action", body["code"], "step %d", i)
		}
		tok, _ := p.APIToken(DemoActive)
		assert.Equal(t, s.want, tok.Status, "step %d", i)
	}
}

func TestPrefactorSwitches(t *testing.T) {
	p := prefactorDemo(t)
	p.RefusalStatus = http.StatusBadRequest
	code, body := prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/activate", DemoBearer, "")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "invalid_action", body["code"])

	p.RefuseRepeat = false
	code, body = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/activate", DemoBearer, "")
	assert.Equal(t, http.StatusOK, code, "a repeat is a no-op success")
	assert.Equal(t, "active", body["details"].(map[string]any)["status"])
	code, _ = prefactorCall(t, p, http.MethodPost, "/api/v1/api_token/"+DemoRevoked+"/activate", DemoBearer, "")
	assert.Equal(t, http.StatusBadRequest, code, "revoked stays refused")
}

func TestPrefactorBodies(t *testing.T) {
	p := prefactorDemo(t)
	code, body := prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, "not json")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "bad_request", body["code"])
	code, body = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, `{"idempotency_key": "`+strings.Repeat("k", 65)+`"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Equal(t, "validation_errors", body["code"])
	assert.Contains(t, body, "errors")
	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, `{"idempotency_key": 7}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	tok, _ := p.APIToken(DemoActive)
	assert.Equal(t, "active", tok.Status, "nothing applied")

	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, `{"idempotency_key": null}`)
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, p.IdempotencyKeys())
}

func TestPrefactorIdempotencyReplay(t *testing.T) {
	p := prefactorDemo(t)
	key := `{"idempotency_key": "` + strings.Repeat("k", 64) + `"}`
	code, first := prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, key)
	require.Equal(t, http.StatusOK, code)
	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/activate", DemoBearer, `{}`)
	require.Equal(t, http.StatusOK, code)

	// The replay answers the first answer and does not suspend the token again.
	code, again := prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/suspend", DemoBearer, key)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, first, again)
	tok, _ := p.APIToken(DemoActive)
	assert.Equal(t, "active", tok.Status)

	// The same key on another action is a new request.
	code, _ = prefactorCall(t, p, http.MethodPost, prefactorActivePath+"/revoke", DemoBearer, key)
	assert.Equal(t, http.StatusOK, code)
	tok, _ = p.APIToken(DemoActive)
	assert.Equal(t, "revoked", tok.Status)
	assert.Equal(t, []string{strings.Repeat("k", 64), strings.Repeat("k", 64), strings.Repeat("k", 64)}, p.IdempotencyKeys())
}

func TestPrefactorFault(t *testing.T) {
	p := prefactorDemo(t)
	p.SetFault(providertest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	code, body := prefactorCall(t, p, http.MethodGet, prefactorActivePath, DemoBearer, "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "error", body["status"])
	assert.Equal(t, "simulated_fault", body["code"])
	code, _ = prefactorCall(t, p, http.MethodGet, prefactorActivePath, DemoBearer, "")
	assert.Equal(t, http.StatusOK, code)
}
