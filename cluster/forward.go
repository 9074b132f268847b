package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/mcutie/mcutie/router"
	"github.com/nats-io/nats.go"
)

// Wire format of a forwarded message (mcutie.msg.<node>):
//
//	version (1) | kind (1) | expireAt unix ns (8, 0: none) |
//	len(source) (1) | source |
//	retained version stamp (8, 0: none) | len(node) (1) | node |
//	[kindShared: the shared-subscription assignments (shared.go)] |
//	the message as an MQTT 5 PUBLISH packet (packet id 1 when QoS > 0)
//
// The PUBLISH carries topic, payload, QoS, retain and the forwarded v5
// properties; codec encodes and checks it both ways. kind is kindLive (a
// message published on source) or kindRetainedCopy (source's retained
// message or, with an empty payload, its tombstone, sent to a node that
// asked for it (retained.go): kept if newer than the receiver's,
// delivered to no one) or kindShared (a live message with the shared
// subscriptions each node it goes to serves). The retained version
// (broker.RetainedVersion) orders a topic's retained messages across
// nodes. Version 2 (before retained versions) is still read, as
// unversioned. Version 4 is version 3 with, after kind, the flow's stream
// (8) and the message's sequence number in it (8, 0: not confirmed),
// flow.go; it is sent only for messages counted for flow control, and a
// node that grants no credit (an older version) gets them as version 3.
const (
	wireVersion      = 3
	wireVersionV2    = 2
	wireVersionFlow  = 4
	flowFields       = 16 // stream and seq, in version 4
	kindLive         = 0
	kindRetainedCopy = 1
	kindShared       = 3 // 2 is kindLeaveAck (hold.go)
)

// Forward implements broker.Peers: it queues m for the nodes with a
// matching filter (every node, for a retained message). Never blocks; a
// full queue drops the message (counted here, and by the broker, to
// which it returns minus the number of nodes missed). It allocates
// nothing: the targets are a bit set over the remote index's peers.
// A QoS 1/2 message is counted against the credit each node grants and,
// beyond it, holds the publisher's acknowledgement until that node
// confirms it (flow.go).
func (n *Node) Forward(m *broker.PeerMessage) int {
	if !n.routing.Load() {
		return 0 // not started
	}
	ix := n.remote.Load()
	var to uint64
	if m.Retain {
		to = ix.allMask
	} else {
		mp := n.matchPool.Get().(*[]router.Entry[uint8])
		*mp = ix.shard.Match(m.Topic, (*mp)[:0])
		for _, e := range *mp {
			to |= 1 << e.Key
		}
		*mp = (*mp)[:0]
		n.matchPool.Put(mp)
	}
	var sh *shareScratch
	if len(ix.slots) > 0 {
		sh = n.sharePool.Get().(*shareScratch)
		to |= n.assignShared(ix, m, sh)
	}
	if to == 0 {
		if sh != nil {
			n.sharePool.Put(sh)
		}
		return 0
	}
	var counted, heldBy uint64
	if m.QoS > 0 && !m.Retain {
		for t := to; t != 0; t &= t - 1 {
			i := bits.TrailingZeros64(t)
			c, h := ix.flows[i].count(m.Ack)
			if c {
				counted |= 1 << i
			}
			if h {
				heldBy |= 1 << i
				n.flowHeld.Add(1)
			}
		}
	}
	flow := counted != 0
	bp := n.bufPool.Get().(*[]byte)
	if sh != nil && len(sh.assign) > 0 {
		*bp = n.encodeShared((*bp)[:0], ix, 0, sh.assign, m, flow)
	} else {
		*bp = n.appendPublish(n.appendHead((*bp)[:0], kindLive, m, flow), m)
	}
	if sh != nil {
		n.sharePool.Put(sh)
	}
	select {
	case n.queue <- outItem{to: to, ix: ix, buf: bp, counted: counted, heldBy: heldBy, ack: m.Ack}:
		n.forwarded.Add(1)
		return bits.OnesCount64(to)
	default:
		// Negative: the broker counts a drop (cluster_queue_full) and
		// tells a v5 publisher 0x97, not "no matching subscribers".
		for t := counted; t != 0; t &= t - 1 {
			i := bits.TrailingZeros64(t)
			ix.flows[i].giveUp(m.Ack, heldBy&(1<<i) != 0)
		}
		n.bufPool.Put(bp)
		n.dropped.Add(1)
		return -bits.OnesCount64(to)
	}
}

func (n *Node) encode(dst []byte, kind byte, m *broker.PeerMessage) []byte {
	return n.appendPublish(n.appendHead(dst, kind, m, false), m)
}

// appendHead appends version, kind, expiry and source; with flow, version
// 4 and room for the stream and sequence number, which the sender fills
// in per node (zero here).
func (n *Node) appendHead(dst []byte, kind byte, m *broker.PeerMessage, flow bool) []byte {
	if flow {
		dst = append(dst, wireVersionFlow, kind)
		dst = append(dst, make([]byte, flowFields)...)
	} else {
		dst = append(dst, wireVersion, kind)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.ExpireAt))
	dst = append(dst, byte(len(n.o.NodeID)))
	dst = append(dst, n.o.NodeID...)
	dst = binary.BigEndian.AppendUint64(dst, m.Version.Stamp)
	dst = append(dst, byte(len(m.Version.Node)))
	return append(dst, m.Version.Node...)
}

// appendPublish appends m as an MQTT 5 PUBLISH.
func (n *Node) appendPublish(dst []byte, m *broker.PeerMessage) []byte {
	p := codec.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
	if m.QoS > 0 {
		p.PacketID = 1
	}
	if m.Props != nil {
		p.Props = *m.Props
	}
	return p.Append(dst, codec.V5)
}

var errWire = errors.New("cluster: malformed message from a peer")

// decode parses a forwarded message of kind kindLive or kindRetainedCopy
// into p (aliasing b).
func decode(b []byte, p *codec.Publish) (kind byte, source []byte, expireAt time.Time, stamp uint64, vnode []byte, err error) {
	if len(b) >= 2 && b[1] == kindShared {
		return 0, nil, time.Time{}, 0, nil, errWire
	}
	h, err := decodeAny(b, p)
	return h.kind, h.source, h.expireAt, h.stamp, h.vnode, err
}

// wireHead is what precedes the PUBLISH of a forwarded message.
type wireHead struct {
	kind     byte
	source   []byte
	expireAt time.Time
	// stamp and vnode: a retained message's version (0, nil: none).
	stamp uint64
	vnode []byte
	// kindShared: the assignments (shared.go), their number and flags.
	flags  byte
	groups []byte
	count  int
	// stream and seq: version 4, a message to confirm (flow.go; seq 0:
	// none).
	stream, seq uint64
}

// decodeAny parses a forwarded message of any kind into p (aliasing b).
func decodeAny(b []byte, p *codec.Publish) (h wireHead, err error) {
	if len(b) < 2 {
		return h, errWire
	}
	ver, kind, rest := b[0], b[1], b[2:]
	switch ver {
	case wireVersionFlow:
		if len(rest) < flowFields {
			return h, errWire
		}
		h.stream = binary.BigEndian.Uint64(rest)
		h.seq = binary.BigEndian.Uint64(rest[8:])
		rest = rest[flowFields:]
		ver = wireVersion // the rest is version 3's
	case wireVersion, wireVersionV2:
	default:
		return h, errWire
	}
	if len(rest) < 9 || kind != kindLive && kind != kindRetainedCopy && kind != kindShared {
		return h, errWire
	}
	h.kind = kind
	exp := int64(binary.BigEndian.Uint64(rest[0:8]))
	sl := int(rest[8])
	if len(rest) < 9+sl {
		return h, errWire
	}
	h.source, b = rest[9:9+sl], rest[9+sl:]
	if ver == wireVersion {
		if len(b) < 9 || len(b) < 9+int(b[8]) {
			return h, errWire
		}
		h.stamp = binary.BigEndian.Uint64(b)
		h.vnode, b = b[9:9+int(b[8])], b[9+int(b[8]):]
	}
	if h.kind == kindShared {
		if h.flags, h.groups, h.count, b, err = decodeShared(b); err != nil {
			return h, err
		}
	}
	f, err := codec.Frame(b, codec.MaxPacketSize)
	if err != nil || f.HeaderLen+f.Remaining != len(b) {
		return h, errWire
	}
	if err := p.Decode(f, b[f.HeaderLen:], codec.V5); err != nil {
		return h, err
	}
	if h.kind == kindRetainedCopy && (!p.Retain || len(p.Payload) == 0 && h.stamp == 0) {
		return h, errWire
	}
	if exp != 0 {
		h.expireAt = time.Unix(0, exp)
	}
	return h, nil
}

// send publishes the queue in order; it exits once Stop was called and
// the queue is empty.
func (n *Node) send() {
	defer n.wg.Done()
	tick := time.NewTicker(n.o.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case it := <-n.queue:
			n.publish(it)
		case ev := <-n.holdEv:
			n.onHoldEvent(ev)
		case <-tick.C:
			n.holdTick()
		case <-n.stop:
			for {
				select {
				case it := <-n.queue:
					n.publish(it)
				default:
					_ = n.nc.FlushTimeout(time.Second)
					return
				}
			}
		}
	}
}

func (n *Node) publish(it outItem) {
	buf := *it.buf
	shared := len(buf) > 1 && buf[1] == kindShared
	flow := len(buf) > 1 && buf[0] == wireVersionFlow
	for to := it.to; to != 0; to &= to - 1 {
		i := bits.TrailingZeros64(to)
		bit := uint64(1) << i
		subj := it.ix.subjects[i]
		if shared && (n.hold.holds[subj] != nil || !n.reachable(subj)) {
			// Its node is away since the message was queued: the
			// groups assigned to it go to another node with members
			// (those no other node has stay, for the hold).
			n.peerUnreachable(it.ix, uint8(i), buf)
		}
		var f *flowOut // nil only for an index without flows (none counted)
		if i < len(it.ix.flows) {
			f = it.ix.flows[i]
		}
		if (n.hold.absent.Load() != 0 || !n.recentlyReachable(it.ix, i)) && n.held(&it, subj) {
			if it.counted&bit != 0 {
				f.giveUp(it.ack, it.heldBy&bit != 0) // the hold takes over
			}
			continue // its node is away (hold.go)
		}
		out := buf
		var seq uint64
		switch {
		case it.counted&bit != 0:
			f.seq++
			seq = f.seq
			binary.BigEndian.PutUint64(buf[2:], f.stream)
			binary.BigEndian.PutUint64(buf[10:], seq)
		case flow && (f == nil || f.credit.Load() == 0):
			// A node that grants no credit may be an older version,
			// which reads version 3 only.
			n.v3 = append(append(n.v3[:0], wireVersion, buf[1]), buf[2+flowFields:]...)
			out = n.v3
		}
		err := n.nc.Publish(subj, out) // copies out
		if seq != 0 {
			clear(buf[2 : 2+flowFields]) // the next node's, or the hold's copy
		}
		if err != nil {
			n.dropped.Add(1)
			if seq != 0 {
				f.giveUp(it.ack, it.heldBy&bit != 0)
			}
			continue
		}
		if seq != 0 {
			f.sent(seq, it.ack, it.heldBy&bit != 0)
		}
		n.sent.Add(1)
	}
	n.bufPool.Put(it.buf)
}

// onMessage routes a message another node forwarded to this one. NATS
// calls it on one goroutine per subscription, so rxListed is its own.
func (n *Node) onMessage(msg *nats.Msg) {
	data := msg.Data
	if n.onLeaveAck(data) {
		return
	}
	if inner, ok := n.onHeldControl(data); ok {
		if inner == nil {
			return
		}
		data = inner // a held message, not delivered yet (holdack.go)
	}
	var p codec.Publish
	h, err := decodeAny(data, &p)
	if err != nil {
		n.badIn.Add(1)
		n.log.Warn("cluster: dropped a malformed message from a peer", "err", err)
		return
	}
	p.PacketID = 0
	if h.kind == kindRetainedCopy {
		n.retainedCopies.Add(1)
	} else {
		n.received.Add(1)
	}
	if h.kind == kindShared {
		n.rxListed = listedFor(n.rxListed[:0], h.groups, n.o.NodeID)
	}
	var fi *flowIn // the sending node waits for this message (flow.go)
	if h.seq != 0 {
		fi = n.flowInFor(h.source, h.stream)
		fi.add(h.seq)
	}
	var v broker.RetainedVersion
	if h.stamp != 0 {
		v = broker.RetainedVersion{Stamp: h.stamp, Node: n.nodeName(h.vnode)}
	}
	for {
		switch {
		case h.kind == kindRetainedCopy:
			err = n.b.ApplyRetainedFromPeer(&p, h.expireAt, v)
		case p.Retain && h.kind == kindLive:
			err = n.b.RouteRetainedFromPeer(h.source, &p, h.expireAt, v)
		case h.kind == kindShared && (len(n.rxListed) > 0 || h.flags&sharedGroupsOnly != 0) && fi != nil:
			err = n.b.RouteFromPeerSharedConfirmed(h.source, &p, h.expireAt, n.rxListed, h.flags&sharedGroupsOnly != 0, fi, h.seq)
		case h.kind == kindShared && (len(n.rxListed) > 0 || h.flags&sharedGroupsOnly != 0):
			err = n.b.RouteFromPeerShared(h.source, &p, h.expireAt, n.rxListed, h.flags&sharedGroupsOnly != 0)
		case fi != nil:
			err = n.b.RouteFromPeerConfirmed(h.source, &p, h.expireAt, fi, h.seq)
		default:
			err = n.b.RouteFromPeer(h.source, &p, h.expireAt)
		}
		if !errors.Is(err, broker.ErrInboxFull) {
			break
		}
		// The loop is behind: wait rather than drop (NATS buffers what
		// arrives meanwhile, up to its slow-consumer limit).
		time.Sleep(time.Millisecond)
	}
	if err != nil && fi != nil {
		fi.PeerRouted(h.seq) // not routed, and never will be: do not stall the rest
	}
	if err != nil && !errors.Is(err, broker.ErrClosed) {
		n.badIn.Add(1)
		n.log.Warn("cluster: cannot route a message from a peer", "err", err)
	}
}

// The cluster's metric families (docs/observability.md).
var (
	metricNodes     = promtext.Gauge("mcutie_cluster_nodes", "Nodes of the cluster this node knows of, itself included.")
	metricRoutes    = promtext.Gauge("mcutie_cluster_routes", "NATS routes up between this node and the others (several per node: NATS pools them).")
	metricForwarded = promtext.Counter("mcutie_cluster_forwarded_messages_total", "Messages published here that were queued for at least one other node.")
	metricSent      = promtext.Counter("mcutie_cluster_sent_messages_total", "Messages sent to other nodes, one per receiving node.")
	metricReceived  = promtext.Counter("mcutie_cluster_received_messages_total", "Messages other nodes forwarded to this one.")
	metricDropped   = promtext.Counter("mcutie_cluster_dropped_messages_total", "Messages for other nodes dropped: the send queue (--cluster-queue) was full or the send failed.")
	metricMalformed = promtext.Counter("mcutie_cluster_malformed_messages_total", "Messages or announcements from other nodes that could not be decoded or routed.")
	metricQueued    = promtext.Gauge("mcutie_cluster_queued_messages", "Messages waiting to be sent to other nodes.")
	metricRetCopies = promtext.Counter("mcutie_cluster_retained_copies_received_total", "Retained messages and clears other nodes sent this one because it asked for them (anti-entropy: kept when newer than this node's).")
	metricTakenOver = promtext.Counter("mcutie_cluster_sessions_taken_over_total", "Sessions ended here because their client connected to another node.")
	metricShAssign  = promtext.Counter("mcutie_cluster_shared_assigned_total", "Deliveries to shared subscriptions of messages published here that were assigned to another node (one per message and group).")
	metricShReroute = promtext.Counter("mcutie_cluster_shared_rerouted_total", "Messages of a shared subscription given to another node (or delivered here) because the node assigned could not serve it: no member there, none online, or the node became unreachable.")
	metricClaimLost = promtext.Counter("mcutie_cluster_claims_dropped_total", "Announcements of a client connected here that could not be sent (queue full or send failed): another node may keep that client's old connection.")
)

// WriteMetrics writes the cluster's metrics in Prometheus text format.
func (n *Node) WriteMetrics(w io.Writer) {
	metricNodes.Write(w, uint64(len(n.Peers())+1))
	metricRoutes.Write(w, uint64(n.Routes()))
	metricForwarded.Write(w, n.forwarded.Load())
	metricSent.Write(w, n.sent.Load())
	metricReceived.Write(w, n.received.Load())
	metricDropped.Write(w, n.dropped.Load())
	metricMalformed.Write(w, n.badIn.Load())
	metricQueued.Write(w, uint64(len(n.queue)))
	metricRetCopies.Write(w, n.retainedCopies.Load())
	metricTakenOver.Write(w, n.takenOver.Load())
	metricClaimLost.Write(w, n.claimsDropped.Load())
	n.writeHoldMetrics(w)
	n.writeFlowMetrics(w)
	n.writeRetainedMetrics(w)
	metricShAssign.Write(w, n.sharedAssigned.Load())
	metricShReroute.Write(w, n.sharedRerouted.Load())
	if n.o.Ownership {
		n.writeOwnershipMetrics(w)
	}
	if n.wills.on {
		n.writeWillMetrics(w)
	}
}
