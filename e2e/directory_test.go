package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

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

// Many connections race for one client id from both loops: every CONNECT
// is answered (takeovers, moves and claims in flight; 3.1.1 ones asking
// for more keep-alive than --max-keepalive are refused after their claim), and when they
// are gone the directory holds exactly what is left — one persistent
// session's id, nothing for the clean ones (no reference leaked by a
// claim, a refusal, a move or a takeover).
func TestClientDirectory_ConcurrentSameID(t *testing.T) {
	tb := start(t, broker.Options{MaxKeepAlive: 60})
	const workers, rounds = 8, 25
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				id, persistent := "contended-clean", false
				if (w+i)%3 == 0 {
					id, persistent = "contended-kept", true
				}
				err := connectOnce(tb.Addr, id, persistent)
				if i%4 == 1 {
					err = connectRefused(tb.Addr, id)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d (%s): %w", w, i, id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v5Wait(t, "every connection closed and only the kept session left", func() bool {
		st := tb.B.Stats()
		return st.Clients == 0 && st.Sessions == 1 && st.ClientIDsOwned == 1
	})
}

// connectOnce connects as id (v5), expects a successful CONNACK and closes
// the socket without DISCONNECT half the time.
func connectOnce(addr, id string, persistent bool) error {
	p := codec.Connect{Version: codec.V5, ProtocolName: []byte("MQTT"), ClientID: []byte(id), CleanStart: !persistent, KeepAlive: 30}
	if persistent {
		p.Props.Set(codec.PropSessionExpiry)
		p.Props.SessionExpiry = 300
	}
	return sendConnect(addr, &p, func(nc net.Conn, ack []byte) error {
		if len(ack) < 4 || ack[3] != 0 {
			return fmt.Errorf("want a successful CONNACK, got % x", ack)
		}
		if rand.IntN(2) == 0 {
			d := codec.Disconnect{Code: codec.NormalDisconnection}
			_, _ = nc.Write(d.Append(nil, codec.V5))
		}
		return nil
	})
}

// connectRefused sends a 3.1.1 CONNECT asking for more keep-alive than
// --max-keepalive, which the broker refuses with 0x02 after claiming the id.
func connectRefused(addr, id string) error {
	p := codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte(id), CleanStart: true, KeepAlive: 61}
	return sendConnect(addr, &p, func(_ net.Conn, ack []byte) error {
		if len(ack) != 4 || ack[3] != 0x02 {
			return fmt.Errorf("want CONNACK 0x02 (keep-alive refused), got % x", ack)
		}
		return nil
	})
}

// sendConnect dials addr, sends p and hands the CONNACK (the whole packet)
// to check; the socket is closed when check returns. Safe from any
// goroutine (it reports errors instead of failing the test).
func sendConnect(addr string, p *codec.Connect, check func(net.Conn, []byte) error) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Write(p.Append(nil)); err != nil {
		return err
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head [2]byte
	if _, err := io.ReadFull(nc, head[:]); err != nil {
		return fmt.Errorf("no CONNACK: %w", err)
	}
	if codec.Type(head[0]>>4) != codec.CONNACK || head[1] < 2 || head[1] > 127 {
		return fmt.Errorf("want CONNACK, got % x", head)
	}
	ack := append(head[:], make([]byte, head[1])...)
	if _, err := io.ReadFull(nc, ack[2:]); err != nil {
		return err
	}
	return check(nc, ack)
}
