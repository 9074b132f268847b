package e2e

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
)

// A `#` subscription over more retained messages than the connection's
// outbound bound and the session's queue hold at once still receives every
// one of them [MQTT-3.3.1-9]: the broker sends them as the connection
// takes them instead of dropping what does not fit.
func TestRetainedOnSubscribe_Paced(t *testing.T) {
	const n = 20000
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			tb := start(t, broker.Options{MaxOutboundBytes: 16 << 10, MaxQueued: 64})
			for i := range n {
				for tb.B.Publish(fmt.Sprintf("paced/%d/%d", i/100, i%100), []byte("retained payload"), qos, true) != nil {
					time.Sleep(time.Millisecond) // inbox full: let the loop catch up
				}
			}
			waitRetained(t, tb, n)
			got := make(chan string, n)
			opts := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID(fmt.Sprintf("paced-%d", qos)).SetCleanSession(true).SetOrderMatters(false)
			c := mqtt.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(100)
			tok := c.Subscribe("paced/#", qos, func(_ mqtt.Client, m mqtt.Message) {
				if !m.Retained() {
					t.Errorf("message on %s without RETAIN=1 [MQTT-3.3.1-8]", m.Topic())
				}
				got <- m.Topic()
			})
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			seen := make(map[string]bool, n)
			deadline := time.After(60 * time.Second)
			for len(seen) < n {
				select {
				case topic := <-got:
					if seen[topic] {
						t.Fatalf("%s delivered twice", topic)
					}
					seen[topic] = true
				case <-deadline:
					st := tb.B.Stats()
					t.Fatalf("received %d of %d retained messages (dropped %v, stalls %d)", len(seen), n, st.Dropped, st.RetainedStalls)
				}
			}
			if st := tb.B.Stats(); st.Dropped["slow_consumer"] != 0 || st.Dropped["queue_full"] != 0 {
				t.Fatalf("retained messages dropped: %v", st.Dropped)
			}
		})
	}
}

func waitRetained(t *testing.T, tb *testBroker, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for tb.B.Stats().Retained < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d retained messages set", tb.B.Stats().Retained, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
