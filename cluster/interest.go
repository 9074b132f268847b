package cluster

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
	"github.com/nats-io/nats.go"
)

// localInterest counts this node's subscriptions per filter, and the
// members of each shared subscription $share/{group}/{filter} (shared.go).
type localInterest struct {
	mu      sync.Mutex
	counts  map[string]int
	durable map[string]int         // filters of sessions that persist (hold.go)
	groups  map[string]*localGroup // by $share/{group}/{filter}
	version uint64                 // bumped when a filter appears or disappears, or a group's members change
	// sharedDirty: this node's groups changed since the index's shared
	// slots were last built (their weights count this node's members).
	sharedDirty bool
}

// Interest implements broker.Peers: the broker added (+1) or removed (-1)
// a subscription.
func (n *Node) Interest(filter string, delta int) {
	if _, _, shared, err := codec.SplitShared([]byte(filter)); shared && err == nil {
		n.sharedInterest(filter, delta)
		return
	}
	li := &n.local
	li.mu.Lock()
	c := li.counts[filter] + delta
	changed := false
	switch {
	case c <= 0:
		if _, ok := li.counts[filter]; ok {
			delete(li.counts, filter)
			changed = true
		}
	default:
		changed = li.counts[filter] == 0
		li.counts[filter] = c
	}
	if changed {
		li.version++
	}
	li.mu.Unlock()
	if changed {
		n.signalDirty()
	}
}

func (n *Node) signalDirty() {
	select {
	case n.dirty <- struct{}{}:
	default:
	}
}

// announcement is what a node says on mcutie.interest: its version, and
// its filters when they changed (or were asked for).
type announcement struct {
	Node    string   `json:"node"`
	Version uint64   `json:"version"`
	Full    bool     `json:"full"`
	Filters []string `json:"filters,omitempty"`
	// Epoch names the node's run (its start time): a new one is a
	// restart. Durable (with Full) are the filters of its sessions that
	// persist; Leaving: it is shutting down (Leave). hold.go.
	Epoch   int64    `json:"epoch,omitempty"`
	Durable []string `json:"durable,omitempty"`
	Leaving bool     `json:"leaving,omitempty"`
	// HeldAcks: it answers kindHeldAsk and drops held messages sent
	// twice (holdack.go).
	HeldAcks bool `json:"hacks,omitempty"`
	// Groups are the shared subscriptions and their members here.
	Groups []groupCount `json:"groups,omitempty"`
	// RetainedSum is its retained set's checksum (retained.go).
	RetainedSum uint64 `json:"rsum,omitempty"`
	// Credit is what it grants every other node (flow.go; absent: it
	// confirms nothing, an older version).
	Credit int64 `json:"credit,omitempty"`
}

// announce sends the full interest when it changed (after a short pause
// that gathers a burst of subscriptions into one announcement) and the
// version every heartbeat; it forgets silent peers.
func (n *Node) announce() {
	defer n.wg.Done()
	hb := time.NewTicker(n.o.HeartbeatInterval)
	defer hb.Stop()
	full := true // the first announcement is full
	n.publishMembership()
	for {
		if full {
			n.publishInterest(true)
			full = false
		}
		select {
		case <-n.stop:
			return
		case <-n.dirty:
			select { // gather a burst
			case <-time.After(10 * time.Millisecond):
			case <-n.stop:
				return
			}
			full = true
		case <-hb.C:
			n.b.PruneRetainedTombstones()
			n.publishInterest(false)
			n.expirePeers()
			n.publishMembership()
		}
	}
}

func (n *Node) publishInterest(full bool) {
	li := &n.local
	li.mu.Lock()
	a := announcement{Node: n.o.NodeID, Version: li.version, Full: full, Epoch: n.epoch, Leaving: n.hold.leaving.Load(), HeldAcks: true,
		RetainedSum: n.b.RetainedSyncStats().Sum, Credit: n.grantedCredit()}
	if full {
		a.Filters = make([]string, 0, len(li.counts))
		for f := range li.counts {
			a.Filters = append(a.Filters, f)
		}
		a.Durable = li.durableListLocked()
		a.Groups = li.localGroupsLocked()
	}
	sharedDirty := li.sharedDirty
	li.sharedDirty = false
	li.mu.Unlock()
	if sharedDirty {
		// This node's members weigh in its own picks too.
		n.peersMu.Lock()
		n.rebuildSharedOnlyLocked()
		n.peersMu.Unlock()
	}
	sort.Strings(a.Filters)
	raw, err := json.Marshal(a)
	if err != nil {
		return
	}
	if err := n.nc.Publish(subjectInterest, raw); err != nil {
		n.log.Warn("cluster: cannot announce interest", "err", err)
	}
}

// peer is another node's announced interest.
type peer struct {
	version uint64
	known   bool // filters hold version's set
	filters []string
	groups  []groupCount // sorted by key
	seen    time.Time
	subject string
	// hold.go: its run, its durable filters, and since when it is away
	// (zero: it is not) and why.
	epoch    int64
	durable  []string
	away     time.Time
	awayWhy  string
	heldAcks bool // it acknowledges released holds (holdack.go)
	// flow: this node's messages to it that wait for its confirmation
	// (flow.go); one per run of it.
	flow *flowOut
}

// onInterest applies another node's announcement.
func (n *Node) onInterest(msg *nats.Msg) {
	var a announcement
	if err := json.Unmarshal(msg.Data, &a); err != nil || a.Node == "" {
		n.badIn.Add(1)
		return
	}
	if a.Node == n.o.NodeID {
		return
	}
	n.peersMu.Lock()
	p := n.peers[a.Node]
	rebuild, ask, joined := false, false, false
	if p == nil && a.Leaving {
		// Gone before we knew it: nothing to hold, but it waits for an
		// answer.
		n.peersMu.Unlock()
		n.sendHoldEvents([]holdEvent{{kind: evHold, node: a.Node, subject: subjectMsg(a.Node), ack: true}})
		return
	}
	if p == nil {
		p = &peer{subject: subjectMsg(a.Node), flow: newFlowOut(n.o.ConfirmAcks)}
		n.peers[a.Node] = p
		n.log.Info("cluster: node joined", "peer", a.Node)
		rebuild, joined = true, true // retained messages go to it from now on
	}
	p.seen = time.Now()
	ev, sendEv, reb, rejoined := n.heardLocked(a.Node, p, &a)
	if rejoined && p.flow != nil {
		// Restarted: it confirms none of what the run before got.
		n.flowGivenUp.Add(uint64(p.flow.fail(true)))
		p.flow = newFlowOut(n.o.ConfirmAcks)
		rebuild = true
	}
	if !a.Leaving {
		p.flow.credit.Store(a.Credit)
	}
	rebuild = rebuild || reb
	if (rebuild || rejoined) && !a.Leaving {
		n.signalDirty() // a newcomer learns our interest now, not at the next heartbeat
	}
	switch {
	case a.Full:
		p.version, p.known, p.filters, p.groups = a.Version, true, a.Filters, a.Groups
		sort.Slice(p.groups, func(i, j int) bool { return p.groups[i].Key < p.groups[j].Key })
		rebuild = true
	case !p.known || p.version != a.Version:
		ask = true
	}
	if rebuild {
		n.rebuildLocked()
	}
	n.peersMu.Unlock()
	if sendEv {
		n.sendHoldEvents([]holdEvent{ev})
	}
	if !a.Leaving {
		// Anti-entropy of the retained set (retained.go). A node back
		// from away that acknowledges gets the digest once a round trip
		// shows the route carries messages (holdack.go): sent now, it
		// could go down a route NATS is about to close.
		back := sendEv && ev.kind == evRelease && ev.acks
		n.retainedHeard(&a, (joined || rejoined) && !back)
	}
	if ask && !a.Leaving {
		// Our copy is stale or missing: ask for the whole set (it is
		// broadcast, which also serves any other node that missed it).
		_ = n.nc.Publish(subjectWant(a.Node), nil)
	}
}

// expirePeers holds for nodes silent for PeerTimeout, and forgets them
// once Hold passed (at once without a hold).
func (n *Node) expirePeers() {
	n.hold.tick.Add(1)
	n.peersMu.Lock()
	gone := false
	var evs []holdEvent
	for id, p := range n.peers {
		if time.Since(p.seen) > n.o.PeerTimeout || !p.away.IsZero() {
			ev, send, forget, rebuild := n.expireLocked(id, p)
			if send {
				evs = append(evs, ev)
			}
			if forget {
				n.flowGivenUp.Add(uint64(p.flow.fail(true)))
				delete(n.peers, id)
				n.forgetRetainedPeer(id)
				if !n.holdEnabled() {
					n.log.Warn("cluster: node silent, forgotten until it is heard again", "peer", id, "timeout", n.o.PeerTimeout)
				}
			}
			gone = gone || rebuild
		}
	}
	evs, lost := n.unreachableFlowsLocked(evs)
	if gone || lost {
		n.rebuildLocked()
	}
	n.failFlowsLocked()
	n.peersMu.Unlock()
	n.sendHoldEvents(evs)
}

// remoteIndex is every peer's interest in one topic index: the key is
// the peer's index in subjects. Immutable once published, so loops match
// it concurrently without a lock.
type remoteIndex struct {
	shard    *router.Shard[uint8]
	subjects []string   // the peers' message subjects
	ids      []string   // the peers' node ids
	flows    []*flowOut // the peers' flow control (flow.go)
	allMask  uint64     // every peer: where retained messages go
	// The shared subscriptions other nodes have members of (shared.go):
	// shared matches a topic to slots, slotByKey finds one by
	// slotKey(group, filter). Empty when there are none.
	shared    *router.Shard[uint16]
	slots     []sharedSlot
	slotByKey map[string]uint16
	// reach[i]: when the sender asks again whether subjects[i] has
	// interest (hold.go). The sender's alone.
	reach []reachCheck
}

// maxPeers is how many other nodes one node forwards to (a bit each).
const maxPeers = 64

// rebuildLocked publishes a new remote index from n.peers. peersMu held.
func (n *Node) rebuildLocked() {
	ix := &remoteIndex{shard: router.NewShard[uint8]()}
	ids := make([]string, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > maxPeers {
		n.log.Error("cluster: more nodes than one node forwards to; the rest get nothing", "max", maxPeers+1, "nodes", len(ids)+1)
		ids = ids[:maxPeers]
	}
	for i, id := range ids {
		p := n.peers[id]
		if p.flow == nil {
			p.flow = newFlowOut(n.o.ConfirmAcks)
		}
		ix.subjects = append(ix.subjects, p.subject)
		ix.ids = append(ix.ids, id)
		ix.flows = append(ix.flows, p.flow)
		ix.allMask |= 1 << i
		filters := p.filters
		if !p.away.IsZero() {
			filters = p.durable // an absent node's held interest (hold.go)
		}
		for _, f := range filters {
			ix.shard.Subscribe([]byte(f), uint8(i), router.SubOptions{})
		}
	}
	n.rebuildSharedLocked(ix, ids)
	n.remote.Store(ix)
}

// PeerInterest reports whether peer node has announced a filter (tests,
// diagnostics).
func (n *Node) PeerInterest(node, filter string) bool {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	p := n.peers[node]
	if p == nil {
		return false
	}
	if _, _, shared, _ := codec.SplitShared([]byte(filter)); shared {
		i := sort.Search(len(p.groups), func(i int) bool { return p.groups[i].Key >= filter })
		return i < len(p.groups) && p.groups[i].Key == filter
	}
	i := sort.SearchStrings(p.filters, filter)
	return i < len(p.filters) && p.filters[i] == filter
}

// membership is what <sys-prefix>/broker/cluster/nodes says (retained):
// this node and the nodes it hears from.
type membership struct {
	Self  string   `json:"self"`
	Nodes []string `json:"nodes"`
}

// publishMembership publishes the membership when it changed since the
// last time. Called by announce only.
func (n *Node) publishMembership() {
	n.peersMu.Lock()
	m := membership{Self: n.o.NodeID, Nodes: []string{n.o.NodeID}}
	for id, p := range n.peers {
		if !p.away.IsZero() {
			continue // not heard from: held for (hold.go)
		}
		m.Nodes = append(m.Nodes, id)
	}
	n.peersMu.Unlock()
	sort.Strings(m.Nodes)
	raw, err := json.Marshal(m)
	if err != nil || string(raw) == n.lastMembership {
		return
	}
	prefix := n.b.Options().SysPrefix
	if prefix == "" {
		prefix = "$SYS"
	}
	if err := n.b.Publish(prefix+"/broker/cluster/nodes", raw, 0, true); err == nil {
		n.lastMembership = string(raw)
	}
}
