package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/nats-io/nats.go"
)

// Retained messages are one set across the cluster, last writer wins per
// topic (broker/retainedsync.go has the versions and tombstones;
// docs/clustering.md says why not a JetStream KV). Live changes reach
// every node as forwarded messages with their version. What a node missed
// (it was down, it joined, a partition dropped messages) is repaired by
// anti-entropy between two nodes:
//
//  1. When node X hears from a node Y it did not know (Y joined, Y was
//     away after PeerTimeout and is heard again, or Y restarted: a new
//     epoch in its heartbeat), or Y's heartbeats have carried a
//     retained-set checksum other than X's for syncAfterDiffer without a
//     break (at most once per syncEvery: live changes in flight make the
//     sums differ for a moment), X sends Y its digest: every
//     topic of its retained set with its version, tombstones included
//     (mcutie.rdigest.<Y>, in chunks of digestChunk bytes).
//  2. Y asks X (mcutie.rpull.<X>) for each topic where X's version is
//     newer than its own, once: a topic already asked for at that
//     version (of X or another node) within pullPending is not asked
//     again.
//  3. X sends each asked-for message, or its tombstone, as a retained
//     copy (mcutie.msg.<Y>, kindRetainedCopy); Y keeps it if it is
//     still newer than what it has by then.
//
// Both nodes do this for each other, so the newer value of each topic
// wins in both directions, and a copy older than a clear (a join racing
// the clear) is refused by the tombstone.
//
// Digest chunk:  version (1) | len(from) (1) | from | entries
// entry:         len(topic) uvarint | topic | stamp (8) | len(node) (1) | node | cleared (1)
// Pull:          version (1) | len(from) (1) | from | (len(topic) uvarint | topic)...
const (
	rsyncVersion    = 1
	digestChunk     = 256 << 10
	pullPending     = 10 * time.Second
	maxPending      = 1 << 20
	syncAfterDiffer = 10 * time.Second
	syncEvery       = time.Minute
)

func subjectDigest(node string) string { return "mcutie.rdigest." + node }
func subjectPull(node string) string   { return "mcutie.rpull." + node }

// retainedSync is a node's side of the anti-entropy (Node.rs).
type retainedSync struct {
	mu      sync.Mutex
	peers   map[string]*rsPeer
	pending map[string]pendingPull // topic → asked for
	names   map[string]string      // interned node ids

	digestsSent, digestsIn, pulled, badIn atomic.Uint64
}

// rsPeer is what the anti-entropy knows of another node.
type rsPeer struct {
	differSince time.Time // its checksum differs from ours since (zero: it does not)
	lastSync    time.Time // our last digest to it
}

type pendingPull struct {
	v     broker.RetainedVersion
	until time.Time
}

var errDigest = errors.New("cluster: malformed retained digest from a peer")

// startRetainedSync subscribes to the digests and pulls for this node.
func (n *Node) startRetainedSync() error {
	rs := &n.rs
	rs.peers, rs.pending, rs.names = map[string]*rsPeer{}, map[string]pendingPull{}, map[string]string{}
	if _, err := n.nc.Subscribe(subjectDigest(n.o.NodeID), n.onDigest); err != nil {
		return err
	}
	_, err := n.nc.Subscribe(subjectPull(n.o.NodeID), n.onPull)
	return err
}

// nodeName interns a node id read from the wire (a few distinct ones).
func (n *Node) nodeName(b []byte) string {
	rs := &n.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s, ok := rs.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(rs.names) < 4096 {
		rs.names[s] = s
	}
	return s
}

// retainedHeard is called for every announcement of another node: it
// starts a digest to it when it is new to this node (isNew: joined, back
// after being away or forgotten, or restarted: another epoch), or its
// retained set has differed from ours for a while.
func (n *Node) retainedHeard(a *announcement, isNew bool) {
	rs := &n.rs
	now := time.Now()
	rs.mu.Lock()
	p := rs.peers[a.Node]
	if p == nil {
		p = &rsPeer{}
		rs.peers[a.Node] = p
		isNew = true
	}
	sync := isNew
	if !isNew {
		switch {
		case a.RetainedSum == n.b.RetainedSyncStats().Sum:
			p.differSince = time.Time{}
		case p.differSince.IsZero():
			p.differSince = now
		}
		sync = !p.differSince.IsZero() && now.Sub(p.differSince) >= syncAfterDiffer && now.Sub(p.lastSync) >= syncEvery
	}
	if sync {
		p.differSince = time.Time{}
		p.lastSync = now
	}
	rs.mu.Unlock()
	if sync {
		n.wg.Add(1)
		go n.sendDigest(a.Node)
	}
}

// retainedBack sends node the digest now: it is back from away and a
// round trip showed that the route carries messages (holdack.go).
func (n *Node) retainedBack(node string) {
	rs := &n.rs
	rs.mu.Lock()
	p := rs.peers[node]
	if p == nil {
		p = &rsPeer{}
		rs.peers[node] = p
	}
	p.differSince, p.lastSync = time.Time{}, time.Now()
	rs.mu.Unlock()
	n.wg.Add(1)
	go n.sendDigest(node)
}

// forgetRetainedPeer drops what the anti-entropy knows of a node that
// went silent, so it syncs again when heard.
func (n *Node) forgetRetainedPeer(id string) {
	n.rs.mu.Lock()
	delete(n.rs.peers, id)
	n.rs.mu.Unlock()
}

// sendDigest sends this node's retained topics and versions to node.
func (n *Node) sendDigest(node string) {
	defer n.wg.Done()
	subj := subjectDigest(node)
	head := append([]byte{rsyncVersion, byte(len(n.o.NodeID))}, n.o.NodeID...)
	buf := append(make([]byte, 0, digestChunk+1024), head...)
	flush := func() {
		if len(buf) > len(head) {
			if err := n.nc.Publish(subj, buf); err != nil {
				n.log.Warn("cluster: cannot send the retained digest", "peer", node, "err", err)
			}
		}
		buf = append(buf[:0], head...)
	}
	entries := 0
	n.b.RangeRetainedVersions(func(e *broker.RetainedEntry) bool {
		select {
		case <-n.stop:
			return false
		default:
		}
		buf = binary.AppendUvarint(buf, uint64(len(e.Topic)))
		buf = append(buf, e.Topic...)
		buf = binary.BigEndian.AppendUint64(buf, e.Version.Stamp)
		buf = append(buf, byte(len(e.Version.Node)))
		buf = append(buf, e.Version.Node...)
		var cleared byte
		if e.Cleared {
			cleared = 1
		}
		buf = append(buf, cleared)
		entries++
		if len(buf) >= digestChunk {
			flush()
		}
		return true
	})
	flush()
	n.rs.digestsSent.Add(1)
	n.log.Info("cluster: retained digest sent", "peer", node, "topics", entries)
}

// readHead reads a digest's or pull's version and sender.
func readHead(b []byte) (from string, rest []byte, err error) {
	if len(b) < 2 || b[0] != rsyncVersion || len(b) < 2+int(b[1]) || b[1] == 0 {
		return "", nil, errDigest
	}
	return string(b[2 : 2+int(b[1])]), b[2+int(b[1]):], nil
}

// onDigest asks the sender for every topic it has newer.
func (n *Node) onDigest(msg *nats.Msg) {
	from, b, err := readHead(msg.Data)
	if err != nil || from == n.o.NodeID || !validNodeID(from) {
		n.rs.badIn.Add(1)
		return
	}
	n.rs.digestsIn.Add(1)
	head := append([]byte{rsyncVersion, byte(len(n.o.NodeID))}, n.o.NodeID...)
	pull := append([]byte(nil), head...)
	send := func() {
		if len(pull) > len(head) {
			if err := n.nc.Publish(subjectPull(from), pull); err != nil {
				n.log.Warn("cluster: cannot ask for retained messages", "peer", from, "err", err)
			}
		}
		pull = append(pull[:0], head...)
	}
	now := time.Now()
	for len(b) > 0 {
		tl, k := binary.Uvarint(b)
		if k <= 0 || tl == 0 || uint64(len(b)-k) < tl+10 {
			n.rs.badIn.Add(1)
			break
		}
		topic := b[k : k+int(tl)]
		b = b[k+int(tl):]
		stamp := binary.BigEndian.Uint64(b)
		nl := int(b[8])
		if len(b) < 9+nl+1 || stamp == 0 {
			n.rs.badIn.Add(1)
			break
		}
		v := broker.RetainedVersion{Stamp: stamp, Node: string(b[9 : 9+nl])}
		b = b[9+nl+1:]
		if !n.b.RetainedNewer(topic, v) || !n.markPending(topic, v, now) {
			continue
		}
		n.rs.pulled.Add(1)
		pull = binary.AppendUvarint(pull, uint64(len(topic)))
		pull = append(pull, topic...)
		if len(pull) >= digestChunk {
			send()
		}
	}
	send()
}

// markPending reports whether topic at v is not asked for already, and
// notes it as asked for.
func (n *Node) markPending(topic []byte, v broker.RetainedVersion, now time.Time) bool {
	rs := &n.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if p, ok := rs.pending[string(topic)]; ok && now.Before(p.until) && !v.After(p.v) {
		return false
	}
	if len(rs.pending) >= maxPending {
		clear(rs.pending) // bounded: at worst a topic is asked for twice
	}
	rs.pending[string(topic)] = pendingPull{v: v, until: now.Add(pullPending)}
	return true
}

// onPull sends the asked-for retained messages and tombstones.
func (n *Node) onPull(msg *nats.Msg) {
	from, b, err := readHead(msg.Data)
	if err != nil || from == n.o.NodeID || !validNodeID(from) {
		n.rs.badIn.Add(1)
		return
	}
	subj := subjectMsg(from)
	var buf []byte
	for len(b) > 0 {
		tl, k := binary.Uvarint(b)
		if k <= 0 || tl == 0 || uint64(len(b)-k) < tl {
			n.rs.badIn.Add(1)
			return
		}
		topic := b[k : k+int(tl)]
		b = b[k+int(tl):]
		n.b.LookupRetained(topic, func(m *broker.PeerMessage) {
			buf = n.encode(buf[:0], kindRetainedCopy, m)
			if err := n.nc.Publish(subj, buf); err != nil {
				n.dropped.Add(1)
			}
		})
	}
}

// The retained set's metric families (docs/observability.md).
var (
	metricRsDigests    = promtext.Counter("mcutie_cluster_retained_digests_received_total", "Digests of another node's retained set compared with this node's (on join, restart, or a checksum that kept differing).")
	metricRsPulled     = promtext.Counter("mcutie_cluster_retained_pulled_total", "Retained messages and clears this node asked another node for because its version was newer there.")
	metricRsTombs      = promtext.Gauge("mcutie_cluster_retained_tombstones", "Clears of retained messages remembered (--cluster-retained-tombstones bounds them, --cluster-retained-tombstone-ttl ages them).")
	metricRsEvicted    = promtext.Counter("mcutie_cluster_retained_tombstones_evicted_total", "Tombstones dropped for --cluster-retained-tombstones before their TTL: an older copy of those topics could come back.")
	metricRsStale      = promtext.Counter("mcutie_cluster_retained_stale_total", "Retained messages and clears from other nodes not kept because this node had a newer one.")
	metricRsMalformedD = promtext.Counter("mcutie_cluster_retained_malformed_total", "Retained digests and requests from other nodes that could not be decoded.")
)

func (n *Node) writeRetainedMetrics(w io.Writer) {
	st := n.b.RetainedSyncStats()
	metricRsDigests.Write(w, n.rs.digestsIn.Load())
	metricRsPulled.Write(w, n.rs.pulled.Load())
	metricRsTombs.Write(w, uint64(st.Tombstones))
	metricRsEvicted.Write(w, st.Evicted)
	metricRsStale.Write(w, st.Stale)
	metricRsMalformedD.Write(w, n.rs.badIn.Load())
}
