package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var providers = []string{"custody-eu", "custody-us", "dc-other", "dc-parent", "tokens", "vault"}

func TestAllows(t *testing.T) {
	p, err := Compile(&Config{Allow: []Rule{
		{Subject: "incident-bot", Actions: []string{"read", "dry_run", "deactivate", "revoke"}},
		{Subject: "group:sec-admin", Actions: []string{"*"}},
		{Subject: "soar", Actions: []string{"deactivate"}, Providers: []string{"dc-*", "tokens"}},
		{Subject: "*", Actions: []string{"read"}, Providers: []string{"vault"}},
	}}, providers)
	require.NoError(t, err)
	bot := Principal{Name: "incident-bot"}
	for a := Read; a < numActions; a++ {
		for i := range providers {
			assert.Equal(t, a != Activate, p.Allows(bot, a, i), "bot %s at %s", a, providers[i])
		}
	}
	admin := Principal{Name: "carol", Groups: "ops, sec-admin"}
	assert.True(t, p.Allows(admin, Activate, 0))
	assert.True(t, p.AllowsEverywhere(admin, Activate))
	assert.False(t, p.Allows(Principal{Name: "sec-admin"}, Activate, 0), "a name is not a group")
	assert.False(t, p.Allows(Principal{Name: "carol", Groups: "sec-admins"}, Activate, 0), "whole group names only")

	soar := Principal{Name: "soar"}
	assert.True(t, p.Allows(soar, Deactivate, 2))
	assert.True(t, p.Allows(soar, Deactivate, 3))
	assert.True(t, p.Allows(soar, Deactivate, 4))
	assert.False(t, p.Allows(soar, Deactivate, 0))
	assert.False(t, p.Allows(soar, Revoke, 3))
	assert.True(t, p.AllowsAnywhere(soar, Deactivate))
	assert.False(t, p.AllowsEverywhere(soar, Deactivate))

	anon := Principal{}
	assert.True(t, p.Allows(anon, Read, 5), "* is everyone, authenticated or not")
	assert.False(t, p.Allows(anon, Read, 0))
	assert.False(t, p.Allows(Principal{Name: ""}, Deactivate, 3), "an empty caller is no caller")

	deny, err := Compile(&Config{Allow: []Rule{}}, providers)
	require.NoError(t, err)
	assert.False(t, deny.AllowsAnywhere(admin, Read), "an empty policy denies everything")
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		rule Rule
		want string
	}{
		{Rule{Subject: "bot", Actions: []string{"disable"}}, `unknown action "disable"`},
		{Rule{Subject: "bot"}, "at least one action"},
		{Rule{Subject: "", Actions: []string{"read"}}, "a subject is required"},
		{Rule{Subject: "group:", Actions: []string{"read"}}, "group name"},
		{Rule{Subject: "bot", Actions: []string{"read"}, Providers: []string{"digicert"}}, `"digicert" matches no configured provider`},
		{Rule{Subject: "bot", Actions: []string{"read"}, Providers: []string{"zz-*"}}, `"zz-*" matches no configured provider`},
		{Rule{Subject: "bot", Actions: []string{"read"}, Providers: []string{"dc-["}}, "syntax error"},
	} {
		_, err := Compile(&Config{Allow: []Rule{{Subject: "ok", Actions: []string{"read"}}, c.rule}}, providers)
		require.Error(t, err, "%+v", c.rule)
		assert.Contains(t, err.Error(), c.want)
		assert.Contains(t, err.Error(), "rule 2", "the error says which rule")
	}
}

func TestInGroup(t *testing.T) {
	p := Principal{Groups: "a,b c\tdd,,  e"}
	for _, g := range []string{"a", "b", "c", "dd", "e"} {
		assert.True(t, p.InGroup(g), g)
	}
	for _, g := range []string{"", "d", "b c", "ee"} {
		assert.False(t, p.InGroup(g), g)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { p.InGroup("e") }))
}
