package credentialstatus

import (
	"encoding/json"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/credgate/credgate/module/provider"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("credential_status", parseCaddyfile)
	// After the authentication directives (basic_auth, forward_auth), so that the caller is
	// known; before respond and reverse_proxy, so that a catch-all does not shadow it.
	httpcaddyfile.RegisterDirectiveOrder("credential_status", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	credential_status [<matcher>] {
//		cache_size   <entries>
//		cache_ttl    <duration>
//		negative_ttl <duration>
//		max_body     <size>
//		max_batch    <n>
//		max_batches  <n>
//		idempotency_ttl      <duration>
//		idempotency_storage  memory|caddy|shared_state
//		idempotency_lease    <duration>
//		idempotency_max_keys <n>
//		shared_state redis {
//			address     <host:port>   # repeat for a Redis Cluster
//			username    <user>
//			password    <password>
//			db          <n>
//			key_prefix  <prefix>
//			tls
//			tls_ca_file <path>
//		}
//
//		provider <name> <adapter> {
//			base_url   <url>
//			id_pattern <regexp>
//			timeout    <duration>
//			breaker {
//				failures           <n>
//				open_for           <duration>
//				half_open_requests <n>
//			}
//			... see ProviderOptions.ParseProviderBlock and the adapter's own options ...
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "provider" {
			if seen[opt] {
				return d.Errf("duplicate option %q", opt)
			}
			seen[opt] = true
		}
		var err error
		switch opt {
		case "cache_size":
			err = provider.ParseInt(d, &h.CacheSize)
		case "cache_ttl":
			err = provider.ParseDuration(d, &h.CacheTTL)
		case "negative_ttl":
			err = provider.ParseDuration(d, &h.NegativeTTL)
		case "max_body":
			err = provider.ParseSize(d, &h.MaxBody)
		case "max_batch":
			err = provider.ParseInt(d, &h.MaxBatch)
		case "max_batches":
			err = provider.ParseInt(d, &h.MaxBatches)
		case "provider":
			err = h.unmarshalProvider(d)
		case "shared_state":
			err = h.unmarshalSharedState(d)
		default:
			var ok bool
			if ok, err = h.unmarshalIdempotencyOption(d); !ok {
				ok, err = h.unmarshalAuthorizationOption(d)
			}
			if !ok {
				err = d.Errf("unknown option %q%s", opt, provider.DidYouMean(opt, handlerOptions, "credential_status takes"))
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalProvider parses `provider <name> <adapter> { ... }` with the adapter's own
// Caddyfile unmarshaler, which sees the whole segment from "provider" on.
func (h *Handler) unmarshalProvider(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Err("provider: want a name and an adapter: provider <name> <adapter> { ... }")
	}
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("provider %s: want an adapter after the name (%s)", name, strings.Join(adapterNames(), ", "))
	}
	adapter := d.Val()
	if _, ok := h.ProvidersRaw[name]; ok {
		return d.Errf("provider %s is defined twice", name)
	}
	if _, err := caddy.GetModule(provider.Namespace + "." + adapter); err != nil {
		return d.Errf("provider %s: unknown adapter %q%s", name, adapter, provider.DidYouMean(adapter, adapterNames(), "adapters"))
	}
	d.Prev()
	d.Prev() // back to "provider": the adapter parses its segment whole
	unm, err := caddyfile.UnmarshalModule(d, provider.Namespace+"."+adapter)
	if err != nil {
		return err
	}
	if h.ProvidersRaw == nil {
		h.ProvidersRaw = make(map[string]json.RawMessage)
	}
	h.ProvidersRaw[name] = caddyconfig.JSONModuleObject(unm, "adapter", adapter, nil)
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
