package client

import "encoding/binary"

// HeaderLen is the size of the header every tracked payload starts with:
// the send time (8 bytes, nanoseconds since Options.Base, big endian), the
// publisher id (4 bytes) and the sequence number (4 bytes). A payload
// shorter than this is not tracked (the retained scenario clears its topics
// with empty payloads).
const HeaderLen = 16

// putHeader writes the tracking header into p, which has at least HeaderLen
// bytes.
func putHeader(p []byte, sentNanos int64, pub, seq uint32) {
	binary.BigEndian.PutUint64(p[0:8], uint64(sentNanos))
	binary.BigEndian.PutUint32(p[8:12], pub)
	binary.BigEndian.PutUint32(p[12:16], seq)
}

// readHeader returns the fields putHeader wrote; ok is false when p is too
// short to hold them.
func readHeader(p []byte) (sentNanos int64, pub, seq uint32, ok bool) {
	if len(p) < HeaderLen {
		return 0, 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(p[0:8])), binary.BigEndian.Uint32(p[8:12]), binary.BigEndian.Uint32(p[12:16]), true
}
