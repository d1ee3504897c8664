// Package credentialstatus is credgate's host: the Caddy HTTP handler
// http.handlers.credential_status, which serves the normalized endpoints
// /credentials/{id}/status and /credentials/status (batches), finds the provider that owns an
// ID (package resolve), and calls that provider's adapter behind the provider's circuit
// breaker. It also holds the handler's Caddyfile, answers and problems, admin API, metrics and
// audit trail.
//
// Adapters are guest modules in the namespace http.credential_status.providers; their contract
// is package provider.
package credentialstatus

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/credgate/credgate/module/idempotency"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/resolve"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults of the handler's options.
const (
	DefaultCacheSize   = 100_000
	DefaultCacheTTL    = 24 * time.Hour
	DefaultNegativeTTL = 30 * time.Second
)

// Handler serves GET and PUT /credentials/{id}/status: it reads or changes the status of a
// credential at whichever configured provider owns it. Other paths go to the next handler.
type Handler struct {
	// How many ID-to-provider mappings the cache holds. Default 100000.
	CacheSize int `json:"cache_size,omitempty"`
	// How long a mapping of an ID to its provider is kept. Default 24h.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// How long "no provider owns this ID" is kept, after a probe of several candidates found
	// none. Default 30s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`
	// The largest request body accepted, in bytes. Default 65536 (64 KiB). A batch may be
	// larger by 2 KiB per item.
	MaxBody int64 `json:"max_body,omitempty"`
	// The most items of one batch (POST /credentials/status). Default 10000.
	MaxBatch int `json:"max_batch,omitempty"`
	// The most batches that run at once; more are answered 429 too-many-batches. Default 4.
	// With max_batch and max_body it bounds the memory of batches: at most max_batches
	// bodies of max_body + 2 KiB per item.
	MaxBatches int `json:"max_batches,omitempty"`

	IdempotencyOptions
	AuthorizationOptions

	// Where several instances behind a load balancer share their breakers, rate budgets,
	// operators' holds and (with idempotency_storage shared_state) Idempotency-Keys. Without
	// it each instance keeps its own, in memory.
	SharedState *SharedStateConfig `json:"shared_state,omitempty"`

	// The providers, by name. Each is an adapter module of the namespace
	// http.credential_status.providers, named by its "adapter" field.
	ProvidersRaw map[string]json.RawMessage `json:"providers,omitempty" caddy:"namespace=http.credential_status.providers inline_key=adapter"`

	backends map[string]*backend
	ordered  []*backend // by name
	cache    *resolve.Cache
	resolver *resolve.Resolver
	single   reader        // single requests' reads: see Handler.reader
	batches  chan struct{} // one token per running batch: max_batches
	poolKeys []string
	logger   *zap.Logger
	auditLog *zap.Logger
	idem     *idempotency.Store
	authz    *authorizer
	shared   *sharedState // nil without shared_state
	// idemScope scopes Idempotency-Keys to the handler's providers: two handlers of one
	// process (or of one shared storage) with other providers never share a key, while the
	// instances of one config behind a load balancer do.
	idemScope string
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.credential_status",
		New: func() caddy.Module { return new(Handler) },
	}
}

var providerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Provision loads the adapters, resolves each provider's options and takes its breaker and
// the ID cache from the pool that outlives reloads. It makes no network call.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.auditLog = h.logger.Named(auditLoggerName)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("credential_status: metrics: %v", err)
	}
	if h.CacheSize == 0 {
		h.CacheSize = DefaultCacheSize
	}
	if h.CacheTTL == 0 {
		h.CacheTTL = caddy.Duration(DefaultCacheTTL)
	}
	if h.NegativeTTL == 0 {
		h.NegativeTTL = caddy.Duration(DefaultNegativeTTL)
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.MaxBatch == 0 {
		h.MaxBatch = DefaultMaxBatch
	}
	if h.MaxBatches == 0 {
		h.MaxBatches = DefaultMaxBatches
	}
	if err := h.Validate(); err != nil {
		return err // before the cache is made with a bad size
	}
	if len(h.ProvidersRaw) == 0 {
		return fmt.Errorf("credential_status: configure at least one provider")
	}
	if len(h.ProvidersRaw) >= resolve.MaxProviders {
		return fmt.Errorf("credential_status: at most %d providers", resolve.MaxProviders-1)
	}
	for name := range h.ProvidersRaw {
		if !providerName.MatchString(name) {
			return fmt.Errorf("credential_status: provider name %q: use 1 to 64 letters, digits, '.', '_' or '-'", name)
		}
	}
	mods, err := h.loadProviders(ctx)
	if err != nil {
		return err
	}
	if h.shared, err = h.provisionShared(ctx); err != nil {
		return fmt.Errorf("credential_status: %v", err)
	}
	h.backends = make(map[string]*backend, len(h.ProvidersRaw))
	for name, mod := range mods {
		b, err := h.provisionBackend(name, mod)
		if err != nil {
			return fmt.Errorf("credential_status: provider %s: %v", name, err)
		}
		h.backends[name] = b
		h.ordered = append(h.ordered, b)
	}
	sort.Slice(h.ordered, func(i, j int) bool { return h.ordered[i].name < h.ordered[j].name })
	for i, b := range h.ordered {
		b.index = i
	}

	if h.authz, err = h.provisionAuthorization(h.ordered); err != nil {
		return fmt.Errorf("credential_status: %v", err)
	}
	if h.authz.policy == nil {
		h.logger.Warn("no policy: every caller may read and change every credential at every provider; add a policy block to credential_status")
	}

	idem, idemKey, err := h.provisionIdempotency(ctx, h.logger, h.shared)
	if err != nil {
		return fmt.Errorf("credential_status: %v", err)
	}
	h.idem = idem
	if idemKey != "" {
		h.poolKeys = append(h.poolKeys, idemKey)
	}

	h.idemScope = providersHash(h.ordered)

	key := cacheKey(h.CacheSize, h.ordered)
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) { return resolve.NewCache(h.CacheSize) })
	if err != nil {
		return fmt.Errorf("credential_status: cache: %v", err)
	}
	h.poolKeys = append(h.poolKeys, key)
	h.cache = val.(*resolve.Cache)
	providers := make([]resolve.Provider, len(h.ordered))
	for i, b := range h.ordered {
		providers[i] = resolve.Provider{Name: b.name, Pattern: b.s.pattern, NoReads: b.s.readsOff}
	}
	h.resolver = resolve.New(providers, h.cache, time.Duration(h.CacheTTL), time.Duration(h.NegativeTTL))
	h.single = reader{h: h}
	h.batches = make(chan struct{}, h.MaxBatches)
	return nil
}

func (h *Handler) provisionBackend(name string, mod any) (*backend, error) {
	a, ok := mod.(provider.Adapter)
	if !ok {
		return nil, fmt.Errorf("module %T is not a credential_status adapter", mod)
	}
	adapter := a.CaddyModule().ID.Name()
	vendor := a.Vendor()
	opts := a.ProviderOptions()
	s, err := resolveSettings(opts, vendor)
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(s, opts.TLSCAFile)
	if err != nil {
		return nil, err
	}
	b := &backend{
		name: name, adapter: adapter, s: s, caps: vendor.Capabilities, transport: transport,
		metrics: newBackendMetrics(name), slots: newFairSlots(s.maxConcurrent),
	}
	if s.rate > 0 {
		b.limiter = rate.NewLimiter(s.rate, s.burst)
	}
	key := breakerKey(name, adapter, s)
	if h.shared != nil {
		key += "|" + h.shared.key
		if s.rate > 0 {
			b.shared = newSharedBudget(h.shared.conn, b, key)
		}
	}
	b.observer = &observingTransport{next: transport, b: b}
	up := &provider.Upstream{
		Transport:   b.observer,
		MaxResponse: s.maxResponse,
		Retries:     s.retries,
		Backoff:     100 * time.Millisecond,
		MaxBackoff:  2 * time.Second,
	}
	b.up = up
	if b.client, err = a.Open(s.baseURL, up); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		nb := newBreaker(name, adapter, s, h.logger)
		if h.shared != nil {
			nb.shared = newSharedBreaker(h.shared.conn, key, nb.settings)
		}
		return nb, nil
	})
	if err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	h.poolKeys = append(h.poolKeys, key)
	b.breaker = val.(*breaker)
	return b, nil
}

// Validate checks the handler's own options. Provision calls it too, before it uses them.
func (h *Handler) Validate() error {
	if h.CacheSize < 0 {
		return fmt.Errorf("credential_status: cache_size must be positive")
	}
	if h.CacheTTL < 0 || h.NegativeTTL < 0 {
		return fmt.Errorf("credential_status: cache_ttl and negative_ttl must be positive")
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("credential_status: max_body must be positive")
	}
	if h.MaxBatch < 0 {
		return fmt.Errorf("credential_status: max_batch must be positive")
	}
	if h.MaxBatches < 0 {
		return fmt.Errorf("credential_status: max_batches must be positive")
	}
	if err := h.validateIdempotency(); err != nil {
		return fmt.Errorf("credential_status: %v", err)
	}
	if err := h.validateShared(); err != nil {
		return fmt.Errorf("credential_status: %v", err)
	}
	return nil
}

// Cleanup releases what Provision took: the pool's breakers and cache (they live on while a
// newer config uses them), and idle connections. It is safe after a failed Provision.
func (h *Handler) Cleanup() error {
	for _, key := range h.poolKeys {
		_, _ = pool.Delete(key)
	}
	h.poolKeys = nil
	for _, b := range h.backends {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP serves /credentials/{id}/status and /credentials/status, and passes every other
// path on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	id, ours, idErr := credentialID(r.URL)
	if !ours {
		if r.URL.EscapedPath() != batchPath {
			return next.ServeHTTP(w, r)
		}
		if r.Method != http.MethodPost {
			p := newProblem(probMethod, "use POST to change a batch of credentials")
			p.allow = "POST"
			h.fail(w, r, p)
			return nil
		}
		// A batch slot first, before its body is read: max_batches bounds their memory.
		select {
		case h.batches <- struct{}{}:
			defer func() { <-h.batches }()
		default:
			p := newProblem(probTooManyBatches, fmt.Sprintf("%d batches are running, the most this gateway runs at once (max_batches); retry shortly", h.MaxBatches))
			p.retryAfter = time.Second
			h.fail(w, r, p)
			return nil
		}
		limit := h.MaxBody + int64(h.MaxBatch)*batchBytesPerItem
		h.once(w, r, limit, nil, func(w http.ResponseWriter) (*Problem, bool) { return h.serveBatch(w, r) })
		return nil
	}
	switch r.Method {
	case http.MethodGet:
		p := h.serveGet(w, r, id, idErr)
		if p != nil {
			h.fail(w, r, p)
		}
		if isDenied(p) {
			h.audit(r, &changeRecord{start: time.Now(), id: id, origin: h.requestOrigin(r), read: true}, p)
		}
	case http.MethodPut:
		c := changeRecord{start: time.Now(), id: id, origin: h.requestOrigin(r)}
		var p *Problem
		if idErr != nil {
			p = newProblem(probInvalid, idErr.Error())
			h.fail(w, r, p)
		} else {
			p = h.once(w, r, h.MaxBody, &c, func(w http.ResponseWriter) (*Problem, bool) { return h.servePut(w, r, &c), true })
		}
		if c.validated {
			h.audit(r, &c, p) // a malformed request is in the access log only
		}
	default:
		p := newProblem(probMethod, "use GET to read a credential's status, PUT to change it")
		p.allow = "GET, PUT"
		h.fail(w, r, p)
	}
	return nil
}

// fail answers p, and counts and logs it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p *Problem) {
	metricRequests.WithLabelValues(p.Provider, p.outcome()).Inc()
	h.logProblem(r, p)
	writeProblem(w, p)
}

// dryRunQuery reads the dry_run query parameter of a PUT.
func dryRunQuery(r *http.Request) (bool, *Problem) {
	if r.URL.RawQuery == "" {
		return false, nil
	}
	v := r.URL.Query()["dry_run"]
	if len(v) == 0 {
		return false, nil
	}
	on, err := strconv.ParseBool(v[0])
	if err != nil || len(v) > 1 {
		return false, newProblem(probInvalid, "dry_run must be given once, true or false")
	}
	return on, nil
}

// statusBody is the answer of GET and PUT.
type statusBody struct {
	ID             string          `json:"id"`
	Provider       string          `json:"provider"`
	Adapter        string          `json:"adapter"`
	Status         provider.Status `json:"status"`
	Changed        *bool           `json:"changed,omitempty"`
	PendingStatus  provider.Status `json:"pending_status,omitempty"`
	ProviderStatus string          `json:"provider_status,omitempty"`
	// A dry run's answer: the status now, the one asked for, and whether a PUT would change it.
	DryRun          bool            `json:"dry_run,omitempty"`
	Current         provider.Status `json:"current,omitempty"`
	RequestedStatus provider.Status `json:"requested_status,omitempty"`
	WouldChange     *bool           `json:"would_change,omitempty"`
	Credential      any             `json:"credential,omitempty"`
}

func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, id string, idErr error) *Problem {
	if idErr != nil {
		return newProblem(probInvalid, idErr.Error())
	}
	hint := r.URL.Query().Get("provider")
	cred, b, p := h.read(r, id, hint)
	if p != nil {
		return p
	}
	b.metrics.read.Inc()
	writeJSON(w, http.StatusOK, &statusBody{
		ID: id, Provider: b.name, Adapter: b.adapter,
		Status: cred.Status, PendingStatus: cred.PendingStatus, ProviderStatus: cred.ProviderStatus, Credential: cred.Metadata,
	})
	return nil
}

// servePut changes a credential's status, noting in c what the audit entry tells.
func (h *Handler) servePut(w http.ResponseWriter, r *http.Request, c *changeRecord) *Problem {
	id := c.id
	if p := checkJSONContentType(r); p != nil {
		return p
	}
	body, p := readBody(r, h.MaxBody)
	if p != nil {
		return p
	}
	req, p := parseChange(r, *body) // copies what it keeps
	putBody(body)
	c.req = req
	if p != nil {
		p.ID = id
		return p
	}
	if c.dryRun, p = dryRunQuery(r); p != nil {
		p.ID = id
		return p
	}
	c.validated = true
	if c.dryRun {
		out, b, p := h.preview(r.Context(), c.origin.who, id, &req)
		if p != nil {
			return p
		}
		b.metrics.dryRun.Inc()
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	res, b, p := h.change(r, c)
	c.b, c.res = b, res
	if p != nil {
		return p
	}
	out := changedBody(id, b, res)
	status := http.StatusOK
	switch {
	case res.PendingStatus != "":
		status = http.StatusAccepted
		b.metrics.pending.Inc()
	case res.Changed:
		b.metrics.changed.Inc()
	default:
		b.metrics.unchanged.Inc()
	}
	writeJSON(w, status, out)
	return nil
}

// changedBody is the answer of a change: 200's, or with a pending status 202's.
func changedBody(id string, b *backend, res *provider.Result) *statusBody {
	return &statusBody{
		ID: id, Provider: b.name, Adapter: b.adapter, Changed: changedFlag(b, res),
		Status: res.Status, PendingStatus: res.PendingStatus, ProviderStatus: res.ProviderStatus,
		Credential: res.Metadata,
	}
}

func (h *Handler) logProblem(r *http.Request, p *Problem) {
	if ce := h.logger.Check(zap.DebugLevel, "credential status request failed"); ce != nil {
		ce.Write(
			zap.String("method", r.Method),
			zap.String("id", p.ID),
			zap.String("provider", p.Provider),
			zap.String("problem", p.Suffix()),
			zap.Int("status", p.Status),
			zap.Int("upstream_status", p.UpstreamStatus),
			zap.String("detail", p.Detail),
		)
	}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// cacheKey names the ID cache a handler shares with the configs before and after a reload. A
// mapping stays true as long as the providers that could own an ID stay the same, so the key
// is the set of providers (name, adapter, origin) and the size.
func cacheKey(size int, backends []*backend) string {
	return fmt.Sprintf("cache|%d|%s", size, providersHash(backends))
}

// providersHash names a set of providers (name, adapter, origin), whatever their order: 16
// hex digits.
func providersHash(backends []*backend) string {
	parts := make([]string, 0, len(backends))
	for _, b := range backends {
		parts = append(parts, b.name+"\x00"+b.adapter+"\x00"+b.s.baseURL)
	}
	sort.Strings(parts)
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}
