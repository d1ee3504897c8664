package credentialstatus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/credgate/credgate/module/idempotency"
	"github.com/credgate/credgate/module/provider"
)

// Where Idempotency-Key answers are kept (idempotency_storage).
const (
	idemStorageMemory = "memory"
	idemStorageCaddy  = "caddy"
	idemStorageShared = "shared_state" // the handler's shared_state (Redis)
)

// IdempotencyOptions configure the gateway's Idempotency-Key store. The handler embeds them,
// so that they are options of its own JSON object.
type IdempotencyOptions struct {
	// How long the answer to a request with an Idempotency-Key is kept for replay. Default
	// 24h.
	IdempotencyTTL caddy.Duration `json:"idempotency_ttl,omitempty"`
	// Where answers are kept: "memory" (default; one instance's own), "caddy" (Caddy's
	// configured storage, shared by every instance that uses the same storage) or
	// "shared_state" (the handler's shared_state: Redis).
	IdempotencyStorage string `json:"idempotency_storage,omitempty"`
	// How long a key stays reserved when its request never ends (an instance killed while it
	// ran): a repeat meanwhile answers 409, after it the key runs again. Default 5m, longer
	// than any request runs.
	IdempotencyLease caddy.Duration `json:"idempotency_lease,omitempty"`
	// How many keys the memory store holds at most. Default 100000.
	IdempotencyMaxKeys int `json:"idempotency_max_keys,omitempty"`
	// How much heap the memory store takes at most, answers and bookkeeping, in bytes. Default
	// 64 MiB. The oldest keys go first when either bound is reached; an answer larger than a
	// sixteenth of it is not kept (its key is released).
	IdempotencyMaxMemory int64 `json:"idempotency_max_memory,omitempty"`
}

// unmarshalIdempotencyOption parses the current Caddyfile option if it is one of the
// idempotency options, and says whether it was:
//
//	idempotency_ttl      <duration>
//	idempotency_storage  memory|caddy|shared_state
//	idempotency_lease    <duration>
//	idempotency_max_keys <n>
//	idempotency_max_memory <size>
func (o *IdempotencyOptions) unmarshalIdempotencyOption(d *caddyfile.Dispenser) (bool, error) {
	switch d.Val() {
	case "idempotency_ttl":
		return true, provider.ParseDuration(d, &o.IdempotencyTTL)
	case "idempotency_storage":
		if err := provider.ParseString(d, &o.IdempotencyStorage); err != nil {
			return true, err
		}
		if s := o.IdempotencyStorage; s != idemStorageMemory && s != idemStorageCaddy && s != idemStorageShared {
			return true, d.Errf("idempotency_storage: want memory, caddy or shared_state, not %q", s)
		}
		return true, nil
	case "idempotency_lease":
		return true, provider.ParseDuration(d, &o.IdempotencyLease)
	case "idempotency_max_keys":
		return true, provider.ParseInt(d, &o.IdempotencyMaxKeys)
	case "idempotency_max_memory":
		if err := provider.ParseSize(d, &o.IdempotencyMaxMemory); err != nil {
			return true, err
		}
		if o.IdempotencyMaxMemory <= 0 {
			return true, d.Errf("idempotency_max_memory must be positive")
		}
		return true, nil
	}
	return false, nil
}

// validateIdempotency checks the options; zero values mean the defaults.
func (o *IdempotencyOptions) validateIdempotency() error {
	switch o.IdempotencyStorage {
	case "", idemStorageMemory, idemStorageCaddy, idemStorageShared:
	default:
		return fmt.Errorf("idempotency_storage: want memory, caddy or shared_state, not %q", o.IdempotencyStorage)
	}
	if o.IdempotencyLease < 0 {
		return fmt.Errorf("idempotency_lease must be positive")
	}
	if o.IdempotencyTTL < 0 {
		return fmt.Errorf("idempotency_ttl must be positive")
	}
	if o.IdempotencyMaxKeys < 0 {
		return fmt.Errorf("idempotency_max_keys must be positive")
	}
	if o.IdempotencyMaxMemory < 0 {
		return fmt.Errorf("idempotency_max_memory must be positive")
	}
	return nil
}

// provisionIdempotency makes the store the options describe. The memory store's records come
// from the pool, so that a reload keeps its keys; poolKey names them, for Cleanup to release
// ("" for the caddy and shared_state stores, which keep nothing in the pool). The caddy store
// starts a sweeper that stops with ctx. shared is the handler's shared state, which the
// shared_state store needs.
func (o *IdempotencyOptions) provisionIdempotency(ctx caddy.Context, logger *zap.Logger, shared *sharedState) (store *idempotency.Store, poolKey string, err error) {
	if err := o.validateIdempotency(); err != nil {
		return nil, "", err
	}
	cfg := idempotency.Config{
		TTL:       time.Duration(o.IdempotencyTTL),
		MaxKeys:   o.IdempotencyMaxKeys,
		MaxMemory: o.IdempotencyMaxMemory,
		Lease:     idempotency.DefaultLease,
	}
	if o.IdempotencyLease > 0 {
		cfg.Lease = time.Duration(o.IdempotencyLease)
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = idempotency.DefaultMaxMemory
	}
	if cfg.TTL == 0 {
		cfg.TTL = idempotency.DefaultTTL
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = idempotency.DefaultMaxKeys
	}
	if o.IdempotencyStorage == idemStorageShared {
		if shared == nil {
			return nil, "", errors.New("idempotency_storage shared_state needs a shared_state block")
		}
		return idempotency.NewRedisStore(shared.conn, cfg), "", nil
	}
	if o.IdempotencyStorage != idemStorageCaddy {
		key := fmt.Sprintf("idempotency|memory|%d|%d", cfg.MaxKeys, cfg.MaxMemory)
		val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return idempotency.NewMemoryBackend(cfg.MaxKeys, cfg.MaxMemory)
		})
		if err != nil {
			return nil, "", fmt.Errorf("idempotency store: %v", err)
		}
		return idempotency.NewStore(val.(*idempotency.MemoryBackend), cfg), key, nil
	}
	storage, err := caddyStorage(ctx)
	if err != nil {
		return nil, "", err
	}
	s := idempotency.NewStorageStore(storage, cfg, logger)
	go s.SweepLoop(ctx, idempotency.SweepEvery)
	return s, "", nil
}

// caddyStorage returns the storage of ctx's config. A context made with caddy.NewContext from
// nothing (in tests) has no config, and Storage panics on it: that is an error here.
func caddyStorage(ctx caddy.Context) (s idempotency.Storage, err error) {
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

// idemUnavailable is the problem to answer when Begin fails: the request does not run, since
// it could then run twice. The detail is generic; log Begin's error.
func idemUnavailable() *Problem {
	p := newProblem(probIdemDown, "the Idempotency-Key store could not be reached; retry, or send the request without Idempotency-Key")
	p.retryAfter = time.Second
	return p
}

// reservationProblem returns the problem to answer when a reservation says not to run: a
// request with the key still running (409), or the key used for another request (422).
func reservationProblem(o idempotency.Outcome) *Problem {
	switch o {
	case idempotency.InFlight:
		p := newProblem(probIdemInUse, "a request with this Idempotency-Key is still being processed; retry once it has completed")
		p.retryAfter = time.Second
		return p
	case idempotency.Mismatch:
		return newProblem(probIdemReused, "this Idempotency-Key was used for a different request; use a new key for a new request")
	}
	return nil
}

// once is where Idempotency-Key meets the request path: it runs serve, which answers a PUT or
// a batch, and answers its problem if it returns one. A request with an Idempotency-Key runs
// once per key (see idempotency.Store): its answer is kept (unless serve says it must not
// be: a batch with an item that failed for a while only), and a repeat of the same request
// gets it again, marked Idempotent-Replayed, without serve running. c, a PUT's audit record,
// is filled in when serve does not run. It returns the problem answered, if any.
func (h *Handler) once(w http.ResponseWriter, r *http.Request, limit int64, c *changeRecord, serve func(http.ResponseWriter) (p *Problem, keep bool)) *Problem {
	if len(r.Header.Values("Idempotency-Key")) == 0 {
		p, _ := serve(w)
		if p != nil {
			h.fail(w, r, p)
		}
		return p
	}
	key, p := idempotencyKey(r)
	if p != nil {
		h.fail(w, r, p)
		return p
	}
	// The fingerprint needs the body: read it here, and give serve a copy to read again.
	buf, p := readBody(r, limit)
	if p != nil {
		h.fail(w, r, p)
		return p
	}
	body := bytes.Clone(*buf)
	putBody(buf)
	r.Body = io.NopCloser(bytes.NewReader(body))
	// A batch's answer is JSON or NDJSON as the client accepts: each is another request.
	fp := idempotency.Fingerprint(r, body, "dry_run")
	if c == nil && acceptsNDJSON(r) {
		fp += "+ndjson"
	}
	res, err := h.idem.Begin(r.Context(), h.idemScope+" "+h.authz.principal(r).Name, key, fp)
	if err != nil {
		h.logger.Error("idempotency store", zap.Error(err))
		p := idemUnavailable()
		h.fail(w, r, p)
		return p
	}
	if res.Outcome != idempotency.Run && c != nil {
		// Nothing runs: the audit entry still says what was asked, with which key.
		if req, p := parseChange(r, body); p == nil {
			c.req, c.validated = req, true
		}
		c.req.key = key
	}
	switch res.Outcome {
	case idempotency.Replay:
		metricRequests.WithLabelValues("", outcomeReplayed).Inc()
		if c != nil {
			c.replayed = true
		}
		idempotency.WriteReplay(w, res.Answer)
		return nil
	case idempotency.Run:
	default:
		p := reservationProblem(res.Outcome)
		h.fail(w, r, p)
		return p
	}
	// Whatever happens, the reservation ends: with the answer, or released.
	defer func() { _ = h.idem.Release(context.WithoutCancel(r.Context()), res) }()
	rec := h.idem.Recorder(w) // keeps no answer larger than the store does
	p, keep := serve(rec)
	if p != nil {
		h.fail(rec, r, p)
	}
	answer := rec.Answer()
	if !keep {
		answer = nil // released: the next request with the key runs
	}
	if err := h.idem.Finish(r.Context(), res, answer); err != nil {
		h.logger.Warn("idempotency store: the answer was not kept", zap.Error(err))
	}
	return p
}
