package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// Authentication, ACLs and bans end to end: mosquitto_pub/sub (-u/-P),
// paho 3.1.1, paho.golang v5 and raw packets against a broker on
// loopback, and the real binary for SIGHUP reloads.

// authPasswordFile writes a password file for alice/secret and
// bob/hunter2 with the real mosquitto_passwd when it is installed (the
// Debian package mosquitto), else copies the one it wrote earlier
// (auth/testdata/mosquitto.passwd).
func authPasswordFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	if tool, err := exec.LookPath("mosquitto_passwd"); err == nil {
		for i, up := range [][2]string{{"alice", "secret"}, {"bob", "hunter2"}} {
			args := []string{"-b", path, up[0], up[1]}
			if i == 0 {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		return path
	}
	raw, err := os.ReadFile("../auth/testdata/mosquitto.passwd")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAuth runs a broker that checks passwords from path (anonymous
// access off) with extra options.
func startAuth(t *testing.T, path string, o broker.Options) *testBroker {
	t.Helper()
	pw, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	pa := auth.NewPasswordAuthenticator(pw, 2, 64)
	t.Cleanup(pa.Close)
	o.Authenticator = pa
	o.DenyAnonymous = true
	return start(t, o)
}

// mosqPubResult runs mosquitto_pub and returns its exit error and output.
func mosqPubResult(t *testing.T, tb *testBroker, args ...string) (string, error) {
	t.Helper()
	bin := mosqBin(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", mosqPort(tb)}, args...)...).CombinedOutput()
	return string(out), err
}

// TestAuth_MosquittoClients: mosquitto_pub with -u/-P against a password
// file written by mosquitto_passwd: the right password connects; a wrong
// one, an unknown user and no user at all are refused with the CONNACK
// codes mosquitto_pub reports (3.1.1 0x04/0x05, v5 0x86/0x87), and a
// subscriber with credentials receives what an authenticated publisher
// sends.
func TestAuth_MosquittoClients(t *testing.T) {
	mosqBin(t, "mosquitto_pub")
	mosqBin(t, "mosquitto_sub")
	t.Parallel()
	tb := startAuth(t, authPasswordFile(t), broker.Options{})
	sub := startMosqSub(t, tb, "-V", "mqttv311", "-u", "bob", "-P", "hunter2", "-C", "2", "-t", "auth/mosq")
	for _, v := range []string{"mqttv311", "mqttv5"} {
		if out, err := mosqPubResult(t, tb, "-V", v, "-u", "alice", "-P", "secret", "-t", "auth/mosq", "-m", v); err != nil {
			t.Fatalf("%s good password: %v\n%s", v, err, out)
		}
	}
	if got := sub.wait(t); fmt.Sprint(got) != "[0|0|auth/mosq|mqttv311 0|0|auth/mosq|mqttv5]" {
		t.Fatalf("subscriber printed %q", got)
	}
	f := func(v, want string, args ...string) {
		t.Helper()
		out, err := mosqPubResult(t, tb, append([]string{"-V", v, "-t", "auth/mosq", "-m", "x"}, args...)...)
		if err == nil || !strings.Contains(strings.ToLower(out), want) {
			t.Fatalf("%s %v: err %v, output %q; want a refusal saying %q", v, args, err, out, want)
		}
	}
	f("mqttv311", "bad user name or password", "-u", "alice", "-P", "wrong")
	f("mqttv311", "bad user name or password", "-u", "mallory", "-P", "secret")
	f("mqttv311", "not authorised")
	f("mqttv5", "bad user name or password", "-u", "alice", "-P", "wrong")
	f("mqttv5", "not authorized")
}

// TestAuth_Paho: paho 3.1.1 gets 0x04 for a bad password and 0x05 when
// anonymous; paho.golang v5 gets 0x86 and 0x87; good credentials connect.
func TestAuth_Paho(t *testing.T) {
	t.Parallel()
	tb := startAuth(t, authPasswordFile(t), broker.Options{})
	v3 := func(user, pass string) error {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("p3-" + user).SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait)
		if user != "" {
			o.SetUsername(user).SetPassword(pass)
		}
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(v3Wait) {
			t.Fatal("paho 3.1.1: no CONNACK")
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	if err := v3("alice", "secret"); err != nil {
		t.Fatalf("paho 3.1.1 good password: %v", err)
	}
	if err := v3("alice", "nope"); !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
		t.Fatalf("paho 3.1.1 bad password: %v", err)
	}
	if err := v3("", ""); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("paho 3.1.1 anonymous: %v", err)
	}
	v5 := func(user, pass string) byte {
		cp := &paho.Connect{ClientID: "p5-" + user, CleanStart: true, KeepAlive: 30}
		if user != "" {
			cp.UsernameFlag, cp.Username = true, user
			cp.PasswordFlag, cp.Password = true, []byte(pass)
		}
		_, ack, err := v5TryConnect(t, tb.Addr, cp)
		if ack == nil {
			t.Fatalf("paho v5 %q: no CONNACK: %v", user, err)
		}
		return ack.ReasonCode
	}
	if c := v5("bob", "hunter2"); c != 0 {
		t.Fatalf("paho v5 good password: %#x", c)
	}
	if c := v5("bob", "hunter3"); c != byte(codec.BadUserNameOrPassword) {
		t.Fatalf("paho v5 bad password: %#x", c)
	}
	if c := v5("nobody", "x"); c != byte(codec.BadUserNameOrPassword) {
		t.Fatalf("paho v5 unknown user: %#x", c)
	}
	if c := v5("", ""); c != byte(codec.NotAuthorized) {
		t.Fatalf("paho v5 anonymous: %#x", c)
	}
}

// TestAuth_AnonymousAllowed: with anonymous access on, a client without a
// user name is let in without the authenticator, while a client that
// gives credentials is still checked.
func TestAuth_AnonymousAllowed(t *testing.T) {
	t.Parallel()
	pw, err := auth.LoadPasswords(authPasswordFile(t))
	if err != nil {
		t.Fatal(err)
	}
	pa := auth.NewPasswordAuthenticator(pw, 1, 8)
	t.Cleanup(pa.Close)
	tb := start(t, broker.Options{Authenticator: pa})
	if _, ack, _ := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "anon", CleanStart: true}); ack == nil || ack.ReasonCode != 0 {
		t.Fatalf("anonymous refused: %+v", ack)
	}
	cp := &paho.Connect{ClientID: "withcreds", CleanStart: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("bad")}
	if _, ack, _ := v5TryConnect(t, tb.Addr, cp); ack == nil || ack.ReasonCode != byte(codec.BadUserNameOrPassword) {
		t.Fatalf("bad credentials with anonymous on: %+v", ack)
	}
}

const e2eACL = `# anonymous: nothing but its own device topics (pattern below)
user alice
topic readwrite alice/#
topic read public/#

user bob
topic write public/#
topic read alice/status
topic deny alice/status/private

pattern readwrite devices/%c/#
`

// TestACL_Clients: alice and bob under the ACL above, with paho v5, paho
// 3.1.1 and mosquitto_sub: SUBACK 0x87 (v5) / 0x80 (3.1.1) for a refused
// filter; PUBACK 0x87 (v5) for a refused QoS 1 PUBLISH, a plain PUBACK in
// 3.1.1 (acknowledged and dropped, as Mosquitto does); QoS 0 dropped
// silently; a wildcard subscription receives only what the reader may
// read; %c patterns; $SYS not publishable. Then the ACL is swapped (what
// SIGHUP does) and the same connections follow the new rules.
func TestACL_Clients(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(path, []byte(e2eACL), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	z := auth.NewACLAuthorizer(a)
	tb := startAuth(t, authPasswordFile(t), broker.Options{Authorizer: z})
	creds := func(id, user, pass string) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass)}
	}
	alice, _ := v5Connect(t, tb.Addr, creds("alice-1", "alice", "secret"))
	bob, _ := v5Connect(t, tb.Addr, creds("bob-1", "bob", "hunter2"))

	// paho returns the SUBACK with an error when a code is ≥ 0x80.
	subscribe := func(c *v5Paho, s *paho.Subscribe) *paho.Suback {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
		defer cancel()
		sa, err := c.Subscribe(ctx, s)
		if sa == nil {
			t.Fatalf("subscribe: %v", err)
		}
		return sa
	}
	sa := subscribe(alice, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alice/#", QoS: 1}, {Topic: "public/#", QoS: 1}, {Topic: "#", QoS: 1}}})
	if fmt.Sprint(sa.Reasons) != "[1 1 135]" {
		t.Fatalf("alice SUBACK %v; want [1 1 135] (0x87 for #)", sa.Reasons)
	}
	sb := subscribe(bob, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alice/status/#", QoS: 1}, {Topic: "alice/status", QoS: 1}, {Topic: "devices/bob-1/#", QoS: 1}}})
	if fmt.Sprint(sb.Reasons) != "[135 1 1]" {
		t.Fatalf("bob SUBACK %v; want [135 1 1]", sb.Reasons)
	}
	pub := func(c *v5Paho, topic string, qos byte) byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
		defer cancel()
		// paho returns an error with the response for a code ≥ 0x80.
		r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(topic)})
		if r == nil {
			if err != nil {
				t.Fatalf("publish %s: %v", topic, err)
			}
			return 0
		}
		return r.ReasonCode
	}
	if rc := pub(bob, "alice/secret", 1); rc != byte(codec.NotAuthorized) {
		t.Fatalf("bob → alice/secret: PUBACK %#x; want 0x87", rc)
	}
	if rc := pub(bob, "$SYS/broker/x", 1); rc != byte(codec.NotAuthorized) {
		t.Fatalf("$SYS publish: PUBACK %#x; want 0x87", rc)
	}
	pub(bob, "alice/denied-qos0", 0)
	if rc := pub(bob, "public/news", 1); rc != 0 {
		t.Fatalf("bob → public/news: PUBACK %#x", rc)
	}
	if m := alice.recv(t); m.Topic != "public/news" {
		t.Fatalf("alice got %q first; want public/news (nothing bob may not write)", m.Topic)
	}
	// Read at delivery: bob's alice/status subscription sees
	// alice/status only, never alice/status/private (not subscribable
	// either, but checked per message too).
	pub(alice, "alice/status", 1)
	pub(alice, "alice/status/private", 1)
	pub(alice, "devices/bob-1/cmd", 1) // alice may not write there
	if m := bob.recv(t); m.Topic != "alice/status" {
		t.Fatalf("bob got %q", m.Topic)
	}
	for _, want := range []string{"alice/status", "alice/status/private"} {
		if m := alice.recv(t); m.Topic != want { // her own, through alice/#
			t.Fatalf("alice got %q; want %q", m.Topic, want)
		}
	}
	// The pattern: bob-1 publishes to its own device tree.
	if rc := pub(bob, "devices/bob-1/up", 1); rc != 0 {
		t.Fatalf("bob → devices/bob-1/up: %#x", rc)
	}
	if m := bob.recv(t); m.Topic != "devices/bob-1/up" {
		t.Fatalf("bob got %q; want its own device topic", m.Topic)
	}
	bob.quiet(t)

	// paho 3.1.1: SUBACK 0x80 for a refused filter, PUBACK for a refused
	// QoS 1 PUBLISH (and no delivery).
	sink := newV3Sink()
	c3, _ := v3Paho(t, tb.Addr, "bob-3", true, sink, func(o *mqtt.ClientOptions) { o.SetUsername("bob").SetPassword("hunter2") })
	tok := c3.Subscribe("alice/#", 1, nil)
	v3Done(t, "subscribe alice/#", tok)
	if r := tok.(*mqtt.SubscribeToken).Result()["alice/#"]; r != 0x80 {
		t.Fatalf("3.1.1 SUBACK %#x; want 0x80", r)
	}
	v3Pub(t, c3, "alice/from-v3", 1, false, "x") // acknowledged, dropped
	v3Pub(t, c3, "public/from-v3", 1, false, "y")
	if m := alice.recv(t); m.Topic != "public/from-v3" {
		t.Fatalf("alice got %q; want public/from-v3 only", m.Topic)
	}

	// mosquitto_sub as alice on a wildcard: receives public/… only.
	if _, err := exec.LookPath("mosquitto_sub"); err == nil {
		ms := startMosqSub(t, tb, "-V", "mqttv311", "-u", "alice", "-P", "secret", "-i", "alice-mosq", "-C", "1", "-t", "public/#")
		pub(bob, "public/mosq", 0)
		if got := ms.wait(t); fmt.Sprint(got) != "[0|0|public/mosq|public/mosq]" {
			t.Fatalf("mosquitto_sub printed %q", got)
		}
		if m := alice.recv(t); m.Topic != "public/mosq" {
			t.Fatalf("alice got %q", m.Topic)
		}
	}

	// Reload: bob may now write alice/#; alice loses public/#. The
	// connections stay; cached verdicts are dropped.
	next := strings.Replace(e2eACL, "topic write public/#", "topic write public/#\ntopic write alice/#", 1)
	next = strings.Replace(next, "topic read public/#\n", "", 1)
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	a2, err := auth.LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	z.Swap(a2)
	if rc := pub(bob, "alice/secret", 1); rc != 0 {
		t.Fatalf("after reload bob → alice/secret: %#x; want 0", rc)
	}
	if m := alice.recv(t); m.Topic != "alice/secret" {
		t.Fatalf("after reload alice got %q", m.Topic)
	}
	pub(bob, "public/after", 1)
	pub(bob, "alice/last", 1)
	if m := alice.recv(t); m.Topic != "alice/last" {
		t.Fatalf("after reload alice got %q; want alice/last (public/# no longer readable)", m.Topic)
	}
	// Denied: 5 publishes (bob alice/secret, $SYS, QoS 0 alice/…, alice
	// devices/bob-1/cmd, 3.1.1 alice/from-v3), 3 filters, and 1 delivery
	// (public/after to alice after the reload).
	want := map[string]uint64{"publish": 5, "subscribe": 3, "read": 1, "will": 0}
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(tb.B.Stats().ACLDenied) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("ACL counters %v; want %v", tb.B.Stats().ACLDenied, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuth_Bans: after --ban-threshold failed logins from 127.0.0.1 the
// address is refused at accept (closed before any CONNACK) and its
// client id at CONNECT; once --ban-duration passes it connects again.
func TestAuth_Bans(t *testing.T) {
	t.Parallel()
	tb := startAuth(t, authPasswordFile(t), broker.Options{BanThreshold: 3, BanWindow: time.Minute, BanDuration: 1500 * time.Millisecond})
	for i := 0; i < 3; i++ {
		cp := &paho.Connect{ClientID: "guesser", CleanStart: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte(fmt.Sprint("guess", i))}
		if _, ack, _ := v5TryConnect(t, tb.Addr, cp); ack == nil || ack.ReasonCode != byte(codec.BadUserNameOrPassword) {
			t.Fatalf("attempt %d: %+v", i, ack)
		}
	}
	banned := time.Now()
	// Refused at accept: the connection is closed without a byte, even
	// with the right password.
	r := dialRaw(t, tb.Addr, codec.V5)
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: true, ClientID: []byte("someone"),
		UsernameFlag: true, Username: []byte("alice"), PasswordFlag: true, Password: []byte("secret")}
	r.c.Write(p.Append(nil))
	if _, _, err := r.tryRead(5 * time.Second); err == nil {
		t.Fatal("banned address got a packet")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("banned address not closed")
	}
	v5Wait(t, "ban metrics", func() bool {
		st := tb.B.Stats().Auth
		return st.BansIP == 1 && st.RefusedBannedIP >= 1
	})
	time.Sleep(time.Until(banned.Add(1600 * time.Millisecond)))
	cp := &paho.Connect{ClientID: "after-ban", CleanStart: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")}
	if _, ack, err := v5TryConnect(t, tb.Addr, cp); ack == nil || ack.ReasonCode != 0 {
		t.Fatalf("after the ban: %+v %v", ack, err)
	}
}

// slowAuth answers from another goroutine after delay (never, if delay
// is negative).
type slowAuth struct {
	delay time.Duration
	calls atomic.Int32
}

func (s *slowAuth) Authenticate(r *broker.AuthRequest, done func(broker.AuthResult)) {
	s.calls.Add(1)
	if s.delay < 0 {
		return
	}
	go func() {
		time.Sleep(s.delay)
		if string(r.Password) == "ok" {
			done(broker.AuthResult{Code: codec.Success})
			return
		}
		done(broker.AuthResult{Code: codec.NotAuthorized})
	}()
}

// TestAuth_Async: an authenticator that answers 200 ms later from its own
// goroutine: the packets the client sent right behind its CONNECT (in the
// same write) are served after the CONNACK; meanwhile the loop serves
// other clients. One that never answers is refused after AuthTimeout
// with 0x88 (3.1.1: 0x03).
func TestAuth_Async(t *testing.T) {
	t.Parallel()
	sa := &slowAuth{delay: 200 * time.Millisecond}
	tb := start(t, broker.Options{Loops: 1, Authenticator: sa, AuthTimeout: 2 * time.Second})
	r := dialRaw(t, tb.Addr, codec.V5)
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: true, ClientID: []byte("slow"),
		UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("ok")}
	sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("x/#")}}}
	r.send(append(p.Append(nil), sub.Append(nil, codec.V5)...))
	// While the first waits, an anonymous client on the same loop is
	// served (the loop is not blocked).
	other := dialRaw(t, tb.Addr, codec.V5)
	if ack := other.connect(&codec.Connect{CleanStart: true, ClientID: []byte("quick")}); ack.Code != 0 {
		t.Fatalf("other client: %#x", ack.Code)
	}
	if h, _ := r.read(5 * time.Second); h.Type != codec.CONNACK {
		t.Fatalf("want CONNACK, got %d", h.Type)
	}
	if h, _ := r.read(5 * time.Second); h.Type != codec.SUBACK {
		t.Fatalf("want SUBACK right after (pipelined), got %d", h.Type)
	}

	never := &slowAuth{delay: -1}
	tb2 := start(t, broker.Options{Authenticator: never, AuthTimeout: 300 * time.Millisecond})
	cp := &paho.Connect{ClientID: "stuck", CleanStart: true, UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("ok")}
	if _, ack, _ := v5TryConnect(t, tb2.Addr, cp); ack == nil || ack.ReasonCode != byte(codec.ServerUnavailable) {
		t.Fatalf("v5 timeout: %+v", ack)
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + tb2.Addr).SetClientID("stuck3").SetUsername("u").SetPassword("ok").
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait).SetProtocolVersion(4)
	tok := mqtt.NewClient(o).Connect()
	tok.WaitTimeout(v3Wait)
	if !errors.Is(tok.Error(), packets.ErrorRefusedServerUnavailable) {
		t.Fatalf("3.1.1 timeout: %v", tok.Error())
	}
	v5Wait(t, "timeouts counted", func() bool { return tb2.B.Stats().Auth.TimedOut == 2 })
}

// TestAuth_BinarySIGHUP runs the real binary with --password-file and
// --acl-file: a user added with `mcutie passwd` and an ACL change take
// effect on SIGHUP, and a client connected before it stays connected.
func TestAuth_BinarySIGHUP(t *testing.T) {
	t.Parallel()
	bin := durBinary(t)
	dir := t.TempDir()
	pwPath := authPasswordFile(t)
	aclPath := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclPath, []byte("user alice\ntopic read in/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := durStartProc(t, filepath.Join(dir, "data"), port, "--password-file", pwPath, "--acl-file", aclPath)
	if !strings.Contains(p.log(), "anonymous access off") || !strings.Contains(p.log(), "users are configured") {
		t.Fatalf("start-up does not say anonymous access is off with a password file:\n%s", p.log())
	}
	alice, _ := v5Connect(t, p.Addr, &paho.Connect{ClientID: "alice-bin", CleanStart: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")})
	if sa := alice.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "in/#", QoS: 1}}}); sa.Reasons[0] != 1 {
		t.Fatalf("SUBACK %v", sa.Reasons)
	}
	carol := &paho.Connect{ClientID: "carol-bin", CleanStart: true, UsernameFlag: true, Username: "carol", PasswordFlag: true, Password: []byte("c4rol")}
	if _, ack, _ := v5TryConnect(t, p.Addr, carol); ack == nil || ack.ReasonCode != byte(codec.BadUserNameOrPassword) {
		t.Fatalf("carol before she exists: %+v", ack)
	}
	if out, err := exec.Command(bin, "passwd", "-b", pwPath, "carol", "c4rol").CombinedOutput(); err != nil {
		t.Fatalf("mcutie passwd: %v\n%s", err, out)
	}
	if err := os.WriteFile(aclPath, []byte("user alice\ntopic read in/#\nuser carol\ntopic write in/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	v5Wait(t, "ACL reloaded", func() bool { return strings.Contains(p.log(), "ACL reloaded") })
	c, ack, err := v5TryConnect(t, p.Addr, carol)
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("carol after SIGHUP: %+v %v", ack, err)
	}
	if r := c.publish(t, &paho.Publish{Topic: "in/x", QoS: 1, Payload: []byte("hi")}); r.ReasonCode != 0 {
		t.Fatalf("carol PUBACK %#x", r.ReasonCode)
	}
	if m := alice.recv(t); m.Topic != "in/x" {
		t.Fatalf("alice (connected across the reload) got %q", m.Topic)
	}
}

// TestAuth_MTLSCertWithoutCNRefused (issue 21 item 5): with
// --tls-username-from-cn a verified certificate without a Common Name
// (SAN-only, SPIFFE) must not fall back to the CONNECT's user name, which
// would let it claim any user's ACL: CONNACK 0x87 (3.1.1 0x05) on tls://
// and wss://. A certificate with a CN still connects as that name.
func TestAuth_MTLSCertWithoutCNRefused(t *testing.T) {
	p := newPKI(t)
	o := mutualTLS(p)
	o.UsernameFromCN = true
	a, err := auth.ParseACL(strings.NewReader("user bob\ntopic readwrite bob/#\nuser alice\ntopic readwrite alice/#\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Certificates are the only credentials: no Authenticator.
	tb := startTransportWith(t, broker.Options{ConnectTimeout: 3 * time.Second, Authorizer: auth.NewACLAuthorizer(a)}, o, "tls", "wss")
	noCN, noCNKey := p.Issue(t, "spiffe", "", false)

	nc, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, noCN, noCNKey))
	if err != nil {
		t.Fatal(err)
	}
	c, ack, err := v5TryConnectOver(t, nc, &paho.Connect{ClientID: "nocn-v5", CleanStart: true, UsernameFlag: true, Username: "bob"})
	if ack == nil || ack.ReasonCode != byte(codec.NotAuthorized) {
		if c != nil {
			if sa := c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bob/#"}}}); len(sa.Reasons) > 0 && sa.Reasons[0] == 0 {
				t.Errorf("a certificate without a CN subscribed to bob/# as bob")
			}
		}
		t.Fatalf("certificate without a CN claiming bob over tls://: CONNACK %+v, %v; want 0x87", ack, err)
	}
	ws, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, noCN, noCNKey), v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: ws, v: codec.V311}
	if ack := r.connect(&codec.Connect{ClientID: []byte("nocn-ws"), CleanStart: true, UsernameFlag: true, Username: []byte("bob")}); ack.Code != codec.ConnRefusedNotAuthorized {
		t.Fatalf("certificate without a CN claiming bob over wss://: CONNACK %#x; want 0x05", ack.Code)
	}
	tb.Log.waitFor(t, "CONNECT refused", "client certificate has no Common Name")

	// A certificate with a CN: its name, whatever the CONNECT claims.
	nc, err = tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, p.ClientCert, p.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	alice := newV5OverConn(t, nc, &paho.Connect{ClientID: "cn-v5", CleanStart: true, UsernameFlag: true, Username: "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if sa, _ := alice.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bob/#"}}}); sa == nil || sa.Reasons[0] != byte(codec.NotAuthorized) {
		t.Fatalf("alice's certificate claiming bob: SUBACK %+v", sa)
	}
	if sa := alice.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alice/#"}}}); sa.Reasons[0] != 0 {
		t.Fatalf("alice on alice/#: SUBACK %v", sa.Reasons)
	}
}

// readmeSecureConfig returns the ACL and the mcutie flags of "A secure
// configuration" in docs/security.md (moved there from the README),
// without --listen, the files' paths replaced by pw and acl.
func readmeSecureConfig(t *testing.T, pw, acl string) (aclText string, flags []string) {
	t.Helper()
	raw, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "## A secure configuration")
	if !ok {
		t.Fatal("docs/security.md has no secure configuration")
	}
	sec, _, _ = strings.Cut(sec, "\n```\n")
	_, aclText, _ = strings.Cut(sec, "<<'ACL'\n")
	aclText, _, _ = strings.Cut(aclText, "\nACL\n")
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "mcutie --") {
			continue
		}
		args := strings.Fields(line)[1:]
		for i := 0; i < len(args); i++ {
			switch args[i] {
			case "--listen":
				i++
			case "/etc/mcutie/passwd":
				flags = append(flags, pw)
			case "/etc/mcutie/acl":
				flags = append(flags, acl)
			default:
				flags = append(flags, args[i])
			}
		}
	}
	if aclText == "" || len(flags) == 0 {
		t.Fatalf("cannot read the secure configuration of docs/security.md:\n%s", sec)
	}
	return aclText, flags
}

// TestAuth_READMESecureConfigClientIDs (issue 21 item 10): the secure
// configuration of docs/security.md gives every user devices/%c/#. Run as documented
// (the real binary, its ACL and flags), a user must not get another
// device's topics by choosing that device's client id: refused with
// CONNACK 0x85 (v5, paho.golang) / 0x02 (3.1.1, paho and mosquitto_sub);
// its own id, or <user>:<suffix>, works.
func TestAuth_READMESecureConfigClientIDs(t *testing.T) {
	t.Parallel()
	bin := durBinary(t)
	dir := t.TempDir()
	pw, aclPath := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	for i, u := range []string{"alice", "sensor-17", "sensor-18"} {
		args := []string{"passwd", "-b", pw, u, u + "-pw"}
		if i == 0 {
			args = []string{"passwd", "-c", "-b", pw, u, u + "-pw"}
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mcutie passwd: %v\n%s", err, out)
		}
	}
	aclText, flags := readmeSecureConfig(t, pw, aclPath)
	if err := os.WriteFile(aclPath, []byte(aclText+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := durStartProc(t, filepath.Join(dir, "data"), freePort(t), flags...)
	cp := func(id, user string) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: true, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(user + "-pw")}
	}
	// sensor-18 takes sensor-17's client id.
	if c, ack, err := v5TryConnect(t, p.Addr, cp("sensor-17", "sensor-18")); ack == nil || ack.ReasonCode != byte(codec.ClientIdentifierNotValid) {
		if c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
			defer cancel()
			if sa, _ := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/sensor-17/#"}}}); sa != nil && sa.Reasons[0] == 0 {
				t.Errorf("sensor-18 subscribed to devices/sensor-17/# as client sensor-17")
			}
		}
		t.Fatalf("sensor-18 as client sensor-17: CONNACK %+v, %v; want 0x85", ack, err)
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + p.Addr).SetClientID("sensor-17").SetUsername("sensor-18").SetPassword("sensor-18-pw").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait)
	tok := mqtt.NewClient(o).Connect()
	if !tok.WaitTimeout(v3Wait) || tok.Error() == nil || tok.(*mqtt.ConnectToken).ReturnCode() != packets.ErrRefusedIDRejected {
		t.Fatalf("paho 3.1.1 sensor-18 as client sensor-17: %v (code %d); want identifier rejected", tok.Error(), tok.(*mqtt.ConnectToken).ReturnCode())
	}
	if bin, err := exec.LookPath("mosquitto_sub"); err == nil {
		port := p.Addr[strings.LastIndexByte(p.Addr, ':')+1:]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", port, "-i", "sensor-17", "-u", "sensor-18", "-P", "sensor-18-pw", "-t", "devices/sensor-17/#", "-C", "1", "-W", "3").CombinedOutput()
		if err == nil || !strings.Contains(strings.ToLower(string(out)), "identifier rejected") {
			t.Fatalf("mosquitto_sub -i sensor-17 -u sensor-18: %v\n%s", err, out)
		}
	}
	// Anonymous: refused (nothing to bind the id to).
	if _, ack, _ := v5TryConnect(t, p.Addr, &paho.Connect{ClientID: "sensor-17", CleanStart: true}); ack == nil || ack.ReasonCode != byte(codec.NotAuthorized) {
		t.Fatalf("anonymous as sensor-17: %+v", ack)
	}
	// Their own ids work, and reach only their own devices' topics.
	s17, _ := v5Connect(t, p.Addr, cp("sensor-17", "sensor-17"))
	if sa := s17.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/sensor-17/#", QoS: 1}}}); sa.Reasons[0] != 1 {
		t.Fatalf("sensor-17 on its own topics: SUBACK %v", sa.Reasons)
	}
	s18, _ := v5Connect(t, p.Addr, cp("sensor-18:probe", "sensor-18"))
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if sa, _ := s18.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/sensor-17/#"}}}); sa == nil || sa.Reasons[0] != byte(codec.NotAuthorized) {
		t.Fatalf("sensor-18:probe on devices/sensor-17/#: SUBACK %+v", sa)
	}
	if r := s18.publish(t, &paho.Publish{Topic: "devices/sensor-18:probe/up", QoS: 1, Payload: []byte("x")}); r.ReasonCode >= 0x80 {
		t.Fatalf("sensor-18:probe on its own topic: PUBACK %#x", r.ReasonCode)
	}
}

// TestAuth_AnonymousOffForForwardedListeners (issue 21 item 15): the real
// binary with loopback listeners only, but one of them taking the PROXY
// protocol (a balancer's forwarded clients) or WebSocket (behind a reverse
// proxy): anonymous clients are refused by default on every listener.
func TestAuth_AnonymousOffForForwardedListeners(t *testing.T) {
	t.Parallel()
	for _, extra := range []string{"tcp://127.0.0.1:%d?proxy=true", "ws://127.0.0.1:%d/mqtt"} {
		port2 := freePort(t)
		second := fmt.Sprintf(extra, port2)
		p := durStartProc(t, t.TempDir(), freePort(t), "--listen", second)
		if !strings.Contains(p.log(), "anonymous access off") {
			t.Fatalf("%s: start-up log does not say anonymous access is off:\n%s", second, p.log())
		}
		// Plain loopback listener, paho 3.1.1: 0x05.
		o := mqtt.NewClientOptions().AddBroker("tcp://" + p.Addr).SetClientID("anon").
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait)
		tok := mqtt.NewClient(o).Connect()
		if !tok.WaitTimeout(v3Wait) || tok.(*mqtt.ConnectToken).ReturnCode() != packets.ErrRefusedNotAuthorised {
			t.Fatalf("%s: anonymous paho on the plain listener: %v", second, tok.Error())
		}
		addr2 := fmt.Sprintf("127.0.0.1:%d", port2)
		if strings.HasPrefix(second, "ws://") {
			ws, err := mqtt.NewWebsocket("ws://"+addr2+"/mqtt", nil, v5Timeout, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := &rawConn{t: t, c: ws, v: codec.V311}
			if ack := r.connect(&codec.Connect{ClientID: []byte("anon-ws"), CleanStart: true}); ack.Code != codec.ConnRefusedNotAuthorized {
				t.Fatalf("anonymous over ws://: CONNACK %#x", ack.Code)
			}
			continue
		}
		r := dialRaw(t, addr2, codec.V311)
		r.send([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n"))
		if ack := r.connect(&codec.Connect{ClientID: []byte("anon-proxied"), CleanStart: true}); ack.Code != codec.ConnRefusedNotAuthorized {
			t.Fatalf("anonymous client forwarded by a balancer: CONNACK %#x", ack.Code)
		}
	}
}
