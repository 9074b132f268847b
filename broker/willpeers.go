package broker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/store"
)

// Wills once cluster-wide (docs/clustering.md, "Wills"). When
// Options.Peers also implements WillPeers (and says it replicates), every
// will a connection sets is handed to it (WillSet: the cluster keeps a
// copy another node can publish should this one die), every will that
// goes without being published is withdrawn (WillGone), and a will that
// is due here is published only once the cluster agrees this node is the
// one to publish it (WillFire: the copy is deleted with compare-and-set;
// whoever deletes it publishes). A single node has none of it: one nil
// check where a will is set, dropped or published.

// WillPeers is implemented by a Peers that replicates wills so that they
// fire once cluster-wide, also when the node that held them dies.
//
// WillSet, WillGone and WillFire are called on the session's loop (or by
// Restore) and must not block; the calls for one client id are applied
// in the order they were made. fire is called exactly once, on another
// goroutine, and must not block: ok means this node publishes the will
// (it won the replicated copy, or the copy was never replicated), !ok
// that it must not (another node published it, or this node is leaving
// the cluster without a quorum to ask).
type WillPeers interface {
	// ReplicatesWills reports whether wills are replicated at all (fixed
	// for the peers' life).
	ReplicatesWills() bool
	WillSet(clientID string, w *WillRecord)
	WillGone(clientID string)
	WillFire(clientID string, fire func(ok bool))
}

// WillRecord is a will as the cluster keeps it.
type WillRecord struct {
	// Msg is the will message (Created: when its connection set it;
	// ExpireAt from its Message Expiry Interval, 0: none).
	Msg store.Message
	// Delay is the Will Delay Interval and SessionExpiry the session's
	// expiry interval (store.ExpiryNever: never), in seconds: a node
	// that publishes it for a dead node waits the smaller of the two.
	Delay, SessionExpiry uint32
	// At is when a pending will is due (unix ns; its connection ended
	// and a delay runs); 0 while its connection is up.
	At int64
}

// willFires counts the WillFire calls not answered yet (Shutdown waits
// for them: a graceful stop publishes the wills its closes make due).
type willState struct {
	peers   WillPeers // nil: wills are not replicated
	pending atomic.Int64
}

// setupWills binds Options.Peers' will replication, if it has one.
func (b *Broker) setupWills() {
	if wp, ok := b.opts.Peers.(WillPeers); ok && wp.ReplicatesWills() {
		b.wills.peers = wp
	}
}

// willRecord is s's will as the cluster keeps it. Loop-only.
func (s *Session) willRecord() *WillRecord {
	w := s.will
	return &WillRecord{Msg: storeMessage(w.m), Delay: w.delay, SessionExpiry: s.expiry, At: w.at}
}

// replicateWill hands s's will (new, or now pending) to the cluster.
// Loop-only; Restore too.
func (s *Session) replicateWill() {
	wp := s.l.b.wills.peers
	if wp == nil || s.will == nil {
		return
	}
	s.will.rep = true
	wp.WillSet(s.id, s.willRecord())
}

// fireReplicated publishes w, s's will taken out of the session, once the
// cluster agrees this node publishes it. Loop-only.
func (s *Session) fireReplicated(w *sessionWill) {
	l, b, id := s.l, s.l.b, s.id
	b.wills.pending.Add(1)
	b.wills.peers.WillFire(id, func(ok bool) {
		run := func() {
			defer b.wills.pending.Add(-1)
			if ok {
				l.publishWillMsg(id, w.m)
			} else {
				w.m.release() // another node published it (counted there)
			}
		}
		if !l.post(inboxItem{kind: itemFunc, fn: run}, true) && l.exec(run) != nil {
			b.wills.pending.Add(-1)
			w.m.release()
		}
	})
}

// publishWillMsg publishes m, the will of client id, from l: the Publish
// hooks as for a will (they may change or drop it), then routed as a
// PUBLISH of this node. It takes m's reference. Loop-only.
func (l *Loop) publishWillMsg(id string, m *Message) {
	l.counters.willsPublished++
	m.origin = nil // No Local does not apply to a will: the session is gone
	if m.ExpireAt != 0 {
		// §3.1.3.2.4: the will's Message Expiry Interval starts when it
		// is published, not at CONNECT (the message is not shared yet).
		m.ExpireAt += l.now - m.Created
		m.Created = l.now
	}
	if l.b.hooks.Has(hooks.Publish) {
		if m = l.interceptMessage(m, hooks.FromWill, &hooks.Client{ID: id}); m == nil {
			return
		}
	}
	if l.b.hooks.Has(hooks.WillPublished) {
		l.b.hooks.WillPublished(id, l.hookMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Props, hooks.FromWill, nil))
	}
	l.publish(m, nil)
	m.release()
}

// PublishWill publishes the will of client id that another node of the
// cluster held and can no longer publish (it died): here, as if its
// connection had ended on this node (the Publish hooks run, then it is
// routed to this node's subscribers and the other nodes'). The cluster
// calls it only once it won the will's replicated copy. Safe for
// concurrent use; it copies w before it returns.
func (b *Broker) PublishWill(id string, w *store.Message) error {
	if b.closed.Load() {
		return ErrClosed
	}
	m, err := messageFromStore(w)
	if err != nil {
		return err
	}
	l := b.loops[b.topicLoop(m.Topic)]
	if !l.post(inboxItem{kind: itemFunc, fn: func() { l.publishWillMsg(id, m) }}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// HasWill reports whether client id has a session on this node whose
// will is set (connected, or pending after its connection ended). Safe
// for concurrent use; not on a loop.
func (b *Broker) HasWill(ctx context.Context, id string) (bool, error) {
	has := false
	_, err := b.onOwnerLoop(ctx, id, func(l *Loop) {
		if s := l.sessions[id]; s != nil && s.will != nil {
			has = true
		}
	})
	return has, err
}

// waitWills waits until every will handed to WillFire is published or
// refused, at most d (Shutdown: the wills its closes made due).
func (b *Broker) waitWills(d time.Duration) {
	if b.wills.peers == nil {
		return
	}
	deadline := time.Now().Add(d)
	for b.wills.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
