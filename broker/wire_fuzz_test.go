package broker

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

func TestMain(m *testing.M) {
	// Count live Messages (see liveMessages) for the leak checks of the
	// wire fuzz target; set before any broker runs.
	trackMessages = true
	os.Exit(m.Run())
}

// FuzzWire drives the connection state machine in-process with byte
// streams for up to three connections, built from valid MQTT 3.1, 3.1.1 and
// 5.0 sessions and mutated by the fuzzer. A broker with small limits (so
// the limit paths run too) and a memory store (so the persistence paths
// run) sits behind a harness that behaves like the reactor: each
// connection has an inbound buffer, Feed consumes whole packets, a
// connection moved to its home loop carries its unconsumed bytes, a closed
// connection gets Closed, and posted work runs after the current callback,
// never inside it.
//
// Input: segments of [header byte][length uint16 BE][data]. Header bits
// 0-1 pick the connection slot (3: advance the clock by length seconds and
// run every loop's Tick), bit 2 the loop a new connection opens on, bit 3
// hangs the connection up after its data (a peer that goes away), bit 4
// makes the peer stop reading after its data (its outbound buffer full)
// until a segment for it without bit 4 (a second one with bit 4 finds it
// still not reading: a slow reader).
//
// Checked: no panic; every byte the broker writes frames as MQTT packets;
// the broker writes nothing after it called Close; once every connection
// is gone, every session ended and every retained message deleted, no
// Message reference, client, session, subscription, inbox item or held
// output remains; after Shutdown no goroutine remains.
func FuzzWire(f *testing.F) {
	for _, s := range wireSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		runWire(t, in)
	})
}

const (
	segLoop   = 1 << 2
	segHangUp = 1 << 3
	segStall  = 1 << 4 // the peer stops reading (a slow consumer) until a segment without it
	segClock  = 3
)

// wireHarness is the reactor's part, in-process and single-threaded.
type wireHarness struct {
	t     testing.TB
	b     *Broker
	now   atomic.Int64 // Options.Now (read from more than one goroutine)
	mu    sync.Mutex
	q     []func() // posted work, run by the harness goroutine
	slots [3]*wireConn
	all   []*wireConn

	verdicts []func() // asynchronous authentication verdicts, delivered on clock segments
}

type wireConn struct {
	fc    *fakeConn
	wakes int // fc.wakes already answered with a Feed
	c     *Client
	buf   []byte // inbound bytes not consumed yet (gnet's inbound buffer)
	down  bool   // the transport closed it (peer hung up, FeedClose, moved)
	gone  bool   // Closed has run
}

// closed reports whether the connection is closed, by the broker (Close)
// or by the transport.
func (wc *wireConn) closed() bool { return wc.fc.closed || wc.down }

// wireOptions are small limits, so that fuzzed sessions reach them.
func wireOptions() Options {
	return Options{
		Loops:             2,
		MaxPacketSize:     2048,
		MaxTopicLength:    64,
		MaxTopicLevels:    8,
		MaxInflight:       4,
		MaxQueued:         8,
		TopicAliasMaximum: 2,
		MaxSessionExpiry:  3600,
		MaxKeepAlive:      120,
		MinKeepAlive:      5,
		InboxSize:         64,
		MaxQueuedBytes:    256,
		MaxClientIDLength: 23,
		MaxSubscriptions:  4,
		PublishRate:       100,
		PublishBurst:      12,
		PublishByteRate:   4096,
		PublishByteBurst:  4096,
	}
}

func newWireHarness(t testing.TB) *wireHarness {
	h := &wireHarness{t: t}
	h.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	o := wireOptions()
	o.Store = store.NewMemory()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	o.Now = func() time.Time { return time.Unix(0, h.now.Load()) }
	o.Authenticator = wireAuth{h}
	o.Authorizer = wireACL{}
	h.b = New(o)
	for _, l := range h.b.loops {
		l.Bind(h.exec)
	}
	return h
}

// exec queues fn for the harness goroutine, which runs queued work after
// the current callback: like an event loop, posted work never re-enters
// the callback that posted it. Safe for concurrent use (the broker's
// timers post from their own goroutines).
func (h *wireHarness) exec(fn func()) error {
	h.mu.Lock()
	h.q = append(h.q, fn)
	h.mu.Unlock()
	return nil
}

// drain runs queued work until none is left.
func (h *wireHarness) drain() {
	for {
		h.mu.Lock()
		if len(h.q) == 0 {
			h.mu.Unlock()
			return
		}
		fn := h.q[0]
		h.q[0] = nil
		h.q = h.q[1:]
		h.mu.Unlock()
		fn()
	}
}

// run runs fn as a loop callback and the work it posted, then tells the
// broker about every connection that closed, as the transport does.
func (h *wireHarness) run(fn func()) {
	fn()
	h.drain()
	for again := true; again; {
		again = false
		for _, wc := range h.all {
			if wc.closed() && !wc.gone {
				wc.gone = true
				wc.c.Closed()
				h.drain()
				again = true
			}
		}
	}
}

func (h *wireHarness) open(loop int) *wireConn {
	wc := &wireConn{fc: &fakeConn{keep: true}}
	h.run(func() { wc.c = h.b.loops[loop].NewClient(wc.fc) })
	h.all = append(h.all, wc)
	return wc
}

// feed hands wc's buffer to Feed, following a move to another loop.
func (h *wireHarness) feed(slot int, wc *wireConn) {
	for hops := 0; wc != nil && hops < 3; hops++ {
		var next *wireConn
		h.run(func() {
			if wc.closed() {
				return
			}
			// The reactor skips Feed while NeedMore; check that Feed
			// would indeed have consumed nothing.
			needMore := wc.c.NeedMore(wc.buf[:min(len(wc.buf), 5)], len(wc.buf))
			n, res := wc.c.Feed(wc.buf)
			if needMore && (n != 0 || res != FeedContinue) {
				h.t.Fatalf("NeedMore said wait, Feed consumed %d bytes with result %d", n, res)
			}
			// Poison what Feed consumed: a slice of it kept past Feed
			// shows up as garbage in what the broker writes later.
			for i := range wc.buf[:n] {
				wc.buf[i] = 0xEE
			}
			rest := append([]byte(nil), wc.buf[n:]...)
			wc.buf = rest
			switch res {
			case FeedClose:
				wc.buf = nil
				wc.down = true
			case FeedMigrate:
				wc.down = true // the reactor closes the original socket
				next = &wireConn{fc: &fakeConn{keep: true}, buf: rest}
				next.c = h.b.loops[wc.c.MigrateTo].NewClient(next.fc)
				h.all = append(h.all, next)
				h.slots[slot] = next
			}
		})
		wc = next
	}
}

func (h *wireHarness) segment(hdr byte, length int, data []byte) {
	slot := int(hdr & 3)
	if slot == segClock {
		h.now.Add(int64(length) * int64(time.Second))
		// Verdicts come from another goroutine in real life; done posts
		// them to the loop either way.
		vs := h.verdicts
		h.verdicts = nil
		for _, v := range vs {
			h.run(v)
		}
		for _, l := range h.b.loops {
			h.run(l.Tick)
		}
		h.wake()
		return
	}
	wc := h.slots[slot]
	if wc == nil || wc.closed() {
		loop := 0
		if hdr&segLoop != 0 {
			loop = 1
		}
		wc = h.open(loop)
		h.slots[slot] = wc
	}
	if hdr&segStall == 0 {
		wc.fc.buffered = 0 // reading again
	}
	wc.buf = append(wc.buf, data...)
	h.feed(slot, wc)
	if hdr&segStall != 0 {
		wc.fc.buffered = 1 << 30 // stops reading after this segment
	}
	h.wake()
	if hdr&segHangUp != 0 {
		if wc := h.slots[slot]; wc != nil && !wc.closed() {
			wc.down = true
			h.run(func() {})
		}
	}
}

// wake feeds the connections the broker asked to be fed again (Conn.Wake,
// after an asynchronous authentication), as the reactor does.
func (h *wireHarness) wake() {
	for again := true; again; {
		again = false
		for slot, wc := range h.slots {
			if wc != nil && !wc.closed() && wc.fc.wakes != wc.wakes {
				wc.wakes = wc.fc.wakes
				h.feed(slot, wc)
				again = true
			}
		}
	}
}

// wireAuth lets everyone in except user "bad"; user "async" gets its
// verdict at the next clock segment; v5 enhanced authentication with
// method "m" takes one AUTH round whose data must be "ok".
type wireAuth struct{ h *wireHarness }

func (a wireAuth) Authenticate(req *AuthRequest, done func(AuthResult)) {
	switch {
	case req.Method == "m" && req.Step == 0:
		done(AuthResult{Code: codec.ContinueAuthentication, Data: []byte("go")})
	case req.Method == "m":
		if string(req.Data) == "ok" {
			done(AuthResult{Code: codec.Success})
		} else {
			done(AuthResult{Code: codec.NotAuthorized, Reason: "bad data"})
		}
	case req.Method != "":
		done(AuthResult{Code: codec.BadAuthenticationMethod})
	case req.Username == "bad":
		done(AuthResult{Code: codec.BadUserNameOrPassword})
	case req.Username == "async":
		a.h.verdicts = append(a.h.verdicts, func() { done(AuthResult{Code: codec.Success}) })
	default:
		done(AuthResult{Code: codec.Success})
	}
}

// wireACL denies publishing under deny/ and reading under secret/.
type wireACL struct{}

func (wireACL) Allow(_ *Identity, topic []byte, acc Access) bool {
	if acc == AccessWrite {
		return !bytes.HasPrefix(topic, []byte("deny/"))
	}
	return !bytes.HasPrefix(topic, []byte("secret/"))
}

func (wireACL) Generation() uint64 { return 1 }

func runWire(t *testing.T, in []byte) {
	goroutines := runtime.NumGoroutine()
	live := liveMessages.Load()
	h := newWireHarness(t)
	for len(in) >= 3 {
		hdr := in[0]
		length := int(binary.BigEndian.Uint16(in[1:3]))
		in = in[3:]
		var data []byte
		if hdr&3 != segClock {
			data = in[:min(length, len(in))]
			in = in[len(data):]
		}
		h.segment(hdr, length, data)
	}
	h.finish(live, goroutines)
}

// finish hangs up every connection, ends every session, deletes the
// retained messages and checks that nothing is left behind.
func (h *wireHarness) finish(live int64, goroutines int) {
	t := h.t
	for _, wc := range h.all {
		wc.down = true
	}
	h.run(func() {})
	for _, l := range h.b.loops {
		l := l
		// Ending a session may publish its will into another session's
		// queue; that one ends in a later round.
		for round := 0; len(l.sessions) > 0 && round < 100; round++ {
			h.run(func() {
				for _, s := range l.sessions {
					s.end(false)
				}
				l.flush()
			})
		}
	}
	for _, l := range h.b.loops {
		if len(l.sessions) > 0 {
			t.Fatalf("loop %d: %d sessions left after ending them all", l.idx, len(l.sessions))
		}
	}
	var topics [][]byte
	h.b.retained.Range(func(topic []byte, _ *Message) bool {
		topics = append(topics, bytes.Clone(topic))
		return true
	})
	for _, tp := range topics {
		if m, ok := h.b.retained.Delete(tp); ok {
			m.release()
		}
	}
	for _, wc := range h.all {
		if !wc.gone {
			t.Fatalf("connection never reported closed")
		}
		if wc.fc.afterClose > 0 {
			t.Fatalf("%d writes after Close", wc.fc.afterClose)
		}
		out := wc.fc.out
		for len(out) > 0 {
			fh, err := codec.Frame(out, 0)
			if err != nil {
				t.Fatalf("broker wrote bytes that do not frame as MQTT (%v): % x", err, out[:min(len(out), 64)])
			}
			out = out[fh.Len():]
		}
	}
	for _, l := range h.b.loops {
		switch {
		case len(l.clients) != 0:
			t.Fatalf("loop %d: %d clients left", l.idx, len(l.clients))
		case l.subCount.Load() != 0 || l.shard.Len() != 0:
			t.Fatalf("loop %d: %d subscriptions left (%d in the shard)", l.idx, l.subCount.Load(), l.shard.Len())
		case l.inbox.len() != 0:
			t.Fatalf("loop %d: %d inbox items left", l.idx, l.inbox.len())
		case len(l.dirty) != 0 || len(l.held) != 0 || len(l.afterApply) != 0 || len(l.pass.ops) != 0:
			t.Fatalf("loop %d: pending work left: dirty %d held %d afterApply %d ops %d", l.idx, len(l.dirty), len(l.held), len(l.afterApply), len(l.pass.ops))
		case len(l.waiting) != 0:
			t.Fatalf("loop %d: %d waiting sessions left", l.idx, len(l.waiting))
		}
	}
	if n := h.b.shared.Len(); n != 0 {
		t.Fatalf("%d shared subscriptions left", n)
	}
	if n := liveMessages.Load() - live; n != 0 {
		t.Fatalf("%d Message references never released", n)
	}
	// Shutdown waits for work it posts to every loop: run that work here.
	shut := make(chan struct{})
	go func() { h.b.Shutdown(); close(shut) }()
	for waiting := true; waiting; {
		select {
		case <-shut:
			waiting = false
		default:
			h.drain()
			runtime.Gosched()
		}
	}
	for i := 0; runtime.NumGoroutine() > goroutines; i++ {
		switch {
		case i == 2000:
			t.Fatalf("goroutines: %d before, %d after Shutdown", goroutines, runtime.NumGoroutine())
		case i < 1000:
			runtime.Gosched() // Shutdown.s goroutines only have to see their stop
		default:
			time.Sleep(time.Millisecond)
		}
	}
}

// wireSeeds are valid sessions, cut into segments in several ways.
func wireSeeds() [][]byte {
	var seeds [][]byte
	v5a := sessionV5("a", 60)
	v3b := sessionV3("b", codec.V311, false)
	v31 := sessionV3("c", codec.V31, true)
	// One connection at a time, one packet per segment.
	seeds = append(seeds, segs(0, v5a...), segs(1, v3b...), segs(2, v31...))
	// Two clients interleaved, packets split across segments, a clock jump
	// in the middle (keep-alive, will delay, expiry).
	var mix []byte
	for i := 0; i < max(len(v5a), len(v3b)); i++ {
		if i < len(v5a) {
			mix = append(mix, splitSegs(0|segLoop, v5a[i])...)
		}
		if i < len(v3b) {
			mix = append(mix, seg(1, v3b[i])...)
		}
		if i == 4 {
			mix = append(mix, clockSeg(5)...)
		}
	}
	seeds = append(seeds, mix)
	// Whole sessions in one segment each (several packets per Feed).
	seeds = append(seeds, append(seg(0, bytes.Join(v5a, nil)), seg(1|segLoop, bytes.Join(v3b, nil))...))
	// A persistent v3 session: subscribe, hang up, messages arrive while
	// offline, reconnect (session present), time passes until expiry.
	var resume []byte
	b1 := sessionV3("p", codec.V311, false)
	resume = append(resume, segs(1, b1[0], b1[1])...)
	resume = append(resume, seg(1|segHangUp, nil)...)
	resume = append(resume, segs(0, v5a[:6]...)...)
	resume = append(resume, segs(1|segLoop, b1...)...)
	resume = append(resume, clockSeg(4000)...)
	seeds = append(seeds, resume)
	// Takeover: a second connection with the same client id.
	var take []byte
	take = append(take, segs(0, v5a[:4]...)...)
	take = append(take, segs(2|segLoop, v5a...)...)
	take = append(take, clockSeg(200)...)
	seeds = append(seeds, take)
	// Authentication: a refused user, a verdict that comes later (the
	// bytes after CONNECT wait for it), v5 enhanced authentication.
	var au []byte
	refused := sessionV3("x", codec.V311, true)
	refused[0] = (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, ClientID: []byte("x"), CleanStart: true, KeepAlive: 10,
		UsernameFlag: true, Username: []byte("bad"), PasswordFlag: true, Password: []byte("pw")}).Append(nil)
	au = append(au, segs(0, refused[:3]...)...)
	as := sessionV5("y", 0)
	as[0] = (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte("y"), CleanStart: true, KeepAlive: 10,
		UsernameFlag: true, Username: []byte("async")}).Append(nil)
	au = append(au, seg(1, bytes.Join(as[:5], nil))...)
	au = append(au, clockSeg(1)...)
	au = append(au, segs(1, as[5:]...)...)
	en := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte("z"), CleanStart: true, KeepAlive: 10}
	en.Props.Set(codec.PropAuthMethod)
	en.Props.AuthMethod = []byte("m")
	step := codec.Auth{Code: codec.ContinueAuthentication}
	step.Props.Set(codec.PropAuthMethod)
	step.Props.AuthMethod = []byte("m")
	step.Props.Set(codec.PropAuthData)
	step.Props.AuthData = []byte("ok")
	au = append(au, segs(2|segLoop, en.Append(nil), step.Append(nil))...)
	au = append(au, segs(2|segLoop, sessionV5("z", 0)[1:4]...)...)
	au = append(au, seg(0, (&codec.Publish{Topic: []byte("deny/x"), QoS: 1, PacketID: 9, Payload: []byte("no")}).Append(nil, codec.V5))...)
	seeds = append(seeds, au)
	// A subscriber that stops reading: QoS 0 skipped, QoS 1/2 and retained
	// messages wait; then it reads again.
	var slow []byte
	slow = append(slow, segs(0, v3b[:2]...)...)
	slow = append(slow, segs(1|segLoop, v5a[:4]...)...)
	slow = append(slow, seg(0|segStall, codec.AppendPingreq(nil))...)
	slow = append(slow, segs(1|segLoop, v5a[2:6]...)...)
	slow = append(slow, clockSeg(1)...)
	slow = append(slow, segs(0, v3b[5:]...)...)
	seeds = append(seeds, slow)
	// Garbage and limits: an oversized length claim, a first packet that
	// is not CONNECT, a never-speaking connection reaped by the clock.
	bad := seg(0, []byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	bad = append(bad, seg(1, []byte{0x82, 0x05, 0, 1, 0, 1, 'a'})...)
	bad = append(bad, seg(2, nil)...)
	bad = append(bad, clockSeg(30)...)
	seeds = append(seeds, bad)
	return seeds
}

func seg(hdr byte, data []byte) []byte {
	out := []byte{hdr, 0, 0}
	binary.BigEndian.PutUint16(out[1:], uint16(len(data)))
	return append(out, data...)
}

func segs(hdr byte, pkts ...[]byte) []byte {
	var out []byte
	for _, p := range pkts {
		out = append(out, seg(hdr, p)...)
	}
	return out
}

// splitSegs sends p in two segments, cut in the middle.
func splitSegs(hdr byte, p []byte) []byte {
	return append(seg(hdr, p[:len(p)/2]), seg(hdr, p[len(p)/2:])...)
}

func clockSeg(seconds uint16) []byte {
	out := []byte{segClock, 0, 0}
	binary.BigEndian.PutUint16(out[1:], seconds)
	return out
}

// sessionV5 is a v5 client's session: CONNECT with a will and limits,
// SUBSCRIBE (plain and shared), PUBLISH QoS 0/1/2 with retain and a topic
// alias, the acks of both directions, PINGREQ, UNSUBSCRIBE and DISCONNECT
// with will.
func sessionV5(id string, expiry uint32) [][]byte {
	v := codec.V5
	c := codec.Connect{ProtocolName: []byte("MQTT"), Version: v, ClientID: []byte(id), KeepAlive: 30, CleanStart: true,
		WillFlag: true, WillQoS: 1, WillTopic: []byte("will/" + id), WillPayload: []byte("gone")}
	c.Props.Set(codec.PropSessionExpiry)
	c.Props.SessionExpiry = expiry
	c.Props.Set(codec.PropReceiveMaximum)
	c.Props.ReceiveMaximum = 2
	c.Props.Set(codec.PropTopicAliasMaximum)
	c.Props.TopicAliasMaximum = 2
	c.WillProps.Set(codec.PropWillDelay)
	c.WillProps.WillDelay = 2
	sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("t/#"), QoS: 2}, {Filter: []byte("$share/g/t/+"), QoS: 1}, {Filter: []byte("will/#"), QoS: 1, RetainHandling: 1}}}
	sub.Props.SubscriptionIDs = []uint32{7}
	p0 := codec.Publish{Topic: []byte("t/x"), Payload: []byte("zero")}
	p1 := codec.Publish{Topic: []byte("t/y"), Payload: []byte("one"), QoS: 1, PacketID: 2, Retain: true}
	p2 := codec.Publish{Topic: []byte("t/z"), Payload: []byte("two"), QoS: 2, PacketID: 3}
	p2.Props.Set(codec.PropTopicAlias)
	p2.Props.TopicAlias = 1
	p2a := codec.Publish{Payload: []byte("alias"), QoS: 2, PacketID: 4}
	p2a.Props.Set(codec.PropTopicAlias)
	p2a.Props.TopicAlias = 1
	p2a.Props.Set(codec.PropMessageExpiry)
	p2a.Props.MessageExpiry = 1
	unsub := codec.Unsubscribe{PacketID: 5, Filters: [][]byte{[]byte("t/#")}}
	return [][]byte{
		c.Append(nil),
		sub.Append(nil, v),
		p0.Append(nil, v),
		p1.Append(nil, v),
		p2.Append(nil, v),
		p2a.Append(nil, v),
		ack(codec.PUBREL, 3, v),
		ack(codec.PUBREL, 4, v),
		ack(codec.PUBACK, 1, v),
		ack(codec.PUBREC, 2, v),
		ack(codec.PUBCOMP, 2, v),
		codec.AppendPingreq(nil),
		unsub.Append(nil, v),
		(&codec.Disconnect{Code: codec.DisconnectWithWill}).Append(nil, v),
	}
}

// sessionV3 is a 3.1 / 3.1.1 client's session.
func sessionV3(id string, v codec.Version, clean bool) [][]byte {
	name := []byte("MQTT")
	if v == codec.V31 {
		name = []byte("MQIsdp")
	}
	c := codec.Connect{ProtocolName: name, Version: v, ClientID: []byte(id), KeepAlive: 10, CleanStart: clean,
		WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: []byte("t/will"), WillPayload: []byte("bye")}
	sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("t/+"), QoS: 1}, {Filter: []byte("#"), QoS: 2}}}
	p0 := codec.Publish{Topic: []byte("t/a"), Payload: []byte("0")}
	p1 := codec.Publish{Topic: []byte("t/b"), Payload: []byte("1"), QoS: 1, PacketID: 1}
	p2 := codec.Publish{Topic: []byte("t/c"), Payload: []byte("2"), QoS: 2, PacketID: 2, Retain: true}
	unsub := codec.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("#")}}
	return [][]byte{
		c.Append(nil),
		sub.Append(nil, v),
		p0.Append(nil, v),
		p1.Append(nil, v),
		p2.Append(nil, v),
		ack(codec.PUBREL, 2, v),
		ack(codec.PUBACK, 1, v),
		ack(codec.PUBREC, 1, v),
		ack(codec.PUBCOMP, 1, v),
		codec.AppendPingreq(nil),
		unsub.Append(nil, v),
		(&codec.Disconnect{}).Append(nil, v),
	}
}

func ack(t codec.Type, pid uint16, v codec.Version) []byte {
	a := codec.Ack{Type: t, PacketID: pid}
	return a.Append(nil, v)
}
