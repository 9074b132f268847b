package cluster

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/mcutie/mcutie/router"
)

// Hold for absent nodes (docs/clustering.md, "Hold for absent nodes").
//
// A node announces, besides its interest, the filters of its sessions
// that persist ("durable interest", broker.DurablePeers). When a node is
// away — it said it is leaving (Leave, on SIGTERM), its messages'
// subject lost its interest in NATS (the route went), or it was silent
// for PeerTimeout — the others keep its durable filters for Hold and put
// the QoS 1/2 messages matching them in a bounded hold queue per absent
// node, in memory. When the node is heard again (the same node id, not
// leaving), the held messages are sent first, in order, then new ones.
// A hold that outlives Hold is dropped (counted) and the node forgotten.
//
// Concurrency: the hold queues belong to the sender goroutine (send);
// other goroutines ask it to start, release or drop a hold through
// holdEv, so that a message is either sent or held, in the queue's
// order, never both. Whether a peer is away is peer.away, under peersMu.

// Hold defaults (Options.Hold, HoldMessages, HoldBytes).
const (
	DefaultHold         = 5 * time.Minute
	DefaultHoldMessages = 100_000
	DefaultHoldBytes    = 64 << 20
)

// kindLeaveAck is a node's answer on the leaving node's subject: "I hold
// for you now; everything I sent you before this is ahead of it".
const kindLeaveAck = 2

type holdEventKind uint8

const (
	evHold    holdEventKind = iota // start holding (and, with ack, answer a Leave)
	evRelease                      // the node is back: send what is held, then live
	evForget                       // Hold passed: drop what is held
	evAcked                        // the node answered a probe or acknowledged a release (holdack.go)
)

type holdEvent struct {
	kind          holdEventKind
	node, subject string
	why           string
	durable       []string
	ack           bool
	// evRelease: the node acknowledges what it is sent (holdack.go);
	// evAcked: the sequence it acknowledged.
	acks bool
	seq  uint64
}

// hold is one absent node's queue. Sender goroutine only.
type hold struct {
	node, why string
	since     time.Time
	durable   *router.Shard[uint8] // its durable filters
	msgs      [][]byte             // FIFO from head
	seqs      []uint64             // msgs[i]'s release sequence (holdack.go)
	head      int
	bytes     int
	dropped   uint64 // this episode
	// probe: the node was heard again and this node asked it to answer
	// (holdack.go); the messages go once the answer comes back. 0: not
	// asked yet. probeAt: when it asked last.
	probe   uint64
	probeAt time.Time
}

func newHold(node, why string, durable []string) *hold {
	h := &hold{node: node, why: why, since: time.Now(), durable: router.NewShard[uint8]()}
	for _, f := range durable {
		h.durable.Subscribe([]byte(f), 0, router.SubOptions{})
	}
	return h
}

// holdState is the Node's part of the hold.
type holdState struct {
	holds map[string]*hold // by the node's message subject; sender only
	// unacked: held messages sent to a node that came back, kept until
	// it acknowledges them (holdack.go); by subject, sender only.
	unacked map[string]*released
	seq     uint64 // the last release sequence given; sender only
	matches []router.Entry[uint8]

	acks      chan string   // node ids that answered Leave
	tick      atomic.Uint32 // heartbeats so far (recentlyReachable)
	leaving   atomic.Bool   // Leave was called: announcements say so
	absent    atomic.Int64
	heldMsgs  atomic.Int64 // held now, every absent node
	heldBytes atomic.Int64

	heldTotal, releasedTotal, drops, resent atomic.Uint64
}

// DurableInterest implements broker.DurablePeers: a session that
// persists added (+1) or removed (-1) filter.
func (n *Node) DurableInterest(filter string, delta int) {
	if _, f, shared, err := codec.SplitShared([]byte(filter)); shared && err == nil {
		filter = string(f)
	}
	li := &n.local
	li.mu.Lock()
	c := li.durable[filter] + delta
	changed := false
	switch {
	case c <= 0:
		if _, ok := li.durable[filter]; ok {
			delete(li.durable, filter)
			changed = true
		}
	default:
		changed = li.durable[filter] == 0
		li.durable[filter] = c
	}
	if changed {
		li.version++
	}
	li.mu.Unlock()
	if changed {
		n.signalDirty()
	}
}

// durableListLocked is the sorted durable filters. local.mu held.
func (li *localInterest) durableListLocked() []string {
	out := make([]string, 0, len(li.durable))
	for f := range li.durable {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// holdEnabled reports whether absent nodes are held for.
func (n *Node) holdEnabled() bool { return n.o.Hold > 0 }

// heardLocked updates p from an announcement of it (peersMu held) and
// says what the sender must do (ev.kind valid when send) and whether the
// index changes.
func (n *Node) heardLocked(id string, p *peer, a *announcement) (ev holdEvent, send, rebuild, rejoined bool) {
	if a.Epoch != 0 && p.epoch != 0 && a.Epoch != p.epoch {
		// Restarted: its interest may differ (ask for it), and it gets
		// what is retained as a node that joins does.
		rejoined = true
		p.known = false
	}
	if a.Epoch != 0 {
		p.epoch = a.Epoch
	}
	p.heldAcks = a.HeldAcks
	if a.Full {
		p.durable = a.Durable
	}
	if a.Leaving {
		first := p.away.IsZero()
		if first {
			n.log.Info("cluster: node leaving; holding its persistent sessions' messages", "peer", id, "hold", n.o.Hold)
		}
		n.flowGivenUp.Add(uint64(p.flow.fail(false))) // it confirms nothing more; the hold takes over
		if !n.holdEnabled() {
			n.flowGivenUp.Add(uint64(p.flow.fail(true)))
			delete(n.peers, id)
			return holdEvent{kind: evHold, node: id, subject: p.subject, ack: true}, true, true, false
		}
		p.away, p.awayWhy = time.Now(), "left"
		return holdEvent{kind: evHold, node: id, subject: p.subject, why: "left", durable: p.durable, ack: true}, true, first, false
	}
	if !p.away.IsZero() {
		n.log.Info("cluster: node back; sending what was held for it", "peer", id, "away", time.Since(p.away).Round(time.Millisecond), "why", p.awayWhy)
		p.away, p.awayWhy = time.Time{}, ""
		// Back: it gets what is retained as a node that joins does
		// (what changed while it was away).
		return holdEvent{kind: evRelease, node: id, subject: p.subject, acks: p.heldAcks}, true, true, true
	}
	return holdEvent{}, false, false, rejoined
}

// expireLocked decides for a peer silent for PeerTimeout or away
// (peersMu held): hold for it (if not yet), keep holding, or forget it
// once it has been away for Hold. forget: delete it; send ev when send.
func (n *Node) expireLocked(id string, p *peer) (ev holdEvent, send, forget, rebuild bool) {
	if !n.holdEnabled() {
		return holdEvent{}, false, true, true
	}
	if p.away.IsZero() {
		p.away, p.awayWhy = time.Now(), "silent"
		n.log.Warn("cluster: node silent; holding its persistent sessions' messages", "peer", id, "timeout", n.o.PeerTimeout, "hold", n.o.Hold)
		return holdEvent{kind: evHold, node: id, subject: p.subject, why: "silent", durable: p.durable}, true, false, true
	}
	if time.Since(p.away) > n.o.Hold {
		n.log.Warn("cluster: node away longer than --cluster-hold; forgotten, what was held for it dropped", "peer", id, "hold", n.o.Hold)
		return holdEvent{kind: evForget, node: id, subject: p.subject}, true, true, true
	}
	return holdEvent{}, false, false, false
}

// sendHoldEvents hands events to the sender; called without peersMu (the
// sender may wait for it).
func (n *Node) sendHoldEvents(evs []holdEvent) {
	for _, ev := range evs {
		select {
		case n.holdEv <- ev:
		case <-n.stop:
			return
		}
	}
}

// onHoldEvent runs an event on the sender goroutine.
func (n *Node) onHoldEvent(ev holdEvent) {
	hs := &n.hold
	switch ev.kind {
	case evHold:
		if n.holdEnabled() && ev.why != "" {
			if h := hs.holds[ev.subject]; h != nil {
				h.probe = 0 // away again before it answered: wait to hear it again
			} else {
				hs.holds[ev.subject] = n.newHoldFor(ev.node, ev.subject, ev.why, ev.durable)
				hs.absent.Add(1)
			}
		}
		if ev.ack {
			// After the hold is in place: whatever this goroutine sent
			// the node before is ahead of the answer on the wire.
			buf := append(make([]byte, 0, 3+len(n.o.NodeID)), wireVersion, kindLeaveAck, byte(len(n.o.NodeID)))
			buf = append(buf, n.o.NodeID...)
			if err := n.nc.Publish(ev.subject, buf); err != nil {
				n.log.Warn("cluster: cannot answer a leaving node", "peer", ev.node, "err", err)
			}
		}
	case evRelease:
		h := hs.holds[ev.subject]
		if h == nil {
			if ev.acks {
				n.retainedBack(ev.node) // nothing held: no round trip to wait for
			}
			return
		}
		if ev.acks {
			// Heard again is not yet "its route carries messages":
			// ask it to answer first (holdack.go).
			n.probeHeld(ev.subject, h)
			return
		}
		n.release(ev.subject, h, false) // a node that does not acknowledge (an older build)
	case evAcked:
		n.onHeldAck(ev)
	case evForget:
		if r := hs.unacked[ev.subject]; r != nil {
			n.dropReleased(ev.subject, r) // delivered or not, no one to ask any more
		}
		h := hs.holds[ev.subject]
		if h == nil {
			return
		}
		delete(hs.holds, ev.subject)
		hs.absent.Add(-1)
		left := len(h.msgs) - h.head
		hs.drops.Add(uint64(left))
		hs.heldMsgs.Add(-int64(left))
		hs.heldBytes.Add(-int64(h.bytes))
	}
}

// reachable reports whether a node listens on subject now: its
// subscription reached this node's NATS server over a route. A route
// that went takes the subscription with it.
func (n *Node) reachable(subject string) bool {
	return n.acc.SubscriptionInterest(subject)
}

// reachCheckEvery is how many messages to a node the sender sends
// between two checks that its subject still has interest, unless a
// heartbeat passed meanwhile: asking NATS on every message costs more
// than the rest of the check (BenchmarkHoldCheck). A route lost between
// two checks loses those messages, as the route's own buffer does
// (docs/clustering.md).
const reachCheckEvery = 16

// recentlyReachable is reachable for ix's node i, asked of NATS every
// reachCheckEvery messages or once a heartbeat passed. Sender goroutine
// only: it alone uses ix.reach.
func (n *Node) recentlyReachable(ix *remoteIndex, i int) bool {
	if ix.reach == nil {
		ix.reach = make([]reachCheck, len(ix.subjects))
	}
	r := &ix.reach[i]
	tick := n.hold.tick.Load()
	if r.left > 0 && r.tick == tick {
		r.left--
		return true
	}
	if !n.reachable(ix.subjects[i]) {
		return false
	}
	r.left, r.tick = reachCheckEvery, tick
	return true
}

// reachCheck is when the sender asks again whether a node is reachable.
type reachCheck struct {
	left int32  // messages before it asks again
	tick uint32 // hold.tick when it last asked
}

// held decides on the sender goroutine for one target of it: true when
// the message must not be sent live (held, or dropped because its node
// is away and it matches no durable filter or is QoS 0).
func (n *Node) held(it *outItem, subject string) bool {
	hs := &n.hold
	h := hs.holds[subject]
	if h == nil {
		if n.reachable(subject) || !n.holdEnabled() {
			return false
		}
		h = n.startHoldHere(subject)
		if h == nil {
			return false // not a node we know: as before, sent into the void
		}
	}
	var p codec.Publish
	h0, err := decodeAny(*it.buf, &p)
	if err != nil || h0.kind != kindLive && h0.kind != kindShared || p.QoS == 0 {
		// QoS 0 is at most once: not held; sent once the node was heard
		// again (h.probe), as a message for a clean session is.
		return h.probe == 0
	}
	hs.matches = h.durable.Match(p.Topic, hs.matches[:0])
	if len(hs.matches) == 0 {
		return h.probe == 0 // for sessions that end with their connection
	}
	if len(h.msgs)-h.head >= n.o.HoldMessages || h.bytes+len(*it.buf) > n.o.HoldBytes {
		if h.dropped == 0 {
			n.log.Warn("cluster: hold queue full (--cluster-hold-queue, --cluster-hold-bytes); dropping messages for an absent node until it is back",
				"peer", h.node, "messages", len(h.msgs)-h.head, "bytes", h.bytes)
		}
		h.dropped++
		hs.drops.Add(1)
		return true
	}
	if h.head > 0 && h.head >= len(h.msgs)/2 {
		h.msgs = append(h.msgs[:0], h.msgs[h.head:]...)
		h.seqs = append(h.seqs[:0], h.seqs[h.head:]...)
		h.head = 0
	}
	hs.seq++
	h.msgs = append(h.msgs, append([]byte(nil), *it.buf...))
	h.seqs = append(h.seqs, hs.seq)
	h.bytes += len(*it.buf)
	hs.heldMsgs.Add(1)
	hs.heldBytes.Add(int64(len(*it.buf)))
	hs.heldTotal.Add(1)
	return true
}

// startHoldHere starts a hold found by the sender: the node's subject
// lost its interest (route gone). nil when the node is not known.
func (n *Node) startHoldHere(subject string) *hold {
	id := subject[len(subjectMsg("")):]
	n.peersMu.Lock()
	p := n.peers[id]
	if p == nil {
		n.peersMu.Unlock()
		return nil
	}
	if p.away.IsZero() {
		p.away, p.awayWhy = time.Now(), "route lost"
		n.rebuildLocked()
		n.log.Warn("cluster: no route to node; holding its persistent sessions' messages", "peer", id, "hold", n.o.Hold)
	}
	n.flowGivenUp.Add(uint64(p.flow.fail(false)))
	why, durable := p.awayWhy, p.durable
	n.peersMu.Unlock()
	h := n.newHoldFor(id, subject, why, durable)
	n.hold.holds[subject] = h
	n.hold.absent.Add(1)
	return h
}

// onLeaveAck records a node's answer to Leave (on the message
// subscription, so every message it sent before is routed already).
func (n *Node) onLeaveAck(b []byte) bool {
	if len(b) < 3 || b[0] != wireVersion || b[1] != kindLeaveAck || len(b) != 3+int(b[2]) {
		return false
	}
	select {
	case n.hold.acks <- string(b[3:]):
	default:
	}
	return true
}

// Leave tells the other nodes that this one is going (a graceful
// shutdown: SIGTERM), so that they hold for its persistent sessions at
// once, and waits until each node it knows answered, or ctx ends. Every
// message they sent it before answering has been handed to the broker.
// Call it before the broker stops; announcements stop from now on.
func (n *Node) Leave(ctx context.Context) error {
	if !n.started.Load() || n.nc == nil {
		return errors.New("cluster: not started")
	}
	n.peersMu.Lock()
	want := map[string]bool{}
	for id, p := range n.peers {
		if p.away.IsZero() {
			want[id] = true
		}
	}
	n.peersMu.Unlock()
	n.hold.leaving.Store(true)
	n.leaveWills() // the others leave this node's wills to it
	n.publishInterest(true)
	if err := n.nc.FlushTimeout(time.Second); err != nil {
		return err
	}
	for len(want) > 0 {
		select {
		case id := <-n.hold.acks:
			delete(want, id)
		case <-ctx.Done():
			missing := make([]string, 0, len(want))
			for id := range want {
				missing = append(missing, id)
			}
			sort.Strings(missing)
			return errors.New("cluster: leaving: no answer from " + strings.Join(missing, ", "))
		}
	}
	return nil
}

// The hold's metric families (docs/observability.md).
var (
	metricAbsent      = promtext.Gauge("mcutie_cluster_absent_nodes", "Nodes away (leaving, restarting, unreachable) that this node holds messages for (--cluster-hold).")
	metricHeld        = promtext.Gauge("mcutie_cluster_held_messages", "Messages held for absent nodes' persistent sessions.")
	metricHeldBytes   = promtext.Gauge("mcutie_cluster_held_bytes", "Bytes of the messages held for absent nodes.")
	metricHeldTotal   = promtext.Counter("mcutie_cluster_held_messages_total", "Messages held for an absent node.")
	metricReleased    = promtext.Counter("mcutie_cluster_released_messages_total", "Held messages sent to a node that came back (and acknowledged by it, when it acknowledges).")
	metricHeldResent  = promtext.Counter("mcutie_cluster_held_resent_messages_total", "Held messages sent again to a node that came back because it did not acknowledge them in time (the route that carried them went; the node drops copies it already has).")
	metricHoldDropped = promtext.Counter("mcutie_cluster_hold_dropped_messages_total", "Messages for an absent node's persistent sessions dropped: its hold queue was full (--cluster-hold-queue, --cluster-hold-bytes) or it stayed away longer than --cluster-hold.")
)

func (n *Node) writeHoldMetrics(w io.Writer) {
	hs := &n.hold
	metricAbsent.Write(w, uint64(max(hs.absent.Load(), 0)))
	metricHeld.Write(w, uint64(max(hs.heldMsgs.Load(), 0)))
	metricHeldBytes.Write(w, uint64(max(hs.heldBytes.Load(), 0)))
	metricHeldTotal.Write(w, hs.heldTotal.Load())
	metricReleased.Write(w, hs.releasedTotal.Load())
	metricHeldResent.Write(w, hs.resent.Load())
	metricHoldDropped.Write(w, hs.drops.Load())
}

// WaitJoined waits, when the node has seeds, until it has a route and
// knows the interest of every node it has a route to, and with session
// ownership until the owners bucket takes claims (or ctx ends): the
// listeners should open only then, or a publisher's first messages miss
// the other nodes' subscribers and the first CONNECTs are refused with
// 0x88. It re-announces this node meanwhile, so that the others answer
// with their interest at once.
func (n *Node) WaitJoined(ctx context.Context) error {
	if len(n.o.Join) == 0 || n.ns == nil {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.joined() && (!n.o.Ownership || n.kvReady() == nil) {
			return nil
		}
		n.signalDirty()
		select {
		case <-ctx.Done():
			return errors.New("cluster: not joined yet (no route, the other nodes' interest unknown, or the session owners bucket not ready); starting anyway")
		case <-tick.C:
		}
	}
}

// joined: a route is up and every routed node's interest is known.
func (n *Node) joined() bool {
	rz, err := n.ns.Routez(nil)
	if err != nil || len(rz.Routes) == 0 {
		return false
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, r := range rz.Routes {
		if r.RemoteName == "" {
			continue
		}
		if p := n.peers[r.RemoteName]; p == nil || !p.known {
			return false
		}
	}
	return true
}
