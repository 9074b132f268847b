package codec

var errAckShort = malformed("acknowledgement without a packet identifier", "")

// qos1Flags prepares h for checking the flags PUBREL, SUBSCRIBE and UNSUBSCRIBE carry
// (0010). MQTT 3.1 let a client set DUP on them when resending, so with V31
// the DUP bit is cleared before the comparison.
func qos1Flags(h FixedHeader, v Version) FixedHeader {
	if v == V31 {
		h.Flags &^= 8
	}
	return h
}

// validAckCode reports whether c is a reason code packet type t may carry
// (§3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1).
func validAckCode(t Type, c ReasonCode) bool {
	switch t {
	case PUBACK, PUBREC:
		switch c {
		case Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
			NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid:
			return true
		}
	case PUBREL, PUBCOMP:
		return c == Success || c == PacketIdentifierNotFound
	}
	return false
}

// Decode decodes a PUBACK, PUBREC, PUBREL or PUBCOMP body for version v and
// sets p.Type from h. PUBREL's flags must be 0010 [MQTT-3.6.1-1], the others'
// 0000. In v5 the reason code and properties are optional: a remaining
// length of 2 means Success and no properties, 3 a code and no properties
// (§3.4.2.1); the code must be one the packet type allows. In 3.x the
// remaining length is exactly 2. A packet identifier of 0 is not rejected
// here (it matches nothing in flight).
func (p *Ack) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.Type, p.PacketID, p.Code = 0, 0, Success
	var err error
	switch h.Type {
	case PUBACK, PUBREC, PUBCOMP:
		err = checkHeader(h, body, h.Type, 0)
	case PUBREL:
		err = checkHeaderFlags(qos1Flags(h, v), body, PUBREL, 2, errFlagsPubrel) // [MQTT-3.6.1-1]
	default:
		err = errWrongType
	}
	if err != nil {
		return err
	}
	p.Type = h.Type
	if len(body) < 2 {
		return errAckShort
	}
	p.PacketID = uint16(body[0])<<8 | uint16(body[1])
	b := body[2:]
	if v == V5 && len(b) > 0 {
		p.Code = ReasonCode(b[0])
		if !validAckCode(p.Type, p.Code) {
			return errReasonCode
		}
		if b = b[1:]; len(b) > 0 {
			if b, err = p.Props.decode(b, propsAck, repeatUser); err != nil {
				return err
			}
		}
	}
	if len(b) != 0 {
		return errTrailing
	}
	return nil
}

// Append appends p as a p.Type packet for version v. In v5 the reason code
// and property length are left out when the code is Success and there are
// no properties, and the property length when there are no properties
// (§3.4.2.1).
func (p *Ack) Append(dst []byte, v Version) []byte {
	flags := byte(0)
	if p.Type == PUBREL {
		flags = 2
	}
	if v != V5 {
		dst = appendFixedHeader(dst, p.Type, flags, 2)
		return appendUint16(dst, p.PacketID)
	}
	propsLen := p.Props.Len()
	switch {
	case propsLen > 0:
		dst = appendFixedHeader(dst, p.Type, flags, 3+varintLen(propsLen)+propsLen)
		dst = append(appendUint16(dst, p.PacketID), byte(p.Code))
		return p.Props.appendBlock(dst, propsLen)
	case p.Code != Success:
		dst = appendFixedHeader(dst, p.Type, flags, 3)
		return append(appendUint16(dst, p.PacketID), byte(p.Code))
	}
	dst = appendFixedHeader(dst, p.Type, flags, 2)
	return appendUint16(dst, p.PacketID)
}
