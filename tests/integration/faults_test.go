package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

// vendorTarget is one vendor's provider in the fault tests: its fixture and its simulator.
type vendorTarget struct {
	vendor string
	id     string
	server *providertest.Server
	write  string // the method of the vendor's change call
	reset  func() // puts the credential back to active
	f      providertest.Fixture
}

// vendorTargets are the vendors of tests/vendors, from their fixtures.
func vendorTargets() []vendorTarget {
	var out []vendorTarget
	for _, f := range providertest.Fixtures() {
		s := sims[f.Name]
		out = append(out, vendorTarget{f.Name, f.ID, s.Server, f.WriteMethod, func() { s.Add(f.ID) }, f})
	}
	return out
}

// closedAddr returns a loopback address where nothing listens: connections are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// faultBlock configures, for each vendor of tests/vendors, a provider <prefix>-<vendor> on
// its simulator and a provider refused-<vendor> on a closed port, with the given timeout,
// retries and breaker. Requests name the provider, so that no probe mixes them up.
func faultBlock(t *testing.T, prefix, timeout string, retries int, breaker string) string {
	closed := "http://" + closedAddr(t)
	var b string
	for _, v := range vendorTargets() {
		for _, p := range []struct{ name, url string }{{prefix + "-" + v.vendor, v.server.URL}, {"refused-" + v.vendor, closed}} {
			b += fmt.Sprintf(`
		provider %s %s {
			base_url %s
			%s
			timeout %s
			retries %d
			breaker {
				%s
			}
		}`, p.name, v.vendor, p.url, v.f.Block, timeout, retries, breaker)
		}
	}
	return b
}

// TestFaultMatrix drives every adapter through every fault of its simulator, on the read and
// on the write, and checks the status of API.md's table for each.
func TestFaultMatrix(t *testing.T) {
	tester := load(t, faultBlock(t, "m", "1s", 0, "failures 1000"))
	reads := []struct {
		name       string
		fault      providertest.Fault
		status     int
		suffix     string
		upstream   int
		retryAfter string
	}{
		{"5xx", providertest.Fault{Status: 500}, 502, "provider-error", 500, ""},
		{"503", providertest.Fault{Status: 503}, 502, "provider-error", 503, ""},
		{"hang past the timeout", providertest.Fault{Hang: 4 * time.Second}, 504, "provider-timeout", 0, ""},
		{"connection reset", providertest.Fault{Reset: true}, 502, "provider-error", 0, ""},
		{"malformed JSON", providertest.Fault{Malformed: true}, 502, "provider-error", 200, ""},
		{"wrong content type", providertest.Fault{WrongContentType: true}, 502, "provider-error", 200, ""},
		{"answer over the read limit", providertest.Fault{Huge: 2 << 20}, 502, "provider-error", 200, ""},
		{"429 with Retry-After", providertest.Fault{Status: 429, RetryAfter: "7"}, 429, "provider-rate-limited", 429, "7"},
		{"429 without Retry-After", providertest.Fault{Status: 429}, 429, "provider-rate-limited", 429, ""},
	}
	for _, v := range vendorTargets() {
		v.reset()
		// A first call that works: Palisade's access token is then cached, so that the
		// faults below hit the read itself, not the token endpoint (tested further down).
		fresh(v.server)
		require.Equal(t, 200, call(t, tester, "GET", "/credentials/"+v.id+"/status?provider=m-"+v.vendor, "").status)
		for _, f := range reads {
			t.Run(v.vendor+"/read/"+f.name, func(t *testing.T) {
				fresh(v.server)
				v.server.SetFault(f.fault)
				start := time.Now()
				a := call(t, tester, "GET", "/credentials/"+v.id+"/status?provider=m-"+v.vendor, "")
				requireProblem(t, a, f.status, f.suffix)
				assert.Equal(t, "m-"+v.vendor, a.body["provider"])
				if f.upstream != 0 {
					assert.EqualValues(t, f.upstream, a.body["upstream_status"])
				}
				assert.Equal(t, f.retryAfter, a.header.Get("Retry-After"))
				assert.Less(t, time.Since(start), 2500*time.Millisecond, "nothing blocks longer than the 1s timeout (plus a margin)")
			})
		}
		t.Run(v.vendor+"/connection refused", func(t *testing.T) {
			a := call(t, tester, "GET", "/credentials/"+v.id+"/status?provider=refused-"+v.vendor, "")
			requireProblem(t, a, 502, "provider-error")
			a = call(t, tester, "PUT", "/credentials/"+v.id+"/status", `{"status": "inactive", "provider": "refused-`+v.vendor+`"}`)
			requireProblem(t, a, 502, "provider-error")
		})
		for _, f := range reads[:4] {
			t.Run(v.vendor+"/write/"+f.name, func(t *testing.T) {
				v.reset()
				fresh(v.server)
				f.fault.Method = v.write
				v.server.SetFault(f.fault)
				start := time.Now()
				a := call(t, tester, "PUT", "/credentials/"+v.id+"/status", `{"status": "inactive", "provider": "m-`+v.vendor+`"}`)
				requireProblem(t, a, f.status, f.suffix)
				assert.Equal(t, 1, v.server.Count(v.write), "one write, not repeated (retries 0)")
				assert.Less(t, time.Since(start), 2500*time.Millisecond)
			})
		}
		v.server.Clear()
	}

	t.Run("palisade/OAuth token endpoint", func(t *testing.T) {
		for _, f := range []struct {
			name   string
			fault  providertest.Fault
			status int
			suffix string
		}{
			{"5xx", providertest.Fault{Status: 500}, 502, "provider-error"},
			{"hang", providertest.Fault{Hang: 4 * time.Second}, 504, "provider-timeout"},
			{"401", providertest.Fault{Status: 401}, 502, "provider-auth-failed"},
			{"malformed", providertest.Fault{Malformed: true}, 502, "provider-error"},
			{"reset", providertest.Fault{Reset: true}, 502, "provider-error"},
		} {
			fresh(pal.Server)
			pal.ExpireTokens() // the cached token is refused: the adapter asks for another
			f.fault.Path = "/oauth/token"
			pal.SetFault(f.fault)
			a := call(t, tester, "GET", "/credentials/"+palEU+"/status?provider=m-palisade", "")
			requireProblem(t, a, f.status, f.suffix)
		}
		fresh(pal.Server)
		a := call(t, tester, "GET", "/credentials/"+palEU+"/status?provider=m-palisade", "")
		require.Equal(t, 200, a.status, "a working token endpoint again: %s", a.raw)
	})
}

// TestBreakerPerAdapter opens each adapter's breaker with failures, checks that it answers
// without calling the provider, lets a trial through after open_for and closes on success.
func TestBreakerPerAdapter(t *testing.T) {
	tester := load(t, faultBlock(t, "b", "1s", 0, "failures 3\n open_for 1s\n half_open_requests 2"))
	for _, v := range vendorTargets() {
		t.Run(v.vendor, func(t *testing.T) {
			v.reset()
			fresh(v.server)
			path := "/credentials/" + v.id + "/status?provider=b-" + v.vendor
			v.server.SetFault(providertest.Fault{Status: 500})
			for i := 0; i < 3; i++ {
				requireProblem(t, call(t, tester, "GET", path, ""), 502, "provider-error")
			}
			calls := v.server.Count("")
			a := call(t, tester, "PUT", "/credentials/"+v.id+"/status", `{"status": "inactive", "provider": "b-`+v.vendor+`"}`)
			requireProblem(t, a, 503, "provider-unavailable")
			retry, err := strconv.Atoi(a.header.Get("Retry-After"))
			require.NoError(t, err)
			assert.InDelta(t, 1, retry, 1)
			requireProblem(t, call(t, tester, "GET", path, ""), 503, "provider-unavailable")
			assert.Equal(t, calls, v.server.Count(""), "no upstream call while open")

			// Half-open after open_for: a failing trial opens it again at once.
			time.Sleep(1100 * time.Millisecond)
			requireProblem(t, call(t, tester, "GET", path, ""), 502, "provider-error")
			requireProblem(t, call(t, tester, "GET", path, ""), 503, "provider-unavailable")

			// Half-open again: two successful trials (half_open_requests 2) close it.
			v.server.Clear()
			time.Sleep(1100 * time.Millisecond)
			require.Equal(t, 200, call(t, tester, "GET", path, "").status)
			require.Equal(t, 200, call(t, tester, "GET", path, "").status)
			v.server.SetFault(providertest.Fault{Status: 500})
			requireProblem(t, call(t, tester, "GET", path, ""), 502, "provider-error")
			v.server.Clear()
			require.Equal(t, 200, call(t, tester, "GET", path, "").status, "closed: one failure does not open it")
		})
	}
}

// TestHealthyAnswersNeverOpenTheBreaker sends, with failures 2, many answers that are not the
// provider's failures: 404, 403, 409, 422, 400, and a client's own cancellation.
func TestHealthyAnswersNeverOpenTheBreaker(t *testing.T) {
	tester := load(t, faultBlock(t, "h", "2s", 0, "failures 2"))
	fresh(dc.Server, pf.Server)
	pf.AddAPIToken(pfActive, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	for i := 0; i < 4; i++ {
		requireProblem(t, call(t, tester, "GET", "/credentials/10999/status?provider=h-digicert", ""), 404, "credential-not-found")
		requireProblem(t, call(t, tester, "GET", "/credentials/20001/status?provider=h-digicert", ""), 403, "provider-forbidden")
		dc.SetFault(providertest.Fault{Status: 422, Method: http.MethodPut})
		requireProblem(t, call(t, tester, "PUT", "/credentials/10001/status", `{"status": "inactive", "provider": "h-digicert"}`), 422, "unsupported-status")
		dc.SetFault(providertest.Fault{Status: 400})
		requireProblem(t, call(t, tester, "GET", "/credentials/10001/status?provider=h-digicert", ""), 502, "provider-error")
		dc.Clear()
		pf.SetFault(providertest.Fault{Status: 409, Method: http.MethodPost})
		requireProblem(t, call(t, tester, "PUT", "/credentials/"+pfActive+"/status", `{"status": "inactive", "provider": "h-prefactor"}`), 409, "transition-not-allowed")
		pf.Clear()
	}

	// The client gives up after 100ms on a provider that hangs: its own cancellation.
	dc.SetFault(providertest.Fault{Hang: 5 * time.Second})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", gatewayURL+"/credentials/10001/status?provider=h-digicert", nil)
		_, err := client.Do(req)
		cancel()
		require.Error(t, err)
	}
	dc.Clear()
	a := call(t, tester, "GET", "/credentials/10001/status?provider=h-digicert", "")
	assert.Equal(t, 200, a.status, "the breaker is still closed: %s", a.raw)
	a = call(t, tester, "GET", "/credentials/"+pfActive+"/status?provider=h-prefactor", "")
	assert.Equal(t, 200, a.status, a.raw)
}

// TestOneOutageDoesNotSlowTheOthers saturates one provider that hangs, beyond its
// connection limit, and checks that another provider answers meanwhile.
func TestOneOutageDoesNotSlowTheOthers(t *testing.T) {
	tester := load(t, fmt.Sprintf(`
		provider slow digicert {
			base_url %s
			api_key {env.DC_FLAKY_KEY}
			timeout 3s
			retries 0
			max_connections 2
		}
		provider fast zstack {
			base_url %s
			token {env.ZSTACK_TOKEN}
			timeout 3s
		}`, dcFlaky.URL, zs.URL))
	fresh(dcFlaky.Server, zs.Server)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})
	dcFlaky.SetFault(providertest.Fault{Hang: 2 * time.Second})

	var wg sync.WaitGroup
	slowDone := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, tester, "GET", "/credentials/50001/status?provider=slow", "")
		}()
	}
	go func() { wg.Wait(); close(slowDone) }()
	require.Eventually(t, func() bool { return dcFlaky.Count("") >= 2 }, 2*time.Second, 10*time.Millisecond)

	for i := 0; i < 5; i++ {
		a := call(t, tester, "GET", "/credentials/"+zsCred+"/status", "")
		require.Equal(t, 200, a.status, a.raw)
		select {
		case <-slowDone:
			t.Fatal("the slow provider's requests ended before the fast provider's answers: nothing was shown")
		default:
		}
	}
	assert.LessOrEqual(t, dcFlaky.Count(""), 2, "max_connections 2: the others wait for a connection")
	<-slowDone
	dcFlaky.Clear()
}

// TestRetries checks the retry policy through Caddy: a read is repeated after 503 and after
// a 429 whose Retry-After fits the timeout; a Prefactor transition without an idempotency key
// is not repeated after a 503, one with a key is.
func TestRetries(t *testing.T) {
	tester := load(t, faultBlock(t, "r", "5s", 2, "failures 1000"))
	fresh(dc.Server, pf.Server)
	dc.AddKey(10001, 1, "build-server", "active")

	dc.SetFault(providertest.Fault{Status: 503, Times: 2})
	a := call(t, tester, "GET", "/credentials/10001/status?provider=r-digicert", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, 3, dc.Count("GET"), "two retries after 503")

	fresh(dc.Server)
	dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "1", Times: 1})
	start := time.Now()
	a = call(t, tester, "GET", "/credentials/10001/status?provider=r-digicert", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After was honoured")
	assert.Equal(t, 2, dc.Count("GET"))

	fresh(dc.Server)
	dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "30"})
	a = call(t, tester, "GET", "/credentials/10001/status?provider=r-digicert", "")
	requireProblem(t, a, 429, "provider-rate-limited")
	assert.Equal(t, "30", a.header.Get("Retry-After"))
	assert.Equal(t, 1, dc.Count("GET"), "a Retry-After past the 5s budget is passed on, not waited for")

	fresh(dc.Server)
	dc.SetFault(providertest.Fault{Status: 500, Times: 1})
	a = call(t, tester, "GET", "/credentials/10001/status?provider=r-digicert", "")
	requireProblem(t, a, 502, "provider-error")
	assert.Equal(t, 1, dc.Count("GET"), "a 500 is not repeated")
	dc.Clear()

	pf.AddAPIToken(pfActive, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	fresh(pf.Server)
	pf.SetFault(providertest.Fault{Status: 503, Method: http.MethodPost, Times: 1})
	a = call(t, tester, "PUT", "/credentials/"+pfActive+"/status", `{"status": "inactive", "provider": "r-prefactor"}`)
	requireProblem(t, a, 502, "provider-error")
	assert.Equal(t, 1, pf.Count("POST"), "a transition without an idempotency key is not repeated")

	fresh(pf.Server)
	pf.SetFault(providertest.Fault{Status: 503, Method: http.MethodPost, Times: 1})
	a = call(t, tester, "PUT", "/credentials/"+pfActive+"/status", `{"status": "inactive", "provider": "r-prefactor"}`, "Idempotency-Key", "INC-7")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, 2, pf.Count("POST"), "with a key, Prefactor applies it once: repeated")
}
