package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/credgate/credgate"
	"github.com/credgate/credgate/tests/sim"
)

func TestSmoke(t *testing.T) {
	dc := sim.NewDigiCert("")
	defer dc.Close()
	dc.AddAccount(1, 0, "parent-key")
	dc.AddKey(12345, 1, "ci", "active")
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	skip_install_trust
}
http://localhost:9080 {
	credential_status {
		provider dc digicert {
			base_url %s
			api_key parent-key
		}
	}
}`, dc.URL), "caddyfile")
	req, _ := http.NewRequest("PUT", "http://localhost:9080/credentials/12345/status", strings.NewReader(`{"status":"inactive"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	t.Logf("%d %s", resp.StatusCode, b)
	resp, _ = tester.Client.Get("http://localhost:9080/credentials/12345/status")
	b, _ = io.ReadAll(resp.Body)
	t.Logf("%d %s", resp.StatusCode, b)
	resp, _ = tester.Client.Get("http://localhost:9080/credentials/abc/status")
	b, _ = io.ReadAll(resp.Body)
	t.Logf("%d %s", resp.StatusCode, b)
}
