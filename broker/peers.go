package broker

import (
	"context"
	"errors"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// Peers is the rest of a cluster as the broker sees it (package cluster
// implements it; a single node has none and pays one nil check per
// PUBLISH and per subscription change).
//
// Forward is called on the publishing loop for every message the broker
// routes that did not itself come from a peer (RouteFromPeer), $SYS
// topics aside. It must not block, and must copy what it keeps: m and
// what it points to are the broker's and change once Forward returns. It
// returns how many nodes the message was sent to (counted as deliveries,
// so a message only remote subscribers match is not counted as dropped),
// or, negative, minus how many nodes it matched but could not be queued
// for (counted as dropped, cluster_queue_full, and a v5 QoS 1/2
// publisher is told 0x97 Quota exceeded, as for a full session queue).
//
// Interest is called, on any goroutine (loops, Restore), when a
// subscription is added (delta +1) or removed (-1) from a session; filter
// is as subscribed ($share/{group}/ included). Interest must not block.
//
// Connected is called on the loop when a client's CONNECT was accepted,
// so that the other nodes end that client id's connection and session
// there (TakenOverElsewhere): one client id is connected once in the
// cluster. It must not block.
//
// ClusterStats reports the cluster for Broker.Stats; safe for concurrent
// use.
type Peers interface {
	Forward(m *PeerMessage) int
	Interest(filter string, delta int)
	Connected(clientID string)
	ClusterStats() ClusterStats
}

// ClusterStats is the cluster as one node sees it (Stats.Cluster).
type ClusterStats struct {
	// Nodes are this node and every node it hears from, by id.
	Nodes []ClusterNode
	// Routes are the links up between this node and the others.
	Routes int
	// Forwarded, Received: messages sent to and received from other
	// nodes; Dropped: messages for other nodes dropped.
	Forwarded, Received, Dropped uint64
}

// ClusterNode is one node in ClusterStats.
type ClusterNode struct {
	ID   string
	Self bool
	// LastSeen is when this node last heard from it (now for Self).
	LastSeen time.Time
	// Filters is how many filters it announced its sessions hold.
	Filters int
}

// PeerMessage is a message on its way to the other nodes of a cluster.
type PeerMessage struct {
	Topic, Payload []byte
	QoS            byte
	Retain         bool
	// Props are the v5 properties forwarded with the message (nil:
	// none); ExpireAt is its expiry in unix nanoseconds (0: never).
	Props    *codec.Properties
	ExpireAt int64
	// Elsewhere is where Forward appends (AppendSharedKey) the shared
	// subscriptions it assigned to other nodes for this message: this
	// node delivers to none of their members (peershared.go). It comes
	// empty with room to reuse; Forward must not keep it.
	Elsewhere []byte
	// Version is a retained message's (or clear's) version
	// (retainedsync.go); zero otherwise.
	Version RetainedVersion
	// Ack is the publisher's acknowledgement, which Forward may hold
	// until the receiving nodes have routed the message (flow control
	// across nodes, peerack.go); zero when no client waits for one.
	Ack PeerAck
}

// forwardToPeers hands m to Options.Peers unless it came from a peer or
// is the broker's own $SYS. Loop-only.
func (l *Loop) forwardToPeers(m *Message) int {
	l.cl.skip = l.cl.skip[:0]
	if m.fromPeer || l.b.isSys(m.Topic) {
		return 0
	}
	pm := &l.peerMsg
	*pm = PeerMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Props: m.Props, ExpireAt: m.ExpireAt, Elsewhere: l.cl.skip, Ack: PeerAck{m.ack}}
	if m.Retain {
		pm.Version = l.retainedVer
	}
	n := l.b.opts.Peers.Forward(pm)
	l.cl.skip = pm.Elsewhere
	*pm = PeerMessage{}
	return n
}

// ErrPeerMessage is returned by RouteFromPeer for a message that cannot
// be routed (bad topic or QoS).
var ErrPeerMessage = errors.New("broker: invalid message from a peer")

// RouteFromPeer routes a message that a client published on another node
// of the cluster: delivered to this node's subscribers and, when
// retained, stored, as if published here, but never forwarded again and
// not passed to the Publish hooks (they ran on the node it was published
// on). Messages with the same key are routed in the order of the calls
// (key: the publishing node and client, so one publisher's order holds).
// With SharedPeers it is delivered to no shared subscription here (the
// publishing node assigned them: RouteFromPeerShared).
// Safe for concurrent use; it copies p before it returns.
func (b *Broker) RouteFromPeer(key []byte, p *codec.Publish, expireAt time.Time) error {
	l, m, err := b.peerMessage(key, p, expireAt)
	if err != nil {
		return err
	}
	// itemPublish, not a closure: no allocation per message (the loop
	// skips the Publish hooks for fromPeer).
	if !l.post(inboxItem{kind: itemPublish, msg: m}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// peerMessage checks a message from a peer and copies it for the loop of
// key: fromPeer, pinned when retained, with its expiry. The caller posts
// it (and releases it when the post fails).
func (b *Broker) peerMessage(key []byte, p *codec.Publish, expireAt time.Time) (*Loop, *Message, error) {
	if b.closed.Load() {
		return nil, nil, ErrClosed
	}
	if p.QoS > 2 || codec.ValidateTopicName(p.Topic) != nil {
		return nil, nil, ErrPeerMessage
	}
	m := newMessage(p, nil, b.readClock())
	m.fromPeer = true
	m.pinned = m.Retain
	if !expireAt.IsZero() {
		m.ExpireAt = expireAt.UnixNano()
	}
	return b.loops[b.homeLoop(key)], m, nil
}

// peerInterest tells Options.Peers about a subscription added or removed.
func (b *Broker) peerInterest(filter string, delta int) {
	if b.opts.Peers != nil {
		b.opts.Peers.Interest(filter, delta)
	}
}

// WaitIdle returns once every loop has run what was posted to it before
// the call (a barrier: RouteFromPeer's messages posted earlier are routed
// by then), or when ctx ends.
func (b *Broker) WaitIdle(ctx context.Context) error {
	_, err := b.StatsNow(ctx)
	return err
}

// TakenOverElsewhere ends client id's connection and session on this
// node because the client connected to another node of the cluster
// (Peers.Connected there): a v5 client is sent DISCONNECT 0x8E Session
// taken over (MQTT-3.1.4-3) and its will is published as for any close it
// did not ask for; the session ends (its subscriptions and queued
// messages go, the stored session is deleted), since the client carries
// on with the session of the other node. It reports whether the id had a
// session here. Safe for concurrent use; not on a loop.
func (b *Broker) TakenOverElsewhere(ctx context.Context, id, node string) (found bool, err error) {
	hit := make([]bool, len(b.loops))
	err = b.onLoops(ctx, func(l *Loop, i int) {
		s := l.sessions[id]
		if s == nil {
			return
		}
		hit[i] = true
		if c := s.c; c != nil {
			s.expiry = 0 // [MQTT-3.1.2-23]: the session ends with the connection
			l.counters.takeovers++
			c.disconnect(codec.SessionTakenOver, "taken over by a connection on node "+node)
			return
		}
		s.sessionEnding(hooks.SessionTakenOut)
		s.end(false)
	})
	for _, h := range hit {
		found = found || h
	}
	return found, err
}

// RangeRetained calls fn with every retained message ($SYS ones aside)
// until fn returns false: for a node that joins a cluster (a copy of what
// the others retain). fn runs outside the retained index's lock, so it
// may block; m is valid during the call only. Safe for concurrent use.
func (b *Broker) RangeRetained(fn func(m *PeerMessage) bool) {
	// Retained messages are pinned (never pooled): their pointers stay
	// valid once collected, whatever replaces them meanwhile.
	var ms []*Message
	b.retained.Range(func(topic []byte, m *Message) bool {
		if !b.isSys(topic) {
			ms = append(ms, m)
		}
		return true
	})
	var pm PeerMessage
	for _, m := range ms {
		pm = PeerMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: true, Props: m.Props, ExpireAt: m.ExpireAt, Version: b.versionOf(m)}
		if !fn(&pm) {
			return
		}
	}
}

// RetainFromPeer keeps p as the retained message of its topic when this
// node has none: another node's copy, sent when this one joined
// (RangeRetained there). It is not delivered to anyone, and never
// replaces a retained message this node has, which is as new or newer.
// Safe for concurrent use; it copies p before it returns.
func (b *Broker) RetainFromPeer(p *codec.Publish, expireAt time.Time) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if codec.ValidateTopicName(p.Topic) != nil || p.QoS > 2 || len(p.Payload) == 0 {
		return ErrPeerMessage
	}
	if _, ok := b.retained.Get(p.Topic); ok {
		return nil
	}
	l := b.loops[b.homeLoop(p.Topic)]
	m := newMessage(p, nil, b.readClock())
	m.fromPeer, m.Retain, m.pinned = true, true, true
	if !expireAt.IsZero() {
		m.ExpireAt = expireAt.UnixNano()
	}
	if !l.post(inboxItem{kind: itemFunc, fn: func() {
		if _, ok := b.retained.Get(m.Topic); !ok {
			l.setRetained(m)
		}
		m.release()
	}}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}
