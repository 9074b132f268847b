package store

import (
	"bytes"
	"encoding/binary"
)

// Key type prefixes (BUILDING-BLOCKS §2). Every record owned by a client is
// <prefix><client id>0x00<suffix>: MQTT forbids U+0000 in strings
// [MQTT-1.5.4-2], so the separator cannot occur in a client id and the keys of
// client "ab" never share a prefix with those of "ab:x" or "ab\x01".
const (
	prefixOutbound = 'i' // i<cid>\x00<seq:be64>
	prefixInbound  = 'r' // r<cid>\x00<pid:be16>
	prefixSession  = 's' // s<cid>\x00
	prefixRetained = 't' // t<topic>
	prefixSub      = 'u' // u<cid>\x00<filter>
	prefixWill     = 'w' // w<cid>\x00
	prefixDelayed  = 'd' // d<publishAt:be64><id:be64>, not client-owned (docs/delivery.md)
)

// loadOrder is the order in which Load streams the key ranges.
//
// Delayed messages came later (format 1 still): a broker older than them
// neither loads nor deletes 'd' keys, so a downgrade keeps them stored,
// untouched, for the next upgrade; a store written before them has none.
var loadOrder = [...]byte{prefixSession, prefixSub, prefixOutbound, prefixInbound, prefixRetained, prefixWill, prefixDelayed}

// clientPrefixes are the key ranges a session delete clears.
var clientPrefixes = [...]byte{prefixSession, prefixSub, prefixOutbound, prefixInbound, prefixWill}

// maxKeyLen is Badger's limit on a key (txn.go maxKeySize).
const maxKeyLen = 65000

func appendClientPrefix(dst []byte, prefix byte, cid string) []byte {
	dst = append(dst, prefix)
	dst = append(dst, cid...)
	return append(dst, 0)
}

func appendSessionKey(dst []byte, cid string) []byte {
	return appendClientPrefix(dst, prefixSession, cid)
}

func appendSubKey(dst []byte, cid, filter string) []byte {
	return append(appendClientPrefix(dst, prefixSub, cid), filter...)
}

func appendOutboundKey(dst []byte, cid string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendClientPrefix(dst, prefixOutbound, cid), seq)
}

func appendInboundKey(dst []byte, cid string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(appendClientPrefix(dst, prefixInbound, cid), pid)
}

func appendRetainedKey(dst []byte, topic []byte) []byte {
	return append(append(dst, prefixRetained), topic...)
}

// appendDelayedKey keys a delayed message by its publication time, so Load
// streams them in the order they are due.
func appendDelayedKey(dst []byte, publishAt int64, id uint64) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, prefixDelayed), uint64(publishAt))
	return binary.BigEndian.AppendUint64(dst, id)
}

func appendWillKey(dst []byte, cid string) []byte {
	return appendClientPrefix(dst, prefixWill, cid)
}

// splitClientKey splits <prefix><cid>0x00<rest>.
func splitClientKey(key []byte) (cid, rest []byte, ok bool) {
	if len(key) < 2 {
		return nil, nil, false
	}
	i := bytes.IndexByte(key[1:], 0)
	if i < 0 {
		return nil, nil, false
	}
	return key[1 : 1+i], key[2+i:], true
}

// keyClient returns the client id of a client-owned key, or false for a
// retained key or a key that is not client-owned.
func keyClient(key []byte) ([]byte, bool) {
	if len(key) == 0 {
		return nil, false
	}
	switch key[0] {
	case prefixSession, prefixSub, prefixOutbound, prefixInbound, prefixWill:
		cid, _, ok := splitClientKey(key)
		return cid, ok
	}
	return nil, false
}
