package digicert

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(input string) (*DigiCert, error) {
	a := new(DigiCert)
	return a, a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
}

func TestCaddyfile(t *testing.T) {
	a, err := parse(`provider digicert-parent digicert {
		api_key    {env.DIGICERT_PARTNER_KEY}
		base_url   https://www.digicert.com
		id_pattern ^[0-9]+$
	}`)
	require.NoError(t, err)
	assert.Equal(t, "{env.DIGICERT_PARTNER_KEY}", a.APIKey)
	assert.Equal(t, "https://www.digicert.com", a.BaseURL)
	assert.Equal(t, "^[0-9]+$", a.IDPattern)

	for name, c := range map[string]struct{ input, want string }{
		"unknown option":   {"provider d digicert {\n apikey k\n}", `digicert: unknown option "apikey"; did you mean "api_key"? (digicert takes: api_key, base_url,`},
		"duplicate option": {"provider d digicert {\n api_key a\n api_key b\n}", `duplicate option "api_key"`},
		"missing value":    {"provider d digicert {\n api_key\n}", "api_key: missing value"},
		"two values":       {"provider d digicert {\n api_key a b\n}", "api_key: takes one value"},
	} {
		_, err := parse(c.input)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), c.want, name)
	}
}

func TestProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()

	t.Setenv("DIGICERT_TEST_KEY", "partner-key-value")
	a := &DigiCert{APIKey: "{env.DIGICERT_TEST_KEY}"}
	require.NoError(t, a.Provision(ctx))
	assert.Equal(t, "partner-key-value", a.apiKey)
	assert.Equal(t, "{env.DIGICERT_TEST_KEY}", a.APIKey, "the secret is never written back to the config")

	t.Setenv("DIGICERT_TEST_KEY", "")
	err := (&DigiCert{APIKey: "{env.DIGICERT_TEST_KEY}"}).Provision(ctx)
	require.Error(t, err)
	assert.Equal(t, "api_key: DIGICERT_TEST_KEY is empty", err.Error(), "the message names the option and the variable")
	assert.NotContains(t, err.Error(), "partner-key-value")

	require.Error(t, (&DigiCert{}).Provision(ctx), "api_key is required")
	assert.Equal(t, DefaultBaseURL, (&DigiCert{}).Vendor().BaseURL)
	assert.False(t, (&DigiCert{}).Vendor().Capabilities.Revoke)
}
