package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider/providertest"
)

// digicertBlock configures DigiCert providers over the shared simulators:
//   - dc, the parent account 1: every numeric ID (the vendor's default pattern)
//   - dc-sub, subaccount 3 of account 1: 3xxxx, which the parent owns too (ambiguous)
//   - dc-other, unrelated account 2: 2xxxx (dc answers those 403: "not this account")
//   - dc-badkey, a partner key DigiCert does not know: 9xxxx
//   - flaky, another simulator with a breaker that opens on the 3rd failure: 5xxxx
func digicertBlock() string {
	return fmt.Sprintf(`
		max_body 1KiB
		provider dc digicert {
			base_url %[1]s
			api_key {env.DC_PARENT_KEY}
			timeout 1s
			retries 0
			breaker {
				failures 100
			}
		}
		provider dc-sub digicert {
			base_url %[1]s
			api_key {env.DC_SUB_KEY}
			id_pattern 3[0-9]{4}
			retries 0
		}
		provider dc-other digicert {
			base_url %[1]s
			api_key {env.DC_OTHER_KEY}
			id_pattern 2[0-9]{4}
			retries 0
		}
		provider dc-badkey digicert {
			base_url %[1]s
			api_key {env.DC_BAD_KEY}
			id_pattern 9[0-9]{4}
			retries 0
		}
		provider flaky digicert {
			base_url %[2]s
			api_key {env.DC_FLAKY_KEY}
			id_pattern 5[0-9]{4}
			timeout 1s
			retries 0
			breaker {
				failures 3
				open_for 1s
				half_open_requests 1
			}
		}`, dc.URL, dcFlaky.URL)
}

func fresh(sims ...*providertest.Server) {
	for _, s := range sims {
		s.Clear()
		s.ResetLog()
	}
}

// TestErrorTable walks API.md's error table, row by row, through Caddy and the simulator.
func TestErrorTable(t *testing.T) {
	tester := load(t, digicertBlock())
	put := func(id, body string, header ...string) answer {
		return call(t, tester, "PUT", "/credentials/"+id+"/status", body, header...)
	}

	t.Run("400 invalid-request calls no provider", func(t *testing.T) {
		fresh(dc.Server)
		for _, c := range []struct{ id, body string }{
			{"10001", `{"status": "inactive"`},
			{"10001", `{"status": "inactive", "enable": false}`},
			{"10001", `{"status": "off"}`},
			{"10001", `{}`},
			{"100%2F01", `{"status": "inactive"}`},
			{"10%C3%A901", `{"status": "inactive"}`},
			{"..", `{"status": "inactive"}`},
			{strings.Repeat("1", 257), `{"status": "inactive"}`},
		} {
			requireProblem(t, put(c.id, c.body), 400, "invalid-request")
		}
		requireProblem(t, call(t, tester, "GET", "/credentials/%00/status", ""), 400, "invalid-request")
		assert.Zero(t, dc.Count(""), "a hostile or malformed request never reaches a provider")
	})

	t.Run("400 unknown-provider", func(t *testing.T) {
		fresh(dc.Server)
		a := put("10001", `{"status": "inactive", "provider": "nope"}`)
		requireProblem(t, a, 400, "unknown-provider")
		requireProblem(t, call(t, tester, "GET", "/credentials/10001/status?provider=nope", ""), 400, "unknown-provider")
		assert.Zero(t, dc.Count(""))
	})

	t.Run("415 unsupported-media-type", func(t *testing.T) {
		fresh(dc.Server)
		requireProblem(t, put("10001", `{"status": "inactive"}`, "Content-Type", "text/plain"), 415, "unsupported-media-type")
		requireProblem(t, put("10001", `{"status": "inactive"}`, "Content-Type", ""), 415, "unsupported-media-type")
		assert.Zero(t, dc.Count(""))
	})

	t.Run("413 body-too-large", func(t *testing.T) {
		fresh(dc.Server)
		a := put("10001", `{"status": "inactive", "reason": "`+strings.Repeat("x", 2000)+`"}`)
		requireProblem(t, a, 413, "body-too-large")
		assert.Zero(t, dc.Count(""))
	})

	t.Run("405 method-not-allowed", func(t *testing.T) {
		for _, m := range []string{"DELETE", "POST", "PATCH"} {
			a := call(t, tester, m, "/credentials/10001/status", "")
			requireProblem(t, a, 405, "method-not-allowed")
			assert.Equal(t, "GET, PUT", a.header.Get("Allow"))
		}
	})

	t.Run("404 credential-not-found", func(t *testing.T) {
		fresh(dc.Server)
		a := put("abc", `{"status": "inactive"}`)
		requireProblem(t, a, 404, "credential-not-found")
		assert.Zero(t, dc.Count(""), "no pattern matches: no call")

		a = put("10999", `{"status": "inactive"}`)
		requireProblem(t, a, 404, "credential-not-found")
		assert.Equal(t, "10999", a.body["id"])
		assert.Equal(t, "dc", a.body["provider"])
		assert.EqualValues(t, 404, a.body["upstream_status"])
		assert.Zero(t, dc.Writes())
	})

	t.Run("409 ambiguous-credential", func(t *testing.T) {
		fresh(dc.Server)
		a := put("30001", `{"status": "inactive"}`)
		requireProblem(t, a, 409, "ambiguous-credential")
		assert.ElementsMatch(t, []any{"dc", "dc-sub"}, a.body["providers"])
		assert.Zero(t, dc.Writes(), "probing never writes")
		a = put("30001", `{"status": "inactive", "provider": "dc-sub"}`)
		require.Equal(t, 200, a.status, a.raw)
	})

	t.Run("422 unsupported-status", func(t *testing.T) {
		fresh(dc.Server)
		requireProblem(t, put("10001", `{"status": "revoked"}`), 422, "unsupported-status")
		requireProblem(t, put("10001", `{"status": "active", "expires_at": "2099-01-01T00:00:00Z"}`), 422, "unsupported-status")
		assert.Zero(t, dc.Writes())
	})

	t.Run("403 provider-forbidden when named, not this account when probing", func(t *testing.T) {
		fresh(dc.Server)
		a := put("20001", `{"status": "inactive", "provider": "dc"}`)
		requireProblem(t, a, 403, "provider-forbidden")
		assert.EqualValues(t, 403, a.body["upstream_status"])
		assert.Zero(t, dc.Writes())

		a = put("20001", `{"status": "inactive"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "dc-other", a.body["provider"])
		k, _ := dc.Key(20001)
		assert.Equal(t, "inactive", k.Status)
	})

	t.Run("502 provider-auth-failed", func(t *testing.T) {
		fresh(dc.Server)
		a := put("10001", `{"status": "inactive", "provider": "dc-badkey"}`)
		requireProblem(t, a, 502, "provider-auth-failed")
		assert.EqualValues(t, 401, a.body["upstream_status"])
		assert.NotContains(t, a.raw, "not-a-partner-key", "the secret never appears in an answer")
	})

	t.Run("503 when a candidate cannot be asked, never 404", func(t *testing.T) {
		fresh(dc.Server)
		a := put("90001", `{"status": "inactive"}`) // dc: 404; dc-badkey: 401
		requireProblem(t, a, 503, "provider-unavailable")
		assert.Equal(t, []any{"dc-badkey"}, a.body["providers"])
		assert.NotEmpty(t, a.header.Get("Retry-After"))
	})

	t.Run("429 provider-rate-limited passes Retry-After on", func(t *testing.T) {
		fresh(dc.Server)
		dc.SetFault(providertest.Fault{Status: 429, RetryAfter: "7"})
		a := put("10001", `{"status": "inactive"}`)
		requireProblem(t, a, 429, "provider-rate-limited")
		assert.Equal(t, "7", a.header.Get("Retry-After"))
		assert.EqualValues(t, 429, a.body["upstream_status"])
	})

	t.Run("502 provider-error", func(t *testing.T) {
		for name, f := range map[string]providertest.Fault{
			"5xx":                {Status: 500},
			"malformed JSON":     {Malformed: true},
			"wrong content type": {WrongContentType: true},
			"oversized answer":   {Huge: 2 << 20},
			"connection reset":   {Reset: true},
		} {
			t.Run(name, func(t *testing.T) {
				fresh(dc.Server)
				dc.SetFault(f)
				a := put("10001", `{"status": "inactive"}`)
				requireProblem(t, a, 502, "provider-error")
				assert.Equal(t, "dc", a.body["provider"])
				assert.Zero(t, dc.Writes())
			})
		}
	})

	t.Run("504 provider-timeout within the timeout", func(t *testing.T) {
		fresh(dc.Server)
		dc.SetFault(providertest.Fault{Hang: 5 * time.Second})
		start := time.Now()
		a := put("10001", `{"status": "inactive"}`)
		requireProblem(t, a, 504, "provider-timeout")
		assert.Less(t, time.Since(start), 3*time.Second, "the provider's timeout is 1s")
	})

	t.Run("503 provider-unavailable while the breaker is open", func(t *testing.T) {
		fresh(dcFlaky.Server)
		dcFlaky.SetFault(providertest.Fault{Status: 503})
		for i := 0; i < 3; i++ {
			requireProblem(t, call(t, tester, "GET", "/credentials/50001/status?provider=flaky", ""), 502, "provider-error")
		}
		a := put("50001", `{"status": "inactive", "provider": "flaky"}`)
		requireProblem(t, a, 503, "provider-unavailable")
		assert.Equal(t, "1", a.header.Get("Retry-After"))
		assert.Equal(t, 3, dcFlaky.Count(""), "no upstream call while open")

		dcFlaky.Clear()
		time.Sleep(1100 * time.Millisecond)
		a = call(t, tester, "GET", "/credentials/50001/status?provider=flaky", "")
		require.Equal(t, 200, a.status, "half-open lets a trial through: %s", a.raw)
		a = put("50001", `{"status": "inactive", "provider": "flaky"}`)
		require.Equal(t, 200, a.status, "the trial's success closed it: %s", a.raw)
	})
	fresh(dc.Server, dcFlaky.Server)
}

// TestDigiCert covers the DigiCert adapter through the gateway: its happy path, 204 handling,
// idempotency and the read.
func TestDigiCert(t *testing.T) {
	tester := load(t, digicertBlock())
	fresh(dc.Server)
	dc.AddKey(10003, 1, "deploy", "active")

	a := call(t, tester, "PUT", "/credentials/10003/status", `{"status": "inactive", "reason": "INC-42"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "application/json", a.header.Get("Content-Type"))
	assert.Equal(t, "10003", a.body["id"])
	assert.Equal(t, "dc", a.body["provider"])
	assert.Equal(t, "digicert", a.body["adapter"])
	assert.Equal(t, "inactive", a.body["status"])
	assert.Equal(t, true, a.body["changed"])
	assert.Equal(t, "inactive", a.body["provider_status"])
	cred := a.body["credential"].(map[string]any)
	assert.Equal(t, "deploy", cred["name"])
	assert.EqualValues(t, 1, cred["account_id"])
	k, _ := dc.Key(10003)
	assert.Equal(t, "inactive", k.Status)

	reqs := dc.Requests()
	require.Len(t, reqs, 2, "a read, then the change")
	assert.Equal(t, "GET", reqs[0].Method)
	assert.Equal(t, "/partner-subscription/api/v1/api-key/10003", reqs[0].Path)
	assert.Equal(t, "PUT", reqs[1].Method)
	assert.Equal(t, "/partner-subscription/api/v1/api-key/10003/status", reqs[1].Path)
	assert.Equal(t, "k-parent", reqs[1].Header.Get("X-PARTNER-APIKEY"))
	assert.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
	assert.JSONEq(t, `{"status": "inactive"}`, string(reqs[1].Body))

	a = call(t, tester, "PUT", "/credentials/10003/status", `{"status": "inactive"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, false, a.body["changed"])
	assert.Equal(t, 1, dc.Writes(), "no second write")

	a = call(t, tester, "GET", "/credentials/10003/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", a.body["status"])
	assert.NotContains(t, a.body, "changed")

	a = call(t, tester, "PUT", "/credentials/10003/status", `{"status": "active"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])
	assert.Equal(t, true, a.body["changed"])
}
