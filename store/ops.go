package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

type entryKind uint8

const (
	entPut  entryKind = iota
	entDel            // delete one key
	entDrop           // session delete: key is the session key; clears every key of the client
)

// entry is one encoded change. key and val point into the owning unit's
// buffer and stay valid until the unit is finished.
type entry struct {
	key  []byte
	val  []byte
	kind entryKind
}

// unit is what one Apply call becomes: its ops encoded and copied into one
// buffer, and its done callback.
type unit struct {
	ents   []entry
	done   func(error)
	force  bool // call done only after the write, whatever the durability (Load's barrier)
	bytes  int  // key and value bytes
	inline [2]entry
}

// weight is what the unit counts against the queue bound.
func (u *unit) weight() int { return max(len(u.ents), 1) }

func invalid(i int, format string, args ...any) error {
	return fmt.Errorf("%w: op %d: %s", ErrInvalidOp, i, fmt.Sprintf(format, args...))
}

func checkCID(i int, cid string) error {
	if strings.IndexByte(cid, 0) >= 0 {
		return invalid(i, "client id %s contains U+0000", quoteShort([]byte(cid)))
	}
	return nil
}

func checkMsg(i int, m *Message) error {
	if m.QoS > 2 {
		return invalid(i, "message QoS %d", m.QoS)
	}
	return nil
}

// quoteShort quotes b for an error message, cut to 64 bytes.
func quoteShort(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// opSize validates op i and returns upper bounds of its key and value sizes.
func opSize(i int, op *Op) (k, v int, err error) {
	n := 0
	if op.Session != nil {
		n++
		if err = checkCID(i, op.Session.ClientID); err != nil {
			return
		}
		k, v = len(op.Session.ClientID)+2, sessionValueLen+1+binary.MaxVarintLen64+len(op.Session.Owner)
	}
	if op.Sub != nil {
		n++
		s := op.Sub
		if err = checkCID(i, s.ClientID); err != nil {
			return
		}
		if s.Filter == "" || strings.IndexByte(s.Filter, 0) >= 0 {
			return 0, 0, invalid(i, "subscription filter %s empty or containing U+0000", quoteShort([]byte(s.Filter)))
		}
		if !op.Delete && (s.QoS > 2 || s.RetainHandling > 2) {
			return 0, 0, invalid(i, "subscription QoS %d, retain handling %d", s.QoS, s.RetainHandling)
		}
		k, v = len(s.ClientID)+2+len(s.Filter), 4+10
	}
	if op.Outbound != nil {
		n++
		o := op.Outbound
		if err = checkCID(i, o.ClientID); err != nil {
			return
		}
		if !op.Delete {
			if o.State > OutboundReleased {
				return 0, 0, invalid(i, "outbound state %d", o.State)
			}
			if err = checkMsg(i, &o.Msg); err != nil {
				return
			}
			if o.Origin != "" {
				if err = checkCID(i, o.Origin); err != nil {
					return
				}
			}
		}
		k, v = len(o.ClientID)+2+8, 4+8+binary.MaxVarintLen64+len(o.Origin)+msgSize(&o.Msg)
	}
	if op.Inbound != nil {
		n++
		if err = checkCID(i, op.Inbound.ClientID); err != nil {
			return
		}
		k, v = len(op.Inbound.ClientID)+2+2, 1
	}
	if op.Retained != nil {
		n++
		m := op.Retained
		if len(m.Topic) == 0 || bytes.IndexByte(m.Topic, 0) >= 0 {
			return 0, 0, invalid(i, "retained topic %s empty or containing U+0000", quoteShort(m.Topic))
		}
		if !op.Delete {
			if err = checkMsg(i, m); err != nil {
				return
			}
		}
		k, v = 1+len(m.Topic), 1+msgSize(m)
	}
	if op.Will != nil {
		n++
		w := op.Will
		if err = checkCID(i, w.ClientID); err != nil {
			return
		}
		if !op.Delete {
			if err = checkMsg(i, &w.Msg); err != nil {
				return
			}
		}
		k, v = len(w.ClientID)+2, 9+msgSize(&w.Msg)
	}
	if op.Delayed != nil {
		n++
		d := op.Delayed
		if !op.Delete {
			if len(d.Msg.Topic) == 0 || bytes.IndexByte(d.Msg.Topic, 0) >= 0 {
				return 0, 0, invalid(i, "delayed message topic %s empty or containing U+0000", quoteShort(d.Msg.Topic))
			}
			if err = checkCID(i, d.Origin); err != nil {
				return
			}
			if err = checkMsg(i, &d.Msg); err != nil {
				return
			}
		}
		k, v = 1+8+8, 1+binary.MaxVarintLen64+len(d.Origin)+msgSize(&d.Msg)
	}
	if n != 1 {
		return 0, 0, invalid(i, "sets %d records, want exactly 1", n)
	}
	if op.Delete {
		v = 0
	}
	return k, v, nil
}

// encodeOps validates ops and copies them, encoded, into one new unit.
// maxVal bounds an encoded value (0: no bound).
func encodeOps(ops []Op, maxVal int) (*unit, error) {
	size := 0
	for i := range ops {
		k, v, err := opSize(i, &ops[i])
		if err != nil {
			return nil, err
		}
		if k > maxKeyLen {
			return nil, fmt.Errorf("%w: op %d: key of %d bytes exceeds %d", ErrTooLarge, i, k, maxKeyLen)
		}
		if maxVal > 0 && v > maxVal {
			return nil, fmt.Errorf("%w: op %d: value of %d bytes exceeds %d", ErrTooLarge, i, v, maxVal)
		}
		size += k + v
	}
	u := &unit{}
	if len(ops) <= len(u.inline) {
		u.ents = u.inline[:len(ops)]
	} else {
		u.ents = make([]entry, len(ops))
	}
	// size is an upper bound, so appends never move buf and the slices
	// taken below stay in it.
	buf := make([]byte, 0, size)
	for i := range ops {
		op := &ops[i]
		e := &u.ents[i]
		k0 := len(buf)
		switch {
		case op.Session != nil:
			buf = appendSessionKey(buf, op.Session.ClientID)
		case op.Sub != nil:
			buf = appendSubKey(buf, op.Sub.ClientID, op.Sub.Filter)
		case op.Outbound != nil:
			buf = appendOutboundKey(buf, op.Outbound.ClientID, op.Outbound.Seq)
		case op.Inbound != nil:
			buf = appendInboundKey(buf, op.Inbound.ClientID, op.Inbound.PacketID)
		case op.Retained != nil:
			buf = appendRetainedKey(buf, op.Retained.Topic)
		case op.Will != nil:
			buf = appendWillKey(buf, op.Will.ClientID)
		case op.Delayed != nil:
			buf = appendDelayedKey(buf, op.Delayed.PublishAt, op.Delayed.ID)
		}
		k1 := len(buf)
		e.key = buf[k0:k1:k1]
		if op.Delete {
			e.kind = entDel
			if op.Session != nil {
				e.kind = entDrop
			}
			u.bytes += len(e.key)
			continue
		}
		switch {
		case op.Session != nil:
			buf = appendSessionValue(buf, op.Session)
		case op.Sub != nil:
			buf = appendSubValue(buf, op.Sub)
		case op.Outbound != nil:
			buf = appendOutboundValue(buf, op.Outbound)
		case op.Inbound != nil:
			buf = appendInboundValue(buf)
		case op.Retained != nil:
			buf = appendRetainedValue(buf, op.Retained)
		case op.Will != nil:
			buf = appendWillValue(buf, op.Will)
		case op.Delayed != nil:
			buf = appendDelayedValue(buf, op.Delayed)
		}
		e.val = buf[k1:len(buf):len(buf)]
		e.kind = entPut
		u.bytes += len(e.key) + len(e.val)
	}
	if cap(buf) != size {
		panic("BUG: store: encoded ops exceed their size bound")
	}
	return u, nil
}
