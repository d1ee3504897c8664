package credentialstatus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/sharedstate"
)

// sharedBreaker is a provider's breaker shared by the instances of a fleet: gobreaker's
// DistributedCircuitBreaker on a Redis SharedDataStore (redisBreakerStore), with the same
// settings as the instance's own breaker, which takes over while Redis cannot be reached.
//
// gobreaker's distributed breaker runs each request under a fleet-wide lock, and reads and
// writes its whole state around it: a provider's calls would run one at a time across the
// fleet. So the call itself runs outside it. allow reads the shared state (one GET) and decides
// as gobreaker would: closed lets the call through, open refuses it until its time is up,
// half-open lets max_requests trials through (counted per open period by an INCR). finish
// reports the answer through DistributedCircuitBreaker.Execute, which applies it to the
// shared counts under the lock and makes the transitions (closed to open after N failures,
// half-open to closed or open again); a success of a closed breaker with no failures counted
// changes nothing that matters and is not written, so a healthy provider costs one GET a call.
type sharedBreaker struct {
	conn     *sharedstate.Conn
	name     string // gobreaker's name of the breaker: the provider and a hash of its settings
	settings gobreaker.Settings
	store    *redisBreakerStore
	key      string // the Redis key of gobreaker's shared state, made once

	mu  sync.Mutex
	dcb *gobreaker.DistributedCircuitBreaker[struct{}] // made on first use: its making locks and writes
}

func newSharedBreaker(conn *sharedstate.Conn, key string, settings gobreaker.Settings) *sharedBreaker {
	s := &sharedBreaker{conn: conn, settings: settings}
	s.name = settings.Name + ":" + sharedName(key)
	s.settings.Name = s.name
	s.store = &redisBreakerStore{conn: conn, token: randomToken()}
	s.key = s.store.key("gobreaker:state:" + s.name)
	return s
}

// get returns the distributed breaker, made on first use.
func (s *sharedBreaker) get() *gobreaker.DistributedCircuitBreaker[struct{}] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dcb == nil {
		dcb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](s.store, s.settings)
		if err != nil {
			_ = s.conn.Failed(err)
			return nil
		}
		s.dcb = dcb
	}
	return s.dcb
}

func (s *sharedBreaker) stateKey() string { return s.key }

// read returns the shared state; ok is false when Redis cannot be used.
func (s *sharedBreaker) read() (gobreaker.SharedState, bool) {
	var st gobreaker.SharedState
	if !s.conn.Up() {
		return st, false
	}
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	// MGET, not GET: a breaker that never tripped has no state key, and GET's redis.Nil goes
	// down go-redis's error path (a dozen allocations per call, on every request).
	vals, err := s.conn.Client.MGet(ctx, s.key).Result()
	if err != nil {
		_ = s.conn.Failed(err)
		return st, false
	}
	data, _ := vals[0].(string)
	if data == "" {
		return st, true // none yet: closed, no counts
	}
	if json.Unmarshal([]byte(data), &st) != nil {
		return gobreaker.SharedState{}, true
	}
	return st, true
}

// state returns the shared breaker's state as gobreaker would see it now.
func (s *sharedBreaker) state() (gobreaker.State, time.Time, bool) {
	st, ok := s.read()
	if !ok {
		return 0, time.Time{}, false
	}
	if st.State == gobreaker.StateOpen && !st.Expiry.After(time.Now()) {
		return gobreaker.StateHalfOpen, st.Expiry, true
	}
	return st.State, st.Expiry, true
}

// allow asks the shared breaker to let one call through; handled is false when Redis cannot
// be used, and the caller asks its own breaker.
func (s *sharedBreaker) allow(b *breaker) (done func(error), err error, handled bool) {
	st, ok := s.read()
	if !ok {
		return nil, nil, false
	}
	now := time.Now()
	switch {
	case st.State == gobreaker.StateClosed:
		trivial := st.Counts.ConsecutiveFailures == 0
		return func(err error) { s.finish(err, trivial) }, nil, true
	case st.State == gobreaker.StateOpen && st.Expiry.After(now):
		return nil, &provider.Error{Kind: provider.KindUnavailable, RetryAfter: max(time.Second, st.Expiry.Sub(now)), Detail: "circuit breaker is open: the provider failed repeatedly"}, true
	}
	// Half-open, or open with its time up: a trial, if this open period has one left.
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	trials := s.store.key("trials:" + s.name + ":" + strconv.FormatUint(st.Generation, 10))
	pipe := s.conn.Client.TxPipeline()
	n := pipe.Incr(ctx, trials)
	pipe.PExpire(ctx, trials, 2*b.openFor+time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		_ = s.conn.Failed(err)
		return nil, nil, false
	}
	if uint32(n.Val()) > s.settings.MaxRequests {
		return nil, &provider.Error{Kind: provider.KindUnavailable, RetryAfter: time.Second, Detail: "circuit breaker is open: the provider failed repeatedly"}, true
	}
	return func(err error) { s.finish(err, false) }, nil, true
}

// finish reports a call's answer to the shared breaker (see sharedBreaker).
func (s *sharedBreaker) finish(err error, trivial bool) {
	if excludedFromBreaker(err) || (trivial && !countsAsFailure(err)) || !s.conn.Up() {
		return
	}
	dcb := s.get()
	if dcb == nil {
		return
	}
	_, e := dcb.Execute(func() (struct{}, error) { return struct{}{}, err })
	if e != nil && e != err && !errors.Is(e, gobreaker.ErrOpenState) && !errors.Is(e, gobreaker.ErrTooManyRequests) {
		_ = s.conn.Failed(e)
	}
}

// redisBreakerStore is gobreaker's SharedDataStore on Redis. Its lock is a key set with SET
// NX and an expiry (so that a killed instance's lock goes), taken by one goroutine of the
// process at a time.
type redisBreakerStore struct {
	conn  *sharedstate.Conn
	token string // this process's: Unlock deletes only a lock it holds
	local sync.Mutex
}

// lockTTL bounds how long a lock of a killed instance lasts; lockWait how long Lock tries.
const (
	lockTTL  = 2 * time.Second
	lockWait = time.Second
)

var unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func (r *redisBreakerStore) key(name string) string { return r.conn.Key("breaker", name) }

// Lock implements gobreaker.SharedDataStore.
func (r *redisBreakerStore) Lock(name string) error {
	r.local.Lock()
	deadline := time.Now().Add(lockWait)
	for {
		ctx, cancel := sharedstate.Ctx(context.Background())
		ok, err := r.conn.Client.SetNX(ctx, r.key(name), r.token, lockTTL).Result()
		cancel()
		if err != nil {
			r.local.Unlock()
			return r.conn.Failed(err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			r.local.Unlock()
			return errors.New("shared breaker: lock busy")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Unlock implements gobreaker.SharedDataStore.
func (r *redisBreakerStore) Unlock(name string) error {
	defer r.local.Unlock()
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	return r.conn.Failed(unlockScript.Run(ctx, r.conn.Client, []string{r.key(name)}, r.token).Err())
}

// GetData implements gobreaker.SharedDataStore. A state that is not there (a Redis emptied
// or restarted without persistence) reads as a fresh closed breaker's: gobreaker would
// otherwise fail every call with ErrNoSharedState.
func (r *redisBreakerStore) GetData(name string) ([]byte, error) {
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	data, err := r.conn.Client.Get(ctx, r.key(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return json.Marshal(gobreaker.SharedState{Buckets: make([]gobreaker.Counts, 1)}) // one bucket, as a new breaker has
	}
	if err != nil {
		return nil, r.conn.Failed(err)
	}
	return data, nil
}

// SetData implements gobreaker.SharedDataStore. States are kept a day after their last
// change: a provider that is gone leaves nothing for good.
func (r *redisBreakerStore) SetData(name string, data []byte) error {
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	return r.conn.Failed(r.conn.Client.Set(ctx, r.key(name), data, 24*time.Hour).Err())
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ gobreaker.SharedDataStore = (*redisBreakerStore)(nil)
