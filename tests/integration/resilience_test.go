package integration

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// TestReloadUnderLoadFailsNoRequest reloads the config ten times while clients read and
// change credentials without pause, and checks that every request got its answer.
//
// The clients behave like well-made HTTP/1.1 clients: a request that dies on the connection
// with no answer at all (a keep-alive connection that the old server closes at that instant,
// which no HTTP/1.1 server can rule out) is sent once more, as all these requests are
// idempotent. Go's client already does it for GET and for a PUT with an Idempotency-Key on a
// reused connection; the test does it once more for a fresh one, and reports how often.
func TestReloadUnderLoadFailsNoRequest(t *testing.T) {
	configs := []string{
		fmt.Sprintf(`
		cache_ttl 1h
		provider dc digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			timeout 15s
		}
		provider vault zstack {
			base_url %s
			token {env.ZSTACK_TOKEN}
			timeout 15s
		}`, dc.URL, zs.URL),
		fmt.Sprintf(`
		cache_ttl 2h
		provider dc digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			timeout 16s
		}
		provider vault zstack {
			base_url %s
			token {env.ZSTACK_TOKEN}
			timeout 16s
			retries 1
		}`, dc.URL, zs.URL),
	}
	load(t, configs[0])
	fresh(dc.Server, zs.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		total    atomic.Int64
		resent   atomic.Int64
	)
	worker := func(i int) {
		defer wg.Done()
		client := &http.Client{Transport: caddytest.CreateTestingTransport(), Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		for n := 0; !stop.Load(); n++ {
			var req *http.Request
			switch (i + n) % 3 {
			case 0:
				req, _ = http.NewRequest("GET", gatewayURL+"/credentials/10001/status", nil)
			case 1:
				status := []string{"active", "inactive"}[n%2]
				req, _ = http.NewRequest("PUT", gatewayURL+"/credentials/10001/status", strings.NewReader(`{"status":"`+status+`"}`))
				req.Header.Set("Content-Type", "application/json")
				// With an Idempotency-Key, Go's client may resend a PUT that a keep-alive
				// connection closing at that instant never delivered (as it does for GET).
				req.Header.Set("Idempotency-Key", fmt.Sprintf("load-%d-%d", i, n))
			default:
				req, _ = http.NewRequest("GET", gatewayURL+"/credentials/"+zsCred+"/status", nil)
			}
			resp, err := client.Do(req)
			total.Add(1)
			if err != nil { // every request here is idempotent: send it once more
				resent.Add(1)
				if req.GetBody != nil {
					req.Body, _ = req.GetBody()
				}
				resp, err = client.Do(req)
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
				mu.Unlock()
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body))
				mu.Unlock()
			}
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go worker(i)
	}
	time.Sleep(200 * time.Millisecond)
	for i := 1; i <= 10; i++ {
		load(t, configs[i%2])
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests across 10 reloads; %d sent a second time after a connection error", total.Load(), resent.Load())
	assert.Greater(t, total.Load(), int64(100), "the load was steady")
	assert.Empty(t, failures, "every request of the load got a 200")
}

// TestReloadLetsInFlightChangesFinish starts a status change that the provider takes 1.5s to
// accept, reloads the config meanwhile, and checks that the change finished and its client
// got the answer that says so.
func TestReloadLetsInFlightChangesFinish(t *testing.T) {
	block := fmt.Sprintf(`
		provider dc digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			timeout 5s
			retries 0
		}`, dc.URL)
	tester := load(t, block)
	fresh(dc.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	dc.SetFault(providertest.Fault{Hang: 1500 * time.Millisecond, Method: http.MethodPut})

	done := make(chan answer, 1)
	go func() { done <- call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive"}`) }()
	require.Eventually(t, func() bool { return dc.Count("PUT") == 1 }, 3*time.Second, 5*time.Millisecond)

	load(t, block+"\n cache_ttl 1h") // the old server shuts down gracefully (grace_period 5s)

	a := <-done
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, true, a.body["changed"])
	k, _ := dc.Key(10001)
	assert.Equal(t, "inactive", k.Status)
	dc.Clear()
}

// TestClientLeavingDoesNotCutAChange drops the client in the middle of a status change: the
// change still runs to its end at the provider.
func TestClientLeavingDoesNotCutAChange(t *testing.T) {
	load(t, fmt.Sprintf(`
		provider dc digicert {
			base_url %s
			api_key {env.DC_PARENT_KEY}
			timeout 5s
			retries 0
		}`, dc.URL))
	fresh(dc.Server)
	dc.AddKey(10001, 1, "build-server", "active")
	dc.SetFault(providertest.Fault{Hang: time.Second, Method: http.MethodPut})

	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("PUT", gatewayURL+"/credentials/10001/status", strings.NewReader(`{"status": "inactive"}`))
	req.Header.Set("Content-Type", "application/json")
	_, err := client.Do(req)
	require.Error(t, err, "the client gave up")

	require.Eventually(t, func() bool {
		k, _ := dc.Key(10001)
		return k.Status == "inactive"
	}, 3*time.Second, 20*time.Millisecond, "the change reached the provider all the same")
	dc.Clear()
}

// TestTLSToProviders checks that a provider's certificate is verified: against the system
// roots by default (a private CA fails), and against tls_ca_file when given.
func TestTLSToProviders(t *testing.T) {
	tlsDC := httptest.NewTLSServer(dc.Config.Handler)
	defer tlsDC.Close()
	caFile := filepath.Join(t.TempDir(), "provider-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsDC.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, pemBytes, 0o600))

	tester := load(t, fmt.Sprintf(`
		provider system-roots digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			retries 0
		}
		provider private-ca digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			tls_ca_file %[2]s
			id_pattern x
		}`, tlsDC.URL, caFile))
	dc.AddKey(10001, 1, "build-server", "active")

	a := call(t, tester, "GET", "/credentials/10001/status?provider=system-roots", "")
	requireProblem(t, a, 502, "provider-error")
	a = call(t, tester, "GET", "/credentials/10001/status?provider=private-ca", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "build-server", a.body["credential"].(map[string]any)["name"])
}

// TestSecretsNeverLeak runs every vendor of tests/vendors (a provider from its fixture, and
// the vendor-specific ones of leakExtras) through successes and failures with Caddy logging
// at DEBUG to a file, then looks for every configured secret, every token the providers
// issued, every secret the providers returned and one planted in a vendor's error message,
// in every answer and in the whole log.
func TestSecretsNeverLeak(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := loadWith(t, fmt.Sprintf(`
	log {
		output file %s
		level DEBUG
	}`, logFile), fmt.Sprintf(`
	log {
		output file %s
	}
	credential_status {
		%s
		%s
	}`, logFile, fixtureBlocks("leak", "breaker {\n failures 1000\n }"), leakExtras()))

	fresh(dcFlaky.Server)
	var ids []string // every vendor's ID, then the vendor-specific ones
	for _, f := range providertest.Fixtures() {
		fresh(sims[f.Name].Server)
		sims[f.Name].Add(f.ID)
		ids = append(ids, f.ID)
	}
	pal.AddCredential("org-us", palUS, "Settlement", "TRANSACTIONS", "ENABLED", true, true)
	ids = append(ids, palUS, "20001", "30001", "90001")
	const planted = "PLANTED-SECRET-IN-A-VENDOR-MESSAGE"

	var answers []string
	record := func(a answer) {
		answers = append(answers, a.raw)
		for k, v := range a.header {
			answers = append(answers, k+": "+strings.Join(v, ","))
		}
	}
	for _, id := range ids {
		record(call(t, tester, "GET", "/credentials/"+id+"/status", ""))
		record(call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "inactive"}`))
		record(call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "active", "reason": "restore"}`))
	}
	record(call(t, tester, "PUT", "/credentials/"+palEU+"/status", `{"status": "inactive", "provider": "custody-badsecret"}`))
	record(call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive", "provider": "dc-badkey"}`))
	pal.ExpireTokens()
	record(call(t, tester, "GET", "/credentials/"+palEU+"/status", ""))
	for _, f := range providertest.Fixtures() {
		s := sims[f.Name]
		for _, code := range []int{400, 401, 403, 404, 409, 422, 429, 500} {
			s.SetFault(providertest.Fault{Status: code, Message: planted + " token " + "zs-token"})
			for _, id := range ids[:len(sims)+1] {
				record(call(t, tester, "PUT", "/credentials/"+id+"/status", `{"status": "inactive"}`))
			}
		}
		s.Clear()
	}

	secrets := []string{"k-sub", "k-other", "k-flaky", "not-a-partner-key", "ptoken-us", "not-the-secret", planted}
	for _, f := range providertest.Fixtures() {
		secrets = append(secrets, sims[f.Name].Secrets()...)
	}
	if c, ok := pal.Credential(palUS); ok {
		secrets = append(secrets, c.ClientSecret)
	}
	require.NotEmpty(t, pal.IssuedTokens(), "the scenario used OAuth")

	// Let the log settle, then read it whole.
	time.Sleep(200 * time.Millisecond)
	logData, err := os.ReadFile(logFile)
	require.NoError(t, err)
	require.Contains(t, string(logData), "credential status request failed", "the handler's debug lines are in the log")
	lines := strings.Split(string(logData), "\n")
	for _, secret := range secrets {
		require.NotEmpty(t, secret)
		for _, line := range lines {
			if strings.Contains(line, secret) {
				t.Errorf("secret %q in the log: %s", secret, line)
			}
		}
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("secret %q in an answer: %s", secret, a)
			}
		}
	}
	t.Logf("%d answers and %d bytes of DEBUG log checked for %d secrets", len(answers), len(logData), len(secrets))
}

// TestStateSurvivesACaddyReload opens a breaker and caches a probe's answer, reloads Caddy
// with a change elsewhere in the config, and checks that both are still there; then changes
// the breaker's settings and checks that the provider got a fresh breaker.
func TestStateSurvivesACaddyReload(t *testing.T) {
	block := func(extra, breaker string) string {
		return extra + "\n" + digicertBlock() + fmt.Sprintf(`
		provider survivor digicert {
			base_url %s
			api_key {env.DC_FLAKY_KEY}
			id_pattern 6[0-9]{4}
			retries 0
			breaker {
				%s
			}
		}`, dcFlaky.URL, breaker)
	}
	tester := load(t, block("negative_ttl 5s", "failures 2\n open_for 1m"))
	fresh(dc.Server, dcFlaky.Server)
	dc.AddKey(20001, 2, "partner-b", "active")
	dcFlaky.SetFault(providertest.Fault{Status: 500})
	for i := 0; i < 2; i++ {
		requireProblem(t, call(t, tester, "GET", "/credentials/60001/status?provider=survivor", ""), 502, "provider-error")
	}
	requireProblem(t, call(t, tester, "GET", "/credentials/60001/status?provider=survivor", ""), 503, "provider-unavailable")
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/20001/status", "").status) // probed: dc and dc-other
	reads := dc.Count("GET")

	tester = load(t, block("negative_ttl 7s", "failures 2\n open_for 1m"))
	a := call(t, tester, "GET", "/credentials/60001/status?provider=survivor", "")
	requireProblem(t, a, 503, "provider-unavailable")
	assert.Equal(t, 2, dcFlaky.Count(""), "still open after the reload: no upstream call")
	require.Equal(t, 200, call(t, tester, "GET", "/credentials/20001/status", "").status)
	assert.Equal(t, reads+1, dc.Count("GET"), "the cached owner was asked, nobody was probed")

	tester = load(t, block("negative_ttl 7s", "failures 3\n open_for 1m"))
	requireProblem(t, call(t, tester, "GET", "/credentials/60001/status?provider=survivor", ""), 502, "provider-error")
	assert.Equal(t, 3, dcFlaky.Count(""), "new breaker settings: a fresh, closed breaker")
	dcFlaky.Clear()
}

// fixtureBlocks configures one provider <prefix>-<vendor> per vendor of tests/vendors, on its
// simulator, as its fixture says, without retries, with the extra subdirectives.
func fixtureBlocks(prefix, extra string) string {
	var b string
	for _, f := range providertest.Fixtures() {
		b += fmt.Sprintf(`
		provider %s-%s %s {
			base_url %s
			%s
			retries 0
			%s
		}`, prefix, f.Name, f.Name, sims[f.Name].URL, f.Block, extra)
	}
	return b
}

// leakExtras are the providers of TestSecretsNeverLeak with secrets of their own: a
// Palisade organization on a static token, DigiCert accounts of other keys, and a wrong
// secret of each.
func leakExtras() string {
	return fmt.Sprintf(`
		provider custody-us palisade {
			base_url %[1]s
			token {env.PALISADE_TOKEN}
			retries 0
		}
		provider custody-badsecret palisade {
			base_url %[1]s
			client_id {env.PALISADE_CLIENT_ID}
			client_secret {env.PALISADE_BAD_SECRET}
			id_pattern never-[0-9]+
			retries 0
		}
		provider dc-sub digicert {
			base_url %[2]s
			api_key {env.DC_SUB_KEY}
			id_pattern 3[0-9]{4}
			retries 0
		}
		provider dc-other digicert {
			base_url %[2]s
			api_key {env.DC_OTHER_KEY}
			id_pattern 2[0-9]{4}
			retries 0
		}
		provider dc-badkey digicert {
			base_url %[2]s
			api_key {env.DC_BAD_KEY}
			id_pattern 9[0-9]{4}
			retries 0
		}
		provider flaky digicert {
			base_url %[3]s
			api_key {env.DC_FLAKY_KEY}
			id_pattern 5[0-9]{4}
			retries 0
		}`, pal.URL, dc.URL, dcFlaky.URL)
}
