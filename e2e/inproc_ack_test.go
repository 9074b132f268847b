package e2e

import (
	"fmt"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
)

// SubscribeAck (broker/inproc_ack.go): messages acknowledged later, from
// another goroutine, hold the ReceiveMaximum window; the rest wait in
// the session queue (SessionInfo shows both); what is not acked at
// Disconnect comes again, first and in order, with Dup. ConnectBridge's
// reserved id cannot be taken by a network client.
func TestInProc_SubscribeAckLater(t *testing.T) {
	tb := start(t, broker.Options{})
	opts := broker.ConnectOptions{CleanStart: true, SessionExpiry: -1, ReceiveMaximum: 2}
	ic, err := tb.B.ConnectBridge(embedCtx(t), "acks", opts)
	if err != nil {
		t.Fatal(err)
	}
	if ic.ClientID() != broker.BridgeClientIDPrefix+"acks" {
		t.Fatalf("client id %q", ic.ClientID())
	}
	var mu sync.Mutex
	var acks []func()
	sink := newEmbedSink()
	sub := broker.ClientSubscription{Filter: "later/#", QoS: 1}
	handler := func(m *broker.Delivered, ack func()) {
		mu.Lock()
		acks = append(acks, ack)
		mu.Unlock()
		sink.add(m)
	}
	if err := ic.SubscribeAck(embedCtx(t), sub, handler); err != nil {
		t.Fatal(err)
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "later-pub", CleanStart: true, KeepAlive: 30})
	for i := 1; i <= 5; i++ {
		pub.publish(t, &paho.Publish{Topic: "later/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	sink.waitN(t, 2)
	si, err := ic.SessionInfo(embedCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if si.Inflight != 2 || si.Queued != 3 || len(si.Filters) != 1 || si.Filters[0] != "later/#" {
		t.Fatalf("SessionInfo %+v, want 2 inflight (the window), 3 queued, filter later/#", si)
	}
	// Acked from another goroutine, twice (the second does nothing): the
	// window moves on by one.
	mu.Lock()
	first := acks[0]
	mu.Unlock()
	done := make(chan struct{})
	go func() { first(); first(); close(done) }()
	<-done
	sink.waitN(t, 3)
	ic.Disconnect() // 2 handed out and not acked, 2 queued
	si, found, err := tb.B.SessionInfo(embedCtx(t), ic.ClientID())
	if err != nil || !found || si.Inflight+si.Queued != 4 {
		t.Fatalf("offline SessionInfo %+v found %v err %v, want 4 held", si, found, err)
	}

	opts.CleanStart = false
	ic2, err := tb.B.ConnectBridge(embedCtx(t), "acks", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ic2.Disconnect()
	sink2 := newEmbedSink()
	if err := ic2.SubscribeAck(embedCtx(t), sub, func(m *broker.Delivered, ack func()) { sink2.add(m); ack() }); err != nil {
		t.Fatal(err)
	}
	got := sink2.waitN(t, 4)
	if s := fmt.Sprint(payloads(got)); s != "[later/x=2 later/x=3 later/x=4 later/x=5]" {
		t.Fatalf("resumed: %s, want 2..5 in order", s)
	}
	if !got[0].Dup || !got[1].Dup || got[2].Dup {
		t.Fatalf("Dup flags %v %v %v: want the two handed out before set, the queued one not", got[0].Dup, got[1].Dup, got[2].Dup)
	}

	// The reserved id is not for network clients (0x85 Client Identifier
	// not valid).
	c := &paho.Connect{ClientID: broker.BridgeClientIDPrefix + "acks", CleanStart: true, KeepAlive: 30}
	if _, ca, err := v5TryConnect(t, tb.Addr, c); err == nil || ca == nil || ca.ReasonCode != 0x85 {
		t.Fatalf("network CONNECT as the bridge: %v %+v, want refused 0x85", err, ca)
	}
}

// DropUnmatched: what a resumed session had queued for a filter it no
// longer has is acknowledged and dropped (counted), not held for ever;
// the other messages flow.
func TestInProc_DropUnmatched(t *testing.T) {
	tb := start(t, broker.Options{})
	opts := broker.ConnectOptions{CleanStart: true, SessionExpiry: -1, ReceiveMaximum: 4}
	ic, err := tb.B.ConnectBridge(embedCtx(t), "unmatched", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"keep/#", "gone/#"} {
		if err := ic.SubscribeAck(embedCtx(t), broker.ClientSubscription{Filter: f, QoS: 1}, func(_ *broker.Delivered, ack func()) { ack() }); err != nil {
			t.Fatal(err)
		}
	}
	ic.Disconnect()
	for i := 0; i < 3; i++ {
		if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "gone/x", Payload: []byte("old"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	opts.CleanStart = false
	ic2, err := tb.B.ConnectBridge(embedCtx(t), "unmatched", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ic2.Disconnect()
	if err := ic2.Unsubscribe(embedCtx(t), "gone/#"); err != nil {
		t.Fatal(err)
	}
	sink := newEmbedSink()
	if err := ic2.SubscribeAck(embedCtx(t), broker.ClientSubscription{Filter: "keep/#", QoS: 1}, func(m *broker.Delivered, ack func()) { sink.add(m); ack() }); err != nil {
		t.Fatal(err)
	}
	ic2.DropUnmatched()
	v5Wait(t, "the 3 old messages dropped and the session empty", func() bool {
		si, err := ic2.SessionInfo(embedCtx(t))
		return err == nil && ic2.Dropped() == 3 && si.Inflight+si.Queued == 0
	})
	for i := 0; i < 6; i++ { // more than ReceiveMaximum: the window is free
		if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "keep/x", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	sink.waitN(t, 6)
}
