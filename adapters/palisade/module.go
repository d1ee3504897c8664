package palisade

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider"
)

func init() {
	caddy.RegisterModule(new(Palisade))
}

// Palisade is the adapter for Palisade API credentials. It authenticates either with a
// static access token or with an OAuth client (client_id and client_secret), whose access
// tokens it fetches, caches and refreshes. Caddyfile:
//
//	provider <name> palisade {
//		token         <access token>     # or the two below; {env.NAME} or {file./path}
//		client_id     <OAuth client ID>
//		client_secret <OAuth client secret>
//		... the options every provider takes ...
//	}
type Palisade struct {
	provider.Options

	// A static access token, sent as "Authorization: Bearer <token>". Give it as a
	// placeholder, {env.NAME} or {file./path}: it is resolved at provisioning and never
	// written back. Set either token, or client_id and client_secret.
	Token string `json:"token,omitempty"`

	// The OAuth client ID that access tokens are fetched with. A placeholder is allowed.
	ClientID string `json:"client_id,omitempty"`

	// The OAuth client secret that goes with client_id. Give it as a placeholder.
	ClientSecret string `json:"client_secret,omitempty"`

	token        string
	clientID     string
	clientSecret string
}

// CaddyModule returns the Caddy module information.
func (*Palisade) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  provider.Namespace + ".palisade",
		New: func() caddy.Module { return new(Palisade) },
	}
}

// Provision checks that exactly one way to authenticate is configured and resolves its
// placeholders.
func (a *Palisade) Provision(caddy.Context) error {
	oauth := a.ClientID != "" || a.ClientSecret != ""
	switch {
	case a.Token != "" && oauth:
		return errors.New("palisade: set either token, or client_id and client_secret, not both")
	case a.Token == "" && !oauth:
		return errors.New("palisade: token, or client_id and client_secret, is required")
	}
	repl := caddy.NewReplacer()
	var err error
	if !oauth {
		a.token, err = provider.ResolveSecret(repl, "token", a.Token)
		return err
	}
	// Both, so that one run names every missing secret.
	var errSecret error
	a.clientID, err = provider.ResolveSecret(repl, "client_id", a.ClientID)
	a.clientSecret, errSecret = provider.ResolveSecret(repl, "client_secret", a.ClientSecret)
	return errors.Join(err, errSecret)
}

// Vendor returns Palisade's origin, ID format and capabilities: active and inactive only. A
// deleted credential is reported as revoked, but the gateway never deletes one.
func (*Palisade) Vendor() provider.Vendor {
	return provider.Vendor{BaseURL: DefaultBaseURL, IDPattern: IDPattern}
}

// Open returns the vendor client.
func (a *Palisade) Open(baseURL string, up *provider.Upstream) (provider.Client, error) {
	switch {
	case a.token != "":
		return NewClient(baseURL, a.token, up), nil
	case a.clientID != "" && a.clientSecret != "":
		return NewOAuthClient(baseURL, a.clientID, a.clientSecret, up), nil
	}
	return nil, errors.New("palisade: not provisioned")
}

// UnmarshalCaddyfile parses the provider block.
func (a *Palisade) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return a.ParseProviderBlock(d, func(d *caddyfile.Dispenser) error {
		switch d.Val() {
		case "token":
			return provider.ParseString(d, &a.Token)
		case "client_id":
			return provider.ParseString(d, &a.ClientID)
		case "client_secret":
			return provider.ParseString(d, &a.ClientSecret)
		}
		return provider.UnknownOption(d, "palisade", []string{"token", "client_id", "client_secret"})
	})
}

// Interface guards.
var (
	_ provider.Adapter      = (*Palisade)(nil)
	_ caddyfile.Unmarshaler = (*Palisade)(nil)
)
