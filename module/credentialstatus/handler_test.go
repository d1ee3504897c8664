package credentialstatus_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider"
)

func TestInvalidRequestsCallNoProvider(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, map[string]any{"max_body": 200}, fakeProvider{name: "p", client: fc})
	long := strings.Repeat("a", 257)
	cases := []struct {
		name, method, target, body string
		header                     []string
		status                     int
		suffix                     string
	}{
		{"slash in ID", "PUT", "/credentials/a%2Fb/status", `{"status":"active"}`, nil, 400, "invalid-request"},
		{"two segments", "GET", "/credentials/a/b/status", "", nil, 400, "invalid-request"},
		{"empty ID", "GET", "/credentials//status", "", nil, 400, "invalid-request"},
		{"dot", "GET", "/credentials/./status", "", nil, 400, "invalid-request"},
		{"dot dot escaped", "GET", "/credentials/%2E%2E/status", "", nil, 400, "invalid-request"},
		{"NUL", "GET", "/credentials/12%0034/status", "", nil, 400, "invalid-request"},
		{"space", "GET", "/credentials/12%2034/status", "", nil, 400, "invalid-request"},
		{"non-ASCII", "GET", "/credentials/%C3%A9/status", "", nil, 400, "invalid-request"},
		{"DEL", "GET", "/credentials/%7F/status", "", nil, 400, "invalid-request"},
		{"ID over 256 bytes", "GET", "/credentials/" + long + "/status", "", nil, 400, "invalid-request"},
		{"malformed JSON", "PUT", "/credentials/12345/status", `{"status":`, nil, 400, "invalid-request"},
		{"not an object", "PUT", "/credentials/12345/status", `["active"]`, nil, 400, "invalid-request"},
		{"empty body", "PUT", "/credentials/12345/status", ` `, nil, 400, "invalid-request"},
		{"trailing data", "PUT", "/credentials/12345/status", `{"status":"active"} {}`, nil, 400, "invalid-request"},
		{"unknown field", "PUT", "/credentials/12345/status", `{"status":"active","enabled":true}`, nil, 400, "invalid-request"},
		{"field in another case", "PUT", "/credentials/12345/status", `{"STATUS":"inactive"}`, nil, 400, "invalid-request"},
		{"field given twice", "PUT", "/credentials/12345/status", `{"status":"inactive","status":"active"}`, nil, 400, "invalid-request"},
		{"missing status", "PUT", "/credentials/12345/status", `{"reason":"x"}`, nil, 400, "invalid-request"},
		{"bad status", "PUT", "/credentials/12345/status", `{"status":"disabled"}`, nil, 400, "invalid-request"},
		{"unknown is not a request", "PUT", "/credentials/12345/status", `{"status":"unknown"}`, nil, 400, "invalid-request"},
		{"status of wrong type", "PUT", "/credentials/12345/status", `{"status":1}`, nil, 400, "invalid-request"},
		{"reason too long", "PUT", "/credentials/12345/status", `{"status":"active","reason":"` + strings.Repeat("r", 1025) + `"}`, nil, 413, "body-too-large"},
		{"bad expires_at", "PUT", "/credentials/12345/status", `{"status":"active","expires_at":"tomorrow"}`, nil, 400, "invalid-request"},
		{"empty Idempotency-Key", "PUT", "/credentials/12345/status", `{"status":"active"}`, []string{"Idempotency-Key", ""}, 400, "invalid-request"},
		{"long Idempotency-Key", "PUT", "/credentials/12345/status", `{"status":"active"}`, []string{"Idempotency-Key", strings.Repeat("k", 65)}, 400, "invalid-request"},
		{"control in Idempotency-Key", "PUT", "/credentials/12345/status", `{"status":"active"}`, []string{"Idempotency-Key", "a\tb"}, 400, "invalid-request"},
		{"unknown provider", "PUT", "/credentials/12345/status", `{"status":"active","provider":"nope"}`, nil, 400, "unknown-provider"},
		{"unknown provider on GET", "GET", "/credentials/12345/status?provider=nope", "", nil, 400, "unknown-provider"},
		{"expires_at with inactive", "PUT", "/credentials/12345/status", `{"status":"inactive","expires_at":"2099-01-01T00:00:00Z"}`, nil, 422, "unsupported-status"},
		{"expires_at in the past", "PUT", "/credentials/12345/status", `{"status":"active","expires_at":"2001-01-01T00:00:00Z"}`, nil, 422, "unsupported-status"},
		{"expires_at on a provider without expiry", "PUT", "/credentials/12345/status", `{"status":"active","expires_at":"2099-01-01T00:00:00Z"}`, nil, 422, "unsupported-status"},
		{"revoked on a provider without it", "PUT", "/credentials/12345/status", `{"status":"revoked"}`, nil, 422, "unsupported-status"},
		{"body too large", "PUT", "/credentials/12345/status", `{"status":"active","reason":"` + strings.Repeat("r", 300) + `"}`, nil, 413, "body-too-large"},
		{"wrong method", "DELETE", "/credentials/12345/status", "", nil, 405, "method-not-allowed"},
		{"POST", "POST", "/credentials/12345/status", `{"status":"active"}`, nil, 405, "method-not-allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := g.do(c.method, c.target, c.body, c.header...)
			require.Equal(t, c.status, rec.Code, rec.Body.String())
			p := problem(t, rec)
			assert.Equal(t, "urn:credgate:problem:"+c.suffix, p["type"])
			assert.EqualValues(t, c.status, p["status"])
			assert.NotEmpty(t, p["title"])
			assert.NotEmpty(t, p["detail"])
		})
	}
	assert.Zero(t, fc.reads.Load(), "no provider was read")
	assert.Zero(t, fc.changes.Load(), "no provider was changed")

	rec := g.do("PATCH", "/credentials/12345/status", "")
	assert.Equal(t, "GET, PUT", rec.Header().Get("Allow"))
}

func TestReasonLimitIsItsOwn(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})
	rec := g.do("PUT", "/credentials/12345/status", `{"status":"inactive","reason":"`+strings.Repeat("r", 1025)+`"}`)
	require.Equal(t, 400, rec.Code)
	assert.Contains(t, problem(t, rec)["detail"], "reason")
	rec = g.do("PUT", "/credentials/12345/status", `{"status":"inactive","reason":"`+strings.Repeat("r", 1024)+`"}`)
	assert.Equal(t, 200, rec.Code, rec.Body.String())
}

func TestContentType(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset"} {
		rec := g.do("PUT", "/credentials/12345/status", `{"status":"inactive"}`, "Content-Type", ct)
		require.Equal(t, 415, rec.Code, "Content-Type %q", ct)
		assert.Equal(t, "urn:credgate:problem:unsupported-media-type", problem(t, rec)["type"])
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json"} {
		rec := g.do("PUT", "/credentials/12345/status", `{"status":"inactive"}`, "Content-Type", ct)
		require.Equal(t, 200, rec.Code, "Content-Type %q: %s", ct, rec.Body)
	}
	assert.Equal(t, int32(3), fc.changes.Load())
}

func TestOtherPathsGoToTheNextHandler(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})
	for _, target := range []string{"/", "/credentials", "/credentials/status/", "/credentials/12345", "/credentials/12345/statuses", "/v1/credentials/12345/status"} {
		assert.Equal(t, http.StatusTeapot, g.do("GET", target, "").Code, target)
	}
}

func TestBatchPathAnswersOnlyPost(t *testing.T) {
	g := newGateway(t, nil, fakeProvider{name: "p", client: owns("12345")})
	rec := g.do("GET", "/credentials/status", "")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "POST", rec.Header().Get("Allow"))
}

func TestPutAndGet(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})

	rec := g.do("PUT", "/credentials/12345/status", `{"status":"inactive","reason":"INC-42"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	b := body(t, rec)
	assert.Equal(t, map[string]any{"id": "12345", "provider": "p", "adapter": "fake", "status": "inactive", "changed": true}, b)

	rec = g.do("PUT", "/credentials/12345/status", `{"status":"inactive"}`)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, false, body(t, rec)["changed"], "asking for the status it has answers changed:false")

	rec = g.do("GET", "/credentials/12345/status", "")
	require.Equal(t, 200, rec.Code)
	b = body(t, rec)
	assert.Equal(t, "inactive", b["status"])
	assert.Equal(t, "INACTIVE", b["provider_status"])
	assert.Equal(t, map[string]any{"name": "n-12345"}, b["credential"])
	_, hasChanged := b["changed"]
	assert.False(t, hasChanged, "GET has no changed")

	rec = g.do("GET", "/credentials/12345/status?provider=p", "")
	require.Equal(t, 200, rec.Code)
}

func TestPendingAnswers202(t *testing.T) {
	fc := owns("12345")
	fc.change = func(_ context.Context, c *provider.Change) (*provider.Result, error) {
		return &provider.Result{Credential: provider.Credential{Status: provider.StatusActive, PendingStatus: c.Status, ProviderStatus: "DISABLE_APPROVAL_PENDING"}, Changed: true}, nil
	}
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})
	rec := g.do("PUT", "/credentials/12345/status", `{"status":"inactive"}`)
	require.Equal(t, 202, rec.Code)
	b := body(t, rec)
	assert.Equal(t, "active", b["status"])
	assert.Equal(t, "inactive", b["pending_status"])
	assert.Equal(t, "DISABLE_APPROVAL_PENDING", b["provider_status"])
}

func TestChangeCarriesCallerAndKey(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: map[string]any{}})
	rec := g.doAs("alice@example.com", "PUT", "/credentials/12345/status", `{"status":"inactive"}`, "Idempotency-Key", "key-1")
	require.Equal(t, 200, rec.Code)
	last := fc.last.Load()
	assert.Equal(t, "alice@example.com", last.Operator)
	assert.Equal(t, "key-1", last.IdempotencyKey)
	assert.Equal(t, provider.StatusInactive, last.Status)

	g.do("PUT", "/credentials/12345/status", `{"status":"active"}`)
	assert.Empty(t, fc.last.Load().Operator, "no authentication handler ran: no caller")
}

func TestRevokedWhereTheProviderHasIt(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: map[string]any{"revoke": true}})
	rec := g.do("PUT", "/credentials/12345/status", `{"status":"revoked"}`)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "revoked", body(t, rec)["status"])
}

func TestProviderErrorsMapToProblems(t *testing.T) {
	cases := []struct {
		err        *provider.Error
		status     int
		suffix     string
		retryAfter string
	}{
		{&provider.Error{Kind: provider.KindNotFound, StatusCode: 404}, 404, "credential-not-found", ""},
		{&provider.Error{Kind: provider.KindForbidden, StatusCode: 403}, 403, "provider-forbidden", ""},
		{&provider.Error{Kind: provider.KindForbidden, StatusCode: 403, Foreign: true}, 403, "provider-forbidden", ""},
		{&provider.Error{Kind: provider.KindConflict, StatusCode: 409}, 409, "transition-not-allowed", ""},
		{&provider.Error{Kind: provider.KindUnsupported}, 422, "unsupported-status", ""},
		{&provider.Error{Kind: provider.KindAuth, StatusCode: 401}, 502, "provider-auth-failed", ""},
		{&provider.Error{Kind: provider.KindRateLimited, StatusCode: 429, RetryAfter: 7 * time.Second}, 429, "provider-rate-limited", "7"},
		{&provider.Error{Kind: provider.KindRateLimited, StatusCode: 429}, 429, "provider-rate-limited", ""},
		{&provider.Error{Kind: provider.KindUpstream, StatusCode: 500}, 502, "provider-error", ""},
		{&provider.Error{Kind: provider.KindUpstream}, 502, "provider-error", ""},
		{&provider.Error{Kind: provider.KindRejected, StatusCode: 400}, 502, "provider-error", ""},
		{&provider.Error{Kind: provider.KindTimeout}, 504, "provider-timeout", ""},
	}
	for _, c := range cases {
		t.Run(c.suffix+"/"+c.err.Kind.String(), func(t *testing.T) {
			g := newGateway(t, nil, fakeProvider{name: "p", client: failing(c.err)})
			// Two IDs: a "not found" is remembered for negative_ttl.
			for _, req := range [][3]string{{"GET", "", "12345"}, {"PUT", `{"status":"inactive"}`, "12346"}} {
				rec := g.do(req[0], "/credentials/"+req[2]+"/status", req[1])
				require.Equal(t, c.status, rec.Code, rec.Body.String())
				p := problem(t, rec)
				assert.Equal(t, "urn:credgate:problem:"+c.suffix, p["type"])
				assert.Equal(t, req[2], p["id"])
				assert.Equal(t, "p", p["provider"])
				if c.err.StatusCode != 0 {
					assert.EqualValues(t, c.err.StatusCode, p["upstream_status"])
				} else {
					assert.NotContains(t, p, "upstream_status")
				}
				assert.Equal(t, c.retryAfter, rec.Header().Get("Retry-After"))
			}
		})
	}
}

func TestAdapterErrorsWithoutAKindAreProviderErrors(t *testing.T) {
	g := newGateway(t, nil, fakeProvider{name: "p", client: failing(fmt.Errorf("boom"))})
	rec := g.do("GET", "/credentials/12345/status", "")
	require.Equal(t, 502, rec.Code)
	assert.Equal(t, "urn:credgate:problem:provider-error", problem(t, rec)["type"])
}

func TestTimeoutAnswers504WithinTheTimeout(t *testing.T) {
	block := &fakeClient{read: func(ctx context.Context, _ string) (*provider.Credential, error) {
		<-ctx.Done()
		return nil, ctx.Err() // an adapter that does not classify: the host must
	}}
	block.change = func(ctx context.Context, _ *provider.Change) (*provider.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	g := newGateway(t, nil, fakeProvider{name: "p", client: block, options: map[string]any{"timeout": "100ms"}})
	for _, req := range [][2]string{{"GET", ""}, {"PUT", `{"status":"inactive"}`}} {
		start := time.Now()
		rec := g.do(req[0], "/credentials/12345/status", req[1])
		require.Equal(t, 504, rec.Code)
		assert.Equal(t, "urn:credgate:problem:provider-timeout", problem(t, rec)["type"])
		assert.Less(t, time.Since(start), 5*time.Second, "bounded by the provider's timeout")
	}
}

func TestNoPatternMatchIs404WithoutACall(t *testing.T) {
	fc := owns("12345")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc})
	rec := g.do("PUT", "/credentials/abc/status", `{"status":"inactive"}`)
	require.Equal(t, 404, rec.Code)
	p := problem(t, rec)
	assert.Equal(t, "urn:credgate:problem:credential-not-found", p["type"])
	assert.Equal(t, "abc", p["id"])
	assert.Zero(t, fc.reads.Load()+fc.changes.Load())
}

func TestIDPatternOptionOverridesTheVendorFormat(t *testing.T) {
	fc := owns("abc-1")
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: map[string]any{"id_pattern": "abc-[0-9]"}})
	assert.Equal(t, 200, g.do("GET", "/credentials/abc-1/status", "").Code)
	assert.Equal(t, 404, g.do("GET", "/credentials/12345/status", "").Code, "the vendor default no longer applies")
	assert.Equal(t, 404, g.do("GET", "/credentials/xabc-1/status", "").Code, "the pattern matches the whole ID")
}

func TestProbeFindsTheOneOwnerAndCachesIt(t *testing.T) {
	a, b := owns("111"), owns("222")
	g := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})

	rec := g.do("PUT", "/credentials/222/status", `{"status":"inactive"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "b", body(t, rec)["provider"])
	assert.Equal(t, int32(1), a.reads.Load(), "probed a")
	assert.Equal(t, int32(1), b.reads.Load(), "probed b")
	assert.Zero(t, a.changes.Load(), "never a write to find an owner")
	assert.Equal(t, int32(1), b.changes.Load())

	rec = g.do("PUT", "/credentials/222/status", `{"status":"active"}`)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, int32(2), a.reads.Load()+b.reads.Load(), "the second change used the cache: no probe")

	// GET after a probe answers from the probe's read: no second read of the owner.
	rec = g.do("GET", "/credentials/111/status", "")
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "a", body(t, rec)["provider"])
	assert.Equal(t, int32(2), a.reads.Load())
}

func TestProbeAmbiguous(t *testing.T) {
	a, b := owns("333"), owns("333")
	g := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	rec := g.do("PUT", "/credentials/333/status", `{"status":"inactive"}`)
	require.Equal(t, 409, rec.Code)
	p := problem(t, rec)
	assert.Equal(t, "urn:credgate:problem:ambiguous-credential", p["type"])
	assert.ElementsMatch(t, []any{"a", "b"}, p["providers"])
	assert.Zero(t, a.changes.Load()+b.changes.Load())

	rec = g.do("PUT", "/credentials/333/status", `{"status":"inactive","provider":"b"}`)
	require.Equal(t, 200, rec.Code, "a hint settles it")
	assert.Equal(t, int32(1), b.changes.Load())
}

func TestProbeNoneIsNegativelyCached(t *testing.T) {
	a, b := owns("1"), owns("2")
	g := newGateway(t, map[string]any{"negative_ttl": "150ms"}, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	for i := 0; i < 3; i++ {
		rec := g.do("GET", "/credentials/999/status", "")
		require.Equal(t, 404, rec.Code)
		assert.Equal(t, "urn:credgate:problem:credential-not-found", problem(t, rec)["type"])
	}
	assert.Equal(t, int32(2), a.reads.Load()+b.reads.Load(), "one probe; the next two answered from the negative cache")
	time.Sleep(200 * time.Millisecond)
	g.do("GET", "/credentials/999/status", "")
	assert.Equal(t, int32(4), a.reads.Load()+b.reads.Load(), "after negative_ttl, it asks again")
}

func TestProbeThatCannotAskIsNever404(t *testing.T) {
	a := owns("1")
	b := failing(&provider.Error{Kind: provider.KindUpstream, StatusCode: 500})
	g := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	for i := 0; i < 2; i++ {
		rec := g.do("GET", "/credentials/999/status", "")
		require.Equal(t, 503, rec.Code)
		p := problem(t, rec)
		assert.Equal(t, "urn:credgate:problem:provider-unavailable", p["type"])
		assert.Equal(t, []any{"b"}, p["providers"])
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	}
	assert.Equal(t, int32(2), a.reads.Load(), "no negative cache when a candidate could not be asked")

	// One owner and one failure: go on with the owner, but do not remember it.
	rec := g.do("PUT", "/credentials/1/status", `{"status":"inactive"}`)
	require.Equal(t, 200, rec.Code)
	rec = g.do("PUT", "/credentials/1/status", `{"status":"active"}`)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, int32(4), b.reads.Load(), "each change probed again")
}

func TestForeign403MeansNotThisAccountWhileProbing(t *testing.T) {
	foreign := failing(&provider.Error{Kind: provider.KindForbidden, StatusCode: 403, Foreign: true})
	owner := owns("42")
	g := newGateway(t, nil, fakeProvider{name: "parent", client: foreign}, fakeProvider{name: "other", client: owner})
	rec := g.do("PUT", "/credentials/42/status", `{"status":"inactive"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "other", body(t, rec)["provider"])

	rec = g.do("PUT", "/credentials/42/status", `{"status":"inactive","provider":"parent"}`)
	require.Equal(t, 403, rec.Code, "named, the same 403 is provider-forbidden")
	assert.Equal(t, "urn:credgate:problem:provider-forbidden", problem(t, rec)["type"])
}

func TestStaleCacheIsEvictedAndResolvedOnce(t *testing.T) {
	a, b := owns("77"), owns()
	g := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	require.Equal(t, 200, g.do("GET", "/credentials/77/status", "").Code)

	// The credential moves from a to b behind the gateway's back.
	moved := owns("77")
	a.read, a.change = owns().read, owns().change
	b.read, b.change = moved.read, moved.change

	rec := g.do("PUT", "/credentials/77/status", `{"status":"inactive"}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "b", body(t, rec)["provider"])
	assert.Equal(t, int32(1), a.changes.Load(), "the cached provider was asked once")
	assert.Equal(t, int32(1), b.changes.Load())

	rec = g.do("PUT", "/credentials/77/status", `{"status":"active"}`)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, int32(1), a.changes.Load(), "the cache now says b")
}

func TestSingleCandidateNotFoundNamesTheProvider(t *testing.T) {
	g := newGateway(t, nil, fakeProvider{name: "only", client: owns()})
	rec := g.do("GET", "/credentials/5/status", "")
	require.Equal(t, 404, rec.Code)
	p := problem(t, rec)
	assert.Equal(t, "only", p["provider"])
	assert.EqualValues(t, 404, p["upstream_status"])
}

func TestConcurrentResolutionsShareOneProbe(t *testing.T) {
	release := make(chan struct{})
	slow := func(c *fakeClient) *fakeClient {
		inner := c.read
		c.read = func(ctx context.Context, id string) (*provider.Credential, error) {
			<-release
			return inner(ctx, id)
		}
		return c
	}
	a, b := slow(owns("8")), slow(owns())
	g := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = g.do("GET", "/credentials/8/status", "").Code
		}(i)
	}
	require.Eventually(t, func() bool { return a.reads.Load() == 1 && b.reads.Load() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let the other callers join the probe
	close(release)
	wg.Wait()
	for _, c := range codes {
		assert.Equal(t, 200, c)
	}
	assert.Equal(t, int32(1), b.reads.Load(), "one probe for all")
}

func TestBreakerOpensOnTheNthFailureAndFailsFast(t *testing.T) {
	fc := failing(&provider.Error{Kind: provider.KindUpstream, StatusCode: 503})
	g := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: map[string]any{
		"breaker": map[string]any{"failures": 3, "open_for": "300ms", "half_open_requests": 1},
	}})
	for i := 0; i < 3; i++ {
		assert.Equal(t, 502, g.do("GET", "/credentials/1/status", "").Code)
	}
	assert.Equal(t, int32(3), fc.reads.Load())

	rec := g.do("PUT", "/credentials/1/status", `{"status":"inactive"}`)
	require.Equal(t, 503, rec.Code)
	p := problem(t, rec)
	assert.Equal(t, "urn:credgate:problem:provider-unavailable", p["type"])
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Equal(t, int32(3), fc.reads.Load()+fc.changes.Load(), "no upstream call while open")

	// After open_for, one trial goes through; its success closes the breaker.
	time.Sleep(350 * time.Millisecond)
	good := owns("1")
	fc.read, fc.change = good.read, good.change
	assert.Equal(t, 200, g.do("GET", "/credentials/1/status", "").Code)
	assert.Equal(t, 200, g.do("GET", "/credentials/1/status", "").Code)
}

func TestHealthyAnswersDoNotCountAsFailures(t *testing.T) {
	for _, err := range []*provider.Error{
		{Kind: provider.KindNotFound, StatusCode: 404},
		{Kind: provider.KindForbidden, StatusCode: 403},
		{Kind: provider.KindConflict, StatusCode: 409},
		{Kind: provider.KindUnsupported, StatusCode: 422},
		{Kind: provider.KindRateLimited, StatusCode: 429},
		{Kind: provider.KindAuth, StatusCode: 401},
		{Kind: provider.KindRejected, StatusCode: 400},
		{Kind: provider.KindCanceled},
	} {
		t.Run(err.Kind.String(), func(t *testing.T) {
			fc := failing(err)
			g := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: map[string]any{"breaker": map[string]any{"failures": 2}}})
			for i := 0; i < 5; i++ { // five IDs: a "not found" is remembered for negative_ttl
				assert.NotEqual(t, 503, g.do("GET", fmt.Sprintf("/credentials/%d/status", i+1), "").Code)
			}
			assert.Equal(t, int32(5), fc.reads.Load(), "every call reached the provider")
		})
	}
}

func TestBreakerAndCacheSurviveAReload(t *testing.T) {
	fc := failing(&provider.Error{Kind: provider.KindTimeout})
	opts := map[string]any{"breaker": map[string]any{"failures": 2, "open_for": "1m"}}
	old := newGateway(t, nil, fakeProvider{name: "p", client: fc, options: opts})
	old.do("GET", "/credentials/1/status", "")
	old.do("GET", "/credentials/1/status", "")
	require.Equal(t, 503, old.do("GET", "/credentials/1/status", "").Code)

	// The new config is provisioned before the old one is cleaned up, as Caddy does.
	fresh := owns("1")
	reloaded := newGateway(t, nil, fakeProvider{name: "p", client: fresh, options: opts})
	require.NoError(t, old.h.Cleanup())
	rec := reloaded.do("GET", "/credentials/1/status", "")
	assert.Equal(t, 503, rec.Code, "the open breaker survived the reload")
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	assert.Greater(t, retry, 50, "it remembers when it opened")
	assert.Zero(t, fresh.reads.Load())

	changed := newGateway(t, nil, fakeProvider{name: "p", client: fresh, options: map[string]any{"breaker": map[string]any{"failures": 3, "open_for": "1m"}}})
	assert.Equal(t, 200, changed.do("GET", "/credentials/1/status", "").Code, "changed breaker settings give a fresh breaker")
}

func TestCacheSurvivesAReload(t *testing.T) {
	a, b := owns("5"), owns()
	first := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	require.Equal(t, 200, first.do("GET", "/credentials/5/status", "").Code)
	require.Equal(t, int32(1), b.reads.Load())

	second := newGateway(t, nil, fakeProvider{name: "a", client: a}, fakeProvider{name: "b", client: b})
	require.NoError(t, first.h.Cleanup())
	require.Equal(t, 200, second.do("PUT", "/credentials/5/status", `{"status":"inactive"}`).Code)
	assert.Equal(t, int32(1), b.reads.Load(), "the reloaded config used the cached mapping: no probe")
}
