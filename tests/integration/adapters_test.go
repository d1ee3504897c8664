package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

const (
	zsCred    = "cred-0c3e5a47-9b1d-4f2a-8e6c-7d5b3a1f0e92"
	zsSecret  = "zs-stored-secret-value"
	pfActive  = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"
	pfRevoked = "013xrzp12g3nqk8nr5vkdt0k3n0000a1"
)

func zstackBlock() string {
	return fmt.Sprintf(`
		provider vault zstack {
			base_url %s
			token {env.ZSTACK_TOKEN}
			operator credgate-test
			reactivate_for 720h
			retries 0
		}`, zs.URL)
}

func prefactorBlock() string {
	return fmt.Sprintf(`
		provider tokens prefactor {
			base_url %s
			token {env.PREFACTOR_TOKEN}
			retries 0
		}`, pf.URL)
}

func TestZStack(t *testing.T) {
	tester := load(t, zstackBlock())
	fresh(zs.Server)
	future := time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", Type: "CREDENTIAL_TYPE_PASSWORD", ExpiresAt: future, Value: zsSecret, CreatedBy: "admin@example.com"})
	put := func(body string) answer {
		return call(t, tester, "PUT", "/credentials/"+zsCred+"/status", body)
	}

	a := call(t, tester, "GET", "/credentials/"+zsCred+"/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])
	assert.Equal(t, "zstack", a.body["adapter"])
	assert.Equal(t, "prod-db", a.body["credential"].(map[string]any)["name"])

	a = put(`{"status": "inactive", "reason": "leaked"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", a.body["status"])
	assert.Equal(t, true, a.body["changed"])
	c, _ := zs.Credential(zsCred)
	exp, err := time.Parse(time.RFC3339, c.ExpiresAt)
	require.NoError(t, err)
	assert.False(t, exp.After(time.Now()), "inactive is an expiry of now")
	assert.Equal(t, "credgate-test", c.LastOperator, "no authenticated caller: the configured operator")
	assert.Equal(t, zsSecret, c.Value, "a status change never rotates the secret")
	assert.Zero(t, zs.ValueWrites())

	writes := zs.Writes()
	a = put(`{"status": "inactive"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, false, a.body["changed"])
	assert.Equal(t, writes, zs.Writes(), "no write for the status it has")

	a = put(`{"status": "active", "expires_at": "2031-06-30T12:00:00Z"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])
	c, _ = zs.Credential(zsCred)
	assert.Equal(t, "2031-06-30T12:00:00Z", c.ExpiresAt)

	put(`{"status": "inactive"}`)
	before := time.Now()
	a = put(`{"status": "active"}`)
	require.Equal(t, 200, a.status, a.raw)
	c, _ = zs.Credential(zsCred)
	exp, err = time.Parse(time.RFC3339, c.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(720*time.Hour), exp, 5*time.Second, "reactivate_for sets the new expiry")

	requireProblem(t, put(`{"status": "revoked"}`), 422, "unsupported-status")

	for _, req := range zs.Requests() {
		assert.NotContains(t, string(req.Body), `"value"`, "never sends value")
	}
	assert.NotContains(t, a.raw, zsSecret)
}

func TestZStackOperatorIsTheAuthenticatedCaller(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	require.NoError(t, err)
	tester := loadSite(t, fmt.Sprintf(`
	basic_auth /credentials/* {
		alice %s
	}
	credential_status {
		%s
	}`, hash, zstackBlock()))
	fresh(zs.Server)
	zs.AddCredential(zstacktest.Credential{UUID: zsCred, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: zsSecret})

	a := call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "inactive"}`)
	require.Equal(t, 401, a.status, "basic_auth guards the endpoint")
	assert.Zero(t, zs.Count(""))

	a = call(t, tester, "PUT", "/credentials/"+zsCred+"/status", `{"status": "inactive"}`, "Authorization", basicAuth("alice", "alice-password"))
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "alice", zs.LastOperator(zsCred))
}

func TestPrefactor(t *testing.T) {
	tester := load(t, prefactorBlock())
	fresh(pf.Server)
	pf.AddAPIToken(pfActive, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "active")
	pf.AddAPIToken(pfRevoked, "013xrzp12g3nqk8ngskn1wtxgka5b0nf", "", "revoked")
	put := func(id, body string, header ...string) answer {
		return call(t, tester, "PUT", "/credentials/"+id+"/status", body, header...)
	}

	a := put(pfActive, `{"status": "inactive"}`, "Idempotency-Key", "INC-42-suspend")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "inactive", a.body["status"])
	assert.Equal(t, "suspended", a.body["provider_status"])
	assert.Equal(t, true, a.body["changed"])
	assert.Equal(t, "prefactor", a.body["adapter"])
	tok, _ := pf.APIToken(pfActive)
	assert.Equal(t, "suspended", tok.Status)
	assert.Equal(t, []string{"INC-42-suspend"}, pf.IdempotencyKeys(), "Idempotency-Key is passed on as idempotency_key")
	last := pf.Requests()[len(pf.Requests())-1]
	assert.Equal(t, "/api/v1/api_token/"+pfActive+"/suspend", last.Path)
	assert.Equal(t, "Bearer pf-token", last.Header.Get("Authorization"))

	writes := pf.Writes()
	a = put(pfActive, `{"status": "inactive"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, false, a.body["changed"], "a repeated transition is 200 changed:false")
	assert.Equal(t, writes, pf.Writes())

	a = put(pfActive, `{"status": "active"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "active", a.body["status"])

	pf.SetFault(providertest.Fault{Status: 400, Path: "/suspend"})
	requireProblem(t, put(pfActive, `{"status": "inactive"}`), 502, "provider-error") // a request error, not a refusal
	pf.SetFault(providertest.Fault{Status: 409, Path: "/suspend"})
	requireProblem(t, put(pfActive, `{"status": "inactive"}`), 409, "transition-not-allowed")
	pf.Clear()

	a = put(pfActive, `{"status": "revoked"}`)
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "revoked", a.body["status"])

	writes = pf.Writes()
	a = put(pfRevoked, `{"status": "active"}`)
	requireProblem(t, a, 409, "transition-not-allowed")
	assert.Equal(t, writes, pf.Writes(), "a revoked token is refused without a call")

	a = call(t, tester, "GET", "/credentials/"+pfRevoked+"/status", "")
	require.Equal(t, 200, a.status, a.raw)
	assert.Equal(t, "revoked", a.body["status"])
	requireProblem(t, call(t, tester, "GET", "/credentials/013xrzp12g3nqk8n000000000000000z/status", ""), 404, "credential-not-found")
}

const (
	palEU       = "ce4918bf-a199-4ce2-85a3-d0d296855384"
	palUS       = "5b0f2a8e-3c41-4d7a-9e65-0c2f4a9b7d13"
	palApproval = "0e6d3c2b-1a09-4f8e-a7d6-c5b4a3928170"
	palDeleted  = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
)

// palisadeBlock configures two Palisade organizations: custody-eu with an OAuth client,
// custody-us with a static token. Every UUID matches both, so the gateway probes.
func palisadeBlock() string {
	return fmt.Sprintf(`
		provider custody-eu palisade {
			base_url %[1]s
			client_id {env.PALISADE_CLIENT_ID}
			client_secret {env.PALISADE_CLIENT_SECRET}
			retries 0
		}
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
		}`, pal.URL)
}

func TestPalisade(t *testing.T) {
	tester := load(t, palisadeBlock())
	fresh(pal.Server)
	pal.AddCredential("org-eu", palEU, "Treasury", "WALLETS", "ENABLED", true, false)
	pal.AddCredential("org-us", palUS, "Settlement", "TRANSACTIONS", "ENABLED", true, false)
	pal.AddCredential("org-eu", palApproval, "Payouts", "TRANSACTIONS", "ENABLED", true, true)
	pal.AddCredential("org-eu", palDeleted, "Old", "AUDIT", "DELETED", false, false)
	secrets := []string{"csecret-eu", "ptoken-us", "not-the-secret"}
	for _, id := range []string{palEU, palUS, palApproval, palDeleted} {
		c, _ := pal.Credential(id)
		secrets = append(secrets, c.ClientSecret)
	}
	put := func(id, body string) answer {
		a := call(t, tester, "PUT", "/credentials/"+id+"/status", body)
		for _, s := range secrets {
			require.NotContains(t, a.raw, s, "a secret in an answer")
		}
		return a
	}

	t.Run("probe finds the organization, OAuth token fetched once", func(t *testing.T) {
		a := put(palUS, `{"status": "inactive"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "custody-us", a.body["provider"])
		assert.Equal(t, "inactive", a.body["status"])
		assert.Equal(t, "DISABLED", a.body["provider_status"])
		assert.Equal(t, true, a.body["changed"])
		assert.Equal(t, "Settlement", a.body["credential"].(map[string]any)["name"])

		a = put(palEU, `{"status": "inactive"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "custody-eu", a.body["provider"])
		c, _ := pal.Credential(palEU)
		assert.False(t, c.Active)
		assert.Equal(t, 1, pal.TokenCalls(), "one OAuth token for every call of custody-eu")
	})

	t.Run("a refused token is replaced once", func(t *testing.T) {
		pal.ExpireTokens()
		a := put(palEU, `{"status": "active"}`)
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "active", a.body["status"])
		assert.Equal(t, 2, pal.TokenCalls())
	})

	t.Run("approval: 202 with pending_status", func(t *testing.T) {
		writes := pal.Writes()
		a := put(palApproval, `{"status": "inactive"}`)
		require.Equal(t, 202, a.status, a.raw)
		assert.Equal(t, "active", a.body["status"], "unchanged until approved")
		assert.Equal(t, "inactive", a.body["pending_status"])
		assert.Equal(t, "DISABLE_APPROVAL_PENDING", a.body["provider_status"])
		assert.Equal(t, true, a.body["changed"])

		a = put(palApproval, `{"status": "inactive"}`)
		require.Equal(t, 202, a.status, a.raw)
		assert.Equal(t, false, a.body["changed"], "already awaiting approval: no second request")
		assert.Equal(t, writes+1, pal.Writes())

		require.True(t, pal.Approve(palApproval))
		a = call(t, tester, "GET", "/credentials/"+palApproval+"/status", "")
		require.Equal(t, 200, a.status, a.raw)
		assert.Equal(t, "inactive", a.body["status"])
		assert.NotContains(t, a.body, "pending_status")
	})

	t.Run("a deleted credential cannot change", func(t *testing.T) {
		writes := pal.Writes()
		requireProblem(t, put(palDeleted, `{"status": "active"}`), 409, "transition-not-allowed")
		assert.Equal(t, writes, pal.Writes())
		a := call(t, tester, "GET", "/credentials/"+palDeleted+"/status", "")
		require.Equal(t, 200, a.status)
		assert.Equal(t, "revoked", a.body["status"])
	})

	t.Run("no revoked state", func(t *testing.T) {
		requireProblem(t, put(palEU, `{"status": "revoked"}`), 422, "unsupported-status")
	})

	t.Run("bad client secret", func(t *testing.T) {
		a := put(palEU, `{"status": "inactive", "provider": "custody-badsecret"}`)
		requireProblem(t, a, 502, "provider-auth-failed")
	})

	for _, r := range pal.Requests() {
		assert.NotEqual(t, "DELETE", r.Method, "the gateway never deletes")
	}
}
