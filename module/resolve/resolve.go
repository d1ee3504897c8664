// Package resolve finds which configured provider owns a credential ID: the provider a hint
// names, or else the one the ID cache remembers, the only provider whose ID pattern matches,
// or the one candidate that knows the ID when their read endpoints are probed.
//
// It knows nothing of HTTP, audit trails or metrics: [Resolver.Resolve] returns an [Owner]
// or a typed error ([UnknownProviderError], [NotFoundError], [AmbiguousError],
// [UnavailableError], or a canceled [provider.Error]), and says in [Owner.Result] how it got
// there, for the caller to count.
package resolve

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/credgate/credgate/module/provider"
)

// Provider is what resolution knows of a configured provider.
type Provider struct {
	Name string
	// Pattern matches, in full, every ID the provider can own.
	Pattern *regexp.Regexp
	// NoReads: the provider has reads off; it is never probed (see reads.go).
	NoReads bool
}

// Reader reads credential id at the provider of index i, never changing anything: a probe's
// call. The handler's readers go through the provider's breaker and timeout.
type Reader interface {
	Read(ctx context.Context, i int, id string) (*provider.Credential, error)
}

// Result says how a resolution ended: the label of the resolutions_total metric.
type Result uint8

// The results of a resolution.
const (
	ByHint     Result = iota // the request named the provider
	Cached                   // the cache remembered the owner
	CachedNone               // the cache remembered that no provider owns the ID
	ByPattern                // one provider's ID pattern matched
	Probed                   // a probe of several candidates found the owner
	// The resolutions that found no owner.
	UnknownProvider // the hint names no configured provider
	NoPattern       // no provider's ID pattern matches
	NotFound        // every candidate said it does not know the ID
	Ambiguous       // several candidates own the ID
	Unavailable     // a candidate that could own it could not be asked
	Canceled        // the caller went away during the probe
	Refused         // every candidate refused (403): none could say
)

var resultNames = [...]string{
	ByHint: "hint", Cached: "cached", CachedNone: "cached_none", ByPattern: "pattern",
	Probed: "probe", UnknownProvider: "unknown_provider", NoPattern: "no_pattern",
	NotFound: "not_found", Ambiguous: "ambiguous", Unavailable: "unavailable", Canceled: "canceled",
	Refused: "refused",
}

// Results lists every result, in order.
func Results() []Result {
	out := make([]Result, len(resultNames))
	for i := range out {
		out[i] = Result(i)
	}
	return out
}

func (r Result) String() string { return resultNames[r] }

// Owner is the provider found to own an ID, and how it was found.
type Owner struct {
	// Index is the provider's index in the resolver's providers.
	Index int
	// Probed is the credential as the probe read it, or nil when there was no probe.
	Probed *provider.Credential
	// Cached says the owner came from the cache: a "not found" from it may mean the entry is
	// stale (see [Resolver.Retry]).
	Cached bool
	// Remember says the owner is certain once a call to it succeeds: the caller then stores
	// it with [Resolver.Remember].
	Remember bool
	// Result says how resolution ended, also when it returned an error.
	Result Result
	// CacheChecked says the cache was asked (a hit when Result is Cached or CachedNone).
	CacheChecked bool
}

// UnknownProviderError: the hint names no configured provider.
type UnknownProviderError struct{ Name string }

func (e *UnknownProviderError) Error() string {
	return "no provider named " + e.Name + " is configured"
}

// NotFoundError: no configured provider owns the ID.
type NotFoundError struct {
	ID string
	// Result is NoPattern, NotFound or CachedNone (a recent probe found none).
	Result Result
	// For is how long "none owns it" is remembered, with CachedNone.
	For time.Duration
}

func (e *NotFoundError) Error() string {
	switch e.Result {
	case NoPattern:
		return "no configured provider knows credential " + e.ID + ": it matches no provider's id_pattern"
	case CachedNone:
		return "no configured provider knows credential " + e.ID + " (asked less than " + e.For.String() + " ago)"
	}
	return "no configured provider knows credential " + e.ID
}

// AmbiguousError: several providers own the ID.
type AmbiguousError struct {
	ID     string
	Owners []string
}

func (e *AmbiguousError) Error() string {
	return "several providers own credential " + e.ID + "; name one with \"provider\""
}

// UnavailableError: no candidate owns the ID among those that answered, but some could not
// be asked; the resolver never claims "not found" when it could not ask.
type UnavailableError struct {
	ID        string
	Providers []string
	// RetryAfter is the longest wait a failed candidate asked for, at least a second.
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string {
	msg := "cannot tell which provider owns credential " + e.ID + ": "
	for i, n := range e.Providers {
		if i > 0 {
			msg += ", "
		}
		msg += n
	}
	return msg + " could not be asked"
}

// Resolver finds the owners of IDs among a fixed set of providers.
type Resolver struct {
	providers   []Provider
	byName      map[string]int
	cache       *Cache
	ttl         time.Duration
	negativeTTL time.Duration

	mu      sync.Mutex
	flights map[string]*flight // the probes in progress, by ID
}

// New returns a resolver of providers (their indexes are their positions), remembering owners
// in cache for ttl and "no owner" for negativeTTL.
func New(providers []Provider, cache *Cache, ttl, negativeTTL time.Duration) *Resolver {
	byName := make(map[string]int, len(providers))
	for i, p := range providers {
		byName[p.Name] = i
	}
	return &Resolver{providers: providers, byName: byName, cache: cache, ttl: ttl, negativeTTL: negativeTTL}
}

// Resolve finds the owner of id: the provider that hint names when it is not empty, or else
// the one the cache remembers, the only candidate (a provider whose pattern matches), or the
// one candidate that knows id when read asks them all at once.
func (r *Resolver) Resolve(ctx context.Context, id, hint string, read Reader) (Owner, error) {
	if hint != "" {
		i, ok := r.byName[hint]
		if !ok {
			return Owner{Result: UnknownProvider}, &UnknownProviderError{Name: hint}
		}
		return Owner{Index: i, Result: ByHint}, nil
	}
	return r.resolve(ctx, id, read, true)
}

// Retry resolves id again without the cache, after its cached owner said it does not know
// it (see [NotOwner]): the entry is dropped first.
func (r *Resolver) Retry(ctx context.Context, id string, read Reader) (Owner, error) {
	r.cache.Remove(id)
	return r.resolve(ctx, id, read, false)
}

// Remember stores that the provider of index i owns id, for the resolver's ttl.
func (r *Resolver) Remember(id string, i int) {
	r.cache.put(id, i, r.ttl, time.Now())
}

// RememberNone stores that no provider owns id, for the resolver's negative ttl: the only
// candidate said it does not know it.
func (r *Resolver) RememberNone(id string) {
	r.cache.put(id, noProvider, r.negativeTTL, time.Now())
}

func (r *Resolver) resolve(ctx context.Context, id string, read Reader, useCache bool) (Owner, error) {
	if useCache {
		if i, ok := r.cache.get(id, time.Now()); ok {
			if i == noProvider {
				return Owner{Result: CachedNone, CacheChecked: true}, &NotFoundError{ID: id, Result: CachedNone, For: r.negativeTTL}
			}
			if i < len(r.providers) {
				return Owner{Index: i, Cached: true, Result: Cached, CacheChecked: true}, nil
			}
		}
	}
	first := -1
	var candidates []int
	for i := range r.providers {
		if !r.providers[i].Pattern.MatchString(id) {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if candidates == nil {
			candidates = []int{first}
		}
		candidates = append(candidates, i)
	}
	switch {
	case first < 0:
		return Owner{Result: NoPattern, CacheChecked: useCache}, &NotFoundError{ID: id, Result: NoPattern}
	case candidates == nil:
		return Owner{Index: first, Remember: true, Result: ByPattern, CacheChecked: useCache}, nil
	}
	o, err := r.probeCandidates(ctx, id, candidates, read)
	o.CacheChecked = useCache
	return o, err
}

// probed is what a probe found, shared by every caller that waited for it.
type probed struct {
	owner Owner
	err   error
}

// probe asks every candidate's read endpoint at once which of them owns id. Concurrent probes
// of one ID share one set of calls, which runs while anyone waits for it: when the last
// caller waiting goes away, the probe's calls are canceled (each is bounded by its
// provider's timeout besides).
func (r *Resolver) probe(ctx context.Context, id string, candidates []int, blind int, read Reader) (Owner, error) {
	r.mu.Lock()
	f := r.flights[id]
	if f == nil {
		pctx, cancel := context.WithCancel(context.Background())
		f = &flight{done: make(chan struct{}), cancel: cancel}
		if r.flights == nil {
			r.flights = map[string]*flight{}
		}
		r.flights[id] = f
		go func() {
			f.res = r.probeAll(pctx, id, candidates, blind, read)
			r.mu.Lock()
			if r.flights[id] == f {
				delete(r.flights, id)
			}
			r.mu.Unlock()
			cancel()
			close(f.done)
		}()
	}
	f.waiters++
	r.mu.Unlock()

	select {
	case <-f.done:
		r.mu.Lock()
		f.waiters--
		r.mu.Unlock()
		return f.res.owner, f.res.err
	case <-ctx.Done():
		r.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel() // nobody waits for it any more
			if r.flights[id] == f {
				delete(r.flights, id)
			}
		}
		r.mu.Unlock()
		return Owner{Result: Canceled}, &provider.Error{Kind: provider.KindCanceled, Detail: "request canceled"}
	}
}

// flight is a probe in progress, shared by the callers waiting for it.
type flight struct {
	done    chan struct{}
	res     *probed
	waiters int // guarded by Resolver.mu
	cancel  context.CancelFunc
}

// answer is one candidate's answer to a probe.
type answer struct {
	i    int
	cred *provider.Credential
	err  error
}

// blind is the number of candidates left out of the probe (reads off): when there are any,
// "none owns it" is not remembered.
func (r *Resolver) probeAll(ctx context.Context, id string, candidates []int, blind int, read Reader) *probed {
	answers := make([]answer, len(candidates))
	var wg sync.WaitGroup
	for k, i := range candidates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cred, err := read.Read(ctx, i, id)
			answers[k] = answer{i: i, cred: cred, err: err}
		}()
	}
	wg.Wait()

	var owners, failed, refused []answer
	for _, a := range answers {
		switch {
		case a.err == nil:
			owners = append(owners, a)
		case NotOwner(a.err):
			if provider.KindOf(a.err) == provider.KindForbidden {
				refused = append(refused, a) // "not this account", by the vendor's reading
			}
		default:
			failed = append(failed, a)
		}
	}
	switch {
	case len(owners) == 1:
		// The owner is certain only when every other candidate said no. When one could not
		// be asked, go on with the owner but do not remember it.
		if len(failed) == 0 {
			r.Remember(id, owners[0].i)
		}
		return &probed{owner: Owner{Index: owners[0].i, Probed: owners[0].cred, Result: Probed}}
	case len(owners) > 1:
		e := &AmbiguousError{ID: id}
		for _, a := range owners {
			e.Owners = append(e.Owners, r.providers[a.i].Name)
		}
		return &probed{owner: Owner{Result: Ambiguous}, err: e}
	case len(failed) > 0:
		e := &UnavailableError{ID: id}
		for _, a := range failed {
			e.Providers = append(e.Providers, r.providers[a.i].Name)
			var pe *provider.Error
			if errors.As(a.err, &pe) && pe.RetryAfter > e.RetryAfter {
				e.RetryAfter = pe.RetryAfter
			}
		}
		if e.RetryAfter == 0 {
			e.RetryAfter = time.Second
		}
		return &probed{owner: Owner{Result: Unavailable}, err: e}
	case len(refused) == len(answers):
		// Every candidate refused: a refusal is never taken for "not found" (it may be a
		// permission problem at the owner), and nothing is remembered.
		return &probed{owner: Owner{Result: Refused}, err: refusedError(r, id, refused)}
	case len(refused) > 0 || blind > 0:
		// Not found where asked; a candidate refused or was not asked: not remembered.
		return &probed{owner: Owner{Result: NotFound}, err: &NotFoundError{ID: id, Result: NotFound}}
	}
	r.cache.put(id, noProvider, r.negativeTTL, time.Now())
	return &probed{owner: Owner{Result: NotFound}, err: &NotFoundError{ID: id, Result: NotFound}}
}

// NotOwner says a provider's error means it does not have the credential: it does not know
// it, or (a 403 marked Foreign) it belongs to another account.
func NotOwner(err error) bool {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Kind == provider.KindNotFound || (pe.Kind == provider.KindForbidden && pe.Foreign)
}
