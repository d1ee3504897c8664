package prefactor

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider"
)

func init() {
	caddy.RegisterModule(new(Prefactor))
}

// Prefactor is the adapter for Prefactor API tokens. Caddyfile:
//
//	provider <name> prefactor {
//		token <Prefactor API token>   # {env.NAME} or {file./path}
//		... the options every provider takes ...
//	}
type Prefactor struct {
	provider.Options

	// The Prefactor API token the gateway authenticates with, sent as
	// "Authorization: Bearer <token>". Give it as a placeholder, {env.NAME} or {file./path}:
	// it is resolved at provisioning and never written back.
	Token string `json:"token,omitempty"`

	token string
}

// CaddyModule returns the Caddy module information.
func (*Prefactor) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  provider.Namespace + ".prefactor",
		New: func() caddy.Module { return new(Prefactor) },
	}
}

// Provision resolves the API token's placeholders.
func (a *Prefactor) Provision(caddy.Context) error {
	var err error
	a.token, err = provider.ResolveSecret(caddy.NewReplacer(), "token", a.Token)
	return err
}

// Vendor returns Prefactor's origin, ID format (PFID) and capabilities: active, inactive
// (suspended) and a permanent revoked state.
func (*Prefactor) Vendor() provider.Vendor {
	return provider.Vendor{
		BaseURL:      DefaultBaseURL,
		IDPattern:    IDPattern,
		Capabilities: provider.Capabilities{Revoke: true},
	}
}

// Open returns the vendor client.
func (a *Prefactor) Open(baseURL string, up *provider.Upstream) (provider.Client, error) {
	return NewClient(baseURL, a.token, up), nil
}

// UnmarshalCaddyfile parses the provider block.
func (a *Prefactor) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return a.ParseProviderBlock(d, func(d *caddyfile.Dispenser) error {
		switch d.Val() {
		case "token":
			return provider.ParseString(d, &a.Token)
		}
		return provider.UnknownOption(d, "prefactor", []string{"token"})
	})
}

// Interface guards.
var (
	_ provider.Adapter      = (*Prefactor)(nil)
	_ caddyfile.Unmarshaler = (*Prefactor)(nil)
)
