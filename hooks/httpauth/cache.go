package httpauth

import (
	"hash/maphash"
	"sync"
	"time"
)

// action is what an ACL question asks about.
type action uint8

const (
	actSubscribe action = iota + 1
	actPublish
)

func (a action) String() string {
	if a == actSubscribe {
		return "subscribe"
	}
	return "publish"
}

const shards = 16

// cache holds ACL verdicts by (client, topic, action), bounded and with a
// TTL. Entries are keyed by a hash of the three and checked against them
// on a hit, so a lookup from the loop allocates nothing; a collision just
// replaces the older entry. Safe for concurrent use.
type cache struct {
	seed   maphash.Seed
	ttl    time.Duration
	max    int // entries per shard
	shards [shards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry
}

type cacheEntry struct {
	client, topic string
	action        action
	allow         bool
	expires       int64 // unix ns
}

func newCache(size int, ttl time.Duration) *cache {
	c := &cache{seed: maphash.MakeSeed(), ttl: ttl, max: max(size/shards, 1)}
	for i := range c.shards {
		c.shards[i].m = map[uint64]cacheEntry{}
	}
	return c
}

func (c *cache) hash(client string, topic []byte, a action) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(client)
	h.WriteByte(0)
	h.Write(topic)
	h.WriteByte(byte(a))
	return h.Sum64()
}

// get returns the verdict for (client, topic, a) if one is cached and
// fresh at now.
func (c *cache) get(client string, topic []byte, a action, now time.Time) (allow, ok bool) {
	k := c.hash(client, topic, a)
	s := &c.shards[k%shards]
	s.mu.RLock()
	e, found := s.m[k]
	s.mu.RUnlock()
	if !found || e.action != a || e.client != client || e.topic != string(topic) || now.UnixNano() >= e.expires {
		return false, false
	}
	return e.allow, true
}

// put caches a verdict. A full shard drops its expired entries, then a
// quarter of the rest (Go's map order is random enough for that).
func (c *cache) put(client, topic string, a action, allow bool, now time.Time) {
	k := c.hash(client, []byte(topic), a)
	s := &c.shards[k%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.max {
		n := now.UnixNano()
		for k, e := range s.m {
			if n >= e.expires {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < c.max*3/4 {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[k] = cacheEntry{client: client, topic: topic, action: a, allow: allow, expires: now.Add(c.ttl).UnixNano()}
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
