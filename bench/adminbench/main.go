// Command adminbench measures the management API (package admin) with
// many connected clients: the latency of its endpoints while N MQTT
// clients (one subscription each) are connected, and M retained messages
// are held. It runs the broker, the reactor and the API in this process
// and the clients in a child process (itself, re-run with -connect), so
// each side needs one file descriptor per connection.
//
//	go run ./bench/adminbench -clients 10000 -retained 10000 -requests 200
//
// Results are in docs/admin.md ("Measured"). Everything listens on
// 127.0.0.1 and stops by itself (the child after -max-life).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/mcutie/mcutie/admin"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

func main() {
	clients := flag.Int("clients", 10000, "MQTT clients to connect (each subscribes to dev/<i>/cmd)")
	retained := flag.Int("retained", 10000, "retained messages to hold")
	requests := flag.Int("requests", 200, "requests per endpoint")
	loops := flag.Int("loops", 0, "event loops (0: number of CPUs)")
	connect := flag.String("connect", "", "child mode: connect -clients clients to this address and hold them")
	maxLife := flag.Duration("max-life", 10*time.Minute, "child mode: exit after this long whatever happens")
	flag.Parse()
	if *connect != "" {
		child(*connect, *clients, *maxLife)
		return
	}
	if err := run(*clients, *retained, *requests, *loops); err != nil {
		fmt.Fprintln(os.Stderr, "adminbench:", err)
		os.Exit(1)
	}
}

func run(clients, retained, requests, loops int) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(broker.Options{Loops: loops, Store: store.NewMemory(), Logger: log, KeepIdentity: true, MaxSessions: 10 * clients})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: log})
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()
	addr := srv.Addrs()[0].String()
	ctx := context.Background()
	for i := 0; i < retained; i++ {
		if err := b.PublishMessage(ctx, broker.Publication{Topic: fmt.Sprintf("site/%d/dev/%d/state", i/100, i), Payload: []byte("on"), Retain: true}); err != nil {
			return fmt.Errorf("retained %d: %w", i, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-connect", addr, "-clients", strconv.Itoa(clients))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe() // the child exits when this closes
	out, _ := cmd.StdoutPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		return fmt.Errorf("child: %q %v", line, err)
	}
	for b.ConnectedClients() < clients {
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("%d of %d clients connected after 5 min", b.ConnectedClients(), clients)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("%d clients connected in %v; %d retained; %d loops\n", clients, time.Since(start).Round(time.Millisecond), retained, b.NumLoops())

	api := admin.New(admin.Options{Broker: b, Token: "bench", Logger: log})
	hs := httptest.NewServer(api.Handler()) // 127.0.0.1, port 0
	defer hs.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func(path string) ([]byte, error) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer bench")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body, err
	}
	// A cursor in the middle, for the "after" row.
	var mid struct{ Next string }
	body, err := get("/api/v1/clients?limit=100&page=50")
	if err != nil {
		return err
	}
	_ = json.Unmarshal(body, &mid)
	paths := []string{
		"/api/v1/stats",
		"/api/v1/clients?limit=100",
		"/api/v1/clients?limit=100&page=50",
		"/api/v1/clients?limit=100&after=" + mid.Next,
		"/api/v1/clients?limit=100&match=bench-00042",
		fmt.Sprintf("/api/v1/clients/bench-%05d", clients/2),
		"/api/v1/subscriptions?limit=100",
		"/api/v1/retained?limit=100",
		"/api/v1/retained?limit=100&match=/dev/4242/",
	}
	fmt.Printf("%-52s %10s %10s %10s %10s %8s\n", "GET", "p50", "p90", "p99", "max", "bytes")
	for _, p := range paths {
		lat := make([]time.Duration, 0, requests)
		n := 0
		for i := 0; i < requests; i++ {
			t0 := time.Now()
			body, err := get(p)
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
			n = len(body)
		}
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[min(int(f*float64(len(lat))), len(lat)-1)] }
		fmt.Printf("%-52s %10v %10v %10v %10v %8d\n", trim(p, 52), q(0.5).Round(time.Microsecond), q(0.9).Round(time.Microsecond),
			q(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), n)
	}
	return nil
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// child connects n MQTT 3.1.1 clients bench-<i>, each subscribed to
// dev/<i>/cmd, prints "ready" once all CONNACKs and SUBACKs came, and
// holds them until its standard input closes or maxLife passes.
func child(addr string, n int, maxLife time.Duration) {
	go func() {
		time.Sleep(maxLife)
		os.Exit(2)
	}()
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		id := fmt.Sprintf("bench-%05d", i)
		p := codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte(id), CleanStart: true}
		pkt := p.Append(nil)
		sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("dev/" + strconv.Itoa(i) + "/cmd"), QoS: 1}}}
		pkt = sub.Append(pkt, codec.V311)
		if _, err := c.Write(pkt); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	// CONNACK (4 bytes) and SUBACK (5 bytes) from each.
	buf := make([]byte, 9)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(c, buf); err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(conns) // unreachable sockets would be closed by their finalizers
}
