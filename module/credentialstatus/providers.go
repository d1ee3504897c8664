package credentialstatus

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp/syntax"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/credgate/credgate/module/provider"
)

// loadProviders loads and provisions every provider's adapter module, like ctx.LoadModule on
// ProvidersRaw, but one at a time and to the end: a config with three unset secrets in two
// providers fails once, naming all three, instead of once per fix. The error starts with
// "credential_status: " and lists the problems, separated by "; ", when there are several.
func (h *Handler) loadProviders(ctx caddy.Context) (map[string]any, error) {
	names := make([]string, 0, len(h.ProvidersRaw))
	for name := range h.ProvidersRaw {
		names = append(names, name)
	}
	sort.Strings(names)
	mods := make(map[string]any, len(names))
	var problems []string
	for _, name := range names {
		mod, err := loadProvider(ctx, h.ProvidersRaw[name])
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				problems = append(problems, "provider "+name+": "+line)
			}
			continue
		}
		mods[name] = mod
	}
	switch len(problems) {
	case 0:
		return mods, nil
	case 1:
		return nil, fmt.Errorf("credential_status: %s", problems[0])
	}
	// One line: Caddy logs it as a JSON string, where line breaks would show as \n.
	return nil, fmt.Errorf("credential_status: %d problems with the providers: %s",
		len(problems), strings.Join(problems, "; "))
}

// loadProvider loads one provider: its JSON object names the adapter in "adapter" (the
// inline_key of ProvidersRaw). The error is the adapter's own, without Caddy's "provision
// <module ID>: " before it.
func loadProvider(ctx caddy.Context, raw json.RawMessage) (any, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	var adapter string
	if err := json.Unmarshal(obj["adapter"], &adapter); err != nil || adapter == "" {
		return nil, fmt.Errorf(`want the adapter's name in "adapter"%s`, provider.DidYouMean("", adapterNames(), "adapters"))
	}
	id := provider.Namespace + "." + adapter
	if _, err := caddy.GetModule(id); err != nil {
		return nil, fmt.Errorf("unknown adapter %q%s", adapter, provider.DidYouMean(adapter, adapterNames(), "adapters"))
	}
	delete(obj, "adapter")
	rest, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	mod, err := ctx.LoadModuleByID(id, rest)
	if err != nil {
		msg := err.Error()
		for _, prefix := range []string{"provision " + id + ": ", id + ": "} {
			msg = strings.TrimPrefix(msg, prefix)
		}
		return nil, fmt.Errorf("%s", msg)
	}
	return mod, nil
}

// adapterNames are the names of the registered adapters: palisade, zstack, ...
func adapterNames() []string {
	var names []string
	for _, m := range caddy.GetModules(provider.Namespace) {
		names = append(names, m.ID.Name())
	}
	sort.Strings(names)
	return names
}

// handlerOptions are the options of the credential_status block, for the unknown-option
// message. TestHandlerOptionsListed keeps it equal to the cases of the parsers.
var handlerOptions = []string{
	"cache_size", "cache_ttl", "negative_ttl", "max_body", "max_batch", "max_batches", "provider",
	"idempotency_ttl", "idempotency_lease", "idempotency_storage", "idempotency_max_keys", "idempotency_max_memory",
	"caller", "caller_groups", "policy", "shared_state",
}

// patternError describes a bad id_pattern in the user's own words: the pattern as written, what
// is wrong, and the part at fault when it is not the whole pattern.
func patternError(pattern string, err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return fmt.Sprintf("%q: %v", pattern, err)
	}
	if se.Expr == "" || se.Expr == pattern {
		return fmt.Sprintf("%q: %s", pattern, se.Code)
	}
	return fmt.Sprintf("%q: %s: %q", pattern, se.Code, se.Expr)
}
