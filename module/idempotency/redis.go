package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/module/sharedstate"
)

// The Redis store (idempotency_storage shared_state): one JSON record a key, under the shared
// state's prefix, that Redis itself expires at the record's end (the reservation's lease, or
// the answer's TTL), so it needs no sweep. A key's first request reserves it with an atomic
// SET NX (set if absent) with the lease as its expiry: of two instances that race for a key,
// exactly one runs the request. Every later change of a record (the answer kept, the key
// released) is a compare-and-set in one Lua script, which writes only if the record is still
// the one read: a reservation that ran out and was taken by another request is never
// overwritten by the first.
//
// When the shared state is down (sharedstate.Conn.Up), update fails at once, without waiting
// for Redis: the handler answers 503 idempotency-unavailable, since running the request
// could run it twice.

// errSharedDown is update's error while Redis cannot be reached.
var errSharedDown = errors.New("idempotency store: the shared state (Redis) cannot be reached")

// casScript replaces (ARGV[2] non-empty, expiring in ARGV[3] ms) or deletes (ARGV[2] empty)
// KEYS[1] only if it still holds ARGV[1]; 1 when it did.
var casScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)

// redisBackend is the Redis store's backend.
type redisBackend struct {
	conn *sharedstate.Conn
	now  func() time.Time
}

// NewRedisStore returns the store on the shared state conn.
func NewRedisStore(conn *sharedstate.Conn, cfg Config) *Store {
	return NewStore(&redisBackend{conn: conn, now: time.Now}, cfg)
}

// maxCASAttempts bounds how often update reads a record again after another instance
// changed it between its read and its write.
const maxCASAttempts = 8

func (r *redisBackend) update(ctx context.Context, name string, fn func(cur *record) (*record, bool)) error {
	if !r.conn.Up() {
		return errSharedDown
	}
	key := r.conn.Key("idempotency", name)
	for range maxCASAttempts {
		ok, err := r.try(ctx, key, fn)
		if err != nil {
			return fmt.Errorf("idempotency store: redis: %w", r.conn.Failed(err))
		}
		if ok {
			return nil
		}
	}
	return errors.New("idempotency store: the key kept changing under its update")
}

// try reads the record, asks fn, and writes its answer if the record is still the one read;
// false when it was not.
func (r *redisBackend) try(ctx context.Context, key string, fn func(cur *record) (*record, bool)) (bool, error) {
	cctx, cancel := sharedstate.Ctx(ctx)
	defer cancel()
	c := r.conn.Client
	data, err := c.Get(cctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		data = nil
	case err != nil:
		return false, err
	}
	var cur *record
	if data != nil {
		cur = new(record)
		if json.Unmarshal(data, cur) != nil || cur.V != 1 {
			cur = nil // unreadable: replaced, as the caddy store does
		}
	}
	next, write := fn(cur)
	if !write || (data == nil && next == nil) {
		return true, nil
	}
	var enc []byte
	var ttl time.Duration
	if next != nil {
		if enc, err = json.Marshal(next); err != nil {
			return false, err
		}
		ttl = max(next.Expires.Sub(r.now()), time.Millisecond)
	}
	if data == nil {
		return c.SetNX(cctx, key, enc, ttl).Result()
	}
	n, err := casScript.Run(cctx, c, []string{key}, data, enc, ttl.Milliseconds()).Int()
	return n == 1, err
}

var _ Backend = (*redisBackend)(nil)
