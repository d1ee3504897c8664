package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/require"
)

// TestCaddyfileAdapt checks that every Caddyfile in caddyfile_adapt/ adapts to the JSON below
// its "----------" line. These golden files are the reference of the Caddyfile syntax: a
// change in the parser that changes the JSON shows up here.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("caddyfile_adapt/*.caddytest")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			caddyfile, want, ok := strings.Cut(string(data), "----------")
			require.True(t, ok, "%s: no ---------- line between the Caddyfile and the JSON", f)
			if !caddytest.CompareAdapt(t, f, strings.TrimSpace(caddyfile)+"\n", "caddyfile", strings.TrimSpace(want)) {
				t.Errorf("%s: the adapted JSON differs (diff above)", f)
			}
		})
	}
}
