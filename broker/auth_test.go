package broker

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// frames splits what a fakeConn received into packets.
func frames(tb testing.TB, out []byte) (hs []codec.FixedHeader, bodies [][]byte) {
	tb.Helper()
	for len(out) > 0 {
		h, err := codec.Frame(out, 0)
		if err != nil {
			tb.Fatalf("output does not frame: %x: %v", out, err)
		}
		hs = append(hs, h)
		bodies = append(bodies, out[h.HeaderLen:h.Len()])
		out = out[h.Len():]
	}
	return hs, bodies
}

func connack(tb testing.TB, fc *fakeConn, v codec.Version) *codec.Connack {
	tb.Helper()
	hs, bodies := frames(tb, fc.out)
	if len(hs) == 0 || hs[0].Type != codec.CONNACK {
		tb.Fatalf("no CONNACK in %x", fc.out)
	}
	var a codec.Connack
	if err := a.Decode(hs[0], bodies[0], v); err != nil {
		tb.Fatal(err)
	}
	return &a
}

// authBroker returns a one-loop broker with az; the loop runs posted work
// on the caller's goroutine. now is the broker's clock.
func authBroker(tb testing.TB, o Options, now *atomic.Int64) *Broker {
	tb.Helper()
	o.Loops = 1
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if now != nil {
		now.Store(time.Now().UnixNano())
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	}
	b := New(o)
	tb.Cleanup(b.Shutdown)
	for _, l := range b.loops {
		l.Bind(func(fn func()) error { fn(); return nil })
	}
	return b
}

func connectRaw(id, user, pass string, v codec.Version) []byte {
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: v, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
	if user != "" {
		p.UsernameFlag, p.Username = true, []byte(user)
		p.PasswordFlag, p.Password = true, []byte(pass)
	}
	return p.Append(nil)
}

// Wrong credentials: CONNACK 0x86 (v5) / 0x04 (3.1.1), then close
// [MQTT-3.2.2-6/-7]; the right ones connect.
func TestAuthInlineVerdict(t *testing.T) {
	az := AuthenticatorFunc(func(r *AuthRequest) AuthResult {
		if r.Username == "alice" && string(r.Password) == "pw" {
			return AuthResult{Code: codec.Success}
		}
		return AuthResult{Code: codec.BadUserNameOrPassword}
	})
	b := authBroker(t, Options{Authenticator: az, DenyAnonymous: true}, nil)
	f := func(v codec.Version, user, pass string, want byte, closed bool) {
		t.Helper()
		fc := &fakeConn{keep: true}
		c := b.loops[0].NewClient(fc)
		raw := connectRaw("c1", user, pass, v)
		c.Feed(raw)
		if got := connack(t, fc, v).Code; got != want || fc.closed != closed {
			t.Fatalf("v%d %s/%s: CONNACK %#x closed %v; want %#x closed %v", v, user, pass, got, fc.closed, want, closed)
		}
		if !closed {
			c.Closed()
		}
	}
	f(codec.V5, "alice", "pw", 0, false)
	f(codec.V5, "alice", "bad", byte(codec.BadUserNameOrPassword), true)
	f(codec.V311, "alice", "bad", codec.ConnRefusedBadUserNameOrPassword, true)
	f(codec.V5, "", "", byte(codec.NotAuthorized), true) // anonymous off
	f(codec.V311, "", "", codec.ConnRefusedNotAuthorized, true)
	if st := b.Stats(); st.Auth.Failed != 2 || st.Auth.AnonymousRefused != 2 || st.Auth.Succeeded != 1 {
		t.Fatalf("auth stats %+v", st.Auth)
	}
}

// An authenticator that answers later: the loop is not blocked, nothing
// after the CONNECT is processed until the verdict, the verdict comes
// back through the inbox, and the transport is asked to feed the
// pipelined packets (Wake).
func TestAuthAsyncVerdict(t *testing.T) {
	var pending func(AuthResult)
	var seen *AuthRequest
	az := authFunc(func(r *AuthRequest, done func(AuthResult)) { seen, pending = r, done })
	b := authBroker(t, Options{Authenticator: az}, nil)
	fc := &fakeConn{keep: true}
	c := b.loops[0].NewClient(fc)
	conn := connectRaw("c1", "alice", "pw", codec.V5)
	sub := (&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("a/b")}}}).Append(nil, codec.V5)
	in := append(append([]byte(nil), conn...), sub...)
	n, res := c.Feed(in)
	if n != len(conn) || res != FeedContinue || len(fc.out) != 0 {
		t.Fatalf("while pending: consumed %d of %d (want the CONNECT only), result %d, wrote %x", n, len(in), res, fc.out)
	}
	// The request holds copies: scribbling over the read buffer does
	// not change it.
	for i := range in {
		in[i] = 0
	}
	if seen.Username != "alice" || string(seen.Password) != "pw" || seen.ClientID != "c1" || seen.Remote != "192.0.2.1:1883" {
		t.Fatalf("request %+v", seen)
	}
	if n, _ := c.Feed(sub); n != 0 {
		t.Fatalf("consumed %d bytes while authentication is pending", n)
	}
	done := make(chan struct{})
	go func() { pending(AuthResult{Code: codec.Success}); close(done) }()
	<-done
	if a := connack(t, fc, codec.V5); a.Code != 0 {
		t.Fatalf("CONNACK %#x", a.Code)
	}
	if fc.wakes != 1 {
		t.Fatalf("Wake called %d times; want 1", fc.wakes)
	}
	if n, res := c.Feed(sub); n != len(sub) || res != FeedContinue {
		t.Fatalf("after the verdict: consumed %d of %d, %d", n, len(sub), res)
	}
	if hs, _ := frames(t, fc.out); len(hs) != 2 || hs[1].Type != codec.SUBACK {
		t.Fatalf("want CONNACK, SUBACK; got %v", hs)
	}
	pending(AuthResult{Code: codec.NotAuthorized}) // a second call is ignored
	if fc.closed {
		t.Fatal("a second verdict closed the connection")
	}
}

type authFunc func(*AuthRequest, func(AuthResult))

func (f authFunc) Authenticate(r *AuthRequest, done func(AuthResult)) { f(r, done) }

// No verdict within AuthTimeout: CONNACK 0x88 (3.1.1: 0x03) and close; a
// verdict arriving later changes nothing.
func TestAuthTimeout(t *testing.T) {
	var now atomic.Int64
	var pending []func(AuthResult)
	az := authFunc(func(_ *AuthRequest, done func(AuthResult)) { pending = append(pending, done) })
	b := authBroker(t, Options{Authenticator: az, AuthTimeout: time.Second}, &now)
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		fc := &fakeConn{keep: true}
		c := b.loops[0].NewClient(fc)
		c.Feed(connectRaw("c1", "alice", "pw", v))
		now.Add(int64(2 * time.Second))
		b.loops[0].Tick()
		want := byte(codec.ServerUnavailable)
		if v == codec.V311 {
			want = codec.ConnRefusedServerUnavailable
		}
		if a := connack(t, fc, v); a.Code != want || !fc.closed {
			t.Fatalf("v%d: CONNACK %#x closed %v; want %#x and closed", v, a.Code, fc.closed, want)
		}
		c.Closed()
		before := len(fc.out)
		pending[len(pending)-1](AuthResult{Code: codec.Success})
		if len(fc.out) != before {
			t.Fatalf("late verdict wrote %x", fc.out[before:])
		}
	}
	if st := b.Stats(); st.Auth.TimedOut != 2 {
		t.Fatalf("timeouts %d", st.Auth.TimedOut)
	}
}

// v5 enhanced authentication [MQTT-4.12.0-1..-5]: CONNECT with a method,
// AUTH 0x18 both ways, CONNACK with the method and the final data.
func TestEnhancedAuth(t *testing.T) {
	az := AuthenticatorFunc(func(r *AuthRequest) AuthResult {
		switch {
		case r.Method != "TEST":
			return AuthResult{Code: codec.BadAuthenticationMethod}
		case r.Step == 0 && string(r.Data) == "hello":
			return AuthResult{Code: codec.ContinueAuthentication, Data: []byte("challenge"), State: "s1"}
		case r.Step == 1 && string(r.Data) == "response" && r.State == "s1":
			return AuthResult{Code: codec.Success, Data: []byte("welcome"), Username: "proved"}
		}
		return AuthResult{Code: codec.NotAuthorized}
	})
	b := authBroker(t, Options{Authenticator: az}, nil)
	connect := func(method string) []byte {
		p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: true, ClientID: []byte("e1")}
		p.Props.Set(codec.PropAuthMethod)
		p.Props.AuthMethod = []byte(method)
		p.Props.Set(codec.PropAuthData)
		p.Props.AuthData = []byte("hello")
		return p.Append(nil)
	}
	auth := func(method, data string) []byte {
		a := codec.Auth{Code: codec.ContinueAuthentication}
		a.Props.Set(codec.PropAuthMethod)
		a.Props.AuthMethod = []byte(method)
		a.Props.Set(codec.PropAuthData)
		a.Props.AuthData = []byte(data)
		return a.Append(nil)
	}
	fc := &fakeConn{keep: true}
	c := b.loops[0].NewClient(fc)
	c.Feed(connect("TEST"))
	hs, bodies := frames(t, fc.out)
	if len(hs) != 1 || hs[0].Type != codec.AUTH {
		t.Fatalf("want AUTH, got %v", hs)
	}
	var a codec.Auth
	if err := a.Decode(hs[0], bodies[0], codec.V5); err != nil || a.Code != codec.ContinueAuthentication || string(a.Props.AuthMethod) != "TEST" || string(a.Props.AuthData) != "challenge" {
		t.Fatalf("AUTH %+v %v", a, err)
	}
	fc.out = fc.out[:0]
	c.Feed(auth("TEST", "response"))
	ack := connack(t, fc, codec.V5)
	if ack.Code != 0 || string(ack.Props.AuthMethod) != "TEST" || string(ack.Props.AuthData) != "welcome" {
		t.Fatalf("CONNACK %+v", ack)
	}
	if c.s == nil || c.auth == nil || c.auth.user != "proved" {
		t.Fatalf("identity not taken from the verdict")
	}

	// Re-authentication [MQTT-4.12.1-1]: AUTH 0x19 starts the same
	// exchange while connected; success is AUTH 0x00 with the final data.
	reauth := func(code codec.ReasonCode, method, data string) []byte {
		a := codec.Auth{Code: code}
		a.Props.Set(codec.PropAuthMethod)
		a.Props.AuthMethod = []byte(method)
		a.Props.Set(codec.PropAuthData)
		a.Props.AuthData = []byte(data)
		return a.Append(nil)
	}
	lastAuth := func() *codec.Auth {
		t.Helper()
		hs, bodies := frames(t, fc.out)
		if len(hs) == 0 || hs[len(hs)-1].Type != codec.AUTH {
			t.Fatalf("want AUTH, got %v", hs)
		}
		var a codec.Auth
		if err := a.Decode(hs[len(hs)-1], bodies[len(hs)-1], codec.V5); err != nil {
			t.Fatal(err)
		}
		return &a
	}
	fc.out = fc.out[:0]
	c.Feed(reauth(codec.ReAuthenticate, "TEST", "hello"))
	if a := lastAuth(); a.Code != codec.ContinueAuthentication || string(a.Props.AuthData) != "challenge" {
		t.Fatalf("re-auth step 0: %+v", a)
	}
	c.Feed(codec.AppendPingreq(nil)) // the connection keeps working meanwhile
	c.Feed(reauth(codec.ContinueAuthentication, "TEST", "response"))
	if a := lastAuth(); a.Code != codec.Success || string(a.Props.AuthData) != "welcome" || fc.closed {
		t.Fatalf("re-auth end: %+v closed %v", a, fc.closed)
	}
	fc.out = fc.out[:0]
	c.Feed(reauth(codec.ReAuthenticate, "TEST", "wrong"))
	hs, bodies = frames(t, fc.out)
	var d codec.Disconnect
	if len(hs) != 1 || hs[0].Type != codec.DISCONNECT || d.Decode(hs[0], bodies[0], codec.V5) != nil || d.Code != codec.NotAuthorized || !fc.closed {
		t.Fatalf("failed re-auth: %v %+v closed %v", hs, d, fc.closed)
	}
	// [MQTT-4.12.0-7] AUTH from a client that connected without a method.
	plain, pfc := connectClient(t, b, "plain", codec.V5, true)
	pfc.out = pfc.out[:0]
	if _, res := plain.Feed(reauth(codec.ReAuthenticate, "TEST", "x")); res != FeedClose {
		t.Fatal("AUTH without a method in CONNECT not refused")
	}

	// [MQTT-4.12.0-5] A different method in AUTH is a protocol error.
	fc = &fakeConn{keep: true}
	c = b.loops[0].NewClient(fc)
	c.Feed(connect("TEST"))
	if _, res := c.Feed(auth("OTHER", "response")); res != FeedClose || !fc.closed {
		t.Fatal("AUTH with another method not refused")
	}
	// [MQTT-3.1.2-30] Nothing but AUTH or DISCONNECT before CONNACK.
	fc = &fakeConn{keep: true}
	c = b.loops[0].NewClient(fc)
	c.Feed(connect("TEST"))
	if _, res := c.Feed(codec.AppendPingreq(nil)); res != FeedClose {
		t.Fatal("PINGREQ during enhanced authentication not refused")
	}
	// An unknown method: CONNACK 0x8C.
	fc = &fakeConn{keep: true}
	c = b.loops[0].NewClient(fc)
	c.Feed(connect("SCRAM-SHA-1"))
	if a := connack(t, fc, codec.V5); a.Code != byte(codec.BadAuthenticationMethod) || !fc.closed {
		t.Fatalf("CONNACK %#x", a.Code)
	}
}

// Bans: threshold failures from one source within the window refuse it
// at accept (Admit) and its client id at CONNECT (0x8A), until the ban
// expires.
func TestBans(t *testing.T) {
	var now atomic.Int64
	az := AuthenticatorFunc(func(r *AuthRequest) AuthResult {
		if string(r.Password) == "good" {
			return AuthResult{Code: codec.Success}
		}
		return AuthResult{Code: codec.BadUserNameOrPassword}
	})
	b := authBroker(t, Options{Authenticator: az, BanThreshold: 3, BanWindow: time.Minute, BanDuration: 10 * time.Second}, &now)
	addr := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 3; i++ {
		if _, err := b.Admit(addr); err != nil {
			t.Fatalf("refused after %d failures: %v", i, err)
		}
		fc := &fakeConn{keep: true}
		b.loops[0].NewClient(fc).Feed(connectRaw("victim", "u", "bad", codec.V5))
	}
	if _, err := b.Admit(addr); err != ErrBanned {
		t.Fatalf("banned source: %v", err)
	}
	if _, err := b.Admit(netip.MustParseAddr("::ffff:192.0.2.1")); err != ErrBanned {
		t.Fatalf("banned source as an IPv4-mapped address: %v", err)
	}
	if _, err := b.Admit(netip.MustParseAddr("192.0.2.2")); err != nil {
		t.Fatal("another source refused")
	}
	// The client id is banned too, from any address, but only for what
	// does not verify (issue 21.6: anyone can name an id): a wrong
	// password is refused as banned, the right one is let in. The
	// address is refused at CONNECT if it was accepted before the ban.
	for _, tc := range []struct {
		remote, pass string
		want         codec.ReasonCode
	}{{"198.51.100.7:1", "bad", codec.Banned}, {"198.51.100.7:1", "good", codec.Success}, {"192.0.2.1:1", "good", codec.Banned}} {
		fc := &fakeConn{keep: true, remote: tc.remote}
		b.loops[0].NewClient(fc).Feed(connectRaw("victim", "u", tc.pass, codec.V5))
		if a := connack(t, fc, codec.V5); a.Code != byte(tc.want) {
			t.Fatalf("from %s with password %q: CONNACK %#x; want %#x", tc.remote, tc.pass, a.Code, byte(tc.want))
		}
	}
	now.Add(int64(11 * time.Second))
	if _, err := b.Admit(addr); err != nil {
		t.Fatal("still refused after the ban expired")
	}
	if st := b.Stats(); st.Auth.BansIP != 1 || st.Auth.BansClientID != 1 || st.Auth.RefusedBannedIP != 3 || st.Auth.RefusedBannedClientID != 1 {
		t.Fatalf("ban stats %+v", st.Auth)
	}
}

// testACL denies what its maps say; gen is bumped to simulate a reload.
type testACL struct {
	denyWrite, denyRead, denySub map[string]bool
	gen                          atomic.Uint64
	calls                        int
}

func (z *testACL) Allow(_ *Identity, topic []byte, acc Access) bool {
	z.calls++
	switch acc {
	case AccessWrite:
		return !z.denyWrite[string(topic)]
	case AccessRead:
		return !z.denyRead[string(topic)]
	}
	return !z.denySub[string(topic)]
}
func (z *testACL) Generation() uint64 { return z.gen.Load() }

// ACL: a denied QoS 1 PUBLISH gets PUBACK 0x87 in v5 and a plain PUBACK
// in 3.1.1, and is not delivered; a denied SUBSCRIBE gets 0x87 / 0x80; a
// message the subscriber may not read is not delivered; $SYS cannot be
// published to; the cache is dropped when the generation changes.
func TestACLChecks(t *testing.T) {
	z := &testACL{denyWrite: map[string]bool{"w/no": true}, denyRead: map[string]bool{"r/no": true}, denySub: map[string]bool{"s/no": true}}
	b := authBroker(t, Options{Authorizer: z}, nil)
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		sub, sfc := connectClient(t, b, "sub", v, true)
		subscribe(t, sub, v, "#", 1)
		subscribe(t, sub, v, "$SYS/#", 1)
		sfc.out = sfc.out[:0]
		s := codec.Subscribe{PacketID: 2, Subs: []codec.Subscription{{Filter: []byte("s/no"), QoS: 1}, {Filter: []byte("s/yes"), QoS: 1}}}
		sub.Feed(s.Append(nil, v))
		hs, bodies := frames(t, sfc.out)
		var sa codec.Suback
		if err := sa.Decode(hs[0], bodies[0], v); err != nil {
			t.Fatal(err)
		}
		wantDenied := codec.NotAuthorized
		if v != codec.V5 {
			wantDenied = codec.ReasonCode(codec.SubackFailureV3)
		}
		if len(sa.Codes) != 2 || sa.Codes[0] != wantDenied || sa.Codes[1] != 1 {
			t.Fatalf("v%d SUBACK codes %v", v, sa.Codes)
		}
		sfc.out = sfc.out[:0]
		pub, pfc := connectClient(t, b, "pub", v, true)
		pfc.out = pfc.out[:0]
		for i, topic := range []string{"w/no", "$SYS/x", "r/no", "ok"} {
			p := codec.Publish{Topic: []byte(topic), Payload: []byte(topic), QoS: 1, PacketID: uint16(i + 1)}
			pub.Feed(p.Append(nil, v))
		}
		hs, bodies = frames(t, pfc.out)
		for i, h := range hs {
			var a codec.Ack
			if err := a.Decode(h, bodies[i], v); err != nil {
				t.Fatal(err)
			}
			want := codec.Success
			if v == codec.V5 && i < 2 {
				want = codec.NotAuthorized
			}
			if a.Code != want {
				t.Fatalf("v%d PUBACK %d: %#x; want %#x", v, a.PacketID, a.Code, want)
			}
		}
		hs, bodies = frames(t, sfc.out)
		var got []string
		for i, h := range hs {
			var p codec.Publish
			if err := p.Decode(h, bodies[i], v); err == nil {
				got = append(got, string(p.Topic))
			}
		}
		if len(got) != 1 || got[0] != "ok" {
			t.Fatalf("v%d delivered %v; want [ok]", v, got)
		}
		sub.Closed()
		pub.Closed()
	}
	b.loops[0].Tick() // publishes the loop's counters
	st := b.Stats()
	if st.ACLDenied["publish"] != 4 || st.ACLDenied["subscribe"] != 2 || st.ACLDenied["read"] != 2 {
		t.Fatalf("ACL counters %v", st.ACLDenied)
	}
	// The cache: a second identical PUBLISH does not ask again; a new
	// generation does.
	pub, _ := connectClient(t, b, "pub2", codec.V5, false)
	p := (&codec.Publish{Topic: []byte("w/no"), QoS: 0}).Append(nil, codec.V5)
	pub.Feed(p)
	calls := z.calls
	pub.Feed(p)
	if z.calls != calls {
		t.Fatal("cached verdict asked again")
	}
	z.gen.Add(1)
	pub.Feed(p)
	if z.calls != calls+1 {
		t.Fatal("verdict not asked again after a generation change")
	}
}

// TestPublishHotPathAllocsWithACL: with an Authorizer the publish path
// (write check on PUBLISH, read check at delivery) still allocates
// nothing once each topic's verdict is cached.
func TestPublishHotPathAllocsWithACL(t *testing.T) {
	z := &testACL{}
	b := authBroker(t, Options{Authorizer: z}, nil)
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		sub, _ := connectClient(t, b, "sub", v, false)
		subscribe(t, sub, v, "sensors/+/temp", 0)
		pub, _ := connectClient(t, b, "pub", v, false)
		raw := (&codec.Publish{Topic: []byte("sensors/42/temp"), Payload: make([]byte, 64)}).Append(nil, v)
		for i := 0; i < 100; i++ {
			pub.Feed(raw)
		}
		allocs := testing.AllocsPerRun(1000, func() { pub.Feed(raw) })
		if allocs != 0 {
			t.Fatalf("v%d: PUBLISH with ACL checks allocates %.1f times per message, want 0", v, allocs)
		}
		sub.Closed()
		pub.Closed()
	}
}

// A client that keeps sending while its authentication is pending is
// closed once more than a packet's worth waits unread.
func TestAuthPendingFlood(t *testing.T) {
	az := authFunc(func(*AuthRequest, func(AuthResult)) {})
	b := authBroker(t, Options{Authenticator: az, MaxPacketSize: 1024}, nil)
	fc := &fakeConn{keep: true}
	c := b.loops[0].NewClient(fc)
	conn := connectRaw("c1", "u", "p", codec.V5)
	c.Feed(conn)
	if _, res := c.Feed(make([]byte, 1024)); res != FeedContinue {
		t.Fatal("closed at the bound")
	}
	if _, res := c.Feed(make([]byte, 1025)); res != FeedClose || !fc.closed {
		t.Fatal("not closed past the bound")
	}
}

// A re-authentication whose verdict does not come within AuthTimeout ends
// the connection with DISCONNECT 0x87; a late verdict is ignored.
func TestReauthTimeout(t *testing.T) {
	var now atomic.Int64
	var pending func(AuthResult)
	az := authFunc(func(r *AuthRequest, done func(AuthResult)) {
		if r.Step == 0 && string(r.Data) == "first" {
			done(AuthResult{Code: codec.Success})
			return
		}
		pending = done // re-authentication: never answered in time
	})
	b := authBroker(t, Options{Authenticator: az, AuthTimeout: time.Second}, &now)
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: true, ClientID: []byte("r1"), KeepAlive: 600}
	p.Props.Set(codec.PropAuthMethod)
	p.Props.AuthMethod = []byte("M")
	p.Props.Set(codec.PropAuthData)
	p.Props.AuthData = []byte("first")
	fc := &fakeConn{keep: true}
	c := b.loops[0].NewClient(fc)
	c.Feed(p.Append(nil))
	if a := connack(t, fc, codec.V5); a.Code != 0 {
		t.Fatalf("CONNACK %#x", a.Code)
	}
	a := codec.Auth{Code: codec.ReAuthenticate}
	a.Props.Set(codec.PropAuthMethod)
	a.Props.AuthMethod = []byte("M")
	c.Feed(a.Append(nil))
	now.Add(int64(2 * time.Second))
	fc.out = fc.out[:0]
	b.loops[0].Tick()
	hs, bodies := frames(t, fc.out)
	var d codec.Disconnect
	if len(hs) != 1 || d.Decode(hs[0], bodies[0], codec.V5) != nil || d.Code != codec.NotAuthorized || !fc.closed {
		t.Fatalf("want DISCONNECT 0x87 and close, got %v %+v closed %v", hs, d, fc.closed)
	}
	c.Closed()
	pending(AuthResult{Code: codec.Success}) // late: ignored
}

// The ACL verdict cache holds no topic bytes (issue 21.17): 256 verdicts on
// 60 KB topics, which pinned 15 MB per session when topics were the keys,
// now cost a few KB.
func TestACLCacheKeepsNoTopics(t *testing.T) {
	z := &testACL{}
	b := authBroker(t, Options{Authorizer: z}, nil)
	pub, _ := connectClient(t, b, "pub", codec.V311, false)
	long := bytes.Repeat([]byte("a"), 60_000)
	var raws [][]byte
	for i := 0; i < 256; i++ {
		topic := append(append([]byte(nil), long...), fmt.Sprintf("/%d", i)...)
		p := codec.Publish{Topic: topic, Payload: []byte("x")}
		raws = append(raws, p.Append(nil, codec.V311))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, raw := range raws {
		pub.Feed(raw)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2<<20 {
		t.Fatalf("heap grew by %d bytes for 256 cached verdicts", grown)
	}
	if z.calls != 256 {
		t.Fatalf("%d Authorizer calls, want 256", z.calls)
	}
	runtime.KeepAlive(raws)
}
