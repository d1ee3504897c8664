package integration

// The vendors as their pages read (issue 13): the readings of PROVIDERS.md, "Where the seed
// pages leave room", each through Caddy and the simulators, with the simulators' switches for
// both readings where a page is silent.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/palisade/palisadetest"
	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// TestReadsOff: with reads off, every adapter sends its documented write alone, one call
// (counted at the simulator), against a simulator whose read route is gone (404 and 405);
// GET and dry runs answer 501 reads-disabled; changed is null.
func TestReadsOff(t *testing.T) {
	tester := load(t, fixtureBlocks("off", "reads off"))
	for _, f := range providertest.Fixtures() {
		sim := sims[f.Name]
		for _, gone := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
			t.Run(fmt.Sprintf("%s read route %d", f.Name, gone), func(t *testing.T) {
				fresh(sim.Server)
				sim.Add(f.ID)
				sim.SetReadRoute(gone)
				defer sim.SetReadRoute(0)
				path := "/credentials/" + f.ID + "/status"

				a := call(t, tester, "PUT", path, `{"status": "inactive"}`)
				require.Equal(t, 200, a.status, a.raw)
				assert.Equal(t, "inactive", a.body["status"], a.raw)
				assert.Contains(t, a.raw, `"changed":null`)
				assert.Equal(t, "off-"+f.Name, a.body["provider"])
				assert.False(t, sim.Active(f.ID), "the write went through")
				assert.Equal(t, 0, sim.Count(http.MethodGet), "never read")
				assert.Equal(t, 1, sim.Count(f.WriteMethod), "one vendor call per change")

				a = call(t, tester, "PUT", path, `{"status": "active"}`)
				require.Equal(t, 200, a.status, a.raw)
				assert.True(t, sim.Active(f.ID))
				assert.Equal(t, 2, sim.Count(f.WriteMethod), "one call per change")
				assert.Equal(t, 0, sim.Count(http.MethodGet), "never read") // (Palisade's OAuth token is a POST of its own)

				requireProblem(t, call(t, tester, "GET", path, ""), 501, "reads-disabled")
				requireProblem(t, call(t, tester, "PUT", path+"?dry_run=true", `{"status": "inactive"}`), 501, "reads-disabled")
				b := call(t, tester, "POST", "/credentials/status", `{"dry_run": true, "items": [{"id": "`+f.ID+`", "status": "inactive"}]}`)
				require.Equal(t, 200, b.status, b.raw)
				assert.Contains(t, b.raw, "reads-disabled")
				assert.Equal(t, 2, sim.Count(f.WriteMethod), "GET and dry runs call nothing")
				assert.Equal(t, 0, sim.Count(http.MethodGet), "GET and dry runs call nothing")
			})
		}
	}
}

// TestReadsOffAmongCandidates: candidates with reads off are never probed; the API.md rule
// for several candidates.
func TestReadsOffAmongCandidates(t *testing.T) {
	const unknown = "00000000-0000-4000-8000-00000000abcd"
	block := func(euReads, usReads string) string {
		return fmt.Sprintf(`
		provider custody-eu palisade {
			base_url %[1]s
			client_id {env.PALISADE_CLIENT_ID}
			client_secret {env.PALISADE_CLIENT_SECRET}
			retries 0
			reads %[2]s
		}
		provider custody-us palisade {
			base_url %[1]s
			token {env.PALISADE_TOKEN}
			retries 0
			reads %[3]s
		}`, pal.URL, euReads, usReads)
	}
	pal.AddCredential("org-eu", palEU, "Treasury", "WALLETS", "ENABLED", true, false)
	pal.AddCredential("org-us", palUS, "Settlement", "TRANSACTIONS", "ENABLED", true, false)

	t.Run("one reads off: the probe of the other decides", func(t *testing.T) {
		tester := load(t, block("on", "off"))
		fresh(pal.Server)
		a := call(t, tester, "PUT", "/credentials/"+palEU+"/status", `{"status": "active"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "custody-eu", a.body["provider"], "the probed candidate owns it")
		a = call(t, tester, "PUT", "/credentials/"+palUS+"/status", `{"status": "inactive"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "custody-us", a.body["provider"], "none probed owns it: the one reads-off candidate")
		assert.Contains(t, a.raw, `"changed":null`)
		c, _ := pal.Credential(palUS)
		assert.False(t, c.Active)
		for _, r := range pal.Requests() {
			if r.Method == http.MethodGet {
				assert.NotEqual(t, "Bearer ptoken-us", r.Header.Get("Authorization"), "custody-us was probed")
			}
		}
		pal.Update(palUS, func(c *palisadetest.Credential) { c.Active, c.Status = true, "ENABLED" })
	})
	t.Run("two reads off: ambiguous", func(t *testing.T) {
		tester := load(t, block("off", "off"))
		fresh(pal.Server)
		requireProblem(t, call(t, tester, "PUT", "/credentials/"+unknown+"/status", `{"status": "inactive"}`), 409, "ambiguous-credential")
		assert.Equal(t, 0, pal.Count(""), "nobody probed, nothing written")
	})
}

// TestDigiCertRefusals: a 403 while probing is "not this account" only as PROVIDERS.md says.
// The unrelated-account reading (the page's) finds the owner and caches it; the permission
// reading (every candidate answers 403) answers 403 provider-forbidden and caches nothing.
func TestDigiCertRefusals(t *testing.T) {
	block := fmt.Sprintf(`
		provider dc-parent digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			retries 0
		}
		provider dc-other digicert {
			base_url %[1]s
			api_key {env.DC_OTHER_KEY}
			retries 0
		}`, dc.URL)
	tester := load(t, block)

	t.Run("unrelated account: not this account", func(t *testing.T) {
		fresh(dc.Server)
		a := call(t, tester, "GET", "/credentials/20001/status", "")
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "dc-other", a.body["provider"])
		n := dc.Count("")
		a = call(t, tester, "GET", "/credentials/20001/status", "")
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, n+1, dc.Count(""), "the owner was cached: no probe")
	})
	t.Run("permission problem everywhere: 403, nothing cached", func(t *testing.T) {
		fresh(dc.Server)
		dc.SetPermissionDenied("k-parent", true)
		dc.SetPermissionDenied("k-other", true)
		defer dc.SetPermissionDenied("k-parent", false)
		defer dc.SetPermissionDenied("k-other", false)
		const id = "10002"
		a := call(t, tester, "GET", "/credentials/"+id+"/status", "")
		requireProblem(t, a, 403, "provider-forbidden")
		assert.EqualValues(t, 403, a.body["upstream_status"])
		a = call(t, tester, "GET", "/credentials/"+id+"/status", "")
		requireProblem(t, a, 403, "provider-forbidden")
		assert.Equal(t, 4, dc.Count(""), "nothing cached: probed again")
		dc.SetPermissionDenied("k-parent", false)
		a = call(t, tester, "GET", "/credentials/"+id+"/status", "")
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "dc-parent", a.body["provider"])
	})
	t.Run("canonical IDs: a leading zero matches no pattern", func(t *testing.T) {
		fresh(dc.Server)
		requireProblem(t, call(t, tester, "GET", "/credentials/010002/status", ""), 404, "credential-not-found")
		assert.Equal(t, 0, dc.Count(""))
	})
}

// palOther is a credential of an organisation that no provider configures.
const palOther = "7d444840-9dc0-41d2-9ee4-8c5b6f1a2e3d"

// TestPalisadeOrganizations: a 403 from another organisation (the simulator's second reading)
// reads "not ours" while probing.
func TestPalisadeOrganizations(t *testing.T) {
	tester := load(t, palisadeBlock())
	pal.AddCredential("org-eu", palEU, "Treasury", "WALLETS", "ENABLED", true, false)
	pal.AddCredential("org-x", palOther, "Elsewhere", "WALLETS", "ENABLED", true, false)
	pal.SetForeignForbidden(true)
	defer pal.SetForeignForbidden(false)
	fresh(pal.Server)

	a := call(t, tester, "GET", "/credentials/"+palEU+"/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "custody-eu", a.body["provider"])
	gets := pal.Count(http.MethodGet)
	a = call(t, tester, "GET", "/credentials/"+palEU+"/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, gets+1, pal.Count(http.MethodGet), "owned IDs are cached")

	requireProblem(t, call(t, tester, "GET", "/credentials/00000000-0000-4000-8000-0000000f0f0f/status", ""), 404, "credential-not-found")
	a = call(t, tester, "GET", "/credentials/"+palOther+"/status", "")
	requireProblem(t, a, 403, "provider-forbidden") // both organisations refused: never a 404
}

// TestPrefactorErrors: request errors are provider errors, only the vendor's refusal a
// refused transition; the page's literal body is accepted.
func TestPrefactorErrors(t *testing.T) {
	tester := load(t, prefactorBlock())
	const id = "013xrzp12g3nqk8n7f8f9jbg8d1fdm01"
	pf.AddAPIToken(id, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	cases := []struct {
		status int
		code   string
		want   int
		suffix string
	}{
		{400, "bad_request", 502, "provider-error"},
		{422, "validation_errors", 502, "provider-error"},
		{409, "invalid_action", 409, "transition-not-allowed"},
		{400, "invalid_action", 409, "transition-not-allowed"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			fresh(pf.Server)
			pf.SetFault(providertest.Fault{Status: tc.status, Code: tc.code, Method: http.MethodPost, Times: 1})
			a := call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "inactive"}`)
			requireProblem(t, a, tc.want, tc.suffix)
			assert.EqualValues(t, tc.status, a.body["upstream_status"], a.raw)
			assert.Contains(t, a.body["detail"], tc.code, a.raw)
		})
	}
	t.Run("expired token reads inactive, its word kept", func(t *testing.T) {
		fresh(pf.Server)
		pf.SetExpiresAt(id, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		defer pf.SetExpiresAt(id, "2099-01-01T00:00:00Z")
		a := call(t, tester, "GET", "/credentials/"+id+"/status", "")
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "inactive", a.body["status"])
		assert.Equal(t, "active", a.body["provider_status"])
	})
	t.Run("the page's literal body", func(t *testing.T) {
		for _, body := range []string{`"key-literal-1"`, `null`, `{"idempotency_key": "key-object-1"}`} {
			req, err := http.NewRequest("POST", pf.URL+"/api/v1/api_token/"+id+"/suspend", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer pf-token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Contains(t, []int{200, 409}, resp.StatusCode, body)
		}
		assert.Contains(t, pf.IdempotencyKeys(), "key-literal-1")
		pf.AddAPIToken(id, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	})
}

// TestZStackHealth: a healthStatus that says expired is inactive even with a future
// expiresAt.
func TestZStackHealth(t *testing.T) {
	tester := load(t, zstackBlock())
	fresh(zs.Server)
	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: future, HealthStatus: "CREDENTIAL_HEALTH_STATUS_EXPIRED", Value: zsSecret})
	a := call(t, tester, "GET", "/credentials/"+zsCred+"/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", a.body["status"])
	assert.Equal(t, "CREDENTIAL_HEALTH_STATUS_EXPIRED", a.body["provider_status"])
	a = call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "active"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])
	assert.Equal(t, true, a.body["changed"])
}
