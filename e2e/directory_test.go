package e2e

import (
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

func migrated(b *broker.Broker) (n uint64) {
	for _, ls := range b.Stats().Loops {
		n += ls.Migrated
	}
	return n
}

// A new client id is owned by the loop its connection landed on: no
// connection of a fresh client is moved, and both loops get clients.
func TestClientDirectory_NewClientsStay(t *testing.T) {
	tb := start(t, broker.Options{})
	const n = 20
	for i := range n {
		v5RawConnect(t, tb.Addr, fmt.Sprintf("stay-%d", i), nil)
	}
	v5Wait(t, "every client connected", func() bool { return tb.B.Stats().Sessions == n })
	if m := migrated(tb.B); m != 0 {
		t.Fatalf("%d connections of new clients were moved to another loop; want 0", m)
	}
	for _, ls := range tb.B.Stats().Loops {
		if ls.Sessions == 0 {
			t.Fatalf("loop %d holds no session: %+v", ls.Index, tb.B.Stats().Loops)
		}
	}
}

// [MQTT-3.1.4-3] Takeover and resume still happen on the loop that owns the
// id when the new connection lands on the other one: it is moved there, the
// old connection gets 0x8E, and the session (subscription and a message
// queued while offline) carries over.
func TestClientDirectory_TakeoverAcrossLoops(t *testing.T) {
	tb := start(t, broker.Options{})
	sessionExpiry := func(p *codec.Connect) {
		p.CleanStart = false
		p.Props.Set(codec.PropSessionExpiry)
		p.Props.SessionExpiry = 300
	}
	old, _ := v5RawConnect(t, tb.Addr, "roamer", sessionExpiry)
	if codes := old.subscribe(0, codec.Subscription{Filter: []byte("roam/t"), QoS: 1}); codes[0] != 1 {
		t.Fatalf("SUBACK %v", codes)
	}
	// The kernel spreads connections over the loops' listeners (by a
	// hash of the addresses): take over until one has landed on the loop
	// that does not own "roamer".
	for i := 0; migrated(tb.B) == 0; i++ {
		if i == 40 {
			t.Fatal("40 connections landed on one loop: the test did not cross loops")
		}
		cur, ack := v5RawConnect(t, tb.Addr, "roamer", sessionExpiry)
		if !ack.SessionPresent {
			t.Fatalf("takeover %d: Session Present 0", i)
		}
		old.expectDisconnect(codec.SessionTakenOver)
		old = cur
		// Stats are per-loop snapshots: wait for the one with this takeover.
		v5Wait(t, "takeover counted", func() bool { return tb.B.Stats().Takeovers == uint64(i+1) })
	}
	// Offline, then a message, then resume from whichever loop.
	old.disconnect(codec.NormalDisconnection)
	v5Wait(t, "roamer offline", func() bool { return tb.B.Stats().Clients == 0 })
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "roam-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "roam/t", QoS: 1, Payload: []byte("while away")})
	// Resumed twice: the message comes again (DUP) until acknowledged.
	for i := range 2 {
		cur, ack := v5RawConnect(t, tb.Addr, "roamer", sessionExpiry)
		if !ack.SessionPresent {
			t.Fatalf("resume %d: Session Present 0", i)
		}
		p := cur.expectPublish()
		if string(p.Payload) != "while away" || (i == 1) != p.Dup {
			t.Fatalf("resume %d: got %q dup=%v", i, p.Payload, p.Dup)
		}
		if i == 1 {
			cur.ack(codec.PUBACK, p.PacketID)
		}
		cur.disconnect(codec.NormalDisconnection)
		v5Wait(t, "roamer offline", func() bool { return tb.B.Stats().Clients == 1 })
	}
	if s := tb.B.Stats().Sessions; s != 2 {
		t.Fatalf("%d sessions; want 2 (roamer, roam-pub): a second session for one id", s)
	}
}

// A clean session's id is free again once it ends: a later client with it
// is owned by the loop it lands on, not moved to the first owner.
func TestClientDirectory_ReleasedOnEnd(t *testing.T) {
	tb := start(t, broker.Options{})
	for i := range 6 {
		c, _ := v5RawConnect(t, tb.Addr, "again", nil)
		c.disconnect(codec.NormalDisconnection)
		v5Wait(t, fmt.Sprintf("round %d: session ended", i), func() bool { return tb.B.Stats().Sessions == 0 })
		v5Wait(t, fmt.Sprintf("round %d: id released", i), func() bool { return tb.B.Stats().ClientIDsOwned == 0 })
	}
	if m := migrated(tb.B); m != 0 {
		t.Fatalf("%d connections moved; want 0 once the id was released", m)
	}
}
