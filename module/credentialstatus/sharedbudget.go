package credentialstatus

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/sharedstate"
)

// sharedBudget is a provider's rate budget shared by the instances of a fleet: one token
// bucket in Redis (rate a second, burst at most), taken from atomically by a Lua script, not
// read, changed and written back. Like rate.Limiter's Reserve, a call takes a token now and
// waits for the time the bucket would have had it: tokens may go below zero, and the wait is
// how long the bucket takes to refill to where this call's token was. The script reads
// Redis's clock (TIME), so the instances' clocks do not matter. While Redis cannot be
// reached, each instance uses its own limiter (backend.limiter) instead.
type sharedBudget struct {
	conn  *sharedstate.Conn
	key   string
	rate  float64 // tokens a second
	burst int
}

// takeScript takes one token of the bucket KEYS[1] (ARGV: rate a second, burst, the longest
// wait in microseconds the caller accepts). It answers the wait in microseconds when it took
// the token, or minus the wait when that would be longer than the caller accepts (then it
// takes nothing).
var takeScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxwait = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  ts = now
end
tokens = tokens - 1
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens * 1000000 / rate) end
if wait > maxwait then return -wait end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait`)

func newSharedBudget(conn *sharedstate.Conn, b *backend, key string) *sharedBudget {
	return &sharedBudget{
		conn: conn, key: conn.Key("rate", b.name, sharedName(key)),
		rate: float64(b.s.rate), burst: b.s.burst,
	}
}

// take reserves a token that comes within maxWait; handled is false when Redis cannot be
// used. When it reserved one, wait is how long to wait for it; when not, wait is how long it
// would have been.
func (s *sharedBudget) take(maxWait time.Duration) (wait time.Duration, reserved, handled bool) {
	if !s.conn.Up() {
		return 0, false, false
	}
	ctx, cancel := sharedstate.Ctx(context.Background())
	defer cancel()
	n, err := takeScript.Run(ctx, s.conn.Client, []string{s.key},
		strconv.FormatFloat(s.rate, 'f', -1, 64), s.burst, maxWait.Microseconds()).Int64()
	if err != nil {
		_ = s.conn.Failed(err)
		return 0, false, false
	}
	if n < 0 {
		return time.Duration(-n) * time.Microsecond, false, true
	}
	return time.Duration(n) * time.Microsecond, true, true
}

// maxSharedWait bounds how long a batch's call waits for its token when its context has no
// deadline.
const maxSharedWait = 5 * time.Minute

// sharedTake takes a token of the provider's fleet budget, when it has one and Redis answers;
// handled is false otherwise, and the caller uses the instance's own limiter. A batch's call
// (wait true) waits for its token within ctx's deadline; a single request's at most bound, or
// it fails with the gateway's 429 rate-limited.
func (b *backend) sharedTake(ctx context.Context, wait bool, bound time.Duration) (handled bool, err error) {
	sb := b.shared
	if sb == nil {
		return false, nil
	}
	if wait {
		bound = maxSharedWait
		if deadline, ok := ctx.Deadline(); ok {
			bound = time.Until(deadline)
		}
	}
	d, reserved, handled := sb.take(max(bound, 0))
	if !handled {
		return false, nil
	}
	if !reserved {
		if wait {
			return true, &provider.Error{Kind: provider.KindRateLimited, RetryAfter: max(time.Second, d), Detail: "the provider's rate budget has no room before the provider's timeout", Err: errBudget}
		}
		return true, &provider.Error{Kind: provider.KindRateLimited, RetryAfter: d, Detail: "the provider's rate budget has no room within " + bound.String(), Err: errBudget}
	}
	if d <= 0 {
		return true, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true, provider.ContextError(ctx, ctx.Err())
	case <-t.C:
		return true, nil
	}
}
