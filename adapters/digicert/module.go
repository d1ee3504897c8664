package digicert

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider"
)

func init() {
	caddy.RegisterModule(new(DigiCert))
}

// DigiCert is the adapter for DigiCert partner API keys. Caddyfile:
//
//	provider <name> digicert {
//		api_key <partner API key>   # {env.NAME} or {file./path}
//		... the options every provider takes ...
//	}
type DigiCert struct {
	provider.Options

	// The partner API key, sent as X-PARTNER-APIKEY. Give it as a placeholder,
	// {env.NAME} or {file./path}: it is resolved at provisioning and never written back.
	APIKey string `json:"api_key,omitempty"`

	apiKey string
}

// CaddyModule returns the Caddy module information.
func (*DigiCert) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  provider.Namespace + ".digicert",
		New: func() caddy.Module { return new(DigiCert) },
	}
}

// Provision resolves the partner key's placeholders.
func (a *DigiCert) Provision(caddy.Context) error {
	var err error
	a.apiKey, err = provider.ResolveSecret(caddy.NewReplacer(), "api_key", a.APIKey)
	return err
}

// Vendor returns DigiCert's origin, ID format and capabilities: active and inactive only.
func (*DigiCert) Vendor() provider.Vendor {
	return provider.Vendor{BaseURL: DefaultBaseURL, IDPattern: IDPattern}
}

// Open returns the vendor client.
func (a *DigiCert) Open(baseURL string, up *provider.Upstream) (provider.Client, error) {
	return NewClient(baseURL, a.apiKey, up), nil
}

// UnmarshalCaddyfile parses the provider block.
func (a *DigiCert) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return a.ParseProviderBlock(d, func(d *caddyfile.Dispenser) error {
		switch d.Val() {
		case "api_key":
			return provider.ParseString(d, &a.APIKey)
		}
		return provider.UnknownOption(d, "digicert", []string{"api_key"})
	})
}

// Interface guards.
var (
	_ provider.Adapter      = (*DigiCert)(nil)
	_ caddyfile.Unmarshaler = (*DigiCert)(nil)
)
