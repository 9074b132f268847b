package codec

// Frame inspects the bytes buffered so far and finds the first packet in them.
// It never allocates and never looks past the fixed header.
//
//   - It returns the fixed header and nil when buf holds one complete packet
//     of h.Len() bytes; buf may hold more after it.
//   - It returns ErrIncomplete when more bytes are needed; h is filled in if
//     the fixed header itself is complete, so a caller can see how much to
//     wait for.
//   - It returns a *ReasonError when the header is malformed: packet type 0,
//     a remaining length whose fourth byte still has the continuation bit
//     set, or a remaining length that is not minimally encoded (this package
//     rejects non-minimal encodings [MQTT-1.5.5-1]; no real client sends
//     them).
//   - It returns a *ReasonError with Code PacketTooLarge (0x95) and the
//     header when h.Len() > maxPacketSize, as soon as the fixed header is
//     complete, before the body arrives. maxPacketSize <= 0 means the
//     protocol maximum (MaxPacketSize), which every header satisfies.
//
// Frame does not check the flags of the first byte: each Decode does, since
// the rules depend on the packet type and protocol version.
//
// Safe for concurrent use (it keeps no state).
func Frame(buf []byte, maxPacketSize int) (FixedHeader, error) {
	if len(buf) == 0 {
		return FixedHeader{}, ErrIncomplete
	}
	if buf[0]>>4 == 0 {
		return FixedHeader{}, errTypeZero
	}
	rem := 0
	for i := 0; ; i++ {
		if i == 4 {
			return FixedHeader{}, errVarintLong
		}
		if 1+i >= len(buf) {
			return FixedHeader{}, ErrIncomplete
		}
		c := buf[1+i]
		rem |= int(c&0x7f) << (7 * i)
		if c&0x80 != 0 {
			continue
		}
		if i > 0 && c == 0 {
			return FixedHeader{}, errVarintNonMin // [MQTT-1.5.5-1]
		}
		h := FixedHeader{Type: Type(buf[0] >> 4), Flags: buf[0] & 0x0f, Remaining: rem, HeaderLen: 2 + i}
		if maxPacketSize > 0 && h.Len() > maxPacketSize {
			return h, errPacketTooBig
		}
		if len(buf) < h.Len() {
			return h, ErrIncomplete
		}
		return h, nil
	}
}

// Body returns the body of the packet that Frame found at the start of buf.
// It assumes Frame returned nil for h and buf.
func (h FixedHeader) Body(buf []byte) []byte { return buf[h.HeaderLen:h.Len():h.Len()] }

// checkHeader checks the parts of the fixed header every decoder checks: the
// type, the reserved flags (0 [MQTT-2.1.3-1]) and the body length.
func checkHeader(h FixedHeader, body []byte, t Type, flags byte) error {
	return checkHeaderFlags(h, body, t, flags, errFlags)
}

// checkHeaderFlags is checkHeader for a packet whose flags must be flags,
// returning flagsErr when they are not.
func checkHeaderFlags(h FixedHeader, body []byte, t Type, flags byte, flagsErr error) error {
	if h.Type != t {
		return errWrongType
	}
	if h.Flags != flags {
		return flagsErr
	}
	if len(body) != h.Remaining {
		return errBodyLen
	}
	return nil
}

// DecodeEmpty checks a packet that has no variable header or payload:
// PINGREQ, PINGRESP and the 3.x DISCONNECT. Its flags must be 0
// [MQTT-2.1.3-1] and its remaining length 0. It does not check the type.
func DecodeEmpty(h FixedHeader) error {
	if h.Flags != 0 {
		return errFlags
	}
	if h.Remaining != 0 {
		return errTrailing
	}
	return nil
}

// AppendPingreq appends a PINGREQ packet.
func AppendPingreq(dst []byte) []byte { return append(dst, byte(PINGREQ)<<4, 0) }

// AppendPingresp appends a PINGRESP packet.
func AppendPingresp(dst []byte) []byte { return append(dst, byte(PINGRESP)<<4, 0) }
