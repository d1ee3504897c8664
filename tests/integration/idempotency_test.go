package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/credgate/credgate/module/provider/providertest"
)

// The Idempotency-Key tests run on DigiCert keys of their own (account 1, 6xxxx), so that
// their state is theirs whatever ran before. A change of a DigiCert key is a read (GET) and,
// when the status differs, a write (PUT): "the simulator saw no request" is dc.Count("") == 0.

// idemBlock is a credential_status block with one DigiCert provider, named name, on the
// parent account; extra adds handler options. Its timeout leaves room for a write the
// simulator holds for a few seconds.
func idemBlock(name, extra string) string {
	return fmt.Sprintf(`
		provider %s digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			timeout 15s
			retries 0
			breaker {
				failures 100
			}
		}
		%s`, name, dc.URL, extra)
}

// idemKey returns a new Idempotency-Key. The memory store outlives reloads (it lives in the
// pool), so a fixed key would meet the answers of earlier tests, or of an earlier -count run.
func idemKey(label string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return label + "-" + hex.EncodeToString(b[:])
}

// idemCreds resets the simulator and makes the DigiCert keys active in account 1.
func idemCreds(ids ...int) {
	fresh(dc.Server)
	for _, id := range ids {
		dc.AddKey(id, 1, "idempotency", "active")
	}
	dc.ResetLog()
}

// keyStatus returns a DigiCert key's status in the simulator.
func keyStatus(t *testing.T, id int) string {
	t.Helper()
	k, ok := dc.Key(id)
	require.True(t, ok, "key %d", id)
	return k.Status
}

// dcPuts counts the writes DigiCert received.
func dcPuts() int { return dc.Count(http.MethodPut) }

// send is call for a goroutine, where a test must not fail: it sends a request to base+path
// and returns the answer or an error. body, when not empty, is sent as JSON; header holds
// pairs of header names and values.
func send(client *http.Client, base, method, path, body string, header ...string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}, nil
}

// requireReplay checks that replay is first sent again: the same status, body and
// Content-Type, marked Idempotent-Replayed, which first was not.
func requireReplay(t *testing.T, first, replay answer) {
	t.Helper()
	require.Empty(t, first.header.Get("Idempotent-Replayed"), "the first answer is no replay")
	require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"), replay.raw)
	require.Equal(t, first.status, replay.status, replay.raw)
	require.Equal(t, first.raw, replay.raw, "the replay is the kept answer, byte for byte")
	require.Equal(t, first.header.Get("Content-Type"), replay.header.Get("Content-Type"))
}

// requireNoReplay checks that a ran rather than being replayed.
func requireNoReplay(t *testing.T, a answer) {
	t.Helper()
	require.Empty(t, a.header.Get("Idempotent-Replayed"), "this request ran: %s", a.raw)
}

// awaitPut waits until DigiCert has received the write of key id: the request that sent it
// then holds its Idempotency-Key's reservation, and the simulator holds its answer. It waits,
// it does not time anything: the deadline only ends a test that would otherwise hang.
func awaitPut(t *testing.T, id int) {
	t.Helper()
	path := fmt.Sprintf("/api-key/%d/status", id)
	require.Eventually(t, func() bool {
		for _, r := range dc.Requests() {
			if r.Method == http.MethodPut && strings.HasSuffix(r.Path, path) {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "the first request's write never reached DigiCert")
}

// holdPut makes DigiCert hold its next write for a few seconds before doing it, so that the
// request that sent it is still running while the test sends others with its key.
func holdPut() {
	dc.SetFault(providertest.Fault{Hang: 3 * time.Second, Method: http.MethodPut, Times: 1})
}

// inBackground sends a request from a goroutine; the answer comes on the channel.
func inBackground(client *http.Client, base, method, path, body string, header ...string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		a, err := send(client, base, method, path, body, header...)
		ch <- result{a, err}
	}()
	return ch
}

type result struct {
	a   answer
	err error
}

// TestIdempotencyPutReplay changes a key with an Idempotency-Key, then sends the same request
// again: the kept answer comes back, marked Idempotent-Replayed, and DigiCert hears nothing.
func TestIdempotencyPutReplay(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61001)
	key := idemKey("replay")
	path, body := "/credentials/61001/status", `{"status": "inactive", "reason": "INC-7"}`

	first := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	require.Equal(t, 200, first.status, first.raw)
	assert.Equal(t, true, first.body["changed"])
	assert.Equal(t, 1, dcPuts(), "the first request ran")
	assert.Equal(t, "inactive", keyStatus(t, 61001))

	// Were the replay to run, it would write again: the key is active once more.
	idemCreds(61001)
	replay := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	requireReplay(t, first, replay)
	assert.Zero(t, dc.Count(""), "a replay calls no provider")
	assert.Equal(t, "active", keyStatus(t, 61001), "the replay changed nothing")

	// Without the key the same request runs, as any PUT.
	a := call(t, tester, "PUT", path, body)
	require.Equal(t, 200, a.status, a.raw)
	requireNoReplay(t, a)
	assert.Equal(t, 1, dcPuts())
}

// TestIdempotencyKeyReused sends another request with a key already used: 422, and nothing
// reaches DigiCert; the key's kept answer is untouched.
func TestIdempotencyKeyReused(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61011, 61012)
	key := idemKey("reused")
	first := call(t, tester, "PUT", "/credentials/61011/status", `{"status": "inactive"}`, "Idempotency-Key", key)
	require.Equal(t, 200, first.status, first.raw)

	dc.ResetLog()
	for _, req := range []struct{ name, path, body string }{
		{"another body", "/credentials/61011/status", `{"status": "active"}`},
		{"the same body re-encoded", "/credentials/61011/status", `{"status":"inactive"}`},
		{"another credential", "/credentials/61012/status", `{"status": "inactive"}`},
	} {
		a := call(t, tester, "PUT", req.path, req.body, "Idempotency-Key", key)
		requireProblem(t, a, 422, "idempotency-key-reused")
		assert.Empty(t, a.header.Get("Idempotent-Replayed"), req.name)
	}
	assert.Zero(t, dc.Count(""), "a reused key calls no provider")
	assert.Equal(t, "active", keyStatus(t, 61012))

	replay := call(t, tester, "PUT", "/credentials/61011/status", `{"status": "inactive"}`, "Idempotency-Key", key)
	requireReplay(t, first, replay)
}

// TestIdempotencyInFlight sends the same request while the first still runs (DigiCert holds
// its write): 409 with Retry-After, and no second call. Once the first is done, its answer is
// replayed.
func TestIdempotencyInFlight(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61021)
	key := idemKey("inflight")
	path, body := "/credentials/61021/status", `{"status": "inactive"}`

	holdPut()
	firstCh := inBackground(tester.Client, gatewayURL, "PUT", path, body, "Idempotency-Key", key)
	awaitPut(t, 61021)

	a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	requireProblem(t, a, 409, "idempotency-key-in-use")
	assert.Equal(t, "1", a.header.Get("Retry-After"))
	assert.Empty(t, a.header.Get("Idempotent-Replayed"))
	a = call(t, tester, "PUT", path, `{"status": "active"}`, "Idempotency-Key", key)
	requireProblem(t, a, 422, "idempotency-key-reused")

	r := <-firstCh
	require.NoError(t, r.err)
	require.Equal(t, 200, r.a.status, r.a.raw)
	assert.Contains(t, r.a.raw, `"changed":true`)
	assert.Equal(t, 1, dc.Count(http.MethodGet), "the refused requests called nothing: one read, the first's")
	assert.Equal(t, 1, dcPuts())

	dc.ResetLog()
	requireReplay(t, r.a, call(t, tester, "PUT", path, body, "Idempotency-Key", key))
	assert.Zero(t, dc.Count(""))
}

// TestIdempotencyTransientNotKept has the first request with a key fail for a reason that
// may pass (DigiCert's 500 or 503, its 429, the provider's breaker held open): that answer is
// not kept, and the retry with the same key runs again, and is kept.
func TestIdempotencyTransientNotKept(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	for _, tc := range []struct {
		name    string
		fail    func(t *testing.T) // makes the next write fail
		heal    func(t *testing.T)
		status  int
		problem string
		puts    int // the writes DigiCert received for the failed request
	}{
		{name: "500", status: 502, problem: "provider-error", puts: 1,
			fail: func(*testing.T) { dc.SetFault(providertest.Fault{Status: 500, Method: http.MethodPut, Times: 1}) }},
		{name: "503", status: 502, problem: "provider-error", puts: 1,
			fail: func(*testing.T) { dc.SetFault(providertest.Fault{Status: 503, Method: http.MethodPut, Times: 1}) }},
		{name: "429", status: 429, problem: "provider-rate-limited", puts: 1,
			// Past the provider's timeout: passed on, not waited for.
			fail: func(*testing.T) {
				dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "30", Method: http.MethodPut, Times: 1})
			}},
		{name: "breaker open", status: 503, problem: "provider-unavailable", puts: 0,
			fail: func(t *testing.T) { setBreaker(t, "idem", "open") },
			heal: func(t *testing.T) {
				a := adminCall(t, "DELETE", "/credential-status/providers/idem/breaker", "")
				require.Equal(t, 200, a.status, a.raw)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idemCreds(61031)
			key := idemKey("transient")
			path, body := "/credentials/61031/status", `{"status": "inactive"}`
			tc.fail(t)
			a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
			if tc.heal != nil {
				tc.heal(t)
			}
			requireProblem(t, a, tc.status, tc.problem)
			assert.Equal(t, tc.puts, dcPuts())
			assert.Equal(t, "active", keyStatus(t, 61031))

			retry := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
			require.Equal(t, 200, retry.status, retry.raw)
			requireNoReplay(t, retry)
			assert.Contains(t, retry.raw, `"changed":true`)
			assert.Equal(t, tc.puts+1, dcPuts(), "the retry ran")
			assert.Equal(t, "inactive", keyStatus(t, 61031))

			dc.ResetLog()
			requireReplay(t, retry, call(t, tester, "PUT", path, body, "Idempotency-Key", key))
			assert.Zero(t, dc.Count(""), "the final answer is kept")
		})
	}
}

// TestIdempotencyKeyPerCaller has two basic_auth users send the same request with the same
// key: each runs, and each replays only their own answer.
func TestIdempotencyKeyPerCaller(t *testing.T) {
	var hashes [2][]byte
	for i, pw := range []string{"alice-password", "bob-password"} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		require.NoError(t, err)
		hashes[i] = h
	}
	tester := loadSite(t, fmt.Sprintf(`
	basic_auth /credentials/* {
		alice %s
		bob %s
	}
	credential_status {
		%s
	}`, hashes[0], hashes[1], idemBlock("idem", "")))
	idemCreds(61041)
	alice, bob := basicAuth("alice", "alice-password"), basicAuth("bob", "bob-password")
	key := idemKey("caller")
	path, body := "/credentials/61041/status", `{"status": "inactive"}`

	a1 := call(t, tester, "PUT", path, body, "Authorization", alice, "Idempotency-Key", key)
	require.Equal(t, 200, a1.status, a1.raw)
	assert.Equal(t, 1, dcPuts())

	idemCreds(61041) // active again: bob's request, if it runs, writes
	b1 := call(t, tester, "PUT", path, body, "Authorization", bob, "Idempotency-Key", key)
	require.Equal(t, 200, b1.status, b1.raw)
	requireNoReplay(t, b1)
	assert.Equal(t, 1, dcPuts(), "bob's request ran: alice's key is not his")
	assert.Equal(t, "inactive", keyStatus(t, 61041))

	dc.ResetLog()
	requireReplay(t, a1, call(t, tester, "PUT", path, body, "Authorization", alice, "Idempotency-Key", key))
	requireReplay(t, b1, call(t, tester, "PUT", path, body, "Authorization", bob, "Idempotency-Key", key))
	assert.Zero(t, dc.Count(""))
}

// TestIdempotencyMalformedKey refuses keys that are not 1 to 64 printable ASCII characters
// with 400, before any call; a key of 64 runs.
func TestIdempotencyMalformedKey(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61051)
	path, body := "/credentials/61051/status", `{"status": "inactive"}`
	for name, key := range map[string]string{
		"65 characters": strings.Repeat("k", 65),
		"a tab":         "inc\t42",
		"not ASCII":     "schlüssel-42",
	} {
		a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
		requireProblem(t, a, 400, "invalid-request")
		assert.Contains(t, a.body["detail"], "Idempotency-Key", name)
		b, _ := postBatch(t, tester, `{"items": [{"id": "61051", "status": "inactive"}]}`, "Idempotency-Key", key)
		requireProblem(t, b, 400, "invalid-request")
	}
	assert.Zero(t, dc.Count(""), "a malformed key calls no provider")
	assert.Equal(t, "active", keyStatus(t, 61051))

	key := idemKey("max")
	key += strings.Repeat("x", 64-len(key))
	a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", keyStatus(t, 61051))
}

// TestIdempotencyDryRunIsAnotherRequest previews a change with a key, then sends the real
// change with the same key and body: dry_run is part of the request, so the key was reused
// (422), and the preview's answer is not passed off as the change's.
func TestIdempotencyDryRunIsAnotherRequest(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61061)
	key := idemKey("dryrun")
	path, body := "/credentials/61061/status", `{"status": "inactive"}`

	preview := call(t, tester, "PUT", path+"?dry_run=true", body, "Idempotency-Key", key)
	require.Equal(t, 200, preview.status, preview.raw)
	assert.Equal(t, true, preview.body["would_change"])
	assert.Zero(t, dcPuts(), "a dry run writes nothing")

	dc.ResetLog()
	a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	requireProblem(t, a, 422, "idempotency-key-reused")
	assert.Zero(t, dc.Count(""))
	assert.Equal(t, "active", keyStatus(t, 61061))

	requireReplay(t, preview, call(t, tester, "PUT", path+"?dry_run=true", body, "Idempotency-Key", key))
	assert.Zero(t, dc.Count(""), "the preview's own replay")

	a = call(t, tester, "PUT", path, body, "Idempotency-Key", idemKey("dryrun-real"))
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", keyStatus(t, 61061))
}

// TestIdempotencyBatchReplay sends a batch with a key twice: the second gets the first's
// answer, marked, with no call; another batch with the key is refused.
func TestIdempotencyBatchReplay(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61071, 61072)
	key := idemKey("batch")
	body := `{"items": [{"id": "61071", "status": "inactive"}, {"id": "61072", "status": "inactive"}], "reason": "INC-9"}`

	first, b := postBatch(t, tester, body, "Idempotency-Key", key)
	require.Equal(t, 200, first.status, first.raw)
	assert.Equal(t, 2, b.Summary["changed"])
	assert.Equal(t, 2, dcPuts())

	idemCreds(61071, 61072)
	replay, b2 := postBatch(t, tester, body, "Idempotency-Key", key)
	requireReplay(t, first, replay)
	assert.Equal(t, b, b2)
	assert.Zero(t, dc.Count(""), "a replayed batch calls no provider")
	assert.Equal(t, "active", keyStatus(t, 61071))

	a, _ := postBatch(t, tester, `{"items": [{"id": "61071", "status": "inactive"}]}`, "Idempotency-Key", key)
	requireProblem(t, a, 422, "idempotency-key-reused")
	a, _ = postBatch(t, tester, `{"dry_run": true, "items": [{"id": "61071", "status": "inactive"}, {"id": "61072", "status": "inactive"}], "reason": "INC-9"}`, "Idempotency-Key", key)
	requireProblem(t, a, 422, "idempotency-key-reused")
	assert.Zero(t, dc.Count(""))
}

// TestIdempotencyBatchNDJSONReplay streams a batch with a key, then asks again: the streamed
// answer is kept whole and replayed, lines in the order they first came.
func TestIdempotencyBatchNDJSONReplay(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61081, 61082)
	key := idemKey("ndjson")
	body := `{"items": [{"id": "61081", "status": "inactive"}, {"id": "61082", "status": "inactive"}, {"id": "61083", "status": "nope"}]}`
	hdr := []string{"Idempotency-Key", key, "Accept", "application/x-ndjson"}

	first := call(t, tester, "POST", "/credentials/status", body, hdr...)
	require.Equal(t, 200, first.status, first.raw)
	require.Equal(t, "application/x-ndjson", first.header.Get("Content-Type"))
	lines := strings.Split(strings.TrimSuffix(first.raw, "\n"), "\n")
	require.Len(t, lines, 4, first.raw)
	assert.Contains(t, lines[3], `"summary":{"changed":2,`)
	assert.Equal(t, 2, dcPuts())

	idemCreds(61081, 61082)
	replay := call(t, tester, "POST", "/credentials/status", body, hdr...)
	requireReplay(t, first, replay)
	assert.Zero(t, dc.Count(""), "a replayed stream calls no provider")
	assert.Equal(t, "active", keyStatus(t, 61081))

	// The JSON answer is another request: the stream is not replayed to a client that
	// does not accept it.
	a := call(t, tester, "POST", "/credentials/status", body, "Idempotency-Key", key)
	requireProblem(t, a, 422, "idempotency-key-reused")
	assert.Zero(t, dc.Count(""))
}

// TestIdempotencyBatchTransientItemNotKept has one item of a batch fail for a while (its
// provider answers 503): the batch's answer is not kept, and its retry with the same key runs
// again and changes the item.
func TestIdempotencyBatchTransientItemNotKept(t *testing.T) {
	tester := load(t, idemBlock("idem", ""))
	idemCreds(61084, 61085)
	key := idemKey("batch-transient")
	body := `{"items": [{"id": "61084", "status": "inactive"}, {"id": "61085", "status": "inactive"}]}`
	dc.SetFault(providertest.Fault{Status: 503, Path: "/61085", Times: 1})
	a := call(t, tester, "POST", "/credentials/status", body, "Idempotency-Key", key)
	require.Equal(t, 200, a.status, a.raw)
	assert.Contains(t, a.raw, `"failed":1`)

	b := call(t, tester, "POST", "/credentials/status", body, "Idempotency-Key", key)
	require.Equal(t, 200, b.status, b.raw)
	requireNoReplay(t, b)
	assert.Contains(t, b.raw, `"failed":0`)
	assert.Equal(t, "inactive", keyStatus(t, 61085), "the retry changed the item that had failed")
	requireReplay(t, b, call(t, tester, "POST", "/credentials/status", body, "Idempotency-Key", key))
}

// TestIdempotencyAuditReplayed checks the audit trail: the first PUT's entry says changed,
// the replay's says replayed.
func TestIdempotencyAuditReplayed(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	tester := loadWith(t, fmt.Sprintf(`
	log audit {
		output file %s
		format json
		include http.handlers.credential_status.audit
	}`, auditFile), "credential_status {\n"+idemBlock("idem", "")+"\n}")
	idemCreds(61091)
	key := idemKey("audit")
	path, body := "/credentials/61091/status", `{"status": "inactive", "reason": "INC-11"}`
	first := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
	require.Equal(t, 200, first.status, first.raw)
	requireReplay(t, first, call(t, tester, "PUT", path, body, "Idempotency-Key", key))

	entries := readAudit(t, auditFile, 2)
	require.Len(t, entries, 2, "one entry per PUT, the replay's too")
	assert.Equal(t, "changed", entries[0]["outcome"])
	assert.Equal(t, key, entries[0]["idempotency_key"])
	assert.Equal(t, "61091", entries[1]["id"])
	assert.Equal(t, "replayed", entries[1]["outcome"])
	assert.Equal(t, 0.0, entries[1]["upstream_status"], "a replay calls no provider")
	assert.Equal(t, key, entries[1]["idempotency_key"], "the replay's entry names its key")
	assert.Equal(t, "inactive", entries[1]["requested_status"])
	assert.Equal(t, "INC-11", entries[1]["reason"])

	// A refused reuse of the key is audited with what it asked, too.
	requireProblem(t, call(t, tester, "PUT", path, `{"status": "active"}`, "Idempotency-Key", key), 422, "idempotency-key-reused")
	entries = readAudit(t, auditFile, 3)
	require.Len(t, entries, 3)
	assert.Equal(t, "idempotency-key-reused", entries[2]["outcome"])
	assert.Equal(t, key, entries[2]["idempotency_key"])
	assert.Equal(t, "active", entries[2]["requested_status"])
}

// loadTwo (re)configures the in-process Caddy with two servers, gatewayURL and secondURL,
// each with a credential_status handler of its own (blockA, blockB), and more global
// options. loadWith serves one site only.
func loadTwo(t *testing.T, globals, blockA, blockB string) *caddytest.Tester {
	t.Helper()
	return loadConfig(t, globals, fmt.Sprintf(`%s {
	credential_status {
%s
	}
}
%s {
	credential_status {
%s
	}
}`, gatewayURL, blockA, secondURL, blockB))
}

// TestIdempotencyTwoInstances runs two gateway instances on one shared storage, as behind a
// load balancer, and checks that they honour each other's keys.
//
// Why this is a faithful two-instance test although it runs in one process: caddytest runs
// one Caddy, so the two instances are two servers of one config (localhost:9080 and :9081),
// each with its own credential_status handler. Each handler is provisioned separately and
// makes its own caddy store (its own object, local locks and sweeper; the caddy store is not
// kept in the pool), and each names its provider differently (inst-a, inst-b), so they share
// no cache and no breaker either. What they share is Caddy's storage, a file_system storage
// in a temporary folder: every record and every lock goes through files, and the handlers
// hold no storage state in memory. A replay on B of A's answer therefore came through the
// storage, and its body names A's provider, which B does not have. The memory variant shows
// that the test can tell: the same two servers without a shared storage do not share keys.
//
// What it does not cover: two processes (a crash of one, which only the lease covers; clock
// skew between hosts, which the records' expiry depends on), and cluster storages other than
// the file system (their locks and consistency are their own).
func TestIdempotencyTwoInstances(t *testing.T) {
	path, body := "/credentials/61101/status", `{"status": "inactive"}`
	// The storage's folder outlives the subtest that uses it: it is removed once the next
	// config, which does not use it, has replaced that subtest's.
	dir := t.TempDir()

	t.Run("shared caddy storage", func(t *testing.T) {
		// Two instances of one config: the same providers, so the same key scope.
		tester := loadTwo(t, "\tstorage file_system "+dir,
			idemBlock("inst", "idempotency_storage caddy"),
			idemBlock("inst", "idempotency_storage caddy"))
		idemCreds(61101)
		key := idemKey("two")

		first := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
		require.Equal(t, 200, first.status, first.raw)
		assert.Equal(t, 1, dcPuts())
		assert.Equal(t, 1, countRecords(t, dir), "the answer is kept in the storage")

		idemCreds(61101) // active again: a B that ran would write
		replay := callURL(t, tester.Client, "PUT", secondURL+path, body, "Idempotency-Key", key)
		requireReplay(t, first, replay)
		assert.Zero(t, dc.Count(""), "B called no provider: A's answer came from the storage")

		a := callURL(t, tester.Client, "PUT", secondURL+path, `{"status": "active"}`, "Idempotency-Key", key)
		requireProblem(t, a, 422, "idempotency-key-reused")
		assert.Zero(t, dc.Count(""))

		// In flight on A: B refuses the key until A is done, then replays A's answer.
		key = idemKey("two-inflight")
		holdPut()
		firstCh := inBackground(tester.Client, gatewayURL, "PUT", path, body, "Idempotency-Key", key)
		awaitPut(t, 61101)
		a = callURL(t, tester.Client, "PUT", secondURL+path, body, "Idempotency-Key", key)
		requireProblem(t, a, 409, "idempotency-key-in-use")
		assert.Equal(t, "1", a.header.Get("Retry-After"))
		r := <-firstCh
		require.NoError(t, r.err)
		require.Equal(t, 200, r.a.status, r.a.raw)
		assert.Equal(t, 1, dcPuts(), "B's refused request called nothing")

		dc.ResetLog()
		requireReplay(t, r.a, callURL(t, tester.Client, "PUT", secondURL+path, body, "Idempotency-Key", key))
		assert.Zero(t, dc.Count(""))
	})

	t.Run("other providers, not shared", func(t *testing.T) {
		// Two handlers with other providers never share a key, though in one process their
		// memory stores are one (the pool's, which keeps the keys across a reload): keys are
		// scoped by the handler's providers. Before that scope, B replayed A's answer here,
		// A's provider and metadata included.
		tester := loadTwo(t, "", idemBlock("inst-a", ""), idemBlock("inst-b", ""))
		idemCreds(61101)
		key := idemKey("two-memory")

		a := call(t, tester, "PUT", path, body, "Idempotency-Key", key)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, 1, dcPuts())

		idemCreds(61101)
		b := callURL(t, tester.Client, "PUT", secondURL+path, body, "Idempotency-Key", key)
		require.Equal(t, 200, b.status, b.raw)
		requireNoReplay(t, b)
		assert.Equal(t, "inst-b", b.body["provider"])
		assert.Equal(t, 1, dcPuts(), "B ran: A's key is in A's memory only")

		// Each still replays its own.
		dc.ResetLog()
		requireReplay(t, a, call(t, tester, "PUT", path, body, "Idempotency-Key", key))
		requireReplay(t, b, callURL(t, tester.Client, "PUT", secondURL+path, body, "Idempotency-Key", key))
		assert.Zero(t, dc.Count(""))
	})
}

// countRecords counts the idempotency records in a file_system storage's folder.
func countRecords(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(root, "credgate", "idempotency"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	require.NoError(t, err)
	return n
}
