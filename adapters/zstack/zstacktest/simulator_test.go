package zstacktest

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

// zstackDo sends a request to the simulator and returns its status and decoded JSON body.
func zstackDo(t *testing.T, z *Simulator, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, z.URL+path, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := z.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

func zstackErrorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestZStackRead(t *testing.T) {
	z := New("")
	defer z.Close()
	z.SeedDemo()
	path := "/api/v1/credentials/" + DemoID

	status, body := zstackDo(t, z, http.MethodGet, path, DemoToken, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, DemoID, body["uuid"])
	assert.Equal(t, "prod-db-password", body["name"])
	assert.Equal(t, "CREDENTIAL_TYPE_PASSWORD", body["type"])
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", body["healthStatus"])
	assert.Equal(t, "admin@example.com", body["createdBy"])
	exp, err := time.Parse(time.RFC3339, body["expiresAt"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().AddDate(1, 0, 0), exp, time.Minute)
	assert.NotContains(t, body, "value", "the stored value is never returned")

	z.ObjectEnums = true
	_, body = zstackDo(t, z, http.MethodGet, path, DemoToken, "")
	assert.Equal(t, map[string]any{}, body["type"])
	assert.Equal(t, map[string]any{}, body["healthStatus"])
	z.ObjectEnums = false

	status, body = zstackDo(t, z, http.MethodGet, path, "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "ID.1001", zstackErrorCode(body))
	status, body = zstackDo(t, z, http.MethodGet, path, "wrong", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "ID.1001", zstackErrorCode(body))

	status, body = zstackDo(t, z, http.MethodGet, "/api/v1/credentials/cred-nope", DemoToken, "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "SYS.1404", zstackErrorCode(body))

	status, body = zstackDo(t, z, http.MethodDelete, path, DemoToken, "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	assert.NotEmpty(t, zstackErrorCode(body))

	// A credential whose expiry passed shows as expired.
	z.AddCredential(Credential{UUID: "cred-old", ExpiresAt: "2020-01-01T00:00:00Z"})
	_, body = zstackDo(t, z, http.MethodGet, "/api/v1/credentials/cred-old", DemoToken, "")
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_EXPIRED", body["healthStatus"])
	// One that never expires has no expiresAt.
	z.AddCredential(Credential{UUID: "cred-forever"})
	_, body = zstackDo(t, z, http.MethodGet, "/api/v1/credentials/cred-forever", DemoToken, "")
	assert.NotContains(t, body, "expiresAt")
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", body["healthStatus"])
}

func TestZStackUpdate(t *testing.T) {
	z := New("")
	defer z.Close()
	z.SeedDemo()
	path := "/api/v1/credentials/" + DemoID

	status, body := zstackDo(t, z, http.MethodPut, path, DemoToken, `{"expiresAt": "2020-05-01T00:00:00Z", "operator": "ops@example.com"}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "2020-05-01T00:00:00Z", body["expiresAt"])
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_EXPIRED", body["healthStatus"])
	assert.Equal(t, "prod-db-password", body["name"], "a partial update keeps the other fields")
	assert.NotContains(t, body, "value")
	assert.Equal(t, "ops@example.com", z.LastOperator(DemoID))
	assert.Equal(t, 0, z.ValueWrites())
	c, _ := z.Credential(DemoID)
	assert.Equal(t, DemoValue, c.Value)

	status, body = zstackDo(t, z, http.MethodPut, path, DemoToken, `{"expiresAt": "2999-01-01T00:00:00.5+02:00", "value": "rotated", "name": "renamed"}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", body["healthStatus"])
	assert.Equal(t, "renamed", body["name"])
	assert.NotContains(t, body, "value")
	assert.Equal(t, 1, z.ValueWrites())
	c, _ = z.Credential(DemoID)
	assert.Equal(t, "rotated", c.Value)
	assert.Equal(t, "ops@example.com", c.LastOperator, "kept when a PUT names no operator")

	for _, tc := range []struct{ body, code string }{
		{`{"expiresAt": "2027-01-01T00:00:00Z", "enabled": false}`, "SYS.1002"},
		{`[]`, "SYS.1002"},
		{`null`, "SYS.1002"},
		{`{"expiresAt": `, "SYS.1002"},
		{`{"name": 5}`, "SYS.1002"},
		{`{"expiresAt": "tomorrow"}`, "SYS.1003"},
		{`{"expiresAt": ""}`, "SYS.1003"},
	} {
		status, body := zstackDo(t, z, http.MethodPut, path, DemoToken, tc.body)
		assert.Equal(t, http.StatusBadRequest, status, tc.body)
		assert.Equal(t, tc.code, zstackErrorCode(body), tc.body)
	}
	c, _ = z.Credential(DemoID)
	assert.Equal(t, "2999-01-01T00:00:00.5+02:00", c.ExpiresAt, "a refused update changes nothing")

	status, body = zstackDo(t, z, http.MethodPut, "/api/v1/credentials/cred-nope", DemoToken, `{}`)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "SYS.1404", zstackErrorCode(body))
	status, _ = zstackDo(t, z, http.MethodPut, path, "wrong", `{}`)
	assert.Equal(t, http.StatusUnauthorized, status)
}

func TestZStackFaultShape(t *testing.T) {
	z := New("")
	defer z.Close()
	z.SeedDemo()
	z.SetFault(providertest.Fault{Status: http.StatusInternalServerError, Times: 1})
	status, body := zstackDo(t, z, http.MethodGet, "/api/v1/credentials/"+DemoID, DemoToken, "")
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Equal(t, "simulated_fault", zstackErrorCode(body))
	status, _ = zstackDo(t, z, http.MethodGet, "/api/v1/credentials/"+DemoID, DemoToken, "")
	assert.Equal(t, http.StatusOK, status)
}
