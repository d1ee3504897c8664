package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// allVendors loads a config with every adapter, and seeds one credential at each vendor.
func allVendors(t *testing.T, extra string) *caddytest.Tester {
	t.Helper()
	tester := load(t, palisadeBlock()+zstackBlock()+prefactorBlock()+digicertBlock()+extra)
	fresh(pal.Server, zs.Server, pf.Server, dc.Server, dcFlaky.Server)
	pal.AddCredential("org-eu", palEU, "Treasury", "WALLETS", "ENABLED", true, false)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})
	pf.AddAPIToken(pfActive, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	dc.AddKey(10001, 1, "build-server", "active")
	dc.AddKey(10002, 1, "ci-runner", "inactive")
	return tester
}

// changes counts the requests a simulator received that could change a credential: every
// method but GET and HEAD, Palisade's OAuth token requests left out.
func changes(s *providertest.Server) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasSuffix(r.Path, "/oauth/token") {
			n++
		}
	}
	return n
}

// writes counts the changing requests every simulator received.
func writes() int {
	return changes(pal.Server) + changes(zs.Server) + changes(pf.Server) + changes(dc.Server) + changes(dcFlaky.Server)
}

// batchAnswer is the non-streamed answer of a batch.
type batchAnswer struct {
	Results []map[string]any `json:"results"`
	Summary map[string]int   `json:"summary"`
}

func postBatch(t *testing.T, tester *caddytest.Tester, body string, header ...string) (answer, batchAnswer) {
	t.Helper()
	a := call(t, tester, "POST", "/credentials/status", body, header...)
	var b batchAnswer
	if a.status == 200 {
		require.NoError(t, json.Unmarshal([]byte(a.raw), &b), a.raw)
	}
	return a, b
}

// itemProblem returns the problem type suffix of a batch result, or "" when it succeeded.
func itemProblem(r map[string]any) string {
	e, ok := r["error"].(map[string]any)
	if !ok {
		return ""
	}
	return strings.TrimPrefix(e["type"].(string), "urn:credgate:problem:")
}

// TestBatchAcrossVendors changes credentials at the four vendors in one call, with the errors
// a single PUT would give for the items that cannot be done, and one repeated item.
func TestBatchAcrossVendors(t *testing.T) {
	tester := allVendors(t, "")
	a, b := postBatch(t, tester, `{"items": [
		{"id": "`+palEU+`", "status": "inactive"},
		{"id": "`+zsCred+`", "status": "inactive"},
		{"id": "`+pfActive+`", "status": "inactive", "provider": "tokens"},
		{"id": "10001", "status": "inactive"},
		{"id": "10001", "status": "inactive"},
		{"id": "10002", "status": "inactive", "reason": "already off"},
		{"id": "77777", "status": "inactive"},
		{"id": "10001", "status": "sleeping"},
		{"id": "10001", "status": "inactive", "provider": "nope"},
		{"id": "30001", "status": "revoked", "provider": "dc"}
	], "reason": "INC-42"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "application/json", a.header.Get("Content-Type"))
	require.Len(t, b.Results, 10)

	for i, want := range []struct{ id, provider string }{
		{palEU, "custody-eu"}, {zsCred, "vault"}, {pfActive, "tokens"}, {"10001", "dc"}, {"10001", "dc"},
	} {
		r := b.Results[i]
		assert.Equal(t, want.id, r["id"], i)
		assert.Equal(t, want.provider, r["provider"], i)
		assert.Equal(t, "inactive", r["status"], i)
		assert.Equal(t, true, r["changed"], "item %d: %v", i, r)
	}
	assert.Equal(t, false, b.Results[5]["changed"], "10002 was inactive already")
	assert.Equal(t, "credential-not-found", itemProblem(b.Results[6]))
	assert.Equal(t, "77777", b.Results[6]["id"])
	assert.Equal(t, "invalid-request", itemProblem(b.Results[7]))
	assert.Equal(t, "unknown-provider", itemProblem(b.Results[8]))
	assert.Equal(t, "unsupported-status", itemProblem(b.Results[9]))
	e := b.Results[9]["error"].(map[string]any)
	assert.Equal(t, 422.0, e["status"], "an item's error is the single PUT's problem")
	assert.Equal(t, "dc", e["provider"])

	// Repeated items are changed once, and counted once.
	assert.Equal(t, map[string]int{"changed": 4, "unchanged": 1, "pending": 0, "failed": 4}, b.Summary)
	dcPuts := 0
	for _, r := range dc.Requests() {
		if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/10001/status") {
			dcPuts++
		}
	}
	assert.Equal(t, 1, dcPuts, "10001 is written once")
	assert.Equal(t, 1, changes(pal.Server))
	assert.Equal(t, 1, changes(zs.Server))
	assert.Equal(t, 1, changes(pf.Server))
	c, _ := dc.Key(10001)
	assert.Equal(t, "inactive", c.Status)
}

// TestBatchConflictingDuplicates refuses an ID listed twice with different statuses, both
// times, and changes nothing for it.
func TestBatchConflictingDuplicates(t *testing.T) {
	tester := allVendors(t, "")
	a, b := postBatch(t, tester, `{"items": [
		{"id": "10001", "status": "inactive"},
		{"id": "10002", "status": "active"},
		{"id": "10001", "status": "active"}
	]}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "invalid-request", itemProblem(b.Results[0]))
	assert.Equal(t, "invalid-request", itemProblem(b.Results[2]))
	assert.Equal(t, true, b.Results[1]["changed"])
	assert.Equal(t, 1, dc.Writes(), "only 10002")
	assert.Equal(t, map[string]int{"changed": 1, "unchanged": 0, "pending": 0, "failed": 1}, b.Summary)
}

// TestBatchStreamsNDJSON asks for application/x-ndjson and reads a line per item, each with
// its index, as they complete, then the summary.
func TestBatchStreamsNDJSON(t *testing.T) {
	tester := allVendors(t, "")
	// The DigiCert item takes 300 ms: the other lines come before it.
	dc.SetFault(providertest.Fault{Hang: 300 * time.Millisecond})
	req, err := http.NewRequest("POST", gatewayURL+"/credentials/status", strings.NewReader(`{"items": [
		{"id": "10001", "status": "inactive"},
		{"id": "`+zsCred+`", "status": "inactive"},
		{"id": "77777", "status": "bogus"}
	]}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := tester.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))

	var lines []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		lines = append(lines, m)
	}
	require.Len(t, lines, 4)
	seen := map[float64]bool{}
	for _, l := range lines[:3] {
		seen[l["index"].(float64)] = true
	}
	assert.Equal(t, map[float64]bool{0: true, 1: true, 2: true}, seen)
	assert.Equal(t, 0.0, lines[2]["index"], "the slow item's line comes last")
	assert.Equal(t, "10001", lines[2]["id"])
	assert.Equal(t, true, lines[2]["changed"])
	summary := lines[3]["summary"].(map[string]any)
	assert.Equal(t, 2.0, summary["changed"])
	assert.Equal(t, 1.0, summary["failed"])
}

// TestDryRun previews a batch and a single PUT: it reads every credential and writes none.
func TestDryRun(t *testing.T) {
	tester := allVendors(t, "")
	a, b := postBatch(t, tester, `{"dry_run": true, "items": [
		{"id": "`+palEU+`", "status": "inactive"},
		{"id": "`+zsCred+`", "status": "inactive"},
		{"id": "`+pfActive+`", "status": "inactive"},
		{"id": "10001", "status": "inactive"},
		{"id": "10002", "status": "inactive"},
		{"id": "30001", "status": "revoked", "provider": "dc"}
	]}`)
	require.Equal(t, 200, a.status, a.raw)
	for i := 0; i < 4; i++ {
		r := b.Results[i]
		assert.Equal(t, true, r["dry_run"], i)
		assert.Equal(t, "active", r["current"], i)
		assert.Equal(t, "inactive", r["requested_status"], i)
		assert.Equal(t, true, r["would_change"], i)
		assert.Nil(t, r["changed"], i)
	}
	assert.Equal(t, false, b.Results[4]["would_change"])
	assert.Equal(t, "unsupported-status", itemProblem(b.Results[5]), "a dry run refuses what the change would")
	assert.Equal(t, map[string]int{"would_change": 4, "unchanged": 1, "failed": 1}, b.Summary)

	a = call(t, tester, "PUT", "/credentials/10001/status?dry_run=true", `{"status": "inactive"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, true, a.body["would_change"])
	assert.Equal(t, "active", a.body["current"])
	requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status?dry_run=maybe", `{"status": "inactive"}`), 400, "invalid-request")

	// A revoked token cannot come back: the dry run says so as the change would.
	const pfRevoked = "013xrzp12g3nqk8n7f8f9jbg8d18q7tr"
	pf.AddAPIToken(pfRevoked, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "revoked")
	requireProblem(t, call(t, tester, "PUT", "/credentials/"+pfRevoked+"/status?dry_run=true", `{"status": "active"}`), 409, "transition-not-allowed")
	requireProblem(t, call(t, tester, "PUT", "/credentials/"+pfRevoked+"/status", `{"status": "active"}`), 409, "transition-not-allowed")

	assert.Zero(t, writes(), "a dry run writes nothing at any vendor (and the adapter refused the real change to the revoked token before any write)")
	assert.NotZero(t, dc.Count(http.MethodGet), "it read")
	c, _ := dc.Key(10001)
	assert.Equal(t, "active", c.Status)
}

// TestBatchMaxConcurrent holds every DigiCert call 40 ms and checks that a batch of 24 items
// never has more calls in flight at the provider than its max_concurrent.
func TestBatchMaxConcurrent(t *testing.T) {
	for _, tc := range []struct {
		option string
		limit  int
	}{{"max_concurrent 2", 2}, {"", 8}} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			tester := load(t, fmt.Sprintf(`
		provider bulk digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			retries 0
			%s
		}`, dc.URL, tc.option))
			fresh(dc.Server)
			var items []string
			for i := 0; i < 24; i++ {
				id := 41000 + i
				dc.AddKey(id, 1, "bulk", "active")
				items = append(items, fmt.Sprintf(`{"id": "%d", "status": "inactive"}`, id))
			}
			dc.ResetLog()
			dc.SetFault(providertest.Fault{Hang: 40 * time.Millisecond})
			a, b := postBatch(t, tester, `{"items": [`+strings.Join(items, ",")+`]}`)
			require.Equal(t, 200, a.status, a.raw)
			assert.Equal(t, 24, b.Summary["changed"])
			assert.LessOrEqual(t, dc.MaxInFlight(), tc.limit)
			assert.Greater(t, dc.MaxInFlight(), 1, "the batch runs items at once")
		})
	}
}

// TestBatchRespectsRateLimit has DigiCert answer 429 with Retry-After: 1 three times: the batch
// waits as asked, sends nothing meanwhile, and every item ends changed, with the breaker
// (failures 3) still closed.
func TestBatchRespectsRateLimit(t *testing.T) {
	tester := load(t, fmt.Sprintf(`
		provider bulk digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			retries 0
			breaker {
				failures 3
			}
		}`, dc.URL))
	fresh(dc.Server)
	var items []string
	for i := 0; i < 5; i++ {
		dc.AddKey(42000+i, 1, "bulk", "active")
		items = append(items, fmt.Sprintf(`{"id": "%d", "status": "inactive"}`, 42000+i))
	}
	dc.ResetLog()
	dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "1", Times: 3})
	a, b := postBatch(t, tester, `{"items": [`+strings.Join(items, ",")+`]}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, map[string]int{"changed": 5, "unchanged": 0, "pending": 0, "failed": 0}, b.Summary)
	assert.Equal(t, 5*2+3, dc.Count(""), "a read and a write per item, and the three requests that were refused")
	a = call(t, tester, "GET", "/credentials/42000/status", "")
	assert.Equal(t, 200, a.status, "the breaker did not open: %s", a.raw)
}

// TestBatchRefusals checks the batch's own limits: nothing reaches a provider.
func TestBatchRefusals(t *testing.T) {
	tester := load(t, digicertBlock()+"\nmax_batch 3")
	fresh(dc.Server)
	items4 := `{"items": [{"id": "10001", "status": "inactive"}, {"id": "10002", "status": "inactive"}, {"id": "10003", "status": "inactive"}, {"id": "10004", "status": "inactive"}]}`
	a, _ := postBatch(t, tester, items4)
	requireProblem(t, a, 413, "body-too-large")
	for _, body := range []string{
		`{"items": []}`, `{}`, `[]`, `{"items": [{"id": "1", "status": "inactive"}], "extra": 1}`,
		`{"items": [{"id": "1", "status": "inactive"}], "dry_run": "yes"}`,
		`{"items": [{"id": "1", "status": "inactive"}], "items": []}`,
		`{"items": [{"id": "1", "status": "inactive"}]} trailing`, `{"items": [`,
	} {
		a, _ := postBatch(t, tester, body)
		requireProblem(t, a, 400, "invalid-request")
	}
	a = call(t, tester, "GET", "/credentials/status", "")
	requireProblem(t, a, 405, "method-not-allowed")
	assert.Equal(t, "POST", a.header.Get("Allow"))
	a = call(t, tester, "POST", "/credentials/status", "items=1", "Content-Type", "application/x-www-form-urlencoded")
	requireProblem(t, a, 415, "unsupported-media-type")
	assert.Zero(t, dc.Count(""), "no refused batch reached the provider")
}

// TestBatchEveryVendor changes the fixture's credential of every vendor of tests/vendors in
// one batch, beside an ID of each vendor's format that nobody holds, and checks each item's
// result and each simulator's state.
func TestBatchEveryVendor(t *testing.T) {
	tester := load(t, fixtureBlocks("batch", ""))
	var items []string
	fixtures := providertest.Fixtures()
	for _, f := range fixtures {
		fresh(sims[f.Name].Server)
		sims[f.Name].Add(f.ID)
		items = append(items, `{"id": "`+f.ID+`", "status": "inactive"}`, `{"id": "`+f.UnknownID+`", "status": "inactive"}`)
	}
	a, b := postBatch(t, tester, `{"items": [`+strings.Join(items, ",")+`], "reason": "every vendor"}`)
	require.Equal(t, 200, a.status, a.raw)
	require.Len(t, b.Results, 2*len(fixtures), a.raw)
	for i, f := range fixtures {
		r := b.Results[2*i]
		assert.Equal(t, f.ID, r["id"], f.Name)
		assert.Equal(t, "batch-"+f.Name, r["provider"], f.Name)
		assert.Equal(t, "inactive", r["status"], "%s: %v", f.Name, r)
		assert.Equal(t, true, r["changed"], "%s: %v", f.Name, r)
		assert.False(t, sims[f.Name].Active(f.ID), "%s holds %s inactive", f.Name, f.ID)
		assert.Equal(t, 1, sims[f.Name].Count(f.WriteMethod), "%s: one write", f.Name)
		assert.Equal(t, "credential-not-found", itemProblem(b.Results[2*i+1]), "%s: %v", f.Name, b.Results[2*i+1])
		sims[f.Name].Add(f.ID)
	}
	assert.Equal(t, map[string]int{"changed": len(fixtures), "unchanged": 0, "pending": 0, "failed": len(fixtures)}, b.Summary)
}
