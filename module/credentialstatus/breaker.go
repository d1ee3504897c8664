package credentialstatus

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/credgate/credgate/module/provider"
)

// pool holds the state that must outlive a config reload: breakers and ID caches. Entries are
// keyed by what defines them, so a reload that keeps a provider's settings keeps its breaker,
// and one that changes them gets a fresh breaker.
var pool = caddy.NewUsagePool()

// breaker is a provider's circuit breaker: gobreaker's two-step breaker, because the host
// classifies an answer only after the adapter has decoded it, with an operator's forced
// state on top (see forceCell) and counts of its own for the admin API.
type breaker struct {
	name     string // the provider's
	adapter  string
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last trip
	seq      uint64       // order of creation: of two breakers of one name, the newer is the reload's

	// force is the operator's forced state of every breaker of this provider name.
	force *forceCell
	// settings are cb's, for the shared breaker made with the same.
	settings gobreaker.Settings
	// shared is the breaker a fleet shares (shared_state), which cb stands in for while
	// Redis cannot be reached. Nil without shared_state.
	shared *sharedBreaker

	// Counts of the breaker's whole life. gobreaker's own counts start again at every state
	// change (a generation); these go on, so that an operator sees what the provider did.
	requests    atomic.Uint64 // calls let through
	successes   atomic.Uint64 // healthy answers, a 404 or a 409 included
	failures    atomic.Uint64 // answers that count against the provider (countsAsFailure)
	rejected    atomic.Uint64 // calls failed fast: open, half-open and full, or held open
	consecutive atomic.Uint64 // failures since the last success (gobreaker's restart on a trip)
	lastFailure atomic.Int64  // unix nanoseconds; 0 when it never failed
}

// breakerSeq numbers breakers in their order of creation.
var breakerSeq atomic.Uint64

func breakerKey(name, adapter string, s settings) string {
	return fmt.Sprintf("breaker|%s|%s|%s|%d|%s|%d", name, adapter, s.baseURL, s.failures, s.openFor, s.halfOpen)
}

func newBreaker(name, adapter string, s settings, logger *zap.Logger) *breaker {
	b := &breaker{name: name, adapter: adapter, openFor: s.openFor, seq: breakerSeq.Add(1), force: forceFor(name)}
	failures := uint32(s.failures)
	b.settings = gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(s.halfOpen),
		Timeout:     s.openFor,
		// Our "failures N" opens on the Nth consecutive failure (gobreaker's default opens
		// after more than 5).
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			logger.Warn("circuit breaker state changed",
				zap.String("provider", name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
		IsSuccessful: func(err error) bool { return !countsAsFailure(err) },
		IsExcluded:   excludedFromBreaker,
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](b.settings)
	return b
}

// Destruct implements caddy.Destructor; a breaker holds no resources.
func (b *breaker) Destruct() error { return nil }

// countsAsFailure says which errors are the provider's failures: 5xx, timeouts, connection
// errors, malformed and oversized answers. A 404, 403, 409 or 422 is a healthy answer.
func countsAsFailure(err error) bool {
	if err == nil {
		return false
	}
	switch provider.KindOf(err) {
	case provider.KindUpstream, provider.KindTimeout:
		return true
	}
	return false
}

// excludedFromBreaker keeps out of the counts what says nothing about the provider's health:
// the caller's own cancellation, a rate limit (the provider answered, and asks for less), and
// the provider rejecting the gateway's credentials (a configuration fault that more requests
// will not mend; the problem says so).
func excludedFromBreaker(err error) bool {
	if err == nil {
		return false
	}
	switch provider.KindOf(err) {
	case provider.KindCanceled, provider.KindRateLimited, provider.KindAuth:
		return true
	}
	return false
}

// heldOpenDetail is the detail of the error of a call refused because an operator holds the
// breaker open.
const heldOpenDetail = "circuit breaker is held open by an operator"

// allow asks the breaker to let one call through; the caller reports the call's answer with
// finish and the done that allow returned. When it does not, the error is a KindUnavailable
// *provider.Error with the time until the breaker lets a trial through.
//
// An operator's forced state comes first and keeps gobreaker out of it: held open, every call
// fails at once; held closed, every call goes through, and its answer is counted in the
// breaker's own counts only, so that gobreaker is where it was when the operator lets go.
func (b *breaker) allow() (func(error), error) {
	if f := b.force.load(); f != nil {
		if f.state == gobreaker.StateOpen {
			b.rejected.Add(1)
			// A hold has no end the gateway knows of. The provider's open_for is the pace
			// its operator chose for retries against a provider that cannot be used: a
			// client that honours it asks no more often than of a tripped breaker.
			return nil, &provider.Error{Kind: provider.KindUnavailable, RetryAfter: b.openFor, Detail: heldOpenDetail}
		}
		b.requests.Add(1)
		return nil, nil // past gobreaker: finish counts the answer in our counts only
	}
	if b.shared != nil {
		if done, err, handled := b.shared.allow(b); handled {
			if err != nil {
				b.rejected.Add(1)
				return nil, err
			}
			b.requests.Add(1)
			return done, nil
		}
	}
	done, err := b.cb.Allow()
	if err == nil {
		b.requests.Add(1)
		return done, nil
	}
	b.rejected.Add(1)
	retry := time.Second
	if errors.Is(err, gobreaker.ErrOpenState) {
		if left := b.openFor - time.Since(time.Unix(0, b.openedAt.Load())); left > retry {
			retry = left
		}
	}
	return nil, &provider.Error{Kind: provider.KindUnavailable, RetryAfter: retry, Detail: "circuit breaker is open: the provider failed repeatedly"}
}

// finish reports the answer of a call that allow let through: done is what allow returned
// (nil for a call a forced close let past gobreaker). Counting here rather than in a wrapper
// of done saves a call an allocation.
func (b *breaker) finish(done func(error), err error) {
	b.record(err)
	if done != nil {
		done(err)
	}
}

// record counts the answer of a call that allow let through, the way gobreaker classifies
// it: a failure, a success, or (a cancellation, a rate limit, a rejected gateway credential)
// neither.
func (b *breaker) record(err error) {
	switch {
	case countsAsFailure(err):
		b.failures.Add(1)
		b.consecutive.Add(1)
		b.lastFailure.Store(time.Now().UnixNano())
	case !excludedFromBreaker(err):
		b.successes.Add(1)
		b.consecutive.Store(0)
	}
}

// state returns the breaker's state: the fleet's when it shares one and Redis answers.
func (b *breaker) state() gobreaker.State {
	if b.shared != nil {
		if st, expiry, ok := b.shared.state(); ok {
			if st == gobreaker.StateOpen {
				b.openedAt.Store(expiry.Add(-b.openFor).UnixNano())
			}
			return st
		}
	}
	return b.cb.State()
}

// effectiveState returns the state the breaker acts on, and whether an operator forced it:
// the forced state when there is one, gobreaker's otherwise.
func (b *breaker) effectiveState() (gobreaker.State, bool) {
	if f := b.force.load(); f != nil {
		return f.state, true
	}
	return b.state(), false
}

// forcedState is an operator's hold on a provider's breaker.
type forcedState struct {
	state gobreaker.State // StateOpen or StateClosed
	since time.Time
}

// forceCell holds the forced state of the breakers of one provider name; nil is "automatic".
//
// Forced states live here, outside gobreaker and outside the pool, keyed by the provider's
// name only: an operator forces a provider, not one set of its settings, so a hold outlives a
// reload, even one that gives the provider a fresh breaker, and applies to every handler that
// configures a provider of that name. Each breaker keeps a pointer to its name's cell, so
// that allow reads it with one atomic load. Cells are never removed (a breaker may still
// point to one): there is one per provider name the process has ever configured. A hold
// lasts until it is released or the process ends; it is not written to disk.
type forceCell struct {
	p atomic.Pointer[forcedState]
}

func (c *forceCell) load() *forcedState { return c.p.Load() }

// forces maps a provider name to its *forceCell.
var forces sync.Map

// forceFor returns the cell of a provider name, made on first use.
func forceFor(name string) *forceCell {
	if c, ok := forces.Load(name); ok {
		return c.(*forceCell)
	}
	c, _ := forces.LoadOrStore(name, new(forceCell))
	return c.(*forceCell)
}

// setForced holds the breakers of provider name in state (gobreaker.StateOpen or
// StateClosed), or, with automatic, lets them go back to gobreaker's state. It returns the
// hold it replaced, nil if there was none.
func setForced(name string, state gobreaker.State, automatic bool) *forcedState {
	c := forceFor(name)
	if automatic {
		return c.p.Swap(nil)
	}
	return c.p.Swap(&forcedState{state: state, since: time.Now()})
}
