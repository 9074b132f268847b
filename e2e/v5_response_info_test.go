package e2e

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
)

// [MQTT-3.1.2-28] [MQTT-3.1.2-29] Response Information is sent only to a
// client that requests it, with its client id in place of %c; request and
// response then work out of the box over the topic it names.
func TestSpecV5_MQTT_3_1_2_28_ResponseInformation(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{ResponseInformation: "reply/%c/"})
	_, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "plain", CleanStart: true})
	if ack.Properties != nil && ack.Properties.ResponseInfo != "" {
		t.Fatalf("Response Information %q sent unrequested", ack.Properties.ResponseInfo)
	}
	req, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "asker", CleanStart: true, Properties: &paho.ConnectProperties{RequestResponseInfo: true}})
	if ack.Properties == nil || ack.Properties.ResponseInfo != "reply/asker/" {
		t.Fatalf("Response Information %+v, want reply/asker/", ack.Properties)
	}
	// The requester listens under it, the responder answers there.
	req.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ack.Properties.ResponseInfo + "#", QoS: 1}}})
	resp, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "responder", CleanStart: true})
	resp.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/time", QoS: 1}}})
	req.publish(t, &paho.Publish{Topic: "svc/time", QoS: 1, Payload: []byte("now?"),
		Properties: &paho.PublishProperties{ResponseTopic: ack.Properties.ResponseInfo + "time", CorrelationData: []byte{7}}})
	in := resp.recv(t)
	resp.publish(t, &paho.Publish{Topic: in.Properties.ResponseTopic, QoS: 1, Payload: []byte("noon"),
		Properties: &paho.PublishProperties{CorrelationData: in.Properties.CorrelationData}})
	if out := req.recv(t); string(out.Payload) != "noon" || out.Topic != "reply/asker/time" || len(out.Properties.CorrelationData) != 1 {
		t.Fatalf("response %q on %s", out.Payload, out.Topic)
	}
}
