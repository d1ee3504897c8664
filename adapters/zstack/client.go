// Package zstack is the credential_status adapter for ZStack Cloud stored credentials (the
// /api/v1 "Identity & Access / Credentials" API): http.credential_status.providers.zstack.
//
// ZStack credentials have no enable/disable switch: their status is their expiry. The adapter
// maps the normalized statuses onto expiresAt: inactive sets it to now, active sets it to a time
// in the future (the caller's expires_at, or now + reactivate_for).
//
// This file is the vendor client; it imports nothing from Caddy.
package zstack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credgate/credgate/module/provider"
)

const (
	// IDPattern is ZStack's credential UUID format: "cred-" and a UUID.
	IDPattern = `cred-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`
	// DefaultOperator is the principal sent with a change when no authenticated caller is known.
	DefaultOperator = "credgate"
	// DefaultReactivateFor is how far in the future active sets the expiry when the caller
	// gives no expires_at: 90 days.
	DefaultReactivateFor = 2160 * time.Hour

	credentialPath = "/api/v1/credentials/"
)

// Client speaks the ZStack Cloud credentials API for one ZStack installation.
type Client struct {
	ep            *provider.Endpoint // carries the bearer token
	operator      string
	reactivateFor time.Duration
	up            *provider.Upstream
	now           func() time.Time
}

// NewClient returns a client that authenticates with the bearer token. baseURL is the
// installation's origin, without a trailing slash. operator is the principal sent with a change
// when the caller is not known (DefaultOperator when empty); reactivateFor is how far in the
// future active sets the expiry when the caller gives none (DefaultReactivateFor when not
// positive).
func NewClient(baseURL, token, operator string, reactivateFor time.Duration, up *provider.Upstream) *Client {
	if operator == "" {
		operator = DefaultOperator
	}
	if reactivateFor <= 0 {
		reactivateFor = DefaultReactivateFor
	}
	return &Client{ep: provider.NewEndpoint(baseURL, "Authorization", "Bearer "+token), operator: operator, reactivateFor: reactivateFor, up: up, now: time.Now}
}

// Metadata is the non-secret part of a ZStack credential. The credential's stored value is a
// secret: it has no field here (ZStack does not return it anyway).
type Metadata struct {
	UUID         text `json:"uuid,omitempty"`
	Name         text `json:"name,omitempty"`
	Description  text `json:"description,omitempty"`
	Type         text `json:"type,omitempty"`
	HealthStatus text `json:"health_status,omitempty"`
	ExpiresAt    text `json:"expires_at,omitempty"`
	CreatedBy    text `json:"created_by,omitempty"`
	CreateDate   text `json:"create_date,omitempty"`
	LastOpDate   text `json:"last_op_date,omitempty"`
}

// text is a string field that ZStack types loosely: the page's response example renders the
// enums type and healthStatus as {} and the timestamps as "example". It keeps a JSON string and
// drops anything else (an object, an array, a number, null), so decoding never fails on it.
type text string

// UnmarshalJSON keeps a string and drops anything else.
func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = ""
	}
	*t = text(s)
	return nil
}

// credential is the answer of GET and PUT /api/v1/credentials/{uuid}. expiresAt is kept raw so
// that "absent" (never expires) can be told from "present but not a time" (unknown).
type credential struct {
	UUID         text            `json:"uuid"`
	Name         text            `json:"name"`
	Description  text            `json:"description"`
	Type         text            `json:"type"`
	HealthStatus text            `json:"healthStatus"`
	ExpiresAt    json.RawMessage `json:"expiresAt"`
	CreatedBy    text            `json:"createdBy"`
	CreateDate   text            `json:"createDate"`
	LastOpDate   text            `json:"lastOpDate"`
}

// update is the body of PUT /api/v1/credentials/{uuid}. The page lists name, description,
// value, expiresAt and operator, all of them optional: the gateway sends only the expiry and
// the operator. value is never sent: a status change must not rotate the stored secret.
type update struct {
	ExpiresAt string `json:"expiresAt"`
	Operator  string `json:"operator"`
}

// errorBody is ZStack's error shape. Only the code is used: description and details are free
// text that could echo what was sent.
type errorBody struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

// Read returns the credential's status, derived from its expiry.
func (c *Client) Read(ctx context.Context, id string) (*provider.Credential, error) {
	cr, err := c.get(ctx, id)
	if err != nil {
		return nil, err
	}
	cred, _ := c.credential(cr)
	return cred, nil
}

// Change sets the credential's expiry so that it has the requested status: now for inactive;
// the caller's expiry, or now + reactivate_for, for active. ZStack has no revoked state. It
// reads the credential first, so that asking for the status it has changes nothing.
func (c *Client) Change(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	switch {
	case ch.Status == provider.StatusRevoked:
		return nil, provider.Errorf(provider.KindUnsupported, 0, "ZStack credentials have no revoked state; use inactive")
	case ch.Status != provider.StatusActive && ch.Status != provider.StatusInactive:
		return nil, provider.Errorf(provider.KindUnsupported, 0, "ZStack credentials are active or inactive")
	case !ch.ExpiresAt.IsZero() && ch.Status != provider.StatusActive:
		return nil, provider.Errorf(provider.KindUnsupported, 0, "expires_at goes only with status active")
	}
	// ZStack's examples give timestamps to the second: expiries are sent and compared so.
	now := c.now().UTC()
	want := ch.ExpiresAt.UTC().Truncate(time.Second)
	if !ch.ExpiresAt.IsZero() && !want.After(now) {
		return nil, provider.Errorf(provider.KindUnsupported, 0, "expires_at must be in the future")
	}

	// With reads off (ch.WriteOnly) the PUT goes alone: nothing is read before it.
	cur, was, expiry := new(credential), (*provider.Credential)(nil), time.Time{}
	if !ch.WriteOnly {
		var err error
		if cur, err = c.get(ctx, ch.ID); err != nil {
			return nil, err
		}
		was, expiry = c.credential(cur)
	}
	var target time.Time
	switch ch.Status {
	case provider.StatusInactive:
		if was != nil && was.Status == provider.StatusInactive {
			return &provider.Result{Credential: *was}, nil
		}
		target = now.Truncate(time.Second) // at most now: expired at once
	case provider.StatusActive:
		if was != nil && was.Status == provider.StatusActive && (ch.ExpiresAt.IsZero() || (!expiry.IsZero() && expiry.Truncate(time.Second).Equal(want))) {
			return &provider.Result{Credential: *was}, nil
		}
		target = want
		if ch.ExpiresAt.IsZero() {
			target = now.Add(c.reactivateFor).Truncate(time.Second)
		}
	}

	operator := ch.Operator
	if operator == "" {
		operator = c.operator
	}
	body := update{ExpiresAt: target.Format(time.RFC3339), Operator: operator}
	req, err := c.request(ctx, http.MethodPut, ch.ID, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.up.Do(req, true) // a fixed expiry set twice is set once
	if err != nil {
		return nil, err
	}
	// 200 with the credential is the documented success. A 204, or a 200 without a body, is
	// taken too: the credential is then the one read before, with the expiry sent.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return nil, classify(resp)
	}
	next := *cur
	next.HealthStatus = "" // stale after the change
	next.ExpiresAt = nil
	if len(bytes.TrimSpace(resp.Body)) > 0 {
		var ans credential
		if err := decode(resp, &ans); err != nil {
			return nil, err
		}
		next = merge(ans, *cur)
	}
	if s, ok := jsonString(next.ExpiresAt); isNull(next.ExpiresAt) || (ok && s == "") {
		next.ExpiresAt, _ = json.Marshal(body.ExpiresAt) // the answer lacks it: the one sent
	}
	cred, _ := c.credential(&next)
	return &provider.Result{Credential: *cred, Changed: true}, nil
}

// get reads the credential id.
func (c *Client) get(ctx context.Context, id string) (*credential, error) {
	req, err := c.request(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.up.Do(req, true)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, classify(resp)
	}
	var cr credential
	if err := decode(resp, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

// request builds a call for the credential id, with the bearer token. body is nil or an
// update.
func (c *Client) request(ctx context.Context, method, id string, body any) (*http.Request, error) {
	return c.ep.Request(ctx, method, credentialPath+url.PathEscape(id), body)
}

// credential normalizes a ZStack credential, and returns its expiry (zero when it has none or
// it cannot be read).
//
// The status is the expiry read at the client's clock: no expiresAt (absent, null or empty)
// means the credential never expires, active; an expiry at or before now, inactive; after now,
// active; anything that is not an RFC 3339 time (the page's example shows "example"), unknown.
// healthStatus is ZStack's own word, reported as the provider status when it is a string.
func (c *Client) credential(cr *credential) (*provider.Credential, time.Time) {
	m := &Metadata{
		UUID: cr.UUID, Name: cr.Name, Description: cr.Description, Type: cr.Type,
		HealthStatus: cr.HealthStatus, CreatedBy: cr.CreatedBy, CreateDate: cr.CreateDate,
		LastOpDate: cr.LastOpDate,
	}
	status := provider.StatusUnknown
	var expiry time.Time
	s, isString := jsonString(cr.ExpiresAt)
	if isString {
		m.ExpiresAt = text(s)
	}
	switch {
	case isNull(cr.ExpiresAt) || (isString && s == ""):
		status = provider.StatusActive
	case isString:
		// The RFC 3339 layout also parses a time with fractional seconds.
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			expiry = t
			status = provider.StatusActive
			if !t.After(c.now()) {
				status = provider.StatusInactive
			}
		}
	}
	// Expiry counts (PROVIDERS.md): a health status that says expired makes the credential
	// inactive whatever its expiresAt says.
	if strings.Contains(strings.ToUpper(string(cr.HealthStatus)), "EXPIRED") {
		status = provider.StatusInactive
	}
	return &provider.Credential{Status: status, ProviderStatus: string(cr.HealthStatus), Metadata: m}, expiry
}

// merge fills the fields that a PUT answer lacks from the credential as read before. The
// health status and the expiry are not filled: the change made the old ones stale.
func merge(ans, cur credential) credential {
	fill := func(dst *text, src text) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&ans.UUID, cur.UUID)
	fill(&ans.Name, cur.Name)
	fill(&ans.Description, cur.Description)
	fill(&ans.Type, cur.Type)
	fill(&ans.CreatedBy, cur.CreatedBy)
	fill(&ans.CreateDate, cur.CreateDate)
	fill(&ans.LastOpDate, cur.LastOpDate)
	return ans
}

// jsonString returns the text of a raw JSON string, and whether it is one.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	b := bytes.TrimSpace(raw)
	return len(b) == 0 || string(b) == "null"
}

// decode reads a credential answer, which must be a JSON object.
func decode(resp *provider.Response, cr *credential) error {
	if b := bytes.TrimSpace(resp.Body); len(b) > 0 && b[0] != '{' {
		return provider.Malformed(resp.StatusCode, "credential: not a JSON object", nil)
	}
	return provider.DecodeJSON(resp, "credential", cr)
}

// classify maps an answer other than success by its HTTP status, with ZStack's error code
// (never its description or details) as the detail.
func classify(resp *provider.Response) error {
	detail := ""
	var eb errorBody
	if json.Unmarshal(resp.Body, &eb) == nil && provider.IsVendorCode(eb.Error.Code) {
		detail = "ZStack error " + eb.Error.Code
	}
	return provider.ClassifyStatus(resp.StatusCode, detail)
}
