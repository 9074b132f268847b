package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/store"
)

// Delayed publish ($delayed/{seconds}/{topic}, Options.DelayedPublish)
// with paho.golang (5.0), paho (3.1.1), mosquitto_pub and mosquitto_sub,
// and across a restart of a broker on a Badger store.

// A delayed message arrives after a message published later without a
// delay (the order proves the delay, without timing the test), on its
// target topic, with its QoS and properties.
func TestDelayed_PublishedAfterDelay(t *testing.T) {
	tb := start(t, broker.Options{DelayedPublish: true})
	watcher, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "watcher", CleanStart: true, KeepAlive: 30})
	watcher.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "later/#", QoS: 2}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})

	r := pub.publish(t, &paho.Publish{Topic: "$delayed/1/later/a", QoS: 2, Payload: []byte("delayed"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	if r.ReasonCode != 0 {
		t.Fatalf("PUBREC 0x%02x", r.ReasonCode)
	}
	pub.publish(t, &paho.Publish{Topic: "later/b", QoS: 1, Payload: []byte("now")})
	if m := watcher.recv(t); m.Topic != "later/b" {
		t.Fatalf("first came %q (%q): the delayed message was not delayed", m.Topic, m.Payload)
	}
	m := watcher.recv(t)
	if m.Topic != "later/a" || string(m.Payload) != "delayed" || m.QoS != 2 || m.Properties.ContentType != "text/plain" || m.Properties.User.Get("k") != "v" {
		t.Fatalf("got %q %q QoS %d %+v", m.Topic, m.Payload, m.QoS, m.Properties)
	}

	// 3.1.1 (paho) and mosquitto_pub to mosquitto_sub.
	p3, _ := v3Paho(t, tb.Addr, "pub3", true, nil, nil)
	v3Pub(t, p3, "$delayed/1/later/v3", 1, false, "from 3.1.1")
	if m := watcher.recv(t); m.Topic != "later/v3" || string(m.Payload) != "from 3.1.1" {
		t.Fatalf("got %q %q", m.Topic, m.Payload)
	}
	mosqBin(t, "mosquitto_pub")
	sub := startMosqSub(t, tb, "-q", "1", "-C", "1", "-t", "mosq/#")
	mosqPub(t, tb, "", "-q", "1", "-t", "$delayed/1/mosq/x", "-m", "via mosquitto")
	if got := sub.wait(t); len(got) != 1 || got[0] != "1|0|mosq/x|via mosquitto" {
		t.Fatalf("mosquitto_sub printed %q", got)
	}
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="scheduled"}`, "3")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="published"}`, "3")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages`, "0")
}

// Bounds and refusals: a bad topic (0x90), a delay past --max-delay
// (0x83), more than --max-delayed-messages (v5 0x97; 3.1.1 acknowledged,
// dropped and counted), the ACL on the target topic (0x87). Waiting
// messages are listed and canceled through the embedding API.
func TestDelayed_BoundsACLAndCancel(t *testing.T) {
	acl, err := auth.ParseACL(strings.NewReader("topic readwrite open/#\ntopic read secret/#\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{DelayedPublish: true, MaxDelayedMessages: 2, MaxDelay: time.Hour, Authorizer: auth.NewACLAuthorizer(acl)})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	for topic, want := range map[string]byte{
		"$delayed/x/open/a":     0x90,
		"$delayed//open/a":      0x90,
		"$delayed/5":            0x90,
		"$delayed/5/":           0x90,
		"$delayed/5/$SYS/x":     0x90,
		"$delayed/3601/open/a":  0x83,
		"$delayed/60/secret/a":  0x87,
		"$delayed/3600/open/a":  0x00,
		"$delayed/1800/open/b":  0x00,
		"$delayed/60/open/full": 0x97,
	} {
		if strings.HasSuffix(topic, "full") {
			continue // after the two that fill the queue
		}
		if rc := pubCode(t, pub, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(topic)}); rc != want {
			t.Fatalf("%s: 0x%02x, want 0x%02x", topic, rc, want)
		}
	}
	if rc := pubCode(t, pub, &paho.Publish{Topic: "$delayed/60/open/full", QoS: 1}); rc != 0x97 {
		t.Fatalf("past --max-delayed-messages: 0x%02x, want 0x97", rc)
	}
	p3, _ := v3Paho(t, tb.Addr, "pub3", true, nil, nil)
	v3Pub(t, p3, "$delayed/60/open/full3", 1, false, "dropped")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="quota_exceeded"}`, "2")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="invalid"}`, "5")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="delay_too_long"}`, "1")

	list := tb.B.DelayedMessages()
	if len(list) != 2 || list[0].Topic != "open/b" || list[1].Topic != "open/a" || list[0].ClientID != "pub" || string(list[1].Payload) != "$delayed/3600/open/a" {
		t.Fatalf("listed %+v", list)
	}
	if d := time.Until(list[1].PublishAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("open/a is due in %v, want about an hour", d)
	}
	if err := tb.B.CancelDelayed(list[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := tb.B.CancelDelayed(list[0].ID); err != broker.ErrDelayedNotFound {
		t.Fatalf("second cancel: %v", err)
	}
	if l := tb.B.DelayedMessages(); len(l) != 1 || l[0].Topic != "open/a" {
		t.Fatalf("after cancel: %+v", l)
	}
	// Room again.
	if rc := pubCode(t, pub, &paho.Publish{Topic: "$delayed/60/open/c", QoS: 1}); rc != 0 {
		t.Fatalf("after a cancel: 0x%02x", rc)
	}
	waitBrokerMetric(t, tb, `mcutie_delayed_messages`, "2")
	waitBrokerMetric(t, tb, `mcutie_delayed_messages_total{result="canceled"}`, "1")
}

// Acknowledged delayed messages survive a restart of a broker on Badger:
// one whose time passed while the broker was down is published at once,
// one due later is published at its time, one canceled stays canceled.
// The clock of the second run is moved forward instead of sleeping.
func TestDelayed_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ds := durStartWith(t, dir, store.DurabilityCommit, broker.Options{DelayedPublish: true})
	keeper, _ := v3Paho(t, ds.Addr, "keeper", false, nil, nil)
	v3Sub(t, keeper, "restart/#", 1)
	keeper.Disconnect(50)
	pub, _ := v5Connect(t, ds.Addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	for _, topic := range []string{"$delayed/600/restart/due", "$delayed/606/restart/ontime", "$delayed/7200/restart/canceled", "$delayed/7200/restart/kept"} {
		// The PUBACK says the record is stored.
		if r := pub.publish(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(topic)}); r.ReasonCode != 0 {
			t.Fatalf("%s: 0x%02x", topic, r.ReasonCode)
		}
	}
	for _, d := range ds.B.DelayedMessages() {
		if d.Topic == "restart/canceled" {
			if err := ds.B.CancelDelayed(d.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	ds.waitIdle(t)
	_ = pub.Disconnect(&paho.Disconnect{})
	ds.stop(t)

	// Ten minutes later, less a few seconds: "due" is past, "ontime" is
	// a few seconds away.
	clock := &v5Clock{}
	clock.Advance(600*time.Second + 500*time.Millisecond)
	ds = durStartWith(t, dir, store.DurabilityCommit, broker.Options{DelayedPublish: true, Now: clock.Now})
	if ds.RS.Delayed != 3 {
		t.Fatalf("restored %d delayed messages, want 3", ds.RS.Delayed)
	}
	sink := newV3Sink()
	v3Paho(t, ds.Addr, "keeper", false, sink, nil)
	got := sink.waitN(t, 1)
	if got[0].Topic != "restart/due" {
		t.Fatalf("first after the restart: %+v", got)
	}
	p2, _ := v5Connect(t, ds.Addr, &paho.Connect{ClientID: "pub2", CleanStart: true, KeepAlive: 30})
	p2.publish(t, &paho.Publish{Topic: "restart/now", QoS: 1, Payload: []byte("now")})
	got = sink.waitN(t, 3)
	if got[1].Topic != "restart/now" || got[2].Topic != "restart/ontime" || got[2].Payload != "$delayed/606/restart/ontime" {
		t.Fatalf("after the restart: %+v", got)
	}
	l := ds.B.DelayedMessages()
	if len(l) != 1 || l[0].Topic != "restart/kept" {
		t.Fatalf("still waiting: %+v", l)
	}
	waitBrokerMetric(t, &testBroker{B: ds.B}, `mcutie_delayed_messages_total{result="published"}`, "2")
}
