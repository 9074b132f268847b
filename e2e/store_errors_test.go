package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// The binary refuses to start, with a message that says why and exit
// status 1, when its data directory cannot be used.
func TestStoreStartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker binary")
	}
	t.Run("directory locked by another broker", func(t *testing.T) {
		dir := t.TempDir()
		durStartProc(t, dir, freePort(t))
		code, log := procExit(t, durRun(t, dir, freePort(t)))
		if code != 1 || !strings.Contains(log, "store") || !strings.Contains(strings.ToLower(log), "lock") {
			t.Fatalf("exit %d, log:\n%s\nwant exit 1 and a message about the lock", code, log)
		}
	})
	t.Run("corrupt directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("this is not a badger manifest"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, log := procExit(t, durRun(t, dir, freePort(t)))
		if code != 1 || !strings.Contains(log, "store") {
			t.Fatalf("exit %d, log:\n%s\nwant exit 1 and a store error", code, log)
		}
	})
	t.Run("data dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		code, log := procExit(t, durRun(t, f, freePort(t)))
		if code != 1 || !strings.Contains(log, "store") {
			t.Fatalf("exit %d, log:\n%s\nwant exit 1 and a store error", code, log)
		}
	})
}

// failingStore fails every Apply once broken (as a full disk would).
type failingStore struct {
	store.Store
	broken atomic.Bool
}

var errDiskFull = errors.New("no space left on device")

func (s *failingStore) Apply(ops []store.Op, done func(error)) error {
	if s.broken.Load() {
		done(errDiskFull) // inline, as the Memory store it wraps (DoneInline)
		return nil
	}
	return s.Store.Apply(ops, done)
}

// A store failure at run time refuses what it could not store: v5 PUBACK
// 0x80, a 3.x publisher's connection closed; counted; the broker serves on.
func TestStoreRuntimeFailureRefusesAcks(t *testing.T) {
	st := &failingStore{Store: store.NewMemory()}
	tb := start(t, broker.Options{Store: st})
	expiry := uint32(3600)
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sf-sub", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sf/t", QoS: 1}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sf-pub", CleanStart: true, KeepAlive: 30})
	st.broken.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	r, err := pub.Publish(ctx, &paho.Publish{Topic: "sf/t", QoS: 1, Payload: []byte("x")})
	if r == nil || r.ReasonCode != 0x80 {
		t.Fatalf("v5 PUBACK %+v (%v) for a message the store failed to keep, want 0x80", r, err)
	}

	lost := make(chan error, 1)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("sf-v3").SetCleanSession(true).
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	c3 := mqtt.NewClient(o)
	if tok := c3.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 connect: %v", tok.Error())
	}
	tok := c3.Publish("sf/t", 1, false, "y")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatalf("3.1.1 publisher not disconnected after a store failure (ack: %v)", tok.Error())
	}
	v5Wait(t, "store errors counted", func() bool {
		s := tb.B.Stats()
		return s.StoreErrors > 0 && s.StoreRefused >= 2
	})

	// Repaired: the broker works on.
	st.broken.Store(false)
	if r := pub.publish(t, &paho.Publish{Topic: "sf/t", QoS: 1, Payload: []byte("z")}); r.ReasonCode != 0 {
		t.Fatalf("PUBACK 0x%02x after the store recovered", r.ReasonCode)
	}
	for {
		if p := sub.recv(t); string(p.Payload) == "z" {
			break
		}
	}
}

// A subscriber's PUBREC whose "released" state the store fails to keep
// must not be answered with PUBREL as if it were stored: after a restart
// the broker would resend the message and the subscriber, its exchange
// completed, would take it for a new one (a QoS 2 duplicate). The
// connection is closed instead (v5 DISCONNECT 0x80); on its return the
// broker goes on with the same packet id (the PUBREL, stored again first),
// and the message is delivered once.
func TestStoreFailureHoldsPubrel(t *testing.T) {
	st := &failingStore{Store: store.NewMemory()}
	tb := start(t, broker.Options{Store: st, Loops: 1})
	subConnect := func() *v5Raw {
		r, _ := v5RawConnect(t, tb.Addr, "sf2-sub", func(p *codec.Connect) {
			p.CleanStart = false
			p.Props.Set(codec.PropSessionExpiry)
			p.Props.SessionExpiry = 600
		})
		return r
	}
	sub := subConnect()
	sub.subscribe(0, codec.Subscription{Filter: []byte("sf2/t"), QoS: 2})
	pub, _ := v5RawConnect(t, tb.Addr, "sf2-pub", nil)
	if code := pub.publish(&codec.Publish{Topic: []byte("sf2/t"), QoS: 2, Payload: []byte("once")}); code != 0 {
		t.Fatalf("PUBREC %#x", code)
	}
	in := sub.expectPublish()
	st.broken.Store(true)
	sub.ack(codec.PUBREC, in.PacketID)
	for {
		h, body, err := sub.tryRead(5 * time.Second)
		if err != nil {
			break // closed
		}
		if h.Type == codec.PUBREL {
			t.Fatal("PUBREL sent although its state was not stored")
		}
		if h.Type == codec.DISCONNECT {
			var d codec.Disconnect
			if err := d.Decode(h, body, codec.V5); err != nil || d.Code != codec.UnspecifiedError {
				t.Fatalf("DISCONNECT %#x (%v), want 0x80", d.Code, err)
			}
		}
	}
	st.broken.Store(false)
	sub = subConnect()
	if a := sub.expectAck(codec.PUBREL, in.PacketID); a == nil {
		t.Fatal("no PUBREL after reconnecting")
	}
	sub.ack(codec.PUBCOMP, in.PacketID)
	if got := sub.barrier(); len(got) != 0 { // nothing else: the message is not delivered again
		t.Fatalf("after PUBCOMP: %+v", got)
	}
}
