package broker

import (
	"hash/maphash"
	"log/slog"
)

// Per-session ACL cache entry bits.
const (
	aclReadKnown  uint8 = 1
	aclReadOK     uint8 = 2
	aclWriteKnown uint8 = 4
	aclWriteOK    uint8 = 8
)

// isSys reports whether topic is $SYS or under it, or under the
// configured Options.SysPrefix: clients may not publish there, whatever the
// ACL says (the broker's own namespace).
func (b *Broker) isSys(topic []byte) bool {
	return underPrefix(topic, "$SYS") || (b.opts.SysPrefix != "$SYS" && underPrefix(topic, b.opts.SysPrefix))
}

func underPrefix(topic []byte, prefix string) bool {
	return len(topic) >= len(prefix) && string(topic[:len(prefix)]) == prefix && (len(topic) == len(prefix) || topic[len(prefix)] == '/')
}

// allowed asks the Authorizer whether the session's identity may read or
// write topic, through a per-session cache keyed by the topic's 64-bit
// hash (seeded per broker at random, so no client can aim at a collision):
// an entry costs the same for any topic length, where full topics let one
// session pin ACLCacheSize × 64 KiB (issue 21.17). A hit is one hash and
// one map lookup and allocates nothing. The cache is emptied when the
// Authorizer's generation changes (an ACL reload) and when it reaches
// Options.ACLCacheSize topics. Loop-only.
func (s *Session) allowed(topic []byte, acc Access) bool {
	authz := s.l.b.opts.Authorizer
	if authz == nil {
		return true
	}
	known, ok := aclReadKnown, aclReadOK
	if acc == AccessWrite {
		known, ok = aclWriteKnown, aclWriteOK
	}
	x := s.extra()
	if x.admin {
		return true
	}
	if gen := authz.Generation(); gen != x.aclGen || x.acl == nil {
		if x.acl == nil {
			x.acl = make(map[uint64]uint8)
		} else {
			clear(x.acl)
		}
		x.aclGen = gen
	}
	key := maphash.Bytes(s.l.b.seed, topic)
	v, hit := x.acl[key]
	if hit && v&known != 0 {
		return v&ok != 0
	}
	// Slow path: ask, remember, and log a refusal once per cached topic.
	allow := authz.Allow(&x.ident, topic, acc)
	if !hit && len(x.acl) >= s.l.b.opts.ACLCacheSize {
		clear(x.acl)
	}
	v |= known
	if allow {
		v |= ok
	} else {
		if ok, suppressed := s.l.authLog.allow(s.l.now); ok {
			s.l.b.opts.Logger.Info("ACL denied", slog.String("client", s.id), slog.String("user", x.ident.Username),
				slog.String("access", accessName(acc)), slog.String("topic", string(topic)), slog.Uint64("suppressed", suppressed))
		}
	}
	x.acl[key] = v
	return allow
}

func accessName(a Access) string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessSubscribe:
		return "subscribe"
	}
	return "?"
}

// allowSubscribe asks the Authorizer about a filter ($share/… already
// stripped). Not cached: SUBSCRIBE is not the hot path. Loop-only.
func (s *Session) allowSubscribe(filter []byte) bool {
	authz := s.l.b.opts.Authorizer
	if authz == nil {
		return true
	}
	x := s.extra()
	if x.admin || authz.Allow(&x.ident, filter, AccessSubscribe) {
		return true
	}
	if ok, suppressed := s.l.authLog.allow(s.l.now); ok {
		s.l.b.opts.Logger.Info("ACL denied", slog.String("client", s.id), slog.String("user", x.ident.Username),
			slog.String("access", "subscribe"), slog.String("filter", string(filter)), slog.Uint64("suppressed", suppressed))
	}
	return false
}

// setIdentity records who the session's connection authenticated as;
// a different identity forgets the cached verdicts. Loop-only.
func (s *Session) setIdentity(id Identity) {
	if s.extras == nil && s.l.b.opts.Authorizer == nil {
		// Without an Authorizer only hooks, $SYS client events and the
		// management API read the identity, and only its user name: a
		// connection without one leaves nothing to record, and most idle
		// connections are of that kind (an extras allocation, 112 bytes,
		// per connection: docs/benchmarks.md, "Idle memory and idle CPU").
		if !id.HasUsername && id.Username == "" {
			return
		}
		if s.l.b.hooks == nil && !s.l.b.opts.SysClientEvents && !s.l.b.opts.KeepIdentity {
			return
		}
	}
	x := s.extra()
	if x.identKnown && x.ident == id {
		return
	}
	x.ident = id
	x.identKnown = true
	if x.acl != nil {
		clear(x.acl)
	}
}
