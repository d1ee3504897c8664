package credentialstatus

import (
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/credgate/credgate/module/policy"
	"github.com/credgate/credgate/module/provider"
)

// auditLoggerName is the name of the audit trail's logger under the handler's own
// (http.handlers.credential_status.audit), which operators route with Caddy's log options.
const auditLoggerName = "audit"

// changeRecord gathers what the audit entry of one status change says, as the request goes.
// A read or a dry run has an entry only when the policy refused it.
type changeRecord struct {
	start     time.Time
	id        string
	origin    *origin       // who asked
	read      bool          // a GET, refused by the policy
	validated bool          // the request was well-formed: only such requests are audited
	dryRun    bool          // a dry run changes nothing, and writes no audit entry unless denied
	replayed  bool          // the answer was an Idempotency-Key's kept one: nothing ran
	batchKey  string        // the Idempotency-Key of the batch the change is an item of
	req       changeRequest // as parsed; zero when the request was refused before
	b         *backend      // the provider, once one was found
	res       *provider.Result
	call      callState // the change's calls: their rate tokens, the provider's last HTTP status
}

// origin is who asked for a change: the same for every item of a batch.
type origin struct {
	requestID string           // {http.request.uuid}
	who       policy.Principal // the caller (see AuthorizationOptions.Caller)
	clientIP  string           // Caddy's client IP (trusted proxies applied)
}

// requestOrigin reads r's origin. Caddy's replacer makes the request's UUID on first use, so
// a batch reads it once, before its workers start.
func (h *Handler) requestOrigin(r *http.Request) *origin {
	o := &origin{who: h.authz.principal(r)}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		o.requestID, _ = repl.GetString("http.request.uuid")
	}
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		o.clientIP = ip
	}
	return o
}

// audit writes the one audit entry of a status change, successful or not, at INFO. It holds
// what the change was and who asked, and never a secret: the request's headers and the
// provider's answers are not in it.
func (h *Handler) audit(r *http.Request, c *changeRecord, p *Problem) {
	if c.dryRun && !isDenied(p) {
		return
	}
	ce := h.auditLog.Check(zap.InfoLevel, "credential status change")
	if ce == nil {
		return
	}
	providerName, outcome, result := "", "", provider.Status("")
	upstream := int(c.call.status.Load())
	switch {
	case p != nil:
		outcome, providerName = p.outcome(), p.Provider
		if p.UpstreamStatus != 0 {
			upstream = p.UpstreamStatus
		}
	case c.res != nil:
		outcome, result = changeOutcome(c.res), c.res.Status
	case c.replayed:
		outcome = outcomeReplayed
	}
	if c.b != nil {
		providerName = c.b.name
	}
	fp := auditFields.Get().(*[auditFieldCount]zap.Field)
	*fp = [auditFieldCount]zap.Field{
		zap.String("request_id", c.origin.requestID),
		zap.String("caller", c.origin.who.Name),
		zap.String("remote_addr", r.RemoteAddr),
		zap.String("client_ip", c.origin.clientIP),
		zap.String("id", c.id),
		zap.String("provider", providerName),
		zap.String("requested_status", string(c.req.status)),
		zap.String("result_status", string(result)),
		zap.String("action", c.action()),
		zap.String("outcome", outcome),
		zap.Int("upstream_status", upstream),
		zap.Duration("duration", time.Since(c.start)),
		zap.String("reason", c.req.reason),
		zap.String("idempotency_key", c.idempotencyKey()),
	}
	ce.Write(fp[:]...)
	*fp = [auditFieldCount]zap.Field{} // keep no strings alive in the pool
	auditFields.Put(fp)
}

// auditFields recycles the entries' fields: a core encodes them before Write returns, and
// a fresh slice for each entry would be the largest allocation of a change.
const auditFieldCount = 14

var auditFields = sync.Pool{New: func() any { return new([auditFieldCount]zap.Field) }}

// action names what was asked, as the policy knows it (empty when the request was refused
// before its status was read).
func (c *changeRecord) action() string {
	switch {
	case c.read:
		return policy.Read.String()
	case c.req.status == "":
		return ""
	}
	return actionOf(c.req.status, c.dryRun).String()
}

// idempotencyKey is the Idempotency-Key the change was asked with: its own, or its batch's.
func (c *changeRecord) idempotencyKey() string {
	if c.batchKey != "" {
		return c.batchKey
	}
	return c.req.key
}

// changeOutcome names a successful change's outcome.
func changeOutcome(res *provider.Result) string {
	switch {
	case res.PendingStatus != "":
		return outcomePending
	case res.Changed:
		return outcomeChanged
	}
	return outcomeUnchanged
}
