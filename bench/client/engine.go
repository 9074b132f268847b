//go:build linux

package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/mcutie/mcutie/codec"
)

// Options configures an Engine.
type Options struct {
	Addr           netip.AddrPort // the broker; the caller checks it is loopback
	Loops          int            // event loops; default GOMAXPROCS, at most 8
	Version        codec.Version  // 3, 4 or 5; default 4
	KeepAlive      uint16         // seconds; 0 turns keep-alive off
	SourceAddrs    []netip.Addr   // local addresses bound round-robin (with IP_BIND_ADDRESS_NO_PORT); empty: the kernel's choice
	ConnectTimeout time.Duration  // dial + CONNACK + SUBACK, per connection; default 10s
	Base           time.Time      // origin of payload timestamps; share it between engines of one run; default now
	// SessionExpiry 0 connects with clean sessions. Above 0 sessions
	// persist: Clean Session 0 (3.x; the broker keeps them until it
	// decides otherwise) or Clean Start 0 with this Session Expiry
	// Interval in seconds (v5). A broker then stores what such a session
	// holds (QoS 1/2 messages in flight) where it keeps durable state.
	SessionExpiry uint32
}

// Spec describes one connection.
type Spec struct {
	ClientID string
	Filters  []string // subscribed in one SUBSCRIBE after CONNACK; empty: none
	SubQoS   byte
	Group    string // receivers with the same non-empty Group share deliveries ($share): losses and duplicates are counted for the group
	Track    bool   // track received payloads (sequence, latency)
	// LatencyFromSubscribe records, for each received message, the time
	// since this connection's SUBSCRIBE was written instead of since the
	// payload's send time (the retained scenario times delivery of stored
	// messages that way).
	LatencyFromSubscribe bool
	Pub                  *PubSpec // nil: not a publisher
}

// PubSpec describes what a publisher sends.
type PubSpec struct {
	ID      uint32   // carried in the payload; unique among tracked publishers of a run
	Topics  []string // message seq goes to Topics[seq % len(Topics)]
	QoS     byte
	Retain  bool
	Payload int     // bytes; HeaderLen or more to be tracked, 0 for empty payloads
	Rate    float64 // messages per second; 0: as fast as socket and window allow
	Window  int     // most unacknowledged QoS 1/2 messages; default 64 (capped by the broker's Receive Maximum)
	Count   uint64  // stop after Count messages; 0: until StopPublishing
	// Phase delays a paced publisher's first message by Phase × its
	// interval (0 ≤ Phase < 1), so that many publishers at one rate send
	// at moments spread over the interval, as independent devices do,
	// rather than all in the same instant.
	Phase float64
}

// ConnectOptions paces a Connect call.
type ConnectOptions struct {
	Concurrency int     // connections in their handshake at once, over all loops; default 256
	Rate        float64 // new connections per second over all loops; 0: no limit
}

// Reason says why a connection failed or closed. One enum feeds the error
// table, the report and the counters.
type Reason uint8

// Reasons.
const (
	ReasonNone             Reason = iota
	ReasonDial                    // socket, bind or connect failed
	ReasonTimeout                 // no CONNACK / SUBACK within ConnectTimeout, or the Connect context ended
	ReasonConnack                 // CONNACK refused the connection
	ReasonSuback                  // SUBACK refused a filter
	ReasonProtocol                // a packet we cannot decode or did not expect
	ReasonPeerClosed              // the broker closed the socket
	ReasonIO                      // read or write failed
	ReasonServerDisconnect        // v5 DISCONNECT from the broker
	ReasonLimit                   // a bound of ours: packet too large for the broker, carry buffer too big
	numReasons
)

var reasonNames = [numReasons]string{"none", "dial", "timeout", "connack", "suback", "protocol", "peer-closed", "io", "server-disconnect", "limit"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// ErrorCount is how often one Reason happened, with the first detail seen.
type ErrorCount struct {
	Reason Reason `json:"-"`
	Name   string `json:"reason"`
	Count  uint64 `json:"count"`
	Sample string `json:"sample"`
}

// stats are one loop's counters: written by the loop only, read by any
// goroutine. Padded so loops do not share cache lines.
type stats struct {
	sent       atomic.Uint64
	recv       atomic.Uint64
	acked      atomic.Uint64
	inflight   atomic.Int64
	ready      atomic.Uint64
	failed     atomic.Uint64
	dropped    atomic.Uint64
	pubsDone   atomic.Uint64
	connected  atomic.Int64 // currently open and ready
	pingsSent  atomic.Uint64
	pingsRecv  atomic.Uint64
	rejectedQ  atomic.Uint64 // v5 PUBACK/PUBREC with an error reason code
	unexpected atomic.Uint64 // acknowledgements for packet ids not in flight
	_          [64]byte
}

// Counters is a snapshot of all loops' counters.
type Counters struct {
	Sent       uint64 // PUBLISH packets encoded for writing
	Received   uint64 // PUBLISH packets delivered to subscribers (QoS 2: once per packet id until PUBREL)
	Acked      uint64 // PUBACK / PUBCOMP received for our QoS 1/2 publishes
	Inflight   int64  // our QoS 1/2 publishes not yet acknowledged
	Ready      uint64 // connections that completed CONNACK (and SUBACK)
	Failed     uint64 // connections that failed before ready
	Dropped    uint64 // ready connections that closed before the engine closed them
	PubsDone   uint64 // publishers that sent Count messages, all acknowledged
	Connected  int64  // connections open and ready now
	PingsSent  uint64
	PingsRecv  uint64
	Rejected   uint64 // v5 PUBACK/PUBREC carrying an error reason code
	Unexpected uint64 // acknowledgements for packet identifiers not in flight
}

// Engine drives connections on its loops. Safe for concurrent use.
type Engine struct {
	o       Options
	loops   []*loop
	next    int           // round-robin cursor for new connections; guarded by connMu
	srcNext atomic.Uint64 // round-robin cursor over SourceAddrs
	closed  atomic.Bool
	connMu  chan struct{} // serializes Connect
}

// New starts an engine's loops.
func New(o Options) (*Engine, error) {
	if o.Loops <= 0 {
		o.Loops = min(runtime.GOMAXPROCS(0), 8)
	}
	if o.Version == 0 {
		o.Version = codec.V311
	}
	if o.Version < codec.V31 || o.Version > codec.V5 {
		return nil, fmt.Errorf("client: unsupported MQTT protocol level %d (want 3, 4 or 5)", o.Version)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Base.IsZero() {
		o.Base = time.Now()
	}
	if !o.Addr.IsValid() {
		return nil, errors.New("client: no broker address")
	}
	e := &Engine{o: o, connMu: make(chan struct{}, 1)}
	for i := 0; i < o.Loops; i++ {
		l, err := newLoop(e, i)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.loops = append(e.loops, l)
		go l.run()
	}
	return e, nil
}

// now is the engine clock: time since Options.Base (monotonic).
func (e *Engine) now() time.Duration { return time.Since(e.o.Base) }

// ConnectResult summarizes one Connect call.
type ConnectResult struct {
	OK, Failed int
	Elapsed    time.Duration
	Errors     []ErrorCount // reasons of this call's failures
}

// Connect opens a connection for every spec, spread round-robin over the
// loops, and returns once each is ready (CONNACK, and SUBACK when it
// subscribes) or failed, or when ctx ends (those still pending fail with
// ReasonTimeout). Connections stay open until Close. Calls are serialized.
func (e *Engine) Connect(ctx context.Context, specs []*Spec, co ConnectOptions) ConnectResult {
	e.connMu <- struct{}{}
	defer func() { <-e.connMu }()
	if co.Concurrency <= 0 {
		co.Concurrency = 256
	}
	start := time.Now()
	per := make([][]*Spec, len(e.loops))
	for _, s := range specs {
		per[e.next%len(e.loops)] = append(per[e.next%len(e.loops)], s)
		e.next++
	}
	batches := make([]*batch, 0, len(e.loops))
	for i, l := range e.loops {
		if len(per[i]) == 0 {
			continue
		}
		b := &batch{
			done:        make(chan struct{}),
			remaining:   len(per[i]),
			concurrency: max(1, co.Concurrency/len(e.loops)),
			rate:        co.Rate / float64(len(e.loops)),
		}
		batches = append(batches, b)
		l.post(func() { l.startBatch(b, per[i]) })
	}
	for _, b := range batches {
		select {
		case <-b.done:
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		for i, l := range e.loops {
			if len(per[i]) > 0 {
				l.call(func() { l.abortBatches(ctx.Err().Error()) })
			}
		}
		for _, b := range batches {
			<-b.done
		}
	}
	r := ConnectResult{Elapsed: time.Since(start)}
	var errs errTable
	for _, b := range batches {
		r.OK += b.ok
		r.Failed += b.failed
		errs.merge(&b.errs)
	}
	r.Errors = errs.list()
	return r
}

// StartPublishing lets every ready publisher send, from now.
func (e *Engine) StartPublishing() {
	for _, l := range e.loops {
		l.call(l.startPublishing)
	}
}

// StopPublishing stops publishers from sending new messages; QoS 1/2
// messages in flight are still acknowledged.
func (e *Engine) StopPublishing() {
	for _, l := range e.loops {
		l.call(l.stopPublishing)
	}
}

// Counters sums the loops' counters.
func (e *Engine) Counters() Counters {
	var c Counters
	for _, l := range e.loops {
		s := &l.st
		c.Sent += s.sent.Load()
		c.Received += s.recv.Load()
		c.Acked += s.acked.Load()
		c.Inflight += s.inflight.Load()
		c.Ready += s.ready.Load()
		c.Failed += s.failed.Load()
		c.Dropped += s.dropped.Load()
		c.PubsDone += s.pubsDone.Load()
		c.Connected += s.connected.Load()
		c.PingsSent += s.pingsSent.Load()
		c.PingsRecv += s.pingsRecv.Load()
		c.Rejected += s.rejectedQ.Load()
		c.Unexpected += s.unexpected.Load()
	}
	return c
}

// Close sends DISCONNECT on every ready connection, closes every socket and
// stops the loops. Results stay readable through Collect. Safe to call more
// than once.
func (e *Engine) Close() {
	if !e.closed.CompareAndSwap(false, true) {
		return
	}
	for _, l := range e.loops {
		l.stop()
	}
}

// Totals is what Collect gathers from closed engines.
type Totals struct {
	Sent       uint64 // messages published (tracked and not)
	Received   uint64 // messages delivered to subscribers
	Expected   uint64 // deliveries the tracked subscribers should have had
	Unique     uint64 // distinct tracked deliveries (per subscriber, or per shared group)
	Lost       uint64 // Expected − Unique, summed where positive
	Unexpected uint64 // Unique − Expected, summed where positive (a message a receiver should not have got)
	Duplicated uint64
	OutOfOrder uint64
	Foreign    uint64 // received payloads without a valid tracking header

	Latency *hdrhistogram.Histogram // µs, every tracked delivery
	Connack *hdrhistogram.Histogram // µs, dial start → CONNACK

	ConnOK, ConnFailed, Dropped uint64
	Rejected, UnexpectedAcks    uint64
	Errors                      []ErrorCount

	// SinceSubscribe is, over the subscribers with LatencyFromSubscribe,
	// the longest time from SUBSCRIBE to the last new message they got.
	SinceSubscribe time.Duration
}

// NewLatencyHistogram returns the histogram every latency here goes into:
// microseconds from 1 µs to 1 hour, 3 significant digits.
func NewLatencyHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, 3_600_000_000, 3) }

// Collect merges the results of closed engines: counters, histograms,
// errors, and the per-receiver tracking turned into losses, duplicates and
// out-of-order counts. Engines of one run (the retained scenario uses one
// per phase) are collected together so receivers are matched against the
// publishers of all of them. It must be called after Close.
func Collect(engines ...*Engine) *Totals {
	t := &Totals{Latency: NewLatencyHistogram(), Connack: NewLatencyHistogram()}
	var errs errTable
	var pubs []*conn
	var recvs []*conn
	for _, e := range engines {
		if !e.closed.Load() {
			panic("BUG: client.Collect before Engine.Close")
		}
		c := e.Counters()
		t.Sent += c.Sent
		t.Received += c.Received
		t.ConnOK += c.Ready
		t.ConnFailed += c.Failed
		t.Dropped += c.Dropped
		t.Rejected += c.Rejected
		t.UnexpectedAcks += c.Unexpected
		for _, l := range e.loops {
			t.Latency.Merge(l.lat)
			t.Connack.Merge(l.cack)
			errs.merge(&l.errs)
			for _, cn := range l.all {
				t.Foreign += cn.foreign
				if cn.pub != nil && cn.spec.Pub.Payload >= HeaderLen {
					pubs = append(pubs, cn)
				}
				if cn.spec.Track && cn.readyAt > 0 {
					recvs = append(recvs, cn)
					if cn.spec.LatencyFromSubscribe && cn.lastNew > 0 {
						t.SinceSubscribe = max(t.SinceSubscribe, cn.lastNew-cn.subSentAt)
					}
				}
			}
		}
	}
	t.Errors = errs.list()
	t.tally(pubs, recvs)
	return t
}

// tally turns the receivers' bitmaps into Expected, Unique, Lost,
// Duplicated and OutOfOrder.
func (t *Totals) tally(pubs, recvs []*conn) {
	byID := map[uint32]*conn{}
	for _, p := range pubs {
		byID[p.spec.Pub.ID] = p
	}
	// Receiver units: a lone subscriber, or a shared group.
	type unit struct {
		filters []string
		members []*conn
	}
	var units []*unit
	groups := map[string]*unit{}
	for _, r := range recvs {
		for _, tr := range r.tracks {
			if tr != nil {
				t.Duplicated += tr.dups
				t.OutOfOrder += tr.ooo
			}
		}
		if r.spec.Group == "" {
			units = append(units, &unit{filters: r.spec.Filters, members: []*conn{r}})
			continue
		}
		u := groups[r.spec.Group]
		if u == nil {
			u = &unit{filters: r.spec.Filters}
			groups[r.spec.Group] = u
			units = append(units, u)
		}
		u.members = append(u.members, r)
	}
	ids := make([]uint32, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, u := range units {
		for _, id := range ids {
			p := byID[id]
			exp := expected(p.spec.Pub.Topics, p.pub.sent, u.filters)
			var uniq uint64
			if len(u.members) == 1 {
				if tr := u.members[0].trackFor(id); tr != nil {
					uniq = tr.unique
				}
			} else {
				var or []uint64
				var sum uint64
				for _, m := range u.members {
					if tr := m.trackFor(id); tr != nil {
						or = tr.orInto(or)
						sum += tr.unique
					}
				}
				uniq = popcount(or)
				t.Duplicated += sum - uniq // delivered to two members of the group
			}
			t.Expected += exp
			t.Unique += uniq
			if exp > uniq {
				t.Lost += exp - uniq
			} else {
				t.Unexpected += uniq - exp
			}
		}
	}
}

// expected counts the messages among the first sent of a publisher cycling
// through topics that match any of filters.
func expected(topics []string, sent uint64, filters []string) uint64 {
	n := uint64(len(topics))
	if n == 0 {
		return 0
	}
	full, rem := sent/n, sent%n
	var e uint64
	for i, tp := range topics {
		hit := false
		for _, f := range filters {
			if Match(FilterOf(f), tp) {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		e += full
		if uint64(i) < rem {
			e++
		}
	}
	return e
}

// errTable counts failures by reason and keeps the first detail of each.
// Owned by one goroutine at a time.
type errTable struct {
	count  [numReasons]uint64
	sample [numReasons]string
}

func (t *errTable) add(r Reason, detail string) {
	if t.count[r] == 0 {
		t.sample[r] = detail
	}
	t.count[r]++
}

func (t *errTable) merge(o *errTable) {
	for r := range o.count {
		if o.count[r] == 0 {
			continue
		}
		if t.count[r] == 0 {
			t.sample[r] = o.sample[r]
		}
		t.count[r] += o.count[r]
	}
}

func (t *errTable) list() []ErrorCount {
	var l []ErrorCount
	for r := range t.count {
		if t.count[r] > 0 {
			l = append(l, ErrorCount{Reason: Reason(r), Name: Reason(r).String(), Count: t.count[r], Sample: t.sample[r]})
		}
	}
	return l
}

// batch is one Connect call's share on one loop. Loop-only, except done,
// which the caller waits on, and the result fields, read after done.
type batch struct {
	done        chan struct{}
	remaining   int
	concurrency int
	rate        float64
	ok, failed  int
	errs        errTable
}
