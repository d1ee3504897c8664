package credentialstatus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	_ "github.com/credgate/credgate/adapters/digicert"
	credentialstatus "github.com/credgate/credgate/module/credentialstatus"
	"github.com/credgate/credgate/module/sharedstate/redistest"
)

// memTransport answers every call in memory, without allocating, so that the benchmark
// counts what the gateway allocates: GET with a DigiCert API key, PUT with 204.
type memTransport struct {
	get     []byte
	rd      bytes.Reader
	body    io.ReadCloser
	getResp http.Response
	putResp http.Response
}

func newMemTransport(get []byte) *memTransport {
	m := &memTransport{get: get}
	m.body = io.NopCloser(&m.rd)
	m.getResp = http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: int64(len(get))}
	m.putResp = http.Response{StatusCode: 204, Header: http.Header{}, Body: http.NoBody}
	return m
}

func (m *memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if r.Method == http.MethodGet {
		m.rd.Reset(m.get)
		m.getResp.Body, m.getResp.Request = m.body, r
		return &m.getResp, nil
	}
	m.putResp.Request = r
	return &m.putResp, nil
}

// discard is a ResponseWriter that keeps nothing but its header map.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

func provisionBench(b *testing.B, cfg string) *credentialstatus.Handler {
	b.Helper()
	h := new(credentialstatus.Handler)
	if err := json.Unmarshal([]byte(cfg), h); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	// The audit trail is on, as in a real deployment (INFO), and encoded as Caddy's JSON
	// log encoder would, into io.Discard.
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	credentialstatus.SetAuditLogger(h, zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel)))
	credentialstatus.SetTransport(h, "dc", newMemTransport([]byte(`{"id":12345,"name":"build-server","account_id":1001,"status":"active","created_at":"2024-05-01T09:30:00Z","last_used_date":"2026-11-20T17:02:11Z","api_key_last4":"4345"}`)))
	return h
}

// BenchmarkCachedRequest is a PUT whose owner is cached, through the whole handler, with the
// audit trail on and an answer in memory. Its policy lets everyone do everything (a handler
// without one logs a warning, which would land in this output).
func BenchmarkCachedRequest(b *testing.B) {
	benchCachedRequest(b, `{"policy": {"allow": [{"subject": "*", "actions": ["*"]}]}, "providers": {"dc": {"adapter": "digicert", "api_key": "k"}}}`)
}

// BenchmarkCachedRequestSharedState is BenchmarkCachedRequest with `shared_state redis` on a
// real redis-server on this machine (started on a free port, loopback): the provider's
// breaker is the fleet's, so each request reads its state from Redis (one MGET, a network
// round trip) before the call. The difference from BenchmarkCachedRequest is the cost of
// shared state on a cached PUT without an Idempotency-Key. It checks afterwards that Redis
// received at least one MGET per request, so that it measures the shared path and not the
// local fallback. Skipped when redis-server is not installed.
func BenchmarkCachedRequestSharedState(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("redis-server is not installed, so shared state cannot be measured: apt-get install -y redis-server (Debian's package; `make test` installs it)")
	}
	srv := redistest.Start(b)
	cli := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = cli.Close() })
	before := redisReads(b, cli)
	n := benchCachedRequest(b, `{"policy": {"allow": [{"subject": "*", "actions": ["*"]}]},
		"shared_state": {"redis": {"addresses": ["`+srv.Addr+`"], "key_prefix": "bench"}},
		"idempotency_storage": "shared_state",
		"providers": {"dc": {"adapter": "digicert", "api_key": "k"}}}`)
	if reads := redisReads(b, cli) - before; reads < int64(n) {
		b.Fatalf("Redis received %d MGETs for %d requests: the shared breaker was not asked (Redis down?)", reads, n)
	}
}

// redisReads is how many MGET commands (the shared breaker's reads) the Redis server has run
// (INFO commandstats).
func redisReads(b *testing.B, cli *redis.Client) int64 {
	b.Helper()
	info, err := cli.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_mget:calls=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		return n
	}
	return 0 // no MGET yet
}

// BenchmarkCachedRequestWithPolicy is BenchmarkCachedRequest under a policy that lets the
// caller (from a header) change credentials at the provider by name only, so that both checks
// run in full: the candidates' before resolution, and the owner's.
func BenchmarkCachedRequestWithPolicy(b *testing.B) {
	benchCachedRequest(b, `{
		"caller": "{http.request.header.X-Caller}",
		"caller_groups": "{http.request.header.X-Groups}",
		"policy": {"allow": [
			{"subject": "analyst", "actions": ["read"]},
			{"subject": "group:sec-admin", "actions": ["*"], "providers": ["other"]},
			{"subject": "bot", "actions": ["activate", "deactivate"], "providers": ["dc"]}
		]},
		"providers": {
			"dc": {"adapter": "digicert", "api_key": "k"},
			"other": {"adapter": "digicert", "api_key": "k", "id_pattern": "x[0-9]+"}
		}}`)
}

// benchCachedRequest runs the benchmark and returns how many requests it served (b.N and
// the one that caches the ID).
func benchCachedRequest(b *testing.B, cfg string) int {
	h := provisionBench(b, cfg)
	body := `{"status":"active"}`
	rd := strings.NewReader(body)
	req, _ := http.NewRequest("PUT", "http://gw/credentials/12345/status", rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Caller", "bot")
	req.Header.Set("X-Groups", "ops, oncall")
	req = req.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := &discard{h: http.Header{}}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	serve := func() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		for k := range w.h {
			delete(w.h, k)
		}
		if err := h.ServeHTTP(w, req, next); err != nil || w.code != 200 {
			b.Fatalf("status %d, err %v", w.code, err)
		}
	}
	serve() // resolves and caches the ID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serve()
	}
	b.StopTimer()
	return b.N + 1
}
