package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/store"
)

// The embedding API (broker/embed.go, publishmsg.go, serversub.go) with
// real clients over real sockets.

func embedCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestEmbed_NodeID(t *testing.T) {
	tb := start(t, broker.Options{NodeID: "node-a"})
	if tb.B.ID() != "node-a" || tb.B.Stats().NodeID != "node-a" {
		t.Fatalf("ID %q, Stats().NodeID %q, want node-a", tb.B.ID(), tb.B.Stats().NodeID)
	}
	g := start(t, broker.Options{})
	if id := g.B.ID(); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) || g.B.ID() != id {
		t.Fatalf("generated ID %q: want 16 hex digits, stable", id)
	}
	if other := start(t, broker.Options{}).B.ID(); other == g.B.ID() {
		t.Fatalf("two brokers made the same id %q", other)
	}
}

// StatsNow is exact at the call while Stats waits for the next tick (an
// hour away here); the getters are exact too.
func TestEmbed_StatsNowExact(t *testing.T) {
	tb := startTick(t, broker.Options{}, time.Hour)
	b := tb.B
	before := time.Now()
	if b.Closed() || b.ConnectedClients() != 0 {
		t.Fatalf("fresh broker: Closed %v, ConnectedClients %d", b.Closed(), b.ConnectedClients())
	}
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "st-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "st/#", QoS: 1}}})
	pub, _ := v3Paho(t, tb.Addr, "st-pub", true, nil, nil)
	if n := b.ConnectedClients(); n != 2 {
		t.Fatalf("ConnectedClients %d, want 2", n)
	}
	const n = 25
	for i := 0; i < n; i++ {
		v3Pub(t, pub, "st/x", 1, i == n-1, "0123456789")
	}
	for i := 0; i < n; i++ {
		sub.recv(t)
	}
	if st := b.Stats(); st.Connected != 0 || st.PublishIn[1] != 0 {
		t.Logf("Stats() was not stale (a tick ran?): connected %d, in %d", st.Connected, st.PublishIn[1])
	}
	st, err := b.StatsNow(embedCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Connected != 2 || st.Subscriptions != 1 || st.Retained != 1 {
		t.Fatalf("StatsNow: connected %d, subscriptions %d, retained %d; want 2, 1, 1", st.Connected, st.Subscriptions, st.Retained)
	}
	if st.PublishIn[1] != n || st.PublishOut[1] != n || st.PayloadIn[1] != 10*n || st.PayloadOut[1] != 10*n {
		t.Fatalf("StatsNow: publish in %v out %v, payload in %v out %v; want %d messages of 10 bytes", st.PublishIn, st.PublishOut, st.PayloadIn, st.PayloadOut, n)
	}
	if st.BytesIn == 0 || st.BytesOut == 0 {
		t.Fatalf("StatsNow: bytes in %d out %d", st.BytesIn, st.BytesOut)
	}
	if st.StartTime.Before(before.Add(-time.Second)) || st.StartTime.After(before) || st.Uptime <= 0 || st.Uptime > time.Minute {
		t.Fatalf("StatsNow: start %v uptime %v (test began %v)", st.StartTime, st.Uptime, before)
	}
	pub.Disconnect(0)
	v5Wait(t, "ConnectedClients back to 1", func() bool { return b.ConnectedClients() == 1 })
	tb.srv.Stop(context.Background())
	if !b.Closed() || b.ConnectedClients() != 0 {
		t.Fatalf("after Stop: Closed %v, ConnectedClients %d", b.Closed(), b.ConnectedClients())
	}
	if err := b.PublishMessage(context.Background(), broker.Publication{Topic: "st/x"}); err != broker.ErrClosed {
		t.Fatalf("PublishMessage after Stop: %v, want ErrClosed", err)
	}
}

// Every v5 property reaches a v5 subscriber; a 3.1.1 subscriber gets the
// message; PublishMessage reports what a v5 publisher's PUBACK would.
func TestEmbed_PublishMessageProperties(t *testing.T) {
	tb := start(t, broker.Options{})
	v5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pm-v5", CleanStart: true, KeepAlive: 30})
	v5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "pm/#", QoS: 2}}})
	sink := newV3Sink()
	v3, _ := v3Paho(t, tb.Addr, "pm-v3", true, sink, nil)
	v3Sub(t, v3, "pm/#", 1)

	err := tb.B.PublishMessage(embedCtx(t), broker.Publication{
		Topic: "pm/a", Payload: []byte("héllo"), QoS: 2, MessageExpiry: 90 * time.Second,
		PayloadFormat: 1, ContentType: "text/plain", ResponseTopic: "pm/reply", CorrelationData: []byte{1, 2, 3},
		UserProperties: []broker.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := v5.recv(t)
	pr := p.Properties
	if p.Topic != "pm/a" || string(p.Payload) != "héllo" || p.QoS != 2 || pr == nil ||
		pr.MessageExpiry == nil || *pr.MessageExpiry < 88 || *pr.MessageExpiry > 90 ||
		pr.PayloadFormat == nil || *pr.PayloadFormat != 1 || pr.ContentType != "text/plain" ||
		pr.ResponseTopic != "pm/reply" || string(pr.CorrelationData) != "\x01\x02\x03" ||
		len(pr.User) != 2 || pr.User.Get("k") != "v1" || pr.User[1].Value != "v2" {
		t.Fatalf("v5 subscriber got %+v with %+v", p, pr)
	}
	if m := sink.waitN(t, 1)[0]; m.Topic != "pm/a" || m.Payload != "héllo" || m.QoS != 1 {
		t.Fatalf("3.1.1 subscriber got %+v", m)
	}

	for _, bad := range []broker.Publication{
		{Topic: "pm/+"}, {Topic: "pm/a", QoS: 3}, {Topic: "pm/a", PayloadFormat: 1, Payload: []byte{0xff}},
		{Topic: "pm/a", ResponseTopic: "r/#"},
	} {
		if err := tb.B.PublishMessage(embedCtx(t), bad); err == nil {
			t.Fatalf("PublishMessage(%+v) accepted", bad)
		}
	}
	// Nobody subscribed: routed (to no one) all the same; retained kept.
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "nobody/r", Payload: []byte("r"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	late, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pm-late", CleanStart: true, KeepAlive: 30})
	late.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "nobody/r", QoS: 1}}})
	if p := late.recv(t); string(p.Payload) != "r" || !p.Retain {
		t.Fatalf("retained from PublishMessage: %+v", p)
	}
	// Broker.Publish still works.
	if err := tb.B.Publish("pm/b", []byte("old"), 0, false); err != nil {
		t.Fatal(err)
	}
	if p := v5.recv(t); p.Topic != "pm/b" {
		t.Fatalf("Publish: got %s", p.Topic)
	}
}

// slowStore delays every Apply's done (on one goroutine, in order): what
// waits for the store waits that long.
type slowStore struct {
	store.Store
	delay time.Duration
	q     chan func()
	once  sync.Once
}

func (s *slowStore) DoneInline() bool { return false }

func (s *slowStore) Apply(ops []store.Op, done func(error)) error {
	s.once.Do(func() {
		s.q = make(chan func(), 1<<16)
		go func() {
			for f := range s.q {
				f()
			}
		}()
	})
	return s.Store.Apply(ops, func(err error) {
		at := time.Now().Add(s.delay)
		s.q <- func() {
			time.Sleep(time.Until(at))
			if done != nil {
				done(err)
			}
		}
	})
}

// A QoS 1 PublishMessage to a persistent session returns once the store
// has its record, as the PUBACK of a client would; a store failure is an
// error, not a success.
// Server-side publishes to one topic reach a subscriber in the order they
// were made, whichever loop the subscriber is on (MQTT 4.6: a topic is an
// ordered topic); Publish and PublishMessage both, with four loops so
// consecutive calls would land on different loops if they were spread.
func TestEmbed_PublishKeepsTopicOrder(t *testing.T) {
	tb := start(t, broker.Options{Loops: 4})
	sink := newV3Sink()
	v3, _ := v3Paho(t, tb.Addr, "order-v3", true, sink, nil)
	v3Sub(t, v3, "order/#", 1)
	const n = 400
	for i := range n {
		topic := fmt.Sprintf("order/%d", i%2)
		var err error
		if i%4 < 2 {
			err = tb.B.Publish(topic, []byte(fmt.Sprint(i)), 1, false)
		} else {
			err = tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: topic, Payload: []byte(fmt.Sprint(i)), QoS: 1})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]int{"order/0": -1, "order/1": -1}
	for _, m := range sink.waitN(t, n) {
		var v int
		fmt.Sscan(m.Payload, &v)
		if v <= last[m.Topic] {
			t.Fatalf("%s: %d after %d", m.Topic, v, last[m.Topic])
		}
		last[m.Topic] = v
	}
}

func TestEmbed_PublishMessageWaitsForStore(t *testing.T) {
	slow := &slowStore{Store: store.NewMemory(), delay: 300 * time.Millisecond}
	tb := start(t, broker.Options{Store: slow})
	expiry := uint32(3600)
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pw-sub", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "pw/t", QoS: 1}}})

	t0 := time.Now()
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "pw/t", Payload: []byte("q1"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 250*time.Millisecond {
		t.Fatalf("QoS 1 PublishMessage to a persistent session returned after %v: before the store's commit (300 ms)", d)
	}
	sub.recv(t)
	t0 = time.Now()
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "pw/none", Payload: []byte("q0")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Fatalf("QoS 0 PublishMessage nobody stores took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tb.B.PublishMessage(ctx, broker.Publication{Topic: "pw/t", Payload: []byte("q1"), QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PublishMessage with a 50 ms context and a 300 ms store: %v", err)
	}

	fs := &failingStore{Store: store.NewMemory()}
	tf := start(t, broker.Options{Store: fs})
	sf, _ := v5Connect(t, tf.Addr, &paho.Connect{ClientID: "pf-sub", CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	sf.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "pf/t", QoS: 1}}})
	fs.broken.Store(true)
	if err := tf.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "pf/t", Payload: []byte("x"), QoS: 1}); err != broker.ErrNotStored {
		t.Fatalf("PublishMessage with a failing store: %v, want ErrNotStored", err)
	}
}

// embedSink collects what a server-side subscription's (or an in-process
// client's) handlers get.
type embedSink struct {
	mu   sync.Mutex
	got  []*broker.Delivered
	more chan struct{}
}

func newEmbedSink() *embedSink { return &embedSink{more: make(chan struct{}, 1)} }

func (s *embedSink) add(d *broker.Delivered) {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *embedSink) all() []*broker.Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*broker.Delivered(nil), s.got...)
}

func (s *embedSink) waitN(t testing.TB, n int) []*broker.Delivered {
	t.Helper()
	deadline := time.After(v5Timeout)
	for {
		if got := s.all(); len(got) >= n {
			return got
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("got %d messages, want %d: %v", len(s.all()), n, payloads(s.all()))
		}
	}
}

// Messages from paho v5 and 3.1.1 publishers reach a server-side
// subscription at every QoS, with their properties; the broker's QoS 2
// flow completes (the publisher's PUBCOMP comes, the subscription's
// inflight empties).
func TestEmbed_SubscribeReceives(t *testing.T) {
	tb := start(t, broker.Options{})
	sink := newEmbedSink()
	sub, err := tb.B.Subscribe("in/#", broker.SubscribeOptions{QoS: 2}, func(d *broker.Delivered, done func()) {
		sink.add(d)
		done()
	})
	if err != nil {
		t.Fatal(err)
	}
	pub5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "in-v5", CleanStart: true, KeepAlive: 30})
	for q := byte(0); q <= 2; q++ {
		pub5.publish(t, &paho.Publish{Topic: fmt.Sprintf("in/v5/%d", q), QoS: q, Payload: []byte{'a' + q},
			Properties: &paho.PublishProperties{ContentType: "x/y", User: paho.UserProperties{{Key: "q", Value: fmt.Sprint(q)}}}})
	}
	pub3, _ := v3Paho(t, tb.Addr, "in-v3", true, nil, nil)
	for q := byte(0); q <= 2; q++ {
		v3Pub(t, pub3, fmt.Sprintf("in/v3/%d", q), q, false, "3")
	}
	got := sink.waitN(t, 6)
	seen := map[string]*broker.Delivered{}
	for _, d := range got {
		seen[d.Topic] = d
	}
	for q := byte(0); q <= 2; q++ {
		d := seen[fmt.Sprintf("in/v5/%d", q)]
		if d == nil || d.QoS != q || string(d.Payload) != string([]byte{'a' + q}) || d.ContentType != "x/y" || len(d.UserProperties) != 1 || d.UserProperties[0].Value != fmt.Sprint(q) {
			t.Fatalf("v5 QoS %d: got %+v", q, d)
		}
		if d := seen[fmt.Sprintf("in/v3/%d", q)]; d == nil || d.QoS != q || string(d.Payload) != "3" {
			t.Fatalf("3.1.1 QoS %d: got %+v", q, d)
		}
	}
	v5Wait(t, "nothing inflight", func() bool {
		st, _ := tb.B.StatsNow(embedCtx(t))
		return st.Inflight == 0 && sub.Outstanding() == 0
	})
	if n := tb.B.ConnectedClients(); n != 3 {
		t.Fatalf("ConnectedClients %d, want 3 (the subscription counts)", n)
	}
	sub.Unsubscribe()
	<-sub.Done()
	if sub.Err() != broker.ErrSubscriptionEnded {
		t.Fatalf("Err after Unsubscribe: %v", sub.Err())
	}
	pub5.publish(t, &paho.Publish{Topic: "in/after", QoS: 1, Payload: []byte("z")})
	time.Sleep(v5Quiet)
	if n := len(sink.waitN(t, 6)); n != 6 {
		t.Fatalf("%d messages after Unsubscribe", n-6)
	}
	v5Wait(t, "session gone", func() bool {
		st, _ := tb.B.StatsNow(embedCtx(t))
		return st.Sessions == 2 && tb.B.ConnectedClients() == 2
	})
}

// At most Window messages are outstanding: the others wait in the session
// queue (QoS 1) or are dropped and counted (QoS 0); a slow handler slows
// only its own subscription, never a publisher or another client.
func TestEmbed_SubscribeBackpressure(t *testing.T) {
	tb := start(t, broker.Options{})
	var mu sync.Mutex
	var pending []func()
	var got []string
	var maxOut atomic.Int32
	var subp atomic.Pointer[broker.ServerSubscription]
	sub, err := tb.B.Subscribe("bp/#", broker.SubscribeOptions{QoS: 1, Window: 3}, func(d *broker.Delivered, done func()) {
		mu.Lock()
		got = append(got, string(d.Payload))
		pending = append(pending, done) // processed later
		mu.Unlock()
		if s := subp.Load(); s != nil {
			if o := int32(s.Outstanding()); o > maxOut.Load() {
				maxOut.Store(o)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	subp.Store(sub)
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bp-pub", CleanStart: true, KeepAlive: 30})
	const n = 20
	for i := 0; i < n; i++ {
		pub.publish(t, &paho.Publish{Topic: "bp/q1", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	v5Wait(t, "window full", func() bool { return count() == 3 })
	// QoS 0 beyond the window: dropped, counted.
	for i := 0; i < 5; i++ {
		pub.publish(t, &paho.Publish{Topic: "bp/q0", QoS: 0, Payload: []byte("zero")})
	}
	// Another client is not held up by the stalled subscription.
	other, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bp-other", CleanStart: true, KeepAlive: 30})
	other.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bp/#", QoS: 1}}})
	t0 := time.Now()
	pub.publish(t, &paho.Publish{Topic: "bp/other", QoS: 1, Payload: []byte("o")})
	if p := other.recv(t); p.Topic != "bp/other" || time.Since(t0) > time.Second {
		t.Fatalf("other subscriber: %s after %v", p.Topic, time.Since(t0))
	}
	time.Sleep(v5Quiet)
	if c := count(); c != 3 {
		t.Fatalf("%d messages handed out with a window of 3 and none done", c)
	}
	st, _ := tb.B.StatsNow(embedCtx(t))
	if st.Dropped["slow_consumer"]+sub.Dropped() < 5 {
		t.Fatalf("QoS 0 beyond the window: %d dropped by the broker, %d by the subscription; want 5", st.Dropped["slow_consumer"], sub.Dropped())
	}
	if st.Queued < n-3 {
		t.Fatalf("session queue holds %d, want at least %d", st.Queued, n-3)
	}
	// Process everything: the rest follows, in order, never more than 3 at once.
	deadline := time.Now().Add(v5Timeout)
	for count() < n+1 && time.Now().Before(deadline) {
		mu.Lock()
		ds := pending
		pending = nil
		mu.Unlock()
		for _, d := range ds {
			d()
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n+1 {
		t.Fatalf("got %d messages, want %d: %v", len(got), n+1, got)
	}
	for i := 0; i < n; i++ {
		if got[i] != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: order lost (%v)", i, got[i], got)
		}
	}
	if maxOut.Load() > 3 {
		t.Fatalf("%d outstanding at once, window 3", maxOut.Load())
	}
}

// A persistent subscription's unprocessed QoS 1 messages, and those
// published while it is away, survive a restart (Badger).
func TestEmbed_SubscribePersistentRestart(t *testing.T) {
	dir := t.TempDir()
	ds := durStart(t, dir, store.DurabilityCommit)
	held := make(chan func(), 100)
	sub, err := ds.B.Subscribe("ps/#", broker.SubscribeOptions{QoS: 1, Persistent: true, Name: "archiver", Window: 2},
		func(d *broker.Delivered, done func()) { held <- done }) // never done before the restart
	if err != nil {
		t.Fatal(err)
	}
	if sub.ClientID() != "$mcutie/sub/archiver" {
		t.Fatalf("ClientID %q", sub.ClientID())
	}
	pub, _ := v3Paho(t, ds.Addr, "ps-pub", true, nil, nil)
	for i := 0; i < 5; i++ {
		v3Pub(t, pub, "ps/x", 1, false, fmt.Sprint(i))
	}
	v5Wait(t, "window handed out", func() bool { return len(held) == 2 })
	pub.Disconnect(0)
	ds.stop(t)
	select {
	case <-sub.Done():
	case <-time.After(v5Timeout):
		t.Fatal("subscription did not stop with the broker")
	}

	ds2 := durStart(t, dir, store.DurabilityCommit)
	pub2, _ := v3Paho(t, ds2.Addr, "ps-pub", true, nil, nil)
	v3Pub(t, pub2, "ps/x", 1, false, "while-away")
	sink := newEmbedSink()
	sub2, err := ds2.B.Subscribe("ps/#", broker.SubscribeOptions{QoS: 1, Persistent: true, Name: "archiver"},
		func(d *broker.Delivered, done func()) { sink.add(d); done() })
	if err != nil {
		t.Fatal(err)
	}
	got := sink.waitN(t, 6)
	var payloads []string
	for _, d := range got {
		payloads = append(payloads, string(d.Payload))
	}
	want := "[0 1 2 3 4 while-away]"
	if fmt.Sprint(payloads) != want {
		t.Fatalf("after the restart: %v, want %s", payloads, want)
	}
	if !got[0].Dup || !got[1].Dup {
		t.Fatalf("the two handed out before the restart are not marked Dup: %+v %+v", got[0], got[1])
	}
	sub2.Unsubscribe()
	<-sub2.Done()
	v5Wait(t, "session removed", func() bool {
		st, _ := ds2.B.StatsNow(embedCtx(t))
		return st.Sessions == 1
	})
}

// denyAll is an Authorizer that refuses everything.
type denyAll struct{}

func (denyAll) Allow(*broker.Identity, []byte, broker.Access) bool { return false }
func (denyAll) Generation() uint64                                 { return 1 }

// Server-side subscriptions bypass the ACLs unless asked; network clients
// cannot take their client ids.
func TestEmbed_SubscribeACLAndReservedID(t *testing.T) {
	tb := start(t, broker.Options{Authorizer: denyAll{}})
	sink := newEmbedSink()
	if _, err := tb.B.Subscribe("acl/#", broker.SubscribeOptions{QoS: 1, Name: "admin"}, func(d *broker.Delivered, done func()) { sink.add(d); done() }); err != nil {
		t.Fatal(err)
	}
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "acl/x", Payload: []byte("a"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	sink.waitN(t, 1)
	if _, err := tb.B.Subscribe("acl/#", broker.SubscribeOptions{CheckACL: true, Username: "bob"}, func(_ *broker.Delivered, done func()) { done() }); err == nil {
		t.Fatal("a subscription with CheckACL was allowed by an Authorizer that denies everything")
	}
	_, ack, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "$mcutie/sub/admin", CleanStart: true, KeepAlive: 30})
	if err == nil || ack == nil || ack.ReasonCode != 0x85 {
		t.Fatalf("v5 CONNECT with a server subscription's id: %v, %+v; want 0x85", err, ack)
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("$mcutie/sub/admin").SetAutoReconnect(false).SetConnectRetry(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(v3Wait) || tok.Error() == nil {
		t.Fatal("3.1.1 CONNECT with a server subscription's id accepted")
	}
	// The subscription still has its session.
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "acl/y", Payload: []byte("b"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	sink.waitN(t, 2)
}

// A handler that panics is recovered and counted as done; the broker and
// the subscription serve on.
func TestEmbed_SubscribeHandlerPanics(t *testing.T) {
	tb := start(t, broker.Options{})
	sink := newEmbedSink()
	_, err := tb.B.Subscribe("pn/#", broker.SubscribeOptions{QoS: 1, Window: 1}, func(d *broker.Delivered, done func()) {
		if string(d.Payload) == "boom" {
			panic("handler bug")
		}
		sink.add(d)
		done()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"boom", "ok"} {
		if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "pn/x", Payload: []byte(p), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := sink.waitN(t, 1); string(got[0].Payload) != "ok" {
		t.Fatalf("got %q", got[0].Payload)
	}
}

// The binary keeps its node id in --data-dir/node-id: made on the first
// start, the same after a restart; --node-id overrides it.
func TestEmbed_BinaryNodeIDKept(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, "node-id"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	p := durStartProc(t, dir, freePort(t))
	p.term(t)
	first := read()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(first) {
		t.Fatalf("node-id file holds %q", first)
	}
	p = durStartProc(t, dir, freePort(t))
	p.term(t)
	if again := read(); again != first {
		t.Fatalf("node id changed across a restart: %q then %q", first, again)
	}
	p = durStartProc(t, dir, freePort(t), "--node-id", "given")
	p.term(t)
	if kept := read(); kept != first {
		t.Fatalf("--node-id rewrote the kept id: %q", kept)
	}
}
