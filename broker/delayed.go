package broker

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// Delayed publish (Options.DelayedPublish, docs/delivery.md): a PUBLISH to
// $delayed/{seconds}/{topic} is published to {topic} once the delay has
// passed. The ACL applies to {topic}, as if it were published now.
//
// Each accepted message is a store record (store.Delayed), written in the
// publisher's pass: its PUBACK/PUBREC waits for the record as for any
// durable operation, so an acknowledged delayed message survives a crash
// and is published on time after a restart (at once if its time passed
// while the broker was down). At its time it is published from the loop
// that accepted it (a restored one: from a loop chosen by its id), and its
// record is deleted in that same pass: one loop's operations reach the
// store in order, so the delete never overtakes the write.
//
// Timers: one broker-wide min-heap ordered by publication time, under a
// mutex taken only by $delayed PUBLISHes, the embedding API and the timer,
// and one runtime timer (time.AfterFunc) armed for the earliest message:
// no goroutine per message, and a fire publishes every message that is
// due. The heap is bounded by Options.MaxDelayedMessages.

// delayedPrefix starts the topic of a delayed PUBLISH.
const delayedPrefix = "$delayed/"

// delayedResult labels mcutie_delayed_messages_total.
type delayedResult uint8

const (
	delayedScheduled delayedResult = iota // accepted and stored
	delayedPublished                      // published at its time
	delayedCanceled                       // canceled through the embedding API
	delayedQuota                          // refused: MaxDelayedMessages reached (v5: 0x97)
	delayedTooLong                        // refused: delay beyond MaxDelay (v5: 0x83)
	delayedInvalid                        // refused: no delay, no topic or a '$' target (v5: 0x90)
	numDelayedResults
)

var delayedResultLabels = [numDelayedResults]string{"scheduled", "published", "canceled", "quota_exceeded", "delay_too_long", "invalid"}

// ErrDelayedNotFound is returned by CancelDelayed for an id that is not
// waiting (never scheduled, already published or canceled).
var ErrDelayedNotFound = errors.New("broker: no such delayed message")

// delayedEntry is one waiting message.
type delayedEntry struct {
	id     uint64
	at     int64 // unix ns: when it is published
	origin string
	loop   int // the loop that publishes it (and that wrote its record)
	m      *Message
	index  int // position in the heap
}

// delayedQueue is the broker's delayed messages. Safe for concurrent use.
type delayedQueue struct {
	b      *Broker
	mu     sync.Mutex
	heap   delayedHeap
	byID   map[uint64]*delayedEntry
	nextID uint64
	timer  *time.Timer
	armed  int64 // when timer fires (unix ns); 0: not armed
	closed bool

	count atomic.Int64 // len(heap), for metrics without the lock
	ctr   [numDelayedResults]atomic.Uint64
}

type delayedHeap []*delayedEntry

func (h delayedHeap) Len() int { return len(h) }
func (h delayedHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].id < h[j].id
}
func (h delayedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *delayedHeap) Push(x any) {
	e := x.(*delayedEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *delayedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

func newDelayedQueue(b *Broker) *delayedQueue {
	return &delayedQueue{b: b, byID: make(map[uint64]*delayedEntry), nextID: 1}
}

// splitDelayed splits $delayed/{seconds}/{topic}. ok is false when the
// delay is not a decimal number of seconds or the topic is empty or
// starts with '$' (a delayed message is an application message: $SYS,
// $p2p and $delayed again are not targets).
func splitDelayed(topic []byte) (secs uint64, rest []byte, ok bool) {
	tail := topic[len(delayedPrefix):]
	i := bytes.IndexByte(tail, '/')
	if i <= 0 || i == len(tail)-1 || tail[i+1] == '$' || i > 10 {
		return 0, nil, false
	}
	for _, c := range tail[:i] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		secs = secs*10 + uint64(c-'0')
	}
	return secs, tail[i+1:], true
}

// add schedules m (the queue takes the caller's reference) for at; it
// returns the new id, or false when the queue is full or closed.
func (q *delayedQueue) add(m *Message, at int64, origin string, loop int) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.heap) >= q.b.opts.MaxDelayedMessages {
		return 0, false
	}
	id := q.nextID
	q.nextID++
	q.push(&delayedEntry{id: id, at: at, origin: origin, loop: loop, m: m})
	return id, true
}

// push adds e and re-arms the timer if e is now the earliest. q.mu held.
func (q *delayedQueue) push(e *delayedEntry) {
	heap.Push(&q.heap, e)
	q.byID[e.id] = e
	q.count.Store(int64(len(q.heap)))
	q.arm()
}

// arm sets the timer for the earliest message. q.mu held.
func (q *delayedQueue) arm() {
	if q.closed || len(q.heap) == 0 {
		return
	}
	at := q.heap[0].at
	if q.armed != 0 && q.armed <= at {
		return // fires earlier; that fire re-arms
	}
	d := time.Duration(at - q.b.opts.Now().UnixNano())
	q.armed = at
	if q.timer == nil {
		q.timer = time.AfterFunc(max(d, 0), q.fire)
		return
	}
	q.timer.Reset(max(d, 0))
}

// delayedRetry is how soon the timer tries again when a loop is not bound
// yet (messages restored before the transport started) or its inbox is
// full.
const delayedRetry = 100 * time.Millisecond

// fire publishes every due message from its loop. Runs on the timer's
// goroutine.
func (q *delayedQueue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = 0
	if q.closed {
		return
	}
	now := q.b.opts.Now().UnixNano()
	for len(q.heap) > 0 && q.heap[0].at <= now {
		e := q.heap[0]
		l := q.b.loops[e.loop]
		if !l.bound() || !l.post(inboxItem{kind: itemFunc, fn: func() { l.releaseDelayed(e) }}, false) {
			q.armed = now + int64(delayedRetry)
			q.timer.Reset(delayedRetry)
			return
		}
		heap.Pop(&q.heap)
		delete(q.byID, e.id)
	}
	q.count.Store(int64(len(q.heap)))
	q.arm()
}

// releaseDelayed publishes a due message and deletes its record.
// Loop-only.
func (l *Loop) releaseDelayed(e *delayedEntry) {
	b := l.b
	m := e.m
	if b.opts.Store != nil {
		l.addOp(store.Op{Delete: true, Delayed: &store.Delayed{ID: e.id, PublishAt: e.at}}, nil)
	}
	b.delayed.ctr[delayedPublished].Add(1)
	// The Publish hooks saw (and could change or drop) the message when
	// the client published it; they are not asked a second time.
	l.publish(m, nil)
	m.release()
}

// stop stops the timer; waiting messages stay stored. Safe for concurrent
// use.
func (q *delayedQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.timer != nil {
		q.timer.Stop()
	}
}

// restore adds a message loaded from the store. Before the loops run.
func (q *delayedQueue) restore(d *store.Delayed, m *Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, dup := q.byID[d.ID]; dup {
		m.release()
		return
	}
	q.nextID = max(q.nextID, d.ID+1)
	q.push(&delayedEntry{id: d.ID, at: d.PublishAt, origin: d.Origin, loop: int(d.ID % uint64(len(q.b.loops))), m: m})
}

// publishDelayed handles a PUBLISH to $delayed/{seconds}/{topic} whose
// topic was checked and rewritten to {topic}: it schedules the message
// and acknowledges it once its record is stored. Loop-only.
// qos and retain are the message's, as the hooks left them.
func (c *Client) publishDelayed(p *codec.Publish, delay time.Duration, qos byte, retain bool) {
	l, s := c.l, c.s
	b := l.b
	m := newMessage(p, nil, l.now)
	m.QoS, m.Retain, m.pinned = qos, retain, retain
	if m.ExpireAt != 0 {
		m.ExpireAt += int64(delay) // Message Expiry counts from the publication
	}
	at := l.now + int64(delay)
	id, ok := b.delayed.add(m, at, s.id, l.idx)
	code := codec.Success
	var aw *ackWait
	if p.QoS > 0 {
		aw = newAckWait(c, ackFor(p.QoS), p.PacketID)
	}
	if !ok {
		m.release()
		b.delayed.ctr[delayedQuota].Add(1)
		if c.version == codec.V5 {
			code = codec.QuotaExceeded
		} else {
			// 3.x has no code for it: acknowledged and dropped, with
			// a line in the log.
			if ok, suppressed := l.authLog.allow(l.now); ok {
				b.opts.Logger.Warn("delayed message dropped: --max-delayed-messages reached", slog.String("client", s.id),
					slog.String("topic", string(p.Topic)), slog.Int("max", b.opts.MaxDelayedMessages), slog.Uint64("suppressed", suppressed))
			}
		}
	} else {
		b.delayed.ctr[delayedScheduled].Add(1)
		if b.opts.Store != nil {
			sm := storeMessage(m)
			l.addOp(store.Op{Delayed: &store.Delayed{ID: id, PublishAt: at, Origin: s.id, Msg: sm}}, aw)
		}
		if p.QoS == 2 && s.persistent() {
			s.storeInbound(p.PacketID, false, aw)
		}
	}
	if aw == nil {
		return
	}
	aw.code = code
	aw.releaseOn(l, nil)
}

// refuseDelayed answers a $delayed PUBLISH that cannot be scheduled
// (invalid topic, delay too long). Loop-only.
func (c *Client) refuseDelayed(p *codec.Publish, r delayedResult, code codec.ReasonCode) {
	c.l.b.delayed.ctr[r].Add(1)
	if p.QoS == 0 {
		return
	}
	if c.version != codec.V5 {
		code = codec.Success // 3.x has no code: acknowledged and dropped
	}
	c.queueAck(ackFor(p.QoS), p.PacketID, code)
}

// DelayedMessage is a waiting delayed message, as DelayedMessages lists it.
type DelayedMessage struct {
	ID        uint64
	Topic     string // the target topic
	Payload   []byte // a copy
	QoS       byte
	Retain    bool
	PublishAt time.Time
	// ClientID is the publisher's client id ("" if unknown).
	ClientID string
}

// DelayedMessages lists the waiting delayed messages, soonest first.
// Safe for concurrent use.
func (b *Broker) DelayedMessages() []DelayedMessage {
	q := b.delayed
	q.mu.Lock()
	out := make([]DelayedMessage, 0, len(q.heap))
	for _, e := range q.heap {
		out = append(out, DelayedMessage{ID: e.id, Topic: string(e.m.Topic), Payload: bytes.Clone(e.m.Payload), QoS: e.m.QoS,
			Retain: e.m.Retain, PublishAt: time.Unix(0, e.at), ClientID: e.origin})
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b DelayedMessage) int {
		if c := a.PublishAt.Compare(b.PublishAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// CancelDelayed removes a waiting delayed message and deletes its record;
// ErrDelayedNotFound if it is not waiting. Safe for concurrent use.
func (b *Broker) CancelDelayed(id uint64) error {
	q := b.delayed
	q.mu.Lock()
	e, ok := q.byID[id]
	if ok {
		heap.Remove(&q.heap, e.index)
		delete(q.byID, id)
		q.count.Store(int64(len(q.heap)))
	}
	q.mu.Unlock()
	if !ok {
		return ErrDelayedNotFound
	}
	q.ctr[delayedCanceled].Add(1)
	e.m.release()
	if st := b.opts.Store; st != nil {
		// The delete goes through the loop that wrote the record, so it
		// cannot overtake the write.
		op := store.Op{Delete: true, Delayed: &store.Delayed{ID: e.id, PublishAt: e.at}}
		l := b.loops[e.loop]
		if !l.bound() || !l.post(inboxItem{kind: itemFunc, fn: func() { l.addOp(op, nil) }}, true) {
			return st.Apply([]store.Op{op}, nil)
		}
	}
	return nil
}
