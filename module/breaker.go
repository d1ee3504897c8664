package module

import (
	"errors"
	"fmt"
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
// classifies an answer only after the adapter has decoded it.
type breaker struct {
	name     string // the provider's
	adapter  string
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last trip
}

func breakerKey(name, adapter string, s settings) string {
	return fmt.Sprintf("breaker|%s|%s|%s|%d|%s|%d", name, adapter, s.baseURL, s.failures, s.openFor, s.halfOpen)
}

func newBreaker(name, adapter string, s settings, logger *zap.Logger) *breaker {
	b := &breaker{name: name, adapter: adapter, openFor: s.openFor}
	failures := uint32(s.failures)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
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
	})
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

// allow asks the breaker to let one call through. When it does not, the error is a
// KindUnavailable *provider.Error with the time until the breaker lets a trial through.
func (b *breaker) allow() (func(error), error) {
	done, err := b.cb.Allow()
	if err == nil {
		return done, nil
	}
	retry := time.Second
	if errors.Is(err, gobreaker.ErrOpenState) {
		if left := b.openFor - time.Since(time.Unix(0, b.openedAt.Load())); left > retry {
			retry = left
		}
	}
	return nil, &provider.Error{Kind: provider.KindUnavailable, RetryAfter: retry, Detail: "circuit breaker is open: the provider failed repeatedly"}
}

// state returns the breaker's state.
func (b *breaker) state() gobreaker.State { return b.cb.State() }

// effectiveState returns the state the breaker acts on, and whether an operator forced it.
func (b *breaker) effectiveState() (gobreaker.State, bool) { return b.cb.State(), false }
