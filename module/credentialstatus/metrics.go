package credentialstatus

import (
	"errors"
	"sort"

	"github.com/credgate/credgate/module/resolve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// The handler's Prometheus collectors. They are package-level, like Caddy's own HTTP metrics,
// so their counts go on across reloads; each config's Provision registers them in that
// config's registry (ctx.GetMetricsRegistry(), served on the admin endpoint's /metrics), where
// a second handler of the same config finds them registered already.
//
// Every label value comes from the configuration or from a fixed list: provider names,
// problem types, outcomes, operations. Never a credential ID, which would grow the series
// without bound.
const metricsNamespace, metricsSubsystem = "caddy", "credential_status"

var (
	metricRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "requests_total",
		Help: "Requests to /credentials/{id}/status by provider (empty when none was found) and outcome: read, changed, unchanged, pending, dry_run, replayed, or the problem type's last segment.",
	}, []string{"provider", "outcome"})
	metricUpstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "upstream_duration_seconds",
		Help:    "Time of each call of a provider's adapter (read: a read or a probe; change: a status change, its own reads and retries included).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"provider", "operation"})
	metricCacheHits = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "cache_hits_total",
		Help: "Lookups of the ID-to-provider cache that found a live entry (an owner, or that none owns the ID).",
	})
	metricCacheMisses = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "cache_misses_total",
		Help: "Lookups of the ID-to-provider cache that found no live entry.",
	})
	metricResolutions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "resolutions_total",
		Help: "How the owner of an ID was found: hint, cached, cached_none, pattern, probe, or why not: unknown_provider, no_pattern, not_found, ambiguous, unavailable, canceled, refused.",
	}, []string{"result"})
)

// Request outcomes of a successful request, the values of requests_total's outcome label
// besides the problem types.
const (
	outcomeRead      = "read"
	outcomeChanged   = "changed"
	outcomeUnchanged = "unchanged"
	outcomePending   = "pending"
	outcomeDryRun    = "dry_run"
	outcomeReplayed  = "replayed" // an Idempotency-Key's kept answer, sent again
)

// resolutionCounters are resolutions_total's series, one per resolve.Result, looked up once.
var resolutionCounters = func() []prometheus.Counter {
	cs := make([]prometheus.Counter, len(resolve.Results()))
	for _, r := range resolve.Results() {
		cs[r] = metricResolutions.WithLabelValues(r.String())
	}
	return cs
}()

// countResolution counts one resolution, and its lookup of the ID cache if it made one. It
// is called once for every resolution, at the one place each ends (withOwner, runAtOwner, a
// batch's resolvers).
func countResolution(o resolve.Owner) {
	resolutionCounters[o.Result].Inc()
	if !o.CacheChecked {
		return
	}
	if o.Result == resolve.Cached || o.Result == resolve.CachedNone {
		metricCacheHits.Inc()
	} else {
		metricCacheMisses.Inc()
	}
}

// backendMetrics are a provider's series, looked up once at Provision so that the hot path
// only adds to them.
type backendMetrics struct {
	read, changed, unchanged, pending, dryRun prometheus.Counter
	readTime, changeTime                      prometheus.Observer
}

func newBackendMetrics(name string) backendMetrics {
	return backendMetrics{
		read:       metricRequests.WithLabelValues(name, outcomeRead),
		changed:    metricRequests.WithLabelValues(name, outcomeChanged),
		unchanged:  metricRequests.WithLabelValues(name, outcomeUnchanged),
		pending:    metricRequests.WithLabelValues(name, outcomePending),
		dryRun:     metricRequests.WithLabelValues(name, outcomeDryRun),
		readTime:   metricUpstream.WithLabelValues(name, "read"),
		changeTime: metricUpstream.WithLabelValues(name, "change"),
	}
}

// poolCollector reports what lives in the pool, read at scrape time: each provider's breaker
// state and the number of cached IDs.
type poolCollector struct{}

var (
	descBreakerState = prometheus.NewDesc(
		prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "breaker_state"),
		"State of a provider's circuit breaker: 0 closed, 1 half-open, 2 open (an operator's forced state included).",
		[]string{"provider"}, nil)
	descCacheEntries = prometheus.NewDesc(
		prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "cache_entries"),
		"Entries in the ID-to-provider caches, expired ones not yet dropped included.",
		nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBreakerState
	ch <- descCacheEntries
}

func (poolCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]gobreaker.State{}
	entries := 0
	pool.Range(func(_, v any) bool {
		switch v := v.(type) {
		case *breaker:
			// During a reload that changed a provider's settings, its old and new breakers
			// both live for a moment: report the worse state.
			st, _ := v.effectiveState()
			if old, ok := states[v.name]; !ok || breakerGauge(st) > breakerGauge(old) {
				states[v.name] = st
			}
		case *resolve.Cache:
			entries += v.Len()
		}
		return true
	})
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ch <- prometheus.MustNewConstMetric(descBreakerState, prometheus.GaugeValue, breakerGauge(states[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(descCacheEntries, prometheus.GaugeValue, float64(entries))
}

// breakerGauge is the value of breaker_state for a state.
func breakerGauge(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// registerMetrics adds the collectors to a config's registry. A collector the registry has
// already (a second handler in the same config) is fine.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metricRequests, metricUpstream, metricCacheHits, metricCacheMisses, metricResolutions, poolCollector{}, sharedUp,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
