// Command enrich shows a message interceptor: a Publish hook that wraps
// every JSON payload published under sensors/ with the publisher's client
// id and the time the broker received it. The payload is shared by every
// subscriber, so the hook returns a new message (copy on write) instead of
// changing the one it is given.
//
//	go run ./examples/enrich
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/reactor"
)

type enricher struct{}

func (enricher) Name() string           { return "enricher" }
func (enricher) Provides() hooks.Events { return hooks.EventsOf(hooks.Publish) }
func (enricher) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if !strings.HasPrefix(string(m.Topic), "sensors/") || m.Origin != hooks.FromClient || !json.Valid(m.Payload) {
		return nil, nil // pass unchanged
	}
	out, err := json.Marshal(map[string]any{
		"data":        json.RawMessage(m.Payload),
		"client_id":   m.Client.ID,
		"received_at": time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, err
	}
	n := *m
	n.Payload = out
	return &n, nil
}

func main() {
	reg := hooks.New(hooks.Options{})
	if err := reg.Add(enricher{}); err != nil {
		log.Fatal(err)
	}
	defer reg.Stop()
	b := broker.New(broker.Options{Loops: 2, Hooks: reg})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())

	got := make(chan *broker.Delivered, 4)
	sub, err := b.Subscribe("sensors/#", broker.SubscribeOptions{QoS: 1}, func(m *broker.Delivered, done func()) { got <- m; done() })
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()

	nc, err := net.Dial("tcp", srv.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "thermometer-7", CleanStart: true, KeepAlive: 30}); err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	sent := `{"celsius":21.5}`
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/kitchen", QoS: 1, Payload: []byte(sent)}); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("published:  %s\nsubscriber: %s\n", sent, m.Payload)
	var v struct {
		ClientID string `json:"client_id"`
		Data     struct{ Celsius float64 }
	}
	if err := json.Unmarshal(m.Payload, &v); err != nil || v.ClientID != "thermometer-7" || v.Data.Celsius != 21.5 {
		log.Fatalf("not enriched: %s (%v)", m.Payload, err)
	}
	fmt.Println("enrich: OK")
}
