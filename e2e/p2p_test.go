package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
)

// Point-to-point messages ($p2p/{clientid}/{topic}, Options.P2P) with
// paho.golang (5.0), paho (3.1.1), mosquitto_pub and mosquitto_sub.

// brokerMetric returns one line's value of the broker's /metrics text.
func brokerMetric(tb *testBroker, name string) string {
	var b bytes.Buffer
	tb.B.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// waitBrokerMetric waits until a broker metric has value want.
func waitBrokerMetric(t testing.TB, tb *testBroker, name, want string) {
	t.Helper()
	v5Wait(t, name+" = "+want, func() bool { return brokerMetric(tb, name) == want })
}

// pubCode publishes at QoS 1 or 2 and returns the reason code of the
// PUBACK/PUBREC, which paho.golang reports as an error when ≥ 0x80.
func pubCode(t testing.TB, c *v5Paho, p *paho.Publish) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if r == nil {
		t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return r.ReasonCode
}

// A $p2p PUBLISH reaches the named client's session only, as a PUBLISH to
// the inner topic, whatever it subscribed to; a subscriber to "#" does not
// see it. Every client is on its own connection, so with two loops the
// recipient is on another loop than the sender half of the time.
func TestP2P_OneSessionOnly(t *testing.T) {
	tb := start(t, broker.Options{P2P: true})
	bob, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bob", CleanStart: true, KeepAlive: 30})
	eve, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "eve", CleanStart: true, KeepAlive: 30})
	eve.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}}})
	alice, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "alice", CleanStart: true, KeepAlive: 30})

	for q := byte(0); q < 3; q++ {
		r := alice.publish(t, &paho.Publish{Topic: "$p2p/bob/chat/hello", QoS: q, Retain: true, Payload: []byte{'0' + q}})
		if q > 0 && r.ReasonCode != 0 {
			t.Fatalf("QoS %d: PUBACK/PUBREC 0x%02x", q, r.ReasonCode)
		}
		m := bob.recv(t)
		if m.Topic != "chat/hello" || m.QoS != q || m.Retain || string(m.Payload) != string('0'+q) {
			t.Fatalf("bob got %q QoS %d retain %v %q", m.Topic, m.QoS, m.Retain, m.Payload)
		}
	}
	// eve (subscribed to everything) gets the next ordinary message first:
	// none of the three went to her, none was retained.
	alice.publish(t, &paho.Publish{Topic: "barrier", QoS: 1, Payload: []byte("b")})
	if m := eve.recv(t); m.Topic != "barrier" {
		t.Fatalf("eve got %q before the barrier", m.Topic)
	}
	late, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "late", CleanStart: true, KeepAlive: 30})
	late.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "chat/#", QoS: 1}}})
	alice.publish(t, &paho.Publish{Topic: "chat/barrier", QoS: 1, Payload: []byte("b")})
	if m := late.recv(t); m.Topic != "chat/barrier" {
		t.Fatalf("a late subscriber got %q: a P2P message was retained", m.Topic)
	}

	// No session for the id: 0x10 No matching subscribers. No client id
	// or no topic: 0x90 Topic Name invalid.
	if r := alice.publish(t, &paho.Publish{Topic: "$p2p/nobody/x", QoS: 1}); r.ReasonCode != 0x10 {
		t.Fatalf("to nobody: 0x%02x, want 0x10", r.ReasonCode)
	}
	for _, bad := range []string{"$p2p/bob", "$p2p/bob/", "$p2p//x"} {
		if rc := pubCode(t, alice, &paho.Publish{Topic: bad, QoS: 1}); rc != 0x90 {
			t.Fatalf("%q: 0x%02x, want 0x90", bad, rc)
		}
	}
	waitBrokerMetric(t, tb, `mcutie_p2p_messages_total{result="delivered"}`, "3")
	waitBrokerMetric(t, tb, `mcutie_p2p_messages_total{result="no_session"}`, "1")
	waitBrokerMetric(t, tb, `mcutie_p2p_messages_total{result="invalid"}`, "3")
}

// An offline persistent session gets its P2P messages when it comes back
// (3.1.1, paho), and mosquitto_pub can send one to mosquitto_sub.
func TestP2P_OfflineSessionAndMosquitto(t *testing.T) {
	tb := start(t, broker.Options{P2P: true})
	dave, _ := v3Paho(t, tb.Addr, "dave", false, nil, nil)
	v3Sub(t, dave, "unrelated", 1)
	dave.Disconnect(50)
	sender, _ := v3Paho(t, tb.Addr, "sender", true, nil, nil)
	v3Pub(t, sender, "$p2p/dave/inbox/1", 1, false, "while away")
	v3Pub(t, sender, "$p2p/dave/inbox/0", 0, false, "QoS 0 is not queued")
	sink := newV3Sink()
	_, present := v3Paho(t, tb.Addr, "dave", false, sink, nil)
	if !present {
		t.Fatal("dave's session was not kept")
	}
	got := sink.waitN(t, 1)
	if got[0].Topic != "inbox/1" || got[0].Payload != "while away" {
		t.Fatalf("dave got %+v", got)
	}

	mosqBin(t, "mosquitto_pub")
	sub := startMosqSub(t, tb, "-i", "mosq-rcpt", "-q", "1", "-C", "1", "-t", "nothing/here")
	mosqPub(t, tb, "", "-i", "mosq-sender", "-q", "1", "-t", "$p2p/mosq-rcpt/direct/msg", "-m", "from mosquitto_pub")
	if got := sub.wait(t); len(got) != 1 || got[0] != "1|0|direct/msg|from mosquitto_pub" {
		t.Fatalf("mosquitto_sub printed %q", got)
	}
}

// The publisher needs write access to the $p2p topic (who may message
// whom); the recipient needs read access to the inner topic.
func TestP2P_ACL(t *testing.T) {
	acl, err := auth.ParseACL(strings.NewReader(strings.Join([]string{
		"topic write $p2p/bob/#",
		"topic read chat/#",
		"topic read barrier",
		"topic write barrier",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{P2P: true, Authorizer: auth.NewACLAuthorizer(acl)})
	bob, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "bob", CleanStart: true, KeepAlive: 30})
	bob.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "barrier", QoS: 1}}})
	v5Connect(t, tb.Addr, &paho.Connect{ClientID: "carol", CleanStart: true, KeepAlive: 30})
	alice, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "alice", CleanStart: true, KeepAlive: 30})

	if rc := pubCode(t, alice, &paho.Publish{Topic: "$p2p/carol/chat/x", QoS: 1}); rc != 0x87 {
		t.Fatalf("to carol (no write access to $p2p/carol/…): 0x%02x, want 0x87", rc)
	}
	// Allowed to send, but bob may not read secret/…: not delivered.
	alice.publish(t, &paho.Publish{Topic: "$p2p/bob/secret/x", QoS: 1, Payload: []byte("secret")})
	alice.publish(t, &paho.Publish{Topic: "$p2p/bob/chat/x", QoS: 1, Payload: []byte("chat")})
	alice.publish(t, &paho.Publish{Topic: "barrier", QoS: 1})
	for _, want := range []string{"chat/x", "barrier"} {
		if m := bob.recv(t); m.Topic != want {
			t.Fatalf("bob got %q (%q), want %q", m.Topic, m.Payload, want)
		}
	}
	waitBrokerMetric(t, tb, `mcutie_p2p_messages_total{result="denied"}`, "1")
}
