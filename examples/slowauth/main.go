// Command slowauth shows an authentication hook with a slow backend: its
// decision takes 2 s (a remote user directory, say). It runs on the hook
// registry's worker pool, never on an event loop, so while one client
// waits for its verdict, others connect and exchange messages at full
// speed.
//
//	go run ./examples/slowauth
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/reactor"
)

// directory allows every user but "mallory", and is slow for user "slow".
type directory struct{}

func (directory) Name() string           { return "directory" }
func (directory) Provides() hooks.Events { return hooks.EventsOf(hooks.Connect) }
func (directory) OnConnect(c *hooks.Client, p *codec.Connect) error {
	if c.Username == "slow" {
		time.Sleep(2 * time.Second) // the backend's round trip
	}
	if c.Username == "mallory" {
		return errors.New("unknown user")
	}
	return nil
}

func connect(addr, id, user string, onMsg func(*paho.Publish)) (*paho.Client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: nc}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) { onMsg(pr.Packet); return true, nil }}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: user})
	return c, err
}

func main() {
	reg := hooks.New(hooks.Options{Timeout: 5 * time.Second})
	if err := reg.Add(directory{}); err != nil {
		log.Fatal(err)
	}
	defer reg.Stop()
	b := broker.New(broker.Options{Loops: 1, Hooks: reg}) // one loop: every client shares it
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())
	addr := srv.Addrs()[0].String()

	slowDone := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		c, err := connect(addr, "slow-client", "slow", nil)
		if err != nil {
			log.Fatal(err)
		}
		defer c.Disconnect(&paho.Disconnect{})
		slowDone <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond) // the slow CONNECT is waiting for its verdict now

	const n = 500
	got := make(chan struct{}, n)
	sub, err := connect(addr, "fast-sub", "alice", func(*paho.Publish) { got <- struct{}{} })
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Disconnect(&paho.Disconnect{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fast/#", QoS: 1}}}); err != nil {
		log.Fatal(err)
	}
	pub, err := connect(addr, "fast-pub", "bob", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Disconnect(&paho.Disconnect{})
	for i := 0; i < n; i++ {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "fast/t", QoS: 1, Payload: []byte("x")}); err != nil {
			log.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		<-got
	}
	fast := time.Since(start)
	fmt.Printf("two clients connected and exchanged %d QoS 1 messages in %v, while a third waited for its verdict\n", n, fast.Round(time.Millisecond))
	slow := <-slowDone
	fmt.Printf("the slow client connected after %v\n", slow.Round(time.Millisecond))
	if _, err := connect(addr, "intruder", "mallory", nil); err == nil {
		log.Fatal("mallory was let in")
	} else {
		fmt.Printf("mallory refused: %v\n", err)
	}
	if fast >= slow || slow < 2*time.Second {
		log.Fatal("the slow backend held up other clients")
	}
	fmt.Println("slowauth: OK")
}
