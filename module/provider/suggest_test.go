package provider

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNearest(t *testing.T) {
	options := []string{"timeout", "retries", "base_url", "id_pattern", "api_key", "max_connections"}
	for word, want := range map[string]string{
		"timout":         "timeout",  // a letter left out
		"timeuot":        "timeout",  // two letters swapped: one edit
		"Timeout":        "timeout",  // case
		"retires":        "retries",  // two letters swapped
		"retry":          "",         // three edits of 7 letters: too far
		"baseurl":        "base_url", // a letter left out
		"apikey":         "api_key",
		"max_connection": "max_connections",
		"id-pattern":     "id_pattern",
		"colour":         "",
		"key":            "", // too far from api_key
	} {
		assert.Equal(t, want, Nearest(word, options), word)
	}
	assert.Equal(t, "max_concurrent", Nearest("max_concurrents", []string{"max_connections", "max_concurrent"}))
	assert.Equal(t, "prefactor", Nearest("prefacter", []string{"digicert", "palisade", "prefactor", "zstack"}))
	assert.Equal(t, "", Nearest("x", nil))
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"abc", "abc", 0},
		{"abc", "acb", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		assert.Equal(t, c.want, editDistance(c.a, c.b), "%q %q", c.a, c.b)
		assert.Equal(t, c.want, editDistance(c.b, c.a), "%q %q", c.b, c.a)
	}
}

func TestUnknownOption(t *testing.T) {
	var o Options
	err := o.ParseProviderBlock(caddyfile.NewTestDispenser("provider p v {\n retrys 2\n}"), func(d *caddyfile.Dispenser) error {
		return UnknownOption(d, "v", []string{"token"})
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `v: unknown option "retrys"; did you mean "retries"? (v takes: base_url, breaker, burst, id_pattern, `+
		`max_concurrent, max_connections, max_response, max_retry_after, rate, reads, retries, timeout, tls_ca_file, token)`)

	err = o.ParseProviderBlock(caddyfile.NewTestDispenser("provider p v {\n breaker {\n open_fr 1s\n }\n}"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown breaker option "open_fr"; did you mean "open_for"? (breaker takes: failures, half_open_requests, open_for)`)
}

// TestOptionNamesListed keeps OptionNames and BreakerOptionNames, which the unknown-option
// messages list, equal to the options that ParseProviderBlock and parseBreaker handle.
func TestOptionNamesListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "options.go", nil, 0)
	require.NoError(t, err)
	cases := func(fn string) []string {
		var out []string
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Name.Name != fn {
				continue
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				if cc, ok := n.(*ast.CaseClause); ok {
					for _, e := range cc.List {
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							out = append(out, s)
						}
					}
				}
				return true
			})
		}
		slices.Sort(out)
		return out
	}
	assert.Equal(t, slices.Sorted(slices.Values(OptionNames)), cases("ParseProviderBlock"))
	assert.Equal(t, slices.Sorted(slices.Values(BreakerOptionNames)), cases("parseBreaker"))
}

func TestResolveSecretNamesTheVariable(t *testing.T) {
	repl := caddy.NewReplacer()
	t.Setenv("CREDGATE_TEST_SET", "the-secret-value")
	t.Setenv("CREDGATE_TEST_EMPTY", "")
	for value, want := range map[string]string{
		"{env.CREDGATE_TEST_UNSET}":                         "token: CREDGATE_TEST_UNSET is not set",
		"{env.CREDGATE_TEST_EMPTY}":                         "token: CREDGATE_TEST_EMPTY is empty",
		"{env.CREDGATE_TEST_SET}{env.CREDGATE_TEST_UNSET2}": "token: CREDGATE_TEST_UNSET2 is not set",
		"{env.CREDGATE_TEST_UNSET}:{env.CREDGATE_TEST_EMPTY}": "token: CREDGATE_TEST_UNSET is not set, " +
			"CREDGATE_TEST_EMPTY is empty",
		"{file./nonexistent/credgate}": "token: file /nonexistent/credgate cannot be read (no such file or directory)",
		"pre{abc-secret-part}":         "token: holds an unknown placeholder (use {env.NAME} or {file./path})",
	} {
		_, err := ResolveSecret(repl, "token", value)
		require.Error(t, err, value)
		assert.Equal(t, want, err.Error(), value)
		assert.NotContains(t, err.Error(), "the-secret-value")
		assert.NotContains(t, err.Error(), "abc-secret-part")
	}
	got, err := ResolveSecret(repl, "token", "{env.CREDGATE_TEST_SET}")
	require.NoError(t, err)
	assert.Equal(t, "the-secret-value", got)
}
