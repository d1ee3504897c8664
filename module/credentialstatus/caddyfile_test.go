package credentialstatus_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/credgate/credgate/adapters/digicert"
	credentialstatus "github.com/credgate/credgate/module/credentialstatus"
)

func parse(t *testing.T, input string) (*credentialstatus.Handler, error) {
	t.Helper()
	h := new(credentialstatus.Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func TestCaddyfileFull(t *testing.T) {
	h, err := parse(t, `credential_status {
		cache_size   1000
		cache_ttl    1h
		negative_ttl 10s
		max_body     64KiB
		provider digicert-parent digicert {
			base_url        https://dc.example.com/proxy
			api_key         {env.DC_KEY}
			id_pattern      ^[0-9]+$
			timeout         5s
			retries         0
			max_response    512KiB
			max_connections 8
			tls_ca_file     /etc/credgate/ca.pem
			breaker {
				failures           3
				open_for           30s
				half_open_requests 2
			}
		}
		provider digicert-other digicert {
			api_key {file./run/secrets/dc}
		}
	}`)
	require.NoError(t, err)
	assert.Equal(t, 1000, h.CacheSize)
	assert.Equal(t, caddy.Duration(3600e9), h.CacheTTL)
	assert.Equal(t, caddy.Duration(10e9), h.NegativeTTL)
	assert.Equal(t, int64(65536), h.MaxBody)
	require.Len(t, h.ProvidersRaw, 2)
	assert.JSONEq(t, `{
		"adapter": "digicert",
		"base_url": "https://dc.example.com/proxy",
		"api_key": "{env.DC_KEY}",
		"id_pattern": "^[0-9]+$",
		"timeout": 5000000000,
		"retries": 0,
		"max_response": 524288,
		"max_connections": 8,
		"tls_ca_file": "/etc/credgate/ca.pem",
		"breaker": {"failures": 3, "open_for": 30000000000, "half_open_requests": 2}
	}`, string(h.ProvidersRaw["digicert-parent"]))
	assert.JSONEq(t, `{"adapter": "digicert", "api_key": "{file./run/secrets/dc}"}`, string(h.ProvidersRaw["digicert-other"]))
}

// TestCaddyfilePolicy parses the authorization options into their JSON shape.
func TestCaddyfilePolicy(t *testing.T) {
	h, err := parse(t, `credential_status {
		caller        {http.request.header.Remote-User}
		caller_groups {http.request.header.Remote-Groups}
		policy {
			allow incident-bot    read dry_run deactivate revoke
			allow group:sec-admin *
			allow soar            deactivate  providers digicert-* tokens
			allow *               read
		}
	}`)
	require.NoError(t, err)
	got, err := json.Marshal(h.AuthorizationOptions)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"caller": "{http.request.header.Remote-User}",
		"caller_groups": "{http.request.header.Remote-Groups}",
		"policy": {"allow": [
			{"subject": "incident-bot", "actions": ["read", "dry_run", "deactivate", "revoke"]},
			{"subject": "group:sec-admin", "actions": ["*"]},
			{"subject": "soar", "actions": ["deactivate"], "providers": ["digicert-*", "tokens"]},
			{"subject": "*", "actions": ["read"]}
		]}}`, string(got))

	h, err = parse(t, "credential_status {\n policy {\n }\n}")
	require.NoError(t, err)
	got, _ = json.Marshal(h.AuthorizationOptions)
	assert.JSONEq(t, `{"policy": {"allow": []}}`, string(got), "an empty policy denies everything: it is kept")
}

func TestCaddyfileErrors(t *testing.T) {
	for name, input := range map[string]string{
		"argument on the directive": `credential_status foo { }`,
		"unknown option":            `credential_status { cache_sise 10 }`,
		"duplicate option":          "credential_status {\n cache_size 10\n cache_size 20\n}",
		"bad number":                `credential_status { cache_size lots }`,
		"bad duration":              `credential_status { cache_ttl forever }`,
		"bad size":                  `credential_status { max_body huge }`,
		"missing value":             `credential_status { cache_ttl }`,
		"two values":                `credential_status { cache_ttl 1h 2h }`,
		"provider without adapter":  `credential_status { provider p }`,
		"provider without name":     `credential_status { provider }`,
		"unknown adapter":           `credential_status { provider p vaultwarden { } }`,
		"provider twice":            "credential_status {\n provider p digicert {\n api_key k\n }\n provider p digicert {\n api_key k\n }\n}",
		"unknown provider option":   "credential_status {\n provider p digicert {\n api_kee k\n }\n}",
		"duplicate provider option": "credential_status {\n provider p digicert {\n timeout 1s\n timeout 2s\n }\n}",
		"unknown breaker option":    "credential_status {\n provider p digicert {\n breaker {\n trips 3\n }\n }\n}",
		"extra provider argument":   `credential_status { provider p digicert extra { } }`,
		"policy argument":           "credential_status {\n policy strict {\n }\n}",
		"policy deny rule":          "credential_status {\n policy {\n deny bot read\n }\n}",
		"allow without action":      "credential_status {\n policy {\n allow bot\n }\n}",
		"allow without subject":     "credential_status {\n policy {\n allow\n }\n}",
		"providers without name":    "credential_status {\n policy {\n allow bot read providers\n }\n}",
		"policy twice":              "credential_status {\n policy {\n }\n policy {\n }\n}",
		"caller twice":              "credential_status {\n caller {a}\n caller {b}\n}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, input)
			assert.Error(t, err)
		})
	}
}

// provision provisions a handler from its JSON.
func provision(t *testing.T, config string) (*credentialstatus.Handler, error) {
	t.Helper()
	h := new(credentialstatus.Handler)
	require.NoError(t, json.Unmarshal([]byte(config), h))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		err = h.Validate()
	}
	require.NoError(t, h.Cleanup())
	return h, err
}

func TestProvisionRejectsBadOptions(t *testing.T) {
	for name, c := range map[string]struct{ config, want string }{
		"no provider":         {`{}`, "at least one provider"},
		"bad name":            {`{"providers": {"a b": {"adapter": "digicert", "api_key": "k"}}}`, "provider name"},
		"missing secret":      {`{"providers": {"p": {"adapter": "digicert"}}}`, "api_key is required"},
		"unset env secret":    {`{"providers": {"p": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_UNSET}"}}}`, "api_key"},
		"unknown placeholder": {`{"providers": {"p": {"adapter": "digicert", "api_key": "{nope}"}}}`, "api_key"},
		"stray brace":         {`{"providers": {"p": {"adapter": "digicert", "api_key": "abc}"}}}`, "stray brace"},
		"bad base_url":        {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "base_url": "ftp://x"}}}`, "base_url"},
		"base_url query":      {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "base_url": "https://x/?a=b"}}}`, "base_url"},
		"bad id_pattern":      {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "id_pattern": "("}}}`, "id_pattern"},
		"negative timeout":    {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "timeout": "-1s"}}}`, "timeout"},
		"too many retries":    {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "retries": 11}}}`, "retries"},
		"bad breaker":         {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "breaker": {"failures": -1}}}}`, "breaker"},
		"missing CA file":     {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "tls_ca_file": "/nonexistent/ca.pem"}}}`, "tls_ca_file"},
		"negative cache_size": {`{"cache_size": -1, "providers": {"p": {"adapter": "digicert", "api_key": "k"}}}`, "cache_size"},
		"unknown action":      {`{"policy": {"allow": [{"subject": "bot", "actions": ["disable"]}]}, "providers": {"p": {"adapter": "digicert", "api_key": "k"}}}`, `unknown action "disable"`},
		"unknown provider in policy": {`{"policy": {"allow": [{"subject": "bot", "actions": ["read"], "providers": ["digicert-*"]}]}, "providers": {"p": {"adapter": "digicert", "api_key": "k"}}}`,
			`"digicert-*" matches no configured provider`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := provision(t, c.config)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestSecretsComeFromEnvAndFilePlaceholders(t *testing.T) {
	t.Setenv("CREDGATE_TEST_DC_KEY", "dc-secret-value")
	file := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(file, []byte("file-secret-value\n"), 0o600))
	_, err := provision(t, `{"providers": {
		"env": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_DC_KEY}"},
		"file": {"adapter": "digicert", "api_key": "{file.`+file+`}"}
	}}`)
	require.NoError(t, err)

	t.Setenv("CREDGATE_TEST_DC_KEY", "")
	_, err = provision(t, `{"providers": {"env": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_DC_KEY}"}}}`)
	require.Error(t, err, "an empty secret fails Provision, not the first upstream call")
	assert.Contains(t, err.Error(), "api_key")

	for _, bad := range []string{"line\nbreak", "back\bspace", "del\x7f", "tab\tbed"} {
		t.Setenv("CREDGATE_TEST_DC_KEY", bad)
		_, err = provision(t, `{"providers": {"env": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_DC_KEY}"}}}`)
		require.Error(t, err, "a secret no HTTP header can carry: %q", bad)
		assert.Contains(t, err.Error(), "control character")
		assert.NotContains(t, err.Error(), bad)
	}
}

func TestCustomCABundle(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("not a certificate"), 0o600))
	_, err := provision(t, `{"providers": {"p": {"adapter": "digicert", "api_key": "k", "tls_ca_file": "`+bad+`"}}}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no PEM certificate")
}
