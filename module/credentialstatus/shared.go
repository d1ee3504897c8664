package credentialstatus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/sharedstate"
)

// Several instances behind a load balancer share state through Redis (shared_state): each
// provider's breaker (sharedbreaker.go), its rate budget (sharedbudget.go), operators' holds
// (here) and Idempotency-Key records (idempotency.Store on Redis). Without shared_state
// nothing here runs and nothing needs Redis.
//
// The connection is a sharedState in the pool, keyed by its resolved options: a reload that
// keeps them keeps the connection, its health and its holds loop.

// SharedStateConfig is the handler's shared_state: where the instances of a fleet share
// their state. Only Redis for now.
type SharedStateConfig struct {
	// Redis (github.com/redis/go-redis/v9): a standalone server or a cluster.
	Redis *sharedstate.Redis `json:"redis,omitempty"`
}

// unmarshalSharedState parses `shared_state redis { ... }`.
func (h *Handler) unmarshalSharedState(d *caddyfile.Dispenser) error {
	if !d.NextArg() || d.Val() != "redis" {
		return d.Err("shared_state: want shared_state redis { address host:port ... }")
	}
	r := new(sharedstate.Redis)
	if err := r.UnmarshalCaddyfile(d); err != nil {
		return err
	}
	h.SharedState = &SharedStateConfig{Redis: r}
	return nil
}

// validateShared checks shared_state and what depends on it.
func (h *Handler) validateShared() error {
	if h.SharedState == nil {
		if h.IdempotencyStorage == idemStorageShared {
			return errors.New("idempotency_storage shared_state needs a shared_state block")
		}
		return nil
	}
	if h.SharedState.Redis == nil {
		return errors.New("shared_state: configure redis")
	}
	return h.SharedState.Redis.Validate()
}

// holdsPollEvery is how often each instance reads the operators' holds from Redis: a hold
// set through one instance is in force on every other within it.
const holdsPollEvery = 500 * time.Millisecond

// sharedState is a pooled connection to the shared state, with the loop that keeps this
// process's operator holds (forces) equal to the fleet's.
type sharedState struct {
	key    string // in the pool
	conn   *sharedstate.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// provisionShared takes the shared state's connection from the pool (or opens it: no
// network call) and returns it; nil without shared_state.
func (h *Handler) provisionShared(ctx caddy.Context) (*sharedState, error) {
	if h.SharedState == nil {
		return nil, nil
	}
	if err := h.validateShared(); err != nil {
		return nil, err
	}
	r := *h.SharedState.Redis
	repl := caddy.NewReplacer()
	var err error
	if r.Username != "" {
		if r.Username, err = provider.ResolveSecret(repl, "shared_state redis username", r.Username); err != nil {
			return nil, err
		}
	}
	if r.Password != "" {
		if r.Password, err = provider.ResolveSecret(repl, "shared_state redis password", r.Password); err != nil {
			return nil, err
		}
	}
	for i, a := range r.Addresses {
		if r.Addresses[i], err = repl.ReplaceOrErr(a, true, true); err != nil {
			return nil, fmt.Errorf("shared_state redis address: %v", err)
		}
	}
	ident, _ := json.Marshal(r)
	sum := sha256.Sum256(ident) // the key holds no secret
	key := "shared|" + hex.EncodeToString(sum[:12])
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		conn, err := sharedstate.Open(r, h.logger.Named("shared_state"))
		if err != nil {
			return nil, err
		}
		s := startShared(conn, h.logger)
		s.key = key
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("shared_state: %v", err)
	}
	h.poolKeys = append(h.poolKeys, key)
	return val.(*sharedState), nil
}

func startShared(conn *sharedstate.Conn, logger *zap.Logger) *sharedState {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharedState{conn: conn, cancel: cancel, done: make(chan struct{})}
	go s.holdsLoop(ctx, logger)
	return s
}

// Destruct implements caddy.Destructor: stops the holds loop and closes the connection.
func (s *sharedState) Destruct() error {
	s.cancel()
	<-s.done
	return s.conn.Close()
}

// sharedHold is an operator's hold as Redis keeps it, in the hash prefix:holds by provider
// name.
type sharedHold struct {
	State string    `json:"state"` // "open" or "closed"
	Since time.Time `json:"since"`
}

// holdsLoop makes this process's holds those of the fleet, every holdsPollEvery, until ctx
// ends. While Redis cannot be reached, the holds last read stay in force.
func (s *sharedState) holdsLoop(ctx context.Context, logger *zap.Logger) {
	defer close(s.done)
	applied := map[string]bool{} // the names this loop holds now
	t := time.NewTimer(holdsPollEvery / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(holdsPollEvery)
		if !s.conn.Up() {
			continue
		}
		cctx, cancel := sharedstate.Ctx(ctx)
		all, err := s.conn.Client.HGetAll(cctx, s.conn.Key("holds")).Result()
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				_ = s.conn.Failed(err)
			}
			continue
		}
		for name, raw := range all {
			var hold sharedHold
			if json.Unmarshal([]byte(raw), &hold) != nil {
				logger.Warn("shared state: unreadable breaker hold ignored", zap.String("provider", name))
				continue
			}
			state := gobreaker.StateClosed
			if hold.State == "open" {
				state = gobreaker.StateOpen
			}
			cell := forceFor(name)
			if cur := cell.load(); cur == nil || cur.state != state || !cur.since.Equal(hold.Since) {
				cell.p.Store(&forcedState{state: state, since: hold.Since})
			}
			applied[name] = true
		}
		for name := range applied {
			if _, ok := all[name]; !ok {
				forceFor(name).p.Store(nil)
				delete(applied, name)
			}
		}
	}
}

// liveShared returns the shared states in the pool: the admin API writes a hold to each.
func liveShared() []*sharedState {
	var out []*sharedState
	pool.Range(func(_, v any) bool {
		if s, ok := v.(*sharedState); ok {
			out = append(out, s)
		}
		return true
	})
	return out
}

// errHoldNotShared is the admin API's error when a hold could not be written to the shared
// state: it is then in force nowhere, this instance included.
var errHoldNotShared = errors.New("the shared state (Redis) cannot be reached: the hold was not set on any instance; retry once it answers")

// shareHold writes an operator's hold (or its release, with automatic) to every shared state
// in use, before the caller sets it here. Without shared state it does nothing.
func shareHold(ctx context.Context, name string, state gobreaker.State, automatic bool, since time.Time) error {
	for _, s := range liveShared() {
		cctx, cancel := sharedstate.Ctx(ctx)
		var err error
		if automatic {
			err = s.conn.Client.HDel(cctx, s.conn.Key("holds"), name).Err()
		} else {
			word := "closed"
			if state == gobreaker.StateOpen {
				word = "open"
			}
			raw, _ := json.Marshal(sharedHold{State: word, Since: since})
			err = s.conn.Client.HSet(cctx, s.conn.Key("holds"), name, raw).Err()
		}
		cancel()
		if err != nil {
			_ = s.conn.Failed(err)
			return errHoldNotShared
		}
	}
	return nil
}

// sharedUp reports caddy_credential_status_shared_state_up: 0 when a shared state in use
// cannot be reached, else 1 (also when none is configured: nothing is unreachable).
var sharedUp = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
	Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "shared_state_up",
	Help: "1 when the shared state (Redis) of several instances answers, or none is configured; 0 when it cannot be reached (breakers and rate budgets are then this instance's own, and requests with an Idempotency-Key answer 503).",
}, func() float64 {
	for _, s := range liveShared() {
		if !s.conn.Up() {
			return 0
		}
	}
	return 1
})

// sharedName is a short hash of a provider's identity for its Redis keys.
func sharedName(b string) string {
	sum := sha256.Sum256([]byte(b))
	return hex.EncodeToString(sum[:6])
}

var _ caddy.Destructor = (*sharedState)(nil)

// holdState is the breaker state of an admin API word: open or closed (auto: none).
func holdState(word string) gobreaker.State {
	if word == "open" {
		return gobreaker.StateOpen
	}
	return gobreaker.StateClosed
}
