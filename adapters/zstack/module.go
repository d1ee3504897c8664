package zstack

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider"
)

func init() {
	caddy.RegisterModule(new(ZStack))
}

// ZStack is the adapter for ZStack Cloud stored credentials. ZStack is self-hosted, so
// base_url is required. Caddyfile:
//
//	provider <name> zstack {
//		base_url       https://zstack.internal:8443
//		token          <API token>   # {env.NAME} or {file./path}
//		operator       <principal>   # default credgate
//		reactivate_for <duration>    # default 2160h (90 days)
//		... the options every provider takes ...
//	}
type ZStack struct {
	provider.Options

	// The API token, sent as "Authorization: Bearer <token>". Give it as a placeholder,
	// {env.NAME} or {file./path}: it is resolved at provisioning and never written back.
	Token string `json:"token,omitempty"`

	// The principal sent as ZStack's operator with a change when no authenticated caller is
	// known (when an authentication handler ran, its user ID is sent instead). Default
	// "credgate".
	Operator string `json:"operator,omitempty"`

	// How far in the future status active sets the expiry when the caller gives no
	// expires_at. Default 2160h (90 days).
	ReactivateFor caddy.Duration `json:"reactivate_for,omitempty"`

	token string
}

// CaddyModule returns the Caddy module information.
func (*ZStack) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  provider.Namespace + ".zstack",
		New: func() caddy.Module { return new(ZStack) },
	}
}

// Provision resolves the token's placeholders and applies the defaults.
func (a *ZStack) Provision(caddy.Context) error {
	var err error
	if a.token, err = provider.ResolveSecret(caddy.NewReplacer(), "token", a.Token); err != nil {
		return err
	}
	if a.Operator == "" {
		a.Operator = DefaultOperator
	}
	if a.ReactivateFor == 0 {
		a.ReactivateFor = caddy.Duration(DefaultReactivateFor)
	}
	return nil
}

// Validate checks the adapter's own options.
func (a *ZStack) Validate() error {
	if a.ReactivateFor < 0 {
		return fmt.Errorf("reactivate_for must be positive")
	}
	return nil
}

// Vendor returns ZStack's ID format and capabilities: no public origin (base_url is
// required), no revoked state, and a status that is an expiry.
func (*ZStack) Vendor() provider.Vendor {
	return provider.Vendor{IDPattern: IDPattern, Capabilities: provider.Capabilities{Expiry: true}}
}

// Open returns the vendor client.
func (a *ZStack) Open(baseURL string, up *provider.Upstream) (provider.Client, error) {
	if a.token == "" {
		return nil, fmt.Errorf("zstack: the adapter is not provisioned")
	}
	return NewClient(baseURL, a.token, a.Operator, time.Duration(a.ReactivateFor), up), nil
}

// UnmarshalCaddyfile parses the provider block.
func (a *ZStack) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return a.ParseProviderBlock(d, func(d *caddyfile.Dispenser) error {
		switch d.Val() {
		case "token":
			return provider.ParseString(d, &a.Token)
		case "operator":
			return provider.ParseString(d, &a.Operator)
		case "reactivate_for":
			return provider.ParseDuration(d, &a.ReactivateFor)
		}
		return provider.UnknownOption(d, "zstack", []string{"token", "operator", "reactivate_for"})
	})
}

// Interface guards.
var (
	_ provider.Adapter      = (*ZStack)(nil)
	_ caddy.Validator       = (*ZStack)(nil)
	_ caddyfile.Unmarshaler = (*ZStack)(nil)
)
