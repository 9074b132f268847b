package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
)

// Auto-subscribe (Options.AutoSubscribe): subscriptions made for a client
// at CONNECT, with paho.golang (5.0), paho (3.1.1) and mosquitto_sub.

func autoSubRules(t *testing.T) []broker.AutoSubscribeRule {
	t.Helper()
	rules := []broker.AutoSubscribeRule{
		{ClientID: regexp.MustCompile(`^sensor-`), Filter: "devices/%c/cmd/#", QoS: 1, Source: "rule 1"},
		{Filter: "broadcast/all", QoS: 0, Source: "rule 2"},
		{Username: regexp.MustCompile(`^ops$`), Filter: "ops/%u/#", QoS: 2, RetainHandling: 2, Source: "rule 3"},
		{ClientID: regexp.MustCompile(`^sensor-`), Filter: "secret/%c", QoS: 1, Source: "rule 4"},
	}
	for i := range rules {
		if err := rules[i].Check(); err != nil {
			t.Fatal(err)
		}
	}
	return rules
}

// A matching client receives what is published on its rules' filters
// without subscribing (no SUBACK comes), retained messages included unless
// the rule's Retain Handling says not; a client no rule selects does not.
// The ACL applies: a rule's filter it refuses is not subscribed.
func TestAutoSubscribe_Clients(t *testing.T) {
	acl, err := auth.ParseACL(strings.NewReader("pattern read devices/#\npattern read broadcast/#\npattern read ops/%u/#\npattern write #\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{AutoSubscribe: autoSubRules(t), Authorizer: auth.NewACLAuthorizer(acl)})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "devices/sensor-1/cmd/boot", QoS: 1, Retain: true, Payload: []byte("retained")})
	pub.publish(t, &paho.Publish{Topic: "ops/ops/r", QoS: 1, Retain: true, Payload: []byte("not sent: retain handling 2")})

	s1, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sensor-1", CleanStart: true, KeepAlive: 30})
	if m := s1.recv(t); m.Topic != "devices/sensor-1/cmd/boot" || !m.Retain || string(m.Payload) != "retained" {
		t.Fatalf("sensor-1 got %q retain %v %q at connect", m.Topic, m.Retain, m.Payload)
	}
	pub.publish(t, &paho.Publish{Topic: "devices/sensor-2/cmd/x", QoS: 1, Payload: []byte("not for sensor-1")})
	pub.publish(t, &paho.Publish{Topic: "secret/sensor-1", QoS: 1, Payload: []byte("ACL refused the rule")})
	pub.publish(t, &paho.Publish{Topic: "devices/sensor-1/cmd/reboot", QoS: 2, Payload: []byte("now")})
	pub.publish(t, &paho.Publish{Topic: "broadcast/all", QoS: 0, Payload: []byte("hello all")})
	if m := s1.recv(t); m.Topic != "devices/sensor-1/cmd/reboot" || m.QoS != 1 {
		t.Fatalf("sensor-1 got %q QoS %d", m.Topic, m.QoS)
	}
	if m := s1.recv(t); m.Topic != "broadcast/all" {
		t.Fatalf("sensor-1 got %q", m.Topic)
	}
	// An ordinary subscription: UNSUBSCRIBE removes it.
	if _, err := s1.Unsubscribe(t.Context(), &paho.Unsubscribe{Topics: []string{"broadcast/all"}}); err != nil {
		t.Fatal(err)
	}

	// 3.1.1 (paho) with a user name: rule 3 (Retain Handling 2: the
	// retained message is not sent) and rule 2.
	sink := newV3Sink()
	v3Paho(t, tb.Addr, "console", true, sink, func(o *mqtt.ClientOptions) { o.SetUsername("ops") })
	pub.publish(t, &paho.Publish{Topic: "ops/ops/alert", QoS: 2, Payload: []byte("disk")})
	if got := sink.waitN(t, 1); got[0].Topic != "ops/ops/alert" || got[0].QoS != 2 {
		t.Fatalf("console got %+v", got)
	}

	// mosquitto_sub subscribes to something else and prints what its
	// auto-subscription brings.
	mosqBin(t, "mosquitto_sub")
	sub := startMosqSub(t, tb, "-i", "sensor-9", "-q", "1", "-C", "1", "-t", "broadcast/none")
	pub.publish(t, &paho.Publish{Topic: "devices/sensor-9/cmd/led", QoS: 1, Payload: []byte("on")})
	if got := sub.wait(t); len(got) != 1 || got[0] != "1|0|devices/sensor-9/cmd/led|on" {
		t.Fatalf("mosquitto_sub printed %q", got)
	}
	// sensor-1 (3 rules: devices, broadcast, and secret refused), console
	// (2), sensor-9 (3: secret refused), pub (1: broadcast).
	waitBrokerMetric(t, tb, `mcutie_auto_subscriptions_total{result="added"}`, "7")
	waitBrokerMetric(t, tb, `mcutie_auto_subscriptions_total{result="refused"}`, "2")
}

// A client id that would widen the filter (a wildcard or a level
// separator in %c) skips the rule.
func TestAutoSubscribe_UnsafeClientIDSkipped(t *testing.T) {
	tb := start(t, broker.Options{AutoSubscribe: autoSubRules(t)[:1]})
	v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sensor-+", CleanStart: true, KeepAlive: 30})
	waitBrokerMetric(t, tb, `mcutie_auto_subscriptions_total{result="skipped"}`, "1")
	waitBrokerMetric(t, tb, `mcutie_auto_subscriptions_total{result="added"}`, "0")
}
