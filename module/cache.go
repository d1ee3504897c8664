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
type idCache struct {
	lru *lru.Cache[string, cacheEntry]
}

// cacheEntry maps an ID to its provider's name; an empty name means "no provider has it".
type cacheEntry struct {
	provider string
	expires  int64 // unix nanoseconds
}

func newIDCache(size int) (*idCache, error) {
	c, err := lru.New[string, cacheEntry](size)
	if err != nil {
		return nil, err
	}
	return &idCache{lru: c}, nil
}

// get returns the live entry for id.
func (c *idCache) get(id string, now time.Time) (cacheEntry, bool) {
	e, ok := c.lru.Get(id)
	if !ok {
		return e, false
	}
	if e.expires <= now.UnixNano() {
		c.lru.Remove(id)
		return e, false
	}
	return e, true
}

func (c *idCache) put(id, provider string, ttl time.Duration, now time.Time) {
	c.lru.Add(id, cacheEntry{provider: provider, expires: now.Add(ttl).UnixNano()})
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
	return fmt.Sprintf("cache|%d|%x", size, h.Sum64())
}
