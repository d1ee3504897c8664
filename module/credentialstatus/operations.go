package credentialstatus

import (
	"context"
	"errors"
	"net/http"

	"github.com/credgate/credgate/module/policy"
	"github.com/credgate/credgate/module/provider"
	"github.com/credgate/credgate/module/resolve"
)

// read returns the status of credential id at the provider named by hint, or at the provider
// that owns it.
func (h *Handler) read(r *http.Request, id, hint string) (*provider.Credential, *backend, *Problem) {
	ctx := r.Context()
	acc := access{who: h.authz.principal(r), action: policy.Read}
	return withOwner(h, ctx, id, hint, nil, acc, func(b *backend, probed *provider.Credential) (*provider.Credential, error) {
		if probed != nil {
			return probed, nil // the probe read it a moment ago
		}
		return b.read(ctx, id, nil)
	})
}

// change gives credential id the requested status at the provider named by the request, or
// at the provider that owns it.
func (h *Handler) change(r *http.Request, rec *changeRecord) (*provider.Result, *backend, *Problem) {
	acc := access{who: rec.origin.who, action: actionOf(rec.req.status, false)}
	return withOwner(h, r.Context(), rec.id, rec.req.hint, nil, acc, h.changeOp(r.Context(), rec, nil))
}

// changeOp is the operation of a change, once its provider is known; run is the batch it is
// an item of (nil for a PUT).
func (h *Handler) changeOp(ctx context.Context, rec *changeRecord, run *batchRun) func(*backend, *provider.Credential) (*provider.Result, error) {
	req := &rec.req
	c := &provider.Change{
		ID:             rec.id,
		Status:         req.status,
		ExpiresAt:      req.expiresAt,
		IdempotencyKey: req.key,
		Operator:       rec.origin.who.Name,
	}
	// Once a status change starts, it runs to its end or to the provider's timeout even if the
	// client goes away: a kill switch must not be left half-thrown by a dropped connection.
	changeCtx := context.WithoutCancel(ctx)
	return func(b *backend, _ *provider.Credential) (*provider.Result, error) {
		if p := checkCapabilities(b, req); p != nil {
			return nil, p
		}
		return b.change(changeCtx, c, run, &rec.call)
	}
}

// preview answers what a change would do, reading only: the provider's capabilities are
// checked as for the change, and the credential is read (or taken from the probe that found
// its provider).
func (h *Handler) preview(ctx context.Context, who policy.Principal, id string, req *changeRequest) (*statusBody, *backend, *Problem) {
	acc := access{who: who, action: policy.DryRun}
	cred, b, p := withOwner(h, ctx, id, req.hint, nil, acc, h.previewOp(ctx, id, req, nil))
	if p != nil {
		return nil, b, p
	}
	return previewBody(id, b, req, cred), b, nil
}

func (h *Handler) previewOp(ctx context.Context, id string, req *changeRequest, run *batchRun) func(*backend, *provider.Credential) (*provider.Credential, error) {
	return func(b *backend, probed *provider.Credential) (*provider.Credential, error) {
		if p := checkCapabilities(b, req); p != nil {
			return nil, p
		}
		cred := probed
		if cred == nil {
			var err error
			if cred, err = b.read(ctx, id, run); err != nil {
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

// withOwner runs op at the provider named by hint, or else at the provider that owns id (see
// package resolve), when the policy lets acc's caller do its action there. run is the batch
// the calls are an item of, nil for a single request.
func withOwner[T any](h *Handler, ctx context.Context, id, hint string, run *batchRun, acc access, op func(*backend, *provider.Credential) (T, error)) (T, *backend, *Problem) {
	var zero T
	if p := h.precheck(id, hint, acc); p != nil {
		return zero, nil, p
	}
	o, err := h.resolver.Resolve(ctx, id, hint, h.reader(run))
	countResolution(o)
	if err != nil {
		return zero, nil, resolutionProblem(err, id)
	}
	return runAtOwner(h, ctx, id, o, run, acc, op)
}

// runAtOwner runs op at the owner that resolution found for id, when the policy lets acc's
// caller do its action there. A cached owner that no longer knows the ID is forgotten, and
// resolution runs once more.
func runAtOwner[T any](h *Handler, ctx context.Context, id string, o resolve.Owner, run *batchRun, acc access, op func(*backend, *provider.Credential) (T, error)) (T, *backend, *Problem) {
	var zero T
	b := h.ordered[o.Index]
	if p := h.allowedAt(b, id, acc); p != nil {
		return zero, b, p
	}
	v, err := op(b, o.Probed)
	if err != nil && o.Cached && resolve.NotOwner(err) {
		var rerr error
		o, rerr = h.resolver.Retry(ctx, id, h.reader(run))
		countResolution(o)
		if rerr != nil {
			return zero, nil, resolutionProblem(rerr, id)
		}
		b = h.ordered[o.Index]
		if p := h.allowedAt(b, id, acc); p != nil {
			return zero, b, p
		}
		v, err = op(b, o.Probed)
	}
	if err != nil {
		if o.Result == resolve.ByPattern && provider.KindOf(err) == provider.KindNotFound {
			h.resolver.RememberNone(id) // the only candidate does not know it: nobody does
		}
		return zero, b, providerProblem(err, id, b.name)
	}
	if o.Remember {
		h.resolver.Remember(id, o.Index)
	}
	return v, b, nil
}

// reader is how resolution reads at the handler's providers: through each provider's
// breaker, rate and timeout, as a batch's calls when run is set. The handler keeps the
// single requests' one, so that passing it as a resolve.Reader costs nothing; a batch makes
// its own.
type reader struct {
	h   *Handler
	run *batchRun
}

// Read implements resolve.Reader.
func (r *reader) Read(ctx context.Context, i int, id string) (*provider.Credential, error) {
	return r.h.ordered[i].read(ctx, id, r.run)
}

func (h *Handler) reader(run *batchRun) *reader {
	if run != nil {
		return &reader{h: h, run: run}
	}
	return &h.single
}

// resolutionProblem maps what resolution returned instead of an owner to the API's problem.
func resolutionProblem(err error, id string) *Problem {
	var (
		unknown   *resolve.UnknownProviderError
		notFound  *resolve.NotFoundError
		ambiguous *resolve.AmbiguousError
		unavail   *resolve.UnavailableError
		p         *Problem
	)
	switch {
	case errors.As(err, &unknown):
		p = newProblem(probUnknownProv, "no provider named "+clip(unknown.Name)+" is configured")
	case errors.As(err, &notFound):
		p = newProblem(probNotFound, err.Error())
	case errors.As(err, &ambiguous):
		p = newProblem(probAmbiguous, err.Error())
		p.Providers = ambiguous.Owners
	case errors.As(err, &unavail):
		p = newProblem(probUnavailable, err.Error())
		p.Providers, p.retryAfter = unavail.Providers, unavail.RetryAfter
		if len(unavail.Providers) == 1 {
			p.Provider = unavail.Providers[0]
		}
	default:
		return providerProblem(err, id, "")
	}
	p.ID = id
	return p
}
