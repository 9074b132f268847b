package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/store"
)

// Retained messages in a cluster: one set, last writer wins per topic
// (docs/clustering.md, "Retained messages").
//
// With Options.Peers set, every retained message and every clear of one
// carries a RetainedVersion: a hybrid logical clock stamp taken on the node
// where it was published (never below the wall clock, never below a stamp
// seen from another node, strictly increasing per node) and that node's
// id, which breaks ties. A node keeps for a topic whichever of its message
// and the one it is offered is newer, whatever order they arrive in, so
// every node converges on the newest. A clear leaves a tombstone (the
// version of the clear), kept for Options.RetainedTombstoneTTL and at most
// Options.MaxRetainedTombstones of them, so an older copy still on its way
// (a node that was down, a node that joined) does not bring the cleared
// message back. Versions and tombstones go to the store with the retained
// record (store.Message.Version), so a node that restarts knows how old
// what it kept is.
//
// A single node (Peers nil) has no retainedSync: it stamps nothing, keeps
// no tombstone, and its records are what they were (retained.go). The
// versions sit in retainedSync.vers, not in Message, so a single node's
// retained messages are no larger for them (Message stays in its size
// class); a cluster node pays one map entry per retained topic.
type retainedSync struct {
	// clock is the last stamp issued or seen (unix ns, logical). Safe for
	// concurrent use.
	clock atomic.Uint64

	// mu orders the compare-and-replace of a topic's retained message and
	// tombstone across loops (two loops may set one topic). It is taken
	// only for retained messages, only in a cluster.
	mu     sync.Mutex
	vers   map[string]*RetainedVersion // the version of each retained message in the index ($SYS aside); updated in place (no allocation)
	tombs  map[string]tombstone
	oldest int64 // unix ns: no tombstone is older (0: none)
	ttl    time.Duration
	max    int
	// sum is the XOR of versionHash over the retained messages (not the
	// tombstones): two nodes with the same set have the same sum, so a
	// heartbeat can carry it and a difference start an exchange.
	sum uint64

	stale, evicted atomic.Uint64
	nodeNames      map[string]string // interned node ids (mu held)
	nodeB          map[string][]byte // node ids as bytes for the store (mu held)
}

// tombstone is a topic's clear: its version and when it was cleared (unix
// ns, this node's clock: what the TTL counts from).
type tombstone struct {
	v  RetainedVersion
	at int64
}

// RetainedVersion orders the retained messages of one topic across the
// nodes of a cluster: Stamp (a hybrid logical clock, unix ns), then Node.
// The zero value is "unversioned" (a single node's, or one stored before
// clustering): see versionOf.
type RetainedVersion struct {
	Stamp uint64
	Node  string
}

// After reports whether v is newer than o.
func (v RetainedVersion) After(o RetainedVersion) bool {
	return v.Stamp > o.Stamp || v.Stamp == o.Stamp && v.Node > o.Node
}

func newRetainedSync(o *Options) *retainedSync {
	return &retainedSync{vers: map[string]*RetainedVersion{}, tombs: map[string]tombstone{}, ttl: o.RetainedTombstoneTTL, max: o.MaxRetainedTombstones, nodeNames: map[string]string{}, nodeB: map[string][]byte{}}
}

// next returns a new stamp: above the wall clock's now and every stamp
// issued or seen.
func (rs *retainedSync) next(now int64) uint64 {
	for {
		last := rs.clock.Load()
		v := uint64(max(now, 0))
		if v <= last {
			v = last + 1
		}
		if rs.clock.CompareAndSwap(last, v) {
			return v
		}
	}
}

// observe raises the clock to a stamp seen from another node, so what
// this node stamps next is newer than what it has seen.
func (rs *retainedSync) observe(v uint64) {
	for {
		last := rs.clock.Load()
		if v <= last || rs.clock.CompareAndSwap(last, v) {
			return
		}
	}
}

// setVersionLocked records topic's version. mu held.
func (rs *retainedSync) setVersionLocked(topic []byte, v RetainedVersion) {
	if p := rs.vers[string(topic)]; p != nil {
		*p = v
		return
	}
	p := new(RetainedVersion) // not &v: v would escape on every call
	*p = v
	rs.vers[string(topic)] = p
}

// nodeBytes is node id s as bytes for the store, one copy per id (the
// store may hold it until its batch is written; it never changes).
func (rs *retainedSync) nodeBytesLocked(s string) []byte {
	if b, ok := rs.nodeB[s]; ok {
		return b
	}
	b := []byte(s)
	if len(rs.nodeB) < 4096 {
		rs.nodeB[s] = b
	}
	return b
}

// intern returns the one copy of node id s. mu held.
func (rs *retainedSync) intern(s string) string {
	if n, ok := rs.nodeNames[s]; ok {
		return n
	}
	if len(rs.nodeNames) < 4096 { // node ids of a cluster: a few
		rs.nodeNames[s] = s
	}
	return s
}

// versionOfLocked is the version of m, the retained message of its
// topic: its own, or, for a message stored before it had one, its
// creation time from no node (older than any versioned message published
// after it). rs.mu held.
func (rs *retainedSync) versionOfLocked(m *Message) RetainedVersion {
	if v := rs.vers[string(m.Topic)]; v != nil {
		return *v
	}
	return RetainedVersion{Stamp: uint64(max(m.Created, 0))}
}

// versionOf is versionOfLocked for a caller without the lock. Safe for
// concurrent use.
func (b *Broker) versionOf(m *Message) RetainedVersion {
	rs := b.rsync
	if rs == nil {
		return RetainedVersion{}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.versionOfLocked(m)
}

// versionHash mixes a topic and its version into the retained set's sum.
func versionHash(topic []byte, v RetainedVersion) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range topic {
		h = (h ^ uint64(c)) * 1099511628211
	}
	h = (h ^ v.Stamp) * 1099511628211
	for i := 0; i < len(v.Node); i++ {
		h = (h ^ uint64(v.Node[i])) * 1099511628211
	}
	return h ^ h>>29
}

// stampRetained gives a retained message published on this node its
// version, before it is routed (and forwarded with it). Loop-only.
func (l *Loop) stampRetained(m *Message) {
	rs := l.b.rsync
	if rs == nil || l.retainedVer.Stamp != 0 || l.b.isSys(m.Topic) {
		return
	}
	if m.fromPeer {
		rs.observe(uint64(max(m.Created, 0))) // from a node without versions
	}
	l.retainedVer = RetainedVersion{Stamp: rs.next(l.b.readClock()), Node: l.b.nodeID}
}

// setRetainedVersioned is setRetained in a cluster: m, at version
// l.retainedVer, replaces the topic's retained message (or clears it) only
// if it is newer than what this node has, tombstone included; an older one
// is counted as stale and not kept (it was still delivered to the
// subscribers, as published). Loop-only.
func (l *Loop) setRetainedVersioned(rs *retainedSync, m *Message) {
	b := l.b
	l.stampRetained(m) // not through publish (DeleteRetained)
	v := l.retainedVer
	l.retainedVer = RetainedVersion{} // forwarded already, if it was to be
	rs.mu.Lock()
	cur, had := b.retained.Get(m.Topic)
	if had && !v.After(rs.versionOfLocked(cur)) {
		rs.mu.Unlock()
		rs.stale.Add(1)
		return
	}
	t, tombed := rs.tombs[string(m.Topic)]
	if tombed && !v.After(t.v) {
		rs.mu.Unlock()
		rs.stale.Add(1)
		return
	}
	if len(m.Payload) == 0 {
		// [MQTT-3.3.1-6/-7] An empty payload removes the retained message;
		// here it also leaves a tombstone, stored so a restart keeps it.
		if had {
			if old, ok := b.retained.Delete(m.Topic); ok {
				rs.sum ^= versionHash(m.Topic, rs.versionOfLocked(old))
				delete(rs.vers, string(m.Topic))
				b.retainedGone(old)
				old.release()
			}
		}
		now := b.readClock()
		rs.addTombLocked(string(m.Topic), tombstone{v: v, at: now}, now)
		rs.mu.Unlock()
		l.storeTombstone(m, v, now)
		l.retainedChangedHook(m)
		return
	}
	if !b.retainedRoom(m) {
		rs.mu.Unlock()
		l.counters.dropped[dropRetainedFull]++
		if m.ack != nil {
			m.ack.quotaExceeded.Store(true)
		}
		return
	}
	if tombed {
		delete(rs.tombs, string(m.Topic))
	}
	m.retain()
	if old, ok := b.retained.Set(m.Topic, m); ok {
		rs.sum ^= versionHash(m.Topic, rs.versionOfLocked(old))
		b.retainedGone(old)
		old.release()
	}
	rs.setVersionLocked(m.Topic, v)
	rs.sum ^= versionHash(m.Topic, v)
	var node []byte
	if b.opts.Store != nil {
		node = rs.nodeBytesLocked(v.Node)
	}
	rs.mu.Unlock()
	l.storeRetainedVersioned(m, v, node)
	l.retainedChangedHook(m)
}

func (l *Loop) retainedChangedHook(m *Message) {
	if l.b.hooks.Has(hooks.RetainedChanged) {
		origin := hooks.FromServer
		if m.origin != nil {
			origin = hooks.FromClient
		}
		l.b.hooks.RetainedChanged(l.hookMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Props, origin, nil))
	}
}

// addTombLocked keeps a tombstone, making room within the bound: expired
// ones go first, then the oldest eighth (counted as evicted). mu held.
func (rs *retainedSync) addTombLocked(topic string, t tombstone, now int64) {
	if _, ok := rs.tombs[topic]; !ok && len(rs.tombs) >= rs.max {
		rs.pruneLocked(now)
		if len(rs.tombs) >= rs.max {
			ats := make([]int64, 0, len(rs.tombs))
			for _, t := range rs.tombs {
				ats = append(ats, t.at)
			}
			slices.Sort(ats)
			cut := ats[min(len(ats)-1, max(rs.max/8, 1)-1)]
			for k, t := range rs.tombs {
				if t.at <= cut {
					delete(rs.tombs, k)
					rs.evicted.Add(1)
				}
			}
			rs.oldest = cut + 1
		}
	}
	if rs.max <= 0 {
		return
	}
	rs.tombs[topic] = t
	if rs.oldest == 0 || t.at < rs.oldest {
		rs.oldest = t.at
	}
}

// pruneLocked drops the tombstones older than the TTL. mu held.
func (rs *retainedSync) pruneLocked(now int64) {
	limit := now - int64(rs.ttl)
	if rs.oldest == 0 || rs.oldest > limit {
		return
	}
	oldest := int64(0)
	for k, t := range rs.tombs {
		if t.at <= limit {
			delete(rs.tombs, k)
			continue
		}
		if oldest == 0 || t.at < oldest {
			oldest = t.at
		}
	}
	rs.oldest = oldest
}

func (l *Loop) storeRetainedVersioned(m *Message, v RetainedVersion, node []byte) {
	if l.b.opts.Store == nil {
		return
	}
	sm := storeMessage(m)
	sm.Version, sm.VersionNode = v.Stamp, node
	l.addOp(store.Op{Retained: &sm}, m.ack)
}

// storeTombstone stores the clear of m's topic as a tombstone record,
// which the store drops once the TTL passed (its ExpireAt).
func (l *Loop) storeTombstone(m *Message, v RetainedVersion, now int64) {
	if l.b.opts.Store == nil {
		return
	}
	sm := store.Message{Topic: m.Topic, Retain: true, Created: now, ExpireAt: now + int64(l.b.opts.RetainedTombstoneTTL),
		Version: v.Stamp, VersionNode: []byte(v.Node)}
	l.addOp(store.Op{Retained: &sm}, m.ack)
}

// restoreTombstone keeps a tombstone loaded from the store (Restore).
func (b *Broker) restoreTombstone(sm *store.Message) {
	rs := b.rsync
	if rs == nil {
		return // a single node now: the clear is all there is to keep
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	v := RetainedVersion{Stamp: sm.Version, Node: rs.intern(string(sm.VersionNode))}
	rs.observe(v.Stamp)
	if m, ok := b.retained.Get(sm.Topic); ok && !v.After(rs.versionOfLocked(m)) {
		return
	}
	if m, ok := b.retained.Delete(sm.Topic); ok {
		rs.sum ^= versionHash(sm.Topic, rs.versionOfLocked(m))
		delete(rs.vers, string(sm.Topic))
		b.retainedGone(m)
		m.release()
	}
	rs.addTombLocked(string(sm.Topic), tombstone{v: v, at: sm.Created}, b.readClock())
}

// restoredVersion sets a restored retained message's version, and keeps
// it in the set's sum (Restore).
func (b *Broker) restoredVersion(m *Message, sm *store.Message) bool {
	rs := b.rsync
	if rs == nil {
		return true
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	v := RetainedVersion{Stamp: uint64(max(sm.Created, 0))}
	if sm.Version != 0 {
		v = RetainedVersion{Stamp: sm.Version, Node: rs.intern(string(sm.VersionNode))}
		rs.observe(sm.Version)
	}
	if t, ok := rs.tombs[string(m.Topic)]; ok && !v.After(t.v) {
		return false
	}
	if old, ok := b.retained.Get(m.Topic); ok {
		rs.sum ^= versionHash(m.Topic, rs.versionOfLocked(old))
	}
	rs.setVersionLocked(m.Topic, v)
	rs.sum ^= versionHash(m.Topic, v)
	return true
}

// RetainedEntry is one topic of the retained set as a cluster exchanges
// it: its version, and whether it is a tombstone (cleared).
type RetainedEntry struct {
	Topic   []byte
	Version RetainedVersion
	Cleared bool
}

// RangeRetainedVersions calls fn with every retained message's and
// tombstone's topic and version ($SYS aside) until fn returns false: the
// digest a node sends another when they meet. fn runs outside every lock;
// e is valid during the call only. Without Peers it reports nothing.
// Safe for concurrent use.
func (b *Broker) RangeRetainedVersions(fn func(e *RetainedEntry) bool) {
	rs := b.rsync
	if rs == nil {
		return
	}
	rs.mu.Lock()
	es := make([]RetainedEntry, 0, len(rs.vers)+len(rs.tombs))
	for k, v := range rs.vers {
		es = append(es, RetainedEntry{Topic: []byte(k), Version: *v})
	}
	rs.pruneLocked(b.readClock())
	for k, t := range rs.tombs {
		es = append(es, RetainedEntry{Topic: []byte(k), Version: t.v, Cleared: true})
	}
	rs.mu.Unlock()
	for i := range es {
		if !fn(&es[i]) {
			return
		}
	}
}

// RetainedNewer reports whether v is newer than what this node has for
// topic (its retained message, or its tombstone): worth asking for.
// Safe for concurrent use.
func (b *Broker) RetainedNewer(topic []byte, v RetainedVersion) bool {
	rs := b.rsync
	if rs == nil {
		return false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if m, ok := b.retained.Get(topic); ok && !v.After(rs.versionOfLocked(m)) {
		return false
	}
	t, ok := rs.tombs[string(topic)]
	return !ok || v.After(t.v)
}

// LookupRetained calls fn with topic's retained message, or, when it was
// cleared, a message with no payload and the tombstone's version; not at
// all when this node has neither. m is valid during the call only. Safe
// for concurrent use.
func (b *Broker) LookupRetained(topic []byte, fn func(m *PeerMessage)) {
	if m, ok := b.retained.Get(topic); ok {
		fn(&PeerMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: true, Props: m.Props, ExpireAt: m.ExpireAt, Version: b.versionOf(m)})
		return
	}
	rs := b.rsync
	if rs == nil {
		return
	}
	rs.mu.Lock()
	t, ok := rs.tombs[string(topic)]
	rs.mu.Unlock()
	if ok {
		fn(&PeerMessage{Topic: topic, Retain: true, Version: t.v})
	}
}

// ApplyRetainedFromPeer keeps p, another node's retained message for its
// topic (an empty payload: its tombstone), if it is newer than what this
// node has (v; zero: kept only where this node has neither a message nor
// a tombstone). It is delivered to no one: it is not a new message, only
// one this node missed. Safe for concurrent use; it copies p before it
// returns.
func (b *Broker) ApplyRetainedFromPeer(p *codec.Publish, expireAt time.Time, v RetainedVersion) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if codec.ValidateTopicName(p.Topic) != nil || p.QoS > 2 || (len(p.Payload) == 0 && v.Stamp == 0) {
		return ErrPeerMessage
	}
	rs := b.rsync
	if rs != nil && v.Stamp != 0 {
		if !b.RetainedNewer(p.Topic, v) {
			rs.stale.Add(1)
			return nil
		}
	} else if _, ok := b.retained.Get(p.Topic); ok {
		return nil
	}
	l := b.loops[b.homeLoop(p.Topic)]
	m := newMessage(p, nil, b.readClock())
	m.fromPeer, m.Retain, m.pinned = true, true, true
	if !expireAt.IsZero() {
		m.ExpireAt = expireAt.UnixNano()
	}
	if rs != nil && v.Stamp != 0 {
		rs.mu.Lock()
		v.Node = rs.intern(v.Node)
		rs.mu.Unlock()
		rs.observe(v.Stamp)
	}
	if !l.post(inboxItem{kind: itemFunc, fn: func() {
		if rs != nil && v.Stamp != 0 {
			l.retainedVer = v
			l.setRetainedVersioned(rs, m)
			l.retainedVer = RetainedVersion{}
		} else if _, ok := b.retained.Get(m.Topic); !ok {
			l.setRetained(m)
		}
		m.release()
	}}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// RouteRetainedFromPeer is RouteFromPeer for a retained message (or a
// clear) with its version from the node it was published on: delivered
// to this node's subscribers as published, and kept as the topic's
// retained message only if newer than what this node has. Safe for
// concurrent use; it copies p before it returns.
func (b *Broker) RouteRetainedFromPeer(key []byte, p *codec.Publish, expireAt time.Time, v RetainedVersion) error {
	if rs := b.rsync; rs != nil && v.Stamp != 0 {
		rs.observe(v.Stamp)
		rs.mu.Lock()
		v.Node = rs.intern(v.Node)
		rs.mu.Unlock()
	}
	l, m, err := b.peerMessage(key, p, expireAt)
	if err != nil {
		return err
	}
	// A closure (retained messages only) carries the version to publish.
	if !l.post(inboxItem{kind: itemFunc, fn: func() {
		if m.Retain {
			l.retainedVer = v // publish keeps it (zero: stamped here)
		}
		l.publish(m, nil)
		m.release()
	}}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// PruneRetainedTombstones drops the tombstones older than the TTL (the
// cluster calls it on its heartbeat). Safe for concurrent use.
func (b *Broker) PruneRetainedTombstones() {
	if rs := b.rsync; rs != nil {
		rs.mu.Lock()
		rs.pruneLocked(b.readClock())
		rs.mu.Unlock()
	}
}

// RetainedSyncStats are the counters of the cluster's retained set.
type RetainedSyncStats struct {
	// Tombstones kept now; Evicted: dropped for MaxRetainedTombstones
	// before their TTL; Stale: retained messages and clears not kept
	// because this node had a newer one.
	Tombstones     int
	Evicted, Stale uint64
	Sum            uint64 // the retained set's checksum (versionHash)
}

// RetainedSyncStats reports the retained set's counters (zero without
// Peers). Safe for concurrent use.
func (b *Broker) RetainedSyncStats() RetainedSyncStats {
	rs := b.rsync
	if rs == nil {
		return RetainedSyncStats{}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return RetainedSyncStats{Tombstones: len(rs.tombs), Evicted: rs.evicted.Load(), Stale: rs.stale.Load(), Sum: rs.sum}
}
