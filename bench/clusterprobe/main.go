// Command clusterprobe measures the candidate engines for mcutie's
// clustering (docs/clustering.md) on loopback: the per-message cost and
// latency of a cross-node hop through two embedded NATS servers joined by
// a route, against the same traffic inside one server; the commit latency
// of hashicorp/raft with three voters; and how long memberlist takes to
// notice a node that stopped answering.
//
// It is a nested module so that the broker's go.mod does not carry the
// candidates before one is chosen. Every server it starts listens on
// 127.0.0.1 and stops when the probe ends.
//
//	cd bench/clusterprobe && go run . -n 200000 -rate 20000
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func main() {
	n := flag.Int("n", 100000, "messages per NATS scenario")
	rate := flag.Int("rate", 20000, "paced rate, messages per second (0: flood only)")
	size := flag.Int("size", 64, "payload bytes")
	applies := flag.Int("applies", 2000, "raft applies")
	flag.Parse()

	fmt.Println("| scenario | messages | msg/s | CPU µs/msg | p50 µs | p99 µs | p999 µs |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, cross := range []bool{false, true} {
		if *rate > 0 {
			natsRun(cross, *n, *rate, *size)
		}
		natsRun(cross, *n, 0, *size)
	}
	fmt.Println()
	raftRun(*applies)
	fmt.Println()
	kvRun(*applies)
	fmt.Println()
	memberlistRun()
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startNATS(name string, clusterPort int, routes string) *server.Server {
	return startNATSOpts(name, clusterPort, routes, "")
}

// startNATSOpts starts a server; a non-empty jsDir turns JetStream on
// with its files there.
func startNATSOpts(name string, clusterPort int, routes, jsDir string) *server.Server {
	o := &server.Options{
		JetStream:  jsDir != "",
		StoreDir:   jsDir,
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: "mcutie",
			Host: "127.0.0.1",
			Port: clusterPort,
		},
	}
	if routes != "" {
		o.Routes = server.RoutesFromStr(routes)
	}
	s, err := server.NewServer(o)
	if err != nil {
		log.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		log.Fatal("nats not ready")
	}
	return s
}

// natsRun publishes n messages from a client of server A to a subscriber
// on A (cross false) or on B, a second server routed to A (cross true),
// paced at rate per second (0: as fast as the client writes).
func natsRun(cross bool, n, rate, size int) {
	a := startNATS("a", 16222, "")
	defer a.Shutdown()
	subSrv := a
	if cross {
		b := startNATS("b", 16223, "nats://127.0.0.1:16222")
		defer b.Shutdown()
		deadline := time.Now().Add(5 * time.Second)
		for a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			if time.Now().After(deadline) {
				log.Fatal("route not up")
			}
			time.Sleep(10 * time.Millisecond)
		}
		subSrv = b
	}
	pub, err := nats.Connect("", nats.InProcessServer(a))
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Connect("", nats.InProcessServer(subSrv))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	done := make(chan struct{})
	got := 0
	start := time.Now()
	s, err := sub.Subscribe("dev.*.telemetry", func(m *nats.Msg) {
		sent := int64(binary.LittleEndian.Uint64(m.Data))
		if sent == 0 { // warm-up probe
			return
		}
		mu.Lock()
		lat = append(lat, time.Duration(time.Since(start).Nanoseconds()-sent))
		got++
		if got == n {
			close(done)
		}
		mu.Unlock()
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = s.SetPendingLimits(-1, -1)
	_ = sub.Flush()
	// Interest crosses the route asynchronously: probe until it arrives.
	probe := make([]byte, size)
	seen := make(chan struct{}, 1)
	ps, _ := sub.Subscribe("probe", func(*nats.Msg) {
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	_ = sub.Flush()
	for ok := false; !ok; {
		_ = pub.Publish("probe", probe)
		_ = pub.Flush()
		select {
		case <-seen:
			ok = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = ps.Unsubscribe()
	time.Sleep(50 * time.Millisecond)

	payload := make([]byte, size)
	cpu0, t0 := cpuNow(), time.Now()
	start = t0
	var gap time.Duration
	if rate > 0 {
		gap = time.Second / time.Duration(rate)
	}
	for i := 0; i < n; i++ {
		if gap > 0 {
			next := t0.Add(time.Duration(i) * gap)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		binary.LittleEndian.PutUint64(payload, uint64(time.Since(start).Nanoseconds()))
		if err := pub.Publish("dev.1.telemetry", payload); err != nil {
			log.Fatal(err)
		}
	}
	_ = pub.Flush()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		log.Fatalf("received %d of %d", got, n)
	}
	el, cpu := time.Since(t0), cpuNow()-cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	where := "one node"
	if cross {
		where = "A → B (route)"
	}
	mode := "flood"
	if rate > 0 {
		mode = fmt.Sprintf("paced %d/s", rate)
	}
	fmt.Printf("| NATS %s, %s | %d | %.0f | %.2f | %.1f | %.1f | %.1f |\n", where, mode, n,
		float64(n)/el.Seconds(), float64(cpu.Nanoseconds())/1e3/float64(n), q(0.5), q(0.99), q(0.999))
}

type fsm struct{ applied int }

func (f *fsm) Apply(*raft.Log) any                 { f.applied++; return nil }
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *fsm) Restore(io.ReadCloser) error         { return nil }

// raftRun starts three voters over TCP on loopback and times sequential
// applies of a 64-byte command (a session-ownership claim's size).
func raftRun(applies int) {
	var nodes []*raft.Raft
	var cfgs []raft.Server
	var trans []*raft.NetworkTransport
	for i := 0; i < 3; i++ {
		t, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
		if err != nil {
			log.Fatal(err)
		}
		trans = append(trans, t)
		cfgs = append(cfgs, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: t.LocalAddr()})
	}
	for i := 0; i < 3; i++ {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(fmt.Sprint(i))
		c.LogOutput = io.Discard
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(c, &fsm{}, store, store, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			r.BootstrapCluster(raft.Configuration{Servers: cfgs})
		}
		nodes = append(nodes, r)
	}
	defer func() {
		for _, r := range nodes {
			_ = r.Shutdown().Error()
		}
	}()
	t0 := time.Now()
	var leader *raft.Raft
	for leader == nil {
		for _, r := range nodes {
			if r.State() == raft.Leader {
				leader = r
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	elected := time.Since(t0)
	cmd := make([]byte, 64)
	lat := make([]time.Duration, 0, applies)
	cpu0, w0 := cpuNow(), time.Now()
	for i := 0; i < applies; i++ {
		s := time.Now()
		if err := leader.Apply(cmd, 5*time.Second).Error(); err != nil {
			log.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	el, cpu := time.Since(w0), cpuNow()-cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	fmt.Println("| hashicorp/raft, 3 voters, in-memory log | applies | applies/s | CPU µs/apply | p50 µs | p99 µs | first election |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	fmt.Printf("| sequential 64-byte applies | %d | %.0f | %.1f | %.1f | %.1f | %v |\n", applies, float64(applies)/el.Seconds(),
		float64(cpu.Nanoseconds())/1e3/float64(applies), q(0.5), q(0.99), elected.Round(time.Millisecond))
}

type leaveWatch struct{ left chan string }

func (w leaveWatch) NotifyJoin(*memberlist.Node)   {}
func (w leaveWatch) NotifyUpdate(*memberlist.Node) {}
func (w leaveWatch) NotifyLeave(n *memberlist.Node) {
	select {
	case w.left <- n.Name:
	default:
	}
}

// memberlistRun joins three members with the LAN defaults, stops one
// without leaving (as kill -9 would), and times until a survivor
// declares it gone.
func memberlistRun() {
	var ms []*memberlist.Memberlist
	w := leaveWatch{left: make(chan string, 4)}
	for i := 0; i < 3; i++ {
		c := memberlist.DefaultLANConfig()
		c.Name = fmt.Sprintf("n%d", i)
		c.BindAddr = "127.0.0.1"
		c.BindPort = 0
		c.LogOutput = io.Discard
		if i == 0 {
			c.Events = w
		}
		m, err := memberlist.Create(c)
		if err != nil {
			log.Fatal(err)
		}
		if i > 0 {
			if _, err := m.Join([]string{ms[0].LocalNode().Address()}); err != nil {
				log.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	_ = ms[2].Shutdown() // no Leave: the others must find out
	select {
	case name := <-w.left:
		fmt.Printf("memberlist (LAN defaults): %s declared dead %v after it stopped answering\n", name, time.Since(t0).Round(10*time.Millisecond))
	case <-time.After(60 * time.Second):
		fmt.Println("memberlist: not detected within 60 s")
	}
	for _, m := range ms[:2] {
		_ = m.Shutdown()
	}
	_ = os.Stdout.Sync()
}

// kvRun starts three JetStream servers in one cluster and times
// sequential Creates (compare-and-set: a session-ownership claim) in a
// key-value bucket replicated on all three.
func kvRun(applies int) {
	var srvs []*server.Server
	routes := "nats://127.0.0.1:16230,nats://127.0.0.1:16231,nats://127.0.0.1:16232"
	for i := 0; i < 3; i++ {
		dir, err := os.MkdirTemp("", "clusterprobe-js")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		srvs = append(srvs, startNATSOpts(fmt.Sprintf("js%d", i), 16230+i, routes, dir))
	}
	defer func() {
		for _, s := range srvs {
			s.Shutdown()
		}
	}()
	nc, err := nats.Connect("", nats.InProcessServer(srvs[0]))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Now()
	var kv nats.KeyValue
	for {
		kv, err = js.CreateKeyValue(&nats.KeyValueConfig{Bucket: "sessions", Replicas: 3})
		if err == nil {
			break
		}
		if time.Since(t0) > 30*time.Second {
			log.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ready := time.Since(t0)
	val := make([]byte, 64)
	lat := make([]time.Duration, 0, applies)
	cpu0, w0 := cpuNow(), time.Now()
	for i := 0; i < applies; i++ {
		s := time.Now()
		if _, err := kv.Create(fmt.Sprintf("c%d", i), val); err != nil {
			log.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	el, cpu := time.Since(w0), cpuNow()-cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	fmt.Println("| NATS JetStream KV, R3, file store | creates | creates/s | CPU µs/create | p50 µs | p99 µs | bucket ready |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	fmt.Printf("| sequential 64-byte Create (CAS) | %d | %.0f | %.1f | %.1f | %.1f | %v |\n", applies, float64(applies)/el.Seconds(),
		float64(cpu.Nanoseconds())/1e3/float64(applies), q(0.5), q(0.99), ready.Round(time.Millisecond))
}
