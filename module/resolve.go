package module

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/credgate/credgate/module/provider"
)

// resolution is the provider found to own an ID.
type resolution struct {
	b *backend
	// cred is the credential as read while probing, or nil when there was no probe.
	cred *provider.Credential
	// cached says the mapping came from the cache, so a "not found" may mean it is stale.
	cached bool
	// remember says a successful call should store the mapping in the cache.
	remember bool
	// hinted says the request named the provider (a batch item's resolution).
	hinted bool
}

// read returns the status of credential id at the provider named by hint, or at the provider
// that owns it.
func (h *Handler) read(r *http.Request, id, hint string) (*provider.Credential, *backend, *Problem) {
	ctx := r.Context()
	return withOwner(h, ctx, id, hint, func(b *backend, probed *provider.Credential) (*provider.Credential, error) {
		if probed != nil {
			return probed, nil // the probe read it a moment ago
		}
		return b.read(ctx, id)
	})
}

// change gives credential id the requested status at the provider named by the request, or
// at the provider that owns it.
func (h *Handler) change(r *http.Request, rec *changeRecord) (*provider.Result, *backend, *Problem) {
	return withOwner(h, r.Context(), rec.id, rec.req.hint, h.changeOp(r.Context(), rec))
}

// changeOp is the operation of a change, once its provider is known.
func (h *Handler) changeOp(ctx context.Context, rec *changeRecord) func(*backend, *provider.Credential) (*provider.Result, error) {
	req := &rec.req
	c := &provider.Change{
		ID:             rec.id,
		Status:         req.status,
		ExpiresAt:      req.expiresAt,
		IdempotencyKey: req.key,
		Operator:       rec.origin.caller,
	}
	// Once a status change starts, it runs to its end or to the provider's timeout even if the
	// client goes away: a kill switch must not be left half-thrown by a dropped connection.
	changeCtx := provider.RecordStatus(context.WithoutCancel(ctx), &rec.upstream)
	return func(b *backend, _ *provider.Credential) (*provider.Result, error) {
		if p := checkCapabilities(b, req); p != nil {
			return nil, p
		}
		return b.change(changeCtx, c)
	}
}

// preview answers what a change would do, reading only: the provider's capabilities are
// checked as for the change, and the credential is read (or taken from the probe that found
// its provider).
func (h *Handler) preview(ctx context.Context, id string, req *changeRequest) (*statusBody, *backend, *Problem) {
	cred, b, p := withOwner(h, ctx, id, req.hint, h.previewOp(ctx, id, req))
	if p != nil {
		return nil, b, p
	}
	return previewBody(id, b, req, cred), b, nil
}

func (h *Handler) previewOp(ctx context.Context, id string, req *changeRequest) func(*backend, *provider.Credential) (*provider.Credential, error) {
	return func(b *backend, probed *provider.Credential) (*provider.Credential, error) {
		if p := checkCapabilities(b, req); p != nil {
			return nil, p
		}
		cred := probed
		if cred == nil {
			var err error
			if cred, err = b.read(ctx, id); err != nil {
				return nil, err
			}
		}
		// Revoked is for good: the change would be refused, as the dry run says.
		if cred.Status == provider.StatusRevoked && req.status != provider.StatusRevoked {
			p := newProblem(probTransition, "credential "+id+" is revoked at provider "+b.name+": a revoked credential cannot be made "+string(req.status))
			p.Provider = b.name
			return nil, p
		}
		return cred, nil
	}
}

// previewBody is a dry run's answer. A change would happen when the status differs, or when
// an expiry is asked for (the gateway cannot tell whether the provider's equals it).
func previewBody(id string, b *backend, req *changeRequest, cred *provider.Credential) *statusBody {
	would := cred.Status != req.status || !req.expiresAt.IsZero()
	return &statusBody{
		ID: id, Provider: b.name, Adapter: b.adapter, Status: cred.Status, ProviderStatus: cred.ProviderStatus,
		DryRun: true, Current: cred.Status, RequestedStatus: req.status, WouldChange: &would, Credential: cred.Metadata,
	}
}

// checkCapabilities refuses, before any call, what the provider cannot express.
func checkCapabilities(b *backend, req *changeRequest) *Problem {
	if req.status == provider.StatusRevoked && !b.caps.Revoke {
		p := newProblem(probUnsupported, "provider "+b.name+" ("+b.adapter+") has no permanent revoked state; use inactive")
		p.Provider = b.name
		return p
	}
	if !req.expiresAt.IsZero() && !b.caps.Expiry {
		p := newProblem(probUnsupported, "provider "+b.name+" ("+b.adapter+") has no expiry; expires_at applies only to expiry-based providers")
		p.Provider = b.name
		return p
	}
	return nil
}

// caller is the authenticated user, when an authentication handler ran before this one.
func caller(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	user, _ := repl.GetString("http.auth.user.id")
	return user
}

// withOwner runs op at the provider named by hint, or else at the provider that owns id:
// from the cache, from the one provider whose pattern matches, or from a probe of several.
// A cached provider that no longer knows the ID is evicted, and resolution runs once more.
func withOwner[T any](h *Handler, ctx context.Context, id, hint string, op func(*backend, *provider.Credential) (T, error)) (T, *backend, *Problem) {
	var zero T
	if hint != "" {
		b, ok := h.backends[hint]
		if !ok {
			metricResolutions.WithLabelValues(unresolvedHint).Inc()
			p := newProblem(probUnknownProv, "no provider named "+hint+" is configured")
			p.ID = id
			return zero, nil, p
		}
		resolutionHint.Inc()
		v, err := op(b, nil)
		if err != nil {
			return zero, b, providerProblem(err, id, b.name)
		}
		return v, b, nil
	}

	res, p := h.resolve(ctx, id, true)
	if p != nil {
		return zero, nil, p
	}
	return runResolved(h, ctx, id, res, op)
}

// runResolved runs op at the provider that resolution found for id. A cached provider that
// no longer knows the ID is evicted, and resolution runs once more.
func runResolved[T any](h *Handler, ctx context.Context, id string, res resolution, op func(*backend, *provider.Credential) (T, error)) (T, *backend, *Problem) {
	var zero T
	v, err := op(res.b, res.cred)
	if err != nil && res.cached && notOwner(err) {
		h.cache.remove(id)
		var p *Problem
		if res, p = h.resolve(ctx, id, false); p != nil {
			return zero, nil, p
		}
		v, err = op(res.b, res.cred)
	}
	if err != nil {
		return zero, res.b, providerProblem(err, id, res.b.name)
	}
	if res.remember {
		h.cache.put(id, res.b.index, time.Duration(h.CacheTTL), time.Now())
	}
	return v, res.b, nil
}

// notOwner says the provider does not have the credential: it does not know it, or (DigiCert)
// it belongs to an unrelated account.
func notOwner(err error) bool {
	var pe *provider.Error
	if !asProviderError(err, &pe) {
		return false
	}
	return pe.Kind == provider.KindNotFound || (pe.Kind == provider.KindForbidden && pe.Foreign)
}

// resolve finds the provider that owns id.
func (h *Handler) resolve(ctx context.Context, id string, useCache bool) (resolution, *Problem) {
	if useCache {
		idx, ok := h.cache.get(id, time.Now())
		if !ok {
			metricCacheMisses.Inc()
		} else {
			metricCacheHits.Inc()
			if idx == noProvider {
				metricResolutions.WithLabelValues(resolvedCachedN).Inc()
				p := newProblem(probNotFound, "no configured provider knows credential "+id+" (asked less than "+time.Duration(h.NegativeTTL).String()+" ago)")
				p.ID = id
				return resolution{}, p
			}
			if idx < len(h.ordered) {
				resolutionCached.Inc()
				return resolution{b: h.ordered[idx], cached: true}, nil
			}
		}
	}
	var first *backend
	var candidates []*backend
	for _, b := range h.ordered {
		if !b.s.pattern.MatchString(id) {
			continue
		}
		if first == nil {
			first = b
			continue
		}
		if candidates == nil {
			candidates = []*backend{first}
		}
		candidates = append(candidates, b)
	}
	switch {
	case first == nil:
		metricResolutions.WithLabelValues(unresolvedNoPat).Inc()
		p := newProblem(probNotFound, "no configured provider knows credential "+id+": it matches no provider's id_pattern")
		p.ID = id
		return resolution{}, p
	case candidates == nil:
		resolutionPattern.Inc()
		return resolution{b: first, remember: true}, nil
	}
	res, p := h.probe(ctx, id, candidates)
	metricResolutions.WithLabelValues(probeResultLabel(p)).Inc()
	return res, p
}

// probeResultLabel is the resolutions_total result of a probe that ended in p.
func probeResultLabel(p *Problem) string {
	if p == nil {
		return resolvedProbe
	}
	switch p.Suffix() {
	case probAmbiguous.suffix:
		return unresolvedAmbig
	case probUnavailable.suffix:
		return unresolvedUnav
	case probClientClosed.suffix:
		return unresolvedCancl
	}
	return unresolvedNone
}

// probeAnswer is one candidate's answer to a probe.
type probeAnswer struct {
	b    *backend
	cred *provider.Credential
	err  error
}

// probeResult is what a probe found, shared by every caller that waited for it.
type probeResult struct {
	res resolution
	p   *Problem
}

// probe asks every candidate's read endpoint at once which of them owns id. Concurrent
// probes of one ID share one set of calls. A probe runs to its end even when the caller that
// started it goes away, since others may be waiting for it; each read is bounded by its
// provider's timeout.
func (h *Handler) probe(ctx context.Context, id string, candidates []*backend) (resolution, *Problem) {
	// The probe's calls outlive the caller (see above), so they carry only its batch mark.
	base := context.Background()
	if ctx.Value(batchCtxKey{}) != nil {
		base = provider.WaitForRateLimit(context.WithValue(base, batchCtxKey{}, true))
	}
	ch := h.probes.DoChan(id, func() (any, error) {
		return h.probeAll(base, id, candidates), nil
	})
	select {
	case r := <-ch:
		pr := r.Val.(*probeResult)
		return pr.res, pr.p
	case <-ctx.Done():
		p := providerProblem(&provider.Error{Kind: provider.KindCanceled, Detail: "request canceled"}, id, "")
		return resolution{}, p
	}
}

func (h *Handler) probeAll(ctx context.Context, id string, candidates []*backend) *probeResult {
	answers := make([]probeAnswer, len(candidates))
	var wg sync.WaitGroup
	for i, b := range candidates {
		wg.Add(1)
		go func(i int, b *backend) {
			defer wg.Done()
			cred, err := b.read(ctx, id)
			answers[i] = probeAnswer{b: b, cred: cred, err: err}
		}(i, b)
	}
	wg.Wait()

	var owners, failed []probeAnswer
	for _, a := range answers {
		switch {
		case a.err == nil:
			owners = append(owners, a)
		case notOwner(a.err):
		default:
			failed = append(failed, a)
		}
	}
	switch {
	case len(owners) == 1:
		// The owner is certain only when every other candidate said no. When one could not
		// be asked, go on with the owner but do not remember it.
		if len(failed) == 0 {
			h.cache.put(id, owners[0].b.index, time.Duration(h.CacheTTL), time.Now())
		}
		return &probeResult{res: resolution{b: owners[0].b, cred: owners[0].cred}}
	case len(owners) > 1:
		p := newProblem(probAmbiguous, "several providers own credential "+id+"; name one with \"provider\"")
		p.ID = id
		for _, a := range owners {
			p.Providers = append(p.Providers, a.b.name)
		}
		return &probeResult{p: p}
	case len(failed) > 0:
		// The gateway never claims "not found" when it could not ask.
		names := make([]string, 0, len(failed))
		var retry time.Duration
		for _, a := range failed {
			names = append(names, a.b.name)
			var pe *provider.Error
			if asProviderError(a.err, &pe) && pe.RetryAfter > retry {
				retry = pe.RetryAfter
			}
		}
		if retry == 0 {
			retry = time.Second
		}
		p := newProblem(probUnavailable, "cannot tell which provider owns credential "+id+": "+strings.Join(names, ", ")+" could not be asked")
		p.ID, p.Providers, p.retryAfter = id, names, retry
		if len(failed) == 1 {
			p.Provider = failed[0].b.name
		}
		return &probeResult{p: p}
	}
	h.cache.put(id, noProvider, time.Duration(h.NegativeTTL), time.Now())
	p := newProblem(probNotFound, "no configured provider knows credential "+id)
	p.ID = id
	return &probeResult{p: p}
}
