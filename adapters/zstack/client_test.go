package zstack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/provider/providertest"
)

const (
	demoID    = zstacktest.DemoID
	demoToken = zstacktest.DemoToken
	demoValue = zstacktest.DemoValue
	otherID   = "cred-00000000-0000-4000-8000-000000000001"
)

func upstream() *provider.Upstream {
	return &provider.Upstream{Transport: &http.Transport{}, MaxResponse: 1 << 16}
}

func newSim(t *testing.T) *zstacktest.Simulator {
	t.Helper()
	z := zstacktest.New("")
	t.Cleanup(z.Close)
	z.SeedDemo()
	return z
}

func newClient(z *zstacktest.Simulator, token string) *Client {
	return NewClient(z.URL, token, "", 0, upstream())
}

// secretFree asserts that nothing the client returned holds a secret.
func secretFree(t *testing.T, v any, secrets ...string) {
	t.Helper()
	var text string
	switch v := v.(type) {
	case error:
		text = v.Error()
	default:
		b, err := json.Marshal(v)
		require.NoError(t, err)
		text = string(b)
	}
	for _, s := range append(secrets, demoValue, demoToken, `"value"`) {
		assert.NotContains(t, text, s)
	}
}

func metadataJSON(t *testing.T, m any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestReadDemo(t *testing.T) {
	z := newSim(t)
	c := newClient(z, demoToken)
	cred, err := c.Read(context.Background(), demoID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", cred.ProviderStatus)
	m := metadataJSON(t, cred.Metadata)
	assert.Equal(t, demoID, m["uuid"])
	assert.Equal(t, "prod-db-password", m["name"])
	assert.Equal(t, "Primary database password for production environment", m["description"])
	assert.Equal(t, "CREDENTIAL_TYPE_PASSWORD", m["type"])
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", m["health_status"])
	assert.Equal(t, "admin@example.com", m["created_by"])
	assert.NotEmpty(t, m["expires_at"])
	assert.NotEmpty(t, m["create_date"])
	assert.NotEmpty(t, m["last_op_date"])
	secretFree(t, cred)

	reqs := z.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/api/v1/credentials/"+demoID, reqs[0].Path)
	assert.Equal(t, "Bearer "+demoToken, reqs[0].Header.Get("Authorization"))
}

func TestReadToleratesObjectEnums(t *testing.T) {
	z := newSim(t)
	z.ObjectEnums = true
	cred, err := newClient(z, demoToken).Read(context.Background(), demoID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
	assert.Empty(t, cred.ProviderStatus, "an object is not a status word")
	m := metadataJSON(t, cred.Metadata)
	assert.NotContains(t, m, "type")
	assert.NotContains(t, m, "health_status")
	assert.Equal(t, "prod-db-password", m["name"])
}

// vendor serves canned answers, and records what it received.
type vendor struct {
	mu     sync.Mutex
	get    func(w http.ResponseWriter)
	put    func(w http.ResponseWriter)
	paths  []string
	bodies []string
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	v.paths = append(v.paths, r.Method+" "+r.URL.EscapedPath())
	v.bodies = append(v.bodies, string(body))
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPut {
		v.put(w)
		return
	}
	v.get(w)
}

func answer(status int, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newVendor(t *testing.T, v *vendor) *Client {
	t.Helper()
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, "tok-123", "", 0, upstream())
	return c
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestReadStatusFromExpiry(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		status    provider.Status
		provider  string
		expiresAt any
	}{
		{"the page's example", `{"uuid": "` + demoID + `", "name": "prod-db-password", "type": {}, "healthStatus": {}, "expiresAt": "example", "createdBy": "admin@example.com", "createDate": "example"}`, provider.StatusUnknown, "", "example"},
		{"no expiry", `{"uuid": "x", "healthStatus": "CREDENTIAL_HEALTH_STATUS_HEALTHY"}`, provider.StatusActive, "CREDENTIAL_HEALTH_STATUS_HEALTHY", nil},
		{"null expiry", `{"uuid": "x", "expiresAt": null}`, provider.StatusActive, "", nil},
		{"empty expiry", `{"uuid": "x", "expiresAt": ""}`, provider.StatusActive, "", nil},
		{"future", `{"expiresAt": "2026-03-01T12:00:01Z"}`, provider.StatusActive, "", "2026-03-01T12:00:01Z"},
		{"future, fractional, offset", `{"expiresAt": "2026-03-01T13:00:00.5+01:00"}`, provider.StatusActive, "", "2026-03-01T13:00:00.5+01:00"},
		{"exactly now", `{"expiresAt": "2026-03-01T12:00:00Z"}`, provider.StatusInactive, "", "2026-03-01T12:00:00Z"},
		{"past, fractional", `{"expiresAt": "2026-03-01T11:59:59.999999Z", "healthStatus": "CREDENTIAL_HEALTH_STATUS_EXPIRED"}`, provider.StatusInactive, "CREDENTIAL_HEALTH_STATUS_EXPIRED", "2026-03-01T11:59:59.999999Z"},
		{"date only", `{"expiresAt": "2026-03-02"}`, provider.StatusUnknown, "", "2026-03-02"},
		{"object expiry", `{"expiresAt": {}}`, provider.StatusUnknown, "", nil},
		{"number expiry", `{"expiresAt": 1767225600}`, provider.StatusUnknown, "", nil},
		{"number health status", `{"healthStatus": 2}`, provider.StatusActive, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newVendor(t, &vendor{get: answer(200, tc.body)})
			c.now = func() time.Time { return fixedNow }
			cred, err := c.Read(context.Background(), demoID)
			require.NoError(t, err)
			assert.Equal(t, tc.status, cred.Status)
			assert.Equal(t, tc.provider, cred.ProviderStatus)
			assert.Equal(t, tc.expiresAt, metadataJSON(t, cred.Metadata)["expires_at"])
		})
	}
}

func TestReadEscapesTheID(t *testing.T) {
	v := &vendor{get: answer(200, `{}`)}
	c := newVendor(t, v)
	_, err := c.Read(context.Background(), "cred-a/../b?c#d e")
	require.NoError(t, err)
	assert.Equal(t, []string{"GET /api/v1/credentials/cred-a%2F..%2Fb%3Fc%23d%20e"}, v.paths)
}

func TestReadMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"null":             `null`,
		"array":            `[{"uuid": "x"}]`,
		"string":           `"cred"`,
		"cut off":          `{"uuid": "cred-`,
		"empty":            ``,
		"html":             `<html>moved</html>`,
		"wrong typed name": `{"name": {"x": 1}, "expiresAt": "2030-01-01T00:00:00Z"}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := newVendor(t, &vendor{get: answer(200, body)})
			cred, err := c.Read(context.Background(), demoID)
			if name == "wrong typed name" {
				// A loosely typed field is dropped, never a reason to fail.
				require.NoError(t, err)
				assert.Equal(t, provider.StatusActive, cred.Status)
				assert.NotContains(t, metadataJSON(t, cred.Metadata), "name")
				return
			}
			require.Error(t, err)
			var pe *provider.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, provider.KindUpstream, pe.Kind)
			assert.Equal(t, 200, pe.StatusCode)
		})
	}
}

func TestChangeInactiveThenIdempotent(t *testing.T) {
	z := newSim(t)
	c := newClient(z, demoToken)
	before := time.Now()
	res, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_EXPIRED", res.ProviderStatus)
	secretFree(t, res)

	cr, ok := z.Credential(demoID)
	require.True(t, ok)
	exp, err := time.Parse(time.RFC3339, cr.ExpiresAt)
	require.NoError(t, err)
	assert.False(t, exp.After(time.Now()), "the expiry is at most now")
	assert.WithinDuration(t, before, exp, 2*time.Second)
	assert.Equal(t, demoValue, cr.Value, "a status change never rotates the secret")
	assert.Equal(t, 0, z.ValueWrites())
	assert.Equal(t, DefaultOperator, z.LastOperator(demoID))

	// The write is a partial update: the expiry and the operator, nothing else.
	reqs := z.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, http.MethodPut, reqs[1].Method)
	assert.Equal(t, "/api/v1/credentials/"+demoID, reqs[1].Path)
	assert.Equal(t, "Bearer "+demoToken, reqs[1].Header.Get("Authorization"))
	assert.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(reqs[1].Body, &body))
	assert.Equal(t, map[string]any{"expiresAt": cr.ExpiresAt, "operator": DefaultOperator}, body)
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, body["expiresAt"], "UTC, to the second")

	res, err = c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, provider.StatusInactive, res.Status)
	assert.Equal(t, 1, z.Writes(), "no write when the status is already inactive")
}

func TestChangeActiveReactivates(t *testing.T) {
	z := newSim(t)
	z.AddCredential(zstacktest.Credential{UUID: otherID, Name: "ci", ExpiresAt: "2020-01-01T00:00:00Z", Value: "ci-secret"})
	c := NewClient(z.URL, demoToken, "gateway-7", 48*time.Hour, upstream())

	cred, err := c.Read(context.Background(), otherID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusInactive, cred.Status)

	res, err := c.Change(context.Background(), &provider.Change{ID: otherID, Status: provider.StatusActive, Operator: "alice@example.com"})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_HEALTHY", res.ProviderStatus)
	secretFree(t, res, "ci-secret")
	cr, _ := z.Credential(otherID)
	exp, err := time.Parse(time.RFC3339, cr.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(48*time.Hour), exp, 5*time.Second, "now + reactivate_for")
	assert.Equal(t, "alice@example.com", z.LastOperator(otherID), "the authenticated caller is the operator")
	assert.Equal(t, "ci-secret", cr.Value)
	assert.Equal(t, 0, z.ValueWrites())
	assert.Equal(t, 1, z.Writes())

	// Active without an expiry: already active, nothing to write.
	res, err = c.Change(context.Background(), &provider.Change{ID: otherID, Status: provider.StatusActive})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, 1, z.Writes())

	// A configured operator is used when the caller is unknown.
	_, err = c.Change(context.Background(), &provider.Change{ID: otherID, Status: provider.StatusInactive})
	require.NoError(t, err)
	assert.Equal(t, "gateway-7", z.LastOperator(otherID))
}

func TestChangeActiveWithExpiry(t *testing.T) {
	z := newSim(t)
	c := newClient(z, demoToken)
	want := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)

	res, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusActive, ExpiresAt: want.Add(300 * time.Millisecond)})
	require.NoError(t, err)
	assert.True(t, res.Changed, "a new expiry is a change even for an active credential")
	assert.Equal(t, provider.StatusActive, res.Status)
	assert.Equal(t, want.Format(time.RFC3339), metadataJSON(t, res.Metadata)["expires_at"])
	cr, _ := z.Credential(demoID)
	assert.Equal(t, want.Format(time.RFC3339), cr.ExpiresAt)
	assert.Equal(t, 1, z.Writes())

	// The same expiry again (in another zone): unchanged, no write.
	res, err = c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusActive, ExpiresAt: want.In(time.FixedZone("x", 3600))})
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, 1, z.Writes())

	// A credential that never expires gets the expiry it is asked for.
	z.AddCredential(zstacktest.Credential{UUID: otherID, Value: "v"})
	cred, err := c.Read(context.Background(), otherID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
	res, err = c.Change(context.Background(), &provider.Change{ID: otherID, Status: provider.StatusActive, ExpiresAt: want})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	cr, _ = z.Credential(otherID)
	assert.Equal(t, want.Format(time.RFC3339), cr.ExpiresAt)
	assert.Equal(t, 0, z.ValueWrites())
}

func TestChangeRefusesWhatZStackCannotExpress(t *testing.T) {
	z := newSim(t)
	c := newClient(z, demoToken)
	for name, ch := range map[string]*provider.Change{
		"revoked":            {ID: demoID, Status: provider.StatusRevoked},
		"unknown":            {ID: demoID, Status: provider.StatusUnknown},
		"inactive with date": {ID: demoID, Status: provider.StatusInactive, ExpiresAt: time.Now().Add(time.Hour)},
		"past expiry":        {ID: demoID, Status: provider.StatusActive, ExpiresAt: time.Now().Add(-time.Minute)},
	} {
		_, err := c.Change(context.Background(), ch)
		assert.Equal(t, provider.KindUnsupported, provider.KindOf(err), name)
	}
	assert.Empty(t, z.Requests(), "refused before any call")
}

func TestChangeAnswers(t *testing.T) {
	const cur = `{"uuid": "` + demoID + `", "name": "n", "createdBy": "admin@example.com", "healthStatus": "CREDENTIAL_HEALTH_STATUS_HEALTHY"}`
	t.Run("answer without expiry: the one sent", func(t *testing.T) {
		v := &vendor{get: answer(200, cur), put: answer(200, `{"uuid": "`+demoID+`", "value": "leaked-secret", "healthStatus": {}}`)}
		c := newVendor(t, v)
		res, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
		require.NoError(t, err)
		assert.True(t, res.Changed)
		assert.Equal(t, provider.StatusInactive, res.Status)
		assert.Empty(t, res.ProviderStatus)
		m := metadataJSON(t, res.Metadata)
		assert.Equal(t, "n", m["name"], "filled from the read")
		assert.NotContains(t, m, "health_status", "the old health status is stale")
		var sent update
		require.NoError(t, json.Unmarshal([]byte(v.bodies[1]), &sent))
		assert.Equal(t, sent.ExpiresAt, m["expires_at"])
		secretFree(t, res, "leaked-secret")
	})
	t.Run("204", func(t *testing.T) {
		c := newVendor(t, &vendor{get: answer(200, cur), put: answer(204, ``)})
		res, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
		require.NoError(t, err)
		assert.True(t, res.Changed)
		assert.Equal(t, provider.StatusInactive, res.Status)
	})
	t.Run("the answer's expiry wins", func(t *testing.T) {
		c := newVendor(t, &vendor{get: answer(200, cur), put: answer(200, `{"expiresAt": "2999-01-01T00:00:00Z"}`)})
		res, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
		require.NoError(t, err)
		assert.Equal(t, provider.StatusActive, res.Status, "the status is what the vendor says it did")
	})
	t.Run("malformed answer", func(t *testing.T) {
		c := newVendor(t, &vendor{get: answer(200, cur), put: answer(200, `{"expiresAt": `)})
		_, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
		assert.Equal(t, provider.KindUpstream, provider.KindOf(err))
	})
	t.Run("an error to the write", func(t *testing.T) {
		c := newVendor(t, &vendor{get: answer(200, cur), put: answer(409, `{"error": {"code": "SYS.1009", "description": "tok-123 cannot", "details": "value s3cr3t"}}`)})
		_, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
		var pe *provider.Error
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, provider.KindConflict, pe.Kind)
		assert.Equal(t, "ZStack error SYS.1009", pe.Detail)
		secretFree(t, err, "tok-123", "s3cr3t", "cannot")
	})
}

func TestErrors(t *testing.T) {
	z := newSim(t)
	ops := map[string]func(c *Client) error{
		"read": func(c *Client) error { _, err := c.Read(context.Background(), demoID); return err },
		"change": func(c *Client) error {
			_, err := c.Change(context.Background(), &provider.Change{ID: demoID, Status: provider.StatusInactive})
			return err
		},
	}
	for op, call := range ops {
		t.Run(op+" wrong token", func(t *testing.T) {
			err := call(newClient(z, "wrong-token"))
			var pe *provider.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, provider.KindAuth, pe.Kind)
			assert.Equal(t, 401, pe.StatusCode)
			assert.Equal(t, "ZStack error ID.1001", pe.Detail)
			secretFree(t, err, "wrong-token", "bearer token")
		})
		t.Run(op+" unknown credential", func(t *testing.T) {
			c := newClient(z, demoToken)
			var err error
			if op == "read" {
				_, err = c.Read(context.Background(), otherID)
			} else {
				_, err = c.Change(context.Background(), &provider.Change{ID: otherID, Status: provider.StatusActive})
			}
			var pe *provider.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, provider.KindNotFound, pe.Kind)
			assert.Equal(t, "ZStack error SYS.1404", pe.Detail)
		})
		for _, tc := range []struct {
			fault providertest.Fault
			kind  provider.Kind
			code  int
		}{
			{providertest.Fault{Status: 400}, provider.KindRejected, 400},
			{providertest.Fault{Status: 403}, provider.KindForbidden, 403},
			{providertest.Fault{Status: 409}, provider.KindConflict, 409},
			{providertest.Fault{Status: 429, RetryAfter: "7"}, provider.KindRateLimited, 429},
			{providertest.Fault{Status: 500}, provider.KindUpstream, 500},
			{providertest.Fault{Status: 503}, provider.KindUpstream, 503},
			{providertest.Fault{Malformed: true}, provider.KindUpstream, 200},
			{providertest.Fault{WrongContentType: true}, provider.KindUpstream, 200},
			{providertest.Fault{Huge: 1 << 17}, provider.KindUpstream, 200},
			{providertest.Fault{Reset: true}, provider.KindUpstream, 0},
		} {
			name, _ := json.Marshal(tc.fault)
			t.Run(op+" "+string(name), func(t *testing.T) {
				z.SetFault(tc.fault)
				defer z.Clear()
				z.ResetLog()
				err := call(newClient(z, demoToken))
				var pe *provider.Error
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, tc.kind, pe.Kind)
				assert.Equal(t, tc.code, pe.StatusCode)
				if tc.fault.Status != 0 && tc.fault.Status != 429 && tc.fault.Status < 500 {
					assert.Equal(t, "ZStack error simulated_fault", pe.Detail)
				}
				if tc.fault.Status == 429 {
					assert.Equal(t, 7*time.Second, pe.RetryAfter)
				}
				assert.Equal(t, 0, z.Writes(), "a failed read is never followed by a write")
				secretFree(t, err, "simulated fault")
			})
		}
	}
	cr, _ := z.Credential(demoID)
	assert.Equal(t, demoValue, cr.Value)
}

func TestErrorCodeIsCheckedBeforeUse(t *testing.T) {
	for body, want := range map[string]string{
		`{"error": {"code": "SYS.1001", "description": "d", "details": "x"}}`: "ZStack error SYS.1001",
		`{"error": {"code": "tok-123 is wrong"}}`:                             "",
		`{"error": {"code": 1001}}`:                                           "",
		`{"error": "SYS.1001"}`:                                               "",
		`<html>bad request</html>`:                                            "",
		`{"error": {"code": "` + strings.Repeat("A", 65) + `"}}`:              "",
	} {
		c := newVendor(t, &vendor{get: answer(400, body)})
		_, err := c.Read(context.Background(), demoID)
		var pe *provider.Error
		require.ErrorAs(t, err, &pe, body)
		assert.Equal(t, provider.KindRejected, pe.Kind, body)
		assert.Equal(t, want, pe.Detail, body)
		assert.NotContains(t, err.Error(), "tok-123")
	}
}

func TestNewClientDefaults(t *testing.T) {
	c := NewClient("http://x", "t", "", -time.Hour, upstream())
	assert.Equal(t, DefaultOperator, c.operator)
	assert.Equal(t, DefaultReactivateFor, c.reactivateFor)
}
