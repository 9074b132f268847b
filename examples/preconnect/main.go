// Command preconnect shows a pre-connect policy: a hook that decides on
// each connection from its address before a byte of CONNECT is read.
// Here it allows two connections and refuses every later one; refusals
// are counted by reason in the broker's figures.
//
//	go run ./examples/preconnect
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/reactor"
)

// quota lets the first max connections in and refuses the rest.
type quota struct {
	max, seen atomic.Int32
}

func (q *quota) Name() string           { return "quota" }
func (q *quota) Provides() hooks.Events { return hooks.EventsOf(hooks.PreConnect) }
func (q *quota) OnPreConnect(remote netip.Addr, listener string) error {
	if q.seen.Add(1) > q.max.Load() {
		return errors.New("connection quota used up")
	}
	return nil
}

func main() {
	reg := hooks.New(hooks.Options{})
	q := &quota{}
	q.max.Store(2)
	if err := reg.Add(q); err != nil {
		log.Fatal(err)
	}
	defer reg.Stop()
	b := broker.New(broker.Options{Loops: 2, Hooks: reg})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())
	addr := srv.Addrs()[0].String()

	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: nc})
		_, err = c.Connect(ctx, &paho.Connect{ClientID: fmt.Sprint("client-", i), CleanStart: true, KeepAlive: 30})
		cancel()
		switch {
		case i <= 2 && err == nil:
			fmt.Printf("client-%d: connected\n", i)
			defer c.Disconnect(&paho.Disconnect{})
		case i == 3 && err != nil:
			fmt.Printf("client-%d: refused before its CONNECT was read (%v)\n", i, err)
		default:
			log.Fatalf("client-%d: unexpected outcome %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, _ := b.StatsNow(ctx)
	fmt.Printf("connections refused by the pre-connect hook: %d\n", st.Rejected["pre_connect_hook"])
	if st.Rejected["pre_connect_hook"] != 1 {
		log.Fatal("want 1 refusal counted")
	}
	fmt.Println("preconnect: OK")
}
