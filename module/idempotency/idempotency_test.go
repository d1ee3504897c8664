package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage" // the file_system storage module
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClock is a settable clock for a store's expiries.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testTTL   = time.Hour
	testLease = time.Minute
)

var provisionMu sync.Mutex

// caddyStorageContext returns a Caddy context whose configured storage is a file_system
// storage in root, as an instance of a cluster that shares root would have. Its context ends
// with the test; Caddy's own cancel is unexported, and cancels nothing the test needs.
func caddyStorageContext(t *testing.T, root string) caddy.Context {
	t.Helper()
	raw, err := json.Marshal(map[string]string{"module": "file_system", "root": root})
	require.NoError(t, err)
	provisionMu.Lock() // it sets globals of Caddy and certmagic
	ctx, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: raw})
	provisionMu.Unlock()
	require.NoError(t, err)
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ctx.Context = c // keeps the config, and so its storage
	return ctx
}

// newCaddyStore provisions a caddy store on ctx, as the handler does, on a clock.
func newCaddyStore(t *testing.T, ctx caddy.Context, clock *testClock) *Store {
	t.Helper()
	l := NewStorageStore(ctx.Storage(), Config{TTL: testTTL, Lease: testLease}, nil)
	l.now = clock.now
	return l
}

func newMemStore(t *testing.T, clock *testClock) *Store {
	t.Helper()
	m, err := NewMemoryBackend(1000, DefaultMaxMemory)
	require.NoError(t, err)
	return &Store{backend: m, ttl: testTTL, lease: testLease, now: clock.now}
}

// waitFileLocksReleased waits until certmagic's file storage has stopped the goroutines that
// keep its lock files fresh: each lives up to 5 s after its lock was released, and the
// package's goleak check would otherwise report them when these are the last tests to run.
func waitFileLocksReleased(t *testing.T) {
	t.Cleanup(func() {
		buf := make([]byte, 1<<20)
		for i := 0; i < 200; i++ {
			n := runtime.Stack(buf, true)
			if !strings.Contains(string(buf[:n]), "certmagic.keepLockfileFresh") {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Log("certmagic's lock file goroutines still run")
	})
}

// storeKinds makes a fresh store of each kind, on clock.
var storeKinds = []struct {
	name string
	make func(t *testing.T, clock *testClock) *Store
}{
	{"memory", newMemStore},
	{"caddy", func(t *testing.T, clock *testClock) *Store {
		return newCaddyStore(t, caddyStorageContext(t, t.TempDir()), clock)
	}},
}

var (
	answerOK = &Answer{
		Status: 200,
		Header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:   []byte(`{"id":"12345","provider":"digicert-parent","status":"inactive","changed":true}`),
	}
	answerNotFound = &Answer{
		Status: 404,
		Header: map[string]string{"Content-Type": "application/problem+json"},
		Body:   []byte(`{"type":"urn:credgate:problem:credential-not-found","status":404}`),
	}
)

func mustBegin(t *testing.T, s *Store, caller, key, fp string, want Outcome) Reservation {
	t.Helper()
	b, err := s.Begin(context.Background(), caller, key, fp)
	require.NoError(t, err)
	require.Equal(t, want, b.Outcome, "begin(%q, %q, %q)", caller, key, fp)
	return b
}

// TestIdemStore runs the draft's rules through both stores.
func TestIdemStore(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	bg := context.Background()
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("replay after finish", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Finish(bg, b, answerOK))
				r := mustBegin(t, s, "alice", "k1", "fp1", Replay)
				assert.Equal(t, answerOK, r.Answer)
				// A replay holds no reservation: finishing or releasing it changes nothing.
				require.NoError(t, s.Release(bg, r))
				require.NoError(t, s.Finish(bg, r, answerNotFound))
				r = mustBegin(t, s, "alice", "k1", "fp1", Replay)
				assert.Equal(t, answerOK, r.Answer)
			})
			t.Run("final 4xx kept", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Finish(bg, b, answerNotFound))
				r := mustBegin(t, s, "alice", "k1", "fp1", Replay)
				assert.Equal(t, answerNotFound, r.Answer)
			})
			t.Run("other fingerprint is a mismatch", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				mustBegin(t, s, "alice", "k1", "fp2", Mismatch) // while in flight
				require.NoError(t, s.Finish(bg, b, answerOK))
				m := mustBegin(t, s, "alice", "k1", "fp2", Mismatch) // once finished
				assert.Nil(t, m.Answer)
			})
			t.Run("in flight", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				f := mustBegin(t, s, "alice", "k1", "fp1", InFlight)
				// The refused request's release does not free the running one's key.
				require.NoError(t, s.Release(bg, f))
				mustBegin(t, s, "alice", "k1", "fp1", InFlight)
				require.NoError(t, s.Finish(bg, b, answerOK))
				mustBegin(t, s, "alice", "k1", "fp1", Replay)
			})
			t.Run("release lets the next one run", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Release(bg, b))
				b2 := mustBegin(t, s, "alice", "k1", "fp2", Run) // the key is free: any body
				require.NoError(t, s.Release(bg, b))             // the first release again: not its key any more
				mustBegin(t, s, "alice", "k1", "fp2", InFlight)
				require.NoError(t, s.Release(bg, b2))
			})
			t.Run("transient answers release", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				for _, status := range []int{500, 502, 503, 504, 429, 409, 408, 499} {
					b := mustBegin(t, s, "alice", "k1", "fp1", Run)
					require.NoError(t, s.Finish(bg, b, &Answer{Status: status, Body: []byte("{}")}))
				}
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Finish(bg, b, nil)) // no answer to keep
				mustBegin(t, s, "alice", "k1", "fp1", Run)
			})
			t.Run("answer expires", func(t *testing.T) {
				clock := newTestClock()
				s := kind.make(t, clock)
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Finish(bg, b, answerOK))
				clock.advance(testTTL - time.Second)
				mustBegin(t, s, "alice", "k1", "fp1", Replay)
				clock.advance(time.Second)
				mustBegin(t, s, "alice", "k1", "fp2", Run) // expired: as if never used
			})
			t.Run("lease ends", func(t *testing.T) {
				clock := newTestClock()
				s := kind.make(t, clock)
				stale := mustBegin(t, s, "alice", "k1", "fp1", Run)
				clock.advance(testLease - time.Second)
				mustBegin(t, s, "alice", "k1", "fp1", InFlight)
				clock.advance(time.Second)
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				// The first request ends at last: it neither overwrites nor frees the key.
				require.ErrorIs(t, s.Finish(bg, stale, answerNotFound), errLost)
				require.NoError(t, s.Release(bg, stale))
				mustBegin(t, s, "alice", "k1", "fp1", InFlight)
				require.NoError(t, s.Finish(bg, b, answerOK))
				r := mustBegin(t, s, "alice", "k1", "fp1", Replay)
				assert.Equal(t, answerOK, r.Answer)
			})
			t.Run("keys are the caller's", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", Run)
				require.NoError(t, s.Finish(bg, b, answerOK))
				mustBegin(t, s, "bob", "k1", "fp1", Run)
				mustBegin(t, s, "", "k1", "fp1", Run)
				mustBegin(t, s, "alice", "k2", "fp1", Run)
				mustBegin(t, s, "alice", "k1", "fp1", Replay)
			})
			t.Run("concurrent begins: one runs", func(t *testing.T) {
				s := kind.make(t, newTestClock())
				const n = 50
				outcomes := make([]Outcome, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						<-start
						b, err := s.Begin(bg, "alice", "k1", "fp1")
						assert.NoError(t, err)
						outcomes[i] = b.Outcome
					}(i)
				}
				close(start)
				wg.Wait()
				count := map[Outcome]int{}
				for _, o := range outcomes {
					count[o]++
				}
				assert.Equal(t, map[Outcome]int{Run: 1, InFlight: n - 1}, count)
			})
		})
	}
}

// TestIdemTwoInstances runs two caddy stores, each from its own Caddy context with its own
// file_system storage, both on one folder: two instances of a cluster.
func TestIdemTwoInstances(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	bg := context.Background()
	root := t.TempDir()
	clock := newTestClock()
	a := newCaddyStore(t, caddyStorageContext(t, root), clock)
	b := newCaddyStore(t, caddyStorageContext(t, root), clock)
	require.NotSame(t, a.backend, b.backend)

	// Begun on a: in flight on b; finished on a: replayed on b.
	run := mustBegin(t, a, "alice", "INC-42", "fp1", Run)
	mustBegin(t, b, "alice", "INC-42", "fp1", InFlight)
	mustBegin(t, b, "alice", "INC-42", "fp2", Mismatch)
	require.NoError(t, a.Finish(bg, run, answerOK))
	r := mustBegin(t, b, "alice", "INC-42", "fp1", Replay)
	assert.Equal(t, answerOK, r.Answer)
	mustBegin(t, b, "alice", "INC-42", "fp2", Mismatch)
	mustBegin(t, b, "bob", "INC-42", "fp1", Run)

	// Released on b: runs on a.
	run = mustBegin(t, b, "alice", "INC-43", "fp1", Run)
	mustBegin(t, a, "alice", "INC-43", "fp1", InFlight)
	require.NoError(t, b.Release(bg, run))
	mustBegin(t, a, "alice", "INC-43", "fp1", Run)

	// Concurrent begins of one key on both instances: exactly one runs.
	const n = 10
	outcomes := make(chan Outcome, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func(s *Store) {
				defer wg.Done()
				got, err := s.Begin(bg, "alice", "INC-44", "fp1")
				assert.NoError(t, err)
				outcomes <- got.Outcome
			}(s)
		}
	}
	wg.Wait()
	close(outcomes)
	count := map[Outcome]int{}
	for o := range outcomes {
		count[o]++
	}
	assert.Equal(t, map[Outcome]int{Run: 1, InFlight: 2*n - 1}, count)
}

// TestIdemStorageRecord checks what the caddy store writes: JSON under the key's hashed name,
// and neither the key nor the caller.
func TestIdemStorageRecord(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	ctx := caddyStorageContext(t, t.TempDir())
	s := newCaddyStore(t, ctx, newTestClock())
	b := mustBegin(t, s, "alice@example.com", "INC-42-revoke", "fp1", Run)
	require.NoError(t, s.Finish(context.Background(), b, answerOK))

	keys, err := ctx.Storage().List(context.Background(), storagePrefix, true)
	require.NoError(t, err)
	name := keyName("alice@example.com", "INC-42-revoke")
	assert.Contains(t, keys, recordKey(name))
	for _, k := range keys {
		assert.NotContains(t, k, "INC-42")
		assert.NotContains(t, k, "alice")
	}
	data, err := ctx.Storage().Load(context.Background(), recordKey(name))
	require.NoError(t, err)
	var rec record
	require.NoError(t, json.Unmarshal(data, &rec))
	assert.Equal(t, 1, rec.V)
	assert.Equal(t, "fp1", rec.Fingerprint)
	assert.Empty(t, rec.Token)
	assert.Equal(t, newTestClock().now().Add(testTTL), rec.Expires.UTC())
	assert.Equal(t, answerOK, rec.Answer)
	assert.NotContains(t, string(data), "alice")

	// An unreadable record is replaced, not a key blocked for good.
	require.NoError(t, ctx.Storage().Store(context.Background(), recordKey(name), []byte("garbage")))
	mustBegin(t, s, "alice@example.com", "INC-42-revoke", "fp1", Run)
}

// TestIdemSweep checks that the caddy store's sweep deletes expired records and keeps live
// ones.
func TestIdemSweep(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	bg := context.Background()
	ctx := caddyStorageContext(t, t.TempDir())
	clock := newTestClock()
	s := newCaddyStore(t, ctx, clock)

	n, err := s.sweep(bg) // nothing stored yet: the folder does not exist
	require.NoError(t, err)
	assert.Zero(t, n)

	old := mustBegin(t, s, "alice", "old", "fp1", Run)
	require.NoError(t, s.Finish(bg, old, answerOK))
	mustBegin(t, s, "alice", "stale-lease", "fp1", Run) // never finished
	clock.advance(testTTL - time.Minute)
	fresh := mustBegin(t, s, "alice", "fresh", "fp1", Run)
	require.NoError(t, s.Finish(bg, fresh, answerOK))
	clock.advance(time.Minute)

	n, err = s.sweep(bg)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	exists := func(key string) bool {
		_, err := ctx.Storage().Load(bg, recordKey(keyName("alice", key)))
		return err == nil
	}
	assert.False(t, exists("old"))
	assert.False(t, exists("stale-lease"))
	assert.True(t, exists("fresh"))
	mustBegin(t, s, "alice", "fresh", "fp1", Replay)
}

// failingStorage is a storage whose every call fails.
type failingStorage struct{ Storage }

var errStorageDown = errors.New("storage down")

func (failingStorage) Lock(context.Context, string) error { return errStorageDown }

// TestIdemStorageError checks that a store that cannot be asked says so, rather than letting
// the request run.
func TestIdemStorageError(t *testing.T) {
	s := NewStorageStore(failingStorage{}, Config{TTL: testTTL, Lease: testLease}, nil)
	_, err := s.Begin(context.Background(), "alice", "k1", "fp1")
	require.ErrorIs(t, err, errStorageDown)
}

// TestIdemMemoryBounds checks the memory store's bounds on keys and bytes.
func TestIdemMemoryBounds(t *testing.T) {
	bg := context.Background()
	clock := newTestClock()

	m, err := NewMemoryBackend(3, 1<<20)
	require.NoError(t, err)
	s := &Store{backend: m, ttl: testTTL, lease: testLease, now: clock.now}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		b := mustBegin(t, s, "alice", k, "fp", Run)
		require.NoError(t, s.Finish(bg, b, answerOK))
	}
	assert.Equal(t, 3, m.Len())
	mustBegin(t, s, "alice", "k1", "fp", Run) // the oldest went first
	mustBegin(t, s, "alice", "k4", "fp", Replay)

	// Answers of 10,000 bytes (each takes a little more) in a store of 200,000 bytes: the
	// oldest go first, and the byte count follows the records.
	big := &Answer{Status: 200, Body: make([]byte, 10_000)}
	m, err = NewMemoryBackend(1000, 200_000)
	require.NoError(t, err)
	s = &Store{backend: m, ttl: testTTL, lease: testLease, now: clock.now}
	for i := 1; i <= 20; i++ {
		b := mustBegin(t, s, "alice", fmt.Sprint("k", i), "fp", Run)
		require.NoError(t, s.Finish(bg, b, big))
		assert.LessOrEqual(t, m.bytes, int64(200_000))
	}
	assert.Less(t, m.Len(), 20)
	assert.Greater(t, m.Len(), 15)
	assert.Equal(t, sizes(m), m.bytes, "the byte count follows the records")
	b := mustBegin(t, s, "alice", "k1", "fp", Run) // k1 went first
	assert.Equal(t, sizes(m), m.bytes)
	require.NoError(t, s.Release(bg, b))
	assert.Equal(t, sizes(m), m.bytes, "after a release")
	mustBegin(t, s, "alice", "k20", "fp", Replay)
}

// TestIdemMemoryLargeAnswer checks that the memory store keeps no answer larger than a
// sixteenth of its max_memory: ten answers of 7 MB (10,000-item batches') in a store of
// 64 MiB are not kept, their keys are released, and the small keys kept before stay.
func TestIdemMemoryLargeAnswer(t *testing.T) {
	bg := context.Background()
	m, err := NewMemoryBackend(DefaultMaxKeys, DefaultMaxMemory)
	require.NoError(t, err)
	s := NewStore(m, Config{TTL: testTTL, Lease: testLease})
	assert.Equal(t, DefaultMaxMemory/16, s.maxAnswer)
	for i := 0; i < 1000; i++ {
		b := mustBegin(t, s, "alice", fmt.Sprint("small-", i), "fp", Run)
		require.NoError(t, s.Finish(bg, b, answerOK))
	}
	kept := m.bytes

	large := &Answer{Status: 200, Header: answerOK.Header, Body: make([]byte, 7_000_000)}
	for i := 0; i < 10; i++ {
		b := mustBegin(t, s, "alice", fmt.Sprint("batch-", i), "fp", Run)
		require.NoError(t, s.Finish(bg, b, large))
		mustBegin(t, s, "alice", fmt.Sprint("batch-", i), "fp2", Run) // released: runs again
		assert.LessOrEqual(t, m.bytes, int64(DefaultMaxMemory))
	}
	// Through a Recorder, as the handler keeps answers: it stops copying past the bound.
	b := mustBegin(t, s, "alice", "batch-recorded", "fp", Run)
	w := httptest.NewRecorder()
	rec := s.Recorder(w)
	for i := 0; i < 7; i++ {
		_, _ = rec.Write(make([]byte, 1_000_000))
	}
	assert.Nil(t, rec.Answer())
	assert.Equal(t, 7_000_000, w.Body.Len(), "the client gets it all")
	require.NoError(t, s.Finish(bg, b, rec.Answer()))
	mustBegin(t, s, "alice", "batch-recorded", "fp2", Run)

	assert.Equal(t, 1000+11, m.Len(), "the small keys, and the released ones in flight again")
	for i := 0; i < 1000; i++ {
		mustBegin(t, s, "alice", fmt.Sprint("small-", i), "fp", Replay)
	}
	assert.Less(t, m.bytes, kept+11*1024, "only reservations were added")
	assert.Equal(t, sizes(m), m.bytes)

	// Just under a sixteenth is kept, with no spare capacity; the caller's answer is untouched.
	fits := &Answer{Status: 200, Body: make([]byte, 3<<20, 4<<20)}
	b = mustBegin(t, s, "alice", "batch-fits", "fp", Run)
	require.NoError(t, s.Finish(bg, b, fits))
	r := mustBegin(t, s, "alice", "batch-fits", "fp", Replay)
	assert.Equal(t, 3<<20, len(r.Answer.Body))
	assert.Less(t, cap(r.Answer.Body), 3<<20+8192)
	assert.Equal(t, 4<<20, cap(fits.Body))
	assert.LessOrEqual(t, m.bytes, int64(DefaultMaxMemory))
	assert.Equal(t, sizes(m), m.bytes)
}

// TestIdemMemoryCost checks the memory store's count against the heap it really takes: filled
// far beyond its bound, it holds no more than it counts, and not much less.
func TestIdemMemoryCost(t *testing.T) {
	for _, mix := range []bool{false, true} {
		before := liveHeap()
		m := fillMemoryStore(4<<20, 3, mix, 1)
		heap := float64(int64(liveHeap()) - int64(before))
		m.mu.Lock()
		counted := float64(m.bytes)
		m.mu.Unlock()
		t.Logf("mix %v: heap %.0f, counted %.0f: %.3f", mix, heap, counted, heap/counted)
		assert.LessOrEqual(t, counted, float64(4<<20))
		assert.LessOrEqual(t, heap, counted*1.02, "the heap held is counted")
		assert.Greater(t, heap, counted*0.8, "the count is near the heap")
		runtime.KeepAlive(m)
	}
}

// sizes adds up the costs of the memory store's records, and its map's.
func sizes(m *MemoryBackend) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.mapBytes
	for _, k := range m.lru.Keys() {
		r, _ := m.lru.Peek(k)
		n += r.cost(k)
	}
	return n
}

func TestIdemFingerprint(t *testing.T) {
	req := func(method, target string) *http.Request {
		return httptest.NewRequest(method, target, nil)
	}
	body := []byte(`{"status":"inactive"}`)
	base := Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider")
	assert.Len(t, base, 64)
	assert.Equal(t, base, Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider"))
	assert.Equal(t, base, Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "provider", "dry_run"), "the order of params does not matter")
	assert.Equal(t, base, Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1&trace=x"), body, "dry_run", "provider"), "unlisted parameters do not count")

	others := map[string]string{
		"method":       Fingerprint(req("POST", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider"),
		"path":         Fingerprint(req("PUT", "/credentials/12346/status?dry_run=1"), body, "dry_run", "provider"),
		"param value":  Fingerprint(req("PUT", "/credentials/12345/status?dry_run=0"), body, "dry_run", "provider"),
		"param absent": Fingerprint(req("PUT", "/credentials/12345/status"), body, "dry_run", "provider"),
		"param added":  Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1&provider=p"), body, "dry_run", "provider"),
		"body":         Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), []byte(`{"status":"active"}`), "dry_run", "provider"),
		"body spacing": Fingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), []byte(`{"status": "inactive"}`), "dry_run", "provider"),
	}
	seen := map[string]string{base: "base"}
	for name, fp := range others {
		prev, dup := seen[fp]
		assert.False(t, dup, "%s has the fingerprint of %s", name, prev)
		seen[fp] = name
	}
}

func TestIdemName(t *testing.T) {
	n := keyName("alice", "k1")
	assert.Regexp(t, `^[0-9a-f]{64}$`, n)
	assert.Equal(t, n, keyName("alice", "k1"))
	assert.NotEqual(t, n, keyName("bob", "k1"))
	assert.NotEqual(t, n, keyName("", "k1"))
	assert.NotEqual(t, keyName("ab", "c"), keyName("a", "bc"), "fields do not run into each other")
	assert.Equal(t, "credgate/idempotency/"+n[:2]+"/"+n, recordKey(n))
}

func TestIdemKeeps(t *testing.T) {
	for status, want := range map[int]bool{
		200: true, 202: true, 400: true, 403: true, 404: true, 413: true, 422: true,
		408: false, 409: false, 415: false, 429: false, 499: false,
		500: false, 502: false, 503: false, 504: false, 0: false, 101: false, 304: false,
	} {
		assert.Equal(t, want, Keeps(status), "status %d", status)
	}
}

// TestIdemRecorderReplay records an answer as the handler writes it and replays it.
func TestIdemRecorderReplay(t *testing.T) {
	w := httptest.NewRecorder()
	rec := NewRecorder(w)
	rec.Header().Set("Content-Type", "application/problem+json")
	rec.Header().Set("Cache-Control", "no-store")
	rec.Header().Set("Retry-After", "5") // belongs to the moment: not kept
	rec.WriteHeader(404)
	_, _ = rec.Write([]byte(`{"type":"urn:credgate:problem:credential-not-found","status":404}`))
	rec.Header().Set("Date", "Mon, 23 Nov 2026 12:00:00 GMT") // too late, and not kept anyway
	a := rec.Answer()
	require.NotNil(t, a)
	assert.Equal(t, 404, a.Status)
	assert.Equal(t, map[string]string{"Content-Type": "application/problem+json", "Cache-Control": "no-store"}, a.Header)
	assert.Equal(t, w.Body.Bytes(), a.Body, "the client got what was recorded")
	assert.Equal(t, 404, w.Code)

	w2 := httptest.NewRecorder()
	WriteReplay(w2, a)
	assert.Equal(t, 404, w2.Code)
	assert.Equal(t, "true", w2.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, "application/problem+json", w2.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w2.Header().Get("Cache-Control"))
	assert.Equal(t, w.Body.String(), w2.Body.String())

	// An implicit 200.
	rec = NewRecorder(httptest.NewRecorder())
	_, _ = rec.Write([]byte("{}"))
	require.NotNil(t, rec.Answer())
	assert.Equal(t, 200, rec.Answer().Status)

	// Nothing written, or too much: nothing to keep; the client still gets it all.
	assert.Nil(t, NewRecorder(httptest.NewRecorder()).Answer())
	w = httptest.NewRecorder()
	rec = NewRecorder(w)
	rec.WriteHeader(200)
	for i := 0; i < 3; i++ {
		_, _ = rec.Write(make([]byte, MaxAnswer/2))
	}
	assert.Nil(t, rec.Answer())
	assert.Equal(t, 3*(MaxAnswer/2), w.Body.Len())
	assert.Equal(t, w, rec.Unwrap())
}
