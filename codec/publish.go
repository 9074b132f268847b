package codec

import "unicode/utf8"

var (
	errPublishQoS3  = malformed("PUBLISH QoS 3", "MQTT-3.3.1-4")
	errPublishDupQ0 = protocolErr("DUP set on a QoS 0 PUBLISH", "MQTT-3.3.1-2")
)

// Decode decodes a PUBLISH body for version v. It allocates nothing when p
// is reused (the user property and subscription identifier slices keep
// their capacity); Topic, Payload and the properties alias body.
//
// It checks QoS 3 (Malformed, [MQTT-3.3.1-4]), DUP with QoS 0
// [MQTT-3.3.1-2], packet identifier 0 with QoS > 0 (v5 [MQTT-2.2.1-3],
// 3.1.1 [MQTT-2.3.1-1]), the topic (UTF-8 [MQTT-1.5.4-1/-2], no wildcards:
// TopicNameInvalid [MQTT-3.3.2-2]; empty: TopicNameInvalid [MQTT-4.7.3-1] in
// 3.x, and in v5 allowed only with a Topic Alias, else Protocol Error
// §3.3.2.1), the v5 properties (Topic Alias 0: TopicAliasInvalid
// [MQTT-3.3.2-8]). It does not reject an inbound Subscription Identifier
// [MQTT-3.3.4-6]: this decoder serves both directions, so the broker checks
// that.
//
// Last, in v5 with Payload Format Indicator 1 and a payload that is not
// valid UTF-8 it returns PayloadFormatInvalid (0x99) with p fully decoded,
// so the receiver can answer with a PUBACK/PUBREC carrying 0x99 (§3.3.2.3.2)
// rather than close.
func (p *Publish) Decode(h FixedHeader, body []byte, v Version) error {
	// Field by field: copying the whole struct costs more than the decode.
	p.Props.Reset()
	p.Topic, p.PacketID, p.Payload = nil, 0, nil
	if h.Type != PUBLISH {
		return errWrongType
	}
	if len(body) != h.Remaining {
		return errBodyLen
	}
	p.Dup, p.QoS, p.Retain = h.Flags&8 != 0, h.Flags>>1&3, h.Flags&1 != 0
	if p.QoS == 3 {
		return errPublishQoS3 // [MQTT-3.3.1-4]
	}
	if p.Dup && p.QoS == 0 {
		return errPublishDupQ0 // [MQTT-3.3.1-2]
	}
	topic, b, err := readBinary(body)
	if err != nil {
		return err
	}
	if err := validateTopicChars(topic); err != nil { // [MQTT-3.3.2-2], [MQTT-1.5.4-1/-2]
		return err
	}
	p.Topic = topic
	if p.QoS > 0 {
		if p.PacketID, b, err = readUint16(b); err != nil {
			return err
		}
		if p.PacketID == 0 {
			return packetIDZero(v)
		}
	}
	if v == V5 {
		if b, err = p.Props.decode(b, propsPublish, repeatPublish); err != nil {
			return err
		}
	}
	p.Payload = b
	if len(topic) == 0 {
		if v != V5 {
			return errTopicEmpty // [MQTT-4.7.3-1]
		}
		if p.Props.Present&bit(PropTopicAlias) == 0 {
			return errTopicEmptyNoAli // §3.3.2.1
		}
	}
	if v == V5 && p.Props.PayloadFormat == 1 && !utf8.Valid(b) {
		return errPayloadFormat // §3.3.2.3.2
	}
	return nil
}

// flags returns the low nibble of the fixed header.
func (p *Publish) flags() byte {
	f := (p.QoS & 3) << 1
	if p.Dup {
		f |= 8
	}
	if p.Retain {
		f |= 1
	}
	return f
}

// remaining returns the remaining length and the property block length;
// extra is the length of property bytes encoded elsewhere that end the
// block (AppendPublishHeaderExtra).
func (p *Publish) remaining(v Version, extra int) (n, propsLen int) {
	n = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		propsLen = p.Props.Len() + extra
		n += varintLen(propsLen) + propsLen
	}
	return n, propsLen
}

// Len returns the size of p encoded for version v, payload included,
// without encoding it, for Maximum Packet Size checks [MQTT-3.1.2-24].
func (p *Publish) Len(v Version) int { return p.LenExtra(v, 0) }

// LenExtra is Len for AppendPublishHeaderExtra with extra property bytes.
func (p *Publish) LenExtra(v Version, extra int) int {
	n, _ := p.remaining(v, extra)
	return 1 + varintLen(n) + n
}

// Append appends p as a PUBLISH packet for version v.
func (p *Publish) Append(dst []byte, v Version) []byte {
	return append(AppendPublishHeader(dst, p, v), p.Payload...)
}

// AppendPublishHeader appends everything of the PUBLISH packet p except its
// payload: the fixed header (whose remaining length counts len(p.Payload)),
// the topic, the packet identifier when QoS > 0 and, for v5, the
// properties. It never reads the payload's bytes, so a payload shared
// between many deliveries can be written as a separate vector. It does not
// allocate when dst has room.
func AppendPublishHeader(dst []byte, p *Publish, v Version) []byte {
	return AppendPublishHeaderExtra(dst, p, v, 0)
}

// AppendPublishHeaderExtra is AppendPublishHeader for a v5 PUBLISH whose
// property block ends with extra bytes of properties encoded once
// elsewhere (Properties.AppendContent) and shared between deliveries: the
// block's length counts them, and the caller writes them right after the
// header, before the payload. For other versions extra must be 0.
func AppendPublishHeaderExtra(dst []byte, p *Publish, v Version, extra int) []byte {
	n, propsLen := p.remaining(v, extra)
	dst = appendFixedHeader(dst, PUBLISH, p.flags(), n)
	dst = appendBinary(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = AppendVarint(dst, propsLen)
		dst = p.Props.AppendContent(dst)
	}
	return dst
}
