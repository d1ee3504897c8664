package credentialstatus

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/policy"
	"github.com/credgate/credgate/module/provider"
)

// DefaultCaller is the placeholder of the caller's identity: the user that Caddy's
// authentication handler (basic_auth, forward_auth's copy, a JWT module) set.
const DefaultCaller = "{http.auth.user.id}"

// AuthorizationOptions say who the caller is and what each caller may do. The handler embeds
// them, so that they are options of its own JSON object.
type AuthorizationOptions struct {
	// The caller's identity: a placeholder, {http.auth.user.id} by default, or one that
	// forward_auth copied, such as {http.request.header.Remote-User}. The policy, the audit
	// trail, Idempotency-Key scopes and ZStack's operator all use it.
	Caller string `json:"caller,omitempty"`
	// A placeholder holding the caller's groups, separated by commas or spaces, such as
	// {http.request.header.Remote-Groups}. Optional.
	CallerGroups string `json:"caller_groups,omitempty"`
	// Who may do what. Absent: every caller may do everything (Provision warns). Present:
	// what no rule allows is denied.
	Policy *policy.Config `json:"policy,omitempty"`
}

// unmarshalAuthorizationOption parses the current Caddyfile option if it is one of the
// authorization options, and says whether it was:
//
//	caller        <placeholder>
//	caller_groups <placeholder>
//	policy {
//		allow <caller>|group:<name>|* <action>... [providers <name or glob>...]
//	}
//
// Actions: read, dry_run, deactivate, revoke, activate, or * for all.
func (o *AuthorizationOptions) unmarshalAuthorizationOption(d *caddyfile.Dispenser) (bool, error) {
	switch d.Val() {
	case "caller":
		return true, provider.ParseString(d, &o.Caller)
	case "caller_groups":
		return true, provider.ParseString(d, &o.CallerGroups)
	case "policy":
		if d.NextArg() {
			return true, d.ArgErr()
		}
		o.Policy = &policy.Config{Allow: []policy.Rule{}}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if d.Val() != "allow" {
				return true, d.Errf("policy: unknown rule %q: a policy holds allow rules: allow <caller>|group:<name>|* <action>... [providers <name>...]", d.Val())
			}
			var r policy.Rule
			if !d.NextArg() {
				return true, d.Err("allow: want a subject (a caller, group:NAME or *) and actions")
			}
			r.Subject = d.Val()
			inProviders := false
			for d.NextArg() {
				switch {
				case d.Val() == "providers" && !inProviders:
					inProviders = true
				case inProviders:
					r.Providers = append(r.Providers, d.Val())
				default:
					r.Actions = append(r.Actions, d.Val())
				}
			}
			if len(r.Actions) == 0 {
				return true, d.Errf("allow %s: name at least one action (%s)", r.Subject, strings.Join(policy.ActionNames(), ", "))
			}
			if inProviders && len(r.Providers) == 0 {
				return true, d.Errf("allow %s: providers needs at least one name", r.Subject)
			}
			o.Policy.Allow = append(o.Policy.Allow, r)
		}
		return true, nil
	}
	return false, nil
}

// authorizer is the handler's compiled authorization.
type authorizer struct {
	caller placeholder
	groups placeholder
	policy *policy.Policy // nil: no policy, everything is allowed
}

// placeholder is where a request's caller (or groups) is read from: a request header, another
// single placeholder, or a template of several.
type placeholder struct {
	header   string // the canonical header name of {http.request.header.NAME}
	key      string // the key of any other single placeholder ({a.b})
	template string // else the text to replace
}

// provisionAuthorization compiles the options for the handler's providers (sorted by name).
func (o *AuthorizationOptions) provisionAuthorization(providers []*backend) (*authorizer, error) {
	a := &authorizer{}
	caller := o.Caller
	if caller == "" {
		caller = DefaultCaller
	}
	a.caller = parsePlaceholder(caller)
	a.groups = parsePlaceholder(o.CallerGroups)
	if o.Policy != nil {
		names := make([]string, len(providers))
		for i, b := range providers {
			names[i] = b.name
		}
		p, err := policy.Compile(o.Policy, names)
		if err != nil {
			return nil, err
		}
		a.policy = p
	}
	return a, nil
}

// parsePlaceholder reads a caller option. A single placeholder is then read without building
// a string, a request header straight from the request (the replacer would box it).
func parsePlaceholder(s string) placeholder {
	if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && !strings.ContainsAny(s[1:len(s)-1], "{}") {
		key := s[1 : len(s)-1]
		if name, ok := strings.CutPrefix(key, "http.request.header."); ok && name != "" {
			return placeholder{header: textproto.CanonicalMIMEHeaderKey(name)}
		}
		return placeholder{key: key}
	}
	return placeholder{template: s}
}

// read returns the placeholder's value for r: "" when it has none.
func (p placeholder) read(r *http.Request, repl *caddy.Replacer) string {
	switch {
	case p.header != "":
		vals := r.Header[p.header]
		if len(vals) == 1 {
			return vals[0]
		}
		return strings.Join(vals, ",") // as Caddy's placeholder joins them
	case repl == nil:
		return ""
	case p.key != "":
		v, _ := repl.GetString(p.key)
		return v
	case p.template != "":
		return repl.ReplaceKnown(p.template, "")
	}
	return ""
}

// principal reads the caller of r.
func (a *authorizer) principal(r *http.Request) policy.Principal {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return policy.Principal{Name: a.caller.read(r, repl), Groups: a.groups.read(r, repl)}
}

// access is what a request asks to do to a credential: who asks, and the action.
type access struct {
	who    policy.Principal
	action policy.Action
}

// actionOf is the action of a change to status, or of its dry run.
func actionOf(status provider.Status, dryRun bool) policy.Action {
	switch {
	case dryRun:
		return policy.DryRun
	case status == provider.StatusActive:
		return policy.Activate
	case status == provider.StatusRevoked:
		return policy.Revoke
	}
	return policy.Deactivate
}

// precheck answers 403 before resolution when the caller may do the action at none of the
// providers that could own id: the one hint names, or those whose id_pattern matches. An
// unknown hint passes (resolution refuses it), and so does an ID no provider could own when
// the caller may do the action somewhere (resolution answers 404); a caller who may do it
// nowhere learns nothing of the ID.
func (h *Handler) precheck(id, hint string, acc access) *Problem {
	pol := h.authz.policy
	if pol == nil || pol.AllowsEverywhere(acc.who, acc.action) {
		return nil
	}
	if hint != "" {
		b, ok := h.backends[hint]
		if !ok || pol.Allows(acc.who, acc.action, b.index) {
			return nil
		}
		return denied(acc, id, b.name)
	}
	candidates, only := 0, ""
	for i, b := range h.ordered {
		if !b.s.pattern.MatchString(id) {
			continue
		}
		if pol.Allows(acc.who, acc.action, i) {
			return nil
		}
		candidates++
		only = b.name
	}
	if candidates == 0 && pol.AllowsAnywhere(acc.who, acc.action) {
		return nil // no provider could own it: resolution says 404, which tells nothing new
	}
	if candidates != 1 {
		only = ""
	}
	return denied(acc, id, only)
}

// allowedAt checks the caller's access at the provider that resolution found.
func (h *Handler) allowedAt(b *backend, id string, acc access) *Problem {
	if pol := h.authz.policy; pol != nil && !pol.Allows(acc.who, acc.action, b.index) {
		return denied(acc, id, b.name)
	}
	return nil
}

// isDenied says p is a refusal of the policy.
func isDenied(p *Problem) bool {
	return p != nil && p.Type == ProblemTypePrefix+probForbidden.Suffix
}

// denied is the problem of a request the policy refuses: it names the action and the
// provider (empty when several could own the ID), never the rules.
func denied(acc access, id, providerName string) *Problem {
	who := "caller " + acc.who.Name
	if acc.who.Name == "" {
		who = "an unauthenticated caller"
	}
	where := "at any provider that could own it"
	if providerName != "" {
		where = "at provider " + providerName
	}
	p := newProblem(probForbidden, fmt.Sprintf("%s may not %s credential %s %s", who, verb(acc.action), id, where))
	p.ID, p.Provider = id, providerName
	return p
}

func verb(a policy.Action) string {
	switch a {
	case policy.DryRun:
		return "dry-run a change of"
	case policy.Read:
		return "read"
	}
	return a.String()
}
