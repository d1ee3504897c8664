// Package integration tests credgate as users run it: an in-process Caddy (caddytest) with
// the credential_status handler in front of the vendor simulators of tests/vendors, over HTTP.
//
// caddytest runs one Caddy per test binary: the tests here do not run in parallel, and every
// live test lives in this package. Its ports (admin, HTTP, HTTPS, a second site) are free
// ones, chosen when the test binary starts, so that two runs on one machine do not meet.
package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	_ "github.com/credgate/credgate"
	"github.com/credgate/credgate/adapters/digicert/digicerttest"
	"github.com/credgate/credgate/adapters/palisade/palisadetest"
	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors"
)

// gatewayURL is where the in-process Caddy serves the handler.
var (
	// adminPort, httpPort and httpsPort are the in-process Caddy's; secondPort is the second
	// site's of the two-instance tests. metricsURL is the admin endpoint's Prometheus page,
	// which serves the config's registry.
	adminPort, httpPort, httpsPort, secondPort = freePort(), freePort(), freePort(), freePort()

	gatewayURL = fmt.Sprintf("http://localhost:%d", httpPort)
	adminURL   = fmt.Sprintf("http://localhost:%d", adminPort)
	metricsURL = adminURL + "/metrics"
	secondURL  = fmt.Sprintf("http://localhost:%d", secondPort)
)

// freePort returns a TCP port that nothing listens on now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The simulators every test shares, one per vendor of tests/vendors, started from its
// fixture (seeded for tests, its Env set); tests reset their faults and logs with fresh().
var sims = map[string]*providertest.Sim{}

// The same simulators, typed, for the tests that know the vendor, with the data those tests
// add to the fixtures' seeds; and a second DigiCert.
var (
	dc      *digicerttest.Simulator // accounts 1 (parent of 3) and 2 (unrelated)
	dcFlaky *digicerttest.Simulator // a second DigiCert for breaker tests
	zs      *zstacktest.Simulator
	pf      *prefactortest.Simulator
	pal     *palisadetest.Simulator // organizations org-eu (OAuth client) and org-us (static token)
)

func TestMain(m *testing.M) {
	caddytest.Default.AdminPort = adminPort
	for _, f := range providertest.Fixtures() {
		sims[f.Name] = f.Start("")
		// Secrets reach the config through placeholders, as in production.
		for k, v := range f.Env {
			os.Setenv(k, v)
		}
	}
	dc = sims["digicert"].Vendor.(*digicerttest.Simulator)
	dc.AddAccount(3, 1, "k-sub")
	dc.AddAccount(2, 0, "k-other")
	dc.AddKey(10002, 1, "ci-runner", "inactive")
	dc.AddKey(20001, 2, "partner-b", "active")
	dc.AddKey(30001, 3, "staging", "active")
	dcFlaky = digicerttest.New("")
	dcFlaky.AddAccount(1, 0, "k-flaky")
	dcFlaky.AddKey(50001, 1, "flaky", "active")

	zs = sims["zstack"].Vendor.(*zstacktest.Simulator)
	pf = sims["prefactor"].Vendor.(*prefactortest.Simulator)
	pal = sims["palisade"].Vendor.(*palisadetest.Simulator)
	pal.AddToken("org-us", "ptoken-us")

	os.Setenv("PALISADE_TOKEN", "ptoken-us")
	os.Setenv("PALISADE_BAD_SECRET", "not-the-secret")
	os.Setenv("DC_BAD_KEY", "not-a-partner-key")
	os.Setenv("DC_SUB_KEY", "k-sub")
	os.Setenv("DC_OTHER_KEY", "k-other")
	os.Setenv("DC_FLAKY_KEY", "k-flaky")

	code := m.Run()
	for _, s := range sims {
		s.Close()
	}
	dcFlaky.Close()
	if code == 0 {
		code = checkLeaks()
	}
	os.Exit(code)
}

// load (re)configures the in-process Caddy with a site that runs credential_status with the
// given block body. It is a real config load: a reload when Caddy already runs.
func load(t *testing.T, block string) *caddytest.Tester {
	t.Helper()
	return loadSite(t, "credential_status {\n"+block+"\n}")
}

// loadSite (re)configures the in-process Caddy with a site of the given directives.
func loadSite(t *testing.T, site string) *caddytest.Tester {
	t.Helper()
	return loadWith(t, "", site)
}

// loadWith (re)configures the in-process Caddy with more global options and a site.
func loadWith(t *testing.T, globals, site string) *caddytest.Tester {
	t.Helper()
	return loadConfig(t, globals, gatewayURL+" {\n"+site+"\n}")
}

// loadConfig (re)configures the in-process Caddy with the harness's global options, more
// global options, and the given sites.
func loadConfig(t *testing.T, globals, sites string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 5s
	skip_install_trust
%s
}
%s`, adminPort, httpPort, httpsPort, globals, sites), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends a request to the gateway; body, when not empty, is sent as JSON. header holds
// pairs of header names and values.
func call(t *testing.T, tester *caddytest.Tester, method, path, body string, header ...string) answer {
	t.Helper()
	return callURL(t, tester.Client, method, gatewayURL+path, body, header...)
}

// callURL sends a request to url with client, as call does, and reads the answer whole.
func callURL(t *testing.T, client *http.Client, method, url, body string, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		_ = json.Unmarshal(raw, &a.body)
	}
	return a
}

// requireProblem checks a is the problem of the given status and type suffix.
func requireProblem(t *testing.T, a answer, status int, suffix string) {
	t.Helper()
	require.Equal(t, status, a.status, a.raw)
	require.Equal(t, "application/problem+json", a.header.Get("Content-Type"), a.raw)
	require.Equal(t, "urn:credgate:problem:"+suffix, a.body["type"], a.raw)
	require.EqualValues(t, status, a.body["status"], a.raw)
	require.NotEmpty(t, a.body["title"], a.raw)
}

// basicAuth returns the value of an Authorization header for HTTP basic authentication.
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// checkLeaks unloads every app from the in-process Caddy, so that its handlers are cleaned
// up, and then looks for goroutines that should have ended: probes, token fetches,
// connections to providers, breakers' timers. What stays by design is ignored: caddytest's
// Caddy itself (its command loop, signal traps and admin endpoint) and the file log writer's
// rotation goroutine, which timberjack never stops.
func checkLeaks() int {
	req, _ := http.NewRequest("POST", adminURL+"/load", strings.NewReader(fmt.Sprintf(`{"admin": {"listen": "localhost:%d"}}`, adminPort)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		// No test started Caddy (go test -run of tests that need none): nothing to unload.
	case err != nil:
		fmt.Fprintln(os.Stderr, "unloading Caddy:", err)
		return 1
	default:
		resp.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections() // caddytest's config loads used it too
	err = goleak.Find(
		goleak.IgnoreTopFunction("github.com/caddyserver/caddy/v2/cmd.cmdRun"),
		goleak.IgnoreTopFunction("github.com/caddyserver/caddy/v2.trapSignalsCrossPlatform.func1"),
		goleak.IgnoreTopFunction("github.com/caddyserver/caddy/v2.trapSignalsPosix.func1"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.replaceLocalAdminServer.func2"),
		goleak.IgnoreTopFunction("github.com/DeRuina/timberjack.(*Logger).millRun"),    // Caddy's file log writer
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),     // a dependency's init
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"), // TLS storage cleaning, started with Caddy
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return 0
}
