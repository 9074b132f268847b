package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A transfer is the records of one session in one byte string, for a
// session moved to another node of a cluster (package cluster carries
// it, the broker writes and reads it). The records are encoded exactly
// as the store keeps them, so a transfer is checked by the same decoder
// as a store read (decodeRecord), fuzzed once:
//
//	version (1) | { uvarint len(key) | key | uvarint len(value) | value }...
//
// Only client-owned records of one client id go in a transfer: one
// session record, first, then its subscriptions, outbound and inbound
// records and its will.

const transferVersion = 1

// ErrTransfer is wrapped by DecodeTransfer's errors.
var ErrTransfer = errors.New("store: malformed session transfer")

// AppendTransfer appends ops, encoded as a transfer, to dst. Every op is
// a put of a client-owned record of one client id, the session first.
func AppendTransfer(dst []byte, ops []Op) ([]byte, error) {
	if len(ops) == 0 || ops[0].Session == nil {
		return dst, fmt.Errorf("%w: the first record is not a session", ErrInvalidOp)
	}
	cid := ops[0].Session.ClientID
	for i := range ops {
		op := &ops[i]
		if op.Delete || op.Retained != nil || op.Delayed != nil {
			return dst, invalid(i, "a transfer holds only puts of a session's records")
		}
		if opClientID(op) != cid {
			return dst, invalid(i, "record of client %q in the transfer of %q", opClientID(op), cid)
		}
	}
	u, err := encodeOps(ops, 0)
	if err != nil {
		return dst, err
	}
	dst = append(dst, transferVersion)
	for _, e := range u.ents {
		dst = binary.AppendUvarint(dst, uint64(len(e.key)))
		dst = append(dst, e.key...)
		dst = binary.AppendUvarint(dst, uint64(len(e.val)))
		dst = append(dst, e.val...)
	}
	return dst, nil
}

func opClientID(op *Op) string {
	switch {
	case op.Session != nil:
		return op.Session.ClientID
	case op.Sub != nil:
		return op.Sub.ClientID
	case op.Outbound != nil:
		return op.Outbound.ClientID
	case op.Inbound != nil:
		return op.Inbound.ClientID
	case op.Will != nil:
		return op.Will.ClientID
	}
	return ""
}

// DecodeTransfer checks b as a transfer and hands its records to v, in
// order. Nothing is handed over unless all of b decodes: a transfer is
// taken whole or not at all. The records alias b (strings aside). The
// error wraps ErrTransfer; it never panics.
func DecodeTransfer(b []byte, v Visitor) error {
	if len(b) == 0 || b[0] != transferVersion {
		return fmt.Errorf("%w: unknown version", ErrTransfer)
	}
	var recs []record
	var cid []byte
	for rest := b[1:]; len(rest) > 0; {
		var key, val []byte
		var ok bool
		if key, rest, ok = cut(rest); !ok {
			return fmt.Errorf("%w: truncated key", ErrTransfer)
		}
		if val, rest, ok = cut(rest); !ok {
			return fmt.Errorf("%w: truncated value", ErrTransfer)
		}
		r, err := decodeRecord(key, val)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTransfer, err)
		}
		switch {
		case len(recs) == 0 && r.kind != prefixSession:
			return fmt.Errorf("%w: the first record is not a session", ErrTransfer)
		case len(recs) > 0 && r.kind == prefixSession:
			return fmt.Errorf("%w: a second session record", ErrTransfer)
		case r.kind == prefixRetained || r.kind == prefixDelayed:
			return fmt.Errorf("%w: a %s record", ErrTransfer, kindName(r.kind))
		case len(recs) > 0 && string(r.cid) != string(cid):
			return fmt.Errorf("%w: records of two client ids", ErrTransfer)
		}
		if len(recs) == 0 {
			cid = r.cid
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return fmt.Errorf("%w: no session record", ErrTransfer)
	}
	for i := range recs {
		r := &recs[i]
		switch r.kind {
		case prefixSession:
			if v.Session != nil {
				v.Session(r.session)
			}
		case prefixSub:
			if v.Sub != nil {
				v.Sub(r.sub)
			}
		case prefixOutbound:
			if v.Outbound != nil {
				v.Outbound(r.outbound)
			}
		case prefixInbound:
			if v.Inbound != nil {
				v.Inbound(r.inbound)
			}
		case prefixWill:
			if v.Will != nil {
				v.Will(r.will)
			}
		}
	}
	return nil
}

// cut splits a uvarint-prefixed field off b.
func cut(b []byte) (field, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}
