package codec

var (
	errUnsubscribeEmpty = protocolErr("UNSUBSCRIBE without a topic filter", "MQTT-3.10.3-2")
	errUnsubackEmpty    = protocolErr("UNSUBACK without a reason code", "")
)

// Decode decodes an UNSUBSCRIBE body for version v, reusing p.Filters. It
// checks the flags 0010 [MQTT-3.10.1-1] (MQTT 3.1 also allows DUP), packet
// identifier 0, the v5 properties, that there is at least one filter
// [MQTT-3.10.3-2] and that each is UTF-8 [MQTT-3.10.3-1]. Filter syntax is
// not checked: a filter that is not valid simply matches no subscription.
func (p *Unsubscribe) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	clear(p.Filters)
	p.PacketID, p.Filters = 0, p.Filters[:0]
	if err := checkHeaderFlags(qos1Flags(h, v), body, UNSUBSCRIBE, 2, errFlagsUnsub); err != nil { // [MQTT-3.10.1-1]
		return err
	}
	id, b, err := readUint16(body)
	if err != nil {
		return err
	}
	if id == 0 {
		return packetIDZero(v)
	}
	p.PacketID = id
	if v == V5 {
		if b, err = p.Props.decode(b, propsUnsubscribe, repeatUser); err != nil {
			return err
		}
	}
	if len(b) == 0 {
		return errUnsubscribeEmpty // [MQTT-3.10.3-2]
	}
	for len(b) > 0 {
		var f []byte
		if f, b, err = readString(b); err != nil { // [MQTT-3.10.3-1]
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	return nil
}

// Append appends p as an UNSUBSCRIBE packet for version v.
func (p *Unsubscribe) Append(dst []byte, v Version) []byte {
	n, propsLen := 2, 0
	if v == V5 {
		propsLen = p.Props.Len()
		n += varintLen(propsLen) + propsLen
	}
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	dst = appendFixedHeader(dst, UNSUBSCRIBE, 2, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendBlock(dst, propsLen)
	}
	for _, f := range p.Filters {
		dst = appendBinary(dst, f)
	}
	return dst
}

// validUnsubackCode reports whether c may appear in a v5 UNSUBACK (§3.11.3).
func validUnsubackCode(c ReasonCode) bool {
	switch c {
	case Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse:
		return true
	}
	return false
}

// Decode decodes an UNSUBACK body for version v, reusing p.Codes. In 3.x the
// remaining length is exactly 2 and Codes stays empty; in v5 it carries
// properties and at least one valid reason code.
func (p *Unsuback) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.PacketID, p.Codes = 0, p.Codes[:0]
	if err := checkHeader(h, body, UNSUBACK, 0); err != nil {
		return err
	}
	id, b, err := readUint16(body)
	if err != nil {
		return err
	}
	p.PacketID = id
	if v != V5 {
		if len(b) != 0 {
			return errTrailing
		}
		return nil
	}
	if b, err = p.Props.decode(b, propsUnsuback, repeatUser); err != nil {
		return err
	}
	if len(b) == 0 {
		return errUnsubackEmpty
	}
	for _, c := range b {
		if !validUnsubackCode(ReasonCode(c)) {
			return errReasonCode
		}
		p.Codes = append(p.Codes, ReasonCode(c))
	}
	return nil
}

// Append appends p as an UNSUBACK packet for version v (properties and
// codes: v5 only).
func (p *Unsuback) Append(dst []byte, v Version) []byte {
	if v != V5 {
		dst = appendFixedHeader(dst, UNSUBACK, 0, 2)
		return appendUint16(dst, p.PacketID)
	}
	propsLen := p.Props.Len()
	dst = appendFixedHeader(dst, UNSUBACK, 0, 2+varintLen(propsLen)+propsLen+len(p.Codes))
	dst = appendUint16(dst, p.PacketID)
	dst = p.Props.appendBlock(dst, propsLen)
	for _, c := range p.Codes {
		dst = append(dst, byte(c))
	}
	return dst
}
