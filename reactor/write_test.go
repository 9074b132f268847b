package reactor_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
)

// TestManyVectorFlushesDoNotAllocate runs a real broker on loopback with
// raw TCP clients: each round the publisher sends a group of PUBLISHes in
// one write, which the broker flushes to the subscriber as one write of
// two vectors per message (more than x/sys/unix.Writev keeps on the
// stack), and the subscriber reads them all before the next round. The
// bytes must arrive intact and in order, and the rounds must not cost an
// allocation each (they did before writes were coalesced: one iovec
// array per flush).
func TestManyVectorFlushesDoNotAllocate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	b := broker.New(broker.Options{Loops: 1})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://" + addr}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()

	dial := func(id string) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
		if _, err := c.Write(p.Append(nil)); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("%s: CONNACK %x, %v", id, ack, err)
		}
		return c
	}
	sub := dial("sub")
	defer sub.Close()
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("w/t"), QoS: 0}}}
	if _, err := sub.Write(s.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	suback := make([]byte, 5)
	if _, err := io.ReadFull(sub, suback); err != nil || suback[0] != 0x90 {
		t.Fatalf("SUBACK %x, %v", suback, err)
	}
	pub := dial("pub")
	defer pub.Close()

	const group = 20 // 40 vectors per flush
	var batch, want []byte
	for i := range group {
		p := codec.Publish{Topic: []byte("w/t"), Payload: []byte(fmt.Sprintf("message %02d of the group", i))}
		batch = p.Append(batch, codec.V311)
	}
	want = batch // QoS 0 to a QoS 0 subscriber: forwarded byte for byte
	got := make([]byte, len(want))
	round := func() {
		if _, err := pub.Write(batch); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sub, got); err != nil {
			t.Fatal(err)
		}
	}
	// The broker may deliver a group in more than one flush when the
	// publisher's bytes arrive in pieces; every round must still bring
	// exactly the group, in order.
	for range 50 { // warm up pools and buffers
		round()
		if !bytes.Equal(got, want) {
			t.Fatalf("subscriber got\n%q\nwant\n%q", got, want)
		}
	}
	const rounds = 500
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&m1)
	if !bytes.Equal(got, want) {
		t.Fatalf("subscriber got\n%q\nwant\n%q", got, want)
	}
	// The count covers the whole process (this test's clients, the
	// runtime's own work); a per-flush allocation would add ≥ 1 per round.
	per := float64(m1.Mallocs-m0.Mallocs) / rounds
	if raceEnabled {
		t.Logf("race detector: %.2f allocations per round not checked", per)
		return
	}
	if per > 0.5 {
		t.Fatalf("%.2f allocations per round of %d messages, want well under 1", per, group)
	}
	t.Logf("%.3f allocations per round of %d messages", per, group)

	// Writes larger than the coalescing buffer: many small messages
	// around a payload bigger than it, and more than 64 KiB in all; the
	// subscriber must get them byte for byte and in order.
	var big []byte
	for i := range 3000 {
		payload := []byte(fmt.Sprintf("small %04d", i))
		if i == 1500 {
			payload = bytes.Repeat([]byte{'B'}, 100<<10)
		}
		p := codec.Publish{Topic: []byte("w/t"), Payload: payload}
		big = p.Append(big, codec.V311)
	}
	if _, err := pub.Write(big); err != nil {
		t.Fatal(err)
	}
	gotBig := make([]byte, len(big))
	if _, err := io.ReadFull(sub, gotBig); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotBig, big) {
		t.Fatalf("a %d-byte burst with a 100 KiB payload arrived changed or out of order", len(big))
	}
}
