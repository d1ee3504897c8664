package resolve

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache remembers which provider owns an ID, and for a shorter time that none does.
//
// It is a plain lru.Cache with each entry's expiry stored in the entry, rather than
// golang-lru's expirable LRU: that one starts a cleanup goroutine it never stops (v2.0.7),
// which would leak one per reload, and it has one TTL where positive and negative entries
// need two. An expired entry is dropped when it is next looked up, or pushed out by newer ones.
//
// An entry is one uint64: the expiry in unix milliseconds, shifted left 16 bits, and the
// provider's index in its handler's providers sorted by name (noProvider for "none has it").
// The index is stable for a cache because only handlers with the same providers share one
// (the handler keys its caches by its providers). Kept this small, an entry of golang-lru fits its allocator's 80-byte class.
type Cache struct {
	lru *lru.Cache[string, uint64]
}

const (
	noProvider = 1<<16 - 1 // the index of a negative entry
	// MaxProviders is one more than the most providers a resolver can tell apart.
	MaxProviders = noProvider
)

// NewCache returns a cache of at most size entries.
func NewCache(size int) (*Cache, error) {
	c, err := lru.New[string, uint64](size)
	if err != nil {
		return nil, err
	}
	return &Cache{lru: c}, nil
}

// get returns the index of the provider that owns id, or noProvider when none does, if the
// cache knows and its entry is live.
func (c *Cache) get(id string, now time.Time) (int, bool) {
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
func (c *Cache) put(id string, idx int, ttl time.Duration, now time.Time) {
	c.lru.Add(id, uint64(now.Add(ttl).UnixMilli())<<16|uint64(idx&noProvider))
}

// Remove forgets id, and says whether the cache had it.
func (c *Cache) Remove(id string) bool { return c.lru.Remove(id) }

// Purge forgets every ID, and returns how many entries there were (entries added meanwhile
// go too, uncounted).
func (c *Cache) Purge() int {
	n := c.lru.Len()
	c.lru.Purge()
	return n
}

// Contains says whether the cache holds an entry for id, live or expired, without touching
// its recency.
func (c *Cache) Contains(id string) bool { return c.lru.Contains(id) }

// Len returns the number of entries, live or expired.
func (c *Cache) Len() int { return c.lru.Len() }

// Destruct implements caddy.Destructor: the last config that used the cache is gone.
func (c *Cache) Destruct() error {
	c.lru.Purge()
	return nil
}
