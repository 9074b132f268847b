package broker

import (
	"encoding/binary"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
)

// Shared subscriptions across the nodes of a cluster (docs/clustering.md,
// "Shared subscriptions"): for each message, each shared subscription
// (group, filter) that matches it is served by exactly one node, chosen by
// the publishing node's Peers.Forward. The broker's part:
//
//   - on the publishing node, Forward appends to PeerMessage.Elsewhere the
//     groups it assigned to other nodes, and this node picks members for
//     the others only (a group no other node has is always served here);
//   - on a receiving node (RouteFromPeerShared), only the groups the
//     message lists are served here, every other one by another node;
//   - a node that must serve a group but has no member of it left, or
//     none online, asks SharedPeers.Reroute to send the message on to
//     another node for that group alone (once: a message sent on is
//     served where it lands, queued for an offline member if need be).
//
// A key list (Elsewhere, the groups of RouteFromPeerShared) is a sequence
// of AppendSharedKey entries: uvarint len(group), group, uvarint
// len(filter), filter.

// SharedPeers is implemented by Peers that balance shared subscriptions
// across the nodes of a cluster (package cluster). Without it a node
// serves every group that matches, as a single node does.
//
// Reroute is called on a loop for a message this node must deliver to
// shared subscription (group, filter) but cannot: no member of it here
// any more, or none online. It sends m on to another node with members,
// for that group only, and reports whether it did; false, and the broker
// delivers as a single node would (to the offline member whose turn it
// is, or to no one). It must not block and must copy what it keeps.
type SharedPeers interface {
	Reroute(m *PeerMessage, group, filter string) bool
}

// AppendSharedKey appends the key of shared subscription
// $share/{group}/{filter} to a key list.
func AppendSharedKey[S ~string | ~[]byte](dst []byte, group, filter S) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(group)))
	dst = append(dst, group...)
	dst = binary.AppendUvarint(dst, uint64(len(filter)))
	return append(dst, filter...)
}

// NextSharedKey splits the first key off a key list; ok is false at the
// end of the list or when it is malformed.
func NextSharedKey(list []byte) (group, filter, rest []byte, ok bool) {
	group, list, ok = nextLenPrefixed(list)
	if !ok {
		return nil, nil, nil, false
	}
	filter, list, ok = nextLenPrefixed(list)
	return group, filter, list, ok
}

func nextLenPrefixed(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// sharedListed reports whether list holds (group, filter).
func sharedListed(list []byte, group, filter string) bool {
	for len(list) > 0 {
		g, f, rest, ok := NextSharedKey(list)
		if !ok {
			return false
		}
		if string(g) == group && string(f) == filter {
			return true
		}
		list = rest
	}
	return false
}

// clusterShared is a loop's scratch for shared subscriptions in a
// cluster. Loop-only.
type clusterShared struct {
	groups []router.SharedMatch[*Session]
	// skip: the groups Forward assigned to other nodes for the message
	// being routed (published here).
	skip []byte
	// listed: the groups this node serves for the message from a peer
	// being routed; rerouted: that message was sent on by a node that
	// could not serve them, so it is not sent on again.
	listed   []byte
	rerouted bool
}

// routeSharedCluster delivers m to one member of each matching shared
// subscription this node serves for it (above). Loop-only.
func (l *Loop) routeSharedCluster(m *Message) int {
	b := l.b
	cs := &l.cl
	cs.groups = b.shared.MatchGroups(m.Topic, cs.groups[:0])
	sp, _ := b.opts.Peers.(SharedPeers)
	n := 0
	for _, g := range cs.groups {
		if m.fromPeer {
			if !sharedListed(cs.listed, g.Group(), g.Filter()) {
				continue // another node serves it
			}
		} else if sharedListed(cs.skip, g.Group(), g.Filter()) {
			continue
		}
		e, ok := g.Pick(sessionAvailable)
		if !ok {
			continue
		}
		n++
		if !e.Key.available.Load() && sp != nil && !cs.rerouted && l.reroute(sp, m, g.Group(), g.Filter()) {
			continue // no member online here: one on another node takes it
		}
		l.deliverShared(e, m)
	}
	if m.fromPeer && sp != nil && !cs.rerouted {
		// Groups assigned here whose last member left since the
		// publishing node last heard from this one: sent on.
		for list := cs.listed; len(list) > 0; {
			g, f, rest, ok := NextSharedKey(list)
			if !ok {
				break
			}
			list = rest
			if !l.matchedGroup(g, f) && l.reroute(sp, m, string(g), string(f)) {
				n++
			}
		}
	}
	clear(cs.groups)
	cs.groups = cs.groups[:0]
	return n
}

// matchedGroup reports whether (group, filter) is among the groups the
// message being routed matched here.
func (l *Loop) matchedGroup(group, filter []byte) bool {
	for _, g := range l.cl.groups {
		if g.Group() == string(group) && g.Filter() == string(filter) {
			return true
		}
	}
	return false
}

// reroute hands m to SharedPeers.Reroute for one group. Loop-only.
func (l *Loop) reroute(sp SharedPeers, m *Message, group, filter string) bool {
	pm := &l.peerMsg
	*pm = PeerMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Props: m.Props, ExpireAt: m.ExpireAt}
	ok := sp.Reroute(pm, group, filter)
	*pm = PeerMessage{}
	return ok
}

// deliverShared delivers m to e, the member chosen for one shared
// subscription, on its loop. Loop-only.
func (l *Loop) deliverShared(e router.Entry[*Session], m *Message) {
	if e.Key.l == l {
		// [MQTT-3.3.1-12/-13] as for a member on another loop (drain).
		l.deliverOne(e.Key, m, e.Opts.QoS, e.Opts.RetainAsPublished && m.Retain, e.Opts.ID)
		return
	}
	m.retain()
	m.ack.holdRoute()
	if !e.Key.l.post(inboxItem{kind: itemDirect, msg: m, target: e.Key, opts: e.Opts}, m.QoS > 0 && e.Opts.QoS > 0) {
		m.ack.unholdRoute()
		l.releaseAck(m)
		m.release()
		l.counters.dropped[dropInboxFull]++
	}
}

// RouteFromPeerShared is RouteFromPeer for a message another node
// assigned shared subscriptions to: groups (a key list, AppendSharedKey)
// are the ones this node serves for it; it serves no other. With
// groupsOnly the message was sent on by a node that could not serve them:
// it is delivered to those groups only (the non-shared subscribers here
// had it from its publishing node), neither retained again nor sent on
// again. Safe for concurrent use; it copies p and groups before it
// returns.
func (b *Broker) RouteFromPeerShared(key []byte, p *codec.Publish, expireAt time.Time, groups []byte, groupsOnly bool) error {
	return b.routeFromPeerAck(key, p, expireAt, append([]byte(nil), groups...), groupsOnly, nil)
}

// routeFromPeerAck posts a message from a peer to the loop of key; listed
// are the shared subscriptions this node serves for it (owned by the
// call); aw is the acknowledgement of a message whose node waits for it
// to be routed (nil: none; peerack.go).
func (b *Broker) routeFromPeerAck(key []byte, p *codec.Publish, expireAt time.Time, listed []byte, groupsOnly bool, aw *ackWait) error {
	l, m, err := b.peerMessage(key, p, expireAt)
	if err != nil {
		return err
	}
	m.ack = aw
	m.pinned = m.Retain && !groupsOnly
	if !l.post(inboxItem{kind: itemFunc, fn: func() {
		l.cl.listed, l.cl.rerouted = listed, groupsOnly
		if groupsOnly {
			if !b.shared.Empty() {
				l.routeSharedCluster(m)
			}
		} else {
			l.publish(m, nil)
		}
		l.cl.listed, l.cl.rerouted = nil, false
		m.release()
		if aw != nil {
			aw.releaseOn(l, nil) // the routing pass's hold
		}
	}}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}
