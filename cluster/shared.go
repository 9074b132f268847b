package cluster

import (
	"encoding/binary"
	"errors"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
)

// Shared subscriptions across nodes (docs/clustering.md, "Shared
// subscriptions"). Each node announces, with its filters, every shared
// subscription $share/{group}/{filter} its sessions hold and how many
// members it has here. The publishing node matches a message against the
// shared subscriptions of every node (its own included) and, for each,
// picks the one node that serves it, in a smooth weighted round robin over
// the nodes' member counts. The message goes once to each node that has a
// non-shared match or was picked for a group, carrying the list of
// (node, group, filter) assignments (kindShared); a node serves the groups
// assigned to it and no other, and the publishing node skips the groups it
// assigned elsewhere (broker.PeerMessage.Elsewhere). A node that was
// assigned a group it can no longer serve (its last member left, or none is
// online) sends the message on, for that group only, to another node
// (Reroute, once).

// groupCount is one shared subscription in an announcement.
type groupCount struct {
	Key     string `json:"k"` // $share/{group}/{filter}, as subscribed
	Members int    `json:"n"`
}

// localGroup counts this node's members of one shared subscription. The
// count is read by loops (a slot that named this node when no member is
// left any more is given to another node at once, before the index is
// rebuilt), written under localInterest.mu.
type localGroup struct {
	members atomic.Int32
}

// sharedInterest is Interest for a shared subscription: the member count
// changed, which changes the weights, so the version moves on every change.
func (n *Node) sharedInterest(key string, delta int) {
	li := &n.local
	li.mu.Lock()
	g := li.groups[key]
	if g == nil {
		if delta <= 0 {
			li.mu.Unlock()
			return
		}
		g = &localGroup{}
		li.groups[key] = g
	}
	c := g.members.Add(int32(delta))
	if c <= 0 {
		g.members.Store(0)
		delete(li.groups, key)
	}
	li.version++
	li.sharedDirty = true
	li.mu.Unlock()
	n.signalDirty()
}

// rebuildSharedOnlyLocked publishes a copy of the index with its shared
// slots built again (this node's members changed): the filters' index,
// which may be large, is shared with the old one. peersMu held.
func (n *Node) rebuildSharedOnlyLocked() {
	old := n.remote.Load()
	ix := &remoteIndex{shard: old.shard, subjects: old.subjects, ids: old.ids, flows: old.flows, allMask: old.allMask}
	n.rebuildSharedLocked(ix, old.ids)
	n.remote.Store(ix)
}

// localGroupsLocked lists this node's shared subscriptions; li.mu held.
func (li *localInterest) localGroupsLocked() []groupCount {
	if len(li.groups) == 0 {
		return nil
	}
	out := make([]groupCount, 0, len(li.groups))
	for k, g := range li.groups {
		out = append(out, groupCount{Key: k, Members: int(g.members.Load())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// selfNode in a slot's schedule is this node.
const selfNode = 0xFF

// sharedSlot is one shared subscription some other node has members of.
// Immutable once published, but for turn and local.
type sharedSlot struct {
	group, filter string
	// sched is the nodes in turn (peer index, or selfNode), each as often
	// as its share of the members (smooth weighted round robin).
	sched []uint8
	turn  *atomic.Uint64 // kept across rebuilds for the same group
	local *localGroup    // this node's members; nil: none at the rebuild
}

// pick returns the node whose turn it is; this node's turn passes to the
// next node when it has no member left.
func (s *sharedSlot) pick() uint8 {
	t := s.turn.Add(1) - 1
	l := uint64(len(s.sched))
	for i := range l {
		node := s.sched[(t+i)%l]
		if node != selfNode || s.local.members.Load() > 0 {
			return node
		}
	}
	return selfNode
}

// pickOther returns a node other than this one for the group, false if
// there is none.
func (s *sharedSlot) pickOther() (uint8, bool) {
	t := s.turn.Add(1) - 1
	l := uint64(len(s.sched))
	for i := range l {
		if node := s.sched[(t+i)%l]; node != selfNode {
			return node, true
		}
	}
	return 0, false
}

// maxSchedule bounds a slot's schedule: beyond it the member counts are
// scaled down (each node keeping at least one turn).
const maxSchedule = 256

// schedule spreads the nodes over turns in proportion to their weights,
// interleaved (nginx's smooth weighted round robin), so consecutive
// messages go to different nodes.
func schedule(nodes []uint8, weights []int) []uint8 {
	total := 0
	for _, w := range weights {
		total += w
	}
	if total > maxSchedule {
		scaled := 0
		for i, w := range weights {
			weights[i] = max(1, w*maxSchedule/total)
			scaled += weights[i]
		}
		total = scaled
	}
	cur := make([]int, len(nodes))
	out := make([]uint8, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, nodes[best])
	}
	return out
}

// slotKey is the index's key of a shared subscription.
func slotKey[S ~string | ~[]byte](dst []byte, group, filter S) []byte {
	dst = append(dst, group...)
	dst = append(dst, 0)
	return append(dst, filter...)
}

// rebuildSharedLocked adds the shared subscriptions of the peers ids (in
// index order) to ix, with this node's members. peersMu held.
func (n *Node) rebuildSharedLocked(ix *remoteIndex, ids []string) {
	type member struct {
		node  uint8
		count int
	}
	byKey := map[string][]member{}
	for i, id := range ids {
		p := n.peers[id]
		if p == nil || !p.away.IsZero() {
			continue // gone since ids were taken, or away (hold.go): not picked
		}
		for _, g := range p.groups {
			if g.Members > 0 {
				byKey[g.Key] = append(byKey[g.Key], member{uint8(i), g.Members})
			}
		}
	}
	if len(byKey) == 0 {
		n.turns = nil
		return
	}
	li := &n.local
	li.mu.Lock()
	defer li.mu.Unlock()
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	turns := make(map[string]*atomic.Uint64, len(keys))
	ix.shared = router.NewShard[uint16]()
	ix.slotByKey = make(map[string]uint16, len(keys))
	for _, k := range keys {
		group, filter, shared, err := codec.SplitShared([]byte(k))
		if !shared || err != nil || codec.ValidateTopicFilter(filter) != nil {
			continue // a peer's bad announcement: not matched
		}
		if len(ix.slots) == 1<<16 {
			n.log.Error("cluster: more shared subscriptions than one node balances; the rest are served by every node with members", "max", 1<<16)
			break
		}
		ms := byKey[k]
		nodes := make([]uint8, 0, len(ms)+1)
		weights := make([]int, 0, len(ms)+1)
		for _, m := range ms {
			nodes = append(nodes, m.node)
			weights = append(weights, m.count)
		}
		lg := li.groups[k]
		if lg != nil && lg.members.Load() > 0 {
			nodes = append(nodes, selfNode)
			weights = append(weights, int(lg.members.Load()))
		}
		t := n.turns[k]
		if t == nil {
			t = new(atomic.Uint64)
		}
		turns[k] = t
		if lg == nil {
			lg = &localGroup{} // none here: pick never names this node
		}
		id := uint16(len(ix.slots))
		ix.slots = append(ix.slots, sharedSlot{group: string(group), filter: string(filter), sched: schedule(nodes, weights), turn: t, local: lg})
		ix.slotByKey[string(slotKey(nil, group, filter))] = id
		ix.shared.Subscribe(filter, id, router.SubOptions{})
	}
	n.turns = turns
}

// shareScratch is Forward's per-call scratch for shared subscriptions
// (pooled: Forward runs on every loop at once).
type shareScratch struct {
	matches []router.Entry[uint16]
	assign  []assignment
}

// assignment: slot's group goes to peer node for this message.
type assignment struct {
	slot uint16
	node uint8
}

// assignShared picks the node of each shared subscription matching m and
// returns the peers picked; sh.assign lists the assignments to peers, and
// m.Elsewhere their keys.
func (n *Node) assignShared(ix *remoteIndex, m *broker.PeerMessage, sh *shareScratch) (to uint64) {
	sh.matches = ix.shared.Match(m.Topic, sh.matches[:0])
	sh.assign = sh.assign[:0]
	for _, e := range sh.matches {
		s := &ix.slots[e.Key]
		node := s.pick()
		if node == selfNode {
			continue
		}
		to |= 1 << node
		sh.assign = append(sh.assign, assignment{slot: e.Key, node: node})
		m.Elsewhere = broker.AppendSharedKey(m.Elsewhere, s.group, s.filter)
	}
	n.sharedAssigned.Add(uint64(len(sh.assign)))
	return to
}

// Wire format of kindShared (after source, before the PUBLISH):
//
//	flags (1: sharedGroupsOnly) | uvarint count |
//	count × (len(node) (1) | node | uvarint len(group) | group | uvarint len(filter) | filter)
const sharedGroupsOnly = 1

// encodeShared is encode for a message with shared-subscription
// assignments: each (node, group, filter) of assign.
func (n *Node) encodeShared(dst []byte, ix *remoteIndex, flags byte, assign []assignment, m *broker.PeerMessage, flow bool) []byte {
	dst = n.appendHead(dst, kindShared, m, flow)
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(assign)))
	for _, a := range assign {
		s := &ix.slots[a.slot]
		id := ix.ids[a.node]
		dst = append(dst, byte(len(id)))
		dst = append(dst, id...)
		dst = broker.AppendSharedKey(dst, s.group, s.filter)
	}
	return n.appendPublish(dst, m)
}

// decodeShared parses the assignments of a kindShared message: flags, the
// assignments (count entries) and what follows them.
func decodeShared(b []byte) (flags byte, groups []byte, count int, rest []byte, err error) {
	if len(b) < 2 || b[0] > sharedGroupsOnly {
		return 0, nil, 0, nil, errWire
	}
	flags = b[0]
	c, k := binary.Uvarint(b[1:])
	if k <= 0 || c > uint64(len(b)) {
		return 0, nil, 0, nil, errWire
	}
	start := b[1+k:]
	p := start
	for range c {
		if len(p) < 1 || len(p) < 1+int(p[0]) || p[0] == 0 {
			return 0, nil, 0, nil, errWire
		}
		p = p[1+int(p[0]):]
		g, f, r, ok := broker.NextSharedKey(p)
		if !ok || len(g) == 0 || codec.ValidateTopicFilter(f) != nil {
			return 0, nil, 0, nil, errWire
		}
		p = r
	}
	return flags, start[:len(start)-len(p)], int(c), p, nil
}

// nextAssignment splits the first assignment off groups (as decodeShared
// checked them).
func nextAssignment(groups []byte) (node, group, filter, rest []byte) {
	node, groups = groups[1:1+int(groups[0])], groups[1+int(groups[0]):]
	group, filter, rest, _ = broker.NextSharedKey(groups)
	return node, group, filter, rest
}

// listedFor appends (broker.AppendSharedKey) the groups assigned to node.
func listedFor(dst []byte, groups []byte, node string) []byte {
	for len(groups) > 0 {
		nd, g, f, rest := nextAssignment(groups)
		if string(nd) == node {
			dst = broker.AppendSharedKey(dst, g, f)
		}
		groups = rest
	}
	return dst
}

// Reroute implements broker.SharedPeers: this node was to serve shared
// subscription (group, filter) for m and cannot; another node with
// members gets m for that group only. Never blocks.
func (n *Node) Reroute(m *broker.PeerMessage, group, filter string) bool {
	if !n.routing.Load() {
		return false
	}
	ix := n.remote.Load()
	var kb [128]byte
	id, ok := ix.slotByKey[string(slotKey(kb[:0], group, filter))]
	if !ok {
		return false
	}
	node, ok := ix.slots[id].pickOther()
	if !ok {
		return false
	}
	bp := n.bufPool.Get().(*[]byte)
	a := [1]assignment{{slot: id, node: node}}
	*bp = n.encodeShared((*bp)[:0], ix, sharedGroupsOnly, a[:], m, false)
	select {
	case n.queue <- outItem{to: 1 << node, ix: ix, buf: bp}:
		n.sharedRerouted.Add(1)
		return true
	default:
		n.bufPool.Put(bp)
		n.dropped.Add(1)
		return false
	}
}

// PeerMembers is how many members of shared subscription key
// ($share/{group}/{filter}) node announced (tests, diagnostics).
func (n *Node) PeerMembers(node, key string) int {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	p := n.peers[node]
	if p == nil {
		return 0
	}
	i := sort.Search(len(p.groups), func(i int) bool { return p.groups[i].Key >= key })
	if i < len(p.groups) && p.groups[i].Key == key {
		return p.groups[i].Members
	}
	return 0
}

// PeerReachable reports whether node's routes are up (tests,
// diagnostics).
func (n *Node) PeerReachable(node string) bool { return n.reachable(subjectMsg(node)) }

// peerUnreachable handles a message with shared-subscription assignments
// for ix's peer gone (away: unreachable, or held for, hold.go): each group
// the message assigned to it is picked again among the other nodes (this
// one included) and sent there, or delivered here, for that group only;
// its entry in buf is then renamed to no node, so that the copy the hold
// may keep for it does not serve the group twice. A group no other node
// has a member of stays assigned to it (held, for its persistent
// members). Sender goroutine only; not a hot path (it allocates).
func (n *Node) peerUnreachable(ix *remoteIndex, gone uint8, buf []byte) {
	var p codec.Publish
	h, err := decodeAny(buf, &p)
	if err != nil || h.kind != kindShared {
		return
	}
	id := ix.ids[gone]
	m := broker.PeerMessage{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain}
	if p.Props.Present != 0 || len(p.Props.User) > 0 {
		m.Props = &p.Props
	}
	if !h.expireAt.IsZero() {
		m.ExpireAt = h.expireAt.UnixNano()
	}
	cur := n.remote.Load()
	var here []byte
	for g := h.groups; len(g) > 0; {
		node, grp, flt, rest := nextAssignment(g)
		g = rest
		if string(node) != id {
			continue
		}
		slot, ok := cur.slotByKey[string(slotKey(nil, grp, flt))]
		if !ok {
			continue
		}
		to, ok := cur.slots[slot].pickExcept(cur, id)
		if !ok {
			continue // no one else: left to the hold
		}
		node[0] = '.' // no node id starts with '.' (validNodeID)
		if to == selfNode {
			here = broker.AppendSharedKey(here, grp, flt)
			continue
		}
		raw := n.encodeShared(nil, cur, sharedGroupsOnly, []assignment{{slot, to}}, &m, false)
		if err := n.nc.Publish(cur.subjects[to], raw); err != nil {
			n.dropped.Add(1)
			continue
		}
		n.sharedRerouted.Add(1)
		n.sent.Add(1)
	}
	if len(here) == 0 {
		return
	}
	n.sharedRerouted.Add(1)
	for {
		err = n.b.RouteFromPeerShared([]byte(n.o.NodeID), &p, h.expireAt, here, true)
		if !errors.Is(err, broker.ErrInboxFull) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil && !errors.Is(err, broker.ErrClosed) {
		n.log.Warn("cluster: cannot deliver a message of a node that is away", "err", err)
	}
}

// pickExcept is pick among the nodes of ix other than node id, false if
// there is none with members.
func (s *sharedSlot) pickExcept(ix *remoteIndex, id string) (uint8, bool) {
	t := s.turn.Add(1) - 1
	l := uint64(len(s.sched))
	for i := range l {
		node := s.sched[(t+i)%l]
		switch {
		case node == selfNode:
			if s.local.members.Load() > 0 {
				return node, true
			}
		case ix.ids[node] != id:
			return node, true
		}
	}
	return 0, false
}
