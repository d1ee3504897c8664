package credentialstatus

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/internal/flatjson"
	"github.com/credgate/credgate/module/provider"
)

// TestAppendStatusBodyMatchesEncodingJSON: the hand-written encoder says what json.Marshal says.
func TestAppendStatusBodyMatchesEncodingJSON(t *testing.T) {
	yes, no := true, false
	type meta struct {
		Name string `json:"name,omitempty"`
		N    int    `json:"n"`
	}
	for _, v := range []*statusBody{
		{ID: "12345", Provider: "dc", Adapter: "digicert", Status: provider.StatusActive},
		{ID: `we"ird\id`, Provider: "p", Adapter: "a", Status: provider.StatusInactive, Changed: &no, ProviderStatus: "DISABLED"},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusActive, Changed: &yes, PendingStatus: provider.StatusInactive,
			ProviderStatus: "tab\there\nnul\x00 é \xff \u2028 <&>", Credential: json.RawMessage(`{"id": 1, "tags": ["a"]}`)},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusUnknown, Credential: &meta{Name: "n", N: 3}},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusUnknown, Credential: (*meta)(nil)},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusActive, DryRun: true, Current: provider.StatusActive,
			RequestedStatus: provider.StatusInactive, WouldChange: &yes, Credential: json.RawMessage(`{"id":1}`)},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusInactive, DryRun: true, Current: provider.StatusInactive,
			RequestedStatus: provider.StatusInactive, WouldChange: &no},
		{ID: "x", Provider: "p", Adapter: "a", Status: provider.StatusUnknown, Credential: json.RawMessage(nil)},
	} {
		got, err := appendStatusBody(nil, v)
		require.NoError(t, err)
		require.True(t, json.Valid(got), "%s", got)
		want, err := json.Marshal(v)
		require.NoError(t, err)
		var g, w any
		require.NoError(t, json.Unmarshal(got, &g))
		require.NoError(t, json.Unmarshal(want, &w))
		if _, ok := v.Credential.(json.RawMessage); ok && len(v.Credential.(json.RawMessage)) == 0 {
			delete(w.(map[string]any), "credential") // json.Marshal writes null for an empty RawMessage
		}
		if m, ok := w.(map[string]any); ok && m["credential"] == nil {
			delete(m, "credential")
		}
		assert.Equal(t, w, g, "%s", got)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "\x00\x1f\x7f", "é\xff\xfe", "\u2028\u2029", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := flatjson.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encodes as invalid JSON %q: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q: decodes as %q, encoding/json's as %q", s, back, wantBack)
		}
	})
}
