// Command embed runs mcutie inside a Go program: a server-side
// subscription and a server-side publish with MQTT 5 properties, next to
// an ordinary MQTT client, then prints the broker's exact figures.
//
//	go run ./examples/embed
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
)

func main() {
	b := broker.New(broker.Options{Loops: 2, NodeID: "example-node"}) // Store nil: in memory only
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Server side: receive everything under greetings/.
	got := make(chan *broker.Delivered, 10)
	sub, err := b.Subscribe("greetings/#", broker.SubscribeOptions{QoS: 1}, func(m *broker.Delivered, done func()) {
		got <- m
		done()
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()

	// An ordinary MQTT 5 client on the socket.
	nc, err := net.Dial("tcp", srv.Addrs()[0].String())
	if err != nil {
		log.Fatal(err)
	}
	fromServer := make(chan *paho.Publish, 10)
	c := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { fromServer <- pr.Packet; return true, nil }}})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "device-1", CleanStart: true, KeepAlive: 30}); err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "commands/device-1", QoS: 1}}}); err != nil {
		log.Fatal(err)
	}

	// Client → server.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "greetings/device-1", QoS: 1, Payload: []byte("hello from a device")}); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("server-side subscription got %q on %s (QoS %d)\n", m.Payload, m.Topic, m.QoS)

	// Server → client, with MQTT 5 properties; returns once routed (and stored).
	err = b.PublishMessage(ctx, broker.Publication{
		Topic: "commands/device-1", Payload: []byte(`{"led":"on"}`), QoS: 1,
		ContentType: "application/json", ResponseTopic: "greetings/device-1/reply", CorrelationData: []byte("req-1"),
		UserProperties: []broker.UserProperty{{Key: "sent-by", Value: "embed example"}}, MessageExpiry: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	p := <-fromServer
	fmt.Printf("client got %s on %s: content type %s, response topic %s, correlation %q, user property sent-by=%s\n",
		p.Payload, p.Topic, p.Properties.ContentType, p.Properties.ResponseTopic, p.Properties.CorrelationData, p.Properties.User.Get("sent-by"))

	st, err := b.StatsNow(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("node %s, up %v: %d connected (the server-side subscription is one), %d subscriptions, %d messages in, %d out\n",
		b.ID(), st.Uptime.Round(time.Millisecond), b.ConnectedClients(), st.Subscriptions,
		st.PublishIn[0]+st.PublishIn[1]+st.PublishIn[2], st.PublishOut[0]+st.PublishOut[1]+st.PublishOut[2])
	fmt.Println("embed: OK")
}
