package e2e

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// Durability: what a persistent session, its queued messages, the retained
// messages and a delayed will look like after the broker restarts, first
// in-process (stop, close the store, reopen) and then with the real binary
// killed with SIGKILL under load and during its own recovery.

var durModes = []store.Durability{store.DurabilityCommit, store.DurabilitySync, store.DurabilityNone}

// durPersistent makes a v5 CONNECT resume a session that lasts an hour.
func durPersistent(p *codec.Connect) {
	p.CleanStart = false
	p.Props.Set(codec.PropSessionExpiry)
	p.Props.SessionExpiry = 3600
}

// durPublish2 runs a QoS 2 publish flow to the end (PUBREC, PUBREL, PUBCOMP).
func durPublish2(r *v5Raw, p *codec.Publish) {
	r.t.Helper()
	p.QoS = 2
	p.PacketID = r.nextPID()
	r.send(p.Append(nil, codec.V5))
	if a := r.expectAck(codec.PUBREC, p.PacketID); a.Code.IsError() {
		r.t.Fatalf("PUBREC 0x%02x for %q", byte(a.Code), p.Payload)
	}
	r.ack(codec.PUBREL, p.PacketID)
	r.expectAck(codec.PUBCOMP, p.PacketID)
}

// durWant is a message a resumed session must get.
type durWant struct {
	topic, payload string
	pubQoS         byte
	qos            byte     // as delivered: min(published, granted)
	ids            []uint32 // subscription identifiers
}

// TestDurable_RestartInProcess: a persistent session's subscriptions and
// queued QoS 1/2 messages, a retained message and a delayed will survive a
// stop and restart on the same Badger directory, in every durability mode.
func TestDurable_RestartInProcess(t *testing.T) {
	for _, d := range durModes {
		t.Run("v5/"+d.String(), func(t *testing.T) {
			t.Parallel()
			durRestartV5(t, d)
		})
		t.Run("v311/"+d.String(), func(t *testing.T) {
			t.Parallel()
			durRestartV3(t, d)
		})
	}
}

func durRestartV5(t *testing.T, d store.Durability) {
	dir := t.TempDir()
	s1 := durStart(t, dir, d)

	// The subscriber: clean start 0, an hour of session expiry; d/# at
	// QoS 2 with subscription identifier 7, e/+ at QoS 1 without one.
	sub, ack := v5RawConnect(t, s1.Addr, "dur-sub", durPersistent)
	if ack.SessionPresent {
		t.Fatal("new session: Session Present 1")
	}
	if got := sub.subscribe(7, codec.Subscription{Filter: []byte("d/#"), QoS: 2}); !slices.Equal(got, []codec.ReasonCode{2}) {
		t.Fatalf("SUBACK d/# %v, want [2]", got)
	}
	if got := sub.subscribe(0, codec.Subscription{Filter: []byte("e/+"), QoS: 1}); !slices.Equal(got, []codec.ReasonCode{1}) {
		t.Fatalf("SUBACK e/+ %v, want [1]", got)
	}
	sub.disconnect(codec.Success)
	sub.expectClosed(v5Timeout)

	// A second persistent session waits for the will, so the will is seen
	// whenever it falls due after the restart.
	ws, _ := v5RawConnect(t, s1.Addr, "dur-willsub", durPersistent)
	ws.subscribe(0, codec.Subscription{Filter: []byte("will/#"), QoS: 1})
	ws.disconnect(codec.Success)
	ws.expectClosed(v5Timeout)

	pub, _ := v5RawConnect(t, s1.Addr, "dur-pub", nil)
	ct := codec.Properties{}
	ct.Set(codec.PropContentType)
	ct.ContentType = []byte("text/plain")
	want := []durWant{
		{"d/x", "d1", 1, 1, []uint32{7}},
		{"d/x", "d2", 2, 2, []uint32{7}},
		{"e/y", "e1", 1, 1, nil},
		{"e/y", "e2", 2, 1, nil}, // granted QoS 1
		{"d/x", "d3", 1, 1, []uint32{7}},
		{"d/x", "d4", 2, 2, []uint32{7}},
	}
	for i, w := range want {
		p := &codec.Publish{Topic: []byte(w.topic), Payload: []byte(w.payload)}
		if i == 1 {
			p.Props = ct
		}
		if w.pubQoS == 2 {
			durPublish2(pub, p)
		} else {
			p.QoS = 1
			if code := pub.publish(p); code.IsError() {
				t.Fatalf("PUBACK 0x%02x for %s", byte(code), w.payload)
			}
		}
	}
	if code := pub.publish(&codec.Publish{Topic: []byte("r/x"), Payload: []byte("ret"), QoS: 1, Retain: true}); code.IsError() {
		t.Fatalf("PUBACK 0x%02x for the retained message", byte(code))
	}
	pub.disconnect(codec.Success)
	pub.expectClosed(v5Timeout)

	// The will's client dies without DISCONNECT: its will is due in 2 s.
	wc, _ := v5RawConnect(t, s1.Addr, "dur-will", func(p *codec.Connect) {
		durPersistent(p)
		p.WillFlag = true
		p.WillTopic = []byte("will/x")
		p.WillPayload = []byte("gone")
		p.WillQoS = 1
		p.WillProps.Set(codec.PropWillDelay)
		p.WillProps.WillDelay = 2
	})
	wc.c.Close()
	killed := time.Now()
	s1.waitIdle(t)

	s1.stop(t)
	s2 := durStart(t, dir, d)
	rs := s2.RS
	if rs.Sessions != 3 || rs.Subscriptions != 3 || rs.Outbound != len(want) || rs.Retained != 1 || rs.Wills != 1 {
		t.Fatalf("restored %+v; want 3 sessions, 3 subscriptions, %d outbound, 1 retained, 1 will", rs, len(want))
	}

	// The will watcher resumes first (the will may be due any moment).
	ws2, ack := v5RawConnect(t, s2.Addr, "dur-willsub", durPersistent)
	if !ack.SessionPresent {
		t.Fatal("dur-willsub: Session Present 0 after the restart")
	}
	wills := make(chan *codec.Publish, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(wills)
		h, body, err := ws2.tryRead(3 * v5Timeout / 2)
		if err != nil || h.Type != codec.PUBLISH {
			return
		}
		p := new(codec.Publish)
		if p.Decode(h, body, codec.V5) == nil {
			wills <- p
			a := codec.Ack{Type: codec.PUBACK, PacketID: p.PacketID}
			_, _ = ws2.c.Write(a.Append(nil, codec.V5))
		}
	}()

	// The subscriber resumes without subscribing again and gets every
	// queued message, in order, at the delivered QoS, with its
	// subscription identifier and properties.
	sub2, ack := v5RawConnect(t, s2.Addr, "dur-sub", durPersistent)
	if !ack.SessionPresent {
		t.Fatal("dur-sub: Session Present 0 after the restart")
	}
	var got []*codec.Publish
	rels := 0
	for len(got) < len(want) || rels < 2 {
		switch p := sub2.next(v5Timeout).(type) {
		case *codec.Publish:
			got = append(got, p)
			if p.QoS == 2 {
				sub2.ack(codec.PUBREC, p.PacketID)
			} else if p.QoS == 1 {
				sub2.ack(codec.PUBACK, p.PacketID)
			}
		case *codec.Ack:
			if p.Type != codec.PUBREL {
				t.Fatalf("unexpected ack %+v", p)
			}
			rels++
			sub2.ack(codec.PUBCOMP, p.PacketID)
		default:
			t.Fatalf("unexpected %T %+v", p, p)
		}
	}
	for i, w := range want {
		p := got[i]
		if string(p.Topic) != w.topic || string(p.Payload) != w.payload || p.QoS != w.qos || !slices.Equal(p.Props.SubscriptionIDs, w.ids) {
			t.Errorf("message %d: got %s %q QoS %d ids %v; want %s %q QoS %d ids %v",
				i, p.Topic, p.Payload, p.QoS, p.Props.SubscriptionIDs, w.topic, w.payload, w.qos, w.ids)
		}
	}
	if ctype := string(got[1].Props.ContentType); ctype != "text/plain" {
		t.Errorf("d2 content type %q after the restart, want text/plain", ctype)
	}
	if extra := sub2.barrier(); len(extra) != 0 {
		t.Errorf("%d packets after the queued messages: %+v", len(extra), extra[0])
	}
	// The subscriptions were restored: a new message still arrives.
	pub2, _ := v5RawConnect(t, s2.Addr, "dur-pub", nil)
	pub2.publish(&codec.Publish{Topic: []byte("e/z"), Payload: []byte("new"), QoS: 1})
	if p := sub2.expectPublish(); string(p.Payload) != "new" || p.QoS != 1 {
		t.Errorf("after the restart: got %q QoS %d, want \"new\" QoS 1", p.Payload, p.QoS)
	} else {
		sub2.ack(codec.PUBACK, p.PacketID)
	}

	// The retained message survived.
	all, _ := v5RawConnect(t, s2.Addr, "dur-all", nil)
	all.subscribe(0, codec.Subscription{Filter: []byte("#"), QoS: 1})
	p := all.expectPublish()
	if string(p.Topic) == "will/x" { // the will may be due already
		p = all.expectPublish()
	}
	if string(p.Topic) != "r/x" || string(p.Payload) != "ret" || !p.Retain {
		t.Errorf("retained: got %s %q retain=%v, want r/x \"ret\" retain=true", p.Topic, p.Payload, p.Retain)
	}

	// The delayed will is published after the restart, not before its
	// delay ran out.
	wg.Wait()
	w, ok := <-wills
	if !ok {
		t.Fatalf("the delayed will was not published within %v of the restart", 3*v5Timeout/2)
	}
	if el := time.Since(killed); el < 1900*time.Millisecond {
		t.Errorf("will published %v after its client died, before its 2 s delay", el)
	}
	if string(w.Topic) != "will/x" || string(w.Payload) != "gone" {
		t.Errorf("will: got %s %q", w.Topic, w.Payload)
	}
}

func durRestartV3(t *testing.T, d store.Durability) {
	dir := t.TempDir()
	s1 := durStart(t, dir, d)

	c, present := v3Paho(t, s1.Addr, "dur3-sub", false, newV3Sink(), nil)
	if present {
		t.Fatal("new session: Session Present 1")
	}
	v3Sub(t, c, "d/#", 2)
	v3Sub(t, c, "e/+", 1)
	c.Disconnect(250)

	pub, _ := v3Paho(t, s1.Addr, "dur3-pub", true, nil, nil)
	v3Pub(t, pub, "d/x", 1, false, "d1")
	v3Pub(t, pub, "d/x", 2, false, "d2")
	v3Pub(t, pub, "e/y", 1, false, "e1")
	v3Pub(t, pub, "e/y", 2, false, "e2")
	v3Pub(t, pub, "d/x", 1, false, "d3")
	v3Pub(t, pub, "r/x", 1, true, "ret")
	pub.Disconnect(250)
	s1.waitIdle(t)

	s1.stop(t)
	s2 := durStart(t, dir, d)
	if rs := s2.RS; rs.Sessions != 1 || rs.Subscriptions != 2 || rs.Outbound != 5 || rs.Retained != 1 {
		t.Fatalf("restored %+v; want 1 session, 2 subscriptions, 5 outbound, 1 retained", rs)
	}

	// A fresh paho client (its in-memory store is empty) resumes the
	// session and gets the queued messages without subscribing again.
	sink := newV3Sink()
	c2, present := v3Paho(t, s2.Addr, "dur3-sub", false, sink, func(o *mqtt.ClientOptions) { o.SetOrderMatters(true) })
	if !present {
		t.Fatal("Session Present 0 after the restart")
	}
	got := sink.waitN(t, 5)
	want := []v3Msg{{"d/x", "d1", 1, false, false}, {"d/x", "d2", 2, false, false}, {"e/y", "e1", 1, false, false},
		{"e/y", "e2", 1, false, false}, {"d/x", "d3", 1, false, false}}
	for i, w := range want {
		g := got[i]
		if g.Topic != w.Topic || g.Payload != w.Payload || g.QoS != w.QoS || g.Retained {
			t.Errorf("message %d: got %+v, want %s %q QoS %d", i, g, w.Topic, w.Payload, w.QoS)
		}
	}
	// Nothing more: a sentinel published now is the next message.
	pub2, _ := v3Paho(t, s2.Addr, "dur3-pub", true, nil, nil)
	v3Pub(t, pub2, "d/x", 1, false, "end")
	if got := sink.waitPayload(t, "end"); len(got) != 6 {
		t.Errorf("got %v before the sentinel, want the 5 queued messages", v3Payloads(got))
	}
	_ = c2

	all := newV3Sink()
	ac, _ := v3Paho(t, s2.Addr, "dur3-all", true, all, nil)
	v3Sub(t, ac, "#", 1)
	if m := all.waitN(t, 1)[0]; m.Topic != "r/x" || m.Payload != "ret" || !m.Retained {
		t.Errorf("retained: got %+v", m)
	}
}

// ---- kill -9 under load ----

// durLedger records, across the crash cycles, every message number the
// publisher sent and had acknowledged and every delivery to the
// subscriber, and the rule violations found on the way.
type durLedger struct {
	mu        sync.Mutex
	next      int               // the next message number
	sent      map[int]byte      // number → QoS
	acked     map[int]bool      // PUBACK (QoS 1) / PUBREC (QoS 2) with a success code
	completed map[int]bool      // PUBCOMP
	delivered map[int]int       // deliveries to the subscriber's application
	subAcked  map[int]time.Time // QoS 1: when the subscriber sent its PUBACK
	resent    map[int]bool      // PUBLISH sent again by the publisher (DUP=1)
	refused   map[int]bool      // PUBACK / PUBREC with an error code
	lastKill  time.Time
	bad       []string

	// This cycle.
	cSent, cAcked, cCompleted, cDelivered, cDup1, cResent int
}

func newDurLedger() *durLedger {
	return &durLedger{sent: map[int]byte{}, acked: map[int]bool{}, completed: map[int]bool{}, delivered: map[int]int{}, subAcked: map[int]time.Time{}, resent: map[int]bool{}, refused: map[int]bool{}}
}

func (l *durLedger) violation(format string, args ...any) {
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf(format, args...))
	}
}

// nextPublish numbers the next message: odd numbers go to crash/1 at
// QoS 1, even ones to crash/2 at QoS 2.
func (l *durLedger) nextPublish() (codec.Publish, int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	l.next++
	qos := byte(2 - n%2)
	l.sent[n] = qos
	l.cSent++
	return codec.Publish{Topic: []byte("crash/" + strconv.Itoa(int(qos))), QoS: qos, Payload: []byte(strconv.Itoa(n))}, n, true
}

func (l *durLedger) resend(n int) {
	l.mu.Lock()
	l.resent[n] = true
	l.cResent++
	l.mu.Unlock()
}

func (l *durLedger) ack(n int, t codec.Type, code codec.ReasonCode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if code.IsError() {
		l.refused[n] = true
		return
	}
	switch t {
	case codec.PUBACK, codec.PUBREC:
		l.acked[n] = true
		l.cAcked++
	case codec.PUBCOMP:
		l.completed[n] = true
		l.cCompleted++
	}
}

// durSub is the subscriber's side of the crash test: a 3.1.1 client that
// acknowledges what it gets and keeps, across connections, the QoS 2
// packet ids it has answered with PUBREC and awaits PUBREL for: a
// PUBLISH with one of those ids is the same message again, not a new one
// (the receiver's half of exactly-once, [MQTT-4.3.3-9]).
type durSub struct {
	led      *durLedger
	awaitRel map[uint16]int // packet id → message number
}

// run reads from c, acknowledging every message, until nothing arrives
// for quiet, the connection ends, or until passes; it reports which.
func (s *durSub) run(c *durConn, quiet time.Duration, until time.Time) error {
	connected := time.Now()
	var out []byte
	var p codec.Publish
	var a codec.Ack
	for {
		if len(out) > 0 && !c.buffered() {
			if err := c.write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		if time.Now().After(until) {
			return errors.New("time bound reached while receiving")
		}
		h, body, err := c.read(quiet)
		if err != nil {
			if durTimeout(err) {
				return nil
			}
			return err
		}
		switch h.Type {
		case codec.PUBLISH:
			if err := p.Decode(h, body, codec.V311); err != nil {
				return err
			}
			out = s.publish(&p, out, connected)
		case codec.PUBREL:
			if err := a.Decode(h, body, codec.V311); err != nil {
				return err
			}
			delete(s.awaitRel, a.PacketID)
			out = (&codec.Ack{Type: codec.PUBCOMP, PacketID: a.PacketID}).Append(out, codec.V311)
		default:
			return fmt.Errorf("unexpected packet type %d", h.Type)
		}
	}
}

func (s *durSub) publish(p *codec.Publish, out []byte, connected time.Time) []byte {
	l := s.led
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := strconv.Atoi(string(p.Payload))
	qos, ok := l.sent[n]
	switch {
	case err != nil || !ok:
		l.violation("delivered %q on %s, never sent", p.Payload, p.Topic)
	case string(p.Topic) != "crash/"+strconv.Itoa(int(qos)) || p.QoS != qos:
		l.violation("message %d came on %s at QoS %d, sent on crash/%d at QoS %d", n, p.Topic, p.QoS, qos, qos)
	}
	switch p.QoS {
	case 1:
		l.delivered[n]++
		l.cDelivered++
		if l.delivered[n] > 1 {
			l.cDup1++
			// At least once allows a duplicate when the publisher sent
			// the message again, or when the subscriber's PUBACK may not
			// have been stored when the broker died: not within one
			// connection, and not for an ack written long before the kill.
			if at, ok := l.subAcked[n]; ok && !l.resent[n] && (at.After(connected) || l.lastKill.Sub(at) > time.Second) {
				l.violation("QoS 1 message %d came again although the subscriber acknowledged it %v before the last kill", n, l.lastKill.Sub(at))
			}
		}
		l.subAcked[n] = time.Now()
		return (&codec.Ack{Type: codec.PUBACK, PacketID: p.PacketID}).Append(out, codec.V311)
	case 2:
		if m, ok := s.awaitRel[p.PacketID]; ok {
			if m != n {
				l.violation("packet id %d reused for message %d while message %d awaits PUBREL", p.PacketID, n, m)
			}
		} else {
			s.awaitRel[p.PacketID] = n
			l.delivered[n]++
			l.cDelivered++
			if l.delivered[n] > 1 {
				l.violation("QoS 2 message %d delivered %d times (resent by the publisher: %v)", n, l.delivered[n], l.resent[n])
			}
		}
		return (&codec.Ack{Type: codec.PUBREC, PacketID: p.PacketID}).Append(out, codec.V311)
	}
	l.violation("message %d delivered at QoS 0", n)
	return out
}

// check verifies, after a full drain, that every acknowledged message
// (with all set: every message sent) arrived, QoS 2 exactly once; it logs
// the cycle and resets its counters.
func (l *durLedger) check(t *testing.T, cycle int, mode string, awaiting int, all bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost1, lost2 := 0, 0
	must := l.acked
	if all {
		must = map[int]bool{}
		for n := range l.sent {
			must[n] = !l.refused[n]
		}
	}
	for n, ok := range must {
		if !ok {
			continue
		}
		switch d := l.delivered[n]; {
		case l.sent[n] == 1 && d == 0:
			if lost1++; lost1 <= 5 {
				l.violation("QoS 1 message %d (acked %v) never delivered", n, l.acked[n])
			}
		case l.sent[n] == 2 && d != 1:
			if lost2++; lost2 <= 5 {
				l.violation("QoS 2 message %d (PUBREC %v, PUBCOMP %v) delivered %d times", n, l.acked[n], l.completed[n], d)
			}
		}
	}
	if awaiting != 0 {
		l.violation("%d QoS 2 flows still await PUBREL after the drain", awaiting)
	}
	t.Logf("cycle %d (subscriber %s): published %d (resent %d), acked %d (PUBCOMP %d), delivered %d, QoS 1 duplicates %d; total sent %d, refused %d",
		cycle, mode, l.cSent, l.cResent, l.cAcked, l.cCompleted, l.cDelivered, l.cDup1, len(l.sent), len(l.refused))
	l.cSent, l.cAcked, l.cCompleted, l.cDelivered, l.cDup1, l.cResent = 0, 0, 0, 0, 0, 0
	if len(l.bad) > 0 {
		t.Fatalf("cycle %d:\n%s", cycle, strings.Join(l.bad, "\n"))
	}
}

// durSubConnect connects crash-sub with clean session 0.
func durSubConnect(t *testing.T, addr string) (*durConn, bool) {
	t.Helper()
	c, ack, err := durDial(addr, codec.V311, &codec.Connect{ClientID: []byte("crash-sub"), KeepAlive: 60})
	if err != nil {
		t.Fatalf("connect crash-sub: %v", err)
	}
	return c, ack.SessionPresent
}

// TestDurable_CrashKill9: the real binary, default durability (commit),
// killed with SIGKILL under QoS 1 and QoS 2 load, restarted on the same
// data directory, several times in a row. Whatever a publisher had
// acknowledged must be delivered (QoS 2: exactly once over the whole run),
// nothing unsent may appear, and a subscriber's acknowledgement must hold.
//
// Two runs. With a clean publisher (a new session each cycle, so nothing
// is resent) and two loops, as the brief has it. With a publisher that
// keeps its session and resumes its flows after each crash, on one loop:
// then every message sent must arrive in the end, QoS 2 exactly once. And
// the resuming publisher on two loops: its QoS 2 messages reach a
// subscriber on the other loop, whose outbound record and the publisher's
// inbound record are written by different loops — the case the QoS 2
// marks exist for (broker Session.qos2Mark; TestDurable_UnconfirmedQoS2Dropped).
func TestDurable_CrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary")
	}
	t.Run("clean-publisher/2-loops", func(t *testing.T) { durCrash(t, 2, false, 4) })
	t.Run("resuming-publisher/1-loop", func(t *testing.T) { durCrash(t, 1, true, 4) })
	t.Run("resuming-publisher/2-loops", func(t *testing.T) { durCrash(t, 2, true, 4) })
}

// durCrash runs cycles of load and kill -9 against the binary with loops
// event loops; resume makes the publisher keep its session and resend its
// unfinished flows after each crash. extra flags go to the binary (the
// Redis store's, in redis_test.go).
func durCrash(t *testing.T, loops int, resume bool, cycles int, extra ...string) {
	began := time.Now()
	until := began.Add(time.Duration(cycles)*15*time.Second + 30*time.Second) // a bound, not a speed check: -race on a loaded machine is slow
	dir, port := t.TempDir(), freePort(t)
	// The queue bound would drop messages for the offline subscriber
	// (and the test would see them as lost): lift it.
	flags := append([]string{"--max-queued-messages", "10000000", "--loops", strconv.Itoa(loops)}, extra...)
	proc := durStartProc(t, dir, port, flags...)

	led := newDurLedger()
	sub := &durSub{led: led, awaitRel: map[uint16]int{}}
	pub := &durPublisher{cid: "crash-pub", persistent: resume, ack: led.ack, resent: led.resend}
	sc, present := durSubConnect(t, proc.Addr)
	if present {
		t.Fatal("crash-sub: Session Present 1 on an empty store")
	}
	subscribe := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("crash/1"), QoS: 1}, {Filter: []byte("crash/2"), QoS: 2}}}
	if err := sc.write(subscribe.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	if h, body, err := sc.read(v5Timeout); err != nil || h.Type != codec.SUBACK {
		t.Fatalf("want SUBACK, got type %d, err %v", h.Type, err)
	} else {
		var sa codec.Suback
		if err := sa.Decode(h, body, codec.V311); err != nil || !slices.Equal(sa.Codes, []codec.ReasonCode{1, 2}) {
			t.Fatalf("SUBACK %v (%v), want [1 2]", sa.Codes, err)
		}
	}

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	for cycle := 1; cycle <= cycles; cycle++ {
		mode := "offline"
		subDone := make(chan error, 1)
		if cycle%2 == 0 {
			mode = "online"
			go func(c *durConn) { subDone <- sub.run(c, time.Hour, until) }(sc)
		} else {
			_ = sc.write((&codec.Disconnect{}).Append(nil, codec.V311))
			sc.close()
			subDone <- nil
		}
		pubDone := make(chan error, 1)
		go func() { pubDone <- pub.run(proc.Addr, led.nextPublish) }()

		time.Sleep(300*time.Millisecond + time.Duration(rng.Int64N(int64(500*time.Millisecond))))
		led.mu.Lock()
		led.lastKill = time.Now()
		led.mu.Unlock()
		proc.kill(t)
		for _, ch := range []chan error{pubDone, subDone} {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("a client did not notice the broker's death within 10s")
			}
		}
		sc.close()

		proc = durStartProc(t, dir, port, flags...)
		var present bool
		sc, present = durSubConnect(t, proc.Addr)
		if !present {
			t.Fatalf("cycle %d: crash-sub resumed with Session Present 0", cycle)
		}
		if err := sub.run(sc, time.Second, until); err != nil {
			t.Fatalf("cycle %d: draining: %v", cycle, err)
		}
		led.check(t, cycle, mode, len(sub.awaitRel), false)
		if resume && cycle > 1 && !pub.present {
			t.Fatalf("cycle %d: crash-pub resumed with Session Present 0", cycle)
		}
	}
	if resume {
		// The publisher finishes its flows; then every message it sent
		// must have arrived, QoS 2 exactly once.
		none := func() (codec.Publish, int, bool) { return codec.Publish{}, 0, false }
		if err := pub.run(proc.Addr, none); err != nil {
			t.Fatalf("publisher finishing its flows: %v", err)
		}
		if err := sub.run(sc, time.Second, until); err != nil {
			t.Fatalf("final drain: %v", err)
		}
		led.check(t, cycles+1, "online, publisher resuming", len(sub.awaitRel), true)
	}
	sc.close()
	proc.term(t)
	t.Logf("%d cycles in %v", cycles, time.Since(began).Round(time.Millisecond))
}

// ---- kill -9 during recovery ----

// TestDurable_CrashDuringRecovery: a data directory holding a session with
// 2000 queued QoS 1 messages and 10,000 retained messages survives the
// broker being killed with SIGKILL again and again within 50 ms of its
// start, while it opens the store and loads the state.
func TestDurable_CrashDuringRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary")
	}
	const queued, retained = 2000, 10000
	dir, port := t.TempDir(), freePort(t)
	proc := durStartProc(t, dir, port)

	sc, _, err := durDial(proc.Addr, codec.V311, &codec.Connect{ClientID: []byte("rec-sub"), KeepAlive: 60})
	if err != nil {
		t.Fatal(err)
	}
	sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("q/#"), QoS: 1}}}
	if err := sc.write(sub.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	if h, _, err := sc.read(v5Timeout); err != nil || h.Type != codec.SUBACK {
		t.Fatalf("want SUBACK, got type %d, err %v", h.Type, err)
	}
	_ = sc.write((&codec.Disconnect{}).Append(nil, codec.V311))
	sc.close()

	// The state, through the binary: every message acknowledged (so
	// stored) before the kill.
	var mu sync.Mutex
	acked, refused := 0, 0
	i := 0
	next := func() (codec.Publish, int, bool) {
		n := i
		i++
		switch {
		case n < queued:
			return codec.Publish{Topic: []byte(fmt.Sprintf("q/%d", n%10)), QoS: 1, Payload: []byte(strconv.Itoa(n))}, n, true
		case n < queued+retained:
			r := n - queued
			return codec.Publish{Topic: []byte(fmt.Sprintf("ret/%d/%d", r/100, r%100)), QoS: 1, Retain: true, Payload: []byte(strconv.Itoa(r))}, n, true
		}
		return codec.Publish{}, 0, false
	}
	pub := &durPublisher{cid: "rec-pub", ack: func(_ int, _ codec.Type, code codec.ReasonCode) {
		mu.Lock()
		defer mu.Unlock()
		if code.IsError() {
			refused++
		} else {
			acked++
		}
	}}
	if err := pub.run(proc.Addr, next); err != nil {
		t.Fatalf("creating the state: %v", err)
	}
	if acked != queued+retained || refused != 0 {
		t.Fatalf("%d acknowledged, %d refused; want %d acknowledged", acked, refused, queued+retained)
	}
	proc.kill(t)

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	for k := 1; k <= 6; k++ {
		p := durRun(t, dir, port)
		d := time.Duration(rng.Int64N(int64(50*time.Millisecond) + 1))
		time.Sleep(d)
		p.kill(t)
		phase := "opening the store"
		select {
		case <-p.started:
			phase = "serving"
		default:
			select {
			case line := <-p.loaded:
				phase = "state loaded: " + line
			default:
			}
		}
		t.Logf("kill %d after %v: %s", k, d.Round(time.Millisecond), phase)
	}

	// Two more kills the moment the state is loaded, as the listeners
	// start.
	for k := 7; k <= 8; k++ {
		p := durRun(t, dir, port)
		select {
		case line := <-p.loaded:
			p.kill(t)
			t.Logf("kill %d at the state loaded line: %s", k, line)
		case <-time.After(20 * time.Second):
			t.Fatalf("no state loaded line within 20s:\n%s", p.log())
		}
	}

	// The subscriber's drain, over every connection: first deliveries
	// must come in order and cover every queued message.
	got := make([]int, queued)
	var order []int
	drain := func(c *durConn, limit int) {
		t.Helper()
		var p codec.Publish
		var out []byte
		for k := 0; k < limit; k++ {
			if len(out) > 0 && !c.buffered() {
				if err := c.write(out); err != nil {
					t.Fatal(err)
				}
				out = out[:0]
			}
			h, body, err := c.read(time.Second)
			if durTimeout(err) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Type != codec.PUBLISH || p.Decode(h, body, codec.V311) != nil {
				t.Fatalf("unexpected packet type %d", h.Type)
			}
			n, err := strconv.Atoi(string(p.Payload))
			if err != nil || n < 0 || n >= queued || p.QoS != 1 {
				t.Fatalf("unexpected message %q QoS %d on %s", p.Payload, p.QoS, p.Topic)
			}
			if got[n]++; got[n] == 1 {
				order = append(order, n)
			}
			out = (&codec.Ack{Type: codec.PUBACK, PacketID: p.PacketID}).Append(out, codec.V311)
		}
		if len(out) > 0 {
			if err := c.write(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	resume := func(p *durProc) *durConn {
		t.Helper()
		c, ack, err := durDial(p.Addr, codec.V311, &codec.Connect{ClientID: []byte("rec-sub"), KeepAlive: 60})
		if err != nil {
			t.Fatal(err)
		}
		if !ack.SessionPresent {
			t.Fatal("rec-sub: Session Present 0 after the crashes")
		}
		return c
	}

	// One more kill while the session is being resent.
	proc = durStartProc(t, dir, port)
	line := <-proc.loaded
	t.Logf("restart: %s", line)
	for _, want := range []string{"sessions=1 ", fmt.Sprintf("outbound=%d ", queued), fmt.Sprintf("retained=%d ", retained)} {
		if !strings.Contains(line, want) {
			t.Errorf("state loaded without %q: %s", want, line)
		}
	}
	sc = resume(proc)
	drain(sc, queued/4)
	proc.kill(t)
	sc.close()
	t.Logf("kill 9 after %d of the queued messages were received", len(order))

	proc = durStartProc(t, dir, port)
	t.Logf("restart: %s", <-proc.loaded)
	sc = resume(proc)
	defer sc.close()
	drain(sc, 1<<30)
	missing := 0
	for _, c := range got {
		if c == 0 {
			missing++
		}
	}
	if missing > 0 || !slices.IsSorted(order) {
		t.Errorf("queued messages: %d of %d missing, in order %v", missing, queued, slices.IsSorted(order))
	}

	// Every retained message is there.
	rc, _, err := durDial(proc.Addr, codec.V311, &codec.Connect{ClientID: []byte("rec-all"), CleanStart: true, KeepAlive: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	rsub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("ret/#"), QoS: 0}}}
	if err := rc.write(rsub.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	topics := map[string]bool{}
	var p codec.Publish
	for {
		h, body, err := rc.read(time.Second)
		if durTimeout(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Type == codec.SUBACK {
			continue
		}
		if h.Type != codec.PUBLISH || p.Decode(h, body, codec.V311) != nil || !p.Retain {
			t.Fatalf("unexpected packet type %d", h.Type)
		}
		topics[string(p.Topic)] = true
	}
	if len(topics) != retained {
		t.Errorf("%d retained messages after the crashes, want %d", len(topics), retained)
	}
	proc.term(t)
}

// TestDurable_UnconfirmedQoS2Dropped checks Restore's rule for QoS 2
// messages from persistent publishers (broker Session.qos2Mark): a
// subscriber's stored copy whose mark is above its publisher's durable
// mark — the publisher never got PUBREC and will resend — is dropped, so
// the resent PUBLISH does not reach the subscriber twice; a copy at or
// below the mark, or whose publisher's session is gone, is delivered.
func TestDurable_UnconfirmedQoS2Dropped(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(payload string) store.Message {
		return store.Message{Topic: []byte("q2/t"), Payload: []byte(payload), QoS: 2}
	}
	ops := []store.Op{
		{Session: &store.Session{ClientID: "q2-pub", Version: 5, ExpiryInterval: store.ExpiryNever, DisconnectedAt: 1, QoS2Mark: 100}},
		{Session: &store.Session{ClientID: "q2-sub", Version: 5, ExpiryInterval: store.ExpiryNever, DisconnectedAt: 1}},
		{Sub: &store.Subscription{ClientID: "q2-sub", Filter: "q2/t", QoS: 2}},
		{Outbound: &store.Outbound{ClientID: "q2-sub", Seq: 1, Msg: msg("confirmed"), Origin: "q2-pub", OriginMark: 100}},
		{Outbound: &store.Outbound{ClientID: "q2-sub", Seq: 2, Msg: msg("unconfirmed"), Origin: "q2-pub", OriginMark: 101}},
		{Outbound: &store.Outbound{ClientID: "q2-sub", Seq: 3, Msg: msg("orphan"), Origin: "q2-gone", OriginMark: 5000}},
		{Outbound: &store.Outbound{ClientID: "q2-sub", Seq: 4, Msg: msg("plain")}},
	}
	done := make(chan error, 1)
	if err := st.Apply(ops, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ds := durStart(t, dir, store.DurabilityCommit)
	if ds.RS.Unconfirmed != 1 || ds.RS.Outbound != 3 {
		t.Fatalf("restore: %d unconfirmed dropped, %d outbound kept; want 1 and 3", ds.RS.Unconfirmed, ds.RS.Outbound)
	}
	sub, ca := v5Connect(t, ds.Addr, &paho.Connect{ClientID: "q2-sub", CleanStart: false, KeepAlive: 30})
	if !ca.SessionPresent {
		t.Fatal("Session Present = 0 for a restored session")
	}
	var got []string
	for range 3 {
		got = append(got, string(sub.recv(t).Payload))
	}
	if want := []string{"confirmed", "orphan", "plain"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	sub.quiet(t)
	// The dropped record is gone from the store, not only skipped.
	sub.Disconnect(&paho.Disconnect{})
	ds.waitIdle(t)
	ds.stop(t)
	ds = durStart(t, dir, store.DurabilityCommit)
	if ds.RS.Unconfirmed != 0 {
		t.Fatalf("after a second restart %d unconfirmed records were dropped again", ds.RS.Unconfirmed)
	}
}

// Session expiry and message expiry keep counting while the broker is down
// [MQTT-3.1.2-23, MQTT-3.3.2-5]: after a restart an expired session is
// gone (Session Present 0), an expired queued message is not delivered,
// and a live one carries its remaining Message Expiry Interval
// [MQTT-3.3.2-6].
func TestDurable_ExpiryCountsDowntime(t *testing.T) {
	dir := t.TempDir()
	s1 := durStart(t, dir, store.DurabilityCommit)
	short, long := uint32(1), uint32(3600)
	c, _ := v5Connect(t, s1.Addr, &paho.Connect{ClientID: "exp-short", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &short}})
	c.Disconnect(&paho.Disconnect{})
	sub, _ := v5Connect(t, s1.Addr, &paho.Connect{ClientID: "exp-sub", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &long}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "exp/#", QoS: 1}}})
	sub.Disconnect(&paho.Disconnect{})
	s1.waitIdle(t)
	pub, _ := v5Connect(t, s1.Addr, &paho.Connect{ClientID: "exp-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "exp/short", QoS: 1, Payload: []byte("short"), Properties: &paho.PublishProperties{MessageExpiry: &short}})
	pub.publish(t, &paho.Publish{Topic: "exp/long", QoS: 1, Payload: []byte("long"), Properties: &paho.PublishProperties{MessageExpiry: &long}})
	pub.Disconnect(&paho.Disconnect{})
	s1.waitIdle(t)
	s1.stop(t)
	time.Sleep(2 * time.Second) // the broker is down: both 1 s intervals pass

	s2 := durStart(t, dir, store.DurabilityCommit)
	_, ca := v5Connect(t, s2.Addr, &paho.Connect{ClientID: "exp-short", CleanStart: false, KeepAlive: 30})
	if ca.SessionPresent {
		t.Error("a session whose 1 s expiry passed while the broker was down is still present [MQTT-3.1.2-23]")
	}
	sub, ca = v5Connect(t, s2.Addr, &paho.Connect{ClientID: "exp-sub", CleanStart: false, KeepAlive: 30})
	if !ca.SessionPresent {
		t.Fatal("the subscriber's session (1 h expiry) is gone")
	}
	p := sub.recv(t)
	if string(p.Payload) != "long" {
		t.Fatalf("got %q first; the message whose expiry passed while the broker was down must not be delivered [MQTT-3.3.2-5]", p.Payload)
	}
	if p.Properties == nil || p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry >= long || *p.Properties.MessageExpiry < long-60 {
		t.Fatalf("Message Expiry Interval %v, want the remaining time below %d [MQTT-3.3.2-6]", p.Properties, long)
	}
	sub.quiet(t)
}
