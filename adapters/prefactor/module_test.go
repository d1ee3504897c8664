package prefactor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/module/provider"
)

func parse(t *testing.T, input string) (*Prefactor, error) {
	t.Helper()
	a := new(Prefactor)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return a, err
}

func TestCaddyfile(t *testing.T) {
	a, err := parse(t, `provider tokens prefactor {
		token           {env.PREFACTOR_TOKEN}
		base_url        https://prefactor.example:8443/proxy
		id_pattern      0[0-9a-z]{31}
		timeout         5s
		retries         1
		max_response    64KiB
		max_connections 8
		tls_ca_file     /etc/ca.pem
		breaker {
			failures 3
			open_for 10s
			half_open_requests 2
		}
	}`)
	require.NoError(t, err)
	assert.Equal(t, "{env.PREFACTOR_TOKEN}", a.Token)
	assert.Equal(t, "https://prefactor.example:8443/proxy", a.BaseURL)
	assert.Equal(t, "0[0-9a-z]{31}", a.IDPattern)
	assert.Equal(t, caddy.Duration(5*time.Second), a.Timeout)
	require.NotNil(t, a.Retries)
	assert.Equal(t, 1, *a.Retries)
	assert.Equal(t, int64(64<<10), a.MaxResponse)
	assert.Equal(t, 8, a.MaxConnections)
	assert.Equal(t, "/etc/ca.pem", a.TLSCAFile)
	require.NotNil(t, a.Breaker)
	assert.Equal(t, provider.BreakerConfig{Failures: 3, OpenFor: caddy.Duration(10 * time.Second), HalfOpenRequests: 2}, *a.Breaker)

	out, err := json.Marshal(a)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"token":"{env.PREFACTOR_TOKEN}"`, "the placeholder, not a value, is the config")
}

func TestCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "provider tokens prefactor {\n\ttoken x\n\tapi_key y\n}", `prefactor: unknown option "api_key" (prefactor takes: base_url,`},
		{"option near one", "provider tokens prefactor {\n\ttokn x\n}", `prefactor: unknown option "tokn"; did you mean "token"?`},
		{"duplicate option", "provider tokens prefactor {\n\ttoken x\n\ttoken y\n}", `duplicate option "token"`},
		{"missing argument", "provider tokens prefactor {\n\ttoken\n}", "token: missing value"},
		{"two arguments", "provider tokens prefactor {\n\ttoken a b\n}", "token: takes one value"},
		{"stray argument", "provider tokens prefactor extra {\n\ttoken a\n}", "wrong argument count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func newContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("CREDGATE_TEST_PREFACTOR_TOKEN", "pf-provisioned-secret")
	a := &Prefactor{Token: "{env.CREDGATE_TEST_PREFACTOR_TOKEN}"}
	require.NoError(t, a.Provision(newContext(t)))
	assert.Equal(t, "pf-provisioned-secret", a.token)
	assert.Equal(t, "{env.CREDGATE_TEST_PREFACTOR_TOKEN}", a.Token, "never written back")

	// The resolved token is what the client sends.
	s := prefactortest.New("")
	defer s.Close()
	s.AddToken("pf-provisioned-secret", account)
	s.AddAPIToken(activeID, account, "", "active")
	c, err := a.Open(s.URL, upstream())
	require.NoError(t, err)
	cred, err := c.Read(context.Background(), activeID)
	require.NoError(t, err)
	assert.Equal(t, provider.StatusActive, cred.Status)
}

func TestProvisionFailures(t *testing.T) {
	t.Setenv("CREDGATE_TEST_PREFACTOR_EMPTY", "")
	cases := []struct {
		name, token, want string
	}{
		{"unset variable", "{env.CREDGATE_TEST_PREFACTOR_UNSET}", "token: CREDGATE_TEST_PREFACTOR_UNSET is not set"},
		{"empty variable", "{env.CREDGATE_TEST_PREFACTOR_EMPTY}", "token: CREDGATE_TEST_PREFACTOR_EMPTY is empty"},
		{"missing", "", "token is required"},
		{"stray brace", "abc}", "token: holds a stray brace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &Prefactor{Token: tc.token}
			err := a.Provision(newContext(t))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if tc.token != "" {
				assert.NotContains(t, err.Error(), tc.token, "the message names the option, not the value")
			}
			assert.Empty(t, a.token)
		})
	}
}

func TestModuleInfoAndVendor(t *testing.T) {
	info := new(Prefactor).CaddyModule()
	assert.Equal(t, caddy.ModuleID("http.credential_status.providers.prefactor"), info.ID)
	assert.IsType(t, new(Prefactor), info.New())

	mod, err := caddy.GetModule("http.credential_status.providers.prefactor")
	require.NoError(t, err, "registered in init")
	assert.Equal(t, info.ID, mod.ID)

	v := new(Prefactor).Vendor()
	assert.Equal(t, "https://app.prefactorai.com", v.BaseURL)
	assert.Equal(t, `[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}`, v.IDPattern)
	assert.Equal(t, provider.Capabilities{Revoke: true}, v.Capabilities)
}
