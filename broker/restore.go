package broker

import (
	"fmt"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
	"github.com/mcutie/mcutie/store"
)

// Restore loads the store's state into the broker: persistent sessions
// with their subscriptions, outbound messages (all of them are resent with
// DUP=1 when the client resumes, since any of them may have been sent),
// inbound QoS 2 ids, retained messages and wills. A session that was
// connected when the broker stopped counts as disconnected now: its expiry
// starts now and its will, if any, is due after its delay. Outbound QoS 2
// copies whose publisher never confirmed them are deleted
// (DURABILITY.md).
//
// Call it once, after New and before the loops are bound.
func (b *Broker) Restore() (RestoreStats, error) {
	st := b.opts.Store
	if st == nil {
		return RestoreStats{}, nil
	}
	r := &restorer{b: b, now: b.readClock()}
	err := st.Load(store.Visitor{
		Session:  r.session,
		Sub:      r.sub,
		Outbound: r.outbound,
		Inbound:  r.inbound,
		Retained: r.retained,
		Will:     r.will,
		Delayed:  r.delayedMsg,
	})
	if err == nil {
		err = r.err
	}
	if r.maxMark > b.qos2Mark.Load() {
		b.qos2Mark.Store(r.maxMark)
	}
	if err == nil && len(r.unconfirmed) > 0 {
		done := make(chan error, 1)
		if err = st.Apply(r.unconfirmed, func(e error) { done <- e }); err == nil {
			err = <-done
		}
	}
	r.stats.Took = time.Duration(b.opts.Now().UnixNano() - r.now)
	return r.stats, err
}

// restorer rebuilds the broker's state from the records Load streams, one
// method per record kind (store.Visitor). Used on one goroutine, before
// the loops run.
type restorer struct {
	b     *Broker
	now   int64 // unix ns
	stats RestoreStats
	err   error // the first record that could not be restored

	maxMark     uint64     // the highest QoS 2 mark seen (Broker.qos2Mark resumes above it)
	unconfirmed []store.Op // outbound copies of publishes never confirmed, to delete
}

func (r *restorer) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *restorer) bump(mark uint64) { r.maxMark = max(r.maxMark, mark) }

// sessionOf is the restored session of client id cid, nil if none.
func (r *restorer) sessionOf(cid string) *Session {
	return r.b.loops[r.b.homeLoop([]byte(cid))].sessions[cid]
}

func (r *restorer) session(ss store.Session) {
	b := r.b
	l := b.loops[b.homeLoop([]byte(ss.ClientID))]
	b.dir.claim(b.dir.keyString(ss.ClientID), l.idx)
	s := newSession(l, ss.ClientID)
	s.version = codec.Version(ss.Version)
	s.expiry = ss.ExpiryInterval
	s.stored = true
	s.discAt = ss.DisconnectedAt
	s.qos2Mark = ss.QoS2Mark
	if ss.OwnerKind != store.OwnerUnknown {
		s.extra().owner, s.extra().ownerKind = ss.Owner, ss.OwnerKind
	}
	r.bump(ss.QoS2Mark)
	if s.discAt == 0 {
		s.discAt = r.now
	}
	l.sessions[ss.ClientID] = s
	if s.expiry != store.ExpiryNever {
		l.wait(s)
	}
	r.stats.Sessions++
}

func (r *restorer) sub(sub store.Subscription) {
	s := r.sessionOf(sub.ClientID)
	if s == nil {
		return
	}
	o := router.SubOptions{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, ID: sub.ID}
	s.addSub(sub.Filter, o)
	r.stats.Subscriptions++
}

func (r *restorer) outbound(ob store.Outbound) {
	s := r.sessionOf(ob.ClientID)
	if s == nil {
		return
	}
	q := s.qos()
	if ob.Seq >= q.nextSeq {
		q.nextSeq = ob.Seq + 1
	}
	if ob.Origin != "" {
		r.bump(ob.OriginMark)
		if pub := r.sessionOf(ob.Origin); pub != nil && ob.OriginMark > pub.qos2Mark {
			// The publisher's inbound record never became durable: it
			// got no PUBREC and resends the message, which is routed
			// again; this copy was never sent (qos2.go, DURABILITY.md).
			r.unconfirmed = append(r.unconfirmed, store.Op{Delete: true, Outbound: &store.Outbound{ClientID: ob.ClientID, Seq: ob.Seq}})
			r.stats.Unconfirmed++
			return
		}
	}
	om := &outMsg{seq: ob.Seq, qos: ob.Msg.QoS}
	if ob.State == store.OutboundReleased {
		om.state = outPubrec
		om.qos = 2
	} else {
		m, err := messageFromStore(&ob.Msg)
		if err != nil {
			r.fail(fmt.Errorf("outbound message %d of %q: %w", ob.Seq, ob.ClientID, err))
			return
		}
		om.m = m
		om.state = outSent
		om.retain = ob.Msg.Retain
		if len(ob.Msg.Props) > 0 {
			// The subscription identifiers are stored with the
			// message's properties (storeOutbound); newMessage drops
			// them, so read them here.
			var pp codec.Properties
			if pp.DecodePublishProps(ob.Msg.Props) == nil {
				om.nids = uint8(copy(om.ids[:], pp.SubscriptionIDs))
			}
		}
		s.chargeQueued(om, len(m.Topic)+len(m.Payload))
	}
	// Any stored message may have been sent: it goes back in flight with
	// its derived packet id and is resent with DUP=1 when the client
	// resumes. Only if an older message holds the same id does it wait
	// in the queue.
	if s.takePID(om) {
		q.inflight.pushBack(om)
	} else {
		om.state = outQueued
		q.queue.pushBack(om)
	}
	r.stats.Outbound++
}

func (r *restorer) inbound(in store.InboundQoS2) {
	if s := r.sessionOf(in.ClientID); s != nil {
		q := s.qos()
		q.inboundQoS2 = append(q.inboundQoS2, in.PacketID)
		r.stats.Inbound++
	}
}

func (r *restorer) retained(sm store.Message) {
	b := r.b
	if len(sm.Payload) == 0 {
		// A cluster's tombstone: a clear, remembered for a while
		// (retainedsync.go); a single node has nothing to restore.
		b.restoreTombstone(&sm)
		return
	}
	m, err := messageFromStore(&sm)
	if err != nil {
		r.fail(fmt.Errorf("retained message on %q: %w", sm.Topic, err))
		return
	}
	if !b.restoredVersion(m, &sm) {
		m.release()
		return
	}
	b.retainedCount.Add(1) // restored whatever the bounds: they were kept when stored
	b.retainedBytes.Add(retainedSize(m))
	if old, ok := b.retained.Set(m.Topic, m); ok {
		b.retainedGone(old)
		old.release()
	}
	r.stats.Retained++
}

func (r *restorer) will(w store.Will) {
	s := r.sessionOf(w.ClientID)
	if s == nil {
		return
	}
	m, err := messageFromStore(&w.Msg)
	if err != nil {
		r.fail(fmt.Errorf("will of %q: %w", w.ClientID, err))
		return
	}
	s.will = &sessionWill{m: m, at: w.PublishAt}
	if s.will.at == 0 {
		s.will.at = r.now // the connection ended with the broker: the will is due
	}
	// In a cluster, the copy kept there decides: another node may have
	// published it while this one was down (fired once cluster-wide).
	s.will.rep = r.b.wills.peers != nil
	s.l.wait(s)
	r.stats.Wills++
}

// delayedMsg restores a delayed message (delayed.go). It is kept whether
// or not DelayedPublish is on now: it was accepted, and is published at
// its time (at once if that time passed while the broker was down).
func (r *restorer) delayedMsg(d store.Delayed) {
	m, err := messageFromStore(&d.Msg)
	if err != nil {
		r.fail(fmt.Errorf("delayed message %d on %q: %w", d.ID, d.Msg.Topic, err))
		return
	}
	m.pinned = m.Retain
	r.b.delayed.restore(&d, m)
	r.stats.Delayed++
}

// RestoreStats counts what Restore loaded.
type RestoreStats struct {
	Sessions, Subscriptions, Outbound, Inbound, Retained, Wills, Delayed int
	// Unconfirmed counts outbound QoS 2 records dropped because their
	// publisher's inbound record was not durable (Session.qos2Mark).
	Unconfirmed int
	Took        time.Duration
}
