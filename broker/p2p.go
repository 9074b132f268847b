package broker

import (
	"bytes"
	"sync/atomic"
)

// Point-to-point messages (Options.P2P, docs/delivery.md): a PUBLISH to
// $p2p/{clientid}/{topic} is delivered as a PUBLISH to {topic} to the
// session of {clientid} alone, whatever it subscribed to: at once when it
// is connected, queued (QoS 1/2, as any message for it) when it is an
// offline persistent session. No other session sees it, none is retained.
//
// Authorization: the publisher needs write access to the topic it sent,
// $p2p/{clientid}/{topic}, which names both the recipient and the topic
// (an ACL pattern such as "$p2p/+/cmd/#" or "$p2p/%c-peer/#" says who may
// message whom); the recipient needs read access to {topic}, as for any
// message delivered to it (deliver).
//
// The recipient's session lives on the loop that owns its client id
// (clientDir): the message is posted there, as to a shared-subscription
// member on another loop, and the publisher's acknowledgement waits for
// that loop's store operations as for any routed message.

// p2pPrefix starts the topic of a point-to-point PUBLISH.
const p2pPrefix = "$p2p/"

// p2pResult labels mcutie_p2p_messages_total.
type p2pResult uint8

const (
	p2pDelivered p2pResult = iota // handed to the recipient's session (sent or queued)
	p2pNoSession                  // no session for the client id: dropped (v5: 0x10)
	p2pInvalid                    // $p2p/ without a client id or a topic: refused (v5: 0x90)
	p2pDenied                     // the publisher may not write the $p2p topic: refused (v5: 0x87)
	numP2PResults
)

var p2pResultLabels = [numP2PResults]string{"delivered", "no_session", "invalid", "denied"}

// p2pCounters counts point-to-point messages; safe for concurrent use
// (the P2P path is not the common publish path, so atomics are fine).
type p2pCounters [numP2PResults]atomic.Uint64

// splitP2P splits $p2p/{clientid}/{topic}; ok is false when the client id
// or the topic is empty, or the topic holds a wildcard (MQTT-3.3.2-2
// forbids them in a topic name, and the codec checked the whole name).
func splitP2P(topic []byte) (cid, rest []byte, ok bool) {
	if !bytes.HasPrefix(topic, []byte(p2pPrefix)) {
		return nil, nil, false
	}
	tail := topic[len(p2pPrefix):]
	i := bytes.IndexByte(tail, '/')
	if i <= 0 || i == len(tail)-1 {
		return nil, nil, false
	}
	return tail[:i], tail[i+1:], true
}

// sendP2P delivers m (its topic already the inner one) to the session of
// client id cid, posting it to the loop that owns cid. It returns the
// number of deliveries made or posted (0 or 1). Loop-only.
func (l *Loop) sendP2P(m *Message, cid []byte) int {
	b := l.b
	owner := l
	if !b.dir.single {
		i, ok := b.dir.owner(b.dir.key(cid))
		if !ok {
			b.p2p[p2pNoSession].Add(1)
			return 0
		}
		owner = b.loops[i]
	}
	if owner == l {
		if !l.deliverP2P(m, string(cid)) {
			return 0
		}
		return 1
	}
	id := string(cid)
	m.retain()
	m.ack.holdRoute()
	ok := owner.post(inboxItem{kind: itemFunc, fn: func() {
		owner.deliverP2P(m, id)
		owner.afterRoute(m)
		owner.releaseAck(m)
		m.release()
	}}, m.QoS > 0)
	if !ok {
		m.ack.unholdRoute()
		l.releaseAck(m)
		m.release()
		l.counters.dropped[dropInboxFull]++
		return 0
	}
	return 1
}

// deliverP2P delivers m to the session of cid if this loop holds one,
// with the message's own QoS (no subscription grants less). Loop-only.
func (l *Loop) deliverP2P(m *Message, cid string) bool {
	s := l.sessions[cid]
	if s == nil {
		l.b.p2p[p2pNoSession].Add(1)
		return false
	}
	l.b.p2p[p2pDelivered].Add(1)
	l.deliverOne(s, m, m.QoS, false, 0)
	return true
}
