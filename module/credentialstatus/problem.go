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

// ProblemType is one row of the API's error table: a problem type and the HTTP status it
// always comes with.
type ProblemType struct {
	// Suffix is the type's last part: the type is ProblemTypePrefix + Suffix.
	Suffix string
	Title  string
	Status int
}

// problemKind is a row of the table, as the handler uses it.
type problemKind = ProblemType

// problemTable lists every problem type the handler answers, in the order defined below.
var problemTable []ProblemType

// defProblem adds a row to the table: every problem type is defined through it, so that the
// table cannot miss one.
func defProblem(suffix, title string, status int) problemKind {
	k := ProblemType{Suffix: suffix, Title: title, Status: status}
	problemTable = append(problemTable, k)
	return k
}

// ProblemTypes returns the API's error table: every problem type the handler answers.
func ProblemTypes() []ProblemType { return append([]ProblemType(nil), problemTable...) }

// The problem types.
var (
	probInvalid       = defProblem("invalid-request", "Invalid request", http.StatusBadRequest)
	probUnknownProv   = defProblem("unknown-provider", "Unknown provider", http.StatusBadRequest)
	probMediaType     = defProblem("unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType)
	probTooLarge      = defProblem("body-too-large", "Request body too large", http.StatusRequestEntityTooLarge)
	probMethod        = defProblem("method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed)
	probNotFound      = defProblem("credential-not-found", "Credential not found", http.StatusNotFound)
	probAmbiguous     = defProblem("ambiguous-credential", "Ambiguous credential", http.StatusConflict)
	probUnsupported   = defProblem("unsupported-status", "Unsupported status", http.StatusUnprocessableEntity)
	probTransition    = defProblem("transition-not-allowed", "Transition not allowed", http.StatusConflict)
	probProvForbidden = defProblem("provider-forbidden", "Provider forbids it", http.StatusForbidden)
	probAuthFailed    = defProblem("provider-auth-failed", "Provider rejected the gateway's credentials", http.StatusBadGateway)
	probRateLimited   = defProblem("provider-rate-limited", "Provider rate limit reached", http.StatusTooManyRequests)
	probProviderErr   = defProblem("provider-error", "Provider error", http.StatusBadGateway)
	probTimeout       = defProblem("provider-timeout", "Provider timeout", http.StatusGatewayTimeout)
	probUnavailable   = defProblem("provider-unavailable", "Provider unavailable", http.StatusServiceUnavailable)
	probClientClosed  = defProblem("request-canceled", "Request canceled", 499)
	probIdemInUse     = defProblem("idempotency-key-in-use", "Idempotency key in use", http.StatusConflict)
	probIdemReused    = defProblem("idempotency-key-reused", "Idempotency key reused", http.StatusUnprocessableEntity)
	probIdemDown      = defProblem("idempotency-unavailable", "Idempotency store unavailable", http.StatusServiceUnavailable)
	// The policy's (authorization.go).
	probForbidden = defProblem("forbidden", "Forbidden", http.StatusForbidden)
	// The gateway's protection of the vendors (backend.go, batch.go).
	probBudget         = defProblem("rate-limited", "Rate budget exhausted", http.StatusTooManyRequests)
	probTooManyBatches = defProblem("too-many-batches", "Too many batches", http.StatusTooManyRequests)
	// A GET or dry run at a provider with reads off (reads.go).
	probReadsOff = defProblem("reads-disabled", "Reads disabled", http.StatusNotImplemented)
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

// outcomeDenied is the outcome of a request the policy refused, in requests_total and the
// audit trail.
const outcomeDenied = "denied"

// outcome is the problem's outcome in requests_total and the audit trail: "denied" for a
// refusal of the policy, else the problem type's suffix.
func (p *Problem) outcome() string {
	if isDenied(p) {
		return outcomeDenied
	}
	return p.Suffix()
}

// Suffix returns the problem type without its prefix.
func (p *Problem) Suffix() string { return p.Type[len(ProblemTypePrefix):] }

func newProblem(k problemKind, detail string) *Problem {
	return &Problem{Type: ProblemTypePrefix + k.Suffix, Title: k.Title, Status: k.Status, Detail: detail}
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
		k = probProvForbidden
	case provider.KindConflict:
		k = probTransition
	case provider.KindUnsupported:
		k = probUnsupported
	case provider.KindAuth:
		k = probAuthFailed
		detail = "provider " + name + " rejected the gateway's credentials; check the provider's secret"
	case provider.KindRateLimited:
		k = probRateLimited
		if errors.Is(err, errBudget) {
			k = probBudget
		}
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
		detail = k.Title
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

// maxEcho is the most bytes of one client-supplied string (an ID, a provider name, a key)
// that an answer repeats.
const maxEcho = 256

// clip returns s, or its first maxEcho bytes marked as cut when it is longer: no answer echoes
// a long client string whole.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
