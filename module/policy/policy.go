// Package policy decides who may do what to which provider's credentials: the handler's
// authorization, after Caddy's authentication. A policy is a list of allow rules, each naming
// a subject (a caller, a group of callers, or everyone), actions and providers; what no rule
// allows is denied. The handler checks a request twice: before resolution, against the
// providers that could own the ID, and at the owner once it is known.
package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Action is what a request does to a credential.
type Action uint8

// The actions. Their names are those of the Caddyfile and the JSON config.
const (
	Read       Action = iota // GET: read a credential's status
	DryRun                   // a dry run, single or batch: reads only
	Deactivate               // status inactive
	Revoke                   // status revoked
	Activate                 // status active, with or without expires_at
	numActions
)

var actionNames = [numActions]string{Read: "read", DryRun: "dry_run", Deactivate: "deactivate", Revoke: "revoke", Activate: "activate"}

func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ActionNames lists the actions' names, and "*" for every action.
func ActionNames() []string { return append(actionNames[:], "*") }

// Rule is one allow rule of the JSON config:
//
//	{"subject": "incident-bot", "actions": ["read", "dry_run", "deactivate"], "providers": ["digicert-*"]}
type Rule struct {
	// Who the rule is for: a caller's name, "group:NAME" for the members of a group, or "*"
	// for every caller, authenticated or not.
	Subject string `json:"subject"`
	// What it allows: read, dry_run, deactivate, revoke, activate, or "*" for all of them.
	Actions []string `json:"actions"`
	// Where: provider names and path.Match globs (digicert-*). Default: every provider.
	Providers []string `json:"providers,omitempty"`
}

// Config is the JSON config of a policy: its allow rules. An empty list denies everything.
type Config struct {
	Allow []Rule `json:"allow"`
}

// Principal is the caller of a request as the policy sees it.
type Principal struct {
	// Name is the caller's identity; empty when the request is not authenticated.
	Name string
	// Groups holds the caller's groups, separated by commas or spaces.
	Groups string
}

// InGroup says whether group is one of p's groups. It does not allocate.
func (p Principal) InGroup(group string) bool {
	s := p.Groups
	for len(s) > 0 {
		i := strings.IndexAny(s, ", \t")
		tok := s
		if i >= 0 {
			tok, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if tok != "" && tok == group {
			return true
		}
	}
	return false
}

// Policy is a compiled Config for a handler's providers.
type Policy struct {
	rules []rule
}

type rule struct {
	kind      subjectKind
	name      string       // the caller's or the group's name
	actions   uint8        // a bit per Action
	providers map[int]bool // nil: every provider
}

type subjectKind uint8

const (
	subjectCaller subjectKind = iota
	subjectGroup
	subjectEveryone
)

// Compile checks c against the configured providers (their names; indexes are positions) and
// returns the policy. An unknown action, an empty subject, or a provider name or glob that
// matches no configured provider is an error.
func Compile(c *Config, providers []string) (*Policy, error) {
	p := &Policy{}
	for i, r := range c.Allow {
		cr, err := compileRule(r, providers)
		if err != nil {
			return nil, fmt.Errorf("policy: rule %d (allow %s): %v", i+1, r.Subject, err)
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func compileRule(r Rule, providers []string) (rule, error) {
	var cr rule
	switch {
	case r.Subject == "*":
		cr.kind = subjectEveryone
	case strings.HasPrefix(r.Subject, "group:"):
		cr.kind, cr.name = subjectGroup, strings.TrimPrefix(r.Subject, "group:")
		if cr.name == "" || strings.ContainsAny(cr.name, ", \t") {
			return cr, fmt.Errorf("group name %q: want group:NAME, without commas or spaces", cr.name)
		}
	case r.Subject == "":
		return cr, fmt.Errorf("a subject is required: a caller's name, group:NAME or *")
	default:
		cr.kind, cr.name = subjectCaller, r.Subject
	}
	if len(r.Actions) == 0 {
		return cr, fmt.Errorf("name at least one action (%s)", strings.Join(ActionNames(), ", "))
	}
	for _, name := range r.Actions {
		if name == "*" {
			cr.actions = 1<<numActions - 1
			continue
		}
		i := slices.Index(actionNames[:], name)
		if i < 0 {
			return cr, fmt.Errorf("unknown action %q: want %s", name, strings.Join(ActionNames(), ", "))
		}
		cr.actions |= 1 << i
	}
	for _, pat := range r.Providers {
		if pat == "*" {
			cr.providers = nil
			return cr, nil
		}
	}
	if len(r.Providers) > 0 {
		cr.providers = map[int]bool{}
	}
	for _, pat := range r.Providers {
		if _, err := path.Match(pat, ""); err != nil {
			return cr, fmt.Errorf("providers %q: %v", pat, err)
		}
		matched := false
		for i, name := range providers {
			if ok, _ := path.Match(pat, name); ok {
				cr.providers[i] = true
				matched = true
			}
		}
		if !matched {
			return cr, fmt.Errorf("providers %q matches no configured provider (%s)", pat, strings.Join(providers, ", "))
		}
	}
	return cr, nil
}

// Allows says whether who may do a at the provider of index i.
func (p *Policy) Allows(who Principal, a Action, i int) bool {
	for k := range p.rules {
		r := &p.rules[k]
		if r.actions&(1<<a) == 0 || !r.applies(who) {
			continue
		}
		if r.providers == nil || r.providers[i] {
			return true
		}
	}
	return false
}

// AllowsEverywhere says whether who may do a at every provider: a rule for every provider
// allows it. The handler then needs no candidate to decide.
func (p *Policy) AllowsEverywhere(who Principal, a Action) bool {
	for k := range p.rules {
		r := &p.rules[k]
		if r.providers == nil && r.actions&(1<<a) != 0 && r.applies(who) {
			return true
		}
	}
	return false
}

// AllowsAnywhere says whether who may do a at any provider, with no provider in view: the
// question before anything is known of a request but its action.
func (p *Policy) AllowsAnywhere(who Principal, a Action) bool {
	for k := range p.rules {
		r := &p.rules[k]
		if r.actions&(1<<a) != 0 && r.applies(who) {
			return true
		}
	}
	return false
}

func (r *rule) applies(who Principal) bool {
	switch r.kind {
	case subjectEveryone:
		return true
	case subjectGroup:
		return who.InGroup(r.name)
	}
	return who.Name != "" && who.Name == r.name
}
