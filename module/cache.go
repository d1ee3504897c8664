package module

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// idCache remembers which provider owns an ID, and for a shorter time that none does.
//
// It is a plain lru.Cache with each entry's expiry stored in the entry, rather than
// golang-lru's expirable LRU: that one starts a cleanup goroutine it never stops (v2.0.7),
// which would leak one per reload, and it has one TTL where positive and negative entries
// need two. An expired entry is dropped when it is next looked up, or pushed out by newer ones.
//
// An entry is one uint64: the expiry in unix milliseconds, shifted left 16 bits, and the
// provider's index in its handler's providers sorted by name (noProvider for "none has it").
// The index is stable for a cache because only handlers with the same providers share one
// (see cacheKey). Kept this small, an entry of golang-lru fits its allocator's 80-byte class.
type idCache struct {
	lru *lru.Cache[string, uint64]
}

const (
	noProvider   = 1<<16 - 1 // the index of a negative entry
	maxProviders = noProvider
)

func newIDCache(size int) (*idCache, error) {
	c, err := lru.New[string, uint64](size)
	if err != nil {
		return nil, err
	}
	return &idCache{lru: c}, nil
}

// get returns the index of the provider that owns id, or noProvider when none does, if the
// cache knows and its entry is live.
func (c *idCache) get(id string, now time.Time) (int, bool) {
	e, ok := c.lru.Get(id)
	if !ok {
		return 0, false
	}
	if int64(e>>16) <= now.UnixMilli() {
		c.lru.Remove(id)
		return 0, false
	}
	return int(e & noProvider), true
}

// put remembers for ttl that the provider of index idx (noProvider: none) owns id.
func (c *idCache) put(id string, idx int, ttl time.Duration, now time.Time) {
	c.lru.Add(id, uint64(now.Add(ttl).UnixMilli())<<16|uint64(idx&noProvider))
}

func (c *idCache) remove(id string) { c.lru.Remove(id) }

func (c *idCache) len() int { return c.lru.Len() }

// Destruct implements caddy.Destructor: the last config that used the cache is gone.
func (c *idCache) Destruct() error {
	c.lru.Purge()
	return nil
}

// cacheKey names the cache a handler shares with the configs before and after a reload. A
// mapping stays true as long as the providers that could own an ID stay the same, so the key
// is the set of providers (name, adapter, origin) and the size.
func cacheKey(size int, backends []*backend) string {
	return fmt.Sprintf("cache|%d|%s", size, providersHash(backends))
}

// providersHash names a set of providers (name, adapter, origin), whatever their order: 16
// hex digits.
func providersHash(backends []*backend) string {
	parts := make([]string, 0, len(backends))
	for _, b := range backends {
		parts = append(parts, b.name+"\x00"+b.adapter+"\x00"+b.s.baseURL)
	}
	sort.Strings(parts)
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}
