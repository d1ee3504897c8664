package digicert

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMembersAndProjection(t *testing.T) {
	p := newProjection("id", "id", "createdAt", "created_at", "tags", "tags")
	body := []byte(` {"id": 12345, "clientSecret": "s3cr3t", "createdAt" : "2024-05-01T09:30:00Z",
		"tags": ["a", {"b": "}"}], "st\u0061tus": "act\"ive", "nested": {"clientSecret": "x"}, "empty": null} `)
	out := append([]byte(nil), '{')
	var status []byte
	require.NoError(t, members(body, func(k, v []byte) {
		if string(k) == "status" {
			status, _ = stringValue(v)
		}
		out = p.Append(out, k, v)
	}))
	assert.Equal(t, `act"ive`, string(status), "escaped keys and values are unescaped")
	assert.JSONEq(t, `{"id": 12345, "created_at": "2024-05-01T09:30:00Z", "tags": ["a", {"b": "}"}]}`, string(endObject(out)))
	assert.NotContains(t, string(endObject(out)), "s3cr3t")

	assert.Nil(t, endObject([]byte("{")), "no member: no object")
	assert.Nil(t, endObject(p.Append([]byte("{"), []byte("id"), []byte("null"))), "null is left out")

	for _, bad := range []string{``, `[]`, `"x"`, `{"a":1`, `{"a":1}{}`, `{a:1}`, `null`} {
		assert.Error(t, members([]byte(bad), func(k, v []byte) {}), bad)
	}
	require.NoError(t, members([]byte(`{}`), func(k, v []byte) { t.Fatal("no member") }))
}

// FuzzMembers checks Members against encoding/json: the same members, with the same values,
// for every valid object, and no panic for anything.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[1,{"c":"}"}],"d":"\"\\"}`, `{"\u00e9":true}`, `{"a":{"b":{"c":[]}}}`, `[1]`, `{"a":1,}`, `{"a" : -1.5e3 , "b":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[string]json.RawMessage{}
		err := members(data, func(k, v []byte) { got[string(k)] = append(json.RawMessage(nil), v...) })
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(data, &want)
		if wantErr != nil || want == nil {
			if err == nil && wantErr != nil {
				t.Fatalf("Members accepted %q, encoding/json does not: %v", data, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Members refused %q: %v", data, err)
		}
		// encoding/json keeps the last of duplicate keys, and so does the map here.
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, encoding/json %d", data, len(got), len(want))
		}
		for k, v := range want {
			var a, b any
			_ = json.Unmarshal(v, &a)
			if json.Unmarshal(got[k], &b) != nil {
				t.Fatalf("%q: member %q is not valid JSON: %q", data, k, got[k])
			}
			if !assert.ObjectsAreEqual(a, b) {
				t.Fatalf("%q: member %q is %q, encoding/json %q", data, k, got[k], v)
			}
		}
	})
}
