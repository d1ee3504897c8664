package prefactortest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/credgate/credgate/adapters/prefactor"
	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/module/credentialstatus"
)

// TestThroughTheHost runs the adapter behind the credential_status handler, against the
// simulator's demo data: what a client of the gateway sees.
func TestThroughTheHost(t *testing.T) {
	s := prefactortest.New("")
	defer s.Close()
	s.SeedDemo()
	t.Setenv("CREDGATE_TEST_PREFACTOR_HOST", prefactortest.DemoBearer)

	cfg, err := json.Marshal(map[string]any{"providers": map[string]any{
		"tokens": map[string]any{"adapter": "prefactor", "base_url": s.URL, "token": "{env.CREDGATE_TEST_PREFACTOR_HOST}"},
	}})
	require.NoError(t, err)
	h := new(credentialstatus.Handler)
	require.NoError(t, json.Unmarshal(cfg, h))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, h.Provision(ctx))
	defer func() { assert.NoError(t, h.Cleanup()) }()

	do := func(method, id, body string) (int, map[string]any) {
		var req *http.Request
		if body == "" {
			req = httptest.NewRequest(method, "/credentials/"+id+"/status", nil)
		} else {
			req = httptest.NewRequest(method, "/credentials/"+id+"/status", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		}
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusTeapot)
			return nil
		})
		require.NoError(t, h.ServeHTTP(rec, req, next))
		assert.NotContains(t, rec.Body.String(), prefactortest.DemoBearer, "no secret in any answer")
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}

	code, out := do("GET", prefactortest.DemoActive, "")
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, "active", out["status"])
	assert.Equal(t, "active", out["provider_status"])
	assert.Equal(t, "prefactor", out["adapter"])
	assert.Equal(t, prefactortest.DemoAccount, out["credential"].(map[string]any)["account_id"])

	code, out = do("PUT", prefactortest.DemoActive, `{"status": "inactive"}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, "inactive", out["status"])
	assert.Equal(t, "suspended", out["provider_status"])
	assert.Equal(t, true, out["changed"])

	s.ResetLog()
	code, out = do("PUT", prefactortest.DemoActive, `{"status": "inactive"}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, false, out["changed"])
	assert.Equal(t, 0, s.Writes())

	code, out = do("PUT", prefactortest.DemoRevoked, `{"status": "active"}`)
	assert.Equal(t, http.StatusConflict, code, out)
	assert.Equal(t, credentialstatus.ProblemTypePrefix+"transition-not-allowed", out["type"])
	assert.Equal(t, 0, s.Writes())

	code, out = do("GET", "013xrzp12g3nqk8nr5vkdt0k3n0000zz", "")
	assert.Equal(t, http.StatusNotFound, code, out)
	assert.Equal(t, credentialstatus.ProblemTypePrefix+"credential-not-found", out["type"])
}
