package broker

import (
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// The QoS 1/2 acknowledgement packets: PUBACK, PUBREC, PUBREL and PUBCOMP
// received (handleAck) and queued (queueAck). Acknowledgements that wait
// for the store are ack.go's.

// queueAck queues PUBACK/PUBREC/PUBREL/PUBCOMP.
func (c *Client) queueAck(t codec.Type, pid uint16, code codec.ReasonCode) {
	a := codec.Ack{Type: t, PacketID: pid, Code: code}
	c.queueControl(a.Append(c.controlBuf(), c.version))
}

// forgetInbound ends the inbound QoS 2 exchange of pid when its PUBREC
// refuses it (a reason code of 0x80 or more ends the flow, §4.3.3; a 3.x
// connection closed instead): a later PUBLISH with the id is a new message
// and must be routed, not taken for a resend of this one, or it would be
// acknowledged and lost. Loop-only.
func (s *Session) forgetInbound(pid uint16) {
	q := s.qosState
	if q == nil {
		return
	}
	for i, id := range q.inboundQoS2 {
		if id == pid {
			last := len(q.inboundQoS2) - 1
			q.inboundQoS2[i] = q.inboundQoS2[last]
			q.inboundQoS2 = q.inboundQoS2[:last]
			s.storeInbound(pid, true, nil)
			return
		}
	}
}

// handleAck processes PUBACK, PUBREC, PUBREL and PUBCOMP.
func (c *Client) handleAck(a *codec.Ack) error {
	s := c.s
	switch a.Type {
	case codec.PUBREL:
		q := s.qos()
		for i, id := range q.inboundQoS2 {
			if id == a.PacketID {
				last := len(q.inboundQoS2) - 1
				q.inboundQoS2[i] = q.inboundQoS2[last]
				q.inboundQoS2 = q.inboundQoS2[:last]
				// [MQTT-4.3.3-11] PUBREL → PUBCOMP, once the id is
				// forgotten durably: otherwise a restart would take the
				// next message with this id for a duplicate.
				if s.persistent() {
					aw := newAckWait(c, codec.PUBCOMP, a.PacketID)
					s.storeInbound(a.PacketID, true, aw)
					aw.releaseOn(c.l, nil)
					return nil
				}
				c.queueAck(codec.PUBCOMP, a.PacketID, codec.Success)
				return nil
			}
		}
		c.queueAck(codec.PUBCOMP, a.PacketID, codec.PacketIdentifierNotFound)
		return nil
	case codec.PUBACK:
		s.ackOutbound(a.PacketID, 1, false)
	case codec.PUBREC:
		i := s.findInflight(a.PacketID, 2)
		if i < 0 {
			if c.version == codec.V5 {
				c.queueAck(codec.PUBREL, a.PacketID, codec.PacketIdentifierNotFound)
			} else {
				c.queueAck(codec.PUBREL, a.PacketID, codec.Success)
			}
			return nil
		}
		if a.Code.IsError() {
			// [MQTT-4.3.3-9] / [MQTT-4.8.2-6]: a failed PUBREC ends the flow.
			s.ackOutbound(a.PacketID, 2, true)
			return nil
		}
		q := s.qosState // not nil: findInflight found it
		om := q.inflight.at(i)
		if om.state != outPubrec {
			if om.state == outHeld {
				q.held--
			}
			om.state = outPubrec
			s.storeReleased(om)
			s.dropMsg(om) // the message itself is no longer needed
		}
		c.queueAck(codec.PUBREL, a.PacketID, codec.Success)
	case codec.PUBCOMP:
		s.ackOutbound(a.PacketID, 2, true)
	}
	return nil
}

func (s *Session) findInflight(pid uint16, qos byte) int {
	q := s.qosState
	if q == nil {
		return -1
	}
	for i := 0; i < q.inflight.len(); i++ {
		if om := q.inflight.at(i); om.pid == pid && om.qos == qos {
			return i
		}
	}
	return -1
}

// ackOutbound completes an outbound flow and refills the window.
func (s *Session) ackOutbound(pid uint16, qos byte, _ bool) {
	i := s.findInflight(pid, qos)
	if i < 0 {
		return
	}
	q := s.qosState
	om := q.inflight.remove(i)
	if om.state == outHeld {
		q.held--
	}
	s.storeOutboundDone(om, nil)
	if om.m != nil && s.l.hooked.Has(hooks.Acked) {
		m := om.m
		s.l.b.hooks.Acked(s.hookTo(), s.l.hookMessage(m.Topic, m.Payload, om.qos, om.retain, m.Props, originOf(m), nil))
	}
	s.dropMsg(om)
	s.freePID(pid)
	s.pump()
}

// completeOutbound forgets an inflight message that was dropped as too large.
func (s *Session) completeOutbound(pid uint16) {
	q := s.qosState
	if q == nil {
		return
	}
	for i := 0; i < q.inflight.len(); i++ {
		if om := q.inflight.at(i); om.pid == pid {
			q.inflight.remove(i)
			s.storeOutboundDone(om, nil)
			s.dropMsg(om)
			s.freePID(pid)
			return
		}
	}
}
