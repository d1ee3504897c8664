package module

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage" // the file_system storage module
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idemClock is a settable clock for a store's expiries.
type idemClock struct {
	mu sync.Mutex
	t  time.Time
}

func newIdemClock() *idemClock {
	return &idemClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *idemClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *idemClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	idemTestTTL   = time.Hour
	idemTestLease = time.Minute
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

// newCaddyIdemStore provisions a caddy store on ctx, as the handler does, on a clock.
func newCaddyIdemStore(t *testing.T, ctx caddy.Context, clock *idemClock) *idemLayer {
	t.Helper()
	o := IdempotencyOptions{IdempotencyStorage: "caddy", IdempotencyTTL: caddy.Duration(idemTestTTL)}
	s, poolKey, err := o.provisionIdempotency(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, poolKey, "the caddy store keeps nothing in the pool")
	l := s.(*idemLayer)
	l.lease = idemTestLease
	l.now = clock.now
	return l
}

func newMemIdemStore(t *testing.T, clock *idemClock) *idemLayer {
	t.Helper()
	m, err := newMemIdem(1000, DefaultIdempotencyMaxMemory)
	require.NoError(t, err)
	return &idemLayer{backend: m, ttl: idemTestTTL, lease: idemTestLease, now: clock.now}
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

// idemStoreKinds makes a fresh store of each kind, on clock.
var idemStoreKinds = []struct {
	name string
	make func(t *testing.T, clock *idemClock) *idemLayer
}{
	{"memory", newMemIdemStore},
	{"caddy", func(t *testing.T, clock *idemClock) *idemLayer {
		return newCaddyIdemStore(t, caddyStorageContext(t, t.TempDir()), clock)
	}},
}

var (
	answerOK = &storedAnswer{
		Status: 200,
		Header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:   []byte(`{"id":"12345","provider":"digicert-parent","status":"inactive","changed":true}`),
	}
	answerNotFound = &storedAnswer{
		Status: 404,
		Header: map[string]string{"Content-Type": "application/problem+json"},
		Body:   []byte(`{"type":"urn:credgate:problem:credential-not-found","status":404}`),
	}
)

func mustBegin(t *testing.T, s idemStore, caller, key, fp string, want idemOutcome) idemBegin {
	t.Helper()
	b, err := s.begin(context.Background(), caller, key, fp)
	require.NoError(t, err)
	require.Equal(t, want, b.Outcome, "begin(%q, %q, %q)", caller, key, fp)
	return b
}

// TestIdemStore runs the draft's rules through both stores.
func TestIdemStore(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	bg := context.Background()
	for _, kind := range idemStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("replay after finish", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.finish(bg, b, answerOK))
				r := mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
				assert.Equal(t, answerOK, r.Answer)
				// A replay holds no reservation: finishing or releasing it changes nothing.
				require.NoError(t, s.release(bg, r))
				require.NoError(t, s.finish(bg, r, answerNotFound))
				r = mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
				assert.Equal(t, answerOK, r.Answer)
			})
			t.Run("final 4xx kept", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.finish(bg, b, answerNotFound))
				r := mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
				assert.Equal(t, answerNotFound, r.Answer)
			})
			t.Run("other fingerprint is a mismatch", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				mustBegin(t, s, "alice", "k1", "fp2", idemMismatch) // while in flight
				require.NoError(t, s.finish(bg, b, answerOK))
				m := mustBegin(t, s, "alice", "k1", "fp2", idemMismatch) // once finished
				assert.Nil(t, m.Answer)
				p := m.problem()
				require.NotNil(t, p)
				assert.Equal(t, 422, p.Status)
				assert.Equal(t, "idempotency-key-reused", p.Suffix())
			})
			t.Run("in flight", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				f := mustBegin(t, s, "alice", "k1", "fp1", idemInFlight)
				p := f.problem()
				require.NotNil(t, p)
				assert.Equal(t, 409, p.Status)
				assert.Equal(t, "idempotency-key-in-use", p.Suffix())
				// The refused request's release does not free the running one's key.
				require.NoError(t, s.release(bg, f))
				mustBegin(t, s, "alice", "k1", "fp1", idemInFlight)
				require.NoError(t, s.finish(bg, b, answerOK))
				mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
			})
			t.Run("release lets the next one run", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.release(bg, b))
				b2 := mustBegin(t, s, "alice", "k1", "fp2", idemRun) // the key is free: any body
				require.NoError(t, s.release(bg, b))                 // the first release again: not its key any more
				mustBegin(t, s, "alice", "k1", "fp2", idemInFlight)
				require.NoError(t, s.release(bg, b2))
			})
			t.Run("transient answers release", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				for _, status := range []int{500, 502, 503, 504, 429, 409, 408, 499} {
					b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
					require.NoError(t, s.finish(bg, b, &storedAnswer{Status: status, Body: []byte("{}")}))
				}
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.finish(bg, b, nil)) // no answer to keep
				mustBegin(t, s, "alice", "k1", "fp1", idemRun)
			})
			t.Run("answer expires", func(t *testing.T) {
				clock := newIdemClock()
				s := kind.make(t, clock)
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.finish(bg, b, answerOK))
				clock.advance(idemTestTTL - time.Second)
				mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
				clock.advance(time.Second)
				mustBegin(t, s, "alice", "k1", "fp2", idemRun) // expired: as if never used
			})
			t.Run("lease ends", func(t *testing.T) {
				clock := newIdemClock()
				s := kind.make(t, clock)
				stale := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				clock.advance(idemTestLease - time.Second)
				mustBegin(t, s, "alice", "k1", "fp1", idemInFlight)
				clock.advance(time.Second)
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				// The first request ends at last: it neither overwrites nor frees the key.
				require.ErrorIs(t, s.finish(bg, stale, answerNotFound), errIdemLost)
				require.NoError(t, s.release(bg, stale))
				mustBegin(t, s, "alice", "k1", "fp1", idemInFlight)
				require.NoError(t, s.finish(bg, b, answerOK))
				r := mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
				assert.Equal(t, answerOK, r.Answer)
			})
			t.Run("keys are the caller's", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				b := mustBegin(t, s, "alice", "k1", "fp1", idemRun)
				require.NoError(t, s.finish(bg, b, answerOK))
				mustBegin(t, s, "bob", "k1", "fp1", idemRun)
				mustBegin(t, s, "", "k1", "fp1", idemRun)
				mustBegin(t, s, "alice", "k2", "fp1", idemRun)
				mustBegin(t, s, "alice", "k1", "fp1", idemReplay)
			})
			t.Run("concurrent begins: one runs", func(t *testing.T) {
				s := kind.make(t, newIdemClock())
				const n = 50
				outcomes := make([]idemOutcome, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						<-start
						b, err := s.begin(bg, "alice", "k1", "fp1")
						assert.NoError(t, err)
						outcomes[i] = b.Outcome
					}(i)
				}
				close(start)
				wg.Wait()
				count := map[idemOutcome]int{}
				for _, o := range outcomes {
					count[o]++
				}
				assert.Equal(t, map[idemOutcome]int{idemRun: 1, idemInFlight: n - 1}, count)
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
	clock := newIdemClock()
	a := newCaddyIdemStore(t, caddyStorageContext(t, root), clock)
	b := newCaddyIdemStore(t, caddyStorageContext(t, root), clock)
	require.NotSame(t, a.backend, b.backend)

	// Begun on a: in flight on b; finished on a: replayed on b.
	run := mustBegin(t, a, "alice", "INC-42", "fp1", idemRun)
	mustBegin(t, b, "alice", "INC-42", "fp1", idemInFlight)
	mustBegin(t, b, "alice", "INC-42", "fp2", idemMismatch)
	require.NoError(t, a.finish(bg, run, answerOK))
	r := mustBegin(t, b, "alice", "INC-42", "fp1", idemReplay)
	assert.Equal(t, answerOK, r.Answer)
	mustBegin(t, b, "alice", "INC-42", "fp2", idemMismatch)
	mustBegin(t, b, "bob", "INC-42", "fp1", idemRun)

	// Released on b: runs on a.
	run = mustBegin(t, b, "alice", "INC-43", "fp1", idemRun)
	mustBegin(t, a, "alice", "INC-43", "fp1", idemInFlight)
	require.NoError(t, b.release(bg, run))
	mustBegin(t, a, "alice", "INC-43", "fp1", idemRun)

	// Concurrent begins of one key on both instances: exactly one runs.
	const n = 10
	outcomes := make(chan idemOutcome, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for _, s := range []*idemLayer{a, b} {
			wg.Add(1)
			go func(s *idemLayer) {
				defer wg.Done()
				got, err := s.begin(bg, "alice", "INC-44", "fp1")
				assert.NoError(t, err)
				outcomes <- got.Outcome
			}(s)
		}
	}
	wg.Wait()
	close(outcomes)
	count := map[idemOutcome]int{}
	for o := range outcomes {
		count[o]++
	}
	assert.Equal(t, map[idemOutcome]int{idemRun: 1, idemInFlight: 2*n - 1}, count)
}

// TestIdemStorageRecord checks what the caddy store writes: JSON under the key's hashed name,
// and neither the key nor the caller.
func TestIdemStorageRecord(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	ctx := caddyStorageContext(t, t.TempDir())
	s := newCaddyIdemStore(t, ctx, newIdemClock())
	b := mustBegin(t, s, "alice@example.com", "INC-42-revoke", "fp1", idemRun)
	require.NoError(t, s.finish(context.Background(), b, answerOK))

	keys, err := ctx.Storage().List(context.Background(), idemStoragePrefix, true)
	require.NoError(t, err)
	name := idemName("alice@example.com", "INC-42-revoke")
	assert.Contains(t, keys, idemRecordKey(name))
	for _, k := range keys {
		assert.NotContains(t, k, "INC-42")
		assert.NotContains(t, k, "alice")
	}
	data, err := ctx.Storage().Load(context.Background(), idemRecordKey(name))
	require.NoError(t, err)
	var rec idemRecord
	require.NoError(t, json.Unmarshal(data, &rec))
	assert.Equal(t, 1, rec.V)
	assert.Equal(t, "fp1", rec.Fingerprint)
	assert.Empty(t, rec.Token)
	assert.Equal(t, newIdemClock().now().Add(idemTestTTL), rec.Expires.UTC())
	assert.Equal(t, answerOK, rec.Answer)
	assert.NotContains(t, string(data), "alice")

	// An unreadable record is replaced, not a key blocked for good.
	require.NoError(t, ctx.Storage().Store(context.Background(), idemRecordKey(name), []byte("garbage")))
	mustBegin(t, s, "alice@example.com", "INC-42-revoke", "fp1", idemRun)
}

// TestIdemSweep checks that the caddy store's sweep deletes expired records and keeps live
// ones.
func TestIdemSweep(t *testing.T) {
	t.Parallel() // each waits for the file storage's lock goroutines to end
	waitFileLocksReleased(t)
	bg := context.Background()
	ctx := caddyStorageContext(t, t.TempDir())
	clock := newIdemClock()
	s := newCaddyIdemStore(t, ctx, clock)

	n, err := s.sweep(bg) // nothing stored yet: the folder does not exist
	require.NoError(t, err)
	assert.Zero(t, n)

	old := mustBegin(t, s, "alice", "old", "fp1", idemRun)
	require.NoError(t, s.finish(bg, old, answerOK))
	mustBegin(t, s, "alice", "stale-lease", "fp1", idemRun) // never finished
	clock.advance(idemTestTTL - time.Minute)
	fresh := mustBegin(t, s, "alice", "fresh", "fp1", idemRun)
	require.NoError(t, s.finish(bg, fresh, answerOK))
	clock.advance(time.Minute)

	n, err = s.sweep(bg)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	exists := func(key string) bool {
		_, err := ctx.Storage().Load(bg, idemRecordKey(idemName("alice", key)))
		return err == nil
	}
	assert.False(t, exists("old"))
	assert.False(t, exists("stale-lease"))
	assert.True(t, exists("fresh"))
	mustBegin(t, s, "alice", "fresh", "fp1", idemReplay)
}

// failingStorage is a storage whose every call fails.
type failingStorage struct{ idemStorage }

var errStorageDown = errors.New("storage down")

func (failingStorage) Lock(context.Context, string) error { return errStorageDown }

// TestIdemStorageError checks that a store that cannot be asked says so, rather than letting
// the request run.
func TestIdemStorageError(t *testing.T) {
	s := newStorageIdemStore(failingStorage{}, idemConfig{TTL: idemTestTTL, Lease: idemTestLease}, nil)
	_, err := s.begin(context.Background(), "alice", "k1", "fp1")
	require.ErrorIs(t, err, errStorageDown)
	p := idemUnavailable()
	assert.Equal(t, 503, p.Status)
	assert.Equal(t, "idempotency-unavailable", p.Suffix())
	assert.Equal(t, time.Second, p.retryAfter)
}

// TestIdemMemoryBounds checks the memory store's bounds on keys and bytes, and that the pool
// gives a reloaded config the same store.
func TestIdemMemoryBounds(t *testing.T) {
	bg := context.Background()
	clock := newIdemClock()

	m, err := newMemIdem(3, 1<<20)
	require.NoError(t, err)
	s := &idemLayer{backend: m, ttl: idemTestTTL, lease: idemTestLease, now: clock.now}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		b := mustBegin(t, s, "alice", k, "fp", idemRun)
		require.NoError(t, s.finish(bg, b, answerOK))
	}
	assert.Equal(t, 3, m.len())
	mustBegin(t, s, "alice", "k1", "fp", idemRun) // the oldest went first
	mustBegin(t, s, "alice", "k4", "fp", idemReplay)

	big := &storedAnswer{Status: 200, Body: make([]byte, 10_000)}
	m, err = newMemIdem(1000, 35_000)
	require.NoError(t, err)
	s = &idemLayer{backend: m, ttl: idemTestTTL, lease: idemTestLease, now: clock.now}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		b := mustBegin(t, s, "alice", k, "fp", idemRun)
		require.NoError(t, s.finish(bg, b, big))
	}
	assert.Equal(t, 3, m.len())
	assert.LessOrEqual(t, m.bytes, int64(35_000))
	assert.Equal(t, sizes(m), m.bytes, "the byte count follows the records")
	b := mustBegin(t, s, "alice", "k1", "fp", idemRun) // k1 went first
	assert.Equal(t, sizes(m), m.bytes)
	require.NoError(t, s.release(bg, b))
	assert.Equal(t, sizes(m), m.bytes, "after a release")
	mustBegin(t, s, "alice", "k4", "fp", idemReplay)

	// Two provisions of one size share the store, as the configs before and after a reload.
	cfg := idemConfig{TTL: idemTestTTL, Lease: idemTestLease, MaxKeys: 12345, MaxMemory: 1 << 20}
	s1, key1, err := newMemoryIdemStore(cfg)
	require.NoError(t, err)
	s2, key2, err := newMemoryIdemStore(cfg)
	require.NoError(t, err)
	assert.Equal(t, key1, key2)
	assert.Same(t, s1.backend, s2.backend)
	b = mustBegin(t, s1, "alice", "k1", "fp", idemRun)
	require.NoError(t, s1.finish(bg, b, answerOK))
	_, _ = pool.Delete(key1) // the old config's Cleanup
	mustBegin(t, s2, "alice", "k1", "fp", idemReplay)
	deleted, err := pool.Delete(key2)
	require.NoError(t, err)
	assert.True(t, deleted, "the last user's Cleanup destroys the store")
}

// sizes adds up the sizes of the memory store's records.
func sizes(m *memIdem) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, k := range m.lru.Keys() {
		r, _ := m.lru.Peek(k)
		n += r.size(k)
	}
	return n
}

func TestIdemFingerprint(t *testing.T) {
	req := func(method, target string) *http.Request {
		return httptest.NewRequest(method, target, nil)
	}
	body := []byte(`{"status":"inactive"}`)
	base := idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider")
	assert.Len(t, base, 64)
	assert.Equal(t, base, idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider"))
	assert.Equal(t, base, idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), body, "provider", "dry_run"), "the order of params does not matter")
	assert.Equal(t, base, idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1&trace=x"), body, "dry_run", "provider"), "unlisted parameters do not count")

	others := map[string]string{
		"method":       idemFingerprint(req("POST", "/credentials/12345/status?dry_run=1"), body, "dry_run", "provider"),
		"path":         idemFingerprint(req("PUT", "/credentials/12346/status?dry_run=1"), body, "dry_run", "provider"),
		"param value":  idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=0"), body, "dry_run", "provider"),
		"param absent": idemFingerprint(req("PUT", "/credentials/12345/status"), body, "dry_run", "provider"),
		"param added":  idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1&provider=p"), body, "dry_run", "provider"),
		"body":         idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), []byte(`{"status":"active"}`), "dry_run", "provider"),
		"body spacing": idemFingerprint(req("PUT", "/credentials/12345/status?dry_run=1"), []byte(`{"status": "inactive"}`), "dry_run", "provider"),
	}
	seen := map[string]string{base: "base"}
	for name, fp := range others {
		prev, dup := seen[fp]
		assert.False(t, dup, "%s has the fingerprint of %s", name, prev)
		seen[fp] = name
	}
}

func TestIdemName(t *testing.T) {
	n := idemName("alice", "k1")
	assert.Regexp(t, `^[0-9a-f]{64}$`, n)
	assert.Equal(t, n, idemName("alice", "k1"))
	assert.NotEqual(t, n, idemName("bob", "k1"))
	assert.NotEqual(t, n, idemName("", "k1"))
	assert.NotEqual(t, idemName("ab", "c"), idemName("a", "bc"), "fields do not run into each other")
	assert.Equal(t, "credgate/idempotency/"+n[:2]+"/"+n, idemRecordKey(n))
}

func TestIdemKeeps(t *testing.T) {
	for status, want := range map[int]bool{
		200: true, 202: true, 400: true, 403: true, 404: true, 413: true, 422: true,
		408: false, 409: false, 415: false, 429: false, 499: false,
		500: false, 502: false, 503: false, 504: false, 0: false, 101: false, 304: false,
	} {
		assert.Equal(t, want, idemKeeps(status), "status %d", status)
	}
}

// TestIdemRecorderReplay records an answer as the handler writes it and replays it.
func TestIdemRecorderReplay(t *testing.T) {
	w := httptest.NewRecorder()
	rec := newIdemRecorder(w)
	p := newProblem(probNotFound, "no configured provider knows credential 12345")
	p.ID = "12345"
	writeProblem(rec, p)
	rec.Header().Set("Date", "Mon, 23 Nov 2026 12:00:00 GMT") // too late, and not kept anyway
	a := rec.answer()
	require.NotNil(t, a)
	assert.Equal(t, 404, a.Status)
	assert.Equal(t, map[string]string{"Content-Type": "application/problem+json", "Cache-Control": "no-store"}, a.Header)
	assert.Equal(t, w.Body.Bytes(), a.Body, "the client got what was recorded")
	assert.Equal(t, 404, w.Code)

	w2 := httptest.NewRecorder()
	writeReplay(w2, a)
	assert.Equal(t, 404, w2.Code)
	assert.Equal(t, "true", w2.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, "application/problem+json", w2.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w2.Header().Get("Cache-Control"))
	assert.Equal(t, w.Body.String(), w2.Body.String())

	// An implicit 200.
	rec = newIdemRecorder(httptest.NewRecorder())
	_, _ = rec.Write([]byte("{}"))
	require.NotNil(t, rec.answer())
	assert.Equal(t, 200, rec.answer().Status)

	// Nothing written, or too much: nothing to keep; the client still gets it all.
	assert.Nil(t, newIdemRecorder(httptest.NewRecorder()).answer())
	w = httptest.NewRecorder()
	rec = newIdemRecorder(w)
	rec.WriteHeader(200)
	for i := 0; i < 3; i++ {
		_, _ = rec.Write(make([]byte, MaxIdempotentAnswer/2))
	}
	assert.Nil(t, rec.answer())
	assert.Equal(t, 3*(MaxIdempotentAnswer/2), w.Body.Len())
	assert.Equal(t, w, rec.Unwrap())
}

// TestIdemOptions checks the options' Caddyfile syntax, validation and defaults.
func TestIdemOptions(t *testing.T) {
	parse := func(input string) (IdempotencyOptions, error) {
		var o IdempotencyOptions
		d := caddyfile.NewTestDispenser(input)
		for d.Next() {
			handled, err := o.unmarshalIdempotencyOption(d)
			if err != nil {
				return o, err
			}
			if !handled {
				return o, d.Errf("not handled: %s", d.Val())
			}
		}
		return o, nil
	}
	o, err := parse("idempotency_ttl 48h\nidempotency_storage caddy\nidempotency_max_keys 500")
	require.NoError(t, err)
	assert.Equal(t, IdempotencyOptions{IdempotencyTTL: caddy.Duration(48 * time.Hour), IdempotencyStorage: "caddy", IdempotencyMaxKeys: 500}, o)
	for _, bad := range []string{
		"idempotency_storage redis",
		"idempotency_storage",
		"idempotency_storage memory caddy",
		"idempotency_ttl soon",
		"idempotency_max_keys many",
	} {
		_, err := parse(bad)
		assert.Error(t, err, bad)
	}
	_, err = parse("cache_size 5")
	assert.ErrorContains(t, err, "not handled")

	for _, bad := range []IdempotencyOptions{
		{IdempotencyStorage: "redis"},
		{IdempotencyTTL: -1},
		{IdempotencyMaxKeys: -1},
	} {
		assert.Error(t, bad.validateIdempotency(), "%+v", bad)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var def IdempotencyOptions
	s, key, err := def.provisionIdempotency(ctx, nil)
	require.NoError(t, err)
	defer func() { _, _ = pool.Delete(key) }()
	l := s.(*idemLayer)
	assert.Equal(t, DefaultIdempotencyTTL, l.ttl)
	assert.Equal(t, DefaultIdempotencyLease, l.lease)
	assert.IsType(t, (*memIdem)(nil), l.backend)
	assert.Contains(t, key, "|100000|")

	_, _, err = (&IdempotencyOptions{IdempotencyStorage: "caddy"}).provisionIdempotency(ctx, nil)
	assert.ErrorContains(t, err, "no configured storage")
}
