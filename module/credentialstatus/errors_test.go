package credentialstatus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/credgate/credgate/adapters/palisade"
	_ "github.com/credgate/credgate/adapters/prefactor"
	_ "github.com/credgate/credgate/adapters/zstack"
)

// The errors of a mistyped config say the fix (issue 15): the nearest option or adapter, the
// list to choose from, the unset variable, every missing secret at once, the user's pattern.
func TestCaddyfileErrorsSayTheFix(t *testing.T) {
	for name, c := range map[string]struct{ input, want string }{
		"handler option": {`credential_status { cache_sise 10 }`,
			`unknown option "cache_sise"; did you mean "cache_size"? (credential_status takes: cache_size, cache_ttl,`},
		"handler option, nothing near": {`credential_status { colour blue }`,
			`unknown option "colour" (credential_status takes: cache_size,`},
		"provider option": {"credential_status {\n provider p digicert {\n timout 5s\n }\n}",
			`digicert: unknown option "timout"; did you mean "timeout"? (digicert takes: api_key, base_url, breaker,`},
		"adapter option": {"credential_status {\n provider p palisade {\n client_secre x\n }\n}",
			`palisade: unknown option "client_secre"; did you mean "client_secret"?`},
		"breaker option": {"credential_status {\n provider p digicert {\n breaker {\n failure 3\n }\n }\n}",
			`unknown breaker option "failure"; did you mean "failures"? (breaker takes: failures, half_open_requests, open_for)`},
		"adapter": {`credential_status { provider p prefacter { } }`,
			`provider p: unknown adapter "prefacter"; did you mean "prefactor"? (adapters: digicert, fake, palisade, prefactor, zstack)`},
		"adapter, nothing near": {`credential_status { provider p vaultwarden { } }`,
			`provider p: unknown adapter "vaultwarden" (adapters: digicert, fake, palisade, prefactor, zstack)`},
		"no adapter": {"credential_status {\n provider p\n}",
			`provider p: want an adapter after the name (digicert, fake, palisade, prefactor, zstack)`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, c.input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestProvisionErrorsSayTheFix(t *testing.T) {
	t.Setenv("CREDGATE_TEST_EMPTY", "")
	for name, c := range map[string]struct {
		config string
		want   []string
	}{
		"unset variable": {`{"providers": {"p": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_UNSET_KEY}"}}}`,
			[]string{"credential_status: provider p: api_key: CREDGATE_TEST_UNSET_KEY is not set"}},
		"empty variable": {`{"providers": {"p": {"adapter": "digicert", "api_key": "{env.CREDGATE_TEST_EMPTY}"}}}`,
			[]string{"provider p: api_key: CREDGATE_TEST_EMPTY is empty"}},
		"missing file": {`{"providers": {"p": {"adapter": "digicert", "api_key": "{file./nonexistent/credgate-key}"}}}`,
			[]string{"provider p: api_key: file /nonexistent/credgate-key cannot be read (no such file or directory)"}},
		"unknown placeholder, not echoed": {`{"providers": {"p": {"adapter": "digicert", "api_key": "{s3cr3t}"}}}`,
			[]string{"provider p: api_key: holds an unknown placeholder (use {env.NAME} or {file./path})"}},
		"every missing secret at once": {`{"providers": {
			"custody": {"adapter": "palisade", "client_id": "{env.CREDGATE_TEST_UNSET_ID}", "client_secret": "{env.CREDGATE_TEST_UNSET_SECRET}"},
			"cloud": {"adapter": "zstack", "base_url": "https://zs.invalid", "token": "{env.CREDGATE_TEST_UNSET_TOKEN}"},
			"fine": {"adapter": "digicert", "api_key": "k"},
			"tokens": {"adapter": "prefactor", "base_url": "https://pf.invalid", "token": "{env.CREDGATE_TEST_EMPTY}"}}}`,
			[]string{"credential_status: 4 problems with the providers: " +
				"provider cloud: token: CREDGATE_TEST_UNSET_TOKEN is not set; " +
				"provider custody: client_id: CREDGATE_TEST_UNSET_ID is not set; " +
				"provider custody: client_secret: CREDGATE_TEST_UNSET_SECRET is not set; " +
				"provider tokens: token: CREDGATE_TEST_EMPTY is empty"}},
		"unknown adapter in JSON": {`{"providers": {"p": {"adapter": "digisert", "api_key": "k"}}}`,
			[]string{`provider p: unknown adapter "digisert"; did you mean "digicert"? (adapters: digicert, fake,`}},
		"id_pattern as written": {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "id_pattern": "ab[0-9"}}}`,
			[]string{`provider p: id_pattern "ab[0-9": missing closing ]: "[0-9"`}},
		"id_pattern whole": {`{"providers": {"p": {"adapter": "digicert", "api_key": "k", "id_pattern": "("}}}`,
			[]string{`provider p: id_pattern "(": missing closing )`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := provision(t, c.config)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "(?:", "the anchored form is not what the user wrote")
		})
	}
}

// A pattern that is only valid inside the anchoring group, such as `1)|(2`, is refused: it would
// otherwise match any ID that starts with 1.
func TestIDPatternCannotEscapeTheAnchors(t *testing.T) {
	_, err := provision(t, `{"providers": {"p": {"adapter": "digicert", "api_key": "k", "id_pattern": "1)|(2"}}}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `id_pattern "1)|(2": unexpected )`)
}
