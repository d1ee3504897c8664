// Package provider is the contract between the credential_status handler (the host) and the
// vendor adapters (its guests).
//
// It imports nothing from Caddy, so a vendor client that depends only on this package can be
// built and tested alone. The contract for a [Client]:
//
//   - It is synchronous and honours ctx: when ctx is done, it returns promptly.
//   - It has no retries, breakers or timeouts of its own: the host owns them. It sends every
//     HTTP call through the [Upstream] the host hands it, which bounds the answer's size,
//     classifies transport failures, 5xx and 429, and retries what is safe to retry.
//   - It classifies every vendor answer it does not accept into an [*Error] of the right
//     [Kind]; the host maps kinds to HTTP problems and decides what the breaker counts.
//   - It never puts a secret (a token, an OAuth client secret, a stored credential value) into
//     a [Credential], an error, or anything else it returns.
package provider

import (
	"context"
	"time"
)

// Status is a credential's normalized status.
type Status string

// The normalized statuses.
const (
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
	// StatusRevoked is permanent; only providers with such a state can reach it.
	StatusRevoked Status = "revoked"
	// StatusUnknown is reported when the provider's answer does not say.
	StatusUnknown Status = "unknown"
)

// Valid reports whether s is a status a client may ask for.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusInactive || s == StatusRevoked
}

// Credential is the normalized view of one credential at a provider.
type Credential struct {
	// Status is the effective status now.
	Status Status
	// PendingStatus is set when the provider accepted a change that awaits approval.
	PendingStatus Status
	// ProviderStatus is the provider's own status word, where it has one.
	ProviderStatus string
	// Metadata is the non-secret metadata the provider returned, marshalled to JSON with
	// snake_case names. Adapters use a struct of their own that simply has no secret field.
	Metadata any
}

// Change asks a provider to give a credential a status.
type Change struct {
	ID     string
	Status Status
	// ExpiresAt is the caller's expiry for providers whose status is an expiry; zero if none.
	ExpiresAt time.Time
	// IdempotencyKey is the caller's Idempotency-Key header, for providers that take one.
	IdempotencyKey string
	// Operator is the authenticated caller, or empty when no authentication handler ran.
	Operator string
	// WriteOnly says the provider is configured with `reads off`: its read endpoint is
	// missing or forbidden. The client then sends the vendor's documented write alone, one
	// call, with no read before or after it, and builds the Result from the write's answer
	// (or from the requested status when the answer has no body), with Changed true: the write
	// was sent. Whether it changed anything is not known: the API answers "changed": null.
	// The host never calls Read on such a provider.
	WriteOnly bool
}

// Result is the outcome of a [Change].
type Result struct {
	Credential
	// Changed is false when the credential already had the requested status (PUT is
	// idempotent), whatever the provider itself says to a repeated transition. True for a WriteOnly
	// change that the vendor accepted (the write was sent; the API answers null).
	Changed bool
}

// Capabilities says which parts of the normalized model a provider can express.
type Capabilities struct {
	// Revoke is true when the provider has a permanent revoked state.
	Revoke bool
	// Expiry is true when the provider's status is an expiry, so that expires_at applies.
	Expiry bool
}

// Client speaks one vendor's API for one configured provider.
type Client interface {
	// Read returns the credential's current status through the vendor's read endpoint. It
	// never changes anything, so the host may use it to find which provider owns an ID.
	Read(ctx context.Context, id string) (*Credential, error)
	// Change gives the credential the requested status. It must be idempotent: asking for the
	// status the credential already has answers Changed false without a write where the
	// vendor can tell.
	Change(ctx context.Context, c *Change) (*Result, error)
}
