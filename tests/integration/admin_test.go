package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// adminBlock configures the providers of the admin API's tests, each named adm-*:
//   - adm-dc, DigiCert parent account 1: every numeric ID
//   - adm-dc-other, unrelated account 2: 2xxxx, which adm-dc claims too (a probe asks both)
//   - adm-flaky, the second DigiCert, with a breaker that opens on the 2nd failure: 5xxxx
//   - adm-vault, ZStack, whose breaker's open_for (45s) is the Retry-After of a hold
//
// vaultFailures is adm-vault's breaker's failures: changing it gives adm-vault a new breaker.
func adminBlock(vaultFailures int) string {
	return fmt.Sprintf(`
		provider adm-dc digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			retries 0
		}
		provider adm-dc-other digicert {
			base_url %[1]s
			api_key {env.DC_OTHER_KEY}
			id_pattern 2[0-9]{4}
			retries 0
		}
		provider adm-flaky digicert {
			base_url %[2]s
			api_key {env.DC_FLAKY_KEY}
			id_pattern 5[0-9]{4}
			retries 0
			breaker {
				failures 2
				open_for 1m
			}
		}
		provider adm-vault zstack {
			base_url %[3]s
			token {env.ZSTACK_TOKEN}
			retries 0
			breaker {
				failures %[4]d
				open_for 45s
			}
		}`, dc.URL, dcFlaky.URL, zs.URL, vaultFailures)
}

var adminProviders = []string{"adm-dc", "adm-dc-other", "adm-flaky", "adm-vault"}

// adminCall sends a request to the admin endpoint; body, when not empty, is sent as JSON.
func adminCall(t *testing.T, method, path, body string) answer {
	t.Helper()
	return callURL(t, http.DefaultClient, method, adminURL+path, body)
}

// adminProvider is one provider of GET /credential-status/providers.
type adminProvider struct {
	Name           string `json:"name"`
	Adapter        string `json:"adapter"`
	State          string `json:"state"`
	Forced         bool   `json:"forced"`
	ForcedAt       string `json:"forced_at"`
	AutomaticState string `json:"automatic_state"`
	Counts         struct {
		Requests            int `json:"requests"`
		Successes           int `json:"successes"`
		Failures            int `json:"failures"`
		Rejected            int `json:"rejected"`
		ConsecutiveFailures int `json:"consecutive_failures"`
	} `json:"counts"`
	LastFailure string `json:"last_failure"`
	OpenedAt    string `json:"opened_at"`
}

// adminListing reads GET /credential-status/providers: the names in order, and each entry.
func adminListing(t *testing.T) ([]string, map[string]adminProvider, string) {
	t.Helper()
	a := adminCall(t, "GET", "/credential-status/providers", "")
	require.Equal(t, 200, a.status, a.raw)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	var list []adminProvider
	require.NoError(t, json.Unmarshal([]byte(a.raw), &list), a.raw)
	names := []string{}
	byName := map[string]adminProvider{}
	for _, p := range list {
		names = append(names, p.Name)
		byName[p.Name] = p
	}
	return names, byName, a.raw
}

// setBreaker forces a provider's breaker with PUT, and returns the provider's listing after.
func setBreaker(t *testing.T, name, state string) adminProvider {
	t.Helper()
	a := adminCall(t, "PUT", "/credential-status/providers/"+name+"/breaker", `{"state": "`+state+`"}`)
	require.Equal(t, 200, a.status, a.raw)
	var p adminProvider
	require.NoError(t, json.Unmarshal([]byte(a.raw), &p), a.raw)
	require.Equal(t, name, p.Name)
	return p
}

// releaseBreakers lets every adm-* breaker go back to automatic when the test ends: a forced
// state is the process's, and would outlive the test.
func releaseBreakers(t *testing.T) {
	t.Cleanup(func() {
		for _, name := range adminProviders {
			adminCall(t, "DELETE", "/credential-status/providers/"+name+"/breaker", "")
		}
	})
}

// breakerGauge returns the value of caddy_credential_status_breaker_state for a provider on
// the admin endpoint's /metrics, and whether the series is there.
func breakerGauge(t *testing.T, name string) (float64, bool) {
	t.Helper()
	f, ok := scrape(t)["breaker_state"]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "provider" && lp.GetValue() == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestAdminAPIHoldsABreakerOpen lists the providers, holds adm-vault's breaker open, and
// checks that the gateway fails its requests fast without asking ZStack, that the listing
// and the metrics show it, that the hold outlives two reloads (one that gives adm-vault a new
// breaker), and that requests flow again once it is released.
func TestAdminAPIHoldsABreakerOpen(t *testing.T) {
	tester := load(t, adminBlock(5))
	releaseBreakers(t)
	fresh(zs.Server)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})

	names, byName, raw := adminListing(t)
	assert.Equal(t, adminProviders, names, "the running config's providers, sorted by name")
	assert.Equal(t, "zstack", byName["adm-vault"].Adapter)
	assert.Equal(t, "digicert", byName["adm-dc"].Adapter)
	for _, name := range adminProviders {
		assert.Equal(t, "closed", byName[name].State, name)
		assert.False(t, byName[name].Forced, name)
	}
	for _, secret := range []string{"k-parent", "k-other", "k-flaky", "zs-token"} {
		assert.NotContains(t, raw, secret)
	}

	p := setBreaker(t, "adm-vault", "open")
	assert.Equal(t, "open", p.State)
	assert.True(t, p.Forced)
	assert.NotEmpty(t, p.OpenedAt)

	get := func() answer { return call(t, tester, "GET", "/credentials/"+zsCred+"/status", "") }
	a := get()
	requireProblem(t, a, 503, "provider-unavailable")
	assert.Equal(t, "45", a.header.Get("Retry-After"), "the provider's open_for")
	assert.Contains(t, a.body["detail"], "held open by an operator")
	assert.Equal(t, "adm-vault", a.body["provider"])
	requireProblem(t, call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "inactive"}`), 503, "provider-unavailable")
	assert.Zero(t, zs.Count(""), "ZStack saw no request")

	_, byName, _ = adminListing(t)
	assert.Equal(t, "open", byName["adm-vault"].State)
	assert.True(t, byName["adm-vault"].Forced)
	assert.Equal(t, 2, byName["adm-vault"].Counts.Rejected)
	assert.Zero(t, byName["adm-vault"].Counts.Requests)
	gauge, ok := breakerGauge(t, "adm-vault")
	require.True(t, ok, `caddy_credential_status_breaker_state{provider="adm-vault"} is on /metrics`)
	assert.Equal(t, 2.0, gauge, "a forced open is open in the metrics")

	// A harmless reload, then one that gives adm-vault a new breaker: the hold stays.
	tester = load(t, adminBlock(5)+"\n negative_ttl 7s")
	requireProblem(t, get(), 503, "provider-unavailable")
	tester = load(t, adminBlock(6))
	a = get()
	requireProblem(t, a, 503, "provider-unavailable")
	assert.Contains(t, a.body["detail"], "operator")
	assert.Zero(t, zs.Count(""), "ZStack saw no request across the reloads")
	_, byName, _ = adminListing(t)
	assert.Equal(t, "open", byName["adm-vault"].State)
	assert.True(t, byName["adm-vault"].Forced)
	assert.Equal(t, 1, byName["adm-vault"].Counts.Rejected, "a new breaker, with counts of its own")
	gauge, ok = breakerGauge(t, "adm-vault")
	require.True(t, ok)
	assert.Equal(t, 2.0, gauge)

	a = adminCall(t, "DELETE", "/credential-status/providers/adm-vault/breaker", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "closed", a.body["state"])
	assert.Equal(t, false, a.body["forced"])
	a = get()
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])
	assert.Equal(t, 1, zs.Count("GET"), "requests flow again")
	gauge, ok = breakerGauge(t, "adm-vault")
	require.True(t, ok)
	assert.Equal(t, 0.0, gauge)
}

// TestAdminAPIHoldsATrippedBreakerClosed trips adm-flaky's breaker, holds it closed so that
// requests reach the provider again, and releases it: gobreaker is still open.
func TestAdminAPIHoldsATrippedBreakerClosed(t *testing.T) {
	tester := load(t, adminBlock(5))
	releaseBreakers(t)
	fresh(dcFlaky.Server)
	dcFlaky.AddKey(50001, 1, "flaky", "active")
	get := func() answer { return call(t, tester, "GET", "/credentials/50001/status?provider=adm-flaky", "") }

	dcFlaky.SetFault(providertest.Fault{Status: 500})
	requireProblem(t, get(), 502, "provider-error")
	requireProblem(t, get(), 502, "provider-error")
	a := get()
	requireProblem(t, a, 503, "provider-unavailable")
	assert.NotContains(t, a.body["detail"], "operator")
	require.Equal(t, 2, dcFlaky.Count(""))
	dcFlaky.Clear()

	_, byName, _ := adminListing(t)
	p := byName["adm-flaky"]
	assert.Equal(t, "open", p.State)
	assert.False(t, p.Forced)
	assert.Equal(t, 2, p.Counts.Requests)
	assert.Equal(t, 2, p.Counts.Failures)
	assert.Equal(t, 1, p.Counts.Rejected)
	assert.Equal(t, 2, p.Counts.ConsecutiveFailures)
	for _, ts := range []string{p.LastFailure, p.OpenedAt} {
		_, err := time.Parse(time.RFC3339, ts)
		assert.NoError(t, err, "RFC 3339: %q", ts)
	}

	p = setBreaker(t, "adm-flaky", "closed")
	assert.Equal(t, "closed", p.State)
	assert.True(t, p.Forced)
	assert.Equal(t, "open", p.AutomaticState)
	a = get()
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, 3, dcFlaky.Count(""), "held closed: the request reached DigiCert")
	gauge, ok := breakerGauge(t, "adm-flaky")
	require.True(t, ok)
	assert.Equal(t, 0.0, gauge, "a forced closed is closed in the metrics")

	p = setBreaker(t, "adm-flaky", "auto")
	assert.Equal(t, "open", p.State, "released: gobreaker's state, as it was")
	assert.False(t, p.Forced)
	requireProblem(t, get(), 503, "provider-unavailable")
	assert.Equal(t, 3, dcFlaky.Count(""))
}

// TestAdminAPIPurgesTheCache caches the owners of two IDs found by probing, removes one ID
// from the cache, then all: each removed ID is probed again on its next request, a kept one
// is not.
func TestAdminAPIPurgesTheCache(t *testing.T) {
	tester := load(t, adminBlock(5))
	require.Equal(t, 200, adminCall(t, "DELETE", "/credential-status/cache", "").status, "a cache of an earlier test's config is gone")
	fresh(dc.Server)
	dc.AddKey(20001, 2, "partner-b", "active")
	dc.AddKey(20002, 2, "partner-c", "active")
	// reads returns how many reads DigiCert got for a GET of id: 1 when the owner was known,
	// more when adm-dc and adm-dc-other were both asked.
	reads := func(id string) int {
		t.Helper()
		before := dc.Count("GET")
		a := call(t, tester, "GET", "/credentials/"+id+"/status", "")
		require.Equal(t, 200, a.status, a.raw)
		require.Equal(t, "adm-dc-other", a.body["provider"])
		return dc.Count("GET") - before
	}
	probed := reads("20001")
	require.Greater(t, probed, 1, "a probe asks both candidates")
	require.Equal(t, probed, reads("20002"))
	require.Equal(t, 1, reads("20001"), "cached")
	require.Equal(t, 1, reads("20002"), "cached")

	a := adminCall(t, "DELETE", "/credential-status/cache?id=20001", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, 1.0, a.body["removed"])
	assert.Equal(t, probed, reads("20001"), "removed: probed again")
	assert.Equal(t, 1, reads("20002"), "kept")

	a = adminCall(t, "DELETE", "/credential-status/cache", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.GreaterOrEqual(t, a.body["removed"], 2.0)
	assert.Equal(t, probed, reads("20001"))
	assert.Equal(t, probed, reads("20002"))

	a = adminCall(t, "DELETE", "/credential-status/cache?ids=20001", "")
	require.Equal(t, 400, a.status, a.raw)
	assert.Equal(t, 1, reads("20001"), "a misspelt query emptied nothing")
}

// TestAdminAPIErrors checks the admin API's refusals: each is Caddy's admin error shape,
// and none forces anything.
func TestAdminAPIErrors(t *testing.T) {
	tester := load(t, adminBlock(5))
	releaseBreakers(t)
	fresh(dc.Server)
	dc.AddKey(10001, 1, "build-server", "active")

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		allow                    string
	}{
		{"unknown provider", "PUT", "/credential-status/providers/nobody/breaker", `{"state": "open"}`, 404, ""},
		{"bad state", "PUT", "/credential-status/providers/adm-dc/breaker", `{"state": "half-open"}`, 400, ""},
		{"malformed body", "PUT", "/credential-status/providers/adm-dc/breaker", `{"state": "open"`, 400, ""},
		{"unknown field", "PUT", "/credential-status/providers/adm-dc/breaker", `{"state": "open", "until": "tomorrow"}`, 400, ""},
		{"wrong method", "POST", "/credential-status/providers/adm-dc/breaker", `{"state": "open"}`, 405, "PUT, DELETE"},
		{"unknown path", "GET", "/credential-status/nothing", "", 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := adminCall(t, c.method, c.path, c.body)
			require.Equal(t, c.status, a.status, a.raw)
			assert.Equal(t, "application/json", a.header.Get("Content-Type"))
			assert.NotEmpty(t, a.body["error"], a.raw)
			assert.Equal(t, c.allow, a.header.Get("Allow"))
		})
	}
	_, byName, _ := adminListing(t)
	assert.False(t, byName["adm-dc"].Forced)
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/10001/status", "").status)
}
