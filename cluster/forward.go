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
// unversioned.
const (
	wireVersion      = 3
	wireVersionV2    = 2
	kindLive         = 0
	kindRetainedCopy = 1
	kindShared       = 3 // 2 is kindLeaveAck (hold.go)
)

// Forward implements broker.Peers: it queues m for the nodes with a
// matching filter (every node, for a retained message). Never blocks; a
// full queue drops the message (counted here, and by the broker, to
// which it returns minus the number of nodes missed). It allocates
// nothing: the targets are a bit set over the remote index's peers.
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
	bp := n.bufPool.Get().(*[]byte)
	if sh != nil && len(sh.assign) > 0 {
		*bp = n.encodeShared((*bp)[:0], ix, 0, sh.assign, m)
	} else {
		*bp = n.encode((*bp)[:0], kindLive, m)
	}
	if sh != nil {
		n.sharePool.Put(sh)
	}
	select {
	case n.queue <- outItem{to: to, ix: ix, buf: bp}:
		n.forwarded.Add(1)
		return bits.OnesCount64(to)
	default:
		// Negative: the broker counts a drop (cluster_queue_full) and
		// tells a v5 publisher 0x97, not "no matching subscribers".
		n.bufPool.Put(bp)
		n.dropped.Add(1)
		return -bits.OnesCount64(to)
	}
}

func (n *Node) encode(dst []byte, kind byte, m *broker.PeerMessage) []byte {
	return n.appendPublish(n.appendHead(dst, kind, m), m)
}

// appendHead appends version, kind, expiry and source.
func (n *Node) appendHead(dst []byte, kind byte, m *broker.PeerMessage) []byte {
	dst = append(dst, wireVersion, kind)
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
}

// decodeAny parses a forwarded message of any kind into p (aliasing b).
func decodeAny(b []byte, p *codec.Publish) (h wireHead, err error) {
	if len(b) < 11 || b[0] != wireVersion && b[0] != wireVersionV2 || b[1] != kindLive && b[1] != kindRetainedCopy && b[1] != kindShared {
		return h, errWire
	}
	h.kind = b[1]
	exp := int64(binary.BigEndian.Uint64(b[2:10]))
	sl := int(b[10])
	if len(b) < 11+sl {
		return h, errWire
	}
	ver := b[0]
	h.source, b = b[11:11+sl], b[11+sl:]
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
	for {
		select {
		case it := <-n.queue:
			n.publish(it)
		case ev := <-n.holdEv:
			n.onHoldEvent(ev)
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
	shared := len(*it.buf) > 1 && (*it.buf)[1] == kindShared
	for to := it.to; to != 0; to &= to - 1 {
		i := bits.TrailingZeros64(to)
		subj := it.ix.subjects[i]
		if shared && (n.hold.holds[subj] != nil || !n.reachable(subj)) {
			// Its node is away since the message was queued: the
			// groups assigned to it go to another node with members
			// (those no other node has stay, for the hold).
			n.peerUnreachable(it.ix, uint8(i), *it.buf)
		}
		if (n.hold.absent.Load() != 0 || !n.recentlyReachable(it.ix, i)) && n.held(&it, subj) {
			continue // its node is away (hold.go)
		}
		if err := n.nc.Publish(subj, *it.buf); err != nil {
			n.dropped.Add(1)
			continue
		}
		n.sent.Add(1)
	}
	n.bufPool.Put(it.buf)
}

// onMessage routes a message another node forwarded to this one. NATS
// calls it on one goroutine per subscription, so rxListed is its own.
func (n *Node) onMessage(msg *nats.Msg) {
	if n.onLeaveAck(msg.Data) {
		return
	}
	var p codec.Publish
	h, err := decodeAny(msg.Data, &p)
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
		case h.kind == kindShared && (len(n.rxListed) > 0 || h.flags&sharedGroupsOnly != 0):
			err = n.b.RouteFromPeerShared(h.source, &p, h.expireAt, n.rxListed, h.flags&sharedGroupsOnly != 0)
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
	n.writeRetainedMetrics(w)
	metricShAssign.Write(w, n.sharedAssigned.Load())
	metricShReroute.Write(w, n.sharedRerouted.Load())
	if n.o.Ownership {
		n.writeOwnershipMetrics(w)
	}
}
