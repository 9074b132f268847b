//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	brokerOnce sync.Once
	brokerAddr string
	brokerErr  error
	brokerDir  string
)

// testBroker starts one broker, the real binary (built from cmd/mcutie),
// for the package's tests and returns its address. The load generator
// only speaks MQTT to it, as it does to Mosquitto.
func testBroker(t *testing.T) string {
	t.Helper()
	brokerOnce.Do(func() { brokerAddr, brokerErr = startBinary() })
	if brokerErr != nil {
		t.Fatalf("cannot start the broker: %v", brokerErr)
	}
	return brokerAddr
}

func startBinary() (string, error) {
	dir, err := os.MkdirTemp("", "mcutie-bench-test-")
	if err != nil {
		return "", err
	}
	brokerDir = dir
	bin := filepath.Join(dir, "mcutie")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mcutie/mcutie/cmd/mcutie").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mcutie: %v\n%s", err, out)
	}
	// A free port can be taken between the probe and the broker's listen:
	// try a few.
	var lastErr error
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		cmd := exec.Command(bin, "--store", "memory", "--loops", "2", "--metrics-listen", "", "--listen", "tcp://"+addr)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			return "", err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_ = c.Close()
				stopBroker = func() {
					_ = cmd.Process.Signal(syscall.SIGTERM)
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						_ = cmd.Process.Kill()
					}
					_ = os.RemoveAll(dir)
				}
				return addr, nil
			}
			select {
			case lastErr = <-exited:
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		_ = cmd.Process.Kill()
		if lastErr == nil {
			lastErr = fmt.Errorf("broker on %s did not accept within 10s", addr)
		}
	}
	return "", lastErr
}

var stopBroker = func() {
	if brokerDir != "" {
		_ = os.RemoveAll(brokerDir)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopBroker()
	os.Exit(code)
}

// runJSON runs the command line with --json and returns the parsed report.
func runJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--addr", testBroker(t), "--json", "--progress=false", "--duration", "1s", "--drain", "3s", "--loops", "2"}, args...)
	if code := realMain(args, &out, &errOut); code != 0 {
		t.Fatalf("bench %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut.String())
	}
	var r Report
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("bench %s: output is not a JSON report: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	if len(r.Errors) > 0 {
		t.Fatalf("bench %s: errors: %+v", strings.Join(args, " "), r.Errors)
	}
	if r.Connections.Failed > 0 || r.Connections.Dropped > 0 {
		t.Fatalf("bench %s: connections %+v", strings.Join(args, " "), r.Connections)
	}
	return &r
}

func TestPubSubScenarios(t *testing.T) {
	f := func(qos int, args ...string) {
		t.Helper()
		args = append(args, "--qos", strconv.Itoa(qos))
		r := runJSON(t, args...)
		m := r.Messages
		if m == nil || m.ReceivedTotal == 0 || m.Received == 0 || m.SentTotal == 0 {
			t.Fatalf("%v: nothing received: %+v", args, m)
		}
		if r.Latency == nil || r.Latency.Count == 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
			t.Fatalf("%v: bad latency %+v", args, r.Latency)
		}
		if m.Unexpected != 0 || m.Foreign != 0 || m.Rejected != 0 {
			t.Fatalf("%v: anomalies %+v", args, m)
		}
		if qos > 0 && m.Lost != 0 {
			t.Fatalf("%v: lost %d of %d at QoS %d", args, m.Lost, m.Expected, qos)
		}
		if qos == 2 && m.Duplicated != 0 {
			t.Fatalf("%v: %d duplicates at QoS 2", args, m.Duplicated)
		}
		if m.Lost == 0 && m.ReceivedTotal != m.Expected+m.Duplicated {
			t.Fatalf("%v: received %d, expected %d + %d duplicates", args, m.ReceivedTotal, m.Expected, m.Duplicated)
		}
	}
	f(0, "--scenario", "fanin", "--publishers", "3", "--rate", "300")
	f(1, "--scenario", "fanin", "--publishers", "3", "--rate", "300", "--mqtt", "5")
	f(2, "--scenario", "fanin", "--publishers", "3", "--rate", "300")
	f(1, "--scenario", "fanout", "--subscribers", "5", "--rate", "300")
	f(2, "--scenario", "fanout", "--subscribers", "5", "--rate", "300", "--mqtt", "5", "--payload", "1KiB")
	f(1, "--scenario", "p2p", "--publishers", "4", "--rate", "300")
	f(2, "--scenario", "p2p", "--publishers", "4", "--rate", "300", "--mqtt", "3")
	f(1, "--scenario", "shared", "--publishers", "2", "--subscribers", "3", "--rate", "300", "--mqtt", "5")
	f(1, "--scenario", "wildcard", "--publishers", "2", "--subscribers", "4", "--topics", "50", "--rate", "300")
	f(0, "--scenario", "device", "--publishers", "50", "--subscribers", "2", "--total-rate", "500")
	f(1, "--scenario", "device", "--publishers", "50", "--subscribers", "3", "--total-rate", "500", "--mqtt", "5")
	// As fast as possible, bounded by --count: every message sent, acknowledged and delivered.
	f(1, "--scenario", "p2p", "--publishers", "2", "--count", "2000", "--duration", "20s")
}

func TestCountBoundsARun(t *testing.T) {
	r := runJSON(t, "--scenario", "fanin", "--publishers", "2", "--qos", "1", "--count", "500", "--duration", "20s")
	if m := r.Messages; m.SentTotal != 1000 || m.ReceivedTotal != 1000 || m.Lost != 0 {
		t.Fatalf("want exactly 1000 sent and received, got %+v", m)
	}
	if r.WindowSec >= 20 {
		t.Fatalf("the run should end when the count is reached, took %.1fs", r.WindowSec)
	}
}

func TestRetained(t *testing.T) {
	r := runJSON(t, "--scenario", "retained", "--topics", "300", "--qos", "1", "--subscribers", "2")
	if r.Retained == nil || !r.Retained.Complete || r.Retained.Topics != 300 {
		t.Fatalf("retained: %+v", r.Retained)
	}
	if m := r.Messages; m.ReceivedTotal != 600 || m.Lost != 0 || m.Duplicated != 0 {
		t.Fatalf("want 600 deliveries: %+v", m)
	}
	// Clean-up emptied the topics: a second run over fresh topics sees only its own.
	r = runJSON(t, "--scenario", "retained", "--topics", "100", "--mqtt", "5")
	if m := r.Messages; m.ReceivedTotal != 100 || !r.Retained.Complete {
		t.Fatalf("second run: %+v %+v", m, r.Retained)
	}
}

func TestConnectAndIdle(t *testing.T) {
	r := runJSON(t, "--scenario", "connect", "--conns", "60", "--connect-concurrency", "16", "--pid", strconv.Itoa(os.Getpid()))
	if r.Connections.OK != 60 || r.Connections.PerSec <= 0 || r.Connections.Connack == nil || r.Connections.Connack.Count != 60 {
		t.Fatalf("connect: %+v", r.Connections)
	}
	if r.Broker == nil || r.Broker.RSS == 0 {
		t.Fatalf("connect: --pid gave no broker stats: %+v", r.Broker)
	}
	r = runJSON(t, "--scenario", "idle", "--conns", "40", "--keepalive", "2", "--duration", "1500ms", "--source-addrs", "3", "--pid", strconv.Itoa(os.Getpid()))
	if r.Idle == nil || r.Idle.Held != 40 || r.Idle.RSSAfter == 0 {
		t.Fatalf("idle: %+v", r.Idle)
	}
	if r.Idle.PingsSent == 0 || r.Idle.PingsRecv == 0 {
		t.Fatalf("idle: keep-alive 2s held 1.5s should have pinged: %+v", r.Idle)
	}
	if r.Params.SourceAddrs != 3 {
		t.Fatalf("idle: source addresses %d, want 3", r.Params.SourceAddrs)
	}
}

func TestTableOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--addr", testBroker(t), "--scenario", "p2p", "--publishers", "2", "--rate", "200", "--duration", "500ms", "--qos", "1"}
	if code := realMain(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"received", "lost/dup/ooo", "latency", "p99.9", "connections"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	f := func(addr, want string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := realMain([]string{"--addr", addr, "--duration", "1s"}, &out, &errOut); code != 2 {
			t.Fatalf("--addr %s: exit %d, want 2 (usage error)", addr, code)
		}
		if !strings.Contains(errOut.String(), want) {
			t.Fatalf("--addr %s: error %q lacks %q", addr, errOut.String(), want)
		}
	}
	f("10.0.0.1:1883", "not a loopback address")
	f("192.168.1.10:1883", "not a loopback address")
	f("8.8.8.8:1883", "not a loopback address")
	f("[2001:db8::1]:1883", "not a loopback address")
	f("example.com:1883", "IP literal or localhost")
	f("127.0.0.1", "want host:port")
	f("127.0.0.1:0", "bad port")
}

func TestLoopbackAddr(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		a, err := loopbackAddr(in)
		if err != nil || a.String() != want {
			t.Fatalf("loopbackAddr(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	f("127.0.0.1:1883", "127.0.0.1:1883")
	f("127.3.2.1:80", "127.3.2.1:80")
	f("localhost:1883", "127.0.0.1:1883")
	f("[::1]:1883", "[::1]:1883")
	f("[::ffff:127.0.0.1]:1883", "127.0.0.1:1883")
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	help := errOut.String()
	for _, s := range scenarioOrder {
		if !strings.Contains(help, "  "+s+" ") {
			t.Fatalf("--help does not describe scenario %s", s)
		}
	}
	fs := newFlagSet(&config{}, &bytes.Buffer{})
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(help, "-"+fl.Name+" ") && !strings.Contains(help, "-"+fl.Name+"\n") {
			t.Errorf("--help does not document --%s", fl.Name)
		}
	})
}

func TestBadFlags(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := realMain(append([]string{"--addr", "127.0.0.1:1"}, args...), &out, &errOut); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), want) {
			t.Fatalf("%v: error %q lacks %q", args, errOut.String(), want)
		}
	}
	f("unknown scenario", "--scenario", "nope")
	f("--qos 3", "--qos", "3")
	f("--payload 8", "--payload", "8")
	f("--payload 131072", "--payload", "128KiB")
	f("--duration 2h0m0s", "--duration", "2h")
	f("--mqtt 6", "--mqtt", "6")
	f("must match", "--scenario", "p2p", "--publishers", "2", "--subscribers", "3")
}

func TestParseSize(t *testing.T) {
	f := func(in string, want int) {
		t.Helper()
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Fatalf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	f("16", 16)
	f("64B", 64)
	f("1KiB", 1024)
	f("1k", 1024)
	f("64KiB", 65536)
	f("64 KB", 65536)
	if _, err := parseSize("lots"); err == nil {
		t.Fatal("parseSize(lots) did not fail")
	}
}

func TestUnreachableBrokerFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var out, errOut bytes.Buffer
	code := realMain([]string{"--addr", addr, "--scenario", "fanin", "--publishers", "1", "--duration", "1s", "--progress=false"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "no connection came up") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

// TestDeviceFlags: --total-rate spreads over the devices, the device
// scenario refuses to run unpaced, and --rate with --total-rate is an
// error.
func TestDeviceFlags(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "device", "--publishers", "1000", "--total-rate", "20000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 20 || c.Subscribers != 2 {
		t.Errorf("rate %v, subscribers %d: want 20 per device and the preset's 2", c.Rate, c.Subscribers)
	}
	for _, args := range [][]string{
		{"--scenario", "device"},
		{"--scenario", "device", "--rate", "5", "--total-rate", "500"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
