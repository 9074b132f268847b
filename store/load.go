package store

// loader is the part of Load both implementations share: it decodes each
// stored pair, drops what has expired, and calls the visitor. Pairs must come
// in loadOrder, each range in key order, so that every session is seen before
// the records under its client id.
type loader struct {
	v       Visitor
	now     int64
	expired map[string]struct{} // client ids of expired sessions
	dels    [][]byte            // keys to delete once the iteration is over
}

func newLoader(v Visitor, now int64) *loader {
	return &loader{v: v, now: now, expired: make(map[string]struct{})}
}

// sessionExpired reports whether s has outlived its expiry interval.
// A session still marked connected (DisconnectedAt 0, the broker stopped
// while the client was connected) has not started to expire.
func sessionExpired(s *Session, now int64) bool {
	if s.DisconnectedAt == 0 || s.ExpiryInterval == ExpiryNever {
		return false
	}
	return s.DisconnectedAt+int64(s.ExpiryInterval)*1e9 <= now
}

func msgExpired(m *Message, now int64) bool {
	return m.ExpireAt != 0 && m.ExpireAt <= now
}

// visit handles one pair. key and val must be owned by the loader (the
// visited records alias them).
func (l *loader) visit(key, val []byte) error {
	if len(key) > 0 && key[0] != prefixSession && key[0] != prefixRetained && key[0] != prefixDelayed && len(l.expired) > 0 {
		// A record under an expired session goes with it, decoded or not.
		if cid, ok := keyClient(key); ok {
			if _, gone := l.expired[string(cid)]; gone {
				l.dels = append(l.dels, key)
				return nil
			}
		}
	}
	rec, err := decodeRecord(key, val)
	if err != nil {
		return err
	}
	switch rec.kind {
	case prefixSession:
		if sessionExpired(&rec.session, l.now) {
			l.expired[rec.session.ClientID] = struct{}{}
			l.dels = append(l.dels, key)
			return nil
		}
		if l.v.Session != nil {
			l.v.Session(rec.session)
		}
	case prefixSub:
		if l.v.Sub != nil {
			l.v.Sub(rec.sub)
		}
	case prefixOutbound:
		// Only a message not yet sent may be dropped on expiry
		// [MQTT-3.3.2-5]; one whose delivery started is finished.
		if rec.outbound.State == OutboundQueued && msgExpired(&rec.outbound.Msg, l.now) {
			l.dels = append(l.dels, key)
			return nil
		}
		if l.v.Outbound != nil {
			l.v.Outbound(rec.outbound)
		}
	case prefixInbound:
		if l.v.Inbound != nil {
			l.v.Inbound(rec.inbound)
		}
	case prefixRetained:
		if msgExpired(&rec.retained, l.now) {
			l.dels = append(l.dels, key)
			return nil
		}
		if l.v.Retained != nil {
			l.v.Retained(rec.retained)
		}
	case prefixWill:
		if msgExpired(&rec.will.Msg, l.now) {
			l.dels = append(l.dels, key)
			return nil
		}
		if l.v.Will != nil {
			l.v.Will(rec.will)
		}
	case prefixDelayed:
		// Kept past its publication time: the broker publishes it at
		// once. Only its Message Expiry drops it.
		if msgExpired(&rec.delayed.Msg, l.now) {
			l.dels = append(l.dels, key)
			return nil
		}
		if l.v.Delayed != nil {
			l.v.Delayed(rec.delayed)
		}
	}
	return nil
}

// deleteUnit turns the collected deletes into one unit.
func (l *loader) deleteUnit() *unit {
	u := &unit{ents: make([]entry, len(l.dels)), force: true}
	for i, k := range l.dels {
		u.ents[i] = entry{key: k, kind: entDel}
		u.bytes += len(k)
	}
	return u
}
