package codec

import (
	"bytes"
	"math/bits"
)

// Property value types (§2.2.2.2).
const (
	kindNone byte = iota
	kindByte
	kindUint16
	kindUint32
	kindVarint
	kindString // UTF-8 Encoded String
	kindBinary // Binary Data
	kindPair   // UTF-8 String Pair
)

var propKind = [64]byte{
	PropPayloadFormat:        kindByte,
	PropMessageExpiry:        kindUint32,
	PropContentType:          kindString,
	PropResponseTopic:        kindString,
	PropCorrelationData:      kindBinary,
	PropSubscriptionID:       kindVarint,
	PropSessionExpiry:        kindUint32,
	PropAssignedClientID:     kindString,
	PropServerKeepAlive:      kindUint16,
	PropAuthMethod:           kindString,
	PropAuthData:             kindBinary,
	PropRequestProblemInfo:   kindByte,
	PropWillDelay:            kindUint32,
	PropRequestResponseInfo:  kindByte,
	PropResponseInfo:         kindString,
	PropServerReference:      kindString,
	PropReasonString:         kindString,
	PropReceiveMaximum:       kindUint16,
	PropTopicAliasMaximum:    kindUint16,
	PropTopicAlias:           kindUint16,
	PropMaximumQoS:           kindByte,
	PropRetainAvailable:      kindByte,
	PropUser:                 kindPair,
	PropMaximumPacketSize:    kindUint32,
	PropWildcardSubAvailable: kindByte,
	PropSubIDAvailable:       kindByte,
	PropSharedSubAvailable:   kindByte,
}

func bit(id byte) uint64 { return 1 << id }

// Which properties each packet may carry (§2.2.2.2 table 2-4), as Present
// masks. Only PropUser (everywhere) and PropSubscriptionID (in PUBLISH) may
// repeat.
const (
	propsConnect = 1<<PropSessionExpiry | 1<<PropReceiveMaximum | 1<<PropMaximumPacketSize |
		1<<PropTopicAliasMaximum | 1<<PropRequestResponseInfo | 1<<PropRequestProblemInfo |
		1<<PropUser | 1<<PropAuthMethod | 1<<PropAuthData
	propsWill = 1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropContentType |
		1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropWillDelay | 1<<PropUser
	propsConnack = 1<<PropSessionExpiry | 1<<PropReceiveMaximum | 1<<PropMaximumQoS |
		1<<PropRetainAvailable | 1<<PropMaximumPacketSize | 1<<PropAssignedClientID |
		1<<PropTopicAliasMaximum | 1<<PropReasonString | 1<<PropUser | 1<<PropWildcardSubAvailable |
		1<<PropSubIDAvailable | 1<<PropSharedSubAvailable | 1<<PropServerKeepAlive |
		1<<PropResponseInfo | 1<<PropServerReference | 1<<PropAuthMethod | 1<<PropAuthData
	propsPublish = 1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropContentType |
		1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropSubscriptionID |
		1<<PropTopicAlias | 1<<PropUser
	propsAck         = 1<<PropReasonString | 1<<PropUser
	propsSubscribe   = 1<<PropSubscriptionID | 1<<PropUser
	propsSuback      = 1<<PropReasonString | 1<<PropUser
	propsUnsubscribe = 1 << PropUser
	propsUnsuback    = 1<<PropReasonString | 1<<PropUser
	propsDisconnect  = 1<<PropSessionExpiry | 1<<PropReasonString | 1<<PropUser | 1<<PropServerReference
	propsAuth        = 1<<PropAuthMethod | 1<<PropAuthData | 1<<PropReasonString | 1<<PropUser

	repeatUser    = 1 << PropUser
	repeatPublish = 1<<PropUser | 1<<PropSubscriptionID

	// propsScalar are the properties written from their Present bit; the
	// two list-valued ones are written when their slice is non-empty.
	propsScalar = (propsConnect | propsWill | propsConnack | propsPublish | propsDisconnect | propsAuth) &^
		(1<<PropUser | 1<<PropSubscriptionID)
)

// AllowedProps returns the Present mask of the properties a packet of type t
// may carry (§2.2.2.2); for the CONNECT Will Properties use AllowedWillProps.
// A caller that copies properties from one packet type to another (a Will
// into a PUBLISH) can mask Present with it. Safe for concurrent use.
func AllowedProps(t Type) uint64 {
	switch t {
	case CONNECT:
		return propsConnect
	case CONNACK:
		return propsConnack
	case PUBLISH:
		return propsPublish
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		return propsAck
	case SUBSCRIBE:
		return propsSubscribe
	case SUBACK:
		return propsSuback
	case UNSUBSCRIBE:
		return propsUnsubscribe
	case UNSUBACK:
		return propsUnsuback
	case DISCONNECT:
		return propsDisconnect
	case AUTH:
		return propsAuth
	}
	return 0
}

// AllowedWillProps is the Present mask of the CONNECT Will Properties
// (§3.1.3.2).
const AllowedWillProps uint64 = propsWill

// Reset clears p without dropping the capacity of its User and
// SubscriptionIDs slices, so that decoding into it again does not allocate.
// The old user properties are zeroed so they no longer pin the input they
// aliased.
func (p *Properties) Reset() {
	clear(p.User)
	*p = Properties{SubscriptionIDs: p.SubscriptionIDs[:0], User: p.User[:0]}
}

// str returns the []byte field of a string or binary property.
func (p *Properties) str(id byte) *[]byte {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// num returns the value of a numeric property.
func (p *Properties) num(id byte) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// setNum stores a decoded numeric property and checks its value range.
func (p *Properties) setNum(id byte, v uint32) error {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case PropMessageExpiry:
		p.MessageExpiry = v
	case PropSessionExpiry:
		p.SessionExpiry = v
	case PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case PropWillDelay:
		p.WillDelay = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
		if v == 0 {
			return errPropZero // §3.1.2.11.3, §3.2.2.3.3
		}
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case PropTopicAlias:
		p.TopicAlias = uint16(v)
		if v == 0 {
			return errTopicAlias0 // [MQTT-3.3.2-8]
		}
	case PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
		if v == 0 {
			return errPropZero // §3.1.2.11.4, §3.2.2.3.6
		}
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case PropSubIDAvailable:
		p.SubIDAvailable = byte(v)
	case PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
	if propKind[id] == kindByte && v > 1 {
		return errPropBool // every byte property is 0 or 1 (Maximum QoS too, §3.2.2.3.4)
	}
	return nil
}

// Len returns the encoded length of the property block content, without the
// Variable Byte Integer length that prefixes it.
func (p *Properties) Len() int {
	n := 0
	for b := p.Present & propsScalar; b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		switch propKind[id] {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindString, kindBinary:
			n += 3 + len(*p.str(id))
		}
	}
	for _, id := range p.SubscriptionIDs {
		n += 1 + varintLen(int(id))
	}
	for i := range p.User {
		n += 5 + len(p.User[i].Key) + len(p.User[i].Value)
	}
	return n
}

// Append appends the property block: its Variable Byte Integer length and
// then every property whose Present bit is set, followed by every
// subscription identifier and user property (in slice order). It writes
// what p holds, whether or not the packet it goes into allows it.
func (p *Properties) Append(dst []byte) []byte { return p.appendBlock(dst, p.Len()) }

// appendBlock is Append with the length already computed.
func (p *Properties) appendBlock(dst []byte, n int) []byte {
	dst = AppendVarint(dst, n)
	if n == 0 {
		return dst
	}
	return p.AppendContent(dst)
}

// AppendContent appends the properties without the block's length (Len
// bytes): for a block assembled from parts (AppendPublishHeaderExtra).
func (p *Properties) AppendContent(dst []byte) []byte {
	for b := p.Present & propsScalar; b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		dst = append(dst, id)
		switch propKind[id] {
		case kindByte:
			dst = append(dst, byte(p.num(id)))
		case kindUint16:
			dst = appendUint16(dst, uint16(p.num(id)))
		case kindUint32:
			dst = appendUint32(dst, p.num(id))
		case kindString, kindBinary:
			dst = appendBinary(dst, *p.str(id))
		}
	}
	for _, id := range p.SubscriptionIDs {
		dst = AppendVarint(append(dst, PropSubscriptionID), int(id))
	}
	for i := range p.User {
		dst = append(dst, PropUser)
		dst = appendBinary(dst, p.User[i].Key)
		dst = appendBinary(dst, p.User[i].Value)
	}
	return dst
}

// decode reads a property block (length and properties) at the start of b
// into p, which the caller has Reset, and returns the bytes after it.
// allowed is the packet's mask and repeat the properties that may appear
// more than once. A property not allowed in the packet (or unknown) is
// Malformed (§2.2.2.2); a second copy of one that may appear once is a
// Protocol Error. Values are range-checked as §3 describes for each.
func (p *Properties) decode(b []byte, allowed, repeat uint64) ([]byte, error) {
	n, b, err := readVarint(b)
	if err != nil {
		return b, err
	}
	if n > len(b) {
		return b, errPropShort
	}
	block, rest := b[:n], b[n:]
	for len(block) > 0 {
		id := block[0]
		block = block[1:]
		if id >= 64 || allowed&bit(id) == 0 {
			return rest, errPropNotAllow
		}
		if p.Has(id) && repeat&bit(id) == 0 {
			return rest, errPropDup
		}
		if id != PropUser && id != PropSubscriptionID {
			p.Present |= bit(id)
		}
		var v uint32
		var s []byte
		switch propKind[id] {
		case kindByte:
			var c byte
			c, block, err = readByte(block)
			v = uint32(c)
		case kindUint16:
			var u uint16
			u, block, err = readUint16(block)
			v = uint32(u)
		case kindUint32:
			v, block, err = readUint32(block)
		case kindString:
			s, block, err = readString(block)
		case kindBinary:
			s, block, err = readBinary(block)
		case kindVarint: // Subscription Identifier
			var x int
			x, block, err = readVarint(block)
			if err == nil && x == 0 {
				err = errSubIDZero // §3.8.2.1.2
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(x))
		case kindPair:
			var k, val []byte
			if k, block, err = readString(block); err == nil {
				if val, block, err = readString(block); err == nil {
					p.User = append(p.User, UserProperty{Key: k, Value: val})
				}
			}
		}
		if err != nil {
			return rest, err
		}
		switch propKind[id] {
		case kindByte, kindUint16, kindUint32:
			err = p.setNum(id, v)
		case kindString, kindBinary:
			*p.str(id) = s
			if id == PropResponseTopic && (bytes.IndexByte(s, '+') >= 0 || bytes.IndexByte(s, '#') >= 0) {
				err = errRespTopicWild // [MQTT-3.3.2-14]
			}
		}
		if err != nil {
			return rest, err
		}
	}
	if p.Present&bit(PropAuthData) != 0 && p.Present&bit(PropAuthMethod) == 0 {
		return rest, errAuthDataNoMet // §3.1.2.11.10, §3.2.2.3.17, §3.15.2.2.3
	}
	return rest, nil
}

// DecodePublishProps reads a property block as a PUBLISH carries it (the
// form Properties.Append writes) into p, which it resets first. It is how a
// stored message's properties come back; slices alias b.
func (p *Properties) DecodePublishProps(b []byte) error {
	p.Reset()
	_, err := p.decode(b, propsPublish, repeatPublish)
	return err
}
