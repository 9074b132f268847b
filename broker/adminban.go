package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// Bans an operator sets (the management API): the same tables as the
// bans issued after failed authentications (ban.go), marked admin. An
// address ban refuses connections from it at accept and at CONNECT; a
// client id ban refuses a CONNECT with that id (CONNACK 0x8A Banned; 3.x
// 0x05), whatever its credentials: unlike an automatic one, it was meant.

// Ban kinds, as BanInfo.Kind and the kind argument of Ban and Unban.
const (
	BanAddress  = "address"   // a source IP address (IPv4 or IPv6, no port)
	BanClientID = "client_id" // a client identifier
)

// Errors of Ban.
var (
	ErrBanKind = errors.New(`broker: ban kind must be "address" or "client_id"`)
	// ErrBanListFull: the table already tracks Options.BanMaxTracked
	// keys, none of them expired.
	ErrBanListFull = errors.New("broker: ban table full (--ban-max-tracked): remove a ban or raise the bound")
)

// BanInfo is one ban in force.
type BanInfo struct {
	Kind  string    // BanAddress or BanClientID
	Value string    // the address or the client id
	Until time.Time // end of the ban
	// Admin: set by Ban; false: issued after failed authentications.
	Admin bool
}

// normBan checks a ban's kind and value and returns the table key.
func normBan(kind, value string) (string, error) {
	switch kind {
	case BanAddress:
		a, err := netip.ParseAddr(value)
		if err != nil {
			return "", fmt.Errorf("broker: ban address %q is not an IP address (no port, no CIDR): %w", value, err)
		}
		return a.Unmap().String(), nil
	case BanClientID:
		if value == "" {
			return "", errors.New("broker: ban client id is empty")
		}
		return value, nil
	}
	return "", ErrBanKind
}

// Ban bans an address or a client id for d (at least a second) from
// now and returns the ban; a ban already in force on it is replaced. Connections already
// open are not closed (DisconnectBanned does that). Safe
// for concurrent use. Errors: ErrBanKind, ErrBanListFull, a bad value.
func (b *Broker) Ban(kind, value string, d time.Duration) (BanInfo, error) {
	key, err := normBan(kind, value)
	if err != nil {
		return BanInfo{}, err
	}
	if d < time.Second {
		return BanInfo{}, errors.New("broker: ban duration below one second")
	}
	t := b.bans
	now := b.readClock()
	until := now + int64(d)
	t.mu.Lock()
	m := t.ips
	if kind == BanClientID {
		m = t.ids
	}
	e := m[key]
	if e == nil {
		if len(m) >= t.max {
			t.sweep(m, now)
		}
		if len(m) >= t.max {
			t.mu.Unlock()
			return BanInfo{}, ErrBanListFull
		}
		e = &banEntry{start: now}
		m[key] = e
	}
	e.until, e.admin, e.n = until, true, 0
	t.mu.Unlock()
	if kind == BanClientID {
		raise(&t.untilAdminID, until)
	} else {
		raise(&t.untilIP, until)
	}
	b.opts.Logger.Info("ban set", slog.String("kind", kind), slog.String("value", key), slog.Duration("for", d))
	return BanInfo{Kind: kind, Value: key, Until: time.Unix(0, until), Admin: true}, nil
}

// Unban lifts the ban on an address or a client id (set by Ban or after
// failed authentications) and forgets its failures; it reports whether
// one was in force. Safe for concurrent use.
func (b *Broker) Unban(kind, value string) (bool, error) {
	key, err := normBan(kind, value)
	if err != nil {
		return false, err
	}
	t := b.bans
	now := b.readClock()
	t.mu.Lock()
	m := t.ips
	if kind == BanClientID {
		m = t.ids
	}
	e := m[key]
	was := e != nil && e.until > now
	delete(m, key)
	t.mu.Unlock()
	if was {
		b.opts.Logger.Info("ban lifted", slog.String("kind", kind), slog.String("value", key))
	}
	return was, nil
}

// Bans returns the bans in force (both kinds, set by Ban or issued after
// failed authentications), by kind then value; at most
// 2 × Options.BanMaxTracked. Safe for concurrent use.
func (b *Broker) Bans() []BanInfo {
	t := b.bans
	now := b.readClock()
	var out []BanInfo
	t.mu.Lock()
	for k, e := range t.ips {
		if e.until > now {
			out = append(out, BanInfo{Kind: BanAddress, Value: k, Until: time.Unix(0, e.until), Admin: e.admin})
		}
	}
	for k, e := range t.ids {
		if e.until > now {
			out = append(out, BanInfo{Kind: BanClientID, Value: k, Until: time.Unix(0, e.until), Admin: e.admin})
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// adminIDBanned reports whether Ban banned client id id. One atomic load
// while no such ban is in force. Safe for concurrent use.
func (t *bans) adminIDBanned(id string, now int64) bool {
	if id == "" || now >= t.untilAdminID.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.ids[id]
	return e != nil && e.admin && e.until > now
}

// DisconnectBanned closes the connections an address or client id ban
// covers (v5: DISCONNECT 0x8A Banned): every connection from the address,
// or the client id's. It reports how many it closed. Each loop walks its
// own connections. Safe for concurrent use; not on a loop.
func (b *Broker) DisconnectBanned(ctx context.Context, kind, value string) (int, error) {
	key, err := normBan(kind, value)
	if err != nil {
		return 0, err
	}
	counts := make([]int, len(b.loops))
	err = b.onLoops(ctx, func(l *Loop, i int) {
		var hit []*Client
		for _, c := range l.clients {
			if c.state == stateClosing || c.state == stateMigrating {
				continue
			}
			if kind == BanClientID && c.id == key || kind == BanAddress && hostOf(c.conn.RemoteAddr()) == key {
				hit = append(hit, c)
			}
		}
		for _, c := range hit { // disconnect edits l.clients: not while ranging over it
			c.disconnect(codec.Banned, "banned by an administrator")
		}
		counts[i] = len(hit)
	})
	n := 0
	for _, c := range counts {
		n += c
	}
	return n, err
}
