package credentialstatus

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/credgate/credgate/module/provider"
)

// ProblemTypePrefix prefixes every problem type URI of the API.
const ProblemTypePrefix = "urn:credgate:problem:"

// problemKind is one row of the API's error table.
type problemKind struct {
	suffix string
	title  string
	status int
}

var (
	probInvalid      = problemKind{"invalid-request", "Invalid request", http.StatusBadRequest}
	probUnknownProv  = problemKind{"unknown-provider", "Unknown provider", http.StatusBadRequest}
	probMediaType    = problemKind{"unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType}
	probTooLarge     = problemKind{"body-too-large", "Request body too large", http.StatusRequestEntityTooLarge}
	probMethod       = problemKind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	probNotFound     = problemKind{"credential-not-found", "Credential not found", http.StatusNotFound}
	probAmbiguous    = problemKind{"ambiguous-credential", "Ambiguous credential", http.StatusConflict}
	probUnsupported  = problemKind{"unsupported-status", "Unsupported status", http.StatusUnprocessableEntity}
	probTransition   = problemKind{"transition-not-allowed", "Transition not allowed", http.StatusConflict}
	probForbidden    = problemKind{"provider-forbidden", "Provider forbids it", http.StatusForbidden}
	probAuthFailed   = problemKind{"provider-auth-failed", "Provider rejected the gateway's credentials", http.StatusBadGateway}
	probRateLimited  = problemKind{"provider-rate-limited", "Provider rate limit reached", http.StatusTooManyRequests}
	probProviderErr  = problemKind{"provider-error", "Provider error", http.StatusBadGateway}
	probTimeout      = problemKind{"provider-timeout", "Provider timeout", http.StatusGatewayTimeout}
	probUnavailable  = problemKind{"provider-unavailable", "Provider unavailable", http.StatusServiceUnavailable}
	probClientClosed = problemKind{"request-canceled", "Request canceled", 499}
	// The Idempotency-Key layer's (idempotency.go).
	probIdemInUse  = problemKind{"idempotency-key-in-use", "Idempotency key in use", http.StatusConflict}
	probIdemReused = problemKind{"idempotency-key-reused", "Idempotency key reused", http.StatusUnprocessableEntity}
	probIdemDown   = problemKind{"idempotency-unavailable", "Idempotency store unavailable", http.StatusServiceUnavailable}
)

// Problem is an RFC 9457 problem detail, with the API's extension members.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// ID is the credential ID, when it was a valid one.
	ID string `json:"id,omitempty"`
	// Provider is the provider that answered, when one did.
	Provider string `json:"provider,omitempty"`
	// Providers lists the providers concerned when there are several: the owners of an
	// ambiguous ID, or the candidates that could not be asked.
	Providers []string `json:"providers,omitempty"`
	// UpstreamStatus is the provider's HTTP status, when it answered.
	UpstreamStatus int `json:"upstream_status,omitempty"`

	retryAfter time.Duration
	allow      string
	kind       provider.Kind // for logs and metrics; KindUpstream when not from a provider
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// Suffix returns the problem type without its prefix.
func (p *Problem) Suffix() string { return p.Type[len(ProblemTypePrefix):] }

func newProblem(k problemKind, detail string) *Problem {
	return &Problem{Type: ProblemTypePrefix + k.suffix, Title: k.title, Status: k.status, Detail: detail}
}

// providerProblem maps a provider error to the API's problem, for credential id at provider
// name (empty when no single provider answered).
func providerProblem(err error, id, name string) *Problem {
	var pe *provider.Error
	if p, ok := err.(*Problem); ok {
		if p.ID == "" {
			p.ID = id
		}
		if p.Provider == "" {
			p.Provider = name
		}
		return p
	}
	kind := provider.KindOf(err)
	detail := ""
	var code int
	var retry time.Duration
	if asProviderError(err, &pe) {
		detail, code, retry = pe.Detail, pe.StatusCode, pe.RetryAfter
	}
	var k problemKind
	switch kind {
	case provider.KindNotFound:
		k = probNotFound
		detail = "provider " + name + " does not know credential " + id
	case provider.KindForbidden:
		k = probForbidden
	case provider.KindConflict:
		k = probTransition
	case provider.KindUnsupported:
		k = probUnsupported
	case provider.KindAuth:
		k = probAuthFailed
		detail = "provider " + name + " rejected the gateway's credentials; check the provider's secret"
	case provider.KindRateLimited:
		k = probRateLimited
	case provider.KindTimeout:
		k = probTimeout
		detail = "provider " + name + " did not answer within its timeout"
	case provider.KindUnavailable:
		k = probUnavailable
	case provider.KindCanceled:
		k = probClientClosed
	default:
		k = probProviderErr
	}
	if detail == "" {
		detail = k.title
	}
	p := newProblem(k, detail)
	p.ID, p.Provider, p.UpstreamStatus, p.retryAfter, p.kind = id, name, code, retry, kind
	return p
}

func asProviderError(err error, pe **provider.Error) bool { return errors.As(err, pe) }

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", retryAfterSeconds(p.retryAfter))
	}
	if p.allow != "" {
		h.Set("Allow", p.allow)
	}
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{"type":"about:blank","status":500}`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
