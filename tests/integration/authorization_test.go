package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// policyBlock is the policy the authorization tests run under. The caller and its groups come
// from headers that the config names, as forward_auth would copy them:
//   - bot may only take credentials out of service, and read and preview;
//   - analyst may read and preview, nothing else;
//   - members of sec-admin may do everything;
//   - soar may deactivate at the DigiCert providers (a glob) and at vault only;
//   - dc-only may read at dc only, dc-other-only at dc-other only.
const policyBlock = `
		caller        {http.request.header.X-Caller}
		caller_groups {http.request.header.X-Groups}
		policy {
			allow bot           read dry_run deactivate revoke
			allow analyst       read dry_run
			allow group:sec-admin *
			allow soar          deactivate providers dc* vault
			allow dc-only       read providers dc
			allow dc-other-only read providers dc-other
		}`

// requestsSeen counts every request the simulators received: reads, writes and token calls.
func requestsSeen() int {
	n := 0
	for _, s := range sims {
		n += len(s.Requests())
	}
	return n + len(dcFlaky.Requests())
}

// as returns the headers of a caller with groups.
func as(caller string, groups ...string) []string {
	h := []string{"X-Caller", caller}
	if len(groups) > 0 {
		h = append(h, "X-Groups", strings.Join(groups, ", "))
	}
	return h
}

// requireDenied checks a is the policy's 403, naming the action and the provider, and that no
// simulator was asked anything since seen.
func requireDenied(t *testing.T, a answer, seen int, action, providerName string) {
	t.Helper()
	requireProblem(t, a, 403, "forbidden")
	assert.Contains(t, a.body["detail"], action, a.raw)
	if providerName != "" {
		assert.Equal(t, providerName, a.body["provider"], a.raw)
		assert.Contains(t, a.body["detail"], "provider "+providerName, a.raw)
	}
	assert.NotContains(t, a.raw, "allow", "a denial never shows the rules")
	assert.Equal(t, seen, requestsSeen(), "a denial calls no provider")
}

// TestPolicyEveryAction runs each of the five actions once allowed and once denied.
func TestPolicyEveryAction(t *testing.T) {
	tester := allVendors(t, policyBlock)
	put := func(id, body string, header ...string) answer {
		return call(t, tester, "PUT", "/credentials/"+id+"/status", body, header...)
	}

	// read
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/10001/status", "", as("analyst")...).status)
	seen := requestsSeen()
	requireDenied(t, call(t, tester, "GET", "/credentials/10001/status", "", as("nobody")...), seen, "read", "dc")
	requireDenied(t, call(t, tester, "GET", "/credentials/10001/status", ""), seen, "read", "dc") // not authenticated

	// dry_run: the action alone, whatever change it previews
	requireDenied(t, put("10001", `{"status": "active"}`, as("analyst")...), seen, "activate", "dc") // without ?dry_run it is a change
	a := call(t, tester, "PUT", "/credentials/10001/status?dry_run=true", `{"status": "active"}`, as("analyst")...)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, true, a.body["dry_run"])
	seen = requestsSeen()
	requireDenied(t, call(t, tester, "PUT", "/credentials/10001/status?dry_run=true", `{"status": "inactive"}`, as("soar")...), seen, "dry-run", "dc")

	// deactivate
	requireDenied(t, put("10001", `{"status": "inactive"}`, as("analyst")...), seen, "deactivate", "dc")
	a = put("10001", `{"status": "inactive"}`, as("bot")...)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", a.body["status"])

	// activate
	seen = requestsSeen()
	requireDenied(t, put("10001", `{"status": "active"}`, as("bot")...), seen, "activate", "dc")
	a = put("10001", `{"status": "active"}`, as("carol", "ops", "sec-admin")...)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])

	// revoke (Prefactor has a revoked state)
	seen = requestsSeen()
	requireDenied(t, put(pfActive, `{"status": "revoked"}`, as("analyst")...), seen, "revoke", "tokens")
	requireDenied(t, put(pfActive, `{"status": "revoked"}`, as("carol", "ops")...), seen, "revoke", "tokens") // not in the group
	a = put(pfActive, `{"status": "revoked"}`, as("bot")...)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "revoked", a.body["status"])

	// A hint names the provider: the check is at that provider, before anything else.
	seen = requestsSeen()
	requireDenied(t, put("10001", `{"status": "inactive", "provider": "custody-eu"}`, as("soar")...), seen, "deactivate", "custody-eu")
}

// TestPolicyProviderGlobs: soar may deactivate at dc* and vault, and nowhere else.
func TestPolicyProviderGlobs(t *testing.T) {
	tester := allVendors(t, policyBlock)
	put := func(id, body string) answer {
		return call(t, tester, "PUT", "/credentials/"+id+"/status", body, as("soar")...)
	}
	a := put("10001", `{"status": "inactive"}`) // dc, by the glob
	require.Equal(t, 200, a.status, a.raw)
	a = put(zsCred, `{"status": "inactive"}`) // vault, by name
	require.Equal(t, 200, a.status, a.raw)
	seen := requestsSeen()
	requireDenied(t, put(pfActive, `{"status": "inactive"}`), seen, "deactivate", "tokens")
	requireDenied(t, put(palEU, `{"status": "inactive"}`), seen, "deactivate", "") // two Palisade candidates
	assert.Equal(t, 0, changes(pf.Server)+changes(pal.Server))
}

// TestPolicyBeforeResolution: a caller that may act at none of an ID's candidates is refused
// before the probe; one that may act at some candidate is checked again at the owner the
// probe found.
func TestPolicyBeforeResolution(t *testing.T) {
	tester := allVendors(t, policyBlock)
	dc.AddKey(20001, 2, "partner-b", "active") // owned by dc-other; dc answers 403 "not ours"

	// 20001 could be dc's or dc-other's: soar may read at neither. No probe.
	seen := requestsSeen()
	requireDenied(t, call(t, tester, "GET", "/credentials/20001/status", "", as("soar")...), seen, "read", "")

	// dc-only may read at dc, a candidate: the probe runs (reads only), finds dc-other.
	a := call(t, tester, "GET", "/credentials/20001/status", "", as("dc-only")...)
	requireProblem(t, a, 403, "forbidden")
	assert.Equal(t, "dc-other", a.body["provider"], "denied at the owner the probe found")
	assert.Greater(t, requestsSeen(), seen, "the probe asked the candidates")
	assert.Equal(t, 0, writes())

	// dc-other-only may read there.
	a = call(t, tester, "GET", "/credentials/20001/status", "", as("dc-other-only")...)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "dc-other", a.body["provider"])

	// An ID no provider could own: 404 for a caller who may read somewhere, 403 for one who
	// may read nowhere (it learns nothing of the ID).
	requireProblem(t, call(t, tester, "GET", "/credentials/zz/status", "", as("analyst")...), 404, "credential-not-found")
	requireProblem(t, call(t, tester, "GET", "/credentials/zz/status", "", as("soar")...), 403, "forbidden")

	// Now the owner is cached: dc-only is refused at it again, with no call.
	seen = requestsSeen()
	requireDenied(t, call(t, tester, "GET", "/credentials/20001/status", "", as("dc-only")...), seen, "read", "dc-other")
}

// TestPolicyBatch: in a batch each item is checked alone; denied items fail, the others run.
func TestPolicyBatch(t *testing.T) {
	tester := allVendors(t, policyBlock)
	a, b := postBatch(t, tester, fmt.Sprintf(`{"items": [
		{"id": "10001", "status": "inactive"},
		{"id": "10002", "status": "active"},
		{"id": %q, "status": "inactive"},
		{"id": %q, "status": "revoked"}]}`, zsCred, pfActive), as("bot")...)
	require.Equal(t, 200, a.status, a.raw)
	require.Len(t, b.Results, 4)
	assert.Equal(t, "", itemProblem(b.Results[0]), "bot may deactivate")
	assert.Equal(t, "forbidden", itemProblem(b.Results[1]), "bot may not activate")
	assert.Equal(t, "", itemProblem(b.Results[2]))
	assert.Equal(t, "", itemProblem(b.Results[3]), "bot may revoke")
	assert.Equal(t, map[string]int{"changed": 3, "unchanged": 0, "pending": 0, "failed": 1}, b.Summary)
	assert.Equal(t, 1, changes(dc.Server), "only the allowed DigiCert item was written")
}

// TestPolicyAuditAndMetrics: a denial is an audit entry with outcome denied, and a count of
// requests_total{outcome="denied"}.
func TestPolicyAuditAndMetrics(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	tester := loadWith(t, fmt.Sprintf(`
	log audit {
		output file %s
		format json
		include http.handlers.credential_status.audit
	}`, auditFile), "credential_status {\n"+palisadeBlock()+zstackBlock()+prefactorBlock()+digicertBlock()+policyBlock+"\n}")
	fresh(dc.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	denied := func() float64 {
		return metricValue(scrape(t), "requests_total", "provider", "dc", "outcome", "denied")
	}
	before := denied()
	requireProblem(t, call(t, tester, "GET", "/credentials/10001/status", "", as("nobody")...), 403, "forbidden")
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "active"}`, as("bot")...), 403, "forbidden")
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status?dry_run=true", `{"status": "inactive"}`, as("soar")...), 403, "forbidden")
	_, b := postBatch(t, tester, `{"items": [{"id": "10001", "status": "active"}]}`, as("analyst")...)
	require.Len(t, b.Results, 1)
	assert.Equal(t, "forbidden", itemProblem(b.Results[0]))
	assert.Equal(t, 4.0, denied()-before)
	assert.Equal(t, 0, len(dc.Requests()), "no call for any of them")

	entries := readAudit(t, auditFile, 4)
	require.Len(t, entries, 4)
	for i, want := range []struct{ caller, action string }{
		{"nobody", "read"}, {"bot", "activate"}, {"soar", "dry_run"}, {"analyst", "activate"},
	} {
		e := entries[i]
		assert.Equal(t, "denied", e["outcome"], "%v", e)
		assert.Equal(t, want.caller, e["caller"], "%v", e)
		assert.Equal(t, want.action, e["action"], "%v", e)
		assert.Equal(t, "10001", e["id"], "%v", e)
		assert.Equal(t, "dc", e["provider"], "%v", e)
	}
}

// TestPolicyDefaultCallerIsTheAuthenticatedUser: without `caller`, the policy, the audit
// trail and ZStack's operator see {http.auth.user.id}, here basic_auth's user.
func TestPolicyDefaultCallerIsTheAuthenticatedUser(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	require.NoError(t, err)
	tester := loadSite(t, fmt.Sprintf(`
	basic_auth /credentials/* {
		alice %s
	}
	credential_status {
		%s
		policy {
			allow alice deactivate
		}
	}`, hash, zstackBlock()))
	fresh(zs.Server)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})
	seen := requestsSeen()
	a := call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "active"}`, "Authorization", basicAuth("alice", "alice-password"))
	requireDenied(t, a, seen, "activate", "vault")
	a = call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "inactive"}`, "Authorization", basicAuth("alice", "alice-password"))
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "alice", zs.LastOperator(zsCred), "the operator is the policy's caller")
}

// TestNoPolicyWarns: a handler without a policy lets everyone do everything, and its config
// load says so, once.
func TestNoPolicyWarns(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "handler.log")
	loadWith(t, fmt.Sprintf(`
	log handler {
		output file %s
		format json
		level WARN
		include http.handlers.credential_status
		exclude http.handlers.credential_status.audit
	}`, logFile), "credential_status {\n"+zstackBlock()+"\n}")
	var warnings []map[string]any
	for _, e := range readAudit(t, logFile, 1) {
		if strings.Contains(fmt.Sprint(e["msg"]), "no policy") {
			warnings = append(warnings, e)
		}
	}
	require.Len(t, warnings, 1, "one warning for the one handler")
	assert.Equal(t, "warn", warnings[0]["level"])
	assert.Contains(t, warnings[0]["msg"], "every caller may read and change every credential")
}
