package e2e

import (
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/rewrite"
)

// Topic rewrite (hooks/rewrite's topics: rules) with paho.golang (5.0),
// paho (3.1.1) and mosquitto_pub: the rules run before the ACL, which
// allows only the rewritten topics and filters here.
func TestTopicRewrite_BeforeACL(t *testing.T) {
	p, err := rewrite.New(rewrite.Config{Topics: []rewrite.TopicRule{
		{Action: "publish", Filter: "x/#", Regex: `^x/y/(.+)$`, Dest: "z/y/$1"},
		{Action: "subscribe", Filter: "y/+/z/#", Regex: `^y/(.+)/z/(.+)$`, Dest: "y/z/$2"},
		{Action: "publish", Filter: "mine/#", Regex: `^mine/(.+)$`, Dest: "clients/%c/$1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	acl, err := auth.ParseACL(strings.NewReader("pattern write z/y/#\npattern write clients/%c/#\npattern read y/z/#\npattern read z/y/#\npattern read clients/#\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, p), Authorizer: auth.NewACLAuthorizer(acl)})

	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	// y/a/z/# becomes y/z/#: granted, though the ACL does not let the
	// client subscribe to y/a/z/#.
	sa := sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "y/a/z/#", QoS: 1}, {Topic: "z/y/#", QoS: 1}, {Topic: "clients/#", QoS: 1}}})
	if sa.Reasons[0] != 1 || sa.Reasons[1] != 1 || sa.Reasons[2] != 1 {
		t.Fatalf("SUBACK %v", sa.Reasons)
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	// x/y/1 becomes z/y/1: accepted, though the ACL refuses x/y/1.
	if rc := pubCode(t, pub, &paho.Publish{Topic: "x/y/1", QoS: 1, Payload: []byte("a")}); rc != 0 {
		t.Fatalf("x/y/1: 0x%02x", rc)
	}
	if m := sub.recv(t); m.Topic != "z/y/1" || string(m.Payload) != "a" {
		t.Fatalf("got %q %q", m.Topic, m.Payload)
	}
	// The subscription is y/z/#: a message on y/z/b reaches it.
	pub.publish(t, &paho.Publish{Topic: "mine/t", QoS: 1, Payload: []byte("b")})
	if m := sub.recv(t); m.Topic != "clients/pub/t" {
		t.Fatalf("got %q", m.Topic)
	}
	// A topic no rule rewrites meets the ACL as it is.
	if rc := pubCode(t, pub, &paho.Publish{Topic: "x/q", QoS: 1}); rc != 0x87 {
		t.Fatalf("x/q: 0x%02x, want 0x87", rc)
	}

	// 3.1.1 and mosquitto_pub are rewritten alike.
	p3, _ := v3Paho(t, tb.Addr, "p3", true, nil, nil)
	v3Pub(t, p3, "x/y/from3", 1, false, "c")
	if m := sub.recv(t); m.Topic != "z/y/from3" {
		t.Fatalf("got %q", m.Topic)
	}
	mosqBin(t, "mosquitto_pub")
	mosqPub(t, tb, "", "-i", "mq", "-q", "1", "-t", "mine/m", "-m", "d")
	if m := sub.recv(t); m.Topic != "clients/mq/m" || string(m.Payload) != "d" {
		t.Fatalf("got %q %q", m.Topic, m.Payload)
	}
	var calls strings.Builder
	tb.B.WriteMetrics(&calls)
	if !strings.Contains(calls.String(), `event="publish_topic"`) {
		t.Fatal("no hook call count for publish_topic")
	}
}
