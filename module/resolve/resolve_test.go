package resolve

import (
	"context"
	"errors"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/credgate/credgate/module/provider"
)

// answers is a Reader whose providers answer from a table: owned IDs read active, others
// fail with the provider's error (not found by default). It counts the reads.
type answers struct {
	owns  []map[string]bool
	errs  []error
	reads atomic.Int32
}

func (a *answers) Read(_ context.Context, i int, id string) (*provider.Credential, error) {
	a.reads.Add(1)
	if a.owns[i][id] {
		return &provider.Credential{Status: provider.StatusActive}, nil
	}
	if a.errs != nil && a.errs[i] != nil {
		return nil, a.errs[i]
	}
	return nil, &provider.Error{Kind: provider.KindNotFound, StatusCode: 404}
}

func newResolver(t *testing.T, patterns ...string) *Resolver {
	t.Helper()
	c, err := NewCache(100)
	require.NoError(t, err)
	var ps []Provider
	for i, p := range patterns {
		ps = append(ps, Provider{Name: string(rune('a' + i)), Pattern: regexp.MustCompile(`^(?:` + p + `)$`)})
	}
	return New(ps, c, time.Hour, time.Minute)
}

func TestResolveByHintPatternAndCache(t *testing.T) {
	r := newResolver(t, `[0-9]+`, `x[0-9]+`)
	ctx := context.Background()
	read := &answers{owns: []map[string]bool{{}, {}}}

	o, err := r.Resolve(ctx, "12", "b", read)
	require.NoError(t, err)
	assert.Equal(t, Owner{Index: 1, Result: ByHint}, o, "a hint is no resolution: no cache, no pattern")

	_, err = r.Resolve(ctx, "12", "zz", read)
	var unknown *UnknownProviderError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, "zz", unknown.Name)

	o, err = r.Resolve(ctx, "12", "", read)
	require.NoError(t, err)
	assert.Equal(t, Owner{Index: 0, Remember: true, Result: ByPattern, CacheChecked: true}, o)
	r.Remember("12", 0)
	o, err = r.Resolve(ctx, "12", "", read)
	require.NoError(t, err)
	assert.Equal(t, Owner{Index: 0, Cached: true, Result: Cached, CacheChecked: true}, o)

	_, err = r.Resolve(ctx, "abc", "", read)
	var nf *NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.Equal(t, NoPattern, nf.Result)
	assert.Zero(t, read.reads.Load(), "none of it asked a provider")
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	t.Run("one owner is remembered", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		read := &answers{owns: []map[string]bool{{}, {"7": true}}}
		o, err := r.Resolve(ctx, "7", "", read)
		require.NoError(t, err)
		assert.Equal(t, 1, o.Index)
		assert.Equal(t, Probed, o.Result)
		require.NotNil(t, o.Probed)
		o, _ = r.Resolve(ctx, "7", "", read)
		assert.Equal(t, Cached, o.Result)
		assert.Equal(t, int32(2), read.reads.Load())
	})
	t.Run("two owners", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		read := &answers{owns: []map[string]bool{{"7": true}, {"7": true}}}
		_, err := r.Resolve(ctx, "7", "", read)
		var amb *AmbiguousError
		require.ErrorAs(t, err, &amb)
		assert.Equal(t, []string{"a", "b"}, amb.Owners)
	})
	t.Run("none: remembered for negative_ttl", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		read := &answers{owns: []map[string]bool{{}, {}}}
		_, err := r.Resolve(ctx, "7", "", read)
		var nf *NotFoundError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, NotFound, nf.Result)
		o, err := r.Resolve(ctx, "7", "", read)
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, CachedNone, o.Result)
		assert.Equal(t, int32(2), read.reads.Load(), "the repeat asked nobody")
	})
	t.Run("a foreign 403 is not an owner", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		read := &answers{owns: []map[string]bool{{}, {"7": true}}, errs: []error{&provider.Error{Kind: provider.KindForbidden, Foreign: true, StatusCode: 403}, nil}}
		o, err := r.Resolve(ctx, "7", "", read)
		require.NoError(t, err)
		assert.Equal(t, 1, o.Index)
	})
	t.Run("a failed candidate: unavailable, never not found, nothing remembered", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		read := &answers{owns: []map[string]bool{{}, {}}, errs: []error{&provider.Error{Kind: provider.KindUpstream, StatusCode: 503, RetryAfter: 3 * time.Second}, nil}}
		_, err := r.Resolve(ctx, "7", "", read)
		var un *UnavailableError
		require.ErrorAs(t, err, &un)
		assert.Equal(t, []string{"a"}, un.Providers)
		assert.Equal(t, 3*time.Second, un.RetryAfter)
		_, err = r.Resolve(ctx, "7", "", read)
		require.ErrorAs(t, err, &un)
		assert.Equal(t, int32(4), read.reads.Load(), "asked again")
	})
	t.Run("retry forgets a stale owner", func(t *testing.T) {
		r := newResolver(t, `[0-9]+`, `[0-9]+`)
		r.Remember("7", 0)
		read := &answers{owns: []map[string]bool{{}, {"7": true}}}
		o, err := r.Retry(ctx, "7", read)
		require.NoError(t, err)
		assert.Equal(t, 1, o.Index)
		assert.False(t, o.CacheChecked)
	})
}

func TestNotOwner(t *testing.T) {
	assert.True(t, NotOwner(&provider.Error{Kind: provider.KindNotFound}))
	assert.True(t, NotOwner(&provider.Error{Kind: provider.KindForbidden, Foreign: true}))
	assert.False(t, NotOwner(&provider.Error{Kind: provider.KindForbidden}))
	assert.False(t, NotOwner(errors.New("x")))
}
