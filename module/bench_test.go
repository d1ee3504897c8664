package module

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/credgate/credgate/module/provider"
)

// The hot path's parts, measured alone. BenchmarkCachedRequest (hotpath_bench_test.go)
// measures them together.

func BenchmarkRequestDecode(b *testing.B) {
	body := []byte(`{"status":"inactive","reason":"leaked in INC-42"}`)
	req := httptest.NewRequest(http.MethodPut, "/credentials/12345/status", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "INC-42-12345")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if p := checkJSONContentType(req); p != nil {
			b.Fatal(p)
		}
		if _, p := parseChange(req, body); p != nil {
			b.Fatal(p)
		}
	}
}

func BenchmarkCredentialID(b *testing.B) {
	req := httptest.NewRequest(http.MethodPut, "/credentials/ce4918bf-a199-4ce2-85a3-d0d296855384/status", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ours, err := credentialID(req.URL); !ours || err != nil {
			b.Fatal(ours, err)
		}
	}
}

// benchHandler is a Handler with backends of the given ID patterns and no adapter behind
// them: enough for resolution.
func benchHandler(b *testing.B, patterns ...string) *Handler {
	b.Helper()
	c, err := newIDCache(1000)
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{cache: c, backends: map[string]*backend{}, CacheTTL: caddy.Duration(time.Hour)}
	for i, p := range patterns {
		name := fmt.Sprintf("p%d", i)
		bk := &backend{name: name, adapter: "fake", index: i, metrics: newBackendMetrics(name)}
		bk.s.pattern = mustPattern(b, p)
		bk.s.timeout = time.Second
		h.backends[bk.name] = bk
		h.ordered = append(h.ordered, bk)
	}
	return h
}

func mustPattern(b *testing.B, p string) *regexp.Regexp {
	b.Helper()
	s, err := (&ProviderOptions{IDPattern: p}).resolve(Vendor{BaseURL: "https://x"})
	if err != nil {
		b.Fatal(err)
	}
	return s.pattern
}

func BenchmarkResolveCacheHit(b *testing.B) {
	h := benchHandler(b, `[0-9]+`, `[a-f0-9-]{36}`)
	h.cache.put("12345", 0, time.Hour, time.Now())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if res, p := h.resolve(ctx, "12345", true); p != nil || !res.cached {
			b.Fatal(p)
		}
	}
}

func BenchmarkResolveSingleCandidate(b *testing.B) {
	h := benchHandler(b, `[0-9]+`, `[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}`, `cred-[a-f0-9-]{36}`, `[0-7][0-9a-z]{31}`)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if res, p := h.resolve(ctx, "ce4918bf-a199-4ce2-85a3-d0d296855384", false); p != nil || res.b.name != "p1" {
			b.Fatal(p)
		}
	}
}

// sleepClient owns every ID after a delay, or knows none.
type sleepClient struct {
	delay time.Duration
	owns  bool
}

func (c sleepClient) Read(ctx context.Context, id string) (*provider.Credential, error) {
	time.Sleep(c.delay)
	if !c.owns {
		return nil, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404}
	}
	return &provider.Credential{Status: provider.StatusActive}, nil
}

func (c sleepClient) Change(context.Context, *provider.Change) (*provider.Result, error) {
	return nil, nil
}

// BenchmarkProbeTwoCandidates resolves a new ID each time between two candidates that answer
// in 1 ms and 3 ms: the probe asks both at once, so it takes the slower one's time, not the
// sum. It reports the probe's latency as ms/probe.
func BenchmarkProbeTwoCandidates(b *testing.B) {
	h := benchHandler(b, `[0-9]+`, `[0-9]+`)
	s := settings{timeout: time.Second, failures: 5, openFor: time.Second, halfOpen: 1}
	h.ordered[0].client, h.ordered[0].breaker = sleepClient{delay: time.Millisecond, owns: true}, newBreaker("p0", "fake", s, zap.NewNop())
	h.ordered[1].client, h.ordered[1].breaker = sleepClient{delay: 3 * time.Millisecond}, newBreaker("p1", "fake", s, zap.NewNop())
	ctx := context.Background()
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if res, p := h.resolve(ctx, fmt.Sprint(1000000+i), false); p != nil || res.b.name != "p0" {
			b.Fatal(p)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/probe")
}

func BenchmarkResponseEncode(b *testing.B) {
	changed := false
	body := &statusBody{
		ID: "12345", Provider: "digicert-parent", Adapter: "digicert", Status: provider.StatusActive,
		Changed: &changed, ProviderStatus: "active",
		// As DigiCert's adapter passes it on: its members copied, not decoded.
		Credential: json.RawMessage(`{"id":12345,"name":"build-server","account_id":1001,"created_at":"2024-05-01T09:30:00Z","last_used_date":"2026-11-20T17:02:11Z","api_key_last4":"4345"}`),
	}
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		writeJSON(w, http.StatusOK, body)
	}
}

type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchmarkCacheEntryMemory fills an ID cache with 1,000,000 UUID-sized IDs, as a cache of
// Palisade credentials would be, and reports the heap it takes per entry: the entry, its map
// slot and the ID's own bytes, which the cache keeps alive.
func BenchmarkCacheEntryMemory(b *testing.B) {
	const n = 1_000_000
	var perEntry float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := newIDCache(n)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for j := 0; j < n; j++ {
			c.put(fmt.Sprintf("%08x-a199-4ce2-85a3-d0d296855384", j), 3, time.Hour, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.len() != n {
			b.Fatalf("%d entries", c.len())
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "B/entry")
}
