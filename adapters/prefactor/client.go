// Package prefactor is the credential_status adapter for Prefactor API tokens (the Prefactor
// platform API): http.credential_status.providers.prefactor.
//
// This file is the vendor client; it imports nothing from Caddy.
package prefactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/credgate/credgate/module/provider"
)

const (
	// DefaultBaseURL is Prefactor's origin.
	DefaultBaseURL = "https://app.prefactorai.com"
	// IDPattern is Prefactor's API token ID format: a PFID, 32 characters of Crockford's
	// base32 whose first is at most 7.
	IDPattern = `[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}`

	tokenPath = "/api/v1/api_token/"
)

// Prefactor's own status words (details.status).
const (
	statusActive    = "active"
	statusSuspended = "suspended"
	statusRevoked   = "revoked"
)

// The transitions, by the normalized status they lead to. Each is
// POST /api/v1/api_token/{api_token_id}/{action}.
var actions = map[provider.Status]string{
	provider.StatusActive:   "activate",
	provider.StatusInactive: "suspend",
	provider.StatusRevoked:  "revoke",
}

// Client speaks the Prefactor API for one account, with one API token.
type Client struct {
	ep *provider.Endpoint // carries the bearer token
	up *provider.Upstream
}

// NewClient returns a client that authenticates with the Prefactor API token token. baseURL
// is the origin, without a trailing slash.
func NewClient(baseURL, token string, up *provider.Upstream) *Client {
	return &Client{ep: provider.NewEndpoint(baseURL, "Authorization", "Bearer "+token), up: up}
}

// Metadata is the non-secret part of a Prefactor API token (ApiToken_Details). Prefactor
// never returns the token's value in these answers; this struct would not carry it anyway.
type Metadata struct {
	ID                   string `json:"id,omitempty"`
	AccountID            string `json:"account_id,omitempty"`
	EnvironmentID        string `json:"environment_id,omitempty"`           // nullable
	CreatedByAdminUserID string `json:"created_by_admin_user_id,omitempty"` // nullable
	TokenScope           string `json:"token_scope,omitempty"`
	Type                 string `json:"type,omitempty"`
	ExpiresAt            string `json:"expires_at,omitempty"`
	InsertedAt           string `json:"inserted_at,omitempty"`
	UpdatedAt            string `json:"updated_at,omitempty"`
	// LastUsedAt is untyped on Prefactor's page (nullable; a date-time when set).
	LastUsedAt       provider.Scalar   `json:"last_used_at,omitempty"`
	AvailableActions *AvailableActions `json:"available_actions,omitempty"`
}

// AvailableActions says which transitions Prefactor allows the token now. A field Prefactor
// left out, or sent as something other than a boolean, stays out; false is kept.
type AvailableActions struct {
	Activate *bool `json:"activate,omitempty"`
	Delete   *bool `json:"delete,omitempty"`
	Revoke   *bool `json:"revoke,omitempty"`
	Suspend  *bool `json:"suspend,omitempty"`
}

// UnmarshalJSON keeps the booleans of the object and drops anything else; it never fails, so
// that an odd available_actions cannot cost the token's status.
func (a *AvailableActions) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(b, &fields) // not an object: no fields
	flag := func(name string) *bool {
		var v bool
		if raw, ok := fields[name]; ok && json.Unmarshal(raw, &v) == nil && string(bytes.TrimSpace(raw)) != "null" {
			return &v
		}
		return nil
	}
	*a = AvailableActions{Activate: flag("activate"), Delete: flag("delete"), Revoke: flag("revoke"), Suspend: flag("suspend")}
	return nil
}

// details is ApiToken_Details: the token's metadata and its status.
type details struct {
	Metadata
	// Status is a Scalar so that an odd value (an object, a number) reads as "unknown"
	// instead of failing the whole answer.
	Status provider.Scalar `json:"status"`
}

// envelope is the shape of every Prefactor answer: {"details": {...}, "status": "success"} or
// {"status": "error", "code": "...", "message": "...", "errors": ...}. The message and errors
// are never read: they may quote what was sent.
type envelope struct {
	Status  provider.Scalar `json:"status"`
	Code    provider.Scalar `json:"code"`
	Details json.RawMessage `json:"details"`
}

// Read returns the API token's status.
func (c *Client) Read(ctx context.Context, id string) (*provider.Credential, error) {
	req, err := c.request(ctx, http.MethodGet, tokenPath+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.up.Do(req, true)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, classify(resp, false)
	}
	var env envelope
	if err := provider.DecodeJSON(resp, "API token", &env); err != nil {
		return nil, err
	}
	if env.Status.String() == "error" {
		return nil, classify(resp, false)
	}
	d, err := decodeDetails(env.Details)
	if err != nil {
		return nil, provider.Malformed(resp.StatusCode, "API token", err)
	}
	if d == nil {
		return nil, provider.Malformed(resp.StatusCode, "API token: no details", nil)
	}
	return d.credential(), nil
}

// Change gives the API token the requested status: active (activate), inactive (suspend) or
// revoked (revoke). It reads the token first, so that asking for the status it has changes
// nothing, and a revoked token (revoked is permanent) is refused without a call.
func (c *Client) Change(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	action, ok := actions[ch.Status]
	if !ok {
		return nil, provider.Errorf(provider.KindUnsupported, 0, "Prefactor API tokens are active, inactive or revoked")
	}
	cur := &provider.Credential{Status: provider.StatusUnknown}
	if !ch.WriteOnly { // with reads off the POST goes alone
		var err error
		if cur, err = c.Read(ctx, ch.ID); err != nil {
			return nil, err
		}
		// Whatever Prefactor would say to a repeated transition (whether it refuses one is
		// unconfirmed), asking for the status the token has is a success that changes nothing.
		// The vendor's word decides: an expired token still "active" reads inactive, and
		// suspending it keeps it off should its expiry move.
		if wordStatus(cur.ProviderStatus) == ch.Status {
			return &provider.Result{Credential: *cur}, nil
		}
		if cur.Status == provider.StatusRevoked {
			return nil, provider.Errorf(provider.KindConflict, 0, "revoked tokens cannot change status")
		}
	}

	body := struct {
		IdempotencyKey string `json:"idempotency_key,omitempty"`
	}{ch.IdempotencyKey}
	req, err := c.request(ctx, http.MethodPost, tokenPath+url.PathEscape(ch.ID)+"/"+action, body)
	if err != nil {
		return nil, err
	}
	// With an idempotency key Prefactor applies a repeated request once; without one a
	// transition is repeated only when it was never sent.
	resp, err := c.up.Do(req, ch.IdempotencyKey != "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, classify(resp, true)
	}
	var env envelope
	if json.Unmarshal(resp.Body, &env) == nil && env.Status.String() == "error" {
		return nil, classify(resp, true)
	}
	// The transition took effect. The answer's details are the token's new state; an answer
	// without usable details (no body, not JSON, no known status) still is a success, and the
	// requested status is reported.
	if d, err := decodeDetails(env.Details); err == nil && d != nil {
		if cred := d.credential(); cred.Status != provider.StatusUnknown {
			return &provider.Result{Credential: *cred, Changed: true}, nil
		}
	}
	res := &provider.Result{Credential: *cur, Changed: true}
	res.Status, res.ProviderStatus = ch.Status, vendorStatus(ch.Status)
	if m, ok := cur.Metadata.(*Metadata); ok && m != nil {
		stale := *m
		stale.AvailableActions = nil // they were those of the old status
		res.Metadata = &stale
	}
	return res, nil
}

// request builds a call to path with the API token's bearer authentication.
func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	return c.ep.Request(ctx, method, path, body)
}

// decodeDetails decodes ApiToken_Details, or returns nil when raw is absent, null or not an
// object. A metadata field of an unexpected type is left out rather than failing the answer:
// encoding/json goes on past such a field and reports it at the end.
func decodeDetails(raw json.RawMessage) (*details, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	var d details
	if err := json.Unmarshal(raw, &d); err != nil {
		var typ *json.UnmarshalTypeError
		if !errors.As(err, &typ) {
			return nil, err
		}
	}
	return &d, nil
}

// credential maps Prefactor's status word: active is active, suspended is inactive, revoked
// is revoked; anything else is unknown.
func (d *details) credential() *provider.Credential {
	word := d.Status.String()
	s := wordStatus(word)
	// Expiry counts: a token whose expires_at has passed is inactive whatever its word, which
	// stays in provider_status. Revoked stays revoked: it is for good either way.
	if t, err := time.Parse(time.RFC3339, d.ExpiresAt); err == nil && !t.After(time.Now()) && s != provider.StatusRevoked {
		s = provider.StatusInactive
	}
	m := d.Metadata
	return &provider.Credential{Status: s, ProviderStatus: word, Metadata: &m}
}

// vendorStatus is Prefactor's word for a normalized status.
// wordStatus is the normalized status of a Prefactor status word, expiry aside.
func wordStatus(word string) provider.Status {
	switch word {
	case statusActive:
		return provider.StatusActive
	case statusSuspended:
		return provider.StatusInactive
	case statusRevoked:
		return provider.StatusRevoked
	}
	return provider.StatusUnknown
}

func vendorStatus(s provider.Status) string {
	switch s {
	case provider.StatusActive:
		return statusActive
	case provider.StatusInactive:
		return statusSuspended
	case provider.StatusRevoked:
		return statusRevoked
	}
	return ""
}

// classify maps an error answer. transition says it answered an activate, suspend or revoke.
//
// How Prefactor refuses a transition (activating a revoked token, for one) is unconfirmed: 409
// with code invalid_action is the likely reading, 400 the other. Both are taken: on a
// transition, a 409, a 400 or 422, or invalid_action at any status is a refused transition.
// Otherwise the HTTP status decides where it is unambiguous (401, 403, 404, 409), and the
// code where it is not. The detail names the code, never the message.
//
// A 403 to a read means the token is out of reach of the gateway's token (another account's,
// with a Prefactor that answers not_permitted rather than not_found): Foreign, so that a probe
// of several Prefactor accounts reads it as "not this account".
func classify(resp *provider.Response, transition bool) error {
	code := errorCode(resp.Body)
	detail := ""
	if code != "" {
		detail = "Prefactor error " + code
	}
	status := resp.StatusCode
	if transition && (code == "invalid_action" || status == http.StatusConflict) {
		// Only the vendor's own refusal is a refused transition.
		if detail == "" {
			detail = "Prefactor refused the transition"
		}
		return &provider.Error{Kind: provider.KindConflict, StatusCode: status, Detail: detail}
	}
	if code == "bad_request" || code == "validation_errors" || ((status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) &&
		code != "not_found" && code != "not_authenticated" && code != "not_permitted") {
		// A request error (the gateway's or the vendor's problem), not a refusal: a provider
		// error (502) with the vendor's status and code.
		if detail == "" {
			detail = "Prefactor rejected the request"
		}
		return &provider.Error{Kind: provider.KindRejected, StatusCode: status, Detail: detail}
	}
	var e *provider.Error
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests:
		e = provider.ClassifyStatus(status, detail)
	default:
		switch code {
		case "not_found":
			e = &provider.Error{Kind: provider.KindNotFound, StatusCode: status, Detail: detail}
		case "not_authenticated":
			e = &provider.Error{Kind: provider.KindAuth, StatusCode: status, Detail: detail}
		case "not_permitted":
			e = &provider.Error{Kind: provider.KindForbidden, StatusCode: status, Detail: detail}
		default:
			e = provider.ClassifyStatus(status, detail)
		}
	}
	if e.Kind == provider.KindForbidden && !transition {
		e.Foreign = true
	}
	return e
}

// errorCode returns the code of Prefactor's error shape, or "" when the body has none. Only a
// short identifier is kept: a code is a word such as not_found, never free text.
func errorCode(body []byte) string {
	var env envelope
	if json.Unmarshal(body, &env) != nil {
		return ""
	}
	if code := env.Code.String(); provider.IsVendorCode(code) {
		return code
	}
	return ""
}
