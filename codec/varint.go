package codec

import "encoding/binary"

// MaxVarint is the largest value a Variable Byte Integer can hold (§1.5.5),
// and so the largest remaining length.
const MaxVarint = 268435455

// MaxPacketSize is the largest packet the protocol can express: a 5-byte
// fixed header plus the largest remaining length.
const MaxPacketSize = MaxVarint + 5

// AppendVarint appends v as a Variable Byte Integer (§1.5.5) in the minimum
// number of bytes. v must be in [0, MaxVarint]; anything else is a bug in
// the caller and panics.
func AppendVarint(dst []byte, v int) []byte {
	if v < 0 || v > MaxVarint {
		panic("BUG: codec: variable byte integer out of range")
	}
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// varintLen is the encoded size of v.
func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// readVarint decodes a Variable Byte Integer at the start of b. Encodings
// longer than 4 bytes and non-minimal encodings [MQTT-1.5.5-1] are Malformed.
func readVarint(b []byte) (int, []byte, error) {
	v := 0
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, b, errShort
		}
		c := b[i]
		v |= int(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, b, errVarintNonMin // [MQTT-1.5.5-1]
			}
			return v, b[i+1:], nil
		}
	}
	return 0, b, errVarintLong
}

func readByte(b []byte) (byte, []byte, error) {
	if len(b) < 1 {
		return 0, b, errShort
	}
	return b[0], b[1:], nil
}

func readUint16(b []byte) (uint16, []byte, error) {
	if len(b) < 2 {
		return 0, b, errShort
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}

func readUint32(b []byte) (uint32, []byte, error) {
	if len(b) < 4 {
		return 0, b, errShort
	}
	return binary.BigEndian.Uint32(b), b[4:], nil
}

// readBinary reads Binary Data (§1.5.6): a two-byte length and that many
// bytes. The result aliases b, with its capacity clipped so that appending to
// it can never overwrite the bytes after it.
func readBinary(b []byte) ([]byte, []byte, error) {
	if len(b) < 2 {
		return nil, b, errShort
	}
	n := int(binary.BigEndian.Uint16(b)) + 2
	if len(b) < n {
		return nil, b, errShort
	}
	return b[2:n:n], b[n:], nil
}

// readString reads a UTF-8 Encoded String (§1.5.4) and validates it.
func readString(b []byte) ([]byte, []byte, error) {
	s, rest, err := readBinary(b)
	if err != nil {
		return nil, b, err
	}
	if err := validUTF8(s); err != nil {
		return nil, b, err
	}
	return s, rest, nil
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendBinary appends a two-byte length and s. A field longer than 65535
// bytes cannot be encoded; that is a bug in the caller and panics.
func appendBinary(dst, s []byte) []byte {
	if len(s) > 0xffff {
		panic("BUG: codec: string or binary field longer than 65535 bytes")
	}
	return append(appendUint16(dst, uint16(len(s))), s...)
}

// appendFixedHeader appends the first byte and the remaining length.
func appendFixedHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	return AppendVarint(append(dst, byte(t)<<4|flags&0x0f), remaining)
}
