package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind classifies what went wrong with a provider.
type Kind uint8

// The kinds of provider errors. The host maps each to one problem type of the API.
const (
	// KindUpstream: 5xx, a connection error, a malformed or oversized answer. A provider
	// failure: it counts against the breaker.
	KindUpstream Kind = iota
	// KindTimeout: the provider did not answer within its timeout. A provider failure.
	KindTimeout
	// KindNotFound: the provider does not know the credential.
	KindNotFound
	// KindForbidden: the provider forbids the gateway to touch the credential.
	KindForbidden
	// KindConflict: the provider refuses the transition (a revoked token, for one).
	KindConflict
	// KindUnsupported: the provider cannot express the requested status or expiry.
	KindUnsupported
	// KindAuth: the provider rejects the gateway's own credentials.
	KindAuth
	// KindRateLimited: the provider rate-limits the gateway.
	KindRateLimited
	// KindUnavailable: the provider's circuit breaker is open. Only the host makes it.
	KindUnavailable
	// KindCanceled: the caller went away. Only the host makes it.
	KindCanceled
	// KindRejected: the provider rejected the request with a 4xx that has no meaning of its
	// own (a 400, say): the gateway sent what the vendor did not expect. The client sees a
	// provider error (502), but the provider answered, so it does not count against the
	// breaker.
	KindRejected
)

var kindNames = [...]string{
	KindUpstream:    "upstream",
	KindTimeout:     "timeout",
	KindNotFound:    "not_found",
	KindForbidden:   "forbidden",
	KindConflict:    "conflict",
	KindUnsupported: "unsupported",
	KindAuth:        "auth",
	KindRateLimited: "rate_limited",
	KindUnavailable: "unavailable",
	KindCanceled:    "canceled",
	KindRejected:    "rejected",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is a classified provider error. Its text never holds a secret.
type Error struct {
	Kind Kind
	// StatusCode is the vendor's HTTP status, or 0 when there was no answer.
	StatusCode int
	// RetryAfter is how long the caller should wait, when the provider said (429) or the
	// breaker knows (open).
	RetryAfter time.Duration
	// Foreign marks a 403 that means "this credential belongs to another account": while the
	// host probes for an owner it reads as "not this provider".
	Foreign bool
	// Detail is a short, secret-free explanation for the client.
	Detail string
	// Err is the cause, for logs. It must be secret-free too.
	Err error
}

func (e *Error) Error() string {
	msg := e.Kind.String()
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.StatusCode)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k for the vendor status code (0 if none).
func Errorf(k Kind, code int, format string, args ...any) *Error {
	return &Error{Kind: k, StatusCode: code, Detail: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: that of the *Error in its chain, else KindUpstream.
func KindOf(err error) Kind {
	if e, ok := err.(*Error); ok {
		return e.Kind // the common case, without errors.As's allocation
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindUpstream
}

// ClassifyStatus returns the error for a vendor answer whose status the adapter does not
// accept, by HTTP status alone. Adapters call it after handling the statuses that their
// vendor gives a meaning of its own (a DigiCert 403, a Prefactor invalid_action).
func ClassifyStatus(code int, detail string) *Error {
	var k Kind
	switch {
	case code == http.StatusNotFound:
		k = KindNotFound
	case code == http.StatusForbidden:
		k = KindForbidden
	case code == http.StatusUnauthorized:
		k = KindAuth
	case code == http.StatusConflict:
		k = KindConflict
	case code == http.StatusUnprocessableEntity:
		k = KindUnsupported
	case code == http.StatusTooManyRequests:
		k = KindRateLimited
	case code == http.StatusRequestTimeout:
		k = KindTimeout
	case code >= 400 && code < 500:
		// Another 4xx: the gateway sent what the vendor did not expect.
		k = KindRejected
	default:
		// A 5xx, or an unexpected 1xx/2xx/3xx, is a provider failure.
		k = KindUpstream
	}
	return &Error{Kind: k, StatusCode: code, Detail: detail}
}

// Malformed returns the error for a vendor answer the adapter cannot decode. The cause is
// the decoder's error, which names a position or a type, never the body.
func Malformed(code int, what string, err error) *Error {
	return &Error{Kind: KindUpstream, StatusCode: code, Detail: "malformed answer: " + what, Err: sanitizeDecodeError(err)}
}

// sanitizeDecodeError keeps a JSON decoding failure's own text only where it cannot hold a
// value from the body: *json.SyntaxError and *json.UnmarshalTypeError name a character, a
// position and types. Anything else is reduced to a fixed text.
func sanitizeDecodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) {
		return err
	}
	return errDecode
}

var errDecode = errors.New("answer is not the documented JSON")

// IsVendorCode reports whether code looks like a vendor's error code, such as not_found,
// invalid_action or SYS.1001: 1 to 64 letters, digits, '_', '-' or '.'. Adapters pass a code
// on in a Detail only when it is one, as anything else in its place may be free text that
// echoes what was sent. Vendor messages are never passed on.
func IsVendorCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
