package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Transport robustness (project issues 13 and 21): start-up, lingering
// close, pre-CONNECT bounds, WebSocket subprotocol, partial packets. Names
// carry an rr prefix.

// rrStart runs a broker restored from the Badger store in dir on addr,
// logging into lb. The returned func stops it and closes the store.
func rrStart(t testing.TB, dir, addr string, lb *logBuf, loops int) (*broker.Broker, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir, Durability: store.DurabilityCommit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := broker.New(broker.Options{Loops: loops, Store: st, Logger: log})
	if _, err := b.Restore(); err != nil {
		st.Close()
		t.Fatalf("restore: %v", err)
	}
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://" + addr}, Logger: log, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		st.Close()
		t.Fatalf("start broker: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Stop(ctx)
			_ = st.Close()
		})
	}
	t.Cleanup(stop)
	return b, stop
}

// rrPahoOpts are paho 3.1.1 options for a persistent session, dialling
// until the broker listens (connection refused is retried for up to 10 s).
func rrPahoOpts(addr, id string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker("tcp://"+addr).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10*time.Second).SetWriteTimeout(5*time.Second).SetKeepAlive(30*time.Second).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, err := net.Dial("tcp", addr)
				if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
					return c, err
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
}

// A. Clients that resume persistent sessions while the broker starts up
// are connected with their sessions, whichever loop their connection lands
// on: connections the kernel queued before the event loops were all bound
// used to be closed when their session lived on a loop not bound yet
// ("cannot move connection: owning loop not bound").
func TestReactorRobust_StartupResumeBeforeLoopsBound(t *testing.T) {
	const clients = 24
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("rr-startup-%d", i)
	}

	// First run: every client leaves a persistent session behind.
	_, stop := rrStart(t, dir, addr, &logBuf{}, 4)
	for _, id := range ids {
		c := mqtt.NewClient(rrPahoOpts(addr, id))
		v3Done(t, "connect "+id, c.Connect())
		v3Done(t, "subscribe "+id, c.Subscribe("rr/startup/"+id, 1, nil))
		c.Disconnect(0)
	}
	stop()

	for round := 0; round < 3; round++ {
		// The clients dial before the broker listens, so their connections
		// wait in the listen backlog and are served the moment the loops
		// run, before the loops are all bound.
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := mqtt.NewClient(rrPahoOpts(addr, id))
				tok := c.Connect()
				if !tok.WaitTimeout(15 * time.Second) {
					errs <- fmt.Errorf("%s: no CONNACK", id)
					return
				}
				if err := tok.Error(); err != nil {
					errs <- fmt.Errorf("%s: %v", id, err)
					return
				}
				if !tok.(*mqtt.ConnectToken).SessionPresent() {
					errs <- fmt.Errorf("%s: session not present", id)
				}
				c.Disconnect(0)
			}()
		}
		time.Sleep(20 * time.Millisecond)
		lb := &logBuf{}
		_, stop := rrStart(t, dir, addr, lb, 4)
		wg.Wait()
		stop()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if t.Failed() {
			t.Fatalf("round %d: broker log:\n%s", round, lb.String())
		}
	}
}
