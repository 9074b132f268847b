package router

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Shared is the broker-wide index of shared subscriptions
// "$share/{group}/{filter}" (§4.8.2). One message published to a topic goes
// to one member of each matching (group, filter) pair, whichever loop that
// member lives on, so there is one Shared per broker, not one per loop.
//
// Safe for concurrent use. Match is lock-free and wait-free: it loads an
// atomic pointer to an immutable tree and walks it. Subscribe and
// Unsubscribe are serialized by a mutex and publish a new tree that copies
// only the nodes on the changed filter's path (and those nodes' child sets:
// a write costs O(levels × fan-out)). Slices reachable from a published tree
// are never written again.
type Shared[K comparable] struct {
	mu   sync.Mutex               // serializes writers
	root atomic.Pointer[hnode[K]] // nil when empty
	n    atomic.Int64             // number of (group, filter, key) subscriptions
}

// hnode is a node of a Shared tree; immutable once published.
type hnode[K comparable] struct {
	kids   kids[hnode[K]]
	plus   *hnode[K]
	hash   *hnode[K]
	groups []*group[K] // groups subscribed to the filter that ends here
}

// group is one shared subscription: a share name and filter with its
// members. Immutable once published, except the round-robin counter, which
// a new version of the group shares with the old one.
type group[K comparable] struct {
	name    string
	filter  string     // the filter after $share/{name}/ (MatchGroups)
	members []Entry[K] // never empty
	next    *atomic.Uint64
}

// NewShared returns an empty Shared.
func NewShared[K comparable]() *Shared[K] { return &Shared[K]{} }

// Len returns the number of (group, filter, key) subscriptions. Safe for
// concurrent use.
func (s *Shared[K]) Len() int { return int(s.n.Load()) }

// Empty reports whether there is no shared subscription at all, with one
// atomic load, so that a publish can skip Shared entirely. Safe for
// concurrent use.
func (s *Shared[K]) Empty() bool { return s.n.Load() == 0 }

// Subscribe makes k a member of the shared subscription (group, filter) with
// options o; group is the share name and filter the part after
// "$share/{group}/", both already validated [MQTT-4.8.2-1] [MQTT-4.8.2-2]. If
// k is already a member its options are replaced and replaced is true
// [MQTT-3.8.4-3]. Both slices are copied. Safe for concurrent use.
func (s *Shared[K]) Subscribe(group, filter []byte, k K, o SubOptions) (replaced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, replaced := s.root.Load().subscribe(filter, filter, group, k, o)
	s.root.Store(r)
	if !replaced {
		s.n.Add(1)
	}
	return replaced
}

// Unsubscribe removes k from the shared subscription (group, filter),
// compared byte for byte [MQTT-3.10.4-1]. Safe for concurrent use.
func (s *Shared[K]) Unsubscribe(group, filter []byte, k K) (existed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.root.Load()
	if r == nil {
		return false
	}
	nr, ok := r.unsubscribe(filter, group, k)
	if !ok {
		return false
	}
	s.root.Store(nr)
	s.n.Add(-1)
	return true
}

// Match appends to dst one member for each (group, filter) whose filter
// matches topic, and returns the extended slice. Within a group members are
// taken in turn (an atomic counter per group): the first member from the
// group's turn on for which accept returns true is chosen, and the turn
// moves past it; if every member refuses, the member whose turn it is is
// chosen anyway and the caller applies its queue policy. accept may be nil
// (accept all); it must not call Subscribe or Unsubscribe. Match does not
// allocate when dst has room for the result. Safe for concurrent use;
// lock-free.
func (s *Shared[K]) Match(topic []byte, dst []Entry[K], accept func(K) bool) []Entry[K] {
	r := s.root.Load()
	if r == nil {
		return dst
	}
	lvl, rest, last := nextLevel(topic)
	if !dollar(topic) { // [MQTT-4.7.2-1]
		if r.hash != nil {
			dst = pickAll(r.hash.groups, dst, accept)
		}
		if r.plus != nil {
			dst = r.plus.match(rest, last, dst, accept)
		}
	}
	if c := r.kids.get(lvl); c != nil {
		dst = c.match(rest, last, dst, accept)
	}
	return dst
}

// match mirrors snode.match.
func (n *hnode[K]) match(rest []byte, end bool, dst []Entry[K], accept func(K) bool) []Entry[K] {
	if n.hash != nil { // "a/#" matches "a" too (§4.7.1.2)
		dst = pickAll(n.hash.groups, dst, accept)
	}
	if end {
		return pickAll(n.groups, dst, accept)
	}
	lvl, r, last := nextLevel(rest)
	if n.plus != nil { // [MQTT-4.7.1-2]
		dst = n.plus.match(r, last, dst, accept)
	}
	if c := n.kids.get(lvl); c != nil { // [MQTT-4.7.3-4]
		dst = c.match(r, last, dst, accept)
	}
	return dst
}

func pickAll[K comparable](gs []*group[K], dst []Entry[K], accept func(K) bool) []Entry[K] {
	for _, g := range gs {
		if e, ok := g.pick(accept); ok {
			dst = append(dst, e)
		}
	}
	return dst
}

// pick chooses the member whose turn it is, or the next one after it that
// accept takes.
func (g *group[K]) pick(accept func(K) bool) (Entry[K], bool) {
	m := g.members
	if len(m) == 0 {
		return Entry[K]{}, false
	}
	start := int((g.next.Add(1) - 1) % uint64(len(m)))
	if accept == nil {
		return m[start], true
	}
	for i := range len(m) {
		j := start + i
		if j >= len(m) {
			j -= len(m)
		}
		if accept(m[j].Key) {
			if i > 0 {
				// Members start..j-1 were skipped: the next turn starts
				// after j, so j does not get two turns in a row.
				g.next.Add(uint64(i))
			}
			return m[j], true
		}
	}
	return m[start], true
}

// clone returns a private copy of n (an empty node when n is nil) whose
// child set may be modified. groups stays shared: it is replaced, never
// written in place.
func (n *hnode[K]) clone() *hnode[K] {
	if n == nil {
		return &hnode[K]{}
	}
	c := *n
	c.kids = n.kids.clone()
	return &c
}

// shallow returns a copy of n (an empty node when n is nil) that shares its
// child set with n: only its groups and wildcard edges may be replaced.
func (n *hnode[K]) shallow() *hnode[K] {
	if n == nil {
		return &hnode[K]{}
	}
	c := *n
	return &c
}

func (n *hnode[K]) child(lvl []byte) *hnode[K] {
	switch {
	case isPlus(lvl):
		return n.plus
	case isHash(lvl):
		return n.hash
	}
	return n.kids.get(lvl)
}

// setChild sets (c != nil) or removes (c == nil) the child at lvl of a
// private copy.
func (n *hnode[K]) setChild(lvl []byte, c *hnode[K]) {
	switch {
	case isPlus(lvl):
		n.plus = c
	case isHash(lvl):
		n.hash = c
	case c == nil:
		n.kids.del(lvl)
	case n.kids.get(lvl) != nil:
		n.kids.set(lvl, c)
	default:
		n.kids.add(string(lvl), c)
	}
}

func (n *hnode[K]) empty() bool {
	return len(n.groups) == 0 && n.plus == nil && n.hash == nil && n.kids.len() == 0
}

// subscribe returns a new version of n (nil means empty) with k in group at
// filter below it; full is the whole filter (for a new group).
func (n *hnode[K]) subscribe(filter, full, group []byte, k K, o SubOptions) (*hnode[K], bool) {
	lvl, rest, last := nextLevel(filter)
	c := n.clone()
	var nc *hnode[K]
	var replaced bool
	if last {
		nc = c.child(lvl).shallow()
		replaced = nc.addMember(group, full, k, o)
	} else {
		nc, replaced = c.child(lvl).subscribe(rest, full, group, k, o)
	}
	c.setChild(lvl, nc)
	return c, replaced
}

// addMember adds (k, o) to group name of a private copy.
func (n *hnode[K]) addMember(name, filter []byte, k K, o SubOptions) (replaced bool) {
	gi := slices.IndexFunc(n.groups, func(g *group[K]) bool { return g.name == string(name) })
	if gi < 0 {
		g := &group[K]{name: string(name), filter: string(filter), members: []Entry[K]{{Key: k, Opts: o}}, next: new(atomic.Uint64)}
		n.groups = append(slices.Clip(n.groups), g)
		return false
	}
	old := n.groups[gi]
	ng := &group[K]{name: old.name, filter: old.filter, next: old.next}
	if i := slices.IndexFunc(old.members, func(e Entry[K]) bool { return e.Key == k }); i >= 0 {
		ng.members = slices.Clone(old.members)
		ng.members[i].Opts = o // [MQTT-3.8.4-3]
		replaced = true
	} else {
		ng.members = append(slices.Clip(old.members), Entry[K]{Key: k, Opts: o})
	}
	n.groups = slices.Clone(n.groups)
	n.groups[gi] = ng
	return replaced
}

// unsubscribe returns a new version of n without k in group at filter, nil
// if that version is empty, and whether k was there (n is returned
// unchanged when it was not).
func (n *hnode[K]) unsubscribe(filter, group []byte, k K) (*hnode[K], bool) {
	lvl, rest, last := nextLevel(filter)
	old := n.child(lvl)
	if old == nil {
		return n, false
	}
	var nc *hnode[K]
	var ok bool
	if last {
		nc, ok = old.removeMember(group, k)
	} else {
		nc, ok = old.unsubscribe(rest, group, k)
	}
	if !ok {
		return n, false
	}
	c := n.clone()
	c.setChild(lvl, nc)
	if c.empty() {
		return nil, true
	}
	return c, true
}

// removeMember returns a new version of n without k in group name, nil if
// that version is empty.
func (n *hnode[K]) removeMember(name []byte, k K) (*hnode[K], bool) {
	gi := slices.IndexFunc(n.groups, func(g *group[K]) bool { return g.name == string(name) })
	if gi < 0 {
		return n, false
	}
	old := n.groups[gi]
	i := slices.IndexFunc(old.members, func(e Entry[K]) bool { return e.Key == k })
	if i < 0 {
		return n, false
	}
	c := n.shallow()
	if len(old.members) == 1 {
		c.groups = slices.Delete(slices.Clone(n.groups), gi, gi+1)
		if len(c.groups) == 0 {
			c.groups = nil
		}
	} else {
		ng := &group[K]{name: old.name, filter: old.filter, next: old.next}
		ng.members = slices.Delete(slices.Clone(old.members), i, i+1)
		c.groups = slices.Clone(n.groups)
		c.groups[gi] = ng
	}
	if c.empty() {
		return nil, true
	}
	return c, true
}
