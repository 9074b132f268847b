package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
)

// Interoperability with the mosquitto command-line clients (mosquitto_pub,
// mosquitto_sub 2.0.x), speaking MQTT 3.1.1 (-V mqttv311) and 3.1
// (-V mqttv31). The tests are skipped when the binaries are missing.

// mosqBin returns the path of a mosquitto client or skips the test.
func mosqBin(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// mosqPort returns the port of tb's address.
func mosqPort(tb *testBroker) string {
	return tb.Addr[strings.LastIndexByte(tb.Addr, ':')+1:]
}

// mosqSubProc is a running mosquitto_sub.
type mosqSubProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	msgs   []string // lines of -F output, "MSG " prefix removed
	subAck chan struct{}
	done   chan error
}

// startMosqSub runs mosquitto_sub with -d (so it reports the SUBACK) and
// the given arguments, and returns once the broker has acknowledged the
// subscription. Messages are printed as "MSG <qos>|<retain>|<topic>|<payload>".
func startMosqSub(t *testing.T, tb *testBroker, args ...string) *mosqSubProc {
	t.Helper()
	bin := mosqBin(t, "mosquitto_sub")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	full := append([]string{"-h", "127.0.0.1", "-p", mosqPort(tb), "-d", "-F", "MSG %q|%r|%t|%p"}, args...)
	// The debug lines are block-buffered on a pipe: unbuffer them, or the
	// SUBACK line arrives only when the process exits.
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Skip("stdbuf not installed")
	}
	cmd := exec.CommandContext(ctx, stdbuf, append([]string{"-oL", bin}, full...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	m := &mosqSubProc{cmd: cmd, subAck: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		acked := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "MSG "):
				m.mu.Lock()
				m.msgs = append(m.msgs, strings.TrimPrefix(line, "MSG "))
				m.mu.Unlock()
			case !acked && strings.Contains(line, "received SUBACK"):
				acked = true
				close(m.subAck)
			}
		}
		m.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-m.subAck:
	case err := <-m.done:
		t.Fatalf("mosquitto_sub %v exited before its SUBACK: %v", args, err)
	case <-time.After(v3Wait):
		t.Fatalf("mosquitto_sub %v: no SUBACK within %v", args, v3Wait)
	}
	return m
}

// wait waits for mosquitto_sub to exit (it was started with -C) and
// returns the messages it printed.
func (m *mosqSubProc) wait(t *testing.T) []string {
	t.Helper()
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v (printed %q)", err, m.msgs)
		}
	case <-time.After(v3Wait):
		m.mu.Lock()
		defer m.mu.Unlock()
		t.Fatalf("mosquitto_sub did not exit within %v; printed %q", v3Wait, m.msgs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

// mosqPub runs mosquitto_pub with args; stdin feeds -l.
func mosqPub(t *testing.T, tb *testBroker, stdin string, args ...string) {
	t.Helper()
	bin := mosqBin(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", mosqPort(tb)}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// TestMosq_PubSub: what mosquitto_pub sends at QoS 0, 1 and 2 reaches
// mosquitto_sub -C N complete and in order, at the QoS asked for, with
// MQTT 3.1.1 and MQTT 3.1.
func TestMosq_PubSub(t *testing.T) {
	mosqBin(t, "mosquitto_sub")
	mosqBin(t, "mosquitto_pub")
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []string{"mqttv311", "mqttv31"} {
		for q := 0; q < 3; q++ {
			topic := fmt.Sprintf("mosq/%s/%d", v, q)
			sub := startMosqSub(t, tb, "-V", v, "-q", fmt.Sprint(q), "-C", "5", "-t", topic)
			mosqPub(t, tb, "m1\nm2\nm3\nm4\nm5\n", "-V", v, "-q", fmt.Sprint(q), "-t", topic, "-l")
			got := sub.wait(t)
			var want []string
			for i := 1; i <= 5; i++ {
				want = append(want, fmt.Sprintf("%d|0|%s|m%d", q, topic, i))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s QoS %d: mosquitto_sub printed %q, want %q", v, q, got, want)
			}
		}
	}
}

// TestMosq_Retained: a message published with mosquitto_pub -r is stored
// and delivered to a later mosquitto_sub with RETAIN=1, the newest one
// replacing the older (3.1.1 MQTT-3.3.1-5/-6/-8).
func TestMosq_Retained(t *testing.T) {
	mosqBin(t, "mosquitto_sub")
	mosqBin(t, "mosquitto_pub")
	t.Parallel()
	tb := start(t, broker.Options{})
	mosqPub(t, tb, "", "-V", "mqttv311", "-q", "1", "-r", "-t", "mosq/ret", "-m", "old")
	mosqPub(t, tb, "", "-V", "mqttv31", "-q", "1", "-r", "-t", "mosq/ret", "-m", "kept")
	for _, v := range []string{"mqttv311", "mqttv31"} {
		sub := startMosqSub(t, tb, "-V", v, "-q", "1", "-C", "1", "-t", "mosq/#")
		if got := sub.wait(t); fmt.Sprint(got) != "[1|1|mosq/ret|kept]" {
			t.Errorf("%s: mosquitto_sub printed %q, want [1|1|mosq/ret|kept]", v, got)
		}
	}
}

// TestMosq_WillOnKill: mosquitto_sub's will (--will-topic) is published
// when the process is killed with SIGKILL (3.1.1 MQTT-3.1.2-8), to a paho
// subscriber, with MQTT 3.1.1 and 3.1.
func TestMosq_WillOnKill(t *testing.T) {
	mosqBin(t, "mosquitto_sub")
	t.Parallel()
	tb := start(t, broker.Options{})
	sink := newV3Sink()
	c, _ := v3Paho(t, tb.Addr, "mosq-will-watch", true, sink, nil)
	v3Sub(t, c, "mosq/will/#", 1)
	for _, v := range []string{"mqttv311", "mqttv31"} {
		topic := "mosq/will/" + v
		sub := startMosqSub(t, tb, "-V", v, "-t", "mosq/idle", "--will-topic", topic, "--will-payload", "bye-"+v, "--will-qos", "1")
		if err := sub.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		got := sink.waitPayload(t, "bye-"+v)
		if m := got[len(got)-1]; m.Topic != topic || m.QoS != 1 || m.Retained {
			t.Fatalf("%s will: %+v", v, m)
		}
	}
}
