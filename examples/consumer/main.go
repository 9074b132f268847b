// Command consumer shows a server-side consumer with backpressure: a
// subscription that hands each message to a slow "database writer" and
// calls done once it is written. At most Window messages are outstanding;
// the others wait in the subscription's session queue (QoS 1) and the
// publisher keeps its pace; QoS 0 messages that come while the window is
// full are dropped and counted.
//
//	go run ./examples/consumer
package main

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
)

func main() {
	b := broker.New(broker.Options{Loops: 2})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())

	const window, n = 8, 200
	writes := make(chan func(), window) // the writer's own bounded queue
	var written, maxOutstanding atomic.Int32
	var sub *broker.ServerSubscription
	go func() { // the "database writer": 2 ms a row
		for done := range writes {
			time.Sleep(2 * time.Millisecond)
			written.Add(1)
			done()
		}
	}()
	var subp atomic.Pointer[broker.ServerSubscription]
	sub, err := b.Subscribe("metrics/#", broker.SubscribeOptions{QoS: 1, Window: window}, func(m *broker.Delivered, done func()) {
		if s := subp.Load(); s != nil && int32(s.Outstanding()) > maxOutstanding.Load() {
			maxOutstanding.Store(int32(s.Outstanding()))
		}
		writes <- done // never blocks: at most window messages are outstanding
	})
	if err != nil {
		log.Fatal(err)
	}
	subp.Store(sub)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := b.PublishMessage(ctx, broker.Publication{Topic: "metrics/cpu", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			log.Fatal(err)
		}
	}
	published := time.Since(start)
	st, _ := b.StatsNow(ctx)
	fmt.Printf("published %d QoS 1 messages in %v; the consumer has written %d, %d wait in its queue\n",
		n, published.Round(time.Millisecond), written.Load(), st.Queued)
	// A QoS 0 burst while the window is full: dropped and counted.
	for i := 0; i < 50; i++ {
		_ = b.PublishMessage(ctx, broker.Publication{Topic: "metrics/noise", Payload: []byte("x")})
	}
	for written.Load() < n && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	st, _ = b.StatsNow(ctx)
	dropped := st.Dropped["slow_consumer"] + sub.Dropped()
	fmt.Printf("written %d of %d after %v; at most %d outstanding (window %d); %d of 50 QoS 0 messages dropped while the window was full\n",
		written.Load(), n, time.Since(start).Round(time.Millisecond), maxOutstanding.Load(), window, dropped)
	if written.Load() < n || maxOutstanding.Load() > window {
		log.Fatal("backpressure did not hold")
	}
	sub.Unsubscribe()
	<-sub.Done()
	fmt.Println("consumer: OK")
}
