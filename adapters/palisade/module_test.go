package palisade

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider"
)

func parse(t *testing.T, input string) (*Palisade, error) {
	t.Helper()
	a := new(Palisade)
	return a, a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
}

func provision(t *testing.T, a *Palisade) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	return a.Provision(ctx)
}

func TestCaddyfileOAuth(t *testing.T) {
	a, err := parse(t, `provider custody-eu palisade {
		base_url      https://api.sandbox.palisade.co
		id_pattern    [0-9a-f-]{36}
		timeout       5s
		client_id     {env.PALISADE_CLIENT_ID}
		client_secret {env.PALISADE_CLIENT_SECRET}
		breaker {
			failures 3
		}
	}`)
	require.NoError(t, err)
	assert.Equal(t, "https://api.sandbox.palisade.co", a.BaseURL)
	assert.Equal(t, "[0-9a-f-]{36}", a.IDPattern)
	assert.Equal(t, caddy.Duration(5e9), a.Timeout)
	require.NotNil(t, a.Breaker)
	assert.Equal(t, 3, a.Breaker.Failures)
	assert.Equal(t, "{env.PALISADE_CLIENT_ID}", a.ClientID)
	assert.Equal(t, "{env.PALISADE_CLIENT_SECRET}", a.ClientSecret)
	assert.Empty(t, a.Token)
}

func TestCaddyfileToken(t *testing.T) {
	a, err := parse(t, `provider custody-eu palisade {
		token {env.PALISADE_TOKEN}
	}`)
	require.NoError(t, err)
	assert.Equal(t, "{env.PALISADE_TOKEN}", a.Token)
	assert.Empty(t, a.ClientID)
	assert.Empty(t, a.ClientSecret)

	b, err := json.Marshal(a)
	require.NoError(t, err)
	assert.JSONEq(t, `{"token": "{env.PALISADE_TOKEN}"}`, string(b))
}

func TestCaddyfileErrors(t *testing.T) {
	cases := map[string]struct {
		input string
		want  string
	}{
		"unknown option": {`provider p palisade {
			api_key x
		}`, `unknown option "api_key"`},
		"option near one": {`provider p palisade {
			client_secrte x
		}`, `palisade: unknown option "client_secrte"; did you mean "client_secret"? (palisade takes: base_url, breaker, burst, client_id, client_secret,`},
		"duplicate own option": {`provider p palisade {
			token a
			token b
		}`, `duplicate option "token"`},
		"duplicate client_id": {`provider p palisade {
			client_id a
			client_secret b
			client_id c
		}`, `duplicate option "client_id"`},
		"missing token value": {`provider p palisade {
			token
		}`, "token: missing value"},
		"missing client_secret value": {`provider p palisade {
			client_id a
			client_secret
		}`, "client_secret: missing value"},
		"two values": {`provider p palisade {
			client_id a b
		}`, "client_id: takes one value"},
		"extra argument": {`provider p palisade extra {
			token a
		}`, "wrong argument count"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, tc.input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("PALISADE_TEST_CLIENT_ID", "client-id-value")
	t.Setenv("PALISADE_TEST_CLIENT_SECRET", "client-secret-value")
	a := &Palisade{ClientID: "{env.PALISADE_TEST_CLIENT_ID}", ClientSecret: "{env.PALISADE_TEST_CLIENT_SECRET}"}
	require.NoError(t, provision(t, a))
	assert.Equal(t, "client-id-value", a.clientID)
	assert.Equal(t, "client-secret-value", a.clientSecret)
	assert.Equal(t, "{env.PALISADE_TEST_CLIENT_SECRET}", a.ClientSecret, "never written back")

	b, err := json.Marshal(a)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "client-secret-value")

	c, err := a.Open("https://api.palisade.co", newUpstream())
	require.NoError(t, err)
	pc := c.(*Client)
	require.NotNil(t, pc.oauth, "OAuth mode")
	assert.Nil(t, pc.ep, "no static token")
	assert.Equal(t, "https://api.palisade.co/v2/credentials/oauth/token", pc.oauth.url)

	t.Setenv("PALISADE_TEST_TOKEN", "static-token-value")
	a = &Palisade{Token: "{env.PALISADE_TEST_TOKEN}"}
	require.NoError(t, provision(t, a))
	assert.Equal(t, "static-token-value", a.token)
	c, err = a.Open("https://api.palisade.co", newUpstream())
	require.NoError(t, err)
	assert.Nil(t, c.(*Client).oauth)
	_, token := c.(*Client).current()
	assert.Equal(t, "static-token-value", token)
}

func TestProvisionFailures(t *testing.T) {
	t.Setenv("PALISADE_TEST_SET", "a-value-that-must-not-show")
	cases := map[string]struct {
		a       Palisade
		names   []string
		notName string
	}{
		"nothing":             {Palisade{}, []string{"token", "client_id", "client_secret"}, ""},
		"both modes":          {Palisade{Token: "t", ClientID: "i", ClientSecret: "s"}, []string{"token", "client_id", "not both"}, ""},
		"token and client_id": {Palisade{Token: "t", ClientID: "i"}, []string{"not both"}, ""},
		"client_id alone":     {Palisade{ClientID: "{env.PALISADE_TEST_SET}"}, []string{"client_secret is required"}, ""},
		"client_secret alone": {Palisade{ClientSecret: "{env.PALISADE_TEST_SET}"}, []string{"client_id is required"}, ""},
		"unset token":         {Palisade{Token: "{env.PALISADE_TEST_UNSET}"}, []string{"token: PALISADE_TEST_UNSET is not set"}, "client_"},
		"unset client_id":     {Palisade{ClientID: "{env.PALISADE_TEST_UNSET}", ClientSecret: "{env.PALISADE_TEST_SET}"}, []string{"client_id: PALISADE_TEST_UNSET is not set"}, "client_secret"},
		"unset client_secret": {Palisade{ClientID: "{env.PALISADE_TEST_SET}", ClientSecret: "{env.PALISADE_TEST_UNSET}"}, []string{"client_secret: PALISADE_TEST_UNSET is not set"}, ""},
		"both unset": {Palisade{ClientID: "{env.PALISADE_TEST_UNSET}", ClientSecret: "{env.PALISADE_TEST_UNSET2}"},
			[]string{"client_id: PALISADE_TEST_UNSET is not set\nclient_secret: PALISADE_TEST_UNSET2 is not set"}, ""},
		"stray brace in token": {Palisade{Token: "{env.PALISADE_TEST_SET"}, []string{"token"}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := tc.a
			err := provision(t, &a)
			require.Error(t, err)
			for _, n := range tc.names {
				assert.Contains(t, err.Error(), n)
			}
			if tc.notName != "" {
				assert.NotContains(t, err.Error(), tc.notName)
			}
			assert.NotContains(t, err.Error(), "a-value-that-must-not-show")
			assert.NotContains(t, err.Error(), "PALISADE_TEST_SET", "the message names the variable that is unset, not the others")
		})
	}
}

func TestOpenUnprovisioned(t *testing.T) {
	_, err := new(Palisade).Open(DefaultBaseURL, newUpstream())
	assert.Error(t, err)
}

func TestVendorAndModule(t *testing.T) {
	a := new(Palisade)
	assert.Equal(t, caddy.ModuleID("http.credential_status.providers.palisade"), a.CaddyModule().ID)
	assert.IsType(t, new(Palisade), a.CaddyModule().New())

	v := a.Vendor()
	assert.Equal(t, "https://api.palisade.co", v.BaseURL)
	assert.Equal(t, provider.Capabilities{}, v.Capabilities, "no revoke: the gateway never deletes")
	re := regexp.MustCompile(`^(?:` + v.IDPattern + `)$`)
	assert.True(t, re.MatchString("ce4918bf-a199-4ce2-85a3-d0d296855384"))
	assert.True(t, re.MatchString("CE4918BF-A199-4CE2-85A3-D0D296855384"))
	assert.False(t, re.MatchString("cred-ce4918bf-a199-4ce2-85a3-d0d296855384"))
	assert.False(t, re.MatchString("12345"))
	assert.False(t, re.MatchString("013xrzp12g3nqk8n7f8f9jbg8d18q7tm"))

	info, err := caddy.GetModule(provider.Namespace + ".palisade")
	require.NoError(t, err)
	assert.IsType(t, new(Palisade), info.New())
}

func TestJSONConfig(t *testing.T) {
	var a Palisade
	require.NoError(t, json.Unmarshal([]byte(`{"base_url": "https://x.example", "client_id": "{env.A}", "client_secret": "{env.B}", "timeout": "3s"}`), &a))
	assert.Equal(t, "https://x.example", a.BaseURL)
	assert.Equal(t, "{env.A}", a.ClientID)
	assert.Equal(t, "{env.B}", a.ClientSecret)
	assert.Equal(t, caddy.Duration(3e9), a.Timeout)
}
