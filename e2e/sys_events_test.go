package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
)

// $SYS heartbeat and client events: <prefix>/<node>/heartbeat every
// interval, and with SysClientEvents a JSON event per client connect and
// disconnect under <prefix>/brokers/<node>/clients/<id>/ (EMQX's names).
// A custom prefix is the broker's namespace: its figures go there and
// clients may not publish under it.
func TestSys_HeartbeatAndClientEvents(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{NodeID: "n1", SysPrefix: "$mc", SysInterval: 200 * time.Millisecond, SysClientEvents: true})
	mon, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sys-mon", CleanStart: true})
	mon.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "$mc/n1/heartbeat"}, {Topic: "$mc/brokers/n1/clients/+/+"}, {Topic: "$mc/broker/uptime"},
	}})
	dev, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sys-dev", CleanStart: true, KeepAlive: 30, Username: "ann", UsernameFlag: true})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if r, _ := dev.Publish(ctx, &paho.Publish{Topic: "$mc/broker/uptime", QoS: 1, Payload: []byte("forged")}); r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("a client publishing under the sys prefix: %+v, want PUBACK 0x87", r)
	}
	_ = dev.Disconnect(&paho.Disconnect{})
	var heartbeat, uptime, connected, disconnected bool
	deadline := time.After(v5Timeout)
	for !(heartbeat && uptime && connected && disconnected) {
		select {
		case p := <-mon.msgs:
			var ev map[string]any
			switch p.Topic {
			case "$mc/n1/heartbeat":
				if json.Unmarshal(p.Payload, &ev) != nil || ev["node"] != "n1" {
					t.Fatalf("heartbeat %s", p.Payload)
				}
				heartbeat = true
			case "$mc/broker/uptime":
				uptime = string(p.Payload) != "forged"
			case "$mc/brokers/n1/clients/sys-dev/connected":
				if json.Unmarshal(p.Payload, &ev) != nil || ev["clientid"] != "sys-dev" || ev["username"] != "ann" || ev["proto_ver"] != float64(5) || ev["keepalive"] != float64(30) {
					t.Fatalf("connected event %s", p.Payload)
				}
				connected = true
			case "$mc/brokers/n1/clients/sys-dev/disconnected":
				if json.Unmarshal(p.Payload, &ev) != nil || ev["reason"] != "client_disconnected" {
					t.Fatalf("disconnected event %s", p.Payload)
				}
				disconnected = true
			}
		case <-deadline:
			t.Fatalf("heartbeat %v, uptime %v, connected %v, disconnected %v", heartbeat, uptime, connected, disconnected)
		}
	}
}
