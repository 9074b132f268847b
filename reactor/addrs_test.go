package reactor_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
)

// TestAddrsPortZero: a tcp:// listener on port 0 is bound once, on one
// port for every event loop (gnet binds each loop's listener with
// SO_REUSEPORT), and Addrs reports it; a ws:// listener on port 0 gets its
// own. Clients landing on each loop are served.
func TestAddrsPortZero(t *testing.T) {
	b := broker.New(broker.Options{Loops: 4})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()
	addrs := srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs: %v, want 2", addrs)
	}
	for _, a := range addrs {
		if ta, ok := a.(*net.TCPAddr); !ok || ta.Port == 0 || !ta.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("Addrs: %v, want 127.0.0.1 with the ports bound", addrs)
		}
	}
	if addrs[0].String() == addrs[1].String() {
		t.Fatalf("Addrs: %v: one port for two listeners", addrs)
	}
	if n := listening(t, addrs[0].(*net.TCPAddr).Port); n != 4 {
		t.Fatalf("%d sockets listen on %v, want one per loop (4)", n, addrs[0])
	}
	for i := range 16 { // round-robin over 4 loops, and SO_REUSEPORT's hash
		c, err := net.DialTimeout("tcp", addrs[0].String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, ClientID: []byte{'c', byte('a' + i)}, KeepAlive: 60}
		if _, err := c.Write(p.Append(nil)); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("client %d: CONNACK %x, %v", i, ack, err)
		}
		_ = c.Close()
	}
}

// listening counts the IPv4 TCP sockets listening on port (/proc/net/tcp).
func listening(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" {
			n++
		}
	}
	return n
}
