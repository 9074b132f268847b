package router

// SharedMatch is one shared subscription whose filter matched a topic
// (MatchGroups): its share name and filter, and Pick to choose its member.
// It refers to an immutable version of the group, valid for as long as
// the caller holds it.
type SharedMatch[K comparable] struct{ g *group[K] }

// Group is the share name; Filter the filter after $share/{group}/.
func (m SharedMatch[K]) Group() string  { return m.g.name }
func (m SharedMatch[K]) Filter() string { return m.g.filter }

// Pick chooses the group's member as Match does (in turn, skipping those
// accept refuses, the one whose turn it is when all do). Safe for
// concurrent use.
func (m SharedMatch[K]) Pick(accept func(K) bool) (Entry[K], bool) { return m.g.pick(accept) }

// MatchGroups appends to dst every (group, filter) whose filter matches
// topic, without choosing members: a cluster node first decides which
// groups it serves for a message (the others are served by a member on
// another node) and picks members only for those, so a group's turn
// moves only when this node delivers to it. It does not allocate when dst
// has room. Safe for concurrent use; lock-free.
func (s *Shared[K]) MatchGroups(topic []byte, dst []SharedMatch[K]) []SharedMatch[K] {
	r := s.root.Load()
	if r == nil {
		return dst
	}
	lvl, rest, last := nextLevel(topic)
	if !dollar(topic) { // [MQTT-4.7.2-1]
		if r.hash != nil {
			dst = appendGroups(r.hash.groups, dst)
		}
		if r.plus != nil {
			dst = r.plus.matchGroups(rest, last, dst)
		}
	}
	if c := r.kids.get(lvl); c != nil {
		dst = c.matchGroups(rest, last, dst)
	}
	return dst
}

// matchGroups mirrors match.
func (n *hnode[K]) matchGroups(rest []byte, end bool, dst []SharedMatch[K]) []SharedMatch[K] {
	if n.hash != nil { // "a/#" matches "a" too (§4.7.1.2)
		dst = appendGroups(n.hash.groups, dst)
	}
	if end {
		return appendGroups(n.groups, dst)
	}
	lvl, r, last := nextLevel(rest)
	if n.plus != nil { // [MQTT-4.7.1-2]
		dst = n.plus.matchGroups(r, last, dst)
	}
	if c := n.kids.get(lvl); c != nil { // [MQTT-4.7.3-4]
		dst = c.matchGroups(r, last, dst)
	}
	return dst
}

func appendGroups[K comparable](gs []*group[K], dst []SharedMatch[K]) []SharedMatch[K] {
	for _, g := range gs {
		if len(g.members) > 0 {
			dst = append(dst, SharedMatch[K]{g})
		}
	}
	return dst
}
