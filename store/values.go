package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// formatV1 is the first byte of every value this version writes. A decoder
// refuses any other version, so a future format can be told apart.
const formatV1 = 1

// Value layouts, format 1 (integers big-endian, uv = unsigned varint):
//
//	session   1 | version | expiry u32 | disconnectedAt i64 | qos2Mark u64   (22 bytes)
//	sub       1 | qos | flags (1 noLocal, 2 retainAsPublished) | retainHandling | id uv
//	outbound  1 | packetID u16 | state [| originMark u64 | originLen uv | origin] | message with topic
//	          (state bit 0x80 says the origin fields are there)
//	inbound   1
//	retained  1 | message without topic (the topic is the key)
//	will      1 | publishAt i64 | message with topic
//	delayed   1 | originLen uv | origin | message with topic (publishAt and id are in the key)
//	message   flags (qos in bits 0-1, 4 retain, 8 versioned) | expireAt i64 | created i64 |
//	          [version u64 | nodeLen uv | node] (flag 8: a cluster's retained message) |
//	          [topicLen uv | topic] | propsLen uv | props | payload (the rest)
//
// Records without flag 8 (every record of a single node, and those written
// before clustering) read as Version 0, so old stores stay readable.
const (
	sessionValueLen = 1 + 1 + 4 + 8 + 8
	outboundOrigin  = 0x80 // state flag: origin fields follow
	msgFixedLen     = 1 + 8 + 8

	subNoLocal           = 1
	subRetainAsPublished = 2

	msgQoSMask   = 3
	msgRetain    = 4
	msgVersioned = 8
)

var (
	errVersion   = errors.New("unknown value format version")
	errTrailing  = errors.New("bytes after the last field")
	errShortVal  = errors.New("value shorter than its fields")
	errRange     = errors.New("field out of range")
	errBadKey    = errors.New("malformed key")
	errUnknownTy = errors.New("unknown key type")
)

// msgSize is an upper bound of the encoded size of m.
func msgSize(m *Message) int {
	return msgFixedLen + 8 + 3*binary.MaxVarintLen64 + len(m.VersionNode) + len(m.Topic) + len(m.Props) + len(m.Payload)
}

func appendMessage(dst []byte, m *Message, withTopic bool) []byte {
	f := m.QoS & msgQoSMask
	if m.Retain {
		f |= msgRetain
	}
	if m.Version != 0 {
		f |= msgVersioned
	}
	dst = append(dst, f)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.ExpireAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Created))
	if m.Version != 0 {
		dst = binary.BigEndian.AppendUint64(dst, m.Version)
		dst = binary.AppendUvarint(dst, uint64(len(m.VersionNode)))
		dst = append(dst, m.VersionNode...)
	}
	if withTopic {
		dst = binary.AppendUvarint(dst, uint64(len(m.Topic)))
		dst = append(dst, m.Topic...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Props)))
	dst = append(dst, m.Props...)
	return append(dst, m.Payload...)
}

func appendSessionValue(dst []byte, s *Session) []byte {
	dst = append(dst, formatV1, s.Version)
	dst = binary.BigEndian.AppendUint32(dst, s.ExpiryInterval)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.DisconnectedAt))
	dst = binary.BigEndian.AppendUint64(dst, s.QoS2Mark)
	if s.OwnerKind == OwnerUnknown {
		return dst // the record as written before owners were kept
	}
	dst = append(dst, byte(s.OwnerKind))
	dst = binary.AppendUvarint(dst, uint64(len(s.Owner)))
	return append(dst, s.Owner...)
}

func appendSubValue(dst []byte, s *Subscription) []byte {
	var f byte
	if s.NoLocal {
		f |= subNoLocal
	}
	if s.RetainAsPublished {
		f |= subRetainAsPublished
	}
	dst = append(dst, formatV1, s.QoS, f, s.RetainHandling)
	return binary.AppendUvarint(dst, uint64(s.ID))
}

func appendOutboundValue(dst []byte, o *Outbound) []byte {
	dst = append(dst, formatV1)
	dst = binary.BigEndian.AppendUint16(dst, o.PacketID)
	if o.Origin == "" {
		dst = append(dst, o.State)
	} else {
		dst = append(dst, o.State|outboundOrigin)
		dst = binary.BigEndian.AppendUint64(dst, o.OriginMark)
		dst = binary.AppendUvarint(dst, uint64(len(o.Origin)))
		dst = append(dst, o.Origin...)
	}
	return appendMessage(dst, &o.Msg, true)
}

func appendInboundValue(dst []byte) []byte { return append(dst, formatV1) }

func appendRetainedValue(dst []byte, m *Message) []byte {
	return appendMessage(append(dst, formatV1), m, false)
}

func appendWillValue(dst []byte, w *Will) []byte {
	dst = append(dst, formatV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.PublishAt))
	return appendMessage(dst, &w.Msg, true)
}

func appendDelayedValue(dst []byte, d *Delayed) []byte {
	dst = append(dst, formatV1)
	dst = binary.AppendUvarint(dst, uint64(len(d.Origin)))
	dst = append(dst, d.Origin...)
	return appendMessage(dst, &d.Msg, true)
}

// reader decodes a value; the first failure sticks. It never panics.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) version() {
	if len(r.b) == 0 {
		r.fail(errShortVal)
		return
	}
	if r.b[0] != formatV1 {
		r.fail(fmt.Errorf("%w %d", errVersion, r.b[0]))
		return
	}
	r.b = r.b[1:]
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.fail(errShortVal)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.fail(errShortVal)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.fail(errShortVal)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail(errShortVal)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShortVal)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the input. An empty
// field decodes as nil.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(errShortVal)
		return nil
	}
	if n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// max fails with errRange when v > limit.
func (r *reader) max(v, limit byte) byte {
	if v > limit {
		r.fail(errRange)
	}
	return v
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = errTrailing
	}
	return r.err
}

func (r *reader) message(m *Message, withTopic bool) {
	f := r.u8()
	if f&^(msgQoSMask|msgRetain|msgVersioned) != 0 || f&msgQoSMask > 2 {
		r.fail(errRange)
		return
	}
	m.QoS = f & msgQoSMask
	m.Retain = f&msgRetain != 0
	m.ExpireAt = int64(r.u64())
	m.Created = int64(r.u64())
	if f&msgVersioned != 0 {
		m.Version = r.u64()
		m.VersionNode = r.bytes()
		if m.Version == 0 {
			r.fail(errRange)
		}
	}
	if withTopic {
		m.Topic = r.bytes()
	}
	m.Props = r.bytes()
	if r.err != nil {
		return
	}
	if len(r.b) > 0 {
		m.Payload = r.b[:len(r.b):len(r.b)]
	}
	r.b = nil
}

func decodeSessionValue(cid []byte, val []byte) (Session, error) {
	r := reader{b: val}
	r.version()
	s := Session{ClientID: string(cid)}
	s.Version = r.u8()
	s.ExpiryInterval = r.u32()
	s.DisconnectedAt = int64(r.u64())
	s.QoS2Mark = r.u64()
	if len(r.b) > 0 && r.err == nil {
		s.OwnerKind = OwnerKind(r.max(r.u8(), byte(OwnerUser)))
		s.Owner = string(r.bytes())
	}
	return s, r.end()
}

func decodeSubValue(cid, filter []byte, val []byte) (Subscription, error) {
	r := reader{b: val}
	r.version()
	s := Subscription{ClientID: string(cid), Filter: string(filter)}
	s.QoS = r.max(r.u8(), 2)
	f := r.max(r.u8(), subNoLocal|subRetainAsPublished)
	s.NoLocal = f&subNoLocal != 0
	s.RetainAsPublished = f&subRetainAsPublished != 0
	s.RetainHandling = r.max(r.u8(), 2)
	id := r.uvarint()
	if id > 0xFFFFFFFF {
		r.fail(errRange)
	}
	s.ID = uint32(id)
	return s, r.end()
}

func decodeOutboundValue(cid []byte, seq uint64, val []byte) (Outbound, error) {
	r := reader{b: val}
	r.version()
	o := Outbound{ClientID: string(cid), Seq: seq}
	o.PacketID = r.u16()
	st := r.u8()
	o.State = r.max(st&^outboundOrigin, OutboundReleased)
	if st&outboundOrigin != 0 {
		o.OriginMark = r.u64()
		o.Origin = string(r.bytes())
		if o.Origin == "" {
			r.fail(errRange)
		}
	}
	r.message(&o.Msg, true)
	return o, r.end()
}

func decodeInboundValue(cid []byte, pid uint16, val []byte) (InboundQoS2, error) {
	r := reader{b: val}
	r.version()
	return InboundQoS2{ClientID: string(cid), PacketID: pid}, r.end()
}

func decodeRetainedValue(topic []byte, val []byte) (Message, error) {
	r := reader{b: val}
	r.version()
	var m Message
	r.message(&m, false)
	if len(topic) > 0 {
		m.Topic = topic[:len(topic):len(topic)]
	}
	return m, r.end()
}

func decodeWillValue(cid []byte, val []byte) (Will, error) {
	r := reader{b: val}
	r.version()
	w := Will{ClientID: string(cid)}
	w.PublishAt = int64(r.u64())
	r.message(&w.Msg, true)
	return w, r.end()
}

func decodeDelayedValue(rest []byte, val []byte) (Delayed, error) {
	r := reader{b: val}
	r.version()
	d := Delayed{PublishAt: int64(binary.BigEndian.Uint64(rest[:8])), ID: binary.BigEndian.Uint64(rest[8:])}
	d.Origin = string(r.bytes())
	r.message(&d.Msg, true)
	if r.err == nil && len(d.Msg.Topic) == 0 {
		r.fail(errRange)
	}
	return d, r.end()
}

// record is one decoded key/value pair; kind is its key prefix.
type record struct {
	kind     byte
	cid      []byte // client-owned records
	session  Session
	sub      Subscription
	outbound Outbound
	inbound  InboundQoS2
	retained Message
	will     Will
	delayed  Delayed
}

// decodeRecord decodes one stored pair. The returned record aliases key and
// val (except the strings). It never panics; the error names the key.
func decodeRecord(key, val []byte) (rec record, err error) {
	if len(key) == 0 {
		return rec, fmt.Errorf("%w: empty key: %w", ErrCorrupt, errBadKey)
	}
	rec.kind = key[0]
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w: cannot decode %s record at key %s: %w", ErrCorrupt, kindName(rec.kind), quoteShort(key), err)
		}
	}()
	if rec.kind == prefixRetained {
		rec.retained, err = decodeRetainedValue(key[1:], val)
		return rec, err
	}
	if rec.kind == prefixDelayed {
		if len(key) != 1+8+8 {
			return rec, errBadKey
		}
		rec.delayed, err = decodeDelayedValue(key[1:], val)
		return rec, err
	}
	cid, rest, ok := splitClientKey(key)
	if !ok {
		return rec, errBadKey
	}
	rec.cid = cid
	switch rec.kind {
	case prefixSession:
		if len(rest) != 0 {
			return rec, errBadKey
		}
		rec.session, err = decodeSessionValue(cid, val)
	case prefixSub:
		if len(rest) == 0 {
			return rec, errBadKey
		}
		rec.sub, err = decodeSubValue(cid, rest, val)
	case prefixOutbound:
		if len(rest) != 8 {
			return rec, errBadKey
		}
		rec.outbound, err = decodeOutboundValue(cid, binary.BigEndian.Uint64(rest), val)
	case prefixInbound:
		if len(rest) != 2 {
			return rec, errBadKey
		}
		rec.inbound, err = decodeInboundValue(cid, binary.BigEndian.Uint16(rest), val)
	case prefixWill:
		if len(rest) != 0 {
			return rec, errBadKey
		}
		rec.will, err = decodeWillValue(cid, val)
	default:
		err = errUnknownTy
	}
	return rec, err
}

func kindName(k byte) string {
	switch k {
	case prefixSession:
		return "session"
	case prefixSub:
		return "subscription"
	case prefixOutbound:
		return "outbound"
	case prefixInbound:
		return "inbound"
	case prefixRetained:
		return "retained"
	case prefixWill:
		return "will"
	case prefixDelayed:
		return "delayed"
	}
	return "unknown"
}
