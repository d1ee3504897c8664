package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// update rewrites the JSON twins of caddyfile-examples/ from their Caddyfiles, for a new or
// changed example: go test ./tests/integration -run TestCaddyfileExamples -update, then read
// the diff of the twins before committing them.
var update = flag.Bool("update", false, "write the JSON twins of caddyfile-examples/ from their Caddyfiles")

// examplesDir holds the example configs that operators copy, each with its JSON twin.
const examplesDir = "../../caddyfile-examples"

// TestCaddyfileAdapt checks that every Caddyfile in caddyfile_adapt/ adapts, without
// warnings, to the JSON below its "----------" line. These golden files are the reference of
// the Caddyfile syntax: a change in the parser that changes the JSON shows up here.
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
			got := adaptCaddyfile(t, f, []byte(strings.TrimSpace(caddyfile)+"\n"))
			require.JSONEq(t, want, string(got), "%s: the adapted JSON differs", f)
		})
	}
}

// TestCaddyfileExamples keeps every example of caddyfile-examples/ working: each file that is
// not a JSON twin is a Caddyfile, which must adapt without warnings, give the JSON of its twin
// (production.Caddyfile and production.json), read every provider secret from a placeholder,
// and validate: every module is provisioned, as `caddy validate` does, with a dummy value for
// each {env.NAME} it reads. A new example is covered as soon as it is in the folder, and it
// fails until its twin is there too; a twin without its Caddyfile fails as well.
func TestCaddyfileExamples(t *testing.T) {
	entries, err := os.ReadDir(examplesDir)
	require.NoError(t, err)
	var examples []string
	twins := make(map[string]bool) // twin file name -> whether an example claims it
	for _, e := range entries {
		require.False(t, e.IsDir(), "%s/%s: the folder holds only examples and their twins", examplesDir, e.Name())
		if filepath.Ext(e.Name()) == ".json" {
			twins[e.Name()] = false
		} else {
			examples = append(examples, e.Name())
		}
	}
	require.NotEmpty(t, examples, "no example in %s", examplesDir)

	for _, name := range examples {
		twin := strings.TrimSuffix(name, filepath.Ext(name)) + ".json"
		twins[twin] = true
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(examplesDir, name))
			require.NoError(t, err)
			got := adaptCaddyfile(t, name, src)

			twinPath := filepath.Join(examplesDir, twin)
			if *update {
				require.NoError(t, os.WriteFile(twinPath, got, 0o644))
			}
			want, err := os.ReadFile(twinPath)
			require.NoError(t, err, "%s has no JSON twin %s: write it with go test -run TestCaddyfileExamples -update, and read it", name, twin)
			require.JSONEq(t, string(want), string(got), "%s adapts to other JSON than %s: if the change is meant, -update it", name, twin)

			requirePlaceholderSecrets(t, got)
			validateConfig(t, got)
		})
	}
	for twin, claimed := range twins {
		assert.True(t, claimed, "%s/%s is the twin of no example", examplesDir, twin)
	}
}

// adaptCaddyfile adapts a Caddyfile to JSON, indented as the twins are, and fails the test on
// an error or a warning: an example that adapts with warnings teaches operators a mistake.
func adaptCaddyfile(t *testing.T, name string, src []byte) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	require.NotNil(t, adapter, "no caddyfile adapter")
	out, warnings, err := adapter.Adapt(src, map[string]any{"filename": name})
	require.NoError(t, err, "%s does not adapt", name)
	for _, w := range warnings {
		t.Errorf("%s:%d: adapting warns: %s: %s", name, w.Line, w.Directive, w.Message)
	}
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, out, "", "\t"))
	pretty.WriteByte('\n')
	return pretty.Bytes()
}

// secretPlaceholder is how a provider secret is given in a config: resolved when the config
// loads, never written into it.
var secretPlaceholder = regexp.MustCompile(`^\{(?:env|file)\.[^{}]+\}$`)

// secretFields are the adapters' options that hold a secret.
var secretFields = []string{"token", "client_secret", "api_key"}

// requirePlaceholderSecrets checks that the config has a credential_status handler and that
// each of its providers' secrets is an {env.*} or {file.*} placeholder, not a literal.
func requirePlaceholderSecrets(t *testing.T, adapted []byte) {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(adapted, &doc))
	handlers := 0
	walkJSON(doc, func(obj map[string]any) {
		if obj["handler"] != "credential_status" {
			return
		}
		handlers++
		providers, _ := obj["providers"].(map[string]any)
		for name, p := range providers {
			fields, _ := p.(map[string]any)
			for _, f := range secretFields {
				if v, ok := fields[f]; ok {
					s, _ := v.(string)
					assert.Regexp(t, secretPlaceholder, s, "provider %s: %s must be an {env.NAME} or {file./path} placeholder", name, f)
				}
			}
		}
	})
	require.NotZero(t, handlers, "no credential_status handler in the config")
}

// envPlaceholder is an {env.NAME} placeholder anywhere in a config.
var envPlaceholder = regexp.MustCompile(`\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// validateConfig provisions every module of an adapted config without starting a server, as
// `caddy validate` does. Each {env.NAME} it reads is set to a dummy value for the test's
// duration (a provider with an empty secret fails its provisioning). Log files are moved into
// a temporary directory, and CA files of client authentication are replaced by a CA made for
// the test, since validation opens them and the examples' paths (/var/log/..., /etc/...) are
// the production host's.
func validateConfig(t *testing.T, adapted []byte) {
	t.Helper()
	for _, m := range envPlaceholder.FindAllSubmatch(adapted, -1) {
		t.Setenv(string(m[1]), "dummy-"+string(m[1]))
	}
	var doc any
	require.NoError(t, json.Unmarshal(adapted, &doc))
	dir := t.TempDir()
	ca := filepath.Join(dir, "test-ca.pem")
	require.NoError(t, os.WriteFile(ca, testCA(t), 0o600))
	walkJSON(doc, func(obj map[string]any) {
		if file, ok := obj["filename"].(string); ok && obj["output"] == "file" {
			obj["filename"] = filepath.Join(dir, filepath.Base(file))
		}
		if files, ok := obj["pem_files"].([]any); ok {
			for i := range files {
				files[i] = ca
			}
		}
	})
	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.NoError(t, caddy.Validate(&cfg), "the config does not validate")
}

// walkJSON calls fn on every object of a decoded JSON document, outermost first.
func walkJSON(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
		for _, child := range v {
			walkJSON(child, fn)
		}
	case []any:
		for _, child := range v {
			walkJSON(child, fn)
		}
	}
}

// testCA returns the PEM of a self-signed CA certificate, for configs that load one.
func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "credgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
