package broker

import (
	"log/slog"
	"time"

	"github.com/mcutie/mcutie/hooks"
)

// Retained messages owed to a connection after a SUBSCRIBE are sent as the
// connection takes them, not all at once: a `#` subscription over a
// million retained topics would otherwise overrun the connection's
// outbound bound (QoS 0 dropped as a slow consumer) or its session queue
// (QoS 1/2 dropped, queue full). The matches are listed when the SUBSCRIBE
// is handled (the index's state then, MQTT-3.3.1-9); sendRetained writes
// them while the connection is below its outbound bound and its session
// queue below half of Options.MaxQueued, and stalls otherwise. A stalled
// connection is retried every retainedRetry while any is stalled (one
// timer per loop, not per connection), on every acknowledgement (pump) and
// on the loop's tick.

// retainedSend is one retained message owed to a connection.
type retainedSend struct {
	m      *Message // pinned (the retained index's), so safe to hold
	qos    byte     // granted QoS of the subscription
	id     uint32   // its subscription identifier, 0 if none
	filter uint64   // hash of the subscription's filter (dedupe key)
}

// retainedKey names one owed send: a message for one subscription.
type retainedKey struct {
	m      *Message
	filter uint64
}

const retainedRetry = 2 * time.Millisecond

// retainedOwed is what a connection still owes of retained messages
// (Client.owedRetained), allocated only while it owes some.
type retainedOwed struct {
	q   []retainedSend
	pos int
	// owed indexes q[pos:] by message and filter once a SUBSCRIBE finds
	// sends still owed: a subscription repeated before its retained
	// messages went out replaces what it is owed instead of adding to it,
	// so a client that subscribes again and again without reading is
	// owed at most one send per retained message and filter.
	owed    map[retainedKey]int
	stalled bool // in l.retStalled
	sending bool // sendRetained is running (no re-entry from pump)
}

// retPending reports whether retained messages are owed to c.
func (c *Client) retPending() bool {
	return c.owedRetained != nil && c.owedRetained.pos < len(c.owedRetained.q)
}

// queueRetained adds the retained messages owed to c and starts sending
// them. Loop-only.
func (c *Client) queueRetained(msgs []*Message, qos byte, id uint32, filter uint64) {
	if len(msgs) == 0 {
		return
	}
	if c.state != stateConnected {
		return
	}
	if c.owedRetained == nil {
		c.owedRetained = new(retainedOwed)
	}
	o := c.owedRetained
	if owed := len(o.q) - o.pos; owed > c.l.b.opts.MaxRetainedOwed {
		// The client has not read what earlier subscriptions owe it and
		// asks for more: a slow reader, closed before what it is owed
		// outgrows the bound (Options.MaxRetainedOwed).
		c.closeFor(closeRetainedOwed, 0, "", slog.Int("owed", owed))
		return
	}
	if o.pos < len(o.q) && o.owed == nil {
		o.owed = make(map[retainedKey]int, len(o.q)-o.pos)
		for i := o.pos; i < len(o.q); i++ {
			o.owed[retainedKey{o.q[i].m, o.q[i].filter}] = i
		}
	}
	for _, m := range msgs {
		send := retainedSend{m: m, qos: qos, id: id, filter: filter}
		if o.owed != nil {
			k := retainedKey{m, filter}
			if i, ok := o.owed[k]; ok && i >= o.pos {
				o.q[i] = send // the newer subscription's options
				continue
			}
			o.owed[k] = len(o.q)
		}
		o.q = append(o.q, send)
	}
	c.sendRetained()
}

// sendRetained sends owed retained messages while the connection takes
// them. Loop-only.
func (c *Client) sendRetained() {
	o := c.owedRetained
	if o == nil || o.pos == len(o.q) || o.sending {
		return
	}
	l, s := c.l, c.s
	o.sending = true
	defer func() { o.sending = false }()
	for o.pos < len(o.q) {
		if c.state != stateConnected || s == nil || s.c != c {
			c.dropRetained()
			return
		}
		r := &o.q[o.pos]
		if c.outboundFull() || (r.qos > 0 && r.m.QoS > 0 && s.queuedLen()+s.inflightLen() >= l.b.opts.MaxQueued/2) {
			l.stallRetained(c)
			return
		}
		// A message replaced or cleared since the SUBSCRIBE is not sent:
		// the subscriber has the newer one, live, or none is retained.
		if cur, ok := l.b.retained.Get(r.m.Topic); ok && cur == r.m {
			l.deliverOne(s, r.m, r.qos, true, r.id) // retained on subscribe: RETAIN=1
			l.counters.retainedSent++
		}
		*r = retainedSend{}
		o.pos++
	}
	c.dropRetained()
}

// dropRetained forgets what is owed. Loop-only.
func (c *Client) dropRetained() {
	if o := c.owedRetained; o != nil {
		clear(o.q[o.pos:])
		o.q, o.pos, o.owed = nil, 0, nil
		c.owedRetained = nil
	}
}

// stallRetained notes that c waits for room and arms the loop's retry
// timer. Loop-only.
func (l *Loop) stallRetained(c *Client) {
	if c.owedRetained.stalled {
		return
	}
	c.owedRetained.stalled = true
	l.retStalled = append(l.retStalled, c)
	l.counters.retainedStalls++
	if l.retTimerArmed {
		return
	}
	l.retTimerArmed = true
	if l.retTimer == nil {
		l.retTimer = time.AfterFunc(retainedRetry, func() {
			if !l.post(inboxItem{kind: itemFunc, fn: l.resumeRetained}, false) {
				// Inbox full: the loop is busy and its tick retries.
				l.exec(func() { l.retTimerArmed = false })
			}
		})
		return
	}
	l.retTimer.Reset(retainedRetry)
}

// resumeRetained retries the stalled connections. Loop-only.
func (l *Loop) resumeRetained() {
	l.retTimerArmed = false
	stalled := l.retStalled
	l.retStalled = nil
	for i, c := range stalled {
		stalled[i] = nil
		if c.owedRetained != nil {
			c.owedRetained.stalled = false
		}
		c.sendRetained()
	}
}

func (l *Loop) setRetained(m *Message) {
	b := l.b
	if rs := b.rsync; rs != nil && !b.isSys(m.Topic) {
		l.setRetainedVersioned(rs, m) // a cluster: last writer wins
		return
	}
	if b.hooks.Has(hooks.RetainedChanged) {
		origin := hooks.FromServer
		if m.origin != nil {
			origin = hooks.FromClient
		}
		b.hooks.RetainedChanged(l.hookMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Props, origin, nil))
	}
	if len(m.Payload) == 0 {
		// [MQTT-3.3.1-6/-7] An empty payload removes the retained message and is not stored.
		if old, ok := b.retained.Delete(m.Topic); ok {
			b.retainedGone(old)
			old.release()
		}
		l.storeRetained(m, m.ack)
		return
	}
	if !b.retainedRoom(m) {
		// --max-retained-messages / --max-retained-bytes: delivered as
		// published but not retained; a v5 publisher is told 0x97.
		l.counters.dropped[dropRetainedFull]++
		if m.ack != nil {
			m.ack.quotaExceeded.Store(true)
		}
		return
	}
	l.storeRetained(m, m.ack)
	// [MQTT-3.3.1-5] Replace the stored message.
	m.retain()
	if old, ok := b.retained.Set(m.Topic, m); ok {
		b.retainedGone(old)
		old.release()
	}
}

// retainedSize is what a retained message counts toward
// Options.MaxRetainedBytes.
func retainedSize(m *Message) int64 { return int64(len(m.Topic) + len(m.Payload)) }

// retainedRoom takes room for m in the retained bounds and reports whether
// there was some; retainedGone gives back a message's room. Loops race on
// the counters, so a bound can be passed by what the loops admit at the
// same instant (at most one message each). Safe for concurrent use.
func (b *Broker) retainedRoom(m *Message) bool {
	n := b.retainedCount.Add(1)
	sz := b.retainedBytes.Add(retainedSize(m))
	if n <= int64(b.opts.MaxRetainedMessages) && sz <= b.opts.MaxRetainedBytes {
		return true
	}
	if old, ok := b.retained.Get(m.Topic); ok && (sz-retainedSize(old) <= b.opts.MaxRetainedBytes || retainedSize(m) <= retainedSize(old)) {
		return true // replacing takes no new slot, and no more bytes than the bound allows
	}
	b.retainedCount.Add(-1)
	b.retainedBytes.Add(-retainedSize(m))
	return false
}

func (b *Broker) retainedGone(m *Message) {
	b.retainedCount.Add(-1)
	b.retainedBytes.Add(-retainedSize(m))
}
