package credentialstatus

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// TestAppendStatusBodyHasEveryField derives the answer's fields from statusBody itself: it
// sets every field (all at once, then each alone) by reflection and compares the hand-written
// encoder with json.Marshal, so a field added to the struct cannot silently vanish from the
// answers.
func TestAppendStatusBodyHasEveryField(t *testing.T) {
	typ := reflect.TypeOf(statusBody{})
	// set gives field i of v a value that is not its zero value.
	set := func(v reflect.Value, i int) {
		f := v.Field(i)
		name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		switch {
		case f.Type() == reflect.TypeOf((*any)(nil)).Elem():
			f.Set(reflect.ValueOf(json.RawMessage(`{"field":"` + name + `"}`)))
		case f.Kind() == reflect.String:
			f.SetString("v-" + name)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
			b := false // false, not true: a *bool says "false" where a bool would be left out
			f.Set(reflect.ValueOf(&b))
		default:
			t.Fatalf("statusBody.%s has a type (%s) this test cannot fill: teach it, and the encoder", typ.Field(i).Name, f.Type())
		}
	}
	check := func(v *statusBody, what string) {
		got, err := appendStatusBody(nil, v)
		require.NoError(t, err)
		want, err := json.Marshal(v)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got), "%s", what)
	}
	var all statusBody
	for i := 0; i < typ.NumField(); i++ {
		set(reflect.ValueOf(&all).Elem(), i)
	}
	check(&all, "every field set")
	got, _ := appendStatusBody(nil, &all)
	for i := 0; i < typ.NumField(); i++ {
		name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		assert.Contains(t, string(got), `"`+name+`":`, "the answer has %s", name)
		var one statusBody
		set(reflect.ValueOf(&one).Elem(), i)
		check(&one, typ.Field(i).Name+" alone")
	}
}

// TestProblemTypesAreTheTable: the exported table lists each problem type once, with a
// title and an error status, and the problems the handler makes carry its rows.
func TestProblemTypesAreTheTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range ProblemTypes() {
		assert.False(t, seen[k.Suffix], "%s twice", k.Suffix)
		seen[k.Suffix] = true
		assert.NotEmpty(t, k.Title, k.Suffix)
		assert.True(t, k.Status >= 400 && k.Status < 600, "%s: %d", k.Suffix, k.Status)
		p := newProblem(k, "detail")
		assert.Equal(t, ProblemTypePrefix+k.Suffix, p.Type)
		assert.Equal(t, k.Status, p.Status)
	}
	assert.Len(t, seen, 23)
	assert.True(t, seen[probNotFound.Suffix] && seen[probIdemDown.Suffix])
}
