package codec

import "bytes"

// SUBSCRIBE errors; several statements are numbered differently in 3.1.1 and 5.
var (
	errSubscribeEmptyV5  = protocolErr("SUBSCRIBE without a topic filter", "MQTT-3.8.3-2")
	errSubscribeEmptyV3  = protocolErr("SUBSCRIBE without a topic filter", "MQTT-3.8.3-3")
	errSubOptsReservedV5 = malformed("subscription options reserved bits set", "MQTT-3.8.3-5")
	errSubOptsV3         = malformed("requested QoS byte has reserved bits set or QoS 3", "MQTT-3.8.3-4")
	errSubQoS3           = protocolErr("subscription QoS 3", "")
	errSubRetainHandling = protocolErr("retain handling 3", "")
	errSubNoLocalShared  = protocolErr("no local on a shared subscription", "MQTT-3.8.3-4")
	errSubackEmpty       = protocolErr("SUBACK without a reason code", "MQTT-3.8.4-6")
)

// Subscription option bits (§3.8.3.1).
const (
	optQoS            = 0x03
	optNoLocal        = 0x04
	optRetainAsPub    = 0x08
	optRetainHandling = 0x30
	optReservedV5     = 0xC0
)

// Decode decodes a SUBSCRIBE body for version v into p, reusing p.Subs.
//
// Packet-level failures return at once: flags other than 0010
// [MQTT-3.8.1-1] (MQTT 3.1 also allows DUP), packet identifier 0, the v5
// properties (one Subscription Identifier at most, not 0), no filter at all
// (v5 [MQTT-3.8.3-2], 3.1.1 [MQTT-3.8.3-3]), a filter that is not UTF-8,
// reserved option bits (v5 [MQTT-3.8.3-5], Malformed), QoS 3 or Retain
// Handling 3 (v5: Protocol Error, §3.8.3.1), reserved bits or QoS 3 in the
// 3.x requested-QoS byte (3.1.1 [MQTT-3.8.3-4], Malformed), and No Local on
// a shared subscription (v5 [MQTT-3.8.3-4]).
//
// A filter that is well-formed UTF-8 but breaks the filter syntax
// (ValidateTopicFilter: wildcards [MQTT-4.7.1-1/-2], empty [MQTT-4.7.3-1],
// $share [MQTT-4.8.2-1/-2]) does not stop decoding: p.Subs is filled
// completely and the first such error (Code TopicFilterInvalid) is
// returned, so the broker can choose between closing the connection and
// answering that filter with 0x8F in the SUBACK (ValidateTopicFilter tells
// which filters are bad).
func (p *Subscribe) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	clear(p.Subs)
	p.PacketID, p.Subs = 0, p.Subs[:0]
	if err := checkHeaderFlags(qos1Flags(h, v), body, SUBSCRIBE, 2, errFlagsSub); err != nil { // [MQTT-3.8.1-1]
		return err
	}
	v5 := v == V5
	id, b, err := readUint16(body)
	if err != nil {
		return err
	}
	if id == 0 {
		return packetIDZero(v)
	}
	p.PacketID = id
	if v5 {
		if b, err = p.Props.decode(b, propsSubscribe, repeatUser); err != nil {
			return err
		}
	}
	if len(b) == 0 {
		return pick(v5, errSubscribeEmptyV5, errSubscribeEmptyV3)
	}
	var filterErr error
	for len(b) > 0 {
		var s Subscription
		if s.Filter, b, err = readString(b); err != nil { // [MQTT-3.8.3-1]
			return err
		}
		var opts byte
		if opts, b, err = readByte(b); err != nil {
			return err
		}
		s.QoS = opts & optQoS
		if v5 {
			s.NoLocal = opts&optNoLocal != 0
			s.RetainAsPublished = opts&optRetainAsPub != 0
			s.RetainHandling = (opts & optRetainHandling) >> 4
			switch {
			case opts&optReservedV5 != 0:
				return errSubOptsReservedV5 // [MQTT-3.8.3-5]
			case s.QoS == 3:
				return errSubQoS3
			case s.RetainHandling == 3:
				return errSubRetainHandling
			}
		} else if opts&^optQoS != 0 || s.QoS == 3 {
			return errSubOptsV3 // 3.1.1 [MQTT-3.8.3-4]
		}
		if err := validateFilter(s.Filter); err != nil {
			if filterErr == nil {
				filterErr = err
			}
		} else if s.NoLocal && bytes.HasPrefix(s.Filter, sharePrefix) {
			return errSubNoLocalShared // [MQTT-3.8.3-4]
		}
		p.Subs = append(p.Subs, s)
	}
	return filterErr
}

// options returns the subscription options byte for version v.
func (s *Subscription) options(v Version) byte {
	o := s.QoS & optQoS
	if v != V5 {
		return o
	}
	if s.NoLocal {
		o |= optNoLocal
	}
	if s.RetainAsPublished {
		o |= optRetainAsPub
	}
	return o | (s.RetainHandling&3)<<4
}

// Append appends p as a SUBSCRIBE packet for version v (options other than
// QoS and properties: v5 only).
func (p *Subscribe) Append(dst []byte, v Version) []byte {
	n, propsLen := 2, 0
	if v == V5 {
		propsLen = p.Props.Len()
		n += varintLen(propsLen) + propsLen
	}
	for i := range p.Subs {
		n += 2 + len(p.Subs[i].Filter) + 1
	}
	dst = appendFixedHeader(dst, SUBSCRIBE, 2, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendBlock(dst, propsLen)
	}
	for i := range p.Subs {
		dst = append(appendBinary(dst, p.Subs[i].Filter), p.Subs[i].options(v))
	}
	return dst
}

// validSubackCode reports whether c may appear in a SUBACK of version v
// (v5 §3.9.3; 3.1.1 [MQTT-3.9.3-2]: 0, 1, 2 and 0x80).
func validSubackCode(c ReasonCode, v Version) bool {
	switch c {
	case GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError:
		return true
	case ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
		QuotaExceeded, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported:
		return v == V5
	}
	return false
}

// Decode decodes a SUBACK body for version v, reusing p.Codes. It requires
// at least one code, each valid for the version.
func (p *Suback) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.PacketID, p.Codes = 0, p.Codes[:0]
	if err := checkHeader(h, body, SUBACK, 0); err != nil {
		return err
	}
	id, b, err := readUint16(body)
	if err != nil {
		return err
	}
	p.PacketID = id
	if v == V5 {
		if b, err = p.Props.decode(b, propsSuback, repeatUser); err != nil {
			return err
		}
	}
	if len(b) == 0 {
		return errSubackEmpty
	}
	for _, c := range b {
		if !validSubackCode(ReasonCode(c), v) {
			return errReasonCode
		}
		p.Codes = append(p.Codes, ReasonCode(c))
	}
	return nil
}

// Append appends p as a SUBACK packet for version v (properties: v5 only).
func (p *Suback) Append(dst []byte, v Version) []byte {
	n, propsLen := 2+len(p.Codes), 0
	if v == V5 {
		propsLen = p.Props.Len()
		n += varintLen(propsLen) + propsLen
	}
	dst = appendFixedHeader(dst, SUBACK, 0, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendBlock(dst, propsLen)
	}
	for _, c := range p.Codes {
		dst = append(dst, byte(c))
	}
	return dst
}
