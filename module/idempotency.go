package module

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
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.uber.org/zap"
)

// The gateway's own Idempotency-Key store, after the IETF draft "The Idempotency-Key HTTP
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

// Defaults of the idempotency options.
const (
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultIdempotencyMaxKeys = 100_000
	// DefaultIdempotencyMaxMemory bounds the memory store's answers and bookkeeping, in bytes.
	DefaultIdempotencyMaxMemory = 64 << 20
	// DefaultIdempotencyLease is how long a reservation lasts when its request never ends (a
	// crashed instance's, a lost storage write). A replay meanwhile answers 409; after it, the
	// key is free again. Longer than any request can run: a provider's timeout covers all
	// its calls and retries, and a request asks at most a few providers.
	DefaultIdempotencyLease = 5 * time.Minute

	// MaxIdempotentAnswer is the largest answer body kept for replay, in bytes: the answer of
	// a batch of 10000 items fits. A larger answer releases its key, as a transient one does.
	MaxIdempotentAnswer = 8 << 20

	idemStorageMemory = "memory"
	idemStorageCaddy  = "caddy"

	// idemStoragePrefix is where the caddy store keeps its records, one a key, spread over
	// 256 folders by the name's first byte so that no folder of a file storage grows huge.
	idemStoragePrefix = "credgate/idempotency"
	// idemStorageTimeout bounds each of the caddy store's operations, lock wait included.
	idemStorageTimeout = 10 * time.Second
	// idemSweepEvery is how often the caddy store deletes expired records that nobody asked
	// for again (the memory store needs no sweep: its LRU pushes them out).
	idemSweepEvery = time.Hour
)

// idemUnavailable is the problem to answer when begin fails: the request does not run, since
// it could then run twice. The detail is generic; log begin's error.
func idemUnavailable() *Problem {
	p := newProblem(probIdemDown, "the Idempotency-Key store could not be reached; retry, or send the request without Idempotency-Key")
	p.retryAfter = time.Second
	return p
}

// IdempotencyOptions configure the gateway's Idempotency-Key store. The handler embeds them,
// so that they are options of its own JSON object.
type IdempotencyOptions struct {
	// How long the answer to a request with an Idempotency-Key is kept for replay. Default
	// 24h.
	IdempotencyTTL caddy.Duration `json:"idempotency_ttl,omitempty"`
	// Where answers are kept: "memory" (default; one instance's own) or "caddy" (Caddy's
	// configured storage, shared by every instance that uses the same storage).
	IdempotencyStorage string `json:"idempotency_storage,omitempty"`
	// How many keys the memory store holds at most. Default 100000. Its answers take at most
	// 64 MiB besides: the oldest keys go first when either bound is reached.
	IdempotencyMaxKeys int `json:"idempotency_max_keys,omitempty"`
}

// unmarshalIdempotencyOption parses the current Caddyfile option if it is one of the
// idempotency options, and says whether it was:
//
//	idempotency_ttl      <duration>
//	idempotency_storage  memory|caddy
//	idempotency_max_keys <n>
func (o *IdempotencyOptions) unmarshalIdempotencyOption(d *caddyfile.Dispenser) (bool, error) {
	switch d.Val() {
	case "idempotency_ttl":
		return true, parseDuration(d, &o.IdempotencyTTL)
	case "idempotency_storage":
		if err := parseString(d, &o.IdempotencyStorage); err != nil {
			return true, err
		}
		if s := o.IdempotencyStorage; s != idemStorageMemory && s != idemStorageCaddy {
			return true, d.Errf("idempotency_storage: want memory or caddy, not %q", s)
		}
		return true, nil
	case "idempotency_max_keys":
		return true, parseInt(d, &o.IdempotencyMaxKeys)
	}
	return false, nil
}

// validateIdempotency checks the options; zero values mean the defaults.
func (o *IdempotencyOptions) validateIdempotency() error {
	switch o.IdempotencyStorage {
	case "", idemStorageMemory, idemStorageCaddy:
	default:
		return fmt.Errorf("idempotency_storage: want memory or caddy, not %q", o.IdempotencyStorage)
	}
	if o.IdempotencyTTL < 0 {
		return fmt.Errorf("idempotency_ttl must be positive")
	}
	if o.IdempotencyMaxKeys < 0 {
		return fmt.Errorf("idempotency_max_keys must be positive")
	}
	return nil
}

// provisionIdempotency makes the store the options describe. The memory store comes from the
// pool, so that a reload keeps its keys; poolKey names it, for Cleanup to release ("" for the
// caddy store, which keeps nothing in the pool). The caddy store starts a sweeper that stops
// with ctx.
func (o *IdempotencyOptions) provisionIdempotency(ctx caddy.Context, logger *zap.Logger) (store idemStore, poolKey string, err error) {
	if err := o.validateIdempotency(); err != nil {
		return nil, "", err
	}
	cfg := idemConfig{
		TTL:       time.Duration(o.IdempotencyTTL),
		MaxKeys:   o.IdempotencyMaxKeys,
		MaxMemory: DefaultIdempotencyMaxMemory,
		Lease:     DefaultIdempotencyLease,
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultIdempotencyTTL
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultIdempotencyMaxKeys
	}
	if o.IdempotencyStorage != idemStorageCaddy {
		m, key, err := newMemoryIdemStore(cfg)
		if err != nil {
			return nil, "", err // not a nil *idemLayer in a non-nil interface
		}
		return m, key, nil
	}
	storage, err := caddyStorage(ctx)
	if err != nil {
		return nil, "", err
	}
	s := newStorageIdemStore(storage, cfg, logger)
	go s.sweepLoop(ctx, idemSweepEvery)
	return s, "", nil
}

// caddyStorage returns the storage of ctx's config. A context made with caddy.NewContext from
// nothing (in tests) has no config, and Storage panics on it: that is an error here.
func caddyStorage(ctx caddy.Context) (s idemStorage, err error) {
	defer func() {
		if recover() != nil {
			s, err = nil, errors.New("idempotency_storage caddy: this context has no configured storage")
		}
	}()
	if st := ctx.Storage(); st != nil {
		return st, nil
	}
	return nil, errors.New("idempotency_storage caddy: no storage is configured")
}

// idemStore is what the handler uses for requests that carry an Idempotency-Key.
//
// For each such request the handler calls begin, then, when begin says idemRun, runs the
// request and calls finish with its answer (or release when there is none to keep, as after
// a panic: finish and release are safe to call more than once, and after each other).
type idemStore interface {
	// begin reserves caller's key for a request of fingerprint fp (see idemFingerprint). The
	// outcome says what to do: run it, replay the stored answer, answer 409 (in flight) or
	// 422 (mismatch). An error means the store could not be asked: the request must not run
	// (the handler answers 503), since it could then run twice.
	begin(ctx context.Context, caller, key, fp string) (idemBegin, error)
	// finish keeps a for replay if it is a final answer (see idemKeeps), and otherwise
	// releases the key; a nil releases it too. a is kept as it is: do not modify it after.
	// It completes even when ctx is canceled, the caller having gone: the change it answers
	// was made. An error means a was not kept;
	// the reservation then ends with its lease.
	finish(ctx context.Context, b idemBegin, a *storedAnswer) error
	// release ends a reservation without keeping an answer, so that the next request with
	// the key runs. Like finish, it completes even when ctx is canceled.
	release(ctx context.Context, b idemBegin) error
}

// idemOutcome is what begin says to do with a request.
type idemOutcome int

const (
	// idemRun: the request is the key's first (or the first since its answer expired or was
	// released); run it, then call finish or release.
	idemRun idemOutcome = iota + 1
	// idemReplay: write idemBegin.Answer with writeReplay; call nothing else.
	idemReplay
	// idemInFlight: a request with the key is running; answer 409.
	idemInFlight
	// idemMismatch: the key was used for a request of another fingerprint; answer 422.
	idemMismatch
)

func (o idemOutcome) String() string {
	switch o {
	case idemRun:
		return "run"
	case idemReplay:
		return "replay"
	case idemInFlight:
		return "in-flight"
	case idemMismatch:
		return "mismatch"
	}
	return "unknown"
}

// idemBegin is begin's answer.
type idemBegin struct {
	Outcome idemOutcome
	// Answer is the stored answer, with idemReplay. Shared: do not modify it.
	Answer *storedAnswer

	name  string // the key's storage name, see idemName
	token string // the reservation's, with idemRun: finish and release act only on their own
}

// problem returns the problem to answer for idemInFlight and idemMismatch, nil otherwise.
func (b idemBegin) problem() *Problem {
	switch b.Outcome {
	case idemInFlight:
		p := newProblem(probIdemInUse, "a request with this Idempotency-Key is still being processed; retry once it has completed")
		p.retryAfter = time.Second
		return p
	case idemMismatch:
		return newProblem(probIdemReused, "this Idempotency-Key was used for a different request; use a new key for a new request")
	}
	return nil
}

// storedAnswer is an answer kept for replay: its status, the headers that describe its body,
// and the body. It holds no secret (answers have none) and nothing of the request.
type storedAnswer struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// idemKeptHeaders are the answer headers kept with it. Others (Date, Server, Alt-Svc, a
// Retry-After of a transient answer) belong to the moment they were sent.
var idemKeptHeaders = []string{"Content-Type", "Cache-Control", "Content-Language", "Location"}

// idemKeeps says whether an answer of this status is final, to be kept for replay: 2xx, and
// 4xx but 408, 409, 415, 429 and 499. The others are transient, and release the key.
func idemKeeps(status int) bool {
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

// writeReplay writes a stored answer again, marked as a replay.
func writeReplay(w http.ResponseWriter, a *storedAnswer) {
	h := w.Header()
	for k, v := range a.Header {
		h.Set(k, v)
	}
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// idemRecorder passes an answer on to the client and keeps a copy of it, for finish. The
// handler wraps its ResponseWriter in one for a request that begin let run.
type idemRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	over   bool // the body outgrew MaxIdempotentAnswer: not kept
}

func newIdemRecorder(w http.ResponseWriter) *idemRecorder {
	return &idemRecorder{ResponseWriter: w}
}

// WriteHeader implements http.ResponseWriter.
func (r *idemRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (r *idemRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if !r.over {
		if r.body.Len()+len(p) > MaxIdempotentAnswer {
			r.over = true
			r.body = bytes.Buffer{}
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (r *idemRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// answer returns what was written, or nil when there is nothing to keep: no answer, or one
// too large. Whether its status is final is finish's to judge.
func (r *idemRecorder) answer() *storedAnswer {
	if r.status == 0 || r.over {
		return nil
	}
	a := &storedAnswer{Status: r.status, Body: bytes.Clone(r.body.Bytes())}
	h := r.Header()
	for _, k := range idemKeptHeaders {
		if v := h.Get(k); v != "" {
			if a.Header == nil {
				a.Header = make(map[string]string, 2)
			}
			a.Header[k] = v
		}
	}
	return a
}

// idemFingerprint returns the fingerprint of a request, in hex: a SHA-256 of its method, its
// escaped path, the values of the query parameters named in params (those that change what
// the request does, such as dry_run or provider; others are ignored) and its raw body. The
// body is taken byte for byte: a retry sends the same bytes, and a client that re-encodes its
// JSON differently sends, as far as the key is concerned, another request.
func idemFingerprint(r *http.Request, body []byte, params ...string) string {
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

// idemName turns a caller's Idempotency-Key (already checked by idempotencyKey) into the
// name the store keeps it under: a hex SHA-256 of the caller and the key, so that two callers
// never share a key, and the key, client input, never reaches a storage path.
func idemName(caller, key string) string {
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

// idemRecord is what a store keeps under a key's name: in flight (Answer nil, Token the
// reservation's) until the answer is kept, then the answer. Either ends at Expires: the
// lease's end, or the answer's TTL.
type idemRecord struct {
	V           int           `json:"v"`
	Fingerprint string        `json:"fingerprint"`
	Token       string        `json:"token,omitempty"`
	Expires     time.Time     `json:"expires"`
	Answer      *storedAnswer `json:"answer,omitempty"`
}

// size is an estimate of the record's memory, for the memory store's bound.
func (r *idemRecord) size(name string) int64 {
	n := int64(len(name)+len(r.Fingerprint)+len(r.Token)) + 256
	if a := r.Answer; a != nil {
		n += int64(len(a.Body))
		for k, v := range a.Header {
			n += int64(len(k)+len(v)) + 32
		}
	}
	return n
}

// idemBackend holds the records. Its one operation is an atomic read-modify-write of one
// record; begin, finish, release and the sweep are written on top of it once, for both
// stores.
type idemBackend interface {
	// update calls fn with name's record (nil when there is none, or it cannot be read),
	// while no other update of name runs (for a shared storage, on any instance). When fn
	// says write, next replaces the record; a nil next deletes it.
	update(ctx context.Context, name string, fn func(cur *idemRecord) (next *idemRecord, write bool)) error
}

// idemConfig is what a store is made with.
type idemConfig struct {
	TTL       time.Duration // how long an answer is kept
	Lease     time.Duration // how long a reservation lasts at most
	MaxKeys   int           // the memory store's bound on keys
	MaxMemory int64         // the memory store's bound on bytes
}

// idemLayer implements idemStore on an idemBackend, with one handler's TTL. Handlers of
// different TTLs can share a backend: a record carries its own expiry.
type idemLayer struct {
	backend idemBackend
	ttl     time.Duration
	lease   time.Duration
	now     func() time.Time // time.Now; tests set a clock
}

// errIdemLost says that a reservation ended (its lease ran out and another request took the
// key) before its answer could be kept.
var errIdemLost = errors.New("the Idempotency-Key's reservation ended before its answer was kept")

func (l *idemLayer) begin(ctx context.Context, caller, key, fp string) (idemBegin, error) {
	b := idemBegin{name: idemName(caller, key)}
	token, err := newIdemToken()
	if err != nil {
		return b, err
	}
	now := l.now()
	err = l.backend.update(ctx, b.name, func(cur *idemRecord) (*idemRecord, bool) {
		if cur == nil || !cur.Expires.After(now) { // absent, or expired: as good as absent
			b.Outcome, b.token = idemRun, token
			return &idemRecord{V: 1, Fingerprint: fp, Token: token, Expires: now.Add(l.lease)}, true
		}
		switch {
		case cur.Fingerprint != fp:
			b.Outcome = idemMismatch
		case cur.Answer == nil:
			b.Outcome = idemInFlight
		default:
			b.Outcome, b.Answer = idemReplay, cur.Answer
		}
		return nil, false
	})
	if err != nil {
		return idemBegin{}, err
	}
	return b, nil
}

func (l *idemLayer) finish(ctx context.Context, b idemBegin, a *storedAnswer) error {
	if a == nil || !idemKeeps(a.Status) {
		return l.release(ctx, b)
	}
	if b.Outcome != idemRun || b.token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idemStorageTimeout)
	defer cancel()
	lost := false
	err := l.backend.update(ctx, b.name, func(cur *idemRecord) (*idemRecord, bool) {
		if cur == nil || cur.Token != b.token {
			lost = true
			return nil, false
		}
		return &idemRecord{V: 1, Fingerprint: cur.Fingerprint, Expires: l.now().Add(l.ttl), Answer: a}, true
	})
	if err == nil && lost {
		err = errIdemLost
	}
	return err
}

func (l *idemLayer) release(ctx context.Context, b idemBegin) error {
	if b.Outcome != idemRun || b.token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idemStorageTimeout)
	defer cancel()
	return l.backend.update(ctx, b.name, func(cur *idemRecord) (*idemRecord, bool) {
		if cur == nil || cur.Token != b.token || cur.Answer != nil {
			return nil, false // not ours any more
		}
		return nil, true
	})
}

// newIdemToken returns a random token that names one reservation.
func newIdemToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// memIdem is the memory store's backend: a plain LRU (not golang-lru's expirable one, which
// starts a goroutine per cache and never stops it) under one mutex, bounded by keys and by
// bytes. Expired records are replaced when their key comes again, or pushed out by newer
// ones. It lives in the pool, so that a reload keeps the keys.
type memIdem struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, *idemRecord]
	bytes    int64
	maxBytes int64
}

func newMemIdem(maxKeys int, maxBytes int64) (*memIdem, error) {
	m := &memIdem{maxBytes: maxBytes}
	var err error
	m.lru, err = simplelru.NewLRU[string, *idemRecord](maxKeys, func(name string, r *idemRecord) {
		m.bytes -= r.size(name)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *memIdem) update(_ context.Context, name string, fn func(cur *idemRecord) (*idemRecord, bool)) error {
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
	m.lru.Add(name, next)
	m.bytes += next.size(name)
	for m.bytes > m.maxBytes && m.lru.Len() > 1 {
		m.lru.RemoveOldest()
	}
	return nil
}

func (m *memIdem) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Destruct implements caddy.Destructor: the last config that used the store is gone.
func (m *memIdem) Destruct() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Purge()
	return nil
}

// newMemoryIdemStore returns a memory store from the pool (made when the pool has none of
// these bounds), and the pool key to release in Cleanup.
func newMemoryIdemStore(cfg idemConfig) (*idemLayer, string, error) {
	key := fmt.Sprintf("idempotency|memory|%d|%d", cfg.MaxKeys, cfg.MaxMemory)
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newMemIdem(cfg.MaxKeys, cfg.MaxMemory)
	})
	if err != nil {
		return nil, "", fmt.Errorf("idempotency store: %v", err)
	}
	return &idemLayer{backend: val.(*memIdem), ttl: cfg.TTL, lease: cfg.Lease, now: time.Now}, key, nil
}

// idemStorage is what the caddy store uses of certmagic.Storage (which Caddy's configured
// storage module provides).
type idemStorage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, path string, recursive bool) ([]string, error)
}

// storageIdem is the caddy store's backend: one JSON record a key in Caddy's storage, read
// and written under the storage's lock of that key, which is what makes instances that share
// the storage agree. A storage lock is meant for coordination, not for hot contention (the
// file storage polls a held lock every second), so the updates of one name within this
// process first queue on a local mutex: only one of them at a time waits for the storage's
// lock, and takes it at once unless another instance holds it.
type storageIdem struct {
	storage idemStorage
	local   [64]sync.Mutex // by the name's first byte
	logger  *zap.Logger
}

// newStorageIdemStore returns the caddy store on storage.
func newStorageIdemStore(storage idemStorage, cfg idemConfig, logger *zap.Logger) *idemLayer {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &idemLayer{backend: &storageIdem{storage: storage, logger: logger}, ttl: cfg.TTL, lease: cfg.Lease, now: time.Now}
}

// idemRecordKey is the storage key of a name's record.
func idemRecordKey(name string) string {
	return idemStoragePrefix + "/" + name[:2] + "/" + name
}

func (s *storageIdem) update(ctx context.Context, name string, fn func(cur *idemRecord) (*idemRecord, bool)) error {
	ctx, cancel := context.WithTimeout(ctx, idemStorageTimeout)
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
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), idemStorageTimeout)
		defer ucancel()
		if err := s.storage.Unlock(uctx, lock); err != nil {
			s.logger.Error("idempotency store: unlock failed", zap.String("lock", lock), zap.Error(err))
		}
	}()
	key := idemRecordKey(name)
	var cur *idemRecord
	data, err := s.storage.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("idempotency store: load: %w", err)
	default:
		cur = new(idemRecord)
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
func (l *idemLayer) sweep(ctx context.Context) (deleted int, err error) {
	s, ok := l.backend.(*storageIdem)
	if !ok {
		return 0, nil
	}
	keys, err := s.storage.List(ctx, idemStoragePrefix, true)
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
		if len(name) != sha256.Size*2 || key != idemRecordKey(name) {
			continue // a folder
		}
		data, err := s.storage.Load(ctx, key)
		if err != nil {
			continue
		}
		var r idemRecord
		if json.Unmarshal(data, &r) == nil && r.Expires.After(now) {
			continue // live: no lock taken
		}
		err = s.update(ctx, name, func(cur *idemRecord) (*idemRecord, bool) {
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
func (l *idemLayer) sweepLoop(ctx context.Context, every time.Duration) {
	logger := l.backend.(*storageIdem).logger
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
	_ idemStore           = (*idemLayer)(nil)
	_ idemBackend         = (*memIdem)(nil)
	_ idemBackend         = (*storageIdem)(nil)
	_ caddy.Destructor    = (*memIdem)(nil)
	_ http.ResponseWriter = (*idemRecorder)(nil)
)
