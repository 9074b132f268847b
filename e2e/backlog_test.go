package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/store"
)

// fullStore is a store whose commit queue can be made to look full.
type fullStore struct {
	store.Store
	full atomic.Bool
}

func (s *fullStore) Apply(ops []store.Op, done func(error)) error {
	if s.full.Load() {
		return store.ErrQueueFull
	}
	return s.Store.Apply(ops, done)
}

// A full commit queue delays acknowledgements, it does not fail them: the
// loop keeps its operations, in order, and submits them again; the PUBACK
// comes, with success, once the store takes them.
func TestStoreBacklog_FullQueueDelaysAck(t *testing.T) {
	st := &fullStore{Store: store.NewMemory()}
	tb := start(t, broker.Options{Store: st})
	expiry := uint32(3600)
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bl-sub", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bl/t", QoS: 1}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bl-pub", CleanStart: true, KeepAlive: 30})

	st.full.Store(true)
	acked := make(chan *paho.PublishResponse, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := pub.Publish(ctx, &paho.Publish{Topic: "bl/t", QoS: 1, Payload: []byte("held")})
		if err != nil {
			t.Errorf("publish: %v", err)
		}
		acked <- r
	}()
	v5Wait(t, "operations in the backlog", func() bool {
		s := tb.B.Stats()
		return s.StoreBacklogged > 0 && s.StoreBacklogOps > 0
	})
	select {
	case <-acked:
		t.Fatal("PUBACK sent before the message was stored")
	case <-time.After(300 * time.Millisecond):
	}
	st.full.Store(false)
	select {
	case r := <-acked:
		if r == nil || r.ReasonCode != 0 {
			t.Fatalf("PUBACK %+v, want success once the store took the backlog", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no PUBACK after the commit queue drained")
	}
	if p := sub.recv(t); string(p.Payload) != "held" {
		t.Fatalf("subscriber got %q", p.Payload)
	}
	v5Wait(t, "backlog empty", func() bool { return tb.B.Stats().StoreBacklogOps == 0 })
}

// Past --commit-backlog the loop refuses new durable operations: a QoS 1
// PUBLISH is answered 0x80 (v5) instead of being acknowledged unstored,
// and QoS 0 retained updates are shed and counted; the broker keeps
// serving and the backlog drains once the store takes operations again.
func TestStoreBacklog_BoundRefuses(t *testing.T) {
	st := &fullStore{Store: store.NewMemory()}
	tb := start(t, broker.Options{Store: st, CommitBacklog: 4, Loops: 1})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bl2-pub", CleanStart: true, KeepAlive: 30})
	st.full.Store(true)
	// One retained update per pass (a pause between them) until the
	// backlog is past its bound and they are shed.
	for i := 0; tb.B.Stats().StoreShed == 0; i++ {
		if i == 500 {
			t.Fatal("no QoS 0 retained update shed past the backlog bound")
		}
		pub.publish(t, &paho.Publish{Topic: fmt.Sprintf("bl2/r%d", i), QoS: 0, Retain: true, Payload: []byte("r")})
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	r, err := pub.Publish(ctx, &paho.Publish{Topic: "bl2/q1", QoS: 1, Retain: true, Payload: []byte("x")})
	if r == nil || r.ReasonCode != 0x80 {
		t.Fatalf("PUBACK %+v (%v) past the backlog bound, want reason 0x80", r, err)
	}
	st.full.Store(false)
	r = pub.publish(t, &paho.Publish{Topic: "bl2/q1", QoS: 1, Retain: true, Payload: []byte("y")})
	if r.ReasonCode != 0 && r.ReasonCode != 0x10 {
		t.Fatalf("PUBACK reason 0x%02x after the store recovered", r.ReasonCode)
	}
	v5Wait(t, "backlog empty", func() bool { return tb.B.Stats().StoreBacklogOps == 0 })
}
