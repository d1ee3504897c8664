package resolve

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/credgate/credgate/module/provider"
)

// benchResolver is a resolver of providers of the given ID patterns, named p0, p1, ...
func benchResolver(b *testing.B, patterns ...string) *Resolver {
	b.Helper()
	c, err := NewCache(1000)
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]Provider, len(patterns))
	for i, p := range patterns {
		ps[i] = Provider{Name: fmt.Sprintf("p%d", i), Pattern: regexp.MustCompile(`^(?:` + p + `)$`)}
	}
	return New(ps, c, time.Hour, time.Minute)
}

func BenchmarkResolveCacheHit(b *testing.B) {
	r := benchResolver(b, `[0-9]+`, `[a-f0-9-]{36}`)
	r.Remember("12345", 0)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if o, err := r.Resolve(ctx, "12345", "", nil); err != nil || !o.Cached {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveSingleCandidate(b *testing.B) {
	r := benchResolver(b, `[0-9]+`, `[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}`, `cred-[a-f0-9-]{36}`, `[0-7][0-9a-z]{31}`)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if o, err := r.Resolve(ctx, "ce4918bf-a199-4ce2-85a3-d0d296855384", "", nil); err != nil || o.Index != 1 {
			b.Fatal(err)
		}
	}
}

// sleepReader answers after a delay per provider: provider 0 owns every ID, the others know
// none.
type sleepReader []time.Duration

func (s sleepReader) Read(_ context.Context, i int, _ string) (*provider.Credential, error) {
	time.Sleep(s[i])
	if i != 0 {
		return nil, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404}
	}
	return &provider.Credential{Status: provider.StatusActive}, nil
}

// BenchmarkProbeTwoCandidates resolves a new ID each time between two candidates that answer
// in 1 ms and 3 ms: the probe asks both at once, so it takes the slower one's time, not the
// sum. It reports the probe's latency as ms/probe.
func BenchmarkProbeTwoCandidates(b *testing.B) {
	r := benchResolver(b, `[0-9]+`, `[0-9]+`)
	read := sleepReader{time.Millisecond, 3 * time.Millisecond}
	ctx := context.Background()
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if o, err := r.Resolve(ctx, fmt.Sprint(1000000+i), "", read); err != nil || o.Index != 0 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/probe")
}

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
		c, err := NewCache(n)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for j := 0; j < n; j++ {
			c.put(fmt.Sprintf("%08x-a199-4ce2-85a3-d0d296855384", j), 3, time.Hour, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len() != n {
			b.Fatalf("%d entries", c.Len())
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "B/entry")
}
