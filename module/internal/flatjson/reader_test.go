package flatjson

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlatObject(t *testing.T) {
	names := []string{"status", "reason"}
	ok := map[string][2]string{
		`{}`:                                     {"", ""},
		` { "status" : "active" } `:              {"active", ""},
		`{"status":"inactive","reason":"INC-1"}`: {"inactive", "INC-1"},
		`{"reason":null,"status":"active"}`:      {"active", ""},
		`{"reason":"tab\there \"q\" \u00e9"}`:    {"", "tab\there \"q\" é"},
		`{"reason":"naïve"}`:                     {"", "naïve"},
		`{"reason":"a\\"}`:                       {"", `a\`},
	}
	for in, want := range ok {
		vals := make([][]byte, 2)
		end, err := ReadObject([]byte(in), names, vals)
		require.NoError(t, err, in)
		assert.Equal(t, want[0], string(vals[0]), in)
		assert.Equal(t, want[1], string(vals[1]), in)
		assert.Equal(t, strings.TrimRight(in, " "), in[:end], in)
	}

	bad := map[string]string{
		`{"STATUS":"active"}`:                     `unknown field "STATUS"`,
		`{"Status":"active"}`:                     `unknown field "Status"`,
		`{"status":"inactive","status":"active"}`: `field "status" appears twice`,
		`{"status":1}`:                            "status must be a string",
		`{"status":true}`:                         "status must be a string",
		`{"status":{"a":1}}`:                      "status must be a string",
		`{"status":["active"]}`:                   "status must be a string",
		`{"status":nul}`:                          "status must be a string",
		`{"status":"act`:                          "unexpected end",
		`{"status":"a` + "\n" + `"}`:              "control character",
		`{"status":"\x"}`:                         "malformed string",
		`{"status" "active"}`:                     "expected ':'",
		`{"status":"active",}`:                    "expected a member name",
		`{"status":"active" "reason":"x"}`:        "expected ',' or '}'",
		`["active"]`:                              "must be a JSON object",
		``:                                        "must be a JSON object",
		`{status:"active"}`:                       "expected a member name",
	}
	for in, want := range bad {
		_, err := ReadObject([]byte(in), names, make([][]byte, 2))
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}
