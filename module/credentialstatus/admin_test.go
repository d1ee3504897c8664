package credentialstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/resolve"
)

// pooledBreaker puts a breaker for provider name into the pool, as a handler's Provision
// does, and takes it out when the test ends; it also releases any forced state of the name,
// which is package-global.
func pooledBreaker(t *testing.T, name, adapter string, s settings) *breaker {
	t.Helper()
	if s.failures == 0 {
		s = settings{baseURL: "https://user:pass@" + name + ".invalid", failures: 2, openFor: time.Minute, halfOpen: 1}
	}
	key := breakerKey(name, adapter, s)
	v, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) { return newBreaker(name, adapter, s, zap.NewNop()), nil })
	require.NoError(t, err)
	require.False(t, loaded, "a fresh breaker")
	t.Cleanup(func() {
		_, _ = pool.Delete(key)
		setForced(name, 0, true)
	})
	return v.(*breaker)
}

// pooledCache puts an ID cache into the pool and takes it out when the test ends.
func pooledCache(t *testing.T, key string, ids ...string) *resolve.Cache {
	t.Helper()
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) { return resolve.NewCache(100) })
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = pool.Delete(key) })
	c := v.(*resolve.Cache)
	r := resolve.New([]resolve.Provider{{Name: "p0", Pattern: regexp.MustCompile(".*")}}, c, time.Hour, time.Hour)
	for _, id := range ids {
		r.Remember(id, 0)
	}
	return c
}

// adminDo serves one admin request, returning the recorder and the handler's error (an
// APIError that Caddy's admin endpoint would write).
func adminDo(t *testing.T, a *adminAPI, method, target, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, target, nil)
	} else {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	rec := httptest.NewRecorder()
	return rec, a.serve(rec, req)
}

// requireAPIError checks that err is a caddy.APIError of the given status.
func requireAPIError(t *testing.T, err error, status int) caddy.APIError {
	t.Helper()
	var apiErr caddy.APIError
	require.True(t, errors.As(err, &apiErr), "want a caddy.APIError, got %v", err)
	require.Equal(t, status, apiErr.HTTPStatus, apiErr.Error())
	return apiErr
}

// listing decodes the answer of GET /credential-status/providers, by name.
func listing(t *testing.T, a *adminAPI) ([]string, map[string]providerStatus) {
	t.Helper()
	rec, err := adminDo(t, a, "GET", "/credential-status/providers", "")
	require.NoError(t, err)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var list []providerStatus
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	names := make([]string, 0, len(list))
	byName := map[string]providerStatus{}
	for _, p := range list {
		names = append(names, p.Name)
		byName[p.Name] = p
	}
	return names, byName
}

func upstreamFailure() error { return &provider.Error{Kind: provider.KindUpstream, StatusCode: 503} }

// through runs one call through the breaker with the given answer, or reports its rejection.
func through(b *breaker, answer error) error {
	done, err := b.allow()
	if err != nil {
		return err
	}
	b.finish(done, answer)
	return nil
}

func TestAdminModuleIsRegistered(t *testing.T) {
	info, err := caddy.GetModule("admin.api.credential_status")
	require.NoError(t, err)
	router, ok := info.New().(caddy.AdminRouter)
	require.True(t, ok, "an admin router")
	routes := router.Routes()
	require.Len(t, routes, 1)
	assert.Equal(t, "/credential-status/", routes[0].Pattern)
}

func TestAdminListsProvidersWithTheirCounts(t *testing.T) {
	pooledBreaker(t, "adm-zeta", "zstack", settings{})
	alpha := pooledBreaker(t, "adm-alpha", "digicert", settings{})
	require.NoError(t, through(alpha, nil))
	require.NoError(t, through(alpha, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404})) // healthy
	require.NoError(t, through(alpha, &provider.Error{Kind: provider.KindRateLimited, StatusCode: 429}))
	before := time.Now().UTC().Truncate(time.Millisecond)
	require.NoError(t, through(alpha, upstreamFailure()))
	require.NoError(t, through(alpha, upstreamFailure())) // the 2nd consecutive failure opens it
	err := through(alpha, nil)
	require.Equal(t, provider.KindUnavailable, provider.KindOf(err), "open: fails fast")

	names, byName := listing(t, new(adminAPI))
	ours := []string{}
	for _, n := range names {
		if strings.HasPrefix(n, "adm-") {
			ours = append(ours, n)
		}
	}
	assert.Equal(t, []string{"adm-alpha", "adm-zeta"}, ours, "sorted by name")

	a := byName["adm-alpha"]
	assert.Equal(t, "digicert", a.Adapter)
	assert.Equal(t, "open", a.State)
	assert.False(t, a.Forced)
	assert.Equal(t, uint64(5), a.Counts.Requests)
	assert.Equal(t, uint64(2), a.Counts.Successes, "a 404 is a healthy answer; a 429 counts neither way")
	assert.Equal(t, uint64(2), a.Counts.Failures)
	assert.Equal(t, uint64(1), a.Counts.Rejected)
	assert.Equal(t, uint64(2), a.Counts.ConsecutiveFailures, "still 2 once open, where gobreaker starts again at 0")
	lastFailure, err := time.Parse(time.RFC3339Nano, a.LastFailure)
	require.NoError(t, err, "last_failure is RFC 3339")
	assert.False(t, lastFailure.Before(before))
	_, err = time.Parse(time.RFC3339Nano, a.OpenedAt)
	assert.NoError(t, err, "opened_at is RFC 3339 while open")

	z := byName["adm-zeta"]
	assert.Equal(t, "zstack", z.Adapter)
	assert.Equal(t, "closed", z.State)
	assert.Equal(t, breakerCounts{}, z.Counts)

	rec, err := adminDo(t, new(adminAPI), "GET", "/credential-status/providers", "")
	require.NoError(t, err)
	raw := rec.Body.String()
	assert.NotContains(t, raw, "pass", "no base_url userinfo, no secret")
	assert.NotContains(t, raw, `"last_failure"`+`:""`)
	var objs []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &objs))
	for _, o := range objs {
		if o["name"] == "adm-zeta" {
			assert.NotContains(t, o, "last_failure", "omitted when it never failed")
			assert.NotContains(t, o, "opened_at", "omitted unless open")
			assert.Equal(t, false, o["forced"])
		}
	}

	rec, err = adminDo(t, new(adminAPI), "GET", "/credential-status/providers/adm-zeta", "")
	require.NoError(t, err)
	var one providerStatus
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &one))
	assert.Equal(t, z, one, "one provider's own listing")
}

func TestAdminListIsAnEmptyArrayWithoutProviders(t *testing.T) {
	rec, err := adminDo(t, new(adminAPI), "GET", "/credential-status/providers", "")
	require.NoError(t, err)
	assert.Equal(t, "[]\n", rec.Body.String())
}

func TestAdminForcedOpenRejectsWithoutAskingGobreaker(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a := &adminAPI{logger: zap.New(core)}
	b := pooledBreaker(t, "adm-hold", "digicert", settings{failures: 2, openFor: 45 * time.Second, halfOpen: 1})

	rec, err := adminDo(t, a, "PUT", "/credential-status/providers/adm-hold/breaker", `{"state": "open"}`)
	require.NoError(t, err)
	require.Equal(t, 200, rec.Code)
	var st providerStatus
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, "open", st.State)
	assert.True(t, st.Forced)
	assert.Equal(t, "closed", st.AutomaticState)
	assert.NotEmpty(t, st.OpenedAt)
	assert.NotEmpty(t, st.ForcedAt)

	err = through(b, nil)
	var pe *provider.Error
	require.True(t, errors.As(err, &pe), "rejected: %v", err)
	assert.Equal(t, provider.KindUnavailable, pe.Kind)
	assert.Equal(t, heldOpenDetail, pe.Detail)
	assert.Equal(t, 45*time.Second, pe.RetryAfter, "Retry-After is the provider's open_for")

	state, forced := b.effectiveState()
	assert.Equal(t, gobreaker.StateOpen, state)
	assert.True(t, forced)
	assert.Equal(t, gobreaker.StateClosed, b.cb.State(), "gobreaker itself was left alone")
	assert.Equal(t, gobreaker.Counts{}, b.cb.Counts(), "gobreaker saw no request")
	assert.Equal(t, uint64(1), b.rejected.Load())
	assert.Zero(t, b.requests.Load())

	entries := logs.FilterMessage("circuit breaker forced by an operator").All()
	require.Len(t, entries, 1)
	assert.Equal(t, zapcore.WarnLevel, entries[0].Level)
	fields := entries[0].ContextMap()
	assert.Equal(t, "adm-hold", fields["provider"])
	assert.Equal(t, "open", fields["state"])
	assert.Equal(t, "auto", fields["previous"])

	// Released: gobreaker decides again, from where it was.
	rec, err = adminDo(t, a, "DELETE", "/credential-status/providers/adm-hold/breaker", "")
	require.NoError(t, err)
	st = providerStatus{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, "closed", st.State)
	assert.False(t, st.Forced)
	assert.Empty(t, st.AutomaticState)
	require.NoError(t, through(b, nil))
	released := logs.FilterMessage("circuit breaker released by an operator").All()
	require.Len(t, released, 1)
	assert.Equal(t, "open", released[0].ContextMap()["previous"])
}

func TestAdminForcedClosedOverridesATrippedBreaker(t *testing.T) {
	a := &adminAPI{logger: zap.NewNop()}
	b := pooledBreaker(t, "adm-tripped", "zstack", settings{})
	require.NoError(t, through(b, upstreamFailure()))
	require.NoError(t, through(b, upstreamFailure()))
	require.Error(t, through(b, nil), "tripped")
	gbCounts := b.cb.Counts()

	_, err := adminDo(t, a, "PUT", "/credential-status/providers/adm-tripped/breaker", `{"state":"closed"}`)
	require.NoError(t, err)
	require.NoError(t, through(b, nil), "held closed: let through")
	require.NoError(t, through(b, upstreamFailure()), "held closed: a failure does not trip it")
	require.NoError(t, through(b, upstreamFailure()))
	require.NoError(t, through(b, nil))
	state, forced := b.effectiveState()
	assert.Equal(t, gobreaker.StateClosed, state)
	assert.True(t, forced)
	assert.Equal(t, gobreaker.StateOpen, b.cb.State(), "gobreaker stays open underneath")
	assert.Equal(t, gbCounts, b.cb.Counts(), "calls past gobreaker are not in its counts")
	assert.Equal(t, uint64(6), b.requests.Load())
	assert.Equal(t, uint64(2), b.successes.Load())
	assert.Equal(t, uint64(4), b.failures.Load())

	_, byName := listing(t, a)
	st := byName["adm-tripped"]
	assert.Equal(t, "closed", st.State)
	assert.True(t, st.Forced)
	assert.Equal(t, "open", st.AutomaticState)
	assert.Empty(t, st.OpenedAt, "not open as it acts")

	// PUT "auto" releases it as DELETE does: gobreaker is open still.
	rec, err := adminDo(t, a, "PUT", "/credential-status/providers/adm-tripped/breaker", `{"state":"auto"}`)
	require.NoError(t, err)
	st = providerStatus{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, "open", st.State)
	assert.False(t, st.Forced)
	err = through(b, nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "operator")
}

func TestAdminForcedStateOutlivesTheBreaker(t *testing.T) {
	a := &adminAPI{logger: zap.NewNop()}
	old := pooledBreaker(t, "adm-reload", "digicert", settings{baseURL: "https://a.invalid", failures: 2, openFor: time.Minute, halfOpen: 1})
	_, err := adminDo(t, a, "PUT", "/credential-status/providers/adm-reload/breaker", `{"state":"open"}`)
	require.NoError(t, err)

	// A reload that changed the provider's breaker settings: a new breaker, the old one gone.
	fresh := pooledBreaker(t, "adm-reload", "digicert", settings{baseURL: "https://a.invalid", failures: 3, openFor: time.Minute, halfOpen: 1})
	_, _ = pool.Delete(breakerKey("adm-reload", "digicert", settings{baseURL: "https://a.invalid", failures: 2, openFor: time.Minute, halfOpen: 1}))
	require.NotSame(t, old, fresh)
	state, forced := fresh.effectiveState()
	assert.Equal(t, gobreaker.StateOpen, state)
	assert.True(t, forced)
	assert.Equal(t, provider.KindUnavailable, provider.KindOf(through(fresh, nil)))
}

func TestAdminMergesBreakersOfOneName(t *testing.T) {
	oldB := pooledBreaker(t, "adm-twice", "digicert", settings{baseURL: "https://a.invalid", failures: 1, openFor: time.Minute, halfOpen: 1})
	newB := pooledBreaker(t, "adm-twice", "zstack", settings{baseURL: "https://b.invalid", failures: 5, openFor: time.Minute, halfOpen: 1})
	require.NoError(t, through(oldB, upstreamFailure())) // opens the old one
	require.NoError(t, through(newB, nil))
	require.NoError(t, through(newB, upstreamFailure()))

	names, byName := listing(t, new(adminAPI))
	n := 0
	for _, name := range names {
		if name == "adm-twice" {
			n++
		}
	}
	assert.Equal(t, 1, n, "listed once")
	st := byName["adm-twice"]
	assert.Equal(t, "open", st.State, "the worse state, as the breaker_state metric")
	assert.Equal(t, "zstack", st.Adapter, "the newer breaker's")
	assert.Equal(t, breakerCounts{Requests: 3, Successes: 1, Failures: 2, ConsecutiveFailures: 1}, st.Counts)
}

func TestAdminBreakerErrors(t *testing.T) {
	a := &adminAPI{logger: zap.NewNop()}
	b := pooledBreaker(t, "adm-errs", "digicert", settings{})
	for name, c := range map[string]struct {
		method, path, body string
		status             int
		allow              string
	}{
		"unknown provider":   {"PUT", "/credential-status/providers/nobody/breaker", `{"state":"open"}`, 404, ""},
		"unknown provider 2": {"GET", "/credential-status/providers/nobody", "", 404, ""},
		"malformed body":     {"PUT", "/credential-status/providers/adm-errs/breaker", `{"state":`, 400, ""},
		"empty body":         {"PUT", "/credential-status/providers/adm-errs/breaker", "", 400, ""},
		"bad state":          {"PUT", "/credential-status/providers/adm-errs/breaker", `{"state":"half-open"}`, 400, ""},
		"missing state":      {"PUT", "/credential-status/providers/adm-errs/breaker", `{}`, 400, ""},
		"unknown field":      {"PUT", "/credential-status/providers/adm-errs/breaker", `{"state":"open","for":"1h"}`, 400, ""},
		"trailing data":      {"PUT", "/credential-status/providers/adm-errs/breaker", `{"state":"open"} {"state":"closed"}`, 400, ""},
		"huge body":          {"PUT", "/credential-status/providers/adm-errs/breaker", `{"state":"open"` + strings.Repeat(" ", maxBreakerBody) + `}`, 400, ""},
		"POST breaker":       {"POST", "/credential-status/providers/adm-errs/breaker", `{"state":"open"}`, 405, "PUT, DELETE"},
		"GET breaker":        {"GET", "/credential-status/providers/adm-errs/breaker", "", 405, "PUT, DELETE"},
		"POST providers":     {"POST", "/credential-status/providers", "", 405, "GET"},
		"DELETE provider":    {"DELETE", "/credential-status/providers/adm-errs", "", 405, "GET"},
		"GET cache":          {"GET", "/credential-status/cache", "", 405, "DELETE"},
		"unknown path":       {"GET", "/credential-status/breakers", "", 404, ""},
		"root":               {"GET", "/credential-status/", "", 404, ""},
		"too deep":           {"PUT", "/credential-status/providers/adm-errs/breaker/x", `{"state":"open"}`, 404, ""},
	} {
		t.Run(name, func(t *testing.T) {
			rec, err := adminDo(t, a, c.method, c.path, c.body)
			apiErr := requireAPIError(t, err, c.status)
			assert.NotEmpty(t, apiErr.Error())
			assert.Equal(t, c.allow, rec.Header().Get("Allow"))
		})
	}
	state, forced := b.effectiveState()
	assert.Equal(t, gobreaker.StateClosed, state)
	assert.False(t, forced, "no failed request forced anything")
	_, ok := forces.Load("nobody")
	assert.False(t, ok, "an unknown provider gets no forced state")
}

func TestAdminPurgesTheCache(t *testing.T) {
	a := new(adminAPI)
	c1 := pooledCache(t, "cache|adm-1", "1", "2", "3")
	c2 := pooledCache(t, "cache|adm-2", "2", "4")

	removed := func(rec *httptest.ResponseRecorder) int {
		t.Helper()
		require.Equal(t, 200, rec.Code)
		var v struct{ Removed int }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
		return v.Removed
	}
	rec, err := adminDo(t, a, "DELETE", "/credential-status/cache?id=2", "")
	require.NoError(t, err)
	assert.Equal(t, 2, removed(rec), "the ID, from every cache")
	assert.False(t, c1.Contains("2"))
	assert.True(t, c1.Contains("1"), "the other IDs stay")
	assert.Equal(t, 1, c2.Len())

	rec, err = adminDo(t, a, "DELETE", "/credential-status/cache?id=nobody", "")
	require.NoError(t, err)
	assert.Equal(t, 0, removed(rec))

	for name, target := range map[string]string{
		"empty id":      "/credential-status/cache?id=",
		"two ids":       "/credential-status/cache?id=1&id=3",
		"long id":       "/credential-status/cache?id=" + strings.Repeat("7", maxIDLen+1),
		"misspelt":      "/credential-status/cache?ids=1",
		"unknown param": "/credential-status/cache?all=1",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := adminDo(t, a, "DELETE", target, "")
			requireAPIError(t, err, 400)
			assert.Equal(t, 2, c1.Len(), "nothing removed")
		})
	}

	rec, err = adminDo(t, a, "DELETE", "/credential-status/cache", "")
	require.NoError(t, err)
	assert.Equal(t, 3, removed(rec))
	assert.Zero(t, c1.Len())
	assert.Zero(t, c2.Len())
}

func TestAdminProvisionTakesALogger(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := new(adminAPI)
	require.NoError(t, a.Provision(ctx))
	assert.NotNil(t, a.logger)
	assert.NotNil(t, new(adminAPI).log(), "a logger without Provision too")
}

// BenchmarkBreakerAllow measures allow and done on a closed breaker, automatic and held
// closed: the forced state is one atomic load on the hot path.
func BenchmarkBreakerAllow(b *testing.B) {
	for _, held := range []bool{false, true} {
		b.Run(fmt.Sprintf("held=%v", held), func(b *testing.B) {
			br := newBreaker("adm-bench", "fake", settings{failures: 5, openFor: time.Second, halfOpen: 1}, zap.NewNop())
			if held {
				setForced("adm-bench", gobreaker.StateClosed, false)
				defer setForced("adm-bench", 0, true)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				done, err := br.allow()
				if err != nil {
					b.Fatal(err)
				}
				br.finish(done, nil)
			}
		})
	}
}
