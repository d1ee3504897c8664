package resolve

import (
	"context"
	"strings"

	"github.com/credgate/credgate/module/provider"
)

// probeCandidates finds the owner of id among several candidates. Those with reads off
// (Provider.NoReads) are never probed (API.md, "reads off"): the others are; if exactly one
// of them owns id it is used (and remembered as a probe's owner is); if none does and
// exactly one reads-off candidate remains, id goes to it (remembered once a call to it
// succeeds: the vendor took the write); otherwise the ID is ambiguous.
func (r *Resolver) probeCandidates(ctx context.Context, id string, candidates []int, read Reader) (Owner, error) {
	var probe, blind []int
	for _, i := range candidates {
		if r.providers[i].NoReads {
			blind = append(blind, i)
		} else {
			probe = append(probe, i)
		}
	}
	if len(blind) == 0 {
		return r.probe(ctx, id, candidates, 0, read)
	}
	if len(probe) > 0 {
		o, err := r.probe(ctx, id, probe, len(blind), read)
		if err == nil || !noneOwns(o.Result) {
			return o, err
		}
	}
	if len(blind) == 1 {
		return Owner{Index: blind[0], Remember: true, Result: ByPattern}, nil
	}
	e := &AmbiguousError{ID: id}
	for _, i := range blind {
		e.Owners = append(e.Owners, r.providers[i].Name)
	}
	return Owner{Result: Ambiguous}, e
}

// noneOwns says a probe's result means that no probed candidate owns the ID.
func noneOwns(res Result) bool { return res == NotFound || res == Refused }

// refusedError is the error of a probe whose every candidate answered 403: a forbidden
// provider error, whose detail names the candidates.
func refusedError(r *Resolver, id string, refused []answer) error {
	names := make([]string, len(refused))
	for k, a := range refused {
		names[k] = r.providers[a.i].Name
	}
	return &provider.Error{
		Kind: provider.KindForbidden, StatusCode: 403,
		Detail: "every candidate provider refused to say whether it knows credential " + id + " (403): " + strings.Join(names, ", "),
	}
}
