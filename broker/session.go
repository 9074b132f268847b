package broker

import (
	"bytes"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
	"github.com/mcutie/mcutie/store"
)

// Session is the state of one client id: subscriptions, outbound QoS 1/2
// messages in flight and queued, inbound QoS 2 ids awaiting PUBREL, and the
// will. It lives on the client id's home loop and is touched only there
// (Loop-only), except available, which other loops read to pick a shared
// subscription member.
type Session struct {
	id string
	l  *Loop
	c  *Client // nil while offline
	// qosState is the QoS 1/2 state, allocated when the session first needs it:
	// most sessions of a big deployment (sensors publishing at QoS 0,
	// idle connections) never do, and every session pays for its struct.
	qosState *sessionQoS

	will   *sessionWill // the will; nil = none
	discAt int64        // unix ns of the last disconnect; while connected, minus when it connected (connectedSince)

	// Exactly once across a crash for QoS 2 messages from this
	// (persistent) session that reach other loops: the subscribers'
	// outbound records and this session's inbound record are written by
	// different loops, so a crash can leave the first without the second;
	// the publisher, which got no PUBREC, then resends. Each such publish
	// gets a broker-wide mark, stored with the outbound records; the
	// inbound records are stored in mark order, each with qos2Mark, the
	// highest mark made durable, in the session record. Restore drops an
	// outbound record whose mark is above its publisher's qos2Mark, and
	// no subscriber is sent the message before its inbound record is
	// durable (qos2Order.open), so the dropped copy was never seen.
	// (sessionQoS.qos2Pending holds the marked publishes in flight.)
	qos2Mark uint64

	// extras is what only some sessions need (subscriptions, identity and ACL
	// cache), allocated on first use.
	extras *sessionExtras

	// Per-route aggregation of overlapping subscriptions (MQTT-3.3.4-2/-3).
	stamp  uint64
	aggIDs [4]uint32

	expiry uint32 // seconds after disconnect; store.ExpiryNever: never

	available atomic.Bool // online and not congested: may take shared-subscription messages

	version codec.Version
	stored  bool // a session record is in the store
	waiting bool // in l.waiting
	agg     aggState
}

// sessionWill is a session's will message and its timing: only sessions
// with a will pay for it.
type sessionWill struct {
	m     *Message
	at    int64  // unix ns when the pending will is due; 0 = not pending
	delay uint32 // Will Delay Interval, seconds
	rep   bool   // handed to the cluster (WillPeers): withdrawn when dropped, fired once cluster-wide
}

// willAt is when the session's pending will is due; 0 = none pending.
func (s *Session) willAt() int64 {
	if s.will == nil {
		return 0
	}
	return s.will.at
}

// sessionExtras is the part of a Session that an idle connection without
// subscriptions (and without an Authorizer) does not need.
type sessionExtras struct {
	subs map[string]router.SubOptions // filter as subscribed (incl. $share/...) → options
	// wildcardLevels sums the levels of the filters in subs that hold a
	// '+' (Options.MaxWildcardLevels).
	wildcardLevels int
	// filterBytes sums the lengths of the filters in subs
	// (Options.MaxSubscriptionBytes).
	filterBytes int

	// owner is who created the session when clients are authenticated
	// (Options.Authenticator): another identity may not resume it.
	owner     string
	ownerKind store.OwnerKind

	// Who the session's connection authenticated as (ACL checks), and the
	// per-topic verdict cache of the Authorizer (acl.go).
	ident      Identity
	identKnown bool
	acl        map[uint64]uint8
	aclGen     uint64
	// admin: the Authorizer is not asked (a server-side subscription
	// that bypasses ACLs, serversub.go).
	admin bool
	// peerDurable: subs are counted as durable interest by Peers
	// (DurablePeers; syncDurable).
	peerDurable bool
}

func (s *Session) extra() *sessionExtras {
	if s.extras == nil {
		s.extras = new(sessionExtras)
	}
	return s.extras
}

// ownedBy reports whether id may resume s: always while the session
// records no owner (no Authenticator when it was made, or a record from
// before owners were kept).
func (s *Session) ownedBy(id Identity) bool {
	if s.extras == nil || s.extras.ownerKind == store.OwnerUnknown {
		return true
	}
	if !id.HasUsername {
		return s.extras.ownerKind == store.OwnerAnonymous
	}
	return s.extras.ownerKind == store.OwnerUser && s.extras.owner == id.Username
}

// setOwner records id as the session's owner.
func (s *Session) setOwner(id Identity) {
	x := s.extra()
	x.owner, x.ownerKind = id.Username, store.OwnerAnonymous
	if id.HasUsername {
		x.ownerKind = store.OwnerUser
	}
}

// subscriptions is the session's filters (nil when none). Read only:
// add through extra().subs.
func (s *Session) subscriptions() map[string]router.SubOptions {
	if s.extras == nil {
		return nil
	}
	return s.extras.subs
}

// aggState aggregates one route's subscriptions of a session in one byte
// (Session fits its 112-byte size class): granted QoS (bits 0-1), Retain As
// Published (bit 2), subscription ids in Session.aggIDs (bits 3-5).
type aggState uint8

const aggOne aggState = 1 << 3 // one more subscription id

func (a aggState) qos() byte { return byte(a & 3) }
func (a aggState) rap() bool { return a&4 != 0 }
func (a aggState) n() int    { return int(a >> 3) }

// with merges a subscription's QoS and Retain As Published.
func (a aggState) with(qos byte, rap bool) aggState {
	if qos > a.qos() {
		a = a&^3 | aggState(qos)
	}
	if rap {
		a |= 4
	}
	return a
}

// sessionQoS is a session's QoS 1/2 state (Session.qosState).
type sessionQoS struct {
	inflight ring[*outMsg] // sent, awaiting PUBACK / PUBREC / PUBCOMP, in send order
	queue    ring[*outMsg] // waiting for the inflight window, in arrival order
	held     int           // inflight PUBLISHes in state outHeld
	pidUsed  *[1024]uint64 // packet ids in flight (bitset, allocated on first QoS ≥ 1 send)
	nextSeq  uint64        // order of QoS 1/2 messages; the packet id derives from it

	deferred []*ackWait // publishers' acks held while this online session is far behind

	inboundQoS2 []uint16   // received QoS 2 ids awaiting PUBREL [MQTT-4.3.3-10]
	qos2Pending []*ackWait // marked publishes whose inbound record is not yet submitted, in mark order (Session.qos2Mark)

	bytes int // topic + payload bytes of the messages in inflight and queue (--max-queued-bytes)
}

// qos returns s's QoS 1/2 state, allocating it on first use.
func (s *Session) qos() *sessionQoS {
	if s.qosState == nil {
		s.qosState = new(sessionQoS)
	}
	return s.qosState
}

// queuedLen is the number of messages waiting for the inflight window.
func (s *Session) queuedLen() int {
	if s.qosState == nil {
		return 0
	}
	return s.qosState.queue.len()
}

// inflightLen is the number of messages sent and not yet acknowledged.
func (s *Session) inflightLen() int {
	if s.qosState == nil {
		return 0
	}
	return s.qosState.inflight.len()
}

type outMsg struct {
	m      *Message
	seq    uint64
	pid    uint16
	qos    byte
	state  byte // outQueued, outSent, outPubrec, outHeld
	retain bool
	ids    [4]uint32
	nids   uint8
	size   int // topic + payload bytes counted in sessionQoS.bytes while m is held
	// storedIn is the loop's Apply that stores a QoS 2 message (0: stored
	// already, or not persistent); a PUBLISH of it waits for that commit.
	storedIn uint64
	// gate, for a QoS 2 message from a persistent publisher, opens when
	// the publisher's inbound record is durable; a PUBLISH of it waits
	// for that (Session.qos2Mark). nil: nothing to wait for.
	gate *qos2Order
	// forwarded: the Forward hooks have made this session's copy (m)
	// already; a resend does not run them again.
	forwarded bool
}

const (
	outQueued byte = iota
	outSent
	outPubrec
	outHeld // sent on an earlier connection, to be resent when the send quota allows
)

func newSession(l *Loop, id string) *Session {
	// A new session has no unconfirmed publishes: every mark given out
	// so far counts as made durable.
	return &Session{id: id, l: l, qos2Mark: l.b.qos2Mark.Load()}
}

// attach binds a connection to the session and resends what is
// unacknowledged: PUBLISH with DUP=1 and PUBREL, in the original order and
// with the original packet ids [MQTT-4.4.0-1], then queued messages.
func (s *Session) attach(c *Client) {
	s.c = c
	s.l.b.online.Add(1)
	c.s = s
	s.discAt = -s.l.now // negated while connected: when it connected (admin.go)
	s.available.Store(true)
	if q := s.qosState; q != nil {
		q.held = 0
		for i := 0; i < q.inflight.len(); i++ {
			om := q.inflight.at(i)
			if om.state == outPubrec {
				// Stored again first (the PUBREL waits for it,
				// Client.holdUntil): if the record of the PUBREC failed
				// to store before, a restart would otherwise resend the
				// message to a client that has completed it.
				s.storeReleased(om)
				c.queueAck(codec.PUBREL, om.pid, codec.Success)
				continue
			}
			// pump resends it within the new connection's Receive Maximum
			// [MQTT-3.3.4-9], which may be smaller than what is in flight.
			// [MQTT-4.3.3-7] Expiry no longer applies once a QoS 2 flow started;
			// for simplicity an inflight message is always resent.
			om.state = outHeld
			q.held++
		}
	}
	s.pump()
}

// detach is called when the session's connection is gone. abnormal means
// the will is due (no DISCONNECT, or DISCONNECT 0x04).
func (s *Session) detach(c *Client, abnormal bool) {
	s.c = nil
	s.l.b.online.Add(-1)
	s.releaseDeferred() // an offline session queues; it never stalls publishers
	s.available.Store(false)
	l := s.l
	s.discAt = l.now
	if abnormal && s.will != nil {
		if s.will.delay == 0 || s.expiry == 0 {
			s.publishWill()
		} else {
			s.will.at = l.now + int64(s.will.delay)*int64(time.Second)
			if s.will.rep {
				s.replicateWill() // now pending: a node that fires it for this one knows when
			}
		}
	} else {
		s.dropWill()
	}
	if s.expiry == 0 {
		// [MQTT-3.1.2-23] absent/0 expiry: the session ends with the connection.
		s.sessionEnding(hooks.SessionCleaned)
		s.end(true)
		return
	}
	s.storeSession()
	if s.will != nil {
		s.storeWill()
	}
	if s.expiry != store.ExpiryNever || s.willAt() != 0 {
		l.wait(s)
	}
}

// end discards the session: subscriptions, queues, and the will (published
// first if publishWill and one is pending) [MQTT-4.1.0-2].
func (s *Session) end(publishWill bool) {
	l := s.l
	if s.will != nil {
		if publishWill || s.will.at != 0 {
			s.publishWill()
		} else {
			s.dropWill()
		}
	}
	for f, o := range s.subscriptions() {
		s.removeSub(f, o)
	}
	if s.extras != nil {
		s.extras.subs = nil
		s.extras.wildcardLevels, s.extras.filterBytes = 0, 0
	}
	if q := s.qosState; q != nil {
		for q.inflight.len() > 0 {
			s.dropMsg(q.inflight.popFront())
		}
		for q.queue.len() > 0 {
			s.dropMsg(q.queue.popFront())
		}
		q.held = 0
		q.inboundQoS2 = nil
	}
	s.releaseDeferred()
	s.storeDelete()
	l.unwait(s)
	if l.sessions[s.id] == s {
		delete(l.sessions, s.id)
		l.releaseSession(s.id)
	}
}

// setWill makes m the will of s's connection; replicateWill hands it to
// the cluster (its copy replaces the one of the will it replaces).
func (s *Session) setWill(m *Message, delay uint32) {
	if s.will != nil {
		s.will.m.release()
	}
	s.will = &sessionWill{m: m, delay: delay}
}

// dropWill discards s's will without publishing it (and withdraws the
// cluster's copy, WillPeers).
func (s *Session) dropWill() {
	if s.will != nil {
		if s.will.rep {
			s.l.b.wills.peers.WillGone(s.id)
		}
		s.will.m.release()
		s.will = nil
	}
}

func (s *Session) cancelWill() {
	if s.will != nil {
		s.storeWillGone()
	}
	s.dropWill()
}

// publishWill routes the will message from the session's loop.
func (s *Session) publishWill() {
	w := s.will
	if w == nil {
		return
	}
	s.will = nil
	s.storeWillGone()
	if w.rep {
		// In a cluster that replicates wills, published once the
		// cluster says this node is the one (fired once cluster-wide).
		s.fireReplicated(w)
		return
	}
	s.l.publishWillMsg(s.id, w.m)
}

// addSub adds (or replaces) one subscription in s and the router.
func (s *Session) addSub(filter string, o router.SubOptions) (existed bool) {
	l := s.l
	x := s.extra()
	if x.subs == nil {
		x.subs = make(map[string]router.SubOptions)
	}
	if len(x.subs) == 0 {
		x.peerDurable = s.expiry != 0
	}
	_, existed = x.subs[filter]
	x.subs[filter] = o
	if !existed {
		x.wildcardLevels += wildcardLevels(filter)
		x.filterBytes += len(filter)
	}
	if !existed {
		l.b.peerInterest(filter, 1)
		if x.peerDurable {
			l.b.peerDurable(filter, 1)
		}
	}
	if group, f, shared, _ := codec.SplitShared([]byte(filter)); shared {
		l.b.shared.Subscribe(group, f, s, o)
	} else if !l.shard.Subscribe([]byte(filter), s, o) {
		l.subCount.Add(1)
	}
	return existed
}

// dropSub removes one subscription (o, as subscribed) from s and the
// router.
func (s *Session) dropSub(filter string, o router.SubOptions) {
	delete(s.extras.subs, filter)
	s.extras.wildcardLevels -= wildcardLevels(filter)
	s.extras.filterBytes -= len(filter)
	s.removeSub(filter, o)
}

// wildcardLevels is what filter counts toward Options.MaxWildcardLevels:
// its levels when it holds a '+', else nothing.
func wildcardLevels(filter string) int {
	if strings.IndexByte(filter, '+') < 0 {
		return 0
	}
	_, f, _, _ := codec.SplitShared([]byte(filter))
	return bytes.Count(f, []byte{'/'}) + 1
}

// removeSub drops one subscription from the router.
func (s *Session) removeSub(filter string, o router.SubOptions) {
	l := s.l
	l.b.peerInterest(filter, -1)
	if s.extras.peerDurable {
		l.b.peerDurable(filter, -1)
	}
	if group, f, shared, _ := codec.SplitShared([]byte(filter)); shared {
		l.b.shared.Unsubscribe(group, f, s)
		return
	}
	if l.shard.Unsubscribe([]byte(filter), s) {
		l.subCount.Add(-1)
	}
}

// chargeQueued counts om (size bytes of topic and payload) toward the
// session's and the loop's queued bytes (Options.MaxQueuedBytes and
// MaxQueuedBytesTotal); dropMsg takes it off. Loop-only.
func (s *Session) chargeQueued(om *outMsg, size int) {
	om.size = size
	s.qos().bytes += size
	s.l.queuedBytes += int64(size)
}

// dropMsg releases om's message, if it still holds one, and takes its
// bytes off the session's count.
func (s *Session) dropMsg(om *outMsg) {
	if om.m != nil {
		s.qosState.bytes -= om.size
		s.l.queuedBytes -= int64(om.size)
		om.m.release()
		om.m = nil
	}
}

// pidForSeq derives a message's packet id from its sequence number, so a
// message resent after a restart keeps the id it may already have been
// sent with (MQTT-4.4.0-1), without a store write per send.
func pidForSeq(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// takePID marks om's packet id in flight and reports false when an older
// message still holds it [MQTT-2.2.1-4]: sending then waits for its ack.
func (s *Session) takePID(om *outMsg) bool {
	q := s.qos()
	if q.pidUsed == nil {
		q.pidUsed = new([1024]uint64)
	}
	p := pidForSeq(om.seq)
	if q.pidUsed[p>>6]&(1<<(p&63)) != 0 {
		return false
	}
	q.pidUsed[p>>6] |= 1 << (p & 63)
	om.pid = p
	return true
}

func (s *Session) freePID(p uint16) {
	if q := s.qosState; q != nil && q.pidUsed != nil {
		q.pidUsed[p>>6] &^= 1 << (p & 63)
	}
}

// pump moves queued messages into the inflight window while the client's
// Receive Maximum allows [MQTT-3.3.4-9] and the connection keeps up.
func (s *Session) pump() {
	s.pumpQueue()
	if s.queuedLen() < s.l.b.opts.MaxQueued/4 {
		if s.qosState != nil && len(s.qosState.deferred) > 0 {
			s.releaseDeferred()
		}
		if s.c != nil && !s.available.Load() {
			s.available.Store(true)
		}
	}
	if c := s.c; c != nil && c.retPending() {
		c.sendRetained()
	}
}

func (s *Session) pumpQueue() {
	c, q := s.c, s.qosState
	if c == nil || q == nil || c.state != stateConnected {
		return
	}
	now := s.l.now
	// Inflight PUBLISHes held back by attach go first, in order, DUP=1
	// with their original ids [MQTT-4.4.0-1].
	for i := 0; q.held > 0 && i < q.inflight.len() && q.inflight.len()-q.held < int(c.sendQuota); i++ {
		om := q.inflight.at(i)
		if om.state != outHeld {
			continue
		}
		om.state = outSent
		q.held--
		n := q.inflight.len()
		if c.writePublish(om, true, now); q.inflight.len() < n {
			i-- // dropped as too large: the next one moved to i
		}
	}
	for q.held == 0 && q.queue.len() > 0 && q.inflight.len() < int(c.sendQuota) {
		if c.outboundFull() {
			s.l.counters.slowConsumerStalls++
			return
		}
		om := q.queue.at(0)
		if om.m.expired(now) {
			q.queue.popFront()
			s.l.counters.dropped[dropExpired]++
			s.storeOutboundDone(om, nil)
			s.dropMsg(om)
			continue
		}
		if !s.takePID(om) {
			return
		}
		q.queue.popFront()
		om.state = outSent
		q.inflight.pushBack(om)
		c.writePublish(om, false, now)
	}
}

// releaseDeferred lets the held publisher acknowledgements go.
func (s *Session) releaseDeferred() {
	q := s.qosState
	if q == nil {
		return
	}
	for i, a := range q.deferred {
		a.releaseOn(s.l, nil)
		q.deferred[i] = nil
	}
	q.deferred = q.deferred[:0]
}

// wait puts s on the loop's list of offline sessions to check on ticks.
func (l *Loop) wait(s *Session) {
	if !s.waiting {
		s.waiting = true
		l.waiting = append(l.waiting, s)
	}
}

func (l *Loop) unwait(s *Session) {
	if !s.waiting {
		return
	}
	s.waiting = false
	for i, w := range l.waiting {
		if w == s {
			last := len(l.waiting) - 1
			l.waiting[i] = l.waiting[last]
			l.waiting[last] = nil
			l.waiting = l.waiting[:last]
			return
		}
	}
}
