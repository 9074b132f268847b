package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestClusterConfirmAcksSurviveKill: with --cluster-confirm-acks, three
// mcutie processes on Badger; 16 QoS 1 publishers on node A stream to a
// persistent subscriber on node C, and A is killed with kill -9 in the
// middle. Every message a publisher got its PUBACK for reaches C once
// and in its publisher's order [MQTT-4.6.0-5]: A acknowledged nothing it
// had not handed to C, and C stored it before confirming.
func TestClusterConfirmAcksSurviveKill(t *testing.T) {
	nodes := startWillCluster(t, "--cluster-confirm-acks")
	a, c := nodes[0], nodes[2]
	type rx struct {
		pub, seq int
	}
	got := make(chan rx, 1<<16)
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "conf-sub", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300), ReceiveMaximum: v5U16(1000)}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "conf/#", QoS: 1}}})
	stopDrain := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case p := <-sub.msgs:
				if i, ok := strings.CutPrefix(p.Topic, "conf/"); ok {
					pub, _ := strconv.Atoi(i)
					seq, _ := strconv.Atoi(string(p.Payload))
					got <- rx{pub, seq}
				}
			case <-stopDrain:
				return
			}
		}
	}()
	// C's interest is known on A: a probe crosses.
	probe, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "conf-probe", CleanStart: true, KeepAlive: 30})
	v5Wait(t, "a message from A reaches C", func() bool {
		probe.publish(t, &paho.Publish{Topic: "conf/-1", QoS: 1, Payload: []byte("0")})
		select {
		case <-got:
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	for len(got) > 0 {
		<-got
	}

	const pubs = 16
	var acked [pubs]atomic.Int64
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := range pubs {
		cl, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: fmt.Sprintf("conf-pub-%d", i), CleanStart: true, KeepAlive: 30})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; ; seq++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := cl.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("conf/%d", i), QoS: 1, Payload: []byte(strconv.Itoa(seq))})
				cancel()
				if err != nil || (r != nil && r.ReasonCode >= 0x80) {
					return // A is gone
				}
				acked[i].Store(int64(seq))
				total.Add(1)
			}
		}()
	}
	v5Wait(t, "3,000 messages acknowledged", func() bool { return total.Load() >= 3000 })
	a.kill(t)
	wg.Wait()

	// Every acknowledged message arrives at C, once, in order.
	last := make([]int, pubs)
	dups := 0
	deadline := time.After(30 * time.Second)
	complete := func() bool {
		for i := range pubs {
			if int64(last[i]) < acked[i].Load() {
				return false
			}
		}
		return true
	}
	for !complete() {
		select {
		case m := <-got:
			switch {
			case m.pub < 0 || m.pub >= pubs:
			case m.seq <= last[m.pub]:
				dups++
			case m.seq != last[m.pub]+1:
				t.Fatalf("publisher %d: message %d after %d (acknowledged up to %d): lost or out of order", m.pub, m.seq, last[m.pub], acked[m.pub].Load())
			default:
				last[m.pub] = m.seq
			}
		case <-deadline:
			var missing []string
			for i := range pubs {
				if int64(last[i]) < acked[i].Load() {
					missing = append(missing, fmt.Sprintf("publisher %d: got up to %d of %d acknowledged", i, last[i], acked[i].Load()))
				}
			}
			t.Fatalf("acknowledged messages lost with A killed:\n%s", strings.Join(missing, "\n"))
		}
	}
	close(stopDrain)
	<-drained
	if dups > 0 {
		t.Errorf("%d duplicates at C", dups)
	}
	t.Logf("%d acknowledged before kill -9 of A, all at C once and in order", total.Load())
}
