package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/credgate/credgate/module/provider/providertest"
)

// scrape reads the credential_status families of the admin endpoint's /metrics.
func scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	ours := map[string]*dto.MetricFamily{}
	for name, f := range fams {
		if strings.HasPrefix(name, "caddy_credential_status_") {
			ours[strings.TrimPrefix(name, "caddy_credential_status_")] = f
		}
	}
	return ours
}

// metricValue is the value of the series of family name whose labels include the given
// pairs, summed over the series that match: a counter's or gauge's value, a histogram's
// count. Absent is 0.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
series:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetrics drives each kind of request and reads, on Caddy's admin /metrics, that every
// collector counted it: the counters are the process's, so the test compares before and after.
func TestMetrics(t *testing.T) {
	tester := load(t, digicertBlock())
	fresh(dc.Server, dcFlaky.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	dc.AddKey(10002, 1, "ci-runner", "inactive")
	dc.AddKey(20001, 2, "partner-b", "active")
	dcFlaky.AddKey(50001, 1, "flaky", "active")
	before := scrape(t)
	require.Contains(t, before, "breaker_state", "the pool collector is registered")
	require.Contains(t, before, "cache_entries")

	// A single-candidate ID (a cache miss, then a pattern), changed; then again, from the
	// cache, unchanged.
	require.Equal(t, 200, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive"}`).status)
	require.Equal(t, 200, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive"}`).status)
	// A provider named by the request; a read; an ID two providers may own (a probe).
	require.Equal(t, 200, call(t, tester, "PUT", "/credentials/10002/status", `{"status": "active", "provider": "dc"}`).status)
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/20001/status", "").status)
	// Problems: an unknown provider, an ID no pattern matches, a method.
	requireProblem(t, call(t, tester, "GET", "/credentials/10001/status?provider=nope", ""), 400, "unknown-provider")
	requireProblem(t, call(t, tester, "GET", "/credentials/abc/status", ""), 404, "credential-not-found")
	requireProblem(t, call(t, tester, "DELETE", "/credentials/10001/status", ""), 405, "method-not-allowed")
	// The flaky provider fails 3 times: its breaker opens.
	dcFlaky.SetFault(providertest.Fault{Status: 500})
	for i := 0; i < 3; i++ {
		requireProblem(t, call(t, tester, "GET", "/credentials/50001/status?provider=flaky", ""), 502, "provider-error")
	}
	requireProblem(t, call(t, tester, "GET", "/credentials/50001/status?provider=flaky", ""), 503, "provider-unavailable")

	after := scrape(t)
	delta := func(name string, labels ...string) float64 {
		return metricValue(after, name, labels...) - metricValue(before, name, labels...)
	}
	assert.Equal(t, 2.0, delta("requests_total", "provider", "dc", "outcome", "changed"), "10001 and 10002")
	assert.Equal(t, 1.0, delta("requests_total", "provider", "dc", "outcome", "unchanged"), "10001 again")
	assert.Equal(t, 1.0, delta("requests_total", "provider", "dc-other", "outcome", "read"))
	assert.Equal(t, 1.0, delta("requests_total", "provider", "", "outcome", "unknown-provider"))
	assert.Equal(t, 1.0, delta("requests_total", "provider", "", "outcome", "credential-not-found"))
	assert.Equal(t, 1.0, delta("requests_total", "provider", "", "outcome", "method-not-allowed"))
	assert.Equal(t, 3.0, delta("requests_total", "provider", "flaky", "outcome", "provider-error"))
	assert.Equal(t, 1.0, delta("requests_total", "provider", "flaky", "outcome", "provider-unavailable"))

	// Upstream calls: one change per PUT that reached dc, reads of the probe and of flaky.
	assert.Equal(t, 3.0, delta("upstream_duration_seconds", "provider", "dc", "operation", "change"))
	assert.Equal(t, 1.0, delta("upstream_duration_seconds", "provider", "dc-other", "operation", "read"))
	assert.Equal(t, 3.0, delta("upstream_duration_seconds", "provider", "flaky", "operation", "read"), "the fast-fail made no call")

	assert.Equal(t, 5.0, delta("resolutions_total", "result", "hint"), "10002, and 50001 four times")
	assert.Equal(t, 1.0, delta("resolutions_total", "result", "probe"))
	assert.Equal(t, 1.0, delta("resolutions_total", "result", "cached"))
	assert.Equal(t, 1.0, delta("resolutions_total", "result", "no_pattern"))
	assert.Equal(t, 1.0, delta("resolutions_total", "result", "unknown_provider"))
	assert.Equal(t, 1.0, delta("resolutions_total", "result", "pattern"), "10001")
	assert.Equal(t, 1.0, delta("cache_hits_total"), "10001's second PUT")
	assert.Equal(t, 3.0, delta("cache_misses_total"), "10001, 20001, abc")
	assert.GreaterOrEqual(t, metricValue(after, "cache_entries"), 2.0, "10001 and 20001 are cached")

	assert.Equal(t, 2.0, metricValue(after, "breaker_state", "provider", "flaky"), "open")
	assert.Equal(t, 0.0, metricValue(after, "breaker_state", "provider", "dc"), "closed")
	require.Contains(t, after["breaker_state"].String(), `value:"dc-other"`)

	// Labels stay bounded: no series is named after a credential ID.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				for _, id := range []string{"10001", "10002", "20001", "50001", "abc", "nope"} {
					assert.NotEqual(t, id, lp.GetValue(), "%s has the label %s=%s", name, lp.GetName(), id)
				}
			}
		}
	}
}

// TestAuditTrail routes the audit logger to a file of its own, as the README shows, and
// checks that every PUT, changed or refused, wrote exactly one entry with its fields, that a
// GET wrote none, and that no secret is in it.
func TestAuditTrail(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	require.NoError(t, err)
	tester := loadWith(t, fmt.Sprintf(`
	log audit {
		output file %s
		format json
		include http.handlers.credential_status.audit
	}`, auditFile), fmt.Sprintf(`
	basic_auth /credentials/* {
		alice %s
	}
	credential_status {
		%s
	}`, hash, digicertBlock()))
	fresh(dc.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	dc.AddKey(10002, 1, "ci-runner", "inactive")
	auth := basicAuth("alice", "alice-password")

	a := call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive", "reason": "INC-42 leaked in a log"}`,
		"Authorization", auth, "Idempotency-Key", "inc-42-10001", "X-Forwarded-For", "203.0.113.9")
	require.Equal(t, 200, a.status, a.raw)
	requireProblem(t, call(t, tester, "PUT", "/credentials/77777/status", `{"status": "inactive"}`, "Authorization", auth), 404, "credential-not-found")
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "sleeping"}`, "Authorization", auth), 400, "invalid-request") // not audited: malformed
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "revoked"}`, "Authorization", auth), 422, "unsupported-status")
	dc.SetFault(providertest.Fault{Status: 500})
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "active"}`, "Authorization", auth), 502, "provider-error")
	dc.Clear()
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/10001/status", "", "Authorization", auth).status, "a read is not audited")

	entries := readAudit(t, auditFile, 4)
	require.Len(t, entries, 4, "one entry per valid PUT, none for the malformed one or the GET")
	for _, e := range entries {
		assert.Equal(t, "http.handlers.credential_status.audit", e["logger"])
		assert.Equal(t, "info", e["level"])
		assert.Equal(t, "credential status change", e["msg"])
		assert.NotEmpty(t, e["ts"])
		assert.Regexp(t, `^[0-9a-f-]{36}$`, e["request_id"])
		assert.Equal(t, "alice", e["caller"])
		assert.Contains(t, e["remote_addr"], "127.0.0.1:")
		assert.IsType(t, float64(0), e["duration"])
	}

	ok := entries[0]
	assert.Equal(t, "10001", ok["id"])
	assert.Equal(t, "dc", ok["provider"])
	assert.Equal(t, "inactive", ok["requested_status"])
	assert.Equal(t, "inactive", ok["result_status"])
	assert.Equal(t, "changed", ok["outcome"])
	assert.Equal(t, 204.0, ok["upstream_status"], "DigiCert's PUT answers 204")
	assert.Equal(t, "INC-42 leaked in a log", ok["reason"])
	assert.Equal(t, "inc-42-10001", ok["idempotency_key"])

	assert.Equal(t, "77777", entries[1]["id"])
	assert.Equal(t, "credential-not-found", entries[1]["outcome"])
	assert.Equal(t, "", entries[1]["result_status"])

	assert.Equal(t, "unsupported-status", entries[2]["outcome"])
	assert.Equal(t, "revoked", entries[2]["requested_status"])
	assert.Equal(t, "dc", entries[2]["provider"])

	assert.Equal(t, "provider-error", entries[3]["outcome"])
	assert.Equal(t, "dc", entries[3]["provider"])
	assert.Equal(t, 500.0, entries[3]["upstream_status"])
	assert.Equal(t, "active", entries[3]["requested_status"])

	// A batch writes one entry per item, with the batch's request ID and Idempotency-Key;
	// its replay and a dry run write none.
	batch := `{"items": [{"id": "10001", "status": "active"}, {"id": "10002", "status": "inactive"}], "reason": "INC-43"}`
	a = call(t, tester, "POST", "/credentials/status", batch, "Authorization", auth, "Idempotency-Key", "inc-43")
	require.Equal(t, 200, a.status, a.raw)
	a = call(t, tester, "POST", "/credentials/status", batch, "Authorization", auth, "Idempotency-Key", "inc-43")
	require.Equal(t, "true", a.header.Get("Idempotent-Replayed"))
	a = call(t, tester, "POST", "/credentials/status", `{"dry_run": true, "items": [{"id": "10001", "status": "inactive"}]}`, "Authorization", auth)
	require.Equal(t, 200, a.status, a.raw)
	entries = readAudit(t, auditFile, 6)
	require.Len(t, entries, 6)
	items := map[string]map[string]any{}
	for _, e := range entries[4:] {
		items[e["id"].(string)] = e
		assert.Equal(t, "inc-43", e["idempotency_key"])
		assert.Equal(t, "INC-43", e["reason"])
		assert.Equal(t, "alice", e["caller"])
	}
	assert.Equal(t, entries[4]["request_id"], entries[5]["request_id"], "one batch, one request")
	assert.Equal(t, "changed", items["10001"]["outcome"])
	assert.Equal(t, "active", items["10001"]["requested_status"])
	assert.Equal(t, "unchanged", items["10002"]["outcome"])

	raw, err := os.ReadFile(auditFile)
	require.NoError(t, err)
	for _, secret := range []string{"k-parent", "k-sub", "k-other", "not-a-partner-key", "alice-password", auth} {
		assert.NotContains(t, string(raw), secret)
	}
}

// readAudit waits until the audit file holds n entries (the log writer is asynchronous to
// the answer only by a moment) and returns them decoded.
func readAudit(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	var entries []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; {
		entries = entries[:0]
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var e map[string]any
				require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
				entries = append(entries, e)
			}
			f.Close()
		}
		if len(entries) >= n || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(20 * time.Millisecond)
	}
}
