package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/mcutie/mcutie/hooks"
)

// Limits enforced before a connection has said anything: total
// connections, connections per source address and new connections per
// second per source address. The transport asks Admit when it accepts a
// connection and closes it at once when Admit refuses; the refusal is
// counted (mcutie_connections_rejected_total{reason=…}) and logged at most
// once a second (a flood must not become a flood of log lines).
//
// Per-address state lives in a sharded map: event loops accept
// concurrently, and a shard's mutex is held for a few map operations per
// accepted connection, never on the publish path. An address's entry is
// dropped once it has no connection and its rate bucket is full again, so
// the map holds only the addresses active within the last burst/rate
// seconds.

// Admission refusals. Each is also the reason label of its metric.
var (
	ErrMaxConnections      = errors.New("broker: too many connections (--max-connections)")
	ErrMaxConnectionsPerIP = errors.New("broker: too many connections from this address (--max-connections-per-ip)")
	ErrConnectRate         = errors.New("broker: too many new connections per second from this address (--connection-rate-per-ip)")
	ErrPreConnect          = errors.New("broker: refused by a pre-connect hook")
)

const admitShards = 64

type admission struct {
	open    atomic.Int64 // admitted connections not yet released
	seed    maphash.Seed
	shards  [admitShards]admitShard
	refused [len(admitReasons)]atomic.Uint64
	log     sharedLogThrottle
}

type admitShard struct {
	mu    sync.Mutex
	ips   map[netip.Addr]*ipEntry
	admit uint32 // admissions since the last sweep
	_     [40]byte
}

type ipEntry struct {
	conns int
	rate  bucket
}

// Ticket is an admitted connection's share of the connection limits. The
// transport calls Release exactly once, when the connection is gone (a
// connection moved to another loop keeps its ticket). 32 bytes: a transport
// keeps one per connection (the address is held as 16 bytes, not as a
// netip.Addr, which is 24).
type Ticket struct {
	b     *Broker
	addr  [16]byte // the admitted IP (IPv4 mapped), when perIP
	perIP bool
	done  atomic.Bool
}

// Admit is the accept-time admission check: the transport calls it for
// every new connection with the peer's address, before any byte is read.
// It refuses banned sources (ErrBanned, ban.go), then applies the
// connection limits. On success the caller must Release the ticket when
// the connection closes; on failure it closes the connection at once (the
// error says why; it has been counted, and logged unless a ban). An
// invalid remote (a Unix socket, a test) is subject to the total limit
// only. Safe for concurrent use.
func (b *Broker) Admit(remote netip.Addr) (*Ticket, error) {
	return b.AdmitListener(remote, "")
}

// AdmitListener is Admit for a connection accepted on listener (its
// address as configured, e.g. "tcp://0.0.0.0:1883"), which the PreConnect
// hooks are told.
func (b *Broker) AdmitListener(remote netip.Addr, listener string) (*Ticket, error) {
	t := new(Ticket)
	if err := b.AdmitListenerInto(t, remote, listener); err != nil {
		return nil, err
	}
	return t, nil
}

// AdmitInto is Admit filling a Ticket the caller holds (a transport keeps
// it in its per-connection state: one allocation per connection fewer).
// t must be zero.
func (b *Broker) AdmitInto(t *Ticket, remote netip.Addr) error {
	return b.AdmitListenerInto(t, remote, "")
}

// AdmitListenerInto is AdmitInto for a connection accepted on listener
// (see AdmitListener).
func (b *Broker) AdmitListenerInto(t *Ticket, remote netip.Addr, listener string) error {
	o := &b.opts
	a := &b.admit
	// Keyed without the zone: the Ticket keeps 16 bytes of address.
	remote = remote.Unmap().WithZone("")
	// A banned source first (ban.go): counted there, not logged one by
	// one (the ban itself was).
	if err := b.checkBan(remote); err != nil {
		return err
	}
	if b.hooks.Has(hooks.PreConnect) {
		if err := b.hooks.PreConnect(remote, listener); err != nil {
			return b.refuseAdmit(remote, admitHook, fmt.Errorf("%w: %v", ErrPreConnect, err))
		}
	}
	if n := a.open.Add(1); o.MaxConnections > 0 && n > int64(o.MaxConnections) {
		a.open.Add(-1)
		return b.refuseAdmit(remote, 0, ErrMaxConnections)
	}
	*t = Ticket{b: b, addr: remote.As16()}
	if !remote.IsValid() || (o.MaxConnectionsPerIP <= 0 && o.ConnectRatePerIP <= 0) {
		return nil
	}
	now := b.readClock()
	sh := &a.shards[maphash.Comparable(a.seed, remote)%admitShards]
	sh.mu.Lock()
	if sh.ips == nil {
		sh.ips = make(map[netip.Addr]*ipEntry)
	}
	if sh.admit++; sh.admit >= 1024 {
		sh.admit = 0
		b.sweepShard(sh, now)
	}
	e := sh.ips[remote]
	if e == nil {
		e = &ipEntry{}
		e.rate.fill(now, float64(o.ConnectBurstPerIP))
		sh.ips[remote] = e
	}
	var err error
	var reason int
	switch {
	case o.MaxConnectionsPerIP > 0 && e.conns >= o.MaxConnectionsPerIP:
		err, reason = ErrMaxConnectionsPerIP, 1
	case o.ConnectRatePerIP > 0 && !e.rate.take(now, o.ConnectRatePerIP, float64(o.ConnectBurstPerIP), 1):
		err, reason = ErrConnectRate, 2
	default:
		e.conns++
	}
	sh.mu.Unlock()
	if err != nil {
		a.open.Add(-1)
		return b.refuseAdmit(remote, reason, err)
	}
	t.perIP = true
	return nil
}

// MoveTo hands t's share of the limits to dst, a zero Ticket, and leaves
// t spent (its Release does nothing): for a transport whose connection
// state is rebuilt elsewhere, a move to another loop.
func (t *Ticket) MoveTo(dst *Ticket) {
	dst.b, dst.addr, dst.perIP = t.b, t.addr, t.perIP
	dst.done.Store(t.done.Swap(true))
}

// Release returns the ticket's share of the limits. Calling it again does
// nothing; safe for concurrent use (a transport may close a connection
// from more than one goroutine).
func (t *Ticket) Release() {
	if t == nil || t.b == nil || !t.done.CompareAndSwap(false, true) {
		return
	}
	a := &t.b.admit
	a.open.Add(-1)
	if !t.perIP {
		return
	}
	o := &t.b.opts
	ip := netip.AddrFrom16(t.addr).Unmap()
	sh := &a.shards[maphash.Comparable(a.seed, ip)%admitShards]
	sh.mu.Lock()
	if e := sh.ips[ip]; e != nil {
		e.conns--
		if e.conns <= 0 && (o.ConnectRatePerIP <= 0 || e.rate.full(t.b.readClock(), o.ConnectRatePerIP, float64(o.ConnectBurstPerIP))) {
			delete(sh.ips, ip)
		}
	}
	sh.mu.Unlock()
}

// sweepShard drops the entries of addresses with no connection whose
// bucket has refilled. The caller holds sh.mu.
func (b *Broker) sweepShard(sh *admitShard, now int64) {
	o := &b.opts
	for ip, e := range sh.ips {
		if e.conns <= 0 && (o.ConnectRatePerIP <= 0 || e.rate.full(now, o.ConnectRatePerIP, float64(o.ConnectBurstPerIP))) {
			delete(sh.ips, ip)
		}
	}
}

// admitReasons are the labels of the admission refusals, by index.
var admitReasons = [...]string{"max_connections", "max_connections_per_ip", "connection_rate", "pre_connect_hook"}

const admitHook = 3

func (b *Broker) refuseAdmit(remote netip.Addr, reason int, err error) error {
	a := &b.admit
	a.refused[reason].Add(1)
	if ok, suppressed := a.log.allow(b.readClock()); ok {
		attrs := []slog.Attr{slog.String("remote", remote.String()), slog.String("limit", admitReasons[reason]), slog.String("reason", err.Error())}
		if suppressed > 0 {
			attrs = append(attrs, slog.Uint64("suppressed", suppressed))
		}
		b.opts.Logger.LogAttrs(context.Background(), slog.LevelWarn, "connection refused at accept", attrs...)
	}
	return err
}

// OpenConnections is the number of admitted connections not yet released.
// Safe for concurrent use.
func (b *Broker) OpenConnections() int64 { return b.admit.open.Load() }

// bucket is a token bucket: tokens refill at rate per second up to burst.
// It is not safe for concurrent use: a Client's buckets belong to its loop,
// an address's bucket to its shard's mutex.
type bucket struct {
	tokens float64
	last   int64 // unix ns of the last refill
}

func (k *bucket) fill(now int64, burst float64) { k.tokens, k.last = burst, now }

func (k *bucket) refill(now int64, rate, burst float64) {
	if d := now - k.last; d > 0 {
		k.tokens = min(burst, k.tokens+float64(d)*rate*1e-9) // d is in ns
		k.last = now
	}
}

// take removes n tokens and reports whether there were enough.
func (k *bucket) take(now int64, rate, burst, n float64) bool {
	k.refill(now, rate, burst)
	if k.tokens < n {
		return false
	}
	k.tokens -= n
	return true
}

func (k *bucket) full(now int64, rate, burst float64) bool {
	k.refill(now, rate, burst)
	return k.tokens >= burst
}

// pubRates are a connection's publish rate buckets (Loop.rates).
type pubRates struct{ msgs, bytes bucket }

// chargePublish takes one PUBLISH of n bytes from c's rate buckets and
// reports whether it was within the limits; if not, c is disconnected
// (v5 DISCONNECT 0x96 for messages/s, 0x97 for bytes/s; 3.x closed).
// Loop-only.
func (c *Client) chargePublish(n int) bool {
	l := c.l
	o := &l.b.opts
	r := &l.rates[c.idx]
	if o.PublishRate > 0 && !r.msgs.take(l.now, o.PublishRate, float64(o.PublishBurst), 1) {
		c.closeFor(closePublishRate, 0, "more PUBLISH packets per second than the server allows", slog.String("limit", "--publish-rate"), slog.Float64("per_second", o.PublishRate))
		return false
	}
	if o.PublishByteRate > 0 && !r.bytes.take(l.now, o.PublishByteRate, float64(o.PublishByteBurst), float64(n)) {
		c.closeFor(closePublishByteRate, 0, "more PUBLISH bytes per second than the server allows", slog.String("limit", "--publish-byte-rate"), slog.Float64("bytes_per_second", o.PublishByteRate))
		return false
	}
	return true
}
