package router

// Subscriber lists longer than subsIndexMax get a key → position map, so
// that Subscribe and Unsubscribe stay O(1) on a filter that a hundred
// thousand clients share ("broadcast/all"). The map is dropped again below
// subsIndexMin.
const (
	subsIndexMax = 16
	subsIndexMin = 8
)

// Shard is one event loop's index of non-shared subscriptions.
//
// Loop-only: a Shard is NOT safe for concurrent use. Each event loop owns
// one and is the only goroutine that calls its methods; other goroutines ask
// the loop (through its inbox) instead of touching the Shard. This is what
// keeps the publish path free of locks.
type Shard[K comparable] struct {
	root snode[K]
	n    int
}

// snode is a node of a Shard's filter tree. The node reached by the levels
// of a filter holds that filter's subscriptions; wildcard levels have their
// own edges so that matching never looks them up by name.
type snode[K comparable] struct {
	kids kids[snode[K]] // literal levels
	plus *snode[K]      // '+' level
	hash *snode[K]      // '#' level; only its subs are used
	subs []Entry[K]     // subscriptions whose filter ends here, one per key
	idx  map[K]int32    // key → position in subs, when len(subs) > subsIndexMax
}

// NewShard returns an empty Shard.
func NewShard[K comparable]() *Shard[K] { return &Shard[K]{} }

// Len returns the number of subscriptions (distinct (key, filter) pairs).
// Loop-only.
func (s *Shard[K]) Len() int { return s.n }

// Subscribe adds the subscription of k to filter with options o. If k is
// already subscribed to the identical filter its options are replaced and
// replaced is true [MQTT-3.8.4-3]. The filter must be valid; its bytes are
// copied (the caller's buffer may be reused at once). Loop-only.
func (s *Shard[K]) Subscribe(filter []byte, k K, o SubOptions) (replaced bool) {
	n := &s.root
	var (
		owned    string // copy of filter[ownedOff:], made at the first new level
		ownedOff = -1
		off      int
		rest     = filter
	)
	for {
		lvl, r, last := nextLevel(rest)
		switch {
		case isPlus(lvl):
			if n.plus == nil {
				n.plus = new(snode[K])
			}
			n = n.plus
		case isHash(lvl):
			if n.hash == nil {
				n.hash = new(snode[K])
			}
			n = n.hash
		default:
			c := n.kids.get(lvl)
			if c == nil {
				if ownedOff < 0 {
					owned, ownedOff = string(filter[off:]), off
				}
				c = new(snode[K])
				n.kids.add(owned[off-ownedOff:off-ownedOff+len(lvl)], c)
			}
			n = c
		}
		if last {
			break
		}
		off += len(lvl) + 1
		rest = r
	}
	if n.add(k, o) {
		return true
	}
	s.n++
	return false
}

// Unsubscribe removes the subscription of k to filter, which is compared
// with the stored filters byte for byte [MQTT-3.10.4-1]: "a/+" removes the
// "a/+" subscription, not "a/b". Nodes left empty are freed. Loop-only.
func (s *Shard[K]) Unsubscribe(filter []byte, k K) (existed bool) {
	if s.root.unsubscribe(filter, k) {
		s.n--
		return true
	}
	return false
}

// Match appends to dst one Entry per subscription whose filter matches topic
// and returns the extended slice. A key subscribed with several overlapping
// filters gets one entry per filter: the caller aggregates them into one
// delivery [MQTT-3.3.4-2] carrying every subscription identifier
// [MQTT-3.3.4-3]. It does not allocate when dst has room for the result.
// topic must be a valid topic name. Loop-only.
func (s *Shard[K]) Match(topic []byte, dst []Entry[K]) []Entry[K] {
	r := &s.root
	lvl, rest, last := nextLevel(topic)
	if !dollar(topic) { // [MQTT-4.7.2-1]
		if r.hash != nil {
			dst = append(dst, r.hash.subs...)
		}
		if r.plus != nil {
			dst = r.plus.match(rest, last, dst)
		}
	}
	if c := r.kids.get(lvl); c != nil {
		dst = c.match(rest, last, dst)
	}
	return dst
}

// match is called at the node reached by one topic level; rest holds the
// levels after it and end reports that there are none.
func (n *snode[K]) match(rest []byte, end bool, dst []Entry[K]) []Entry[K] {
	// "a/#" matches "a" as well as everything below it (§4.7.1.2).
	if n.hash != nil {
		dst = append(dst, n.hash.subs...)
	}
	if end {
		return append(dst, n.subs...)
	}
	lvl, r, last := nextLevel(rest)
	// '+' matches exactly one level, including an empty one ("a//b"). [MQTT-4.7.1-2]
	if n.plus != nil {
		dst = n.plus.match(r, last, dst)
	}
	// Levels compare byte for byte: no case folding, no normalization. [MQTT-4.7.3-4]
	if c := n.kids.get(lvl); c != nil {
		dst = c.match(r, last, dst)
	}
	return dst
}

func (n *snode[K]) empty() bool {
	return len(n.subs) == 0 && n.plus == nil && n.hash == nil && n.kids.len() == 0
}

// unsubscribe removes k at filter below n and prunes emptied children.
func (n *snode[K]) unsubscribe(filter []byte, k K) bool {
	lvl, rest, last := nextLevel(filter)
	var c *snode[K]
	switch {
	case isPlus(lvl):
		c = n.plus
	case isHash(lvl):
		c = n.hash
	default:
		c = n.kids.get(lvl)
	}
	if c == nil {
		return false
	}
	var ok bool
	if last {
		ok = c.remove(k)
	} else {
		ok = c.unsubscribe(rest, k)
	}
	if ok && c.empty() {
		switch {
		case isPlus(lvl):
			n.plus = nil
		case isHash(lvl):
			n.hash = nil
		default:
			n.kids.del(lvl)
		}
	}
	return ok
}

func (n *snode[K]) find(k K) int {
	if n.idx != nil {
		if i, ok := n.idx[k]; ok {
			return int(i)
		}
		return -1
	}
	for i := range n.subs {
		if n.subs[i].Key == k {
			return i
		}
	}
	return -1
}

// add stores (k, o) here, replacing k's options if k is present.
func (n *snode[K]) add(k K, o SubOptions) (replaced bool) {
	if i := n.find(k); i >= 0 {
		n.subs[i].Opts = o // [MQTT-3.8.4-3]
		return true
	}
	n.subs = append(n.subs, Entry[K]{Key: k, Opts: o})
	switch {
	case n.idx != nil:
		n.idx[k] = int32(len(n.subs) - 1)
	case len(n.subs) > subsIndexMax:
		n.idx = make(map[K]int32, len(n.subs))
		for i, e := range n.subs {
			n.idx[e.Key] = int32(i)
		}
	}
	return false
}

// remove deletes k's subscription here; the last entry takes its place.
func (n *snode[K]) remove(k K) bool {
	i := n.find(k)
	if i < 0 {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		if n.idx != nil {
			n.idx[n.subs[i].Key] = int32(i)
		}
	}
	n.subs[last] = Entry[K]{} // drop the key reference for the GC
	n.subs = n.subs[:last]
	if n.idx != nil {
		delete(n.idx, k)
		if len(n.subs) <= subsIndexMin {
			n.idx = nil
		}
	}
	switch {
	case len(n.subs) == 0:
		n.subs = nil
	case cap(n.subs) >= 64 && len(n.subs) < cap(n.subs)/4:
		n.subs = append([]Entry[K](nil), n.subs...) // give back memory after a mass unsubscribe
	}
	return true
}
