package bridge

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
)

// BenchmarkBridgeOutQoS1: QoS 1 messages published on mcutie by a paho
// client (pipelined), carried by the bridge to Mosquitto and received
// there by a QoS 1 subscriber; msg/s end to end.
//
//	go test ./bridge -run '^$' -bench BridgeOutQoS1 -benchtime 20000x
func BenchmarkBridgeOutQoS1(b *testing.B) {
	// "direct": the same publisher straight to Mosquitto, the baseline.
	for _, proto := range append([]string{"direct"}, protocols...) {
		b.Run("v"+proto, func(b *testing.B) {
			mq := newMosquitto(b, "")
			pubAddr := mq.addr()
			if proto != "direct" {
				l := newLocal(b, broker.Options{})
				m := startBridges(b, l, bridgeYAML("bench", "tcp://"+mq.addr(), proto, "    max_inflight: 256\n",
					"      - {pattern: \"bench/#\", direction: out, qos: 1}\n"))
				waitUntil(b, 10*time.Second, "the bridge up", func() bool { return m.Bridges()[0].Status().Up })
				pubAddr = l.addr
			}
			var got atomic.Int64
			done := make(chan struct{})
			rc := client(b, mq.addr(), "bench-sub", true)
			if tok := rc.Subscribe("bench/#", 1, func(mqtt.Client, mqtt.Message) {
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			pub := client(b, pubAddr, "bench-pub", true)
			payload := make([]byte, 64)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var last mqtt.Token
			for i := 0; i < b.N; i++ {
				copy(payload, strconv.Itoa(i))
				last = pub.Publish("bench/x", 1, false, payload)
				if i%512 == 511 {
					last.Wait() // keep a bounded number in flight to mcutie
				}
			}
			last.Wait()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("received %d of %d", got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}
