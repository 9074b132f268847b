// Command aggregate embeds mcutie with the hooks/aggregate plugin: a
// sensor (an in-process client) publishes temperatures, the plugin
// reduces every 5 of them to {"count","min","max","avg","sum"} and the
// broker publishes the result, which a dashboard (another in-process
// client) receives and prints.
//
//	go run ./examples/aggregate
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/aggregate"
	"github.com/mcutie/mcutie/reactor"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	agg, err := aggregate.New(aggregate.Config{Logger: logger, Rules: []aggregate.Rule{
		{Filter: "sensors/+/temp", Output: "stats/temp", Count: 5, QoS: 1},
	}})
	if err != nil {
		log.Fatal(err)
	}
	reg := hooks.New(hooks.Options{Logger: logger})
	if err := reg.Add(agg); err != nil { // starts the plugin
		log.Fatal(err)
	}
	defer reg.Stop()

	b := broker.New(broker.Options{Loops: 2, Hooks: reg, Logger: logger})
	agg.SetPublisher(b) // the results are published by the broker
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: logger})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The dashboard: an in-process client subscribed to the results.
	dash, err := b.Connect(ctx, broker.ConnectOptions{ClientID: "dashboard", CleanStart: true})
	if err != nil {
		log.Fatal(err)
	}
	defer dash.Disconnect()
	results := make(chan map[string]any, 10)
	if err := dash.Subscribe(ctx, "stats/temp", 1, func(m *broker.Delivered) {
		var r map[string]any
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			log.Fatalf("result %q: %v", m.Payload, err)
		}
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
		results <- r
	}); err != nil {
		log.Fatal(err)
	}

	// The sensor: an in-process client publishing numbers at QoS 1 (each
	// Publish returns at its PUBACK).
	sensor, err := b.Connect(ctx, broker.ConnectOptions{ClientID: "sensor-1", CleanStart: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sensor.Disconnect()
	temps := []float64{20.5, 21, 19.5, 22, 22.5, 23, 23.5, 24, 24.5, 25.5}
	for _, v := range temps {
		if err := sensor.Publish(ctx, broker.Publication{Topic: "sensors/kitchen/temp", Payload: []byte(strconv.FormatFloat(v, 'f', -1, 64)), QoS: 1}); err != nil {
			log.Fatal(err)
		}
	}
	for w := 0; w < 2; w++ {
		var r map[string]any
		select {
		case r = <-results:
		case <-ctx.Done():
			log.Fatalf("no result for window %d", w+1)
		}
		win := temps[5*w : 5*w+5]
		sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
		for _, v := range win {
			sum, lo, hi = sum+v, math.Min(lo, v), math.Max(hi, v)
		}
		if r["count"] != 5.0 || r["sum"] != sum || r["min"] != lo || r["max"] != hi || math.Abs(r["avg"].(float64)-sum/5) > 1e-9 {
			log.Fatalf("window %d: got %v, want count 5, sum %v, min %v, max %v", w+1, r, sum, lo, hi)
		}
	}
	st, _ := agg.Stats("stats/temp")
	fmt.Printf("%d values aggregated into 2 results\n", st.Values)
	fmt.Println("aggregate: OK")
}
