// Package palisade is the credential_status adapter for Palisade API credentials (Ripple
// Wallet-as-a-Service, "Palisade API 2.0"): http.credential_status.providers.palisade.
//
// This file is the vendor client; it imports nothing from Caddy.
package palisade

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/credgate/credgate/module/provider"
)

const (
	// DefaultBaseURL is Palisade's production origin (the sandbox is
	// https://api.sandbox.palisade.co).
	DefaultBaseURL = "https://api.palisade.co"
	// IDPattern is Palisade's credential ID format: a UUID.
	IDPattern = `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`

	credentialsPath = "/v2/credentials/"
	tokenPath       = "/v2/credentials/oauth/token"
)

// Palisade's status words that the adapter gives a meaning of its own.
const (
	StatusDeleted                  = "DELETED"
	StatusDeletionApprovalPending  = "DELETION_APPROVAL_PENDING"
	StatusDeletionApprovalComplete = "DELETION_APPROVAL_COMPLETE"
	StatusEnableApprovalPending    = "ENABLE_APPROVAL_PENDING"
	StatusDisableApprovalPending   = "DISABLE_APPROVAL_PENDING"
	StatusError                    = "ERROR"
	StatusRejected                 = "REJECTED"
	StatusCreationApprovalPending  = "CREATION_APPROVAL_PENDING"
)

// gRPC status codes that mean "the credential's state refuses the transition".
const (
	grpcFailedPrecondition = 9
	grpcAborted            = 10
)

// Client speaks the Palisade API for one organization's API credential: with a static access
// token, or with an OAuth client whose access tokens it fetches, caches and refreshes.
type Client struct {
	baseURL string
	up      *provider.Upstream
	// oauth fetches access tokens; nil in static mode.
	oauth *tokenSource

	mu      sync.Mutex
	ep      *provider.Endpoint // carries epToken: the static token, or the current access token
	epToken string
}

// NewClient returns a client that authenticates with a static access token. baseURL is the
// origin, without a trailing slash.
func NewClient(baseURL, token string, up *provider.Upstream) *Client {
	c := &Client{baseURL: baseURL, up: up}
	c.endpoint(token)
	return c
}

// NewOAuthClient returns a client that fetches access tokens from Palisade's token endpoint
// with an OAuth client ID and secret. baseURL is the origin, without a trailing slash.
func NewOAuthClient(baseURL, clientID, clientSecret string, up *provider.Upstream) *Client {
	return &Client{baseURL: baseURL, up: up, oauth: newTokenSource(baseURL+tokenPath, clientID, clientSecret, up)}
}

// Metadata is the non-secret part of a Palisade API credential. It has no field for the
// credential's clientSecret, which Palisade returns with every credential.
type Metadata struct {
	ID                  provider.Scalar `json:"id,omitempty"`
	Name                provider.Scalar `json:"name,omitempty"`
	Description         provider.Scalar `json:"description,omitempty"`
	Category            provider.Scalar `json:"category,omitempty"`
	Permissions         scalars         `json:"permissions,omitempty"`
	ProposedPermissions scalars         `json:"proposed_permissions,omitempty"`
	CreatedBy           provider.Scalar `json:"created_by,omitempty"`
	OrganizationID      provider.Scalar `json:"organization_id,omitempty"`
	CreatedAt           provider.Scalar `json:"created_at,omitempty"`
	UpdatedAt           provider.Scalar `json:"updated_at,omitempty"`
	ClientID            provider.Scalar `json:"client_id,omitempty"`
	AllowedIPs          scalars         `json:"allowed_ips,omitempty"`
}

// credential is the answer of GET /v2/credentials/{id} and PUT /v2/credentials/{id}/active,
// with Palisade's camelCase names. It has no clientSecret field: the secret is never decoded.
// Every field goes through provider.Scalar, so that a loosely typed value (an enum sent as a
// number, an ID as a number) never fails the decoding.
type credential struct {
	ID                  provider.Scalar `json:"id"`
	Name                provider.Scalar `json:"name"`
	Description         provider.Scalar `json:"description"`
	Category            provider.Scalar `json:"category"`
	Permissions         scalars         `json:"permissions"`
	ProposedPermissions scalars         `json:"proposedPermissions"`
	CreatedBy           provider.Scalar `json:"createdBy"`
	OrganizationID      provider.Scalar `json:"organizationId"`
	CreatedAt           provider.Scalar `json:"createdAt"`
	UpdatedAt           provider.Scalar `json:"updatedAt"`
	ClientID            provider.Scalar `json:"clientId"`
	AllowedIPs          scalars         `json:"allowedIps"`
	Active              provider.Scalar `json:"active"`
	Status              provider.Scalar `json:"status"`
}

func (c *credential) metadata() *Metadata {
	return &Metadata{
		ID: c.ID, Name: c.Name, Description: c.Description, Category: c.Category,
		Permissions: c.Permissions, ProposedPermissions: c.ProposedPermissions,
		CreatedBy: c.CreatedBy, OrganizationID: c.OrganizationID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		ClientID: c.ClientID, AllowedIPs: c.AllowedIPs,
	}
}

// normalize maps Palisade's answer to the normalized status:
//
//	status                                  active   effective  pending
//	--------------------------------------  -------  ---------  --------
//	DELETED, DELETION_APPROVAL_COMPLETE     any      revoked    -
//	ENABLE_APPROVAL_PENDING                 true     active     active
//	ENABLE_APPROVAL_PENDING                 false    inactive   active
//	DISABLE_APPROVAL_PENDING                true     active     inactive
//	DISABLE_APPROVAL_PENDING                false    inactive   inactive
//	any other (ENABLED, DISABLED, CREATED,  true     active     -
//	  DELETION_APPROVAL_PENDING, ...)       false    inactive   -
//	any but the deleted ones                absent   unknown    (as above)
//
// The credential's own `active` boolean is the effective status: a change awaiting approval
// leaves it as it was. Which changes need approval is unconfirmed, so ENABLE_/DISABLE_
// APPROVAL_PENDING are read, whenever they appear, as "a change to active / inactive was
// accepted and awaits approval". Status words are compared without regard to case. The
// provider status is Palisade's status word as sent.
func (c *credential) normalize() *provider.Credential {
	word := c.Status.String()
	out := &provider.Credential{ProviderStatus: word, Metadata: c.metadata(), Status: provider.StatusUnknown}
	switch strings.ToUpper(word) {
	case StatusDeleted, StatusDeletionApprovalComplete:
		out.Status = provider.StatusRevoked
		return out
	case StatusEnableApprovalPending:
		out.PendingStatus = provider.StatusActive
	case StatusDisableApprovalPending:
		out.PendingStatus = provider.StatusInactive
	case StatusError:
		// The word does not say what the credential can do: unknown, not a guess from active.
		return out
	case StatusRejected:
		// Never usable: its creation was refused.
		out.Status = provider.StatusInactive
		return out
	case StatusCreationApprovalPending:
		// Not usable yet; it will be once approvers act.
		out.Status, out.PendingStatus = provider.StatusInactive, provider.StatusActive
		return out
	}
	switch c.Active.String() {
	case "true":
		out.Status = provider.StatusActive
	case "false":
		out.Status = provider.StatusInactive
	}
	return out
}

// deleted reports whether the credential is deleted or on its way to be: no enable or disable.
func (c *credential) deleted() bool {
	switch strings.ToUpper(c.Status.String()) {
	case StatusDeleted, StatusDeletionApprovalPending, StatusDeletionApprovalComplete:
		return true
	}
	return false
}

// rpcStatus is grpc-gateway's error body: {"code": <int>, "message": "...", "details": [...]}.
// Only the code is kept: the message is free text and could echo anything.
type rpcStatus struct {
	Code provider.Scalar `json:"code"`
}

// Read returns the credential's status.
func (c *Client) Read(ctx context.Context, id string) (*provider.Credential, error) {
	cr, err := c.read(ctx, id)
	if err != nil {
		return nil, err
	}
	return cr.normalize(), nil
}

func (c *Client) read(ctx context.Context, id string) (*credential, error) {
	resp, err := c.call(ctx, http.MethodGet, credentialsPath+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, classify(resp)
	}
	var cr credential
	if err := provider.DecodeJSON(resp, "credential", &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

// Change enables or disables the credential. It reads the credential first, so that asking
// for the status it has, or for the status a change awaiting approval will give it, writes
// nothing; a deleted credential is refused without a write.
func (c *Client) Change(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	if ch.Status != provider.StatusActive && ch.Status != provider.StatusInactive {
		return nil, provider.Errorf(provider.KindUnsupported, 0, "Palisade credentials are active or inactive")
	}
	if !ch.WriteOnly { // with reads off the PUT goes alone
		if res, err := c.unchanged(ctx, ch); res != nil || err != nil {
			return res, err
		}
	}
	return c.write(ctx, ch)
}

// unchanged reads the credential before a change: a Result when it has the requested status
// already (or is pending it), an error when it cannot change; nil, nil when the write should
// go.
func (c *Client) unchanged(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	cur, err := c.read(ctx, ch.ID)
	if err != nil {
		return nil, err
	}
	if cur.deleted() {
		return nil, provider.Errorf(provider.KindConflict, 0, "deleted credential cannot be enabled or disabled")
	}
	now := cur.normalize()
	switch {
	case now.PendingStatus == ch.Status:
		// Already accepted, awaiting approval: the host answers 202 again.
		return &provider.Result{Credential: *now}, nil
	case now.Status == ch.Status && now.PendingStatus == "":
		return &provider.Result{Credential: *now}, nil
	}
	return nil, nil
}

// write sends PUT /v2/credentials/{id}/active and reads its answer.
func (c *Client) write(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	body := struct {
		Active bool `json:"active"`
	}{ch.Status == provider.StatusActive}
	resp, err := c.call(ctx, http.MethodPut, credentialsPath+url.PathEscape(ch.ID)+"/active", body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, classify(resp)
	}
	var after *provider.Credential
	switch {
	case len(resp.Body) == 0 && ch.WriteOnly:
		// No body and no read allowed: the flag sent is all the gateway knows.
		after = &provider.Credential{Status: ch.Status}
	case len(resp.Body) == 0:
		// The page documents the credential in the answer; should it be missing, read it back
		// rather than guess whether the change awaits approval.
		if after, err = c.Read(ctx, ch.ID); err != nil {
			return nil, err
		}
	default:
		var cr credential
		if err := provider.DecodeJSON(resp, "credential", &cr); err != nil {
			return nil, err
		}
		after = cr.normalize()
	}
	if after.PendingStatus != ch.Status {
		// Only a change awaiting approval toward the requested status is "pending"; anything
		// else is the answer's effective status.
		after.PendingStatus = ""
	}
	return &provider.Result{Credential: *after, Changed: true}, nil
}

// call sends one API call with the access token. In OAuth mode, an answer 401 drops the
// token, and the call is sent once more with a new one; a second 401 is left to classify.
// Every call is idempotent: a GET, or a PUT of the active flag.
func (c *Client) call(ctx context.Context, method, path string, body any) (*provider.Response, error) {
	for attempt := 0; ; attempt++ {
		ep, token := c.current()
		if c.oauth != nil {
			var err error
			if token, err = c.oauth.token(ctx); err != nil {
				return nil, err
			}
			ep = c.endpoint(token)
		}
		req, err := ep.Request(ctx, method, path, body)
		if err != nil {
			return nil, err
		}
		resp, err := c.up.Do(req, true)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && c.oauth != nil && attempt == 0 {
			c.oauth.drop(token)
			continue
		}
		return resp, nil
	}
}

// current returns the endpoint in use and the token it carries.
func (c *Client) current() (*provider.Endpoint, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep, c.epToken
}

// endpoint returns the endpoint whose calls carry token, made once per token (an access token
// lives an hour).
func (c *Client) endpoint(token string) *provider.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep == nil || c.epToken != token {
		c.ep, c.epToken = provider.NewEndpoint(c.baseURL, "Authorization", "Bearer "+token), token
	}
	return c.ep
}

// classify maps an answer other than success. A 409, or a 400 or 412 whose gRPC code is
// FAILED_PRECONDITION (9) or ABORTED (10), is a refused transition; the rest goes by HTTP
// status alone (a 401 is the gateway's own credentials, a 404 an unknown credential or one of
// another organization). The detail holds the gRPC code number, never the message.
func classify(resp *provider.Response) error {
	code, detail := errorCode(resp)
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusPreconditionFailed:
		if code == grpcFailedPrecondition || code == grpcAborted {
			return &provider.Error{Kind: provider.KindConflict, StatusCode: resp.StatusCode, Detail: detail}
		}
	}
	e := provider.ClassifyStatus(resp.StatusCode, detail)
	if e.Kind == provider.KindForbidden {
		// A credential of another organisation answers 403 (PERMISSION_DENIED) on some
		// accounts and 404 on others: while probing several organisations it reads as "not
		// ours". When every organisation refuses, the host answers 403, never 404.
		e.Foreign = true
	}
	return e
}

// errorCode returns the gRPC code of an RpcStatus answer and a detail naming it, or -1 and ""
// when the answer has none.
func errorCode(resp *provider.Response) (int, string) {
	var st rpcStatus
	if json.Unmarshal(resp.Body, &st) != nil || len(st.Code) == 0 {
		return -1, ""
	}
	n, err := strconv.Atoi(st.Code.String())
	if err != nil {
		return -1, ""
	}
	return n, "Palisade error code " + strconv.Itoa(n)
}

// scalars is a list of scalars (permissions, IP addresses). Anything that is not a list
// decodes as an empty one, and a member that is not a scalar is dropped, so that a loosely
// typed answer never fails the decoding.
type scalars []provider.Scalar

// UnmarshalJSON keeps the scalars of a list and drops anything else.
func (s *scalars) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		*s = nil
		return nil
	}
	out := make(scalars, 0, len(raw))
	for _, r := range raw {
		var v provider.Scalar
		_ = v.UnmarshalJSON(r)
		if len(v) > 0 {
			out = append(out, v)
		}
	}
	*s = out
	return nil
}
