package cluster

import (
	"encoding/binary"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/nats-io/nats.go"
)

// Back-pressure across nodes (docs/clustering.md, "Back-pressure across
// nodes"): credit-based forwarding of QoS 1/2 messages.
//
// Each node grants every other node a credit (Options.Credit,
// --cluster-credit, announced with its interest): how many of the other
// node's QoS 1/2 messages may be on their way to it, or routed there and
// waiting for a subscriber far behind, before the other node holds its
// publishers' acknowledgements. The sending node (flowOut, one per
// receiving node) counts such messages from Forward on; beyond the credit
// Forward holds the publisher's PUBACK/PUBREC (broker.PeerAck) until the
// receiving node confirms the message. The receiving node (flowIn, one per
// sending node) routes each of them with an acknowledgement of its own
// (broker.RouteFromPeerConfirmed), held as a local publisher's is, by
// subscribers far behind included, and confirms in order, cumulatively,
// on mcutie.confirm.<sender>, at most every confirmDelay.
//
// So a publisher on A flooding a subscriber on B that is far behind is
// slowed exactly as on one node, its window (Receive Maximum) plus the
// credit past the point where B defers: B's session queue is not overrun
// and no acknowledged message is dropped there. QoS 0 is not counted:
// under overload it is dropped as before.
//
// A node that goes away (hold.go) or is forgotten confirms nothing more:
// its flowOut is failed, every acknowledgement it held released (the hold
// takes over the messages that were not sent yet; those already sent are
// lost as before, at most once per hop).

// DefaultCredit is Options.Credit's default.
const DefaultCredit = 1024

// confirmDelay batches confirmations: a node sends at most one per
// sending node this often, so paced traffic (acknowledged at once while
// within the credit) costs one confirmation per confirmDelay rather than
// one per message.
const confirmDelay = 2 * time.Millisecond

func subjectConfirm(node string) string { return "mcutie.confirm." + node }

// flowOut is what this node sent one other node that waits for its
// confirmation.
//
// Concurrency: credit and inflight are atomic (loops in Forward, the
// sender, NATS's goroutine for confirmations); seq is the sender
// goroutine's; pend, head and dead are under mu.
type flowOut struct {
	// stream names this flow in the messages and the confirmations: a
	// confirmation meant for an earlier flow to the same node (before
	// it was forgotten, or before this node restarted) matches nothing.
	stream uint64
	// credit is what the node grants (0: it confirms nothing: an older
	// version, or --cluster-credit 0 there).
	credit atomic.Int64
	// always holds every acknowledgement until confirmed, within the
	// credit too (Options.ConfirmAcks).
	always bool
	// inflight counts the messages counted by Forward and neither
	// confirmed nor given up yet.
	inflight atomic.Int64
	seq      uint64

	mu   sync.Mutex
	pend []pendingOut // sent and waiting for confirmation, by seq
	head int
	dead bool // failed: nothing is confirmed any more
}

type pendingOut struct {
	seq uint64
	ack broker.PeerAck
}

var streamSeq atomic.Uint64

// newFlowOut is the flow to one node; always: every acknowledgement
// waits for its confirmation (Options.ConfirmAcks).
func newFlowOut(always bool) *flowOut {
	return &flowOut{stream: uint64(time.Now().UnixNano()) + streamSeq.Add(1), always: always}
}

// count decides for one message to f's node in Forward: counted (it
// goes with a sequence number and is confirmed) and whether the
// publisher's acknowledgement is held for it. Beyond the credit a message
// no publisher waits for is not counted: what is tracked stays bounded
// by the publishers' windows.
func (f *flowOut) count(ack broker.PeerAck) (counted, held bool) {
	c := f.credit.Load()
	if c <= 0 {
		return false, false
	}
	if f.inflight.Add(1) <= c && (!f.always || !ack.Valid()) {
		return true, false
	}
	if !ack.Valid() {
		f.inflight.Add(-1)
		return false, false
	}
	ack.Hold()
	return true, true
}

// giveUp undoes count for a message that was not sent (queue full, held
// for an absent node, a failed send).
func (f *flowOut) giveUp(ack broker.PeerAck, held bool) {
	f.inflight.Add(-1)
	if held {
		ack.Release()
	}
}

// sent records a counted message sent with seq. Sender goroutine.
func (f *flowOut) sent(seq uint64, ack broker.PeerAck, held bool) {
	if !held {
		ack = broker.PeerAck{}
	}
	f.mu.Lock()
	if f.dead {
		f.mu.Unlock()
		f.giveUp(ack, held)
		return
	}
	if f.head > 0 && f.head >= len(f.pend)/2 {
		n := copy(f.pend, f.pend[f.head:])
		clear(f.pend[n:])
		f.pend, f.head = f.pend[:n], 0
	}
	f.pend = append(f.pend, pendingOut{seq: seq, ack: ack})
	f.mu.Unlock()
}

// confirm releases what the node confirmed: every message up to seq.
func (f *flowOut) confirm(seq uint64) {
	var acks [64]broker.PeerAck
	for {
		f.mu.Lock()
		k, n := 0, 0
		for f.head < len(f.pend) && f.pend[f.head].seq <= seq && k < len(acks) {
			if a := f.pend[f.head].ack; a.Valid() {
				acks[k] = a
				k++
			}
			f.pend[f.head] = pendingOut{}
			f.head++
			n++
		}
		more := f.head < len(f.pend) && f.pend[f.head].seq <= seq
		f.mu.Unlock()
		f.inflight.Add(-int64(n))
		for i := range k {
			acks[i].Release()
			acks[i] = broker.PeerAck{}
		}
		if !more {
			return
		}
	}
}

// fail gives up on every message waiting for a confirmation (the node is
// away or forgotten); dead: for good (messages sent later are given up
// at once). It returns how many were waiting.
func (f *flowOut) fail(dead bool) int {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	p := f.pend[f.head:]
	f.pend, f.head = nil, 0
	f.dead = f.dead || dead
	f.mu.Unlock()
	f.inflight.Add(-int64(len(p)))
	for _, e := range p {
		e.ack.Release()
	}
	return len(p)
}

// flowIn is what one other node sent this one that it waits for this
// node to confirm. It implements broker.PeerRouted.
//
// Concurrency: the fields under mu; PeerRouted runs on loops and store
// goroutines, add on NATS's goroutine for this node's messages.
type flowIn struct {
	n      *Node
	node   string
	stream uint64

	mu        sync.Mutex
	seqs      []uint64 // received, from head, in order
	done      []bool
	head      int
	confirmed uint64 // every message up to it is routed
	told      uint64 // the last confirmation sent
	dead      bool   // replaced by a newer stream of the node
}

// add records a message received with seq (before it is routed).
func (fi *flowIn) add(seq uint64) {
	fi.mu.Lock()
	if fi.head > 0 && fi.head >= len(fi.seqs)/2 {
		n := copy(fi.seqs, fi.seqs[fi.head:])
		copy(fi.done, fi.done[fi.head:])
		fi.seqs, fi.done, fi.head = fi.seqs[:n], fi.done[:n], 0
	}
	fi.seqs = append(fi.seqs, seq)
	fi.done = append(fi.done, false)
	fi.mu.Unlock()
}

// PeerRouted implements broker.PeerRouted: the message seq is routed;
// the confirmation moves on past every message routed in a row.
func (fi *flowIn) PeerRouted(seq uint64) {
	fi.mu.Lock()
	live := fi.seqs[fi.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] >= seq })
	if i == len(live) || live[i] != seq {
		fi.mu.Unlock()
		return
	}
	fi.done[fi.head+i] = true
	moved := false
	for fi.head < len(fi.seqs) && fi.done[fi.head] {
		fi.confirmed = fi.seqs[fi.head]
		fi.head++
		moved = true
	}
	dead := fi.dead
	fi.mu.Unlock()
	if moved && !dead {
		select {
		case fi.n.confirmWake <- struct{}{}:
		default:
		}
	}
}

// flowInFor is the flowIn of node's stream (a new stream replaces the
// node's earlier one). NATS's goroutine for this node's messages.
func (n *Node) flowInFor(node []byte, stream uint64) *flowIn {
	n.flowInMu.Lock()
	defer n.flowInMu.Unlock()
	fi := n.flowIns[string(node)]
	if fi != nil && fi.stream == stream {
		return fi
	}
	if fi != nil {
		fi.mu.Lock()
		fi.dead = true
		fi.mu.Unlock()
	}
	fi = &flowIn{n: n, node: string(node), stream: stream}
	n.flowIns[fi.node] = fi
	return fi
}

// confirmLoop sends the confirmations, at most one per sending node every
// confirmDelay.
func (n *Node) confirmLoop() {
	defer n.wg.Done()
	var buf []byte
	var due []*flowIn
	for {
		select {
		case <-n.stop:
			return
		case <-n.confirmWake:
		}
		due = due[:0]
		n.flowInMu.Lock()
		for _, fi := range n.flowIns {
			due = append(due, fi)
		}
		n.flowInMu.Unlock()
		for _, fi := range due {
			fi.mu.Lock()
			c, send := fi.confirmed, fi.confirmed != fi.told && !fi.dead
			fi.told = c
			fi.mu.Unlock()
			if !send {
				continue
			}
			buf = append(buf[:0], wireVersion, byte(len(n.o.NodeID)))
			buf = append(buf, n.o.NodeID...)
			buf = binary.BigEndian.AppendUint64(buf, fi.stream)
			buf = binary.BigEndian.AppendUint64(buf, c)
			if err := n.nc.Publish(subjectConfirm(fi.node), buf); err != nil {
				continue // the connection is closing; a later one covers it
			}
			n.flowConfirms.Add(1)
		}
		select {
		case <-time.After(confirmDelay):
		case <-n.stop:
			return
		}
	}
}

// onConfirm applies another node's confirmation of this node's messages.
func (n *Node) onConfirm(msg *nats.Msg) {
	b := msg.Data
	if len(b) < 2 || b[0] != wireVersion || len(b) != 2+int(b[1])+16 {
		n.badIn.Add(1)
		return
	}
	node := b[2 : 2+int(b[1])]
	stream := binary.BigEndian.Uint64(b[2+int(b[1]):])
	seq := binary.BigEndian.Uint64(b[10+int(b[1]):])
	n.peersMu.Lock()
	var f *flowOut
	if p := n.peers[string(node)]; p != nil {
		f = p.flow
	}
	n.peersMu.Unlock()
	if f == nil || f.stream != stream {
		return
	}
	f.confirm(seq)
}

// failFlowsLocked gives up on what nodes away confirm (peersMu held): a
// node away confirms nothing, and its publishers must not wait for it
// (the hold takes over, hold.go).
func (n *Node) failFlowsLocked() {
	for _, p := range n.peers {
		if !p.away.IsZero() && p.flow != nil {
			if k := p.flow.fail(false); k > 0 {
				n.flowGivenUp.Add(uint64(k))
			}
		}
	}
}

// unreachableFlowsLocked finds the nodes this node waits for whose route
// is gone (peersMu held; on the heartbeat): they will confirm nothing,
// and publishers whose acknowledgement waits for them may send nothing
// more that would make the sender notice (hold.go's check runs per
// message sent). Such a node is away from now on, held for as the sender
// would (evs gets the event; lost: the index changes); without a hold
// its flow is only failed.
func (n *Node) unreachableFlowsLocked(evs []holdEvent) ([]holdEvent, bool) {
	lost := false
	for id, p := range n.peers {
		if !p.away.IsZero() || p.flow == nil || p.flow.inflight.Load() == 0 || n.reachable(p.subject) {
			continue
		}
		if !n.holdEnabled() {
			n.flowGivenUp.Add(uint64(p.flow.fail(false)))
			continue
		}
		p.away, p.awayWhy = time.Now(), "route lost"
		n.log.Warn("cluster: no route to node; holding its persistent sessions' messages", "peer", id, "hold", n.o.Hold)
		evs = append(evs, holdEvent{kind: evHold, node: id, subject: p.subject, why: p.awayWhy, durable: p.durable})
		lost = true
	}
	return evs, lost
}

var (
	metricFlowHeld     = promtext.Counter("mcutie_cluster_flow_held_total", "Publishers' acknowledgements held until another node confirmed the message: beyond the credit that node grants (--cluster-credit there), back-pressure across nodes.")
	metricFlowInflight = promtext.Gauge("mcutie_cluster_flow_unconfirmed_messages", "QoS 1/2 messages sent (or queued) to other nodes and not confirmed by them yet, every node.")
	metricFlowConfirms = promtext.Counter("mcutie_cluster_flow_confirmations_sent_total", "Confirmations this node sent other nodes (cumulative, at most one per node every 2 ms).")
	metricFlowGivenUp  = promtext.Counter("mcutie_cluster_flow_given_up_total", "Messages whose confirmation was given up because their node went away: the acknowledgements they held were released.")
)

func (n *Node) writeFlowMetrics(w io.Writer) {
	var infl int64
	n.peersMu.Lock()
	for _, p := range n.peers {
		if p.flow != nil {
			infl += p.flow.inflight.Load()
		}
	}
	n.peersMu.Unlock()
	metricFlowHeld.Write(w, n.flowHeld.Load())
	metricFlowInflight.Write(w, uint64(max(infl, 0)))
	metricFlowConfirms.Write(w, n.flowConfirms.Load())
	metricFlowGivenUp.Write(w, n.flowGivenUp.Load())
}

// grantedCredit is the credit this node grants every other node: Credit,
// at most a quarter of the broker's session queue (MaxQueued), so that
// what a node may send past the point where a subscriber here is far
// behind (half of MaxQueued: Loop.deliver) fits in the queue with room for
// the publishers' windows. 0: none (Credit negative).
func (n *Node) grantedCredit() int64 {
	if n.o.Credit < 0 {
		return 0
	}
	c := int64(n.o.Credit)
	if q := int64(n.b.Options().MaxQueued / 4); q < c {
		c = max(q, 1)
	}
	return c
}
