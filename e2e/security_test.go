package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
)

// Regression tests for what an attacker's probe broke (issue 21). Each
// names the finding it pins down.

// bigPublish returns a PUBLISH to topic at QoS 0 whose remaining length is
// exactly remaining, for version v.
func bigPublish(topic string, remaining int, v codec.Version) []byte {
	p := codec.Publish{Topic: []byte(topic)}
	empty := p.Len(v) - 2 // remaining length without a payload (1-byte length)
	p.Payload = make([]byte, remaining-empty)
	return p.Append(nil, v)
}

// 21.1: with --max-packet-size at the protocol's maximum, a PUBLISH at the
// largest remaining length grows past what a v5 header can express when it
// is forwarded (a properties length byte for a 3.1.1 publisher; three
// subscription identifiers for a v5 one). It used to panic the process in
// the header encoder; now it is dropped as if sent and counted, and the
// subscriber keeps its connection. [MQTT-3.1.2-24/-25]
func TestSecurity_OversizeForwardDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("sends two 256 MiB packets")
	}
	// A 256 MiB packet under the race detector on a loaded machine can
	// take longer than the default packet timeout (30 s) to arrive.
	tb := startReactor(t, broker.Options{Loops: 1, MaxPacketSize: codec.MaxPacketSize},
		reactor.Options{TickInterval: 100 * time.Millisecond, PacketTimeout: 10 * time.Minute})
	sub := dialRaw(t, tb.Addr, codec.V5)
	// No keep-alive: under the race detector on a loaded machine a
	// 256 MiB packet can take longer than 1.5 × any keep-alive to arrive.
	if a := sub.connect(&codec.Connect{ClientID: []byte("big-sub"), CleanStart: true}); a.Code != 0 {
		t.Fatalf("CONNACK %#x", a.Code)
	}
	for i, f := range []string{"big/t", "big/+", "big/#"} {
		s := codec.Subscribe{PacketID: uint16(i + 1), Subs: []codec.Subscription{{Filter: []byte(f)}}}
		s.Props.SubscriptionIDs = []uint32{uint32(i + 1)}
		sub.send(s.Append(nil, codec.V5))
		if h, _ := sub.read(5 * time.Second); h.Type != codec.SUBACK {
			t.Fatalf("want SUBACK, got type %d", h.Type)
		}
	}
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		pub := dialRaw(t, tb.Addr, v)
		if a := pub.connect(&codec.Connect{ClientID: []byte("big-pub"), CleanStart: true}); a.Code != 0 {
			t.Fatalf("CONNACK %#x", a.Code)
		}
		pub.send(bigPublish("big/t", codec.MaxVarint, v))
		small := codec.Publish{Topic: []byte("big/t"), Payload: []byte("small")}
		pub.send(small.Append(nil, v))
		h, body := sub.read(60 * time.Second)
		if h.Type != codec.PUBLISH {
			t.Fatalf("publisher %v: want the small PUBLISH, got type %d", v, h.Type)
		}
		var got codec.Publish
		if err := got.Decode(h, body, codec.V5); err != nil || string(got.Payload) != "small" {
			t.Fatalf("publisher %v: got %q (%v), want the small message: the large one must be dropped", v, got.Payload, err)
		}
		pub.c.Close()
	}
	v5Wait(t, "two messages counted as dropped too_large", func() bool { return tb.B.Stats().Dropped["too_large"] == 2 })
}

// deepFilter is a filter of n levels, '+' at every other level, its first
// level "w<variant>".
func deepFilter(n, variant int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "w%d", variant)
	for i := 1; i < n; i++ {
		if i%2 == 1 {
			b.WriteString("/+")
		} else {
			b.WriteString("/a")
		}
	}
	return b.String()
}

// 21.2: one session's filters with '+' are bounded by the sum of their
// levels (--max-wildcard-levels), so no session can make every PUBLISH
// walk tens of thousands of router nodes: the filter past the budget is
// refused with 0x97, replacing a filter is not charged again, and an
// unsubscribed filter gives its levels back.
func TestSecurity_WildcardLevelBudget(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxWildcardLevels: 4 * 128})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "wild", CleanStart: true})
	for i := 0; i < 4; i++ {
		ack := c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: deepFilter(128, i)}}})
		if ack.Reasons[0] != 0 {
			t.Fatalf("filter %d within the budget: SUBACK %#x", i, ack.Reasons[0])
		}
	}
	// Within one packet: a literal and a '#' filter cost nothing, the
	// fifth '+' filter is over the budget; a repeated one is a
	// replacement.
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, _ := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "a/b/c"}, {Topic: "a/#"}, {Topic: deepFilter(128, 4)}, {Topic: deepFilter(128, 0), QoS: 1},
	}}) // paho reports the refused filter as an error; the SUBACK says which
	if want := []byte{0, 0, 0x97, 1}; ack == nil || !bytes.Equal(ack.Reasons, want) {
		t.Fatalf("SUBACK %#v, want reasons %#v", ack, want)
	}
	if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{deepFilter(128, 1)}}); err != nil {
		t.Fatal(err)
	}
	if ack := c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: deepFilter(128, 4)}}}); ack.Reasons[0] != 0 {
		t.Fatalf("after an unsubscribe freed 128 levels: SUBACK %#x", ack.Reasons[0])
	}
	v5Wait(t, "the refusal counted", func() bool { return tb.B.Stats().SubscriptionsRefused["wildcard_levels"] == 1 })
}

// A SUBSCRIBE refused as a protocol error (No Local on a shared
// subscription, MQTT-3.8.3-4) changes nothing: its valid filters listed
// before the bad one are not applied either.
func TestSecurity_SubscribeValidatedBeforeApplied(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r := dialRaw(t, tb.Addr, codec.V5)
	cp := codec.Connect{ClientID: []byte("half"), CleanStart: false, KeepAlive: 60}
	cp.Props.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 60
	r.connect(&cp)
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("half/t"), QoS: 1}, {Filter: []byte("$share/g/half/u"), NoLocal: true}}}
	r.send(s.Append(nil, codec.V5))
	r.expectClosed(5 * time.Second)

	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "half", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(60)}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "half-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "half/t", QoS: 1, Payload: []byte("x")})
	select {
	case p := <-c.msgs:
		t.Fatalf("received %q on half/t: the refused SUBSCRIBE's first filter was applied", p.Topic)
	case <-time.After(v5Quiet):
	}
}

// 21.3: a client that never reads and repeats SUBSCRIBE over many retained
// messages used to be owed one more send per match per packet, without
// bound (100 packets cost 677 MB). A repeated filter now replaces what it
// is owed, and a SUBSCRIBE while more than --max-retained-owed are still
// owed closes the connection as a slow reader.
func TestSecurity_ResubscribeOwedBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("20 MB of retained messages")
	}
	t.Parallel()
	tb := start(t, broker.Options{Loops: 1, MaxOutboundBytes: 16 << 10, MaxRetainedOwed: 1000})
	pub := dialRaw(t, tb.Addr, codec.V311)
	pub.connect(&codec.Connect{ClientID: []byte("rr-pub"), CleanStart: true, KeepAlive: 60})
	payload := make([]byte, 1024)
	const n = 20000
	var batch []byte
	for i := 0; i < n; i++ {
		p := codec.Publish{Topic: []byte(fmt.Sprintf("rr/%d", i)), Retain: true, Payload: payload}
		batch = p.Append(batch, codec.V311)
	}
	pub.send(batch)
	v5Wait(t, "20,000 retained messages", func() bool { return tb.B.Stats().Retained >= n })

	// The subscriber's socket takes little and it never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp", tb.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	sub := &rawConn{t: t, c: nc, v: codec.V311}
	sub.connect(&codec.Connect{ClientID: []byte("rr-sub"), CleanStart: true, KeepAlive: 60})
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("rr/#")}}}
	one := s.Append(nil, codec.V311)
	for i := 0; i < 100; i++ {
		if _, err := nc.Write(one); err != nil {
			break // closed: what the test waits for
		}
		time.Sleep(2 * time.Millisecond)
	}
	v5Wait(t, "the slow reader closed", func() bool { return tb.B.Stats().Rejected["retained_owed"] >= 1 })
}

// 21.4: the broker's Receive Maximum binds inbound QoS 1 as it does QoS 2
// (MQTT-3.3.4-7): a v5 publisher that keeps sending while its PUBACKs are
// held back (here by a subscriber far behind) is disconnected with 0x93
// instead of making the broker hold every message it sends.
func TestSecurity_ReceiveMaximumQoS1(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Loops: 1, MaxInflight: 10, MaxQueued: 20})
	// A subscriber that takes one message and never acknowledges it.
	sub := dialRaw(t, tb.Addr, codec.V5)
	cp := codec.Connect{ClientID: []byte("rm-sub"), CleanStart: true, KeepAlive: 60}
	cp.Props.Set(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = 1
	sub.connect(&cp)
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("rm/t"), QoS: 1}}}
	sub.send(s.Append(nil, codec.V5))
	sub.read(5 * time.Second) // SUBACK

	pub := dialRaw(t, tb.Addr, codec.V5)
	pub.connect(&codec.Connect{ClientID: []byte("rm-pub"), CleanStart: true, KeepAlive: 60})
	for i := 1; i <= 40; i++ {
		p := codec.Publish{Topic: []byte("rm/t"), QoS: 1, PacketID: uint16(i), Payload: []byte("x")}
		if _, err := pub.c.Write(p.Append(nil, codec.V5)); err != nil {
			break
		}
	}
	if err := awaitDisconnect(pub.tryRead, codec.ReceiveMaximumExceeded); err != nil {
		t.Fatal(err)
	}
}

// 21.4: what all sessions hold in QoS 1/2 queues is bounded broker-wide
// (--max-queued-bytes-total) as well as per session: past it a message is
// not queued, the v5 publisher is told 0x97 and the drop is counted.
func TestSecurity_QueuedBytesTotal(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Loops: 1, MaxQueuedBytesTotal: 8 << 10})
	for _, id := range []string{"qb-1", "qb-2"} {
		c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: id, CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(600)}})
		c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "qb/t", QoS: 1}}})
		_ = c.Disconnect(&paho.Disconnect{})
	}
	v5Wait(t, "both sessions offline", func() bool { return tb.B.Stats().Connected == 0 })
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "qb-pub", CleanStart: true})
	payload := make([]byte, 1000)
	var refused int
	for i := 0; i < 8; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
		r, _ := pub.Publish(ctx, &paho.Publish{Topic: "qb/t", QoS: 1, Payload: payload})
		cancel()
		if r == nil {
			t.Fatal("no PUBACK")
		}
		if r.ReasonCode == 0x97 {
			refused++
		}
	}
	// 8 KiB holds 8 of the 16 copies (one per session and message).
	if refused == 0 {
		t.Fatal("no PUBACK 0x97 past --max-queued-bytes-total")
	}
	v5Wait(t, "the drops counted", func() bool { return tb.B.Stats().Dropped["broker_queue_bytes_full"] == 8 })
	if qb := tb.B.Stats().QueuedBytes; qb > 8<<10 {
		t.Fatalf("%d bytes queued, over the 8 KiB budget", qb)
	}
}

// dialRawFrom is dialRaw from a chosen loopback source address, so one
// test can be many clients' addresses (127.0.0.0/8 is all loopback).
func dialRawFrom(t testing.TB, addr, from string, v codec.Version) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, v: v}
}

func connectUser(id, user, pass string) *codec.Connect {
	p := &codec.Connect{ClientID: []byte(id), CleanStart: true, KeepAlive: 60}
	if user != "" {
		p.UsernameFlag, p.Username = true, []byte(user)
		p.PasswordFlag, p.Password = true, []byte(pass)
	}
	return p
}

// 21.6: anyone can name a client id, so failures naming it from many
// addresses must not lock the real device out: anonymous refusals are not
// counted against the id, and a CONNECT whose credentials verify is never
// refused by a client-id ban.
func TestSecurity_ClientIDBanNeverRefusesValidCredentials(t *testing.T) {
	t.Parallel()
	az := broker.AuthenticatorFunc(func(r *broker.AuthRequest) broker.AuthResult {
		if r.Username == "alice" && string(r.Password) == "right" {
			return broker.AuthResult{Code: codec.Success}
		}
		return broker.AuthResult{Code: codec.BadUserNameOrPassword}
	})
	tb := start(t, broker.Options{Authenticator: az, DenyAnonymous: true, BanThreshold: 3, BanWindow: time.Minute, BanDuration: time.Minute})
	for i := 0; i < 10; i++ {
		from := fmt.Sprintf("127.0.1.%d", i+1)
		r := dialRawFrom(t, tb.Addr, from, codec.V5)
		user := "" // anonymous from five addresses, wrong passwords from five more
		if i >= 5 {
			user = "mallory"
		}
		if a := r.connect(connectUser("alice-phone", user, "guess")); a.Code == 0 {
			t.Fatalf("attempt %d accepted", i)
		}
	}
	// The device, from its own address, with its password.
	dev := dialRawFrom(t, tb.Addr, "127.0.1.100", codec.V5)
	if a := dev.connect(connectUser("alice-phone", "alice", "right")); a.Code != 0 {
		t.Fatalf("the real device was refused with %#x after others' failures named its id", a.Code)
	}
	if st := tb.B.Stats().Auth; st.BansClientID != 1 {
		t.Fatalf("client-id bans %d, want 1 (from the five wrong passwords only)", st.BansClientID)
	}
}

// heldAuth holds every verdict until the test releases it.
type heldAuth struct {
	mu   sync.Mutex
	reqs []*broker.AuthRequest
	done []func(broker.AuthResult)
}

func (h *heldAuth) Authenticate(r *broker.AuthRequest, done func(broker.AuthResult)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r)
	h.done = append(h.done, done)
}

func (h *heldAuth) n() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.done) }

// 21.7: the ban threshold holds against a burst. The address's failures
// that land first ban it, and a correct guess of the same burst landing
// after them is refused (0x8A); authentications in progress per address
// are bounded (--max-pending-auth-per-ip, 0x89 beyond).
func TestSecurity_BanHoldsAgainstBurst(t *testing.T) {
	t.Parallel()
	h := &heldAuth{}
	tb := start(t, broker.Options{Loops: 1, Authenticator: h, BanThreshold: 3, BanWindow: time.Minute, BanDuration: time.Minute, MaxPendingAuthPerIP: 6})
	const from = "127.0.2.1"
	conns := make([]*rawConn, 7)
	for i := range conns {
		conns[i] = dialRawFrom(t, tb.Addr, from, codec.V5)
		p := connectUser(fmt.Sprintf("burst-%d", i), "alice", fmt.Sprintf("guess-%d", i))
		p.Version, p.ProtocolName = codec.V5, []byte("MQTT")
		conns[i].send(p.Append(nil))
	}
	// The seventh is over the bound: refused at once.
	h7, body, err := conns[6].tryRead(5 * time.Second)
	var ack codec.Connack
	if err != nil || h7.Type != codec.CONNACK || ack.Decode(h7, body, codec.V5) != nil || ack.Code != byte(codec.ServerBusy) {
		t.Fatalf("seventh CONNECT of the burst: %v %+v, want CONNACK 0x89", err, ack)
	}
	v5Wait(t, "six verdicts pending", func() bool { return h.n() == 6 })
	// Five wrong guesses land first (three ban the address), then the
	// right one.
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	for i := 0; i < 5; i++ {
		done[i](broker.AuthResult{Code: codec.BadUserNameOrPassword})
	}
	done[5](broker.AuthResult{Code: codec.Success})
	hd, body := conns[5].read(5 * time.Second)
	if hd.Type != codec.CONNACK || ack.Decode(hd, body, codec.V5) != nil || ack.Code != byte(codec.Banned) {
		t.Fatalf("correct guess landing after the ban: type %d code %#x, want CONNACK 0x8A", hd.Type, ack.Code)
	}
}

// 21.8: a session belongs to the identity that created it. Another user
// naming its client id is refused (0x87) and changes nothing: the owner's
// connection stays, its will is not published, and what is queued for it
// while offline is still delivered when it comes back.
func TestSecurity_SessionBelongsToItsUser(t *testing.T) {
	t.Parallel()
	az := broker.AuthenticatorFunc(func(r *broker.AuthRequest) broker.AuthResult {
		if (r.Username == "alice" || r.Username == "bob") && string(r.Password) == r.Username+"-pw" {
			return broker.AuthResult{Code: codec.Success}
		}
		return broker.AuthResult{Code: codec.BadUserNameOrPassword}
	})
	tb := start(t, broker.Options{Authenticator: az})
	as := func(user string, clean bool) *paho.Connect {
		return &paho.Connect{ClientID: "dev-1", CleanStart: clean, Username: user, UsernameFlag: true, Password: []byte(user + "-pw"), PasswordFlag: true,
			Properties:  &paho.ConnectProperties{SessionExpiryInterval: v5U32(600)},
			WillMessage: &paho.WillMessage{Topic: "wills/dev-1", Payload: []byte("gone")}}
	}
	watch, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "watcher", CleanStart: true, Username: "bob", UsernameFlag: true, Password: []byte("bob-pw"), PasswordFlag: true})
	watch.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wills/#"}}})

	alice, _ := v5Connect(t, tb.Addr, as("alice", true))
	alice.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "dev-1/cmd", QoS: 1}}})
	for _, clean := range []bool{false, true} {
		if _, ack, err := v5TryConnect(t, tb.Addr, as("bob", clean)); err == nil || ack == nil || ack.ReasonCode != 0x87 {
			t.Fatalf("bob taking alice's session (clean %v): %v %+v, want CONNACK 0x87", clean, err, ack)
		}
	}
	select {
	case d := <-alice.disc:
		t.Fatalf("alice was disconnected (%#x) by bob's CONNECT", d.ReasonCode)
	case p := <-watch.msgs:
		t.Fatalf("alice's will was published: %s", p.Topic)
	case <-time.After(v5Quiet):
	}

	// Offline with a message queued: bob's clean start must not discard it.
	_ = alice.Disconnect(&paho.Disconnect{ReasonCode: 0})
	v5Wait(t, "alice offline", func() bool { return tb.B.Stats().Connected == 1 })
	watch.publish(t, &paho.Publish{Topic: "dev-1/cmd", QoS: 1, Payload: []byte("for alice")})
	if _, ack, err := v5TryConnect(t, tb.Addr, as("bob", true)); err == nil || ack == nil || ack.ReasonCode != 0x87 {
		t.Fatalf("bob resuming alice's offline session: %v %+v, want CONNACK 0x87", err, ack)
	}
	alice, ack := v5Connect(t, tb.Addr, as("alice", false))
	if !ack.SessionPresent {
		t.Fatal("alice's session is gone")
	}
	if p := alice.recv(t); string(p.Payload) != "for alice" {
		t.Fatalf("alice got %q", p.Payload)
	}
}

// 21.16: no client may publish to $SYS, with or without an ACL file: a
// will on a $SYS topic is refused at CONNECT (0x87), as a PUBLISH there
// is dropped.
func TestSecurity_WillOnSysRefused(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	_, ack, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "sys-will", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "$SYS/broker/version", Payload: []byte("pwned"), Retain: true}})
	if err == nil || ack == nil || ack.ReasonCode != 0x87 {
		t.Fatalf("will on $SYS: %v %+v, want CONNACK 0x87", err, ack)
	}
}

// 21.12: user properties are encoded once per message and shared by every
// delivery (each subscriber still receives all of them, in order), and
// their count is bounded (--max-user-properties): past it a QoS 1 PUBLISH
// is answered 0x83 and not delivered.
func TestSecurity_UserPropertiesSharedAndBounded(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxUserProperties: 100})
	var subs []*v5Paho
	for i := 0; i < 3; i++ {
		c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: fmt.Sprintf("up-sub-%d", i), CleanStart: true})
		c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "up/t", QoS: 1}}})
		subs = append(subs, c)
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "up-pub", CleanStart: true})
	props := func(n int) *paho.PublishProperties {
		pp := &paho.PublishProperties{ContentType: "text/plain"}
		for i := 0; i < n; i++ {
			pp.User = append(pp.User, paho.UserProperty{Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i)})
		}
		return pp
	}
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if r, _ := pub.Publish(ctx, &paho.Publish{Topic: "up/t", QoS: 1, Payload: []byte("too many"), Properties: props(101)}); r == nil || r.ReasonCode != 0x83 {
		t.Fatalf("101 user properties: %+v, want PUBACK 0x83", r)
	}
	pub.publish(t, &paho.Publish{Topic: "up/t", QoS: 1, Payload: []byte("ok"), Properties: props(100)})
	for i, c := range subs {
		p := c.recv(t)
		if string(p.Payload) != "ok" || p.Properties.ContentType != "text/plain" || len(p.Properties.User) != 100 {
			t.Fatalf("subscriber %d: %q with %d user properties", i, p.Payload, len(p.Properties.User))
		}
		for j, u := range p.Properties.User {
			if u.Key != fmt.Sprintf("k%d", j) || u.Value != fmt.Sprintf("v%d", j) {
				t.Fatalf("subscriber %d: user property %d is %s=%s", i, j, u.Key, u.Value)
			}
		}
	}
	v5Wait(t, "the refusal counted", func() bool { return tb.B.Stats().Dropped["user_properties"] == 1 })
}

// 21.14: the retained index, the sessions and one session's filters are
// bounded. A message for a new retained topic past the bound is delivered
// but not retained (PUBACK 0x97), while replacing a retained topic still
// works; a CONNECT that needs a new session past --max-sessions is refused
// 0x97; a filter past --max-subscription-bytes gets SUBACK 0x97.
func TestSecurity_StateBounded(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Loops: 1, MaxRetainedMessages: 2, MaxSessions: 3, MaxSubscriptionBytes: 16})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sb-pub", CleanStart: true})
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sb-sub", CleanStart: true})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, _ := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "r/#", QoS: 1}, {Topic: "a/very/long/filter"}}})
	if ack == nil || !bytes.Equal(ack.Reasons, []byte{1, 0x97}) {
		t.Fatalf("SUBACK %+v, want reasons [1 0x97] (16 bytes of filters)", ack)
	}
	for i, want := range []byte{0, 0, 0x97, 0} {
		topic := fmt.Sprintf("r/%d", i)
		if i == 3 {
			topic = "r/0" // a replacement
		}
		r, _ := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("x")})
		if r == nil || r.ReasonCode != want {
			t.Fatalf("retained publish %d to %s: %+v, want PUBACK %#x", i, topic, r, want)
		}
		if p := sub.recv(t); p.Topic != topic {
			t.Fatalf("delivered %s, want %s: a message not retained is still delivered", p.Topic, topic)
		}
	}
	if st := tb.B.Stats(); st.Retained != 2 {
		t.Fatalf("%d retained, want 2", st.Retained)
	}
	// Two sessions exist; one more fits, the next does not.
	v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sb-3", CleanStart: true})
	if _, a, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "sb-4", CleanStart: true}); err == nil || a == nil || a.ReasonCode != 0x97 {
		t.Fatalf("fourth session: %v %+v, want CONNACK 0x97", err, a)
	}
	r3 := dialRaw(t, tb.Addr, codec.V311)
	if a := r3.connect(&codec.Connect{ClientID: []byte("sb-5"), CleanStart: true, KeepAlive: 60}); a.Code != codec.ConnRefusedServerUnavailable {
		t.Fatalf("fourth session (3.1.1): CONNACK %#x, want 0x03 server unavailable", a.Code)
	}
}

// 21.18: --topic-alias-maximum 0 and --max-session-expiry 0 mean what they
// say (no inbound alias; every session ends with its connection) instead
// of falling back to their defaults.
func TestSecurity_ZeroMeansZero(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{NoTopicAliases: true, NoSessionExpiry: true})
	_, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "zero", CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(600)}})
	if ack.Properties == nil || ack.Properties.SessionExpiryInterval == nil || *ack.Properties.SessionExpiryInterval != 0 {
		t.Fatalf("CONNACK Session Expiry Interval %+v, want 0", ack.Properties)
	}
	if ack.Properties.TopicAliasMaximum != nil && *ack.Properties.TopicAliasMaximum != 0 {
		t.Fatalf("CONNACK Topic Alias Maximum %d, want 0 or absent", *ack.Properties.TopicAliasMaximum)
	}
	r := dialRaw(t, tb.Addr, codec.V5)
	r.connect(&codec.Connect{ClientID: []byte("zero-alias"), CleanStart: true, KeepAlive: 60})
	p := codec.Publish{Topic: []byte("z/t"), Payload: []byte("x")}
	p.Props.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = 1
	r.send(p.Append(nil, codec.V5))
	h, body := r.read(5 * time.Second)
	var d codec.Disconnect
	if h.Type != codec.DISCONNECT || d.Decode(h, body, codec.V5) != nil || d.Code != codec.TopicAliasInvalid {
		t.Fatalf("PUBLISH with a topic alias: type %d code %#x, want DISCONNECT 0x94", h.Type, d.Code)
	}
}
