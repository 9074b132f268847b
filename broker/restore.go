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
// starts now and its will, if any, is due after its delay.
//
// Call it once, after New and before the loops are bound.
func (b *Broker) Restore() (RestoreStats, error) {
	var rs RestoreStats
	st := b.opts.Store
	if st == nil {
		return rs, nil
	}
	now := b.readClock()
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	var maxMark uint64
	bump := func(m uint64) {
		if m > maxMark {
			maxMark = m
		}
	}
	var unconfirmed []store.Op
	session := func(cid string) *Session {
		l := b.loops[b.homeLoop([]byte(cid))]
		return l.sessions[cid]
	}
	err := st.Load(store.Visitor{
		Session: func(ss store.Session) {
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
			bump(ss.QoS2Mark)
			if s.discAt == 0 {
				s.discAt = now
			}
			l.sessions[ss.ClientID] = s
			if s.expiry != store.ExpiryNever {
				l.wait(s)
			}
			rs.Sessions++
		},
		Sub: func(sub store.Subscription) {
			s := session(sub.ClientID)
			if s == nil {
				return
			}
			o := router.SubOptions{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, ID: sub.ID}
			s.addSub(sub.Filter, o)
			rs.Subscriptions++
		},
		Outbound: func(ob store.Outbound) {
			s := session(ob.ClientID)
			if s == nil {
				return
			}
			q := s.qos()
			if ob.Origin != "" {
				bump(ob.OriginMark)
				if pub := session(ob.Origin); pub != nil && ob.OriginMark > pub.qos2Mark {
					// The publisher's inbound record never became durable:
					// it got no PUBREC and resends the message, which is
					// routed again; this copy was never sent (Session.qos2Mark).
					unconfirmed = append(unconfirmed, store.Op{Delete: true, Outbound: &store.Outbound{ClientID: ob.ClientID, Seq: ob.Seq}})
					if ob.Seq >= q.nextSeq {
						q.nextSeq = ob.Seq + 1
					}
					rs.Unconfirmed++
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
					fail(fmt.Errorf("outbound message %d of %q: %w", ob.Seq, ob.ClientID, err))
					return
				}
				om.m = m
				om.state = outSent
				om.retain = ob.Msg.Retain
				if len(ob.Msg.Props) > 0 {
					// The subscription identifiers are stored with the
					// message's properties (storeOutbound); newMessage
					// drops them, so read them here.
					var pp codec.Properties
					if pp.DecodePublishProps(ob.Msg.Props) == nil {
						om.nids = uint8(copy(om.ids[:], pp.SubscriptionIDs))
					}
				}
			}
			if ob.Seq >= q.nextSeq {
				q.nextSeq = ob.Seq + 1
			}
			// Any stored message may have been sent: it goes back in
			// flight with its derived packet id and is resent with DUP=1
			// when the client resumes. Only if an older message holds the
			// same id does it wait in the queue.
			if om.m != nil {
				s.chargeQueued(om, len(om.m.Topic)+len(om.m.Payload))
			}
			if s.takePID(om) {
				q.inflight.pushBack(om)
			} else {
				om.state = outQueued
				q.queue.pushBack(om)
			}
			rs.Outbound++
		},
		Inbound: func(in store.InboundQoS2) {
			if s := session(in.ClientID); s != nil {
				q := s.qos()
				q.inboundQoS2 = append(q.inboundQoS2, in.PacketID)
				rs.Inbound++
			}
		},
		Retained: func(sm store.Message) {
			m, err := messageFromStore(&sm)
			if err != nil {
				fail(fmt.Errorf("retained message on %q: %w", sm.Topic, err))
				return
			}
			b.retainedCount.Add(1) // restored whatever the bounds: they were kept when stored
			b.retainedBytes.Add(retainedSize(m))
			if old, ok := b.retained.Set(m.Topic, m); ok {
				b.retainedGone(old)
				old.release()
			}
			rs.Retained++
		},
		Will: func(w store.Will) {
			s := session(w.ClientID)
			if s == nil {
				return
			}
			m, err := messageFromStore(&w.Msg)
			if err != nil {
				fail(fmt.Errorf("will of %q: %w", w.ClientID, err))
				return
			}
			s.will = &sessionWill{m: m, at: w.PublishAt}
			if s.will.at == 0 {
				s.will.at = now // the connection ended with the broker: the will is due
			}
			s.l.wait(s)
			rs.Wills++
		},
	})
	if err == nil {
		err = firstErr
	}
	if maxMark > b.qos2Mark.Load() {
		b.qos2Mark.Store(maxMark)
	}
	if err == nil && len(unconfirmed) > 0 {
		done := make(chan error, 1)
		if err = st.Apply(unconfirmed, func(e error) { done <- e }); err == nil {
			err = <-done
		}
	}
	rs.Took = time.Duration(b.opts.Now().UnixNano() - now)
	return rs, err
}

// RestoreStats counts what Restore loaded.
type RestoreStats struct {
	Sessions, Subscriptions, Outbound, Inbound, Retained, Wills int
	// Unconfirmed counts outbound QoS 2 records dropped because their
	// publisher's inbound record was not durable (Session.qos2Mark).
	Unconfirmed int
	Took        time.Duration
}
