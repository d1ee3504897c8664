package zstack

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider"
)

func parse(t *testing.T, input string) (*ZStack, error) {
	t.Helper()
	a := new(ZStack)
	return a, a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
}

func TestCaddyfile(t *testing.T) {
	a, err := parse(t, `provider vault zstack {
		base_url       https://zstack.internal:8443
		token          {env.ZSTACK_TOKEN}
		operator       gateway@example.com
		reactivate_for 720h
		timeout        5s
		id_pattern     cred-[0-9a-f-]+
	}`)
	require.NoError(t, err)
	assert.Equal(t, "https://zstack.internal:8443", a.BaseURL)
	assert.Equal(t, "{env.ZSTACK_TOKEN}", a.Token)
	assert.Equal(t, "gateway@example.com", a.Operator)
	assert.Equal(t, caddy.Duration(720*time.Hour), a.ReactivateFor)
	assert.Equal(t, caddy.Duration(5*time.Second), a.Timeout)
	assert.Equal(t, "cred-[0-9a-f-]+", a.IDPattern)

	a, err = parse(t, "provider vault zstack {\n token t\n reactivate_for 90d\n}")
	require.NoError(t, err)
	assert.Equal(t, caddy.Duration(90*24*time.Hour), a.ReactivateFor)
}

func TestCaddyfileErrors(t *testing.T) {
	cases := map[string]struct{ input, want string }{
		"unknown option":   {"provider v zstack {\n token t\n value s3cr3t\n}", `zstack: unknown option "value" (zstack takes: base_url,`},
		"option near one":  {"provider v zstack {\n reactivate 90d\n}", `zstack: unknown option "reactivate"; did you mean "reactivate_for"?`},
		"duplicate option": {"provider v zstack {\n token a\n token b\n}", `duplicate option "token"`},
		"missing token":    {"provider v zstack {\n token\n}", "token: missing value"},
		"missing operator": {"provider v zstack {\n operator\n}", "operator: missing value"},
		"two operators":    {"provider v zstack {\n operator a b\n}", "operator: takes one value"},
		"missing duration": {"provider v zstack {\n reactivate_for\n}", "reactivate_for: missing value"},
		"bad duration":     {"provider v zstack {\n reactivate_for soon\n}", `bad duration "soon"`},
		"extra argument":   {"provider v zstack extra {\n token t\n}", "wrong argument count"},
	}
	for name, tc := range cases {
		_, err := parse(t, tc.input)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

func provision(t *testing.T, a *ZStack) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := a.Provision(ctx); err != nil {
		return err
	}
	return a.Validate()
}

func TestProvision(t *testing.T) {
	t.Setenv("ZSTACK_TEST_TOKEN", "tok-from-env")
	a := &ZStack{Token: "{env.ZSTACK_TEST_TOKEN}"}
	require.NoError(t, provision(t, a))
	assert.Equal(t, "tok-from-env", a.token)
	assert.Equal(t, "{env.ZSTACK_TEST_TOKEN}", a.Token, "the secret is never written back to the config")
	assert.Equal(t, DefaultOperator, a.Operator)
	assert.Equal(t, caddy.Duration(DefaultReactivateFor), a.ReactivateFor)

	out, err := json.Marshal(a)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "tok-from-env")

	client, err := a.Open("https://zstack.internal", &provider.Upstream{})
	require.NoError(t, err)
	c := client.(*Client)
	req, err := c.ep.Request(context.Background(), http.MethodGet, "/x", nil)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-from-env", req.Header.Get("Authorization"))
	assert.Equal(t, DefaultOperator, c.operator)
	assert.Equal(t, DefaultReactivateFor, c.reactivateFor)

	a = &ZStack{Token: "literal", Operator: "ops@example.com", ReactivateFor: caddy.Duration(time.Hour)}
	require.NoError(t, provision(t, a))
	client, err = a.Open("https://zstack.internal", &provider.Upstream{})
	require.NoError(t, err)
	c = client.(*Client)
	assert.Equal(t, "ops@example.com", c.operator)
	assert.Equal(t, time.Hour, c.reactivateFor)
}

func TestProvisionErrors(t *testing.T) {
	t.Setenv("ZSTACK_TEST_BRACE", "abc{def")
	cases := map[string]struct {
		a    *ZStack
		want string
	}{
		"no token":        {&ZStack{}, "token is required"},
		"unset variable":  {&ZStack{Token: "{env.ZSTACK_TEST_UNSET_TOKEN}"}, "token: ZSTACK_TEST_UNSET_TOKEN is not set"},
		"stray brace":     {&ZStack{Token: "{env.ZSTACK_TEST_BRACE}"}, "token: holds a stray brace"},
		"negative expiry": {&ZStack{Token: "t", ReactivateFor: caddy.Duration(-time.Hour)}, "reactivate_for must be positive"},
	}
	for name, tc := range cases {
		err := provision(t, tc.a)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		assert.NotContains(t, err.Error(), "ZSTACK_TEST_BRACE", name)
		assert.NotContains(t, err.Error(), "abc{def", name)
	}
}

func TestOpenNeedsProvision(t *testing.T) {
	_, err := (&ZStack{Token: "t"}).Open("https://zstack.internal", &provider.Upstream{})
	assert.Error(t, err)
}

func TestModuleAndVendor(t *testing.T) {
	info := new(ZStack).CaddyModule()
	assert.Equal(t, caddy.ModuleID("http.credential_status.providers.zstack"), info.ID)
	_, ok := info.New().(provider.Adapter)
	assert.True(t, ok)

	v := new(ZStack).Vendor()
	assert.Empty(t, v.BaseURL, "self-hosted: base_url is required")
	assert.Equal(t, provider.Capabilities{Expiry: true}, v.Capabilities)
	re := regexp.MustCompile(`^(?:` + v.IDPattern + `)$`)
	assert.True(t, re.MatchString("cred-a1b2c3d4-e5f6-7890-abcd-ef1234567890"))
	assert.True(t, re.MatchString("cred-A1B2C3D4-E5F6-7890-ABCD-EF1234567890"))
	for _, id := range []string{"a1b2c3d4-e5f6-7890-abcd-ef1234567890", "cred-a1b2c3d4-e5f6-7890-abcd-ef123456789", "12345", "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"} {
		assert.False(t, re.MatchString(id), id)
	}
}

func TestJSONConfig(t *testing.T) {
	var a ZStack
	require.NoError(t, json.Unmarshal([]byte(`{"adapter": "zstack", "base_url": "https://z", "token": "{env.T}", "operator": "op", "reactivate_for": "48h"}`), &a))
	assert.Equal(t, "https://z", a.BaseURL)
	assert.Equal(t, "{env.T}", a.Token)
	assert.Equal(t, "op", a.Operator)
	assert.Equal(t, caddy.Duration(48*time.Hour), a.ReactivateFor)
}
