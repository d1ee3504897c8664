package provider

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/dustin/go-humanize"
)

// Namespace is the Caddy module namespace of the adapters.
const Namespace = "http.credential_status.providers"

// Adapter is the guest interface: a Caddy module in the namespace
// http.credential_status.providers that speaks one vendor's API.
//
// An adapter embeds [Options] (that gives it the options every provider takes and the
// unexported method below), parses its own options, and resolves its secrets in Provision with
// [ResolveSecret]. Provision makes no network call: `caddy validate` runs it.
//
// After provisioning the adapter, the host resolves the shared options with the adapter's
// [Vendor] defaults and calls Open once with the provider's base URL and [Upstream].
// The returned client follows the contract of package provider: synchronous, honours ctx, no
// retries, breakers or timeouts of its own, typed errors, no secret in anything it returns.
type Adapter interface {
	caddy.Module
	caddy.Provisioner

	// Vendor returns the vendor's defaults and capabilities.
	Vendor() Vendor

	// Open returns the client the host calls for this provider. baseURL has no trailing slash.
	Open(baseURL string, up *Upstream) (Client, error)

	// ProviderOptions returns the options every provider takes: embedding [Options] gives it.
	ProviderOptions() *Options
}

func parseBytes(s string) (int64, error) {
	v, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if v > 1<<40 {
		return 0, errTooBig
	}
	return int64(v), nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errTooBig = constError("size too large")
