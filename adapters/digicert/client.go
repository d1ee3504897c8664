// Package digicert is the credential_status adapter for DigiCert partner API keys (the Partner
// Subscriptions API): http.credential_status.providers.digicert.
//
// This file is the vendor client; it imports nothing from Caddy.
package digicert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/credgate/credgate/module/provider"
)

const (
	// DefaultBaseURL is DigiCert's origin.
	DefaultBaseURL = "https://www.digicert.com"
	// IDPattern is DigiCert's API key ID format: an integer, canonical (no leading zeros), so
	// that one key never appears under two IDs.
	IDPattern = `[1-9][0-9]{0,18}`
	// HeaderAPIKey carries the partner API key.
	HeaderAPIKey = "X-PARTNER-APIKEY"

	keyPath = "/partner-subscription/api/v1/api-key/"
)

// Client speaks the DigiCert Partner Subscriptions API for one partner account.
type Client struct {
	ep *provider.Endpoint // carries the partner key
	up *provider.Upstream
}

// NewClient returns a client for the account whose partner key is apiKey. baseURL is the
// origin, without a trailing slash.
func NewClient(baseURL, apiKey string, up *provider.Upstream) *Client {
	return &Client{ep: provider.NewEndpoint(baseURL, HeaderAPIKey, apiKey), up: up}
}

// metadata passes on the non-secret members of a DigiCert API key as they came, under the
// same names: id, name, account_id, created_at, last_used_date and api_key_last4 (DigiCert's
// own redacted form of the key, meant for display). Nothing else of the answer is copied.
var metadata = newProjection(
	"id", "id",
	"name", "name",
	"account_id", "account_id",
	"created_at", "created_at",
	"last_used_date", "last_used_date",
	"api_key_last4", "api_key_last4",
)

// errorBody is DigiCert's error shape (documented for its other APIs; unconfirmed here, so
// any other body is tolerated).
type errorBody struct {
	Errors []struct {
		Code string `json:"code"`
	} `json:"errors"`
}

// Read returns the API key's status.
func (c *Client) Read(ctx context.Context, id string) (*provider.Credential, error) {
	req, err := c.ep.Request(ctx, http.MethodGet, keyPath+url.PathEscape(id), nil)
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
	return decodeKey(resp)
}

// Change sets the API key's status: active or inactive. It reads the key first, so that
// asking for the status it has changes nothing.
func (c *Client) Change(ctx context.Context, ch *provider.Change) (*provider.Result, error) {
	if ch.Status != provider.StatusActive && ch.Status != provider.StatusInactive {
		return nil, provider.Errorf(provider.KindUnsupported, 0, "DigiCert API keys are active or inactive")
	}
	cur := &provider.Credential{}
	if !ch.WriteOnly { // with reads off the PUT goes alone
		var err error
		if cur, err = c.Read(ctx, ch.ID); err != nil {
			return nil, err
		}
		if cur.Status == ch.Status {
			return &provider.Result{Credential: *cur}, nil
		}
	}
	body := struct {
		Status provider.Status `json:"status"`
	}{ch.Status}
	req, err := c.ep.Request(ctx, http.MethodPut, keyPath+url.PathEscape(ch.ID)+"/status", body)
	if err != nil {
		return nil, err
	}
	resp, err := c.up.Do(req, true) // setting a status twice is setting it once
	if err != nil {
		return nil, err
	}
	// 204 No Content is the documented success; a 200, with or without a body, is taken too.
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return nil, classify(resp)
	}
	cur.Status, cur.ProviderStatus = ch.Status, string(ch.Status)
	return &provider.Result{Credential: *cur, Changed: true}, nil
}

// decodeKey reads the answer of GET /partner-subscription/api/v1/api-key/{apiKeyId}: its
// status, and its metadata copied without being decoded.
func decodeKey(resp *provider.Response) (*provider.Credential, error) {
	meta := append(make([]byte, 0, len(resp.Body)+1), '{')
	var status []byte
	err := members(resp.Body, func(key, value []byte) {
		if string(key) == "status" {
			status, _ = stringValue(value)
			return
		}
		meta = metadata.Append(meta, key, value)
	})
	if err != nil {
		return nil, provider.Malformed(resp.StatusCode, "API key", err)
	}
	c := &provider.Credential{Status: provider.StatusUnknown}
	switch string(status) {
	case "active":
		c.Status, c.ProviderStatus = provider.StatusActive, "active"
	case "inactive":
		c.Status, c.ProviderStatus = provider.StatusInactive, "inactive"
	default:
		c.ProviderStatus = string(status)
	}
	if m := endObject(meta); m != nil {
		c.Metadata = m
	}
	return c, nil
}

// classify maps an answer other than success. A 403 means the key belongs to an account the
// partner key cannot manage ("an unrelated account", in DigiCert's words): Foreign, so that a
// probe of several DigiCert accounts reads it as "not this account". A 403 may also be a
// permission problem of the partner key (the page does not say): when every candidate of a
// probe answers 403, the host answers 403 provider-forbidden and remembers nothing, never a
// 404, so both readings end right.
//
// Only a code that looks like one (a short identifier such as not_found) is passed on in the
// detail; anything else in its place is free text that could echo what was sent. (Found by
// FuzzRead: a code of arbitrary bytes reached the client's problem detail and the log as it
// was.)
func classify(resp *provider.Response) error {
	detail := ""
	var eb errorBody
	if json.Unmarshal(resp.Body, &eb) == nil && len(eb.Errors) > 0 && provider.IsVendorCode(eb.Errors[0].Code) {
		detail = "DigiCert error " + eb.Errors[0].Code
	}
	if resp.StatusCode == http.StatusForbidden {
		if detail == "" {
			detail = "the API key belongs to an account this partner key cannot manage"
		}
		return &provider.Error{Kind: provider.KindForbidden, StatusCode: resp.StatusCode, Foreign: true, Detail: detail}
	}
	return provider.ClassifyStatus(resp.StatusCode, detail)
}
