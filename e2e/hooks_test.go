package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// Hooks (package hooks) over real sockets: each event fires when
// documented, an interceptor changes or drops messages, a slow Connect hook
// delays nobody else, a panicking hook never stops the broker.

func newRegistry(t *testing.T, o hooks.Options, hs ...hooks.Hook) *hooks.Registry {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := hooks.New(o)
	for _, h := range hs {
		if err := r.Add(h); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// recorder writes every lifecycle event it is told as one line.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Provides() hooks.Events {
	return hooks.EventsOf(hooks.Connected, hooks.Disconnected, hooks.SessionCreated, hooks.SessionResumed, hooks.SessionTerminated,
		hooks.Subscribed, hooks.Unsubscribed, hooks.WillPublished, hooks.RetainedChanged)
}
func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}
func (r *recorder) OnConnected(c *hooks.Client, present bool) {
	r.add("connected %s user=%s present=%v v%d", c.ID, c.Username, present, c.Version)
}
func (r *recorder) OnDisconnected(c *hooks.Client, reason string) {
	r.add("disconnected %s %s", c.ID, reason)
}
func (r *recorder) OnSessionCreated(id string) { r.add("session created %s", id) }
func (r *recorder) OnSessionResumed(id string) { r.add("session resumed %s", id) }
func (r *recorder) OnSessionTerminated(id string, why hooks.SessionEnd) {
	r.add("session terminated %s %d", id, why)
}
func (r *recorder) OnSubscribed(c *hooks.Client, f []byte, qos byte) {
	r.add("subscribed %s %s %d", c.ID, f, qos)
}
func (r *recorder) OnUnsubscribed(c *hooks.Client, f []byte) { r.add("unsubscribed %s %s", c.ID, f) }
func (r *recorder) OnWillPublished(id string, m *hooks.Message) {
	r.add("will %s %s %s", id, m.Topic, m.Payload)
}
func (r *recorder) OnRetainedChanged(m *hooks.Message) { r.add("retained %s %q", m.Topic, m.Payload) }

// wait waits until the recorded lines include want, in order (other lines
// may come between), and returns them all.
func (r *recorder) wait(t *testing.T, want ...string) []string {
	t.Helper()
	return waitInOrder(t, "hook events", func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return append([]string(nil), r.lines...)
	}, want...)
}

// The lifecycle events fire when documented: session created and connected
// at CONNACK, subscribed and unsubscribed per filter, retained set and
// cleared, the will when the connection ends with DISCONNECT 0x04,
// disconnected with the reason, the session resumed on a reconnect and
// terminated by a clean start.
func TestHooks_Lifecycle(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, rec)})
	cp := func(clean bool) *paho.Connect {
		return &paho.Connect{ClientID: "hk-1", CleanStart: clean, Username: "ann", UsernameFlag: true,
			Properties:  &paho.ConnectProperties{SessionExpiryInterval: v5U32(600)},
			WillMessage: &paho.WillMessage{Topic: "hk/will", Payload: []byte("bye")}}
	}
	c, _ := v5Connect(t, tb.Addr, cp(true))
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "hk/a/#", QoS: 1}}})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"hk/a/#"}}); err != nil {
		t.Fatal(err)
	}
	c.publish(t, &paho.Publish{Topic: "hk/r", QoS: 1, Retain: true, Payload: []byte("kept")})
	c.publish(t, &paho.Publish{Topic: "hk/r", QoS: 1, Retain: true})
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) // with will
	rec.wait(t,
		"session created hk-1",
		"connected hk-1 user=ann present=false v5",
		"subscribed hk-1 hk/a/# 1",
		"unsubscribed hk-1 hk/a/#",
		`retained hk/r "kept"`,
		`retained hk/r ""`,
		"disconnected hk-1 client_disconnected_with_will",
		"will hk-1 hk/will bye", // a consequence of the disconnection
	)
	c, _ = v5Connect(t, tb.Addr, cp(false))
	rec.wait(t, "session resumed hk-1", "connected hk-1 user=ann present=true v5")
	_ = c.Disconnect(&paho.Disconnect{})
	rec.wait(t, "disconnected hk-1 client_disconnected")
	v5Connect(t, tb.Addr, cp(true))
	rec.wait(t, fmt.Sprintf("session terminated hk-1 %d", hooks.SessionTakenOut), "session created hk-1")
}

// enricher rewrites what clients publish: "raw/…" goes to "enriched/…"
// with the publisher's id in front of the payload; "secret/…" is dropped.
type enricher struct{}

func (enricher) Name() string           { return "enricher" }
func (enricher) Provides() hooks.Events { return hooks.EventsOf(hooks.Publish) }
func (enricher) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	switch {
	case bytes.HasPrefix(m.Topic, []byte("secret/")):
		return nil, hooks.ErrDrop
	case bytes.HasPrefix(m.Topic, []byte("raw/")) && m.Client != nil:
		c := *m
		c.Topic = append([]byte("enriched/"), m.Topic[len("raw/"):]...)
		c.Payload = []byte(m.Client.ID + ":" + string(m.Payload))
		return &c, nil
	}
	return nil, nil
}

// The Publish hook changes a message for every subscriber (3.1.1 and v5
// alike) and drops another: a v5 QoS 1 publisher is told 0x87, a 3.1.1
// one is acknowledged as for an ACL refusal, and nothing is delivered.
func TestHooks_PublishInterceptor(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, enricher{})})
	sub5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "hk-sub5", CleanStart: true})
	sub5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "enriched/#", QoS: 1}, {Topic: "secret/#", QoS: 1}}})
	got3 := make(chan mqtt.Message, 10)
	sub3 := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("hk-sub3"))
	if tok := sub3.Connect(); !tok.WaitTimeout(v5Timeout) || tok.Error() != nil {
		t.Fatalf("connect 3.1.1: %v", tok.Error())
	}
	defer sub3.Disconnect(0)
	if tok := sub3.Subscribe("enriched/#", 1, func(_ mqtt.Client, m mqtt.Message) { got3 <- m }); !tok.WaitTimeout(v5Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "hk-pub", CleanStart: true})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if r, _ := pub.Publish(ctx, &paho.Publish{Topic: "secret/x", QoS: 1, Payload: []byte("no")}); r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("dropped publish: %+v, want PUBACK 0x87", r)
	}
	pub.publish(t, &paho.Publish{Topic: "raw/temp", QoS: 1, Payload: []byte("21.5")})
	if p := sub5.recv(t); p.Topic != "enriched/temp" || string(p.Payload) != "hk-pub:21.5" {
		t.Fatalf("v5 subscriber got %q on %s", p.Payload, p.Topic)
	}
	select {
	case m := <-got3:
		if m.Topic() != "enriched/temp" || string(m.Payload()) != "hk-pub:21.5" {
			t.Fatalf("3.1.1 subscriber got %q on %s", m.Payload(), m.Topic())
		}
	case <-time.After(v5Timeout):
		t.Fatal("3.1.1 subscriber got nothing")
	}
	sub5.quiet(t)
	v5Wait(t, "the drop counted", func() bool { return tb.B.Stats().Dropped["hook"] == 1 })
}

// subPolicy lowers every subscription to QoS 0, maps "old/…" filters to
// "new/…" and refuses "admin/#".
type subPolicy struct{}

func (subPolicy) Name() string           { return "sub-policy" }
func (subPolicy) Provides() hooks.Events { return hooks.EventsOf(hooks.Subscribe) }
func (subPolicy) OnSubscribe(_ *hooks.Client, s *hooks.Subscription) error {
	if bytes.HasPrefix(s.Filter, []byte("admin/")) {
		return hooks.ErrDeny
	}
	if bytes.HasPrefix(s.Filter, []byte("old/")) {
		s.Filter = append([]byte("new/"), s.Filter[len("old/"):]...)
	}
	s.QoS = 0
	return nil
}

// The Subscribe hook lowers the granted QoS, rewrites a filter (the
// subscription then receives what the new filter matches) and refuses
// one: v5 0x87, 3.1.1 0x80.
func TestHooks_SubscribePolicy(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, subPolicy{})})
	r5, _ := v5RawConnect(t, tb.Addr, "hk-subp5", nil)
	codes := r5.subscribe(0, codec.Subscription{Filter: []byte("old/t"), QoS: 2}, codec.Subscription{Filter: []byte("admin/#"), QoS: 1})
	if fmt.Sprint(codes) != fmt.Sprint([]codec.ReasonCode{0, codec.NotAuthorized}) {
		t.Fatalf("v5 SUBACK %v, want [0 0x87]", codes)
	}
	// A client that asked for problem information is told why.
	rp, _ := v5RawConnect(t, tb.Addr, "hk-subp-info", func(p *codec.Connect) {
		p.Props.Set(codec.PropRequestProblemInfo)
		p.Props.RequestProblemInfo = 1
	})
	sp := codec.Subscribe{PacketID: 9, Subs: []codec.Subscription{{Filter: []byte("admin/x")}}}
	rp.send(sp.Append(nil, codec.V5))
	if a, ok := rp.next(v5Timeout).(*codec.Suback); !ok || a.Codes[0] != codec.NotAuthorized || !strings.Contains(string(a.Props.ReasonString), "denied") {
		t.Fatalf("SUBACK %+v, want 0x87 with the hook's reason", a)
	}
	r3, _ := v3Raw(t, tb.Addr, codec.V311, "hk-subp3", true, nil)
	if codes := r3.v3Subscribe(1, "admin/#", 1); fmt.Sprint(codes) != fmt.Sprint([]codec.ReasonCode{0x80}) {
		t.Fatalf("3.1.1 SUBACK %v, want [0x80]", codes)
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "hk-subp-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "new/t", QoS: 1, Payload: []byte("x")})
	p, ok := r5.next(v5Timeout).(*codec.Publish)
	if !ok || string(p.Topic) != "new/t" || p.QoS != 0 {
		t.Fatalf("got %+v, want new/t at QoS 0", p)
	}
}

// gate is a Connect hook: "slow-…" clients wait as long as the hook is told
// (a slow backend), "panic" panics, "deny" is refused as banned.
type gate struct{ sleep time.Duration }

func (gate) Name() string           { return "gate" }
func (gate) Provides() hooks.Events { return hooks.EventsOf(hooks.Connect) }
func (g gate) OnConnect(c *hooks.Client, p *codec.Connect) error {
	switch {
	case strings.HasPrefix(c.ID, "slow-"):
		time.Sleep(g.sleep)
	case c.ID == "panic":
		panic("gate panicked")
	case c.ID == "deny":
		return &codec.ReasonError{Code: codec.Banned, Reason: "denied by gate"}
	}
	if string(p.ClientID) != c.ID {
		return errors.New("the CONNECT handed to the hook is not the client's")
	}
	return nil
}

// A Connect hook that sleeps never delays other clients: while one CONNECT
// waits 10 s on it, a publisher and a subscriber on the same broker
// exchange 2,000 messages. The hook's refusal chooses the code (0x8A), a
// panic refuses (0x87) and the broker serves on, and past the timeout the
// CONNECT is refused.
func TestHooks_ConnectSlowPanicTimeout(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, hooks.Options{Timeout: 15 * time.Second}, gate{sleep: 10 * time.Second})
	tb := start(t, broker.Options{Loops: 1, Hooks: reg, AuthTimeout: 20 * time.Second})
	slowDone := make(chan error, 1)
	slow := dialRaw(t, tb.Addr, codec.V5)
	slowConnect := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte("slow-1"), CleanStart: true, KeepAlive: 60}
	slow.send(slowConnect.Append(nil))
	go func() {
		h, body, err := slow.tryRead(15 * time.Second)
		var ack codec.Connack
		if err == nil && (h.Type != codec.CONNACK || ack.Decode(h, body, codec.V5) != nil || ack.Code != 0) {
			err = fmt.Errorf("got type %d code %#x", h.Type, ack.Code)
		}
		slowDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // the slow CONNECT is waiting on the hook
	sub, _ := v5RawConnect(t, tb.Addr, "fast-sub", nil)
	sub.subscribe(0, codec.Subscription{Filter: []byte("fast/t")})
	pub, _ := v5RawConnect(t, tb.Addr, "fast-pub", nil)
	var batch []byte
	for i := 0; i < 2000; i++ {
		p := codec.Publish{Topic: []byte("fast/t"), Payload: []byte(fmt.Sprint(i))}
		batch = p.Append(batch, codec.V5)
	}
	pub.send(batch)
	for i := 0; i < 2000; i++ {
		p, ok := sub.next(v5Timeout).(*codec.Publish)
		if !ok || string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %+v", i, p)
		}
	}
	select {
	case err := <-slowDone:
		t.Fatalf("the slow CONNECT ended (%v) before the other clients were done: it delayed them", err)
	default: // still waiting on its hook: nobody waited for it
	}
	for _, tc := range []struct {
		id   string
		code byte
	}{{"deny", 0x8A}, {"panic", 0x87}} {
		if _, ack, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: tc.id, CleanStart: true}); err == nil || ack == nil || ack.ReasonCode != tc.code {
			t.Fatalf("%s: %v %+v, want CONNACK %#x", tc.id, err, ack, tc.code)
		}
	}
	if st, _ := reg.HookStats("gate"); st.Panics != 1 {
		t.Fatalf("panics %d, want 1", st.Panics)
	}
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("the slow client, allowed after 10 s: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the slow CONNECT never finished")
	}
}

// A pre-connect hook refuses an address at accept: the socket is closed
// before any byte is read, and counted.
type addrPolicy struct {
	deny      netip.Addr
	mu        sync.Mutex
	listeners []string
}

func (*addrPolicy) Name() string           { return "addr-policy" }
func (*addrPolicy) Provides() hooks.Events { return hooks.EventsOf(hooks.PreConnect) }
func (a *addrPolicy) OnPreConnect(remote netip.Addr, listener string) error {
	a.mu.Lock()
	a.listeners = append(a.listeners, listener)
	a.mu.Unlock()
	if remote == a.deny {
		return hooks.ErrDeny
	}
	return nil
}

func TestHooks_PreConnect(t *testing.T) {
	t.Parallel()
	policy := &addrPolicy{deny: netip.MustParseAddr("127.0.3.9")}
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, policy)})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.3.9")}, Timeout: v5Timeout}
	nc, err := d.Dial("tcp", tb.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(v5Timeout))
	if n, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a refused connection", n)
	}
	v5Connect(t, tb.Addr, &paho.Connect{ClientID: "hk-allowed", CleanStart: true})
	v5Wait(t, "the refusal counted", func() bool { return tb.B.Stats().Rejected["pre_connect_hook"] == 1 })
	policy.mu.Lock()
	defer policy.mu.Unlock()
	for _, l := range policy.listeners {
		if !strings.HasPrefix(l, "tcp://127.0.0.1:") { // the hook is told which listener accepted
			t.Fatalf("listener %q, want the broker's tcp:// listener", l)
		}
	}
}

// forwarder decides per subscriber: "fw-blocked" gets nothing, "fw-upper"
// its own upper-cased copy, everyone else the message as published; and
// it records deliveries, acknowledgements and drops.
type forwarder struct {
	mu                        sync.Mutex
	delivered, acked, dropped []string
	forwardCalls              map[string]int
}

func (*forwarder) Name() string { return "forwarder" }
func (*forwarder) Provides() hooks.Events {
	return hooks.EventsOf(hooks.Forward, hooks.Delivered, hooks.Acked, hooks.Dropped)
}
func (f *forwarder) OnForward(to *hooks.Client, m *hooks.Message) (*hooks.Message, error) {
	f.mu.Lock()
	f.forwardCalls[to.ID]++
	f.mu.Unlock()
	switch to.ID {
	case "fw-blocked":
		return nil, hooks.ErrDrop
	case "fw-upper":
		c := *m
		c.Payload = bytes.ToUpper(m.Payload)
		return &c, nil
	}
	return nil, nil
}
func (f *forwarder) OnDelivered(to *hooks.Client, m *hooks.Message, qos byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delivered = append(f.delivered, fmt.Sprintf("%s %s %s q%d", to.ID, m.Topic, m.Payload, qos))
}
func (f *forwarder) OnAcked(to *hooks.Client, m *hooks.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked = append(f.acked, fmt.Sprintf("%s %s", to.ID, m.Payload))
}
func (f *forwarder) OnDropped(to *hooks.Client, m *hooks.Message, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped = append(f.dropped, fmt.Sprintf("%s %s %s", to.ID, m.Payload, reason))
}

// The Forward hook decides each subscriber's copy (live and retained
// deliveries alike): one subscriber gets nothing, one its own changed
// copy while the others get the message as published; Delivered, Acked and
// Dropped fire for each delivery.
func TestHooks_ForwardPerSubscriber(t *testing.T) {
	t.Parallel()
	fw := &forwarder{forwardCalls: map[string]int{}}
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, fw)})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "fw-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "fw/r", QoS: 1, Retain: true, Payload: []byte("kept")})
	subs := map[string]*v5Paho{}
	for _, id := range []string{"fw-plain", "fw-upper", "fw-blocked"} {
		c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: id, CleanStart: true})
		c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fw/#", QoS: 1}}})
		subs[id] = c
	}
	pub.publish(t, &paho.Publish{Topic: "fw/t", QoS: 1, Payload: []byte("live")})
	for id, want := range map[string][2]string{"fw-plain": {"kept", "live"}, "fw-upper": {"KEPT", "LIVE"}} {
		for _, w := range want {
			if p := subs[id].recv(t); string(p.Payload) != w {
				t.Fatalf("%s got %q, want %q", id, p.Payload, w)
			}
		}
	}
	subs["fw-blocked"].quiet(t)
	v5Wait(t, "delivered, acked and dropped events", func() bool {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		return len(fw.delivered) == 4 && len(fw.acked) == 4 && len(fw.dropped) == 2
	})
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !slicesContain(fw.delivered, "fw-upper fw/t LIVE q1") || !slicesContain(fw.dropped, "fw-blocked live hook") {
		t.Fatalf("delivered %q, dropped %q", fw.delivered, fw.dropped)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
