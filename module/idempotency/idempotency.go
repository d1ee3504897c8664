// Package idempotency keeps the answers of requests that carry an Idempotency-Key, so that a
// repeat of the request gets the same answer without running again. The handler meets it at
// one point, the guard around its PUT and batch endpoints: [Store.Begin] before the request
// runs, then [Store.Finish] with the answer a [Recorder] copied, or [Store.Release].
//
// The memory store's bound, max_memory, is on the heap it really takes: every record is
// counted with what it costs (see record.cost). An answer larger than a sixteenth of
// max_memory (4 MiB of the default 64 MiB: a large batch's answer, of a few thousand to
// 10,000 items) is not kept: its key is released, as for a transient answer, so that one
// large answer never pushes out the small ones.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	mathrand "math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.uber.org/zap"
)

// The store follows the IETF draft "The Idempotency-Key HTTP
// Header Field" (draft-ietf-httpapi-idempotency-key-header):
//
//   - The first request with a key runs; its answer is kept for idempotency_ttl with a
//     fingerprint of the request (method, path, the query parameters that change its meaning,
//     body).
//   - A request with the same key and the same fingerprint gets the kept answer again, marked
//     Idempotent-Replayed: true, and calls no provider.
//   - The same key with another fingerprint is refused with 422: the key was reused for a
//     different request.
//   - The same key while the first request still runs is refused with 409.
//
// Keys are the caller's: the handler scopes a key by its providers (instances of one config
// share keys, handlers with other providers do not) and by the authenticated caller
// ({http.auth.user.id}, empty without authentication), so two callers never see each other's
// answers. begin's caller is that scope and caller together.
//
// The draft leaves to the server which answers are kept. Here only final ones are: 2xx, and
// 4xx but 409 (an ambiguous ID or a refused transition: the state that made it may change),
// 429 (a rate limit), 415 (the Content-Type, not in the fingerprint, made it), 408 and 499
// (the request, not its outcome, failed). A 5xx or any of those releases the key; so does a
// batch with an item that failed so, so that a retry with the same key really tries again, as a client
// that retries after an error expects. Releasing is safe because a status change is
// idempotent itself: a retry of a change that did happen answers "changed": false.
//
// Two stores: in memory (the default; a bounded LRU kept across reloads in the pool), and
// Caddy's configured storage (idempotency_storage caddy), so that several instances behind
// one load balancer that share a cluster storage module (redis, consul, a shared file system)
// honour each other's keys. The second serializes the requests of one key with the storage's
// distributed lock.

// Defaults of a store's Config, and its fixed bounds.
const (
	DefaultTTL     = 24 * time.Hour
	DefaultMaxKeys = 100_000
	// DefaultMaxMemory bounds the memory store's heap, answers and bookkeeping, in bytes.
	DefaultMaxMemory = 64 << 20
	// answerShare: the memory store keeps no answer larger than its max_memory over this.
	answerShare = 16
	// DefaultLease is how long a reservation lasts when its request never ends (a
	// crashed instance's, a lost storage write). A replay meanwhile answers 409; after it, the
	// key is free again. Longer than any request can run: a provider's timeout covers all
	// its calls and retries, and a request asks at most a few providers.
	DefaultLease = 5 * time.Minute

	// MaxAnswer is the largest answer body kept for replay, in bytes, by the caddy store and by
	// a Recorder made with NewRecorder. The memory store keeps at most a sixteenth of its
	// max_memory (see Store.Recorder). A larger answer releases its key, as a transient one does.
	MaxAnswer = 8 << 20

	// storagePrefix is where the caddy store keeps its records, one a key, spread over
	// 256 folders by the name's first byte so that no folder of a file storage grows huge.
	storagePrefix = "credgate/idempotency"
	// storageTimeout bounds each of the caddy store's operations, lock wait included.
	storageTimeout = 10 * time.Second
	// SweepEvery is how often the caddy store deletes expired records that nobody asked
	// for again (the memory store needs no sweep: its LRU pushes them out).
	SweepEvery = time.Hour
)

// Outcome is what begin says to do with a request.
type Outcome int

const (
	// Run: the request is the key's first (or the first since its answer expired or was
	// released); run it, then call finish or release.
	Run Outcome = iota + 1
	// Replay: write Reservation.Answer with WriteReplay; call nothing else.
	Replay
	// InFlight: a request with the key is running; answer 409.
	InFlight
	// Mismatch: the key was used for a request of another fingerprint; answer 422.
	Mismatch
)

func (o Outcome) String() string {
	switch o {
	case Run:
		return "run"
	case Replay:
		return "replay"
	case InFlight:
		return "in-flight"
	case Mismatch:
		return "mismatch"
	}
	return "unknown"
}

// Reservation is begin's answer.
type Reservation struct {
	Outcome Outcome
	// Answer is the stored answer, with Replay. Shared: do not modify it.
	Answer *Answer

	name  string // the key's storage name, see keyName
	token string // the reservation's, with Run: finish and release act only on their own
}

// Answer is an answer kept for replay: its status, the headers that describe its body,
// and the body. It holds no secret (answers have none) and nothing of the request.
type Answer struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// keptHeaders are the answer headers kept with it. Others (Date, Server, Alt-Svc, a
// Retry-After of a transient answer) belong to the moment they were sent.
var keptHeaders = []string{"Content-Type", "Cache-Control", "Content-Language", "Location"}

// Keeps says whether an answer of this status is final, to be kept for replay: 2xx, and
// 4xx but 408, 409, 415, 429 and 499. The others are transient, and release the key.
func Keeps(status int) bool {
	switch {
	case status >= 200 && status < 300:
		return true
	case status >= 400 && status < 500:
		switch status {
		// 415: the Content-Type, which is not in the fingerprint, made the answer.
		case http.StatusRequestTimeout, http.StatusConflict, http.StatusUnsupportedMediaType, http.StatusTooManyRequests, 499:
			return false
		}
		return true
	}
	return false
}

// WriteReplay writes a stored answer again, marked as a replay.
func WriteReplay(w http.ResponseWriter, a *Answer) {
	h := w.Header()
	for k, v := range a.Header {
		h.Set(k, v)
	}
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// Recorder passes an answer on to the client and keeps a copy of it, for finish. The
// handler wraps its ResponseWriter in one for a request that begin let run.
type Recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	limit  int  // the largest body kept
	over   bool // the body outgrew limit: not kept
}

// NewRecorder returns a recorder that keeps answers of up to MaxAnswer bytes. The handler
// uses Store.Recorder, which knows its store's bound.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, limit: MaxAnswer}
}

// WriteHeader implements http.ResponseWriter.
func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (r *Recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if !r.over {
		if r.body.Len()+len(p) > r.limit {
			r.over = true
			r.body = bytes.Buffer{}
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Answer returns what was written, or nil when there is nothing to keep: no answer, or one
// too large. Whether its status is final is finish's to judge. Its body is the recorder's
// buffer, with the spare capacity of its growth: the memory store keeps a tight copy, the caddy
// store encodes it. Write nothing more after.
func (r *Recorder) Answer() *Answer {
	if r.status == 0 || r.over {
		return nil
	}
	a := &Answer{Status: r.status, Body: r.body.Bytes()}
	h := r.Header()
	for _, k := range keptHeaders {
		if v := h.Get(k); v != "" {
			if a.Header == nil {
				a.Header = make(map[string]string, 2)
			}
			a.Header[k] = v
		}
	}
	return a
}

// Fingerprint returns the fingerprint of a request, in hex: a SHA-256 of its method, its
// escaped path, the values of the query parameters named in params (those that change what
// the request does, such as dry_run or provider; others are ignored) and its raw body. The
// body is taken byte for byte: a retry sends the same bytes, and a client that re-encodes its
// JSON differently sends, as far as the key is concerned, another request.
func Fingerprint(r *http.Request, body []byte, params ...string) string {
	h := sha256.New()
	writeField(h, []byte(r.Method))
	writeField(h, []byte(r.URL.EscapedPath()))
	if len(params) > 0 {
		q := r.URL.Query()
		sorted := append([]string(nil), params...)
		sort.Strings(sorted)
		for _, p := range sorted {
			vals := q[p]
			writeField(h, []byte(p))
			_ = binary.Write(h, binary.BigEndian, uint32(len(vals)))
			for _, v := range vals {
				writeField(h, []byte(v))
			}
		}
	}
	writeField(h, body)
	return hex.EncodeToString(h.Sum(nil))
}

// keyName turns a caller's Idempotency-Key (already checked by the handler) into the
// name the store keeps it under: a hex SHA-256 of the caller and the key, so that two callers
// never share a key, and the key, client input, never reaches a storage path.
func keyName(caller, key string) string {
	h := sha256.New()
	writeField(h, []byte("credgate idempotency key v1"))
	writeField(h, []byte(caller))
	writeField(h, []byte(key))
	return hex.EncodeToString(h.Sum(nil))
}

// writeField writes b to h preceded by its length, so that the fields of a hash cannot run
// into one another.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = h.Write(n[:])
	_, _ = h.Write(b)
}

// record is what a store keeps under a key's name: in flight (Answer nil, Token the
// reservation's) until the answer is kept, then the answer. Either ends at Expires: the
// lease's end, or the answer's TTL.
type record struct {
	V           int       `json:"v"`
	Fingerprint string    `json:"fingerprint"`
	Token       string    `json:"token,omitempty"`
	Expires     time.Time `json:"expires"`
	Answer      *Answer   `json:"answer,omitempty"`
}

// What the memory store's records cost on the heap besides their strings and body, in bytes:
// the sizes of Go's allocations (amd64, Go 1.24 and later: swiss maps), checked by
// BenchmarkMemoryStoreHeap and TestIdemMemoryCost.
const (
	// lruEntryCost is simplelru's list entry: links, list, key, value and expiry (72 bytes,
	// allocated as 80).
	lruEntryCost = 80
	// mapSlotCost is a key's share of the LRU's map: a slot of 24 bytes and a control byte,
	// in tables filled to between 7/16 and 7/8. Go maps never shrink, so it is counted for
	// the most keys ever held (MemoryBackend.mapBytes).
	mapSlotCost = 64
	// recordCost is the record struct (72 bytes, allocated as 80).
	recordCost = 80
	// answerCost is the Answer struct (40 bytes, allocated as 48).
	answerCost = 48
	// headerMapCost is an Answer's header map of up to 8 entries: its header and one group of
	// 8 slots (48 + 288 bytes).
	headerMapCost = 336
)

// allocSize is what an allocation of n bytes of plain data takes: at least its size class
// (classes of up to 32 KiB waste at most 1/8 of the class), or whole pages above. It errs
// high, never low.
func allocSize(n int) int64 {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	case n <= 128:
		return int64(n+15) &^ 15
	case n <= 32<<10:
		return int64(n+n/7+16) &^ 15
	}
	return int64(n+8191) &^ 8191
}

// cost is what the record under name takes on the heap: the LRU's entry, the name, the
// record, its strings, and its answer's struct, header map, header strings and body (its
// capacity: the memory store keeps bodies without spare capacity, see tight). The map slot is
// counted apart, by MemoryBackend.mapBytes.
func (r *record) cost(name string) int64 {
	n := lruEntryCost + recordCost + allocSize(len(name)) + allocSize(len(r.Fingerprint)) + allocSize(len(r.Token))
	if a := r.Answer; a != nil {
		n += answerCost + int64(cap(a.Body))
		if len(a.Header) > 0 {
			n += headerMapCost
			if len(a.Header) > 8 { // not from a Recorder: a bigger map, counted high
				n += int64(len(a.Header)) * 80
			}
			for k, v := range a.Header {
				n += allocSize(len(k)) + allocSize(len(v))
			}
		}
	}
	return n
}

// tight returns a with a body of no spare capacity: a itself when it has none, else a copy
// (the caller's answer is not modified).
func tight(a *Answer) *Answer {
	if a == nil || cap(a.Body) == len(a.Body) {
		return a
	}
	t := *a
	t.Body = bytes.Clone(a.Body) // of the size class of its length
	return &t
}

// Backend holds the records. Its one operation is an atomic read-modify-write of one
// record; begin, finish, release and the sweep are written on top of it once, for both
// stores.
type Backend interface {
	// update calls fn with name's record (nil when there is none, or it cannot be read),
	// while no other update of name runs (for a shared storage, on any instance). When fn
	// says write, next replaces the record; a nil next deletes it.
	update(ctx context.Context, name string, fn func(cur *record) (next *record, write bool)) error
}

// Config is what a store is made with.
type Config struct {
	TTL       time.Duration // how long an answer is kept
	Lease     time.Duration // how long a reservation lasts at most
	MaxKeys   int           // the memory store's bound on keys
	MaxMemory int64         // the memory store's bound on bytes
}

// Store is what the handler uses for requests that carry an Idempotency-Key: for each, it
// calls Begin, then, when Begin says Run, runs the request and calls Finish with its answer
// (or Release when there is none to keep, as after a panic: Finish and Release are safe to
// call more than once, and after each other).
//
// A Store is a Backend with one handler's TTL. Handlers of different TTLs can share a
// backend: a record carries its own expiry.
type Store struct {
	backend   Backend
	ttl       time.Duration
	lease     time.Duration
	maxAnswer int              // the largest answer body its recorders keep
	now       func() time.Time // time.Now; tests set a clock
}

// errLost says that a reservation ended (its lease ran out and another request took the
// key) before its answer could be kept.
var errLost = errors.New("the Idempotency-Key's reservation ended before its answer was kept")

// NewStore returns a store of answers in backend, kept for cfg.TTL, with reservations that
// last cfg.Lease at most.
func NewStore(backend Backend, cfg Config) *Store {
	maxAnswer := MaxAnswer
	if m, ok := backend.(*MemoryBackend); ok {
		maxAnswer = int(min(int64(MaxAnswer), m.maxAnswer))
	}
	return &Store{backend: backend, ttl: cfg.TTL, lease: cfg.Lease, maxAnswer: maxAnswer, now: time.Now}
}

// Recorder returns a recorder for a request that Begin let run, that keeps no answer larger
// than the store does: a sixteenth of its max_memory for the memory store, MaxAnswer for the
// caddy store.
func (l *Store) Recorder(w http.ResponseWriter) *Recorder {
	r := NewRecorder(w)
	if l.maxAnswer > 0 {
		r.limit = l.maxAnswer
	}
	return r
}

// Begin reserves caller's key for a request of fingerprint fp (see Fingerprint). The
// outcome says what to do: run it, replay the stored answer, answer 409 (in flight) or 422
// (mismatch). An error means the store could not be asked: the request must not run (the
// handler answers 503), since it could then run twice.
func (l *Store) Begin(ctx context.Context, caller, key, fp string) (Reservation, error) {
	b := Reservation{name: keyName(caller, key)}
	token, err := newToken()
	if err != nil {
		return b, err
	}
	now := l.now()
	err = l.backend.update(ctx, b.name, func(cur *record) (*record, bool) {
		if cur == nil || !cur.Expires.After(now) { // absent, or expired: as good as absent
			b.Outcome, b.token = Run, token
			return &record{V: 1, Fingerprint: fp, Token: token, Expires: now.Add(l.lease)}, true
		}
		switch {
		case cur.Fingerprint != fp:
			b.Outcome = Mismatch
		case cur.Answer == nil:
			b.Outcome = InFlight
		default:
			b.Outcome, b.Answer = Replay, cur.Answer
		}
		return nil, false
	})
	if err != nil {
		return Reservation{}, err
	}
	return b, nil
}

// Finish keeps a for replay if it is a final answer (see Keeps), and otherwise releases the
// key; a nil releases it too, and so does the memory store for an answer that would take more
// than a sixteenth of its max_memory. a is kept as it is: do not modify it after. It completes even
// when ctx is canceled, the caller having gone: the change it answers was made. An error
// means a was not kept; the reservation then ends with its lease.
func (l *Store) Finish(ctx context.Context, b Reservation, a *Answer) error {
	if a == nil || !Keeps(a.Status) {
		return l.Release(ctx, b)
	}
	if b.Outcome != Run || b.token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storageTimeout)
	defer cancel()
	lost := false
	err := l.backend.update(ctx, b.name, func(cur *record) (*record, bool) {
		if cur == nil || cur.Token != b.token {
			lost = true
			return nil, false
		}
		return &record{V: 1, Fingerprint: cur.Fingerprint, Expires: l.now().Add(l.ttl), Answer: a}, true
	})
	if err == nil && lost {
		err = errLost
	}
	return err
}

// Release ends a reservation without keeping an answer, so that the next request with the
// key runs. Like Finish, it completes even when ctx is canceled.
func (l *Store) Release(ctx context.Context, b Reservation) error {
	if b.Outcome != Run || b.token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storageTimeout)
	defer cancel()
	return l.backend.update(ctx, b.name, func(cur *record) (*record, bool) {
		if cur == nil || cur.Token != b.token || cur.Answer != nil {
			return nil, false // not ours any more
		}
		return nil, true
	})
}

// newToken returns a random token that names one reservation.
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// MemoryBackend is the memory store's backend: a plain LRU (not golang-lru's expirable one, which
// starts a goroutine per cache and never stops it) under one mutex, bounded by keys and by
// the bytes its records take on the heap (see record.cost). Expired records are replaced when
// their key comes again, or pushed out by newer ones. It lives in the pool, so that a reload
// keeps the keys.
type MemoryBackend struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[string, *record]
	bytes     int64 // the records' costs, and mapBytes
	mapBytes  int64 // the LRU map's: mapSlotCost for the most keys it ever held
	maxBytes  int64
	maxAnswer int64 // the largest record kept: maxBytes/answerShare
}

// NewMemoryBackend returns an empty memory backend of at most maxKeys keys and maxBytes bytes
// of heap. It keeps no record that takes more than maxBytes/16.
func NewMemoryBackend(maxKeys int, maxBytes int64) (*MemoryBackend, error) {
	if maxBytes <= 0 {
		return nil, errors.New("the memory bound must be positive")
	}
	m := &MemoryBackend{maxBytes: maxBytes, maxAnswer: maxBytes / answerShare}
	var err error
	m.lru, err = simplelru.NewLRU[string, *record](maxKeys, func(name string, r *record) {
		m.bytes -= r.cost(name)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *MemoryBackend) update(_ context.Context, name string, fn func(cur *record) (*record, bool)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, _ := m.lru.Get(name)
	next, write := fn(cur)
	if !write {
		return nil
	}
	if cur != nil {
		m.lru.Remove(name) // its size leaves the count through the eviction callback
	}
	if next == nil {
		return nil
	}
	next.Answer = tight(next.Answer)
	size := next.cost(name)
	if size > m.maxAnswer {
		return nil // too large to keep: the key is released, the others stay
	}
	m.lru.Add(name, next)
	m.bytes += size
	if n := int64(m.lru.Len()) * mapSlotCost; n > m.mapBytes {
		m.bytes += n - m.mapBytes
		m.mapBytes = n
	}
	for m.bytes > m.maxBytes && m.lru.Len() > 1 {
		m.lru.RemoveOldest()
	}
	return nil
}

// Len returns the number of keys held.
func (m *MemoryBackend) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Destruct implements caddy.Destructor: the last config that used the store is gone.
func (m *MemoryBackend) Destruct() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Purge()
	return nil
}

// Storage is what the caddy store uses of certmagic.Storage (which Caddy's configured
// storage module provides).
type Storage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, path string, recursive bool) ([]string, error)
}

// storageBackend is the caddy store's backend: one JSON record a key in Caddy's storage, read
// and written under the storage's lock of that key, which is what makes instances that share
// the storage agree. A storage lock is meant for coordination, not for hot contention (the
// file storage polls a held lock every second), so the updates of one name within this
// process first queue on a local mutex: only one of them at a time waits for the storage's
// lock, and takes it at once unless another instance holds it.
type storageBackend struct {
	storage Storage
	local   [64]sync.Mutex // by the name's first byte
	logger  *zap.Logger
}

// NewStorageStore returns the caddy store on storage.
func NewStorageStore(storage Storage, cfg Config, logger *zap.Logger) *Store {
	if logger == nil {
		logger = zap.NewNop()
	}
	return NewStore(&storageBackend{storage: storage, logger: logger}, cfg)
}

// recordKey is the storage key of a name's record.
func recordKey(name string) string {
	return storagePrefix + "/" + name[:2] + "/" + name
}

func (s *storageBackend) update(ctx context.Context, name string, fn func(cur *record) (*record, bool)) error {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	mu := &s.local[hexNibbles(name)%uint(len(s.local))]
	mu.Lock()
	defer mu.Unlock()
	lock := "credgate_idempotency_" + name
	if err := s.storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("idempotency store: lock: %w", err)
	}
	defer func() {
		// Unlocked even when ctx ended, or the key stays locked until the lock goes stale.
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), storageTimeout)
		defer ucancel()
		if err := s.storage.Unlock(uctx, lock); err != nil {
			s.logger.Error("idempotency store: unlock failed", zap.String("lock", lock), zap.Error(err))
		}
	}()
	key := recordKey(name)
	var cur *record
	data, err := s.storage.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("idempotency store: load: %w", err)
	default:
		cur = new(record)
		if err := json.Unmarshal(data, cur); err != nil || cur.V != 1 {
			// Unreadable: as if absent, so that it is replaced rather than blocking the key.
			s.logger.Warn("idempotency store: unreadable record replaced", zap.String("key", key))
			cur = nil
		}
	}
	next, write := fn(cur)
	if !write {
		return nil
	}
	if next == nil {
		if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("idempotency store: delete: %w", err)
		}
		return nil
	}
	data, err = json.Marshal(next)
	if err != nil {
		return err
	}
	if err := s.storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("idempotency store: store: %w", err)
	}
	return nil
}

// hexNibbles returns the value of a name's first two hex digits.
func hexNibbles(name string) uint {
	var b [1]byte
	if len(name) >= 2 {
		_, _ = hex.Decode(b[:], []byte(name[:2]))
	}
	return uint(b[0])
}

// sweep deletes the expired records of the caddy store: a key that never comes again would
// otherwise stay in the storage for good. Each instance sweeps; deletion is under the key's
// lock and checks the expiry again, so a key just taken again is left alone.
func (l *Store) sweep(ctx context.Context) (deleted int, err error) {
	s, ok := l.backend.(*storageBackend)
	if !ok {
		return 0, nil
	}
	keys, err := s.storage.List(ctx, storagePrefix, true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("idempotency store: list: %w", err)
	}
	now := l.now()
	for _, key := range keys {
		if ctx.Err() != nil {
			return deleted, ctx.Err()
		}
		name := key[strings.LastIndexByte(key, '/')+1:]
		if len(name) != sha256.Size*2 || key != recordKey(name) {
			continue // a folder
		}
		data, err := s.storage.Load(ctx, key)
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(data, &r) == nil && r.Expires.After(now) {
			continue // live: no lock taken
		}
		err = s.update(ctx, name, func(cur *record) (*record, bool) {
			if cur != nil && cur.Expires.After(now) {
				return nil, false
			}
			deleted++
			return nil, true
		})
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// sweepLoop sweeps every interval until ctx ends (the config is unloaded). The first sweep
// comes after a random part of the interval: instances started together do not sweep
// together, and a config replaced sooner than the interval still sweeps at times. It makes no
// storage call before then, so `caddy validate` does not touch the storage.
func (l *Store) SweepLoop(ctx context.Context, every time.Duration) {
	logger := l.backend.(*storageBackend).logger
	wait := time.Duration(mathrand.Int64N(int64(every))) + time.Minute
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := l.sweep(ctx)
		if err != nil && ctx.Err() == nil {
			logger.Warn("idempotency store: sweeping expired keys failed", zap.Int("deleted", n), zap.Error(err))
		} else if n > 0 {
			logger.Debug("idempotency store: expired keys deleted", zap.Int("deleted", n))
		}
		t.Reset(every)
	}
}

// Interface guards.
var (
	_ Backend             = (*MemoryBackend)(nil)
	_ Backend             = (*storageBackend)(nil)
	_ caddy.Destructor    = (*MemoryBackend)(nil)
	_ http.ResponseWriter = (*Recorder)(nil)
)
