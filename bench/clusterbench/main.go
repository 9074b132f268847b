//go:build linux

// Command clusterbench measures mcutie clustered on this machine: what a
// message costs when it crosses from one node to another against when it
// stays on its node, and the throughput of 1, 2 and 3 nodes.
//
//	go build -o bin/mcutie ./cmd/mcutie
//	go run ./bench/clusterbench [--duration 10s] [--rate 10000] [--suite hop,nodes]
//
// (make bench-cluster does both, about 5 minutes with the default
// --duration.) It starts mcutie processes itself (--store memory, routes,
// MQTT and metrics on loopback ports the kernel had free), drives them
// with the load generator's client engine (bench/client, one engine per
// node, so a publisher and a subscriber sit on the nodes the scenario
// says), and stops them at the end of each topology; every run is bounded
// by --duration plus a drain of at most 5 s.
//
// # What is measured
//
// Broker CPU is utime+stime of every mcutie process of the topology, from
// /proc/PID/stat, over the measured window, divided by the messages
// delivered to subscribers in it: a message that crosses pays for both
// nodes (its publisher's and its subscriber's) and both embedded NATS
// servers. Latency is from the payload's send time (paced runs: its
// scheduled send time) to its arrival, through bench/client's HDR
// histograms. The machine's load average is read before each run and
// printed with it: the load generator and the brokers share its cores,
// so absolute figures depend on what else runs.
//
// Suites:
//
//	hop    1 publisher → 1 subscriber, QoS 0 and 1, paced (--rate) and flood:
//	       on a single node without clustering; on node A of a 2-node
//	       cluster with the subscriber on A (local); with the subscriber
//	       on B (cross).
//	nodes  6 publishers spread over the nodes round-robin → 3 subscribers on
//	       one wildcard filter spread the same way, QoS 0 and 1, flood, on
//	       1, 2 and 3 nodes: every message is delivered 3 times whatever
//	       the number of nodes, so what changes is how many cross.
//
// Results go to stdout as a Markdown table and, with --out, to
// <out>/cluster.md and <out>/cluster.json.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcutie/mcutie/bench/client"
	"github.com/mcutie/mcutie/codec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	mcutie   string
	duration time.Duration
	rate     float64
	suites   string
	out      string
	payload  int
	only     string
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("clusterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.mcutie, "mcutie", "bin/mcutie", "the mcutie binary")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured window of each run (1s … 10m)")
	fs.Float64Var(&c.rate, "rate", 10000, "paced runs of the hop suite: messages per second of the one publisher")
	fs.StringVar(&c.suites, "suite", "hop,nodes", "suites to run: hop, nodes (comma-separated)")
	fs.StringVar(&c.out, "out", "", "directory for cluster.md and cluster.json (empty: stdout only)")
	fs.IntVar(&c.payload, "payload", 64, "payload bytes (16 … 65536)")
	fs.StringVar(&c.only, "only", "", "run only the runs whose name contains this (e.g. \"cross, QoS 1\")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.duration < time.Second || c.duration > 10*time.Minute || c.rate <= 0 || c.payload < client.HeaderLen || c.payload > 65536 {
		fmt.Fprintln(stderr, "clusterbench: --duration 1s … 10m, --rate > 0, --payload 16 … 65536")
		return 2
	}
	if _, err := os.Stat(c.mcutie); err != nil {
		fmt.Fprintf(stderr, "clusterbench: %v (go build -o bin/mcutie ./cmd/mcutie, or --mcutie)\n", err)
		return 2
	}
	var rows []row
	for _, s := range strings.Split(c.suites, ",") {
		var err error
		var got []row
		switch strings.TrimSpace(s) {
		case "hop":
			got, err = hopSuite(&c, stderr)
		case "nodes":
			got, err = nodesSuite(&c, stderr)
		default:
			err = fmt.Errorf("clusterbench: unknown suite %q (want hop, nodes)", s)
		}
		rows = append(rows, got...)
		if err != nil {
			fmt.Fprintln(stderr, err)
			writeResults(&c, rows, stdout, stderr)
			return 1
		}
	}
	writeResults(&c, rows, stdout, stderr)
	return 0
}

// errSkipped: the run is not among --only's.
var errSkipped = errors.New("skipped")

// row is one run's result.
type row struct {
	Suite       string  `json:"suite"`
	Name        string  `json:"name"`
	Nodes       int     `json:"nodes"`
	QoS         int     `json:"qos"`
	Rate        float64 `json:"rate"` // per publisher; 0: flood
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	WindowSec   float64 `json:"window_sec"`
	SentPerSec  float64 `json:"sent_per_sec"`
	RecvPerSec  float64 `json:"received_per_sec"`
	Lost        uint64  `json:"lost"`
	Duplicated  uint64  `json:"duplicated"`
	OutOfOrder  uint64  `json:"out_of_order"`
	P50         int64   `json:"p50_us"`
	P99         int64   `json:"p99_us"`
	P999        int64   `json:"p999_us"`
	BrokerCPU   float64 `json:"broker_cpu_sec"`
	CPUPerMsg   float64 `json:"broker_cpu_us_per_msg"`
	ClientCores float64 `json:"client_cores"`
	Load1       string  `json:"load_average"` // /proc/loadavg before the run
	// ClusterDropped: messages the nodes dropped on their way to another
	// node (mcutie_cluster_dropped_messages_total, send queue full).
	ClusterDropped float64 `json:"cluster_dropped"`
	// Drops: mcutie_messages_dropped_total by reason, over the nodes,
	// during the run (where the lost messages went).
	Drops map[string]float64 `json:"drops,omitempty"`
}

// node is one mcutie process.
type node struct {
	id      string
	mqtt    netip.AddrPort
	cluster string
	metrics string
	cmd     *exec.Cmd
	dir     string
	log     *logBuf
	exited  chan struct{}
}

// startNodes starts n mcutie processes; with n > 1 (or clustered) they
// form one cluster seeded by the first, and it returns once each counts n
// nodes.
func startNodes(c *config, n int, clustered bool) ([]*node, error) {
	var nodes []*node
	for i := range n {
		nd := &node{id: "cb" + strconv.Itoa(i), log: &logBuf{}, exited: make(chan struct{})}
		ports, err := freePorts(3)
		if err != nil {
			stopNodes(nodes)
			return nil, err
		}
		nd.mqtt = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0]))
		nd.cluster = "127.0.0.1:" + strconv.Itoa(ports[1])
		nd.metrics = "127.0.0.1:" + strconv.Itoa(ports[2])
		if nd.dir, err = os.MkdirTemp("", "mcutie-clusterbench-*"); err != nil {
			stopNodes(nodes)
			return nil, err
		}
		args := []string{"--listen", "tcp://" + nd.mqtt.String(), "--metrics-listen", nd.metrics, "--log-level", "warn",
			"--store", "memory", "--data-dir", nd.dir, "--node-id", nd.id}
		if clustered {
			args = append(args, "--cluster-listen", nd.cluster)
			if i > 0 {
				args = append(args, "--cluster-join", nodes[0].cluster)
			}
		}
		nd.cmd = exec.Command(c.mcutie, args...)
		nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
		// If the driver dies, the kernel kills the brokers.
		nd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := nd.cmd.Start(); err != nil {
			os.RemoveAll(nd.dir)
			stopNodes(nodes)
			return nil, err
		}
		go func() { _ = nd.cmd.Wait(); close(nd.exited) }()
		nodes = append(nodes, nd)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, nd := range nodes {
		for {
			ok := false
			if clustered {
				ok = metric(nd.metrics, "mcutie_cluster_nodes") == float64(n)
			} else if conn, err := net.DialTimeout("tcp", nd.mqtt.String(), 200*time.Millisecond); err == nil {
				conn.Close()
				ok = true
			}
			if ok {
				break
			}
			select {
			case <-nd.exited:
				stopNodes(nodes)
				return nil, fmt.Errorf("clusterbench: node %s exited during start-up: %s", nd.id, nd.log)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				stopNodes(nodes)
				return nil, fmt.Errorf("clusterbench: node %s did not see %d nodes within 30 s: %s", nd.id, n, nd.log)
			}
		}
	}
	return nodes, nil
}

// stopNodes sends SIGTERM to every node, waits at most 10 s each, then
// kills it, and removes its directory.
func stopNodes(nodes []*node) {
	for _, nd := range nodes {
		_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, nd := range nodes {
		select {
		case <-nd.exited:
		case <-time.After(10 * time.Second):
			_ = nd.cmd.Process.Kill()
			<-nd.exited
		}
		os.RemoveAll(nd.dir)
	}
}

// clusterMetric sums a metric over the nodes (0 where absent).
func clusterMetric(nodes []*node, name string) float64 {
	var sum float64
	for _, nd := range nodes {
		if v := metric(nd.metrics, name); v > 0 {
			sum += v
		}
	}
	return sum
}

// labelled sums, over the nodes, every sample whose line starts with
// prefix (a metric name and "{"), by its name and labels.
func labelled(nodes []*node, prefix string) map[string]float64 {
	out := map[string]float64{}
	cl := http.Client{Timeout: time.Second}
	for _, nd := range nodes {
		resp, err := cl.Get("http://" + nd.metrics + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
				out[line[:i]] += f
			}
		}
	}
	return out
}

// metric reads one unlabelled value from a node's /metrics (-1 if absent).
func metric(addr, name string) float64 {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// scenario is one run: who connects where, what they send.
type scenario struct {
	suite, name string
	qos         int
	rate        float64 // per publisher; 0: flood
	pubs, subs  []int   // node index of each publisher and subscriber
}

// runScenario runs s on nodes: subscribers connect first, then (after
// their interest has had time to reach every node) the publishers; the
// window runs --duration; then the drain.
func runScenario(c *config, nodes []*node, s scenario, stderr io.Writer) (row, error) {
	if !strings.Contains(s.name, c.only) {
		return row{}, errSkipped
	}
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	pfx := "cb/" + id + "/"
	base := time.Now()
	engines := make([]*client.Engine, len(nodes))
	defer func() {
		for _, e := range engines {
			if e != nil {
				e.Close()
			}
		}
	}()
	for i, nd := range nodes {
		e, err := client.New(client.Options{Addr: nd.mqtt, Loops: 1, Version: codec.V311, KeepAlive: 30, Base: base})
		if err != nil {
			return row{}, err
		}
		engines[i] = e
	}
	connect := func(specs map[int][]*client.Spec) error {
		for i, ss := range specs {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cr := engines[i].Connect(ctx, ss, client.ConnectOptions{})
			cancel()
			if cr.OK != len(ss) {
				return fmt.Errorf("clusterbench: %s: %d of %d connections to node %s: %v", s.name, cr.OK, len(ss), nodes[i].id, cr.Errors)
			}
		}
		return nil
	}
	subs := map[int][]*client.Spec{}
	for j, at := range s.subs {
		subs[at] = append(subs[at], &client.Spec{ClientID: "cb-" + id + "-s" + strconv.Itoa(j), Filters: []string{pfx + "#"}, SubQoS: byte(s.qos), Track: true})
	}
	if err := connect(subs); err != nil {
		return row{}, err
	}
	// The interest is announced within ~10 ms; a node that missed it asks
	// at the next heartbeat (1 s).
	time.Sleep(1500 * time.Millisecond)
	pubs := map[int][]*client.Spec{}
	for i, at := range s.pubs {
		pubs[at] = append(pubs[at], &client.Spec{ClientID: "cb-" + id + "-p" + strconv.Itoa(i), Pub: &client.PubSpec{
			ID: uint32(i), Topics: []string{pfx + "t/" + strconv.Itoa(i)}, QoS: byte(s.qos), Payload: c.payload, Rate: s.rate, Window: 64,
			Phase: float64(i) / float64(len(s.pubs)),
		}})
	}
	if err := connect(pubs); err != nil {
		return row{}, err
	}
	load := loadAvg()
	dropped0 := clusterMetric(nodes, "mcutie_cluster_dropped_messages_total")
	drops0 := labelled(nodes, "mcutie_messages_dropped_total{")
	cpu0, own0, t0 := brokersCPU(nodes), selfCPU(), time.Now()
	recv0 := received(engines)
	sent0 := sent(engines)
	for _, e := range engines {
		e.StartPublishing()
	}
	time.Sleep(c.duration)
	cpu1, own1, t1 := brokersCPU(nodes), selfCPU(), time.Now()
	recv1, sent1 := received(engines), sent(engines)
	for _, e := range engines {
		e.StopPublishing()
	}
	drain(engines)
	for _, e := range engines {
		e.Close()
	}
	t := client.Collect(engines...)
	d := t1.Sub(t0).Seconds()
	dropped := clusterMetric(nodes, "mcutie_cluster_dropped_messages_total") - dropped0
	drops := map[string]float64{}
	for k, v := range labelled(nodes, "mcutie_messages_dropped_total{") {
		if d := v - drops0[k]; d > 0 {
			drops[strings.TrimSuffix(strings.TrimPrefix(k, `mcutie_messages_dropped_total{reason="`), `"}`)] = d
		}
	}
	r := row{Suite: s.suite, Name: s.name, Nodes: len(nodes), QoS: s.qos, Rate: s.rate, Publishers: len(s.pubs), Subscribers: len(s.subs),
		WindowSec: d, SentPerSec: float64(sent1-sent0) / d, RecvPerSec: float64(recv1-recv0) / d,
		Lost: t.Lost, Duplicated: t.Duplicated, OutOfOrder: t.OutOfOrder,
		BrokerCPU: (cpu1 - cpu0).Seconds(), ClientCores: (own1 - own0).Seconds() / d, Load1: load, ClusterDropped: dropped, Drops: drops}
	if n := recv1 - recv0; n > 0 {
		r.CPUPerMsg = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	}
	if t.Latency.TotalCount() > 0 {
		r.P50, r.P99, r.P999 = t.Latency.ValueAtQuantile(50), t.Latency.ValueAtQuantile(99), t.Latency.ValueAtQuantile(99.9)
	}
	fmt.Fprintf(stderr, "clusterbench %-28s %9.0f msg/s recv  %6.2f µs CPU/msg  p50 %6d µs  p99 %7d µs  lost %d (cluster queue %.0f, dropped %v)  load %s\n",
		s.name, r.RecvPerSec, r.CPUPerMsg, r.P50, r.P99, r.Lost, dropped, drops, load)
	return r, nil
}

func received(es []*client.Engine) (n uint64) {
	for _, e := range es {
		n += e.Counters().Received
	}
	return n
}

func sent(es []*client.Engine) (n uint64) {
	for _, e := range es {
		n += e.Counters().Sent
	}
	return n
}

// drain waits, at most 5 s, until nothing of ours is in flight and
// nothing arrived for 300 ms.
func drain(es []*client.Engine) {
	end := time.Now().Add(5 * time.Second)
	last, lastChange := received(es), time.Now()
	for time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
		if r := received(es); r != last {
			last, lastChange = r, time.Now()
			continue
		}
		var inflight int64
		for _, e := range es {
			inflight += e.Counters().Inflight
		}
		if inflight == 0 && time.Since(lastChange) >= 300*time.Millisecond {
			return
		}
	}
}

// hopSuite: one publisher on the first node, one subscriber on the same
// node or on another.
func hopSuite(c *config, stderr io.Writer) ([]row, error) {
	var rows []row
	for _, topo := range []struct {
		name      string
		nodes     int
		clustered bool
		subAt     int
	}{{"single node", 1, false, 0}, {"2 nodes, local", 2, true, 0}, {"2 nodes, cross", 2, true, 1}} {
		nodes, err := startNodes(c, topo.nodes, topo.clustered)
		if err != nil {
			return rows, err
		}
		for _, qos := range []int{0, 1} {
			for _, rate := range []float64{c.rate, 0} {
				pace := "flood"
				if rate > 0 {
					pace = strconv.FormatFloat(rate, 'f', -1, 64) + "/s"
				}
				r, err := runScenario(c, nodes, scenario{suite: "hop", name: fmt.Sprintf("%s, QoS %d, %s", topo.name, qos, pace),
					qos: qos, rate: rate, pubs: []int{0}, subs: []int{topo.subAt}}, stderr)
				if errors.Is(err, errSkipped) {
					continue
				}
				if err != nil {
					stopNodes(nodes)
					return rows, err
				}
				rows = append(rows, r)
			}
		}
		stopNodes(nodes)
	}
	return rows, nil
}

// nodesSuite: 6 publishers and 3 subscribers on one wildcard filter,
// spread round-robin over 1, 2 and 3 nodes.
func nodesSuite(c *config, stderr io.Writer) ([]row, error) {
	var rows []row
	for n := 1; n <= 3; n++ {
		nodes, err := startNodes(c, n, n > 1)
		if err != nil {
			return rows, err
		}
		var pubs, subs []int
		for i := range 6 {
			pubs = append(pubs, i%n)
		}
		for j := range 3 {
			subs = append(subs, j%n)
		}
		for _, qos := range []int{0, 1} {
			r, err := runScenario(c, nodes, scenario{suite: "nodes", name: fmt.Sprintf("%d node(s), QoS %d, flood", n, qos),
				qos: qos, pubs: pubs, subs: subs}, stderr)
			if errors.Is(err, errSkipped) {
				continue
			}
			if err != nil {
				stopNodes(nodes)
				return rows, err
			}
			rows = append(rows, r)
		}
		stopNodes(nodes)
	}
	return rows, nil
}

// brokersCPU is the CPU time (user + system) all nodes have used.
func brokersCPU(nodes []*node) time.Duration {
	var sum time.Duration
	for _, nd := range nodes {
		d, err := procCPU(nd.cmd.Process.Pid)
		if err == nil {
			sum += d
		}
	}
	return sum
}

// procCPU returns utime+stime of process pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return 0, errors.New("clusterbench: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("clusterbench: short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("clusterbench: malformed utime/stime in /proc stat")
	}
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeResults prints the table and, with --out, writes cluster.md and
// cluster.json.
func writeResults(c *config, rows []row, stdout, stderr io.Writer) {
	var md bytes.Buffer
	fmt.Fprintf(&md, "# mcutie cluster benchmark\n\n%s, %d-byte payloads, %v windows, `clusterbench --suite %s --rate %v --duration %v`.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), c.payload, c.duration, c.suites, c.rate, c.duration)
	fmt.Fprintf(&md, "Broker CPU: all mcutie processes of the topology, per delivered message. Load: /proc/loadavg before the run (%d cores).\n\n", runtime.NumCPU())
	fmt.Fprintln(&md, "| run | pubs → subs | sent/s | delivered/s | broker CPU µs/msg | p50 µs | p99 µs | p99.9 µs | lost | cluster queue drops | broker drops | dup | client cores | load avg |")
	fmt.Fprintln(&md, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
	for _, r := range rows {
		fmt.Fprintf(&md, "| %s | %d → %d | %.0f | %.0f | %.2f | %d | %d | %d | %d | %.0f | %s | %d | %.2f | %s |\n",
			r.Name, r.Publishers, r.Subscribers, r.SentPerSec, r.RecvPerSec, r.CPUPerMsg, r.P50, r.P99, r.P999, r.Lost, r.ClusterDropped, dropsText(r.Drops), r.Duplicated, r.ClientCores, r.Load1)
	}
	_, _ = stdout.Write(md.Bytes())
	if c.out == "" {
		return
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return
	}
	if err := os.WriteFile(filepath.Join(c.out, "cluster.md"), md.Bytes(), 0o644); err != nil {
		fmt.Fprintln(stderr, err)
	}
	js, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(filepath.Join(c.out, "cluster.json"), append(js, '\n'), 0o644); err != nil {
		fmt.Fprintln(stderr, err)
	}
}

func dropsText(m map[string]float64) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// logBuf is a node's output: written by exec's copying goroutine, read
// on errors.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil // enough to say why it failed
	}
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
