package credentialstatus

// `reads off` (API.md, "Caddyfile"): a provider whose vendor account has no usable read
// endpoint. The host never reads it: resolution never probes it (package resolve, Provider.
// NoReads), a GET or a dry run at it answers 501 reads-disabled, and a change goes to the
// adapter with provider.Change.WriteOnly set, so that the adapter sends the vendor's
// documented write alone, one call. Nothing was read, so the answer's "changed" is null.

import (
	"github.com/credgate/credgate/module/provider"
)

// changedUnknown is the Changed of an answer whose change was sent without a read: encoded as
// "changed": null. It points at true, so that summaries and metrics count the write as a
// change sent.
var changedUnknown = func() *bool { t := true; return &t }()

// readsDisabled is the problem of a read at a provider with reads off.
func readsDisabled(b *backend, id string) *Problem {
	p := newProblem(probReadsOff, "provider "+b.name+" is configured with reads off: it can be changed, not read (no GET, no dry run)")
	p.ID, p.Provider = id, b.name
	return p
}

// changeFor returns the change to send to the provider: c itself, or with reads off a copy
// marked WriteOnly.
func (b *backend) changeFor(c *provider.Change) *provider.Change {
	if !b.s.readsOff || c.WriteOnly {
		return c
	}
	cc := *c
	cc.WriteOnly = true
	return &cc
}

// changedFlag is the answer's "changed" for a change's result at b.
func changedFlag(b *backend, res *provider.Result) *bool {
	if b.s.readsOff {
		return changedUnknown
	}
	changed := res.Changed
	return &changed
}
