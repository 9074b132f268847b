package e2e

import (
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// [MQTT-3.3.2-7] [MQTT-3.1.2-26] Outbound topic aliases: to a v5 client
// whose CONNECT allows them, the broker sends a topic once with an alias
// and then the alias alone, never an alias above the client's Topic Alias
// Maximum, reassigning the least recently sent one when all are in use.
// paho.golang hands the application the raw packet, so the test resolves
// the aliases as a client must, and checks every message arrives under
// its topic.
func TestSpecV5_MQTT_3_3_2_7_OutboundTopicAliases(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{OutboundTopicAliases: 16})
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "alias-sub", CleanStart: true,
		Properties: &paho.ConnectProperties{TopicAliasMaximum: v5U16(3)}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alias/#", QoS: 1}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "alias-pub", CleanStart: true})

	// Four topics over three aliases: t0 t1 t2 t0 t1 t2, then t3 takes
	// the least recently sent alias (t0's), then t0 comes back.
	order := []int{0, 1, 2, 0, 1, 2, 3, 3, 0}
	topic := func(i int) string { return fmt.Sprintf("alias/devices/sensor-%d/telemetry", i) }
	for n, i := range order {
		pub.publish(t, &paho.Publish{Topic: topic(i), QoS: 1, Payload: []byte(fmt.Sprint(n))})
	}
	known := map[uint16]string{}
	hits := 0
	for n, i := range order {
		p := sub.recv(t)
		got := p.Topic
		if p.Properties != nil && p.Properties.TopicAlias != nil {
			a := *p.Properties.TopicAlias
			if a == 0 || a > 3 {
				t.Fatalf("message %d: topic alias %d outside 1..3 (MQTT-3.1.2-26)", n, a)
			}
			if got == "" {
				got = known[a]
				hits++
			} else {
				known[a] = got
			}
		}
		if got != topic(i) || string(p.Payload) != fmt.Sprint(n) {
			t.Fatalf("message %d: %q on %q, want %q on %q", n, p.Payload, got, fmt.Sprint(n), topic(i))
		}
	}
	if hits != 4 { // t0 t1 t2 (second time), t3 (second time)
		t.Fatalf("%d messages sent by alias alone, want 4", hits)
	}
	v5Wait(t, "alias bytes counted", func() bool {
		st := tb.B.Stats()
		return st.TopicAliasHits == 4 && st.TopicAliasBytesSaved == uint64(4*(len(topic(0))-3))
	})

	// A client that allows none gets none; nor does anyone with the
	// broker's outbound aliases off (the default).
	plain, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "alias-none", CleanStart: true})
	plain.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "alias/#"}}})
	pub.publish(t, &paho.Publish{Topic: topic(1), QoS: 1, Payload: []byte("x")})
	if p := plain.recv(t); p.Topic != topic(1) || (p.Properties != nil && p.Properties.TopicAlias != nil) {
		t.Fatalf("client without Topic Alias Maximum got %q with alias %v", p.Topic, p.Properties.TopicAlias)
	}
	off := start(t, broker.Options{})
	r, _ := v5RawConnect(t, off.Addr, "alias-off", func(p *codec.Connect) {
		p.Props.Set(codec.PropTopicAliasMaximum)
		p.Props.TopicAliasMaximum = 10
	})
	r.subscribe(0, codec.Subscription{Filter: []byte("alias/#")})
	opub, _ := v5Connect(t, off.Addr, &paho.Connect{ClientID: "alias-off-pub", CleanStart: true})
	for range 2 {
		opub.publish(t, &paho.Publish{Topic: topic(2), QoS: 1, Payload: []byte("y")})
		p, ok := r.next(v5Timeout).(*codec.Publish)
		if !ok || string(p.Topic) != topic(2) || p.Props.Has(codec.PropTopicAlias) {
			t.Fatalf("aliases off: got %+v", p)
		}
	}
}

// libmosquitto 2.0.11 advertises a Topic Alias Maximum when asked (-D
// connect topic-alias-maximum) but drops the connection at the first
// PUBLISH that carries only an alias: with the default (outbound aliases
// off) such a client gets every topic in full.
func TestMosq_V5TopicAliasMaximumWithAliasesOff(t *testing.T) {
	tb := start(t, broker.Options{})
	m := startMosqSub(t, tb, "-V", "mqttv5", "-D", "connect", "topic-alias-maximum", "2", "-t", "malias/#", "-q", "1", "-C", "6")
	for n := range 6 {
		mosqPub(t, tb, "", "-V", "mqttv5", "-q", "1", "-t", fmt.Sprintf("malias/room-%d/temperature", n%3), "-m", fmt.Sprint(n))
	}
	got := m.wait(t)
	for n := range 6 {
		want := fmt.Sprintf("1|0|malias/room-%d/temperature|%d", n%3, n)
		if n >= len(got) || got[n] != want {
			t.Fatalf("mosquitto_sub printed %q; line %d want %q", got, n, want)
		}
	}
	if st := tb.B.Stats(); st.TopicAliasHits != 0 || st.TopicAliasAssigned != 0 {
		t.Fatalf("aliases used with the default: %d hits, %d assigned", st.TopicAliasHits, st.TopicAliasAssigned)
	}
}
