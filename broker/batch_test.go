package broker

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// queuedBroker returns a one-loop broker whose posted work waits in a
// queue until run is called, as gnet runs a loop's tasks after the socket
// events of a poll, and the clock it reads.
func queuedBroker(tb testing.TB, window time.Duration) (b *Broker, run func(), clock *atomic.Int64) {
	tb.Helper()
	clock = new(atomic.Int64)
	clock.Store(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).UnixNano())
	b = New(Options{Loops: 1, CoalesceWindow: window, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	var q []func()
	b.loops[0].Bind(func(fn func()) error { q = append(q, fn); return nil })
	run = func() {
		for len(q) > 0 {
			fn := q[0]
			q = q[1:]
			fn()
		}
	}
	return b, run, clock
}

// TestBatchFlushOneWritePerConnection: what the connections fed in one
// batch produce is written when the batch ends, one write per connection:
// a subscriber fed by three publishers gets one write holding the three
// PUBLISHes in the order they arrived, and each QoS 1 publisher's PUBACK
// goes in the same flush.
func TestBatchFlushOneWritePerConnection(t *testing.T) {
	b, run, _ := queuedBroker(t, time.Millisecond)
	l := b.loops[0]
	sub := &fakeConn{keep: true}
	sc := l.NewClient(sub)
	sc.Feed(connectRaw("sub", "", "", codec.V311))
	subscribe(t, sc, codec.V311, "dev/+/t", 1)
	var pubs []*Client
	var pconns []*fakeConn
	for i := range 3 {
		fc := &fakeConn{keep: true}
		c := l.NewClient(fc)
		c.Feed(connectRaw(fmt.Sprintf("pub%d", i), "", "", codec.V311))
		pubs, pconns = append(pubs, c), append(pconns, fc)
	}
	run()
	sub.out, sub.writes = nil, 0
	for _, fc := range pconns {
		fc.out, fc.writes = nil, 0
	}
	l.batching = true // as after a busy spell (TestCoalescePausesOnlyWhenBusy)

	for i, c := range pubs {
		p := codec.Publish{Topic: fmt.Appendf(nil, "dev/%d/t", i), Payload: []byte{byte(i)}, QoS: 1, PacketID: uint16(10 + i)}
		raw := p.Append(nil, codec.V311)
		if n, res := c.Feed(raw); n != len(raw) || res != FeedContinue {
			t.Fatalf("publish %d: consumed %d of %d, result %d", i, n, len(raw), res)
		}
	}
	if sub.writes != 0 || pconns[0].writes != 0 {
		t.Fatalf("written before the batch ended: subscriber %d writes, first publisher %d", sub.writes, pconns[0].writes)
	}
	run()
	if sub.writes != 1 {
		t.Fatalf("subscriber: %d writes for one batch, want 1", sub.writes)
	}
	hs, bodies := frames(t, sub.out)
	if len(hs) != 3 {
		t.Fatalf("subscriber got %d packets, want 3 PUBLISHes", len(hs))
	}
	for i := range hs {
		var p codec.Publish
		if err := p.Decode(hs[i], bodies[i], codec.V311); err != nil {
			t.Fatal(err)
		}
		// [MQTT-4.6.0-6]: a publisher's messages in order; here the order
		// they arrived on the loop.
		if want := fmt.Sprintf("dev/%d/t", i); string(p.Topic) != want {
			t.Fatalf("PUBLISH %d is on %q, want %q", i, p.Topic, want)
		}
	}
	for i, fc := range pconns {
		hs, bodies := frames(t, fc.out)
		if fc.writes != 1 || len(hs) != 1 || hs[0].Type != codec.PUBACK {
			t.Fatalf("publisher %d: %d writes, %d packets; want its PUBACK in one write", i, fc.writes, len(hs))
		}
		var a codec.Ack
		if err := a.Decode(hs[0], bodies[0], codec.V311); err != nil || a.PacketID != uint16(10+i) {
			t.Fatalf("publisher %d: PUBACK %+v (%v), want packet id %d", i, a, err, 10+i)
		}
	}
	l.snapshot() // what Stats reads, refreshed by Tick
	if st := b.Stats(); st.Loops[0].BatchFlushes == 0 {
		t.Fatal("mcutie_loop_batch_flushes_total did not count the batch")
	}
}

// TestCoalescePausesOnlyWhenBusy: a loop batches and pauses after each
// batch only while its connections send at least two messages per
// window; a slow trickle is flushed Feed by Feed and never paused, and a
// batch that kept the loop busy for more than half a window (a flood) is
// not followed by a pause. The decisions are read from the broker's
// clock (a fake here), so they are deterministic; a pause itself is a
// real sleep of the window.
func TestCoalescePausesOnlyWhenBusy(t *testing.T) {
	const window = time.Millisecond
	b, run, clock := queuedBroker(t, window)
	l := b.loops[0]
	sub := &fakeConn{}
	sc := l.NewClient(sub)
	sc.Feed(connectRaw("sub", "", "", codec.V311))
	subscribe(t, sc, codec.V311, "dev/+/t", 0)
	var pubs []*Client
	for i := range 8 {
		c := l.NewClient(&fakeConn{})
		c.Feed(connectRaw(fmt.Sprintf("pub%d", i), "", "", codec.V311))
		pubs = append(pubs, c)
	}
	run()
	publish := func(i int) {
		p := codec.Publish{Topic: fmt.Appendf(nil, "dev/%d/t", i), Payload: []byte("x")}
		pubs[i].Feed(p.Append(nil, codec.V311))
	}
	// batch feeds n publishes gap after the previous batch, then the
	// loop stays busy for busy before the batch ends.
	batch := func(n int, gap, busy time.Duration) {
		t.Helper()
		clock.Add(int64(gap))
		for i := range n {
			publish(i)
		}
		clock.Add(int64(busy))
		run()
	}
	pauses := func() uint64 { return l.counters.coalescePauses }

	// A trickle, one message every 10 ms: each is written at once.
	for i := range 5 {
		clock.Add(int64(10 * time.Millisecond))
		w := sub.writes
		publish(i)
		if sub.writes != w+1 || l.batching {
			t.Fatalf("message %d of a trickle: %d writes, batching %v; want it written at once", i, sub.writes-w, l.batching)
		}
	}
	// One message every 100 µs: after a window of them the loop batches.
	for i := 0; !l.batching; i++ {
		if i == 20 {
			t.Fatal("not batching after 2 ms of a message every 100 µs")
		}
		clock.Add(int64(100 * time.Microsecond))
		publish(i % len(pubs))
	}
	run()
	w := sub.writes
	batch(4, 100*time.Microsecond, 0) // 4 in 100 µs: 40 per window
	if pauses() != 1 || sub.writes != w+1 {
		t.Fatalf("after a batch of 4 in 100 µs: %d pauses, %d writes; want 1 pause and 1 write", pauses(), sub.writes-w)
	}
	batch(8, 100*time.Microsecond, 600*time.Microsecond) // busy for 0.6 window: a flood
	if pauses() != 1 || !l.batching {
		t.Fatalf("after a batch that kept the loop busy for 0.6 window: %d pauses (want 1), batching %v (want true)", pauses(), l.batching)
	}
	batch(8, 100*time.Microsecond, 0)
	if pauses() != 2 {
		t.Fatalf("%d pauses, want 2: 8 messages in 100 µs", pauses())
	}
	batch(1, 10*time.Millisecond, 0) // 1 in 10 ms: 0.1 per window
	if pauses() != 2 || l.batching {
		t.Fatalf("after 1 message in 10 ms: %d pauses (want 2), batching %v (want false)", pauses(), l.batching)
	}
	w = sub.writes
	publish(0)
	if sub.writes != w+1 {
		t.Fatal("a message after batching stopped was not written at once")
	}
	// Busy again, on a host whose CPUs are contended: a pause ends 5 ms
	// late, and the loop keeps batching without pausing for a while.
	for i := 0; !l.batching; i++ {
		if i == 20 {
			t.Fatal("not batching again")
		}
		clock.Add(int64(100 * time.Microsecond))
		publish(i % len(pubs))
	}
	run()
	l.sleep = func(d time.Duration) { clock.Add(int64(d + 5*time.Millisecond)) }
	batch(4, 100*time.Microsecond, 0)
	if pauses() != 3 {
		t.Fatalf("%d pauses, want 3", pauses())
	}
	w = sub.writes
	batch(4, 100*time.Microsecond, 0)
	if pauses() != 3 || !l.batching || sub.writes != w+1 {
		t.Fatalf("after a pause that overslept: %d pauses (want 3), batching %v (want true), %d writes (want 1)", pauses(), l.batching, sub.writes-w)
	}
	// The busy loop pauses again, pauseOffFor later.
	l.sleep = func(d time.Duration) { clock.Add(int64(d)) }
	start := clock.Load()
	for i := 0; pauses() == 3; i++ {
		if i == 5000 || !l.batching {
			t.Fatalf("pauses did not resume (batching %v)", l.batching)
		}
		batch(4, 100*time.Microsecond, 0)
	}
	if off := time.Duration(clock.Load() - start); off < pauseOffFor {
		t.Fatalf("pauses off for %v after a pause that overslept, want %v", off, pauseOffFor)
	}
	l.snapshot()
	if st := b.Stats(); st.Loops[0].CoalescePauses != 4 || st.Loops[0].BatchFlushes == 0 {
		t.Fatalf("mcutie_loop_coalesce_pauses_total %d (want 4), mcutie_loop_batch_flushes_total %d (want > 0)",
			st.Loops[0].CoalescePauses, st.Loops[0].BatchFlushes)
	}
}
