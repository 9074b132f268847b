package client

import "math/bits"

// track follows the sequence numbers one receiver got from one publisher: a
// bitmap of the sequence numbers seen (grown on demand), how many were new,
// how many were seen before (duplicates), and how many arrived after a
// higher one (out of order). Loop-only while the engine runs.
type track struct {
	bits   []uint64
	unique uint64
	dups   uint64
	ooo    uint64
	next   uint64 // highest sequence seen + 1
}

// maxTrackedSeq bounds the bitmap (64 MiB per publisher at most): a sequence
// number above it is counted as foreign, not tracked.
const maxTrackedSeq = 1<<29 - 1

// add records seq and reports whether it was new.
func (t *track) add(seq uint32) bool {
	w := int(seq >> 6)
	if w >= len(t.bits) {
		n := max(2*len(t.bits), w+1, 16)
		nb := make([]uint64, n)
		copy(nb, t.bits)
		t.bits = nb
	}
	m := uint64(1) << (seq & 63)
	if t.bits[w]&m != 0 {
		t.dups++
		return false
	}
	t.bits[w] |= m
	t.unique++
	if uint64(seq) < t.next {
		t.ooo++
	} else {
		t.next = uint64(seq) + 1
	}
	return true
}

// orInto sets in dst every bit set in t and returns dst.
func (t *track) orInto(dst []uint64) []uint64 {
	if len(dst) < len(t.bits) {
		dst = append(dst, make([]uint64, len(t.bits)-len(dst))...)
	}
	for i, w := range t.bits {
		dst[i] |= w
	}
	return dst
}

// popcount returns the number of bits set in b.
func popcount(b []uint64) uint64 {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}
