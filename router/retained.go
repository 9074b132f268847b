package router

import "sync"

// Retained is the broker-wide index of retained messages, one value per
// topic name.
//
// Safe for concurrent use: a sync.RWMutex lets any number of Get, Match and
// Range calls run together while Set and Delete wait for them. A Match holds
// the read lock for as long as it walks: "dev/42/+/temp" visits only the
// children of "dev/42", but "#" visits the whole tree, so a wide match
// delays writers (never readers).
type Retained[V any] struct {
	mu   sync.RWMutex
	root rnode[V] // never holds a value: a topic has at least one level
	n    int
}

// rnode is a node of the topic tree. A node has a value when a retained
// message is stored for the topic that ends at it.
type rnode[V any] struct {
	kids *kids[rnode[V]] // nil for a leaf: leaves, most nodes of a big tree, carry no child set
	val  V
	set  bool
}

// NewRetained returns an empty Retained.
func NewRetained[V any]() *Retained[V] { return &Retained[V]{} }

// Len returns the number of stored topics. Safe for concurrent use.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

// Set stores v for topic, replacing the stored value if there was one
// [MQTT-3.3.1-5]; it returns that value. The topic bytes are copied (only
// the levels that are new to the tree, once). Whether an empty payload
// deletes instead [MQTT-3.3.1-6] is the caller's decision. Safe for
// concurrent use.
func (r *Retained[V]) Set(topic []byte, v V) (old V, replaced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	var (
		owned    string // copy of topic[ownedOff:], made at the first new level
		ownedOff = -1
		off      int
		rest     = topic
	)
	for {
		lvl, rr, last := nextLevel(rest)
		c := n.kids.get(lvl)
		if c == nil {
			if ownedOff < 0 {
				owned, ownedOff = string(topic[off:]), off
			}
			c = new(rnode[V])
			if n.kids == nil {
				n.kids = new(kids[rnode[V]])
			}
			n.kids.add(owned[off-ownedOff:off-ownedOff+len(lvl)], c)
		}
		n = c
		if last {
			break
		}
		off += len(lvl) + 1
		rest = rr
	}
	old, replaced = n.val, n.set
	n.val, n.set = v, true
	if !replaced {
		r.n++
	}
	return old, replaced
}

// Get returns the value stored for topic. Safe for concurrent use.
func (r *Retained[V]) Get(topic []byte) (V, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := &r.root
	for rest := topic; ; {
		lvl, rr, last := nextLevel(rest)
		if n = n.kids.get(lvl); n == nil {
			var zero V
			return zero, false
		}
		if last {
			return n.val, n.set
		}
		rest = rr
	}
}

// Delete removes the value stored for topic and returns it. Nodes left
// without value or children are freed. Safe for concurrent use.
func (r *Retained[V]) Delete(topic []byte) (old V, existed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, existed = r.root.delete(topic)
	if existed {
		r.n--
	}
	return old, existed
}

func (n *rnode[V]) delete(topic []byte) (old V, ok bool) {
	lvl, rest, last := nextLevel(topic)
	c := n.kids.get(lvl)
	if c == nil {
		return old, false
	}
	if last {
		if !c.set {
			return old, false
		}
		old, ok = c.val, true
		var zero V
		c.val, c.set = zero, false
	} else if old, ok = c.delete(rest); !ok {
		return old, false
	}
	if !c.set && c.kids == nil {
		n.kids.del(lvl)
		if n.kids.len() == 0 {
			n.kids = nil
		}
	}
	return old, ok
}

// Match appends to dst the value of every topic that filter matches and
// returns the extended slice, with the rules of Shard.Match: '+' is one
// level (an empty one too), '#' is this level and everything below, and a
// filter starting with a wildcard does not match topics starting with '$'
// [MQTT-4.7.2-1]. It visits only the part of the tree the filter can
// match. Safe for concurrent use.
func (r *Retained[V]) Match(filter []byte, dst []V) []V {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.root.match(filter, true, dst)
}

// match matches filter against the children of n; top is true at the root.
func (n *rnode[V]) match(filter []byte, top bool, dst []V) []V {
	lvl, rest, last := nextLevel(filter)
	if isHash(lvl) {
		// "a/#" matches "a" too (§4.7.1.2); the root has no value.
		if n.set {
			dst = append(dst, n.val)
		}
	}
	if n.kids == nil {
		return dst
	}
	switch {
	case isHash(lvl):
		if n.kids.m != nil {
			for l, c := range n.kids.m {
				if top && len(l) > 0 && l[0] == '$' { // [MQTT-4.7.2-1]
					continue
				}
				dst = c.all(dst)
			}
			return dst
		}
		for _, k := range n.kids.list {
			if top && len(k.label) > 0 && k.label[0] == '$' { // [MQTT-4.7.2-1]
				continue
			}
			dst = k.n.all(dst)
		}
		return dst
	case isPlus(lvl):
		// '+' matches exactly one level, an empty one too. [MQTT-4.7.1-2]
		if n.kids.m != nil {
			for l, c := range n.kids.m {
				if top && len(l) > 0 && l[0] == '$' { // [MQTT-4.7.2-1]
					continue
				}
				dst = c.next(rest, last, dst)
			}
			return dst
		}
		for _, k := range n.kids.list {
			if top && len(k.label) > 0 && k.label[0] == '$' { // [MQTT-4.7.2-1]
				continue
			}
			dst = k.n.next(rest, last, dst)
		}
		return dst
	}
	// Byte-for-byte level comparison, no normalization. [MQTT-4.7.3-4]
	if c := n.kids.get(lvl); c != nil {
		dst = c.next(rest, last, dst)
	}
	return dst
}

// next continues a match at n, the node that matched one filter level.
func (n *rnode[V]) next(rest []byte, end bool, dst []V) []V {
	if end {
		if n.set {
			dst = append(dst, n.val)
		}
		return dst
	}
	return n.match(rest, false, dst)
}

// all appends the values of n and of everything below it.
func (n *rnode[V]) all(dst []V) []V {
	if n.set {
		dst = append(dst, n.val)
	}
	if n.kids == nil {
		return dst
	}
	for _, c := range n.kids.m {
		dst = c.all(dst)
	}
	for _, k := range n.kids.list {
		dst = k.n.all(dst)
	}
	return dst
}

// Range calls fn for every stored topic and value, in no particular order,
// until fn returns false. topic is valid only during the call (its buffer is
// reused). Range holds the read lock throughout: fn must not call methods of
// r, and writers wait until Range returns. Safe for concurrent use.
func (r *Retained[V]) Range(fn func(topic []byte, v V) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.root.walk(make([]byte, 0, 256), fn)
}

// walk calls fn for the children of n and everything below them; prefix is
// the topic of n followed by '/', or empty at the root.
func (n *rnode[V]) walk(prefix []byte, fn func([]byte, V) bool) bool {
	visit := func(label string, c *rnode[V]) bool {
		t := append(prefix, label...)
		if c.set && !fn(t, c.val) {
			return false
		}
		if c.kids == nil {
			return true
		}
		return c.walk(append(t, '/'), fn)
	}
	if n.kids == nil {
		return true
	}
	for l, c := range n.kids.m {
		if !visit(l, c) {
			return false
		}
	}
	for _, k := range n.kids.list {
		if !visit(k.label, k.n) {
			return false
		}
	}
	return true
}
