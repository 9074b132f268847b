package e2e

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/monitor"
	"github.com/mcutie/mcutie/store"
)

// Observability: /metrics, /healthz and /readyz over HTTP (package
// monitor, wired as cmd/mcutie wires it) and the $SYS topics, checked with
// real clients.

// observed is a broker on a Badger store with the monitor endpoint.
type observed struct {
	*testBroker
	st  *store.Badger
	mon *monitor.Server
	url string
}

func startObserved(t *testing.T, opts broker.Options) *observed {
	t.Helper()
	set := metrics.NewSet() // the store's histograms, as the binary registers them
	st, err := store.OpenBadger(store.BadgerOptions{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = st
	t.Cleanup(func() { _ = st.Close() }) // cleanups run last first: after the broker stops
	tb := start(t, opts)
	mon := monitor.New(monitor.Options{
		Addr:    "127.0.0.1:0",
		Writers: []func(io.Writer){tb.B.WriteMetrics},
		Sets:    []*metrics.Set{set},
		Checks: []monitor.Check{
			{Name: "listeners", Fn: tb.srv.Ready},
			{Name: "store", Fn: func(context.Context) error { return st.Healthy() }},
		},
	})
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mon.Shutdown(context.Background()) })
	return &observed{testBroker: tb, st: st, mon: mon, url: "http://" + mon.Addr()}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics into series → value.
func scrape(t *testing.T, o *observed) map[string]float64 {
	t.Helper()
	code, body := httpGet(t, o.url+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics value in %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// sumPrefix adds every series whose name starts with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// TestMetricsAfterTraffic scrapes /metrics over HTTP after real clients
// connected, subscribed, published at QoS 0 and 1 and were refused, and
// checks that each family moved by exactly what the clients did.
func TestMetricsAfterTraffic(t *testing.T) {
	o := startObserved(t, broker.Options{})
	before := scrape(t, o)
	for _, name := range []string{"mcutie_connections", `mcutie_messages_received_total{qos="1"}`, "go_goroutines", "process_resident_memory_bytes", `mcutie_loop_inbox_length{loop="1"}`, `mcutie_loop_inbox_capacity{loop="0"}`} {
		if _, ok := before[name]; !ok {
			t.Fatalf("/metrics lacks %s", name)
		}
	}

	sink := newV3Sink()
	sub, _ := v3Paho(t, o.Addr, "obs-sub", false, sink, nil) // persistent: its QoS 1 messages go to the store
	v3Sub(t, sub, "obs/#", 1)
	pub, _ := v3Paho(t, o.Addr, "obs-pub", true, nil, nil)
	payload := strings.Repeat("p", 64)
	for i := 0; i < 20; i++ {
		v3Pub(t, pub, "obs/q1", 1, false, payload)
	}
	for i := 0; i < 10; i++ {
		v3Pub(t, pub, "obs/q0", 0, false, payload)
	}
	v3Pub(t, pub, "obs/retained", 0, true, "r")
	v3Pub(t, pub, "nobody/here", 0, false, "x")
	sink.waitN(t, 31)

	// A v5 CONNECT with an authentication method the broker does not
	// support is refused with CONNACK 0x8C [MQTT-3.1.4-1 / §4.12].
	r := dialRaw(t, o.Addr, codec.V5)
	cp := &codec.Connect{CleanStart: true, ClientID: []byte("obs-auth")}
	cp.Props.Set(codec.PropAuthMethod)
	cp.Props.AuthMethod = []byte("SCRAM-SHA-1")
	if ack := r.connect(cp); ack.Code != byte(codec.BadAuthenticationMethod) {
		t.Fatalf("CONNACK code 0x%x, want 0x8c", ack.Code)
	}

	want := map[string]float64{
		`mcutie_messages_received_total{qos="1"}`:                                       20,
		`mcutie_messages_received_total{qos="0"}`:                                       12,
		`mcutie_messages_sent_total{qos="1"}`:                                           20,
		`mcutie_messages_sent_total{qos="0"}`:                                           11,
		`mcutie_payload_received_bytes_total{qos="1"}`:                                  20 * 64,
		`mcutie_payload_sent_bytes_total{qos="1"}`:                                      20 * 64,
		`mcutie_packets_received_total{type="publish"}`:                                 32,
		`mcutie_packets_received_total{type="puback"}`:                                  20,
		`mcutie_packets_sent_total{type="puback"}`:                                      20,
		`mcutie_packets_sent_total{type="publish"}`:                                     31,
		`mcutie_packets_received_total{type="connect"}`:                                 3,
		`mcutie_packets_sent_total{type="connack"}`:                                     3,
		`mcutie_packets_received_total{type="subscribe"}`:                               1,
		`mcutie_packets_sent_total{type="suback"}`:                                      1,
		`mcutie_connects_total`:                                                         2,
		`mcutie_clients_connected`:                                                      2,
		`mcutie_subscriptions`:                                                          1,
		`mcutie_retained_messages`:                                                      1,
		`mcutie_connects_refused_total{code="0x8c",reason="bad_authentication_method"}`: 1,
		`mcutie_connections_rejected_total{reason="connect_refused"}`:                   1,
		`mcutie_messages_dropped_total{reason="queue_full"}`:                            0,
	}
	// Loops publish counter snapshots on their own tick (100 ms here),
	// so the families reach their values at different moments: wait for
	// all of them, then report any that did not.
	var m map[string]float64
	settled := func() bool {
		for name, w := range want {
			if got, ok := m[name]; !ok || got-before[name] != w {
				return false
			}
		}
		return sumPrefix(m, "mcutie_loop_messages_received_total{") == 32
	}
	deadline := time.Now().Add(10 * time.Second)
	for m = scrape(t, o); !settled() && time.Now().Before(deadline); m = scrape(t, o) {
		time.Sleep(50 * time.Millisecond)
	}
	for name, w := range want {
		if got, ok := m[name]; !ok || got-before[name] != w {
			t.Errorf("%s moved by %v (present %v), want %v", name, got-before[name], ok, w)
		}
	}
	// Wire bytes: at least the payloads, both ways.
	if d := m["mcutie_received_bytes_total"] - before["mcutie_received_bytes_total"]; d < 31*64 {
		t.Errorf("mcutie_received_bytes_total moved by %v", d)
	}
	if d := m["mcutie_sent_bytes_total"] - before["mcutie_sent_bytes_total"]; d < 30*64 {
		t.Errorf("mcutie_sent_bytes_total moved by %v", d)
	}
	// Per loop: the loops' traffic adds up to the totals.
	if in := sumPrefix(m, "mcutie_loop_messages_received_total{"); in != 32 {
		t.Errorf("sum of mcutie_loop_messages_received_total = %v, want 32", in)
	}
	if c := sumPrefix(m, "mcutie_loop_connections{"); c != m["mcutie_connections"] || c < 2 {
		t.Errorf("sum of mcutie_loop_connections = %v, mcutie_connections = %v", c, m["mcutie_connections"])
	}
	// The store committed the persistent session's records: its commit
	// histograms are on the same page.
	if m["mcutie_store_commit_batch_ops_count"] < 1 || m["mcutie_store_commit_seconds_count"] < 1 || m["mcutie_store_ops_total"] < 1 {
		t.Errorf("store histograms did not move: batch_ops_count=%v commit_seconds_count=%v ops=%v",
			m["mcutie_store_commit_batch_ops_count"], m["mcutie_store_commit_seconds_count"], m["mcutie_store_ops_total"])
	}
	if sumPrefix(m, "mcutie_store_commit_seconds_bucket{") < 1 {
		t.Error("no mcutie_store_commit_seconds_bucket series")
	}
}

// TestHealthAndReadiness: /healthz answers while the process serves;
// /readyz is 200 while the listeners run and the store is open, and 503
// naming the cause once the store is closed and once the listeners stop.
func TestHealthAndReadiness(t *testing.T) {
	o := startObserved(t, broker.Options{})
	if code, body := httpGet(t, o.url+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := httpGet(t, o.url+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if err := o.st.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, o.url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store: store: closed") || strings.Contains(body, "listeners") {
		t.Fatalf("/readyz with the store closed = %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	code, body = httpGet(t, o.url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "listeners: reactor: not ready") {
		t.Fatalf("/readyz with the listeners stopped = %d %q", code, body)
	}
	if code, _ := httpGet(t, o.url+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d after stop; liveness does not follow readiness", code)
	}
}

// sysValue returns the payload of the last message on topic.
func sysValue(ms []v3Msg, topic string) (string, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Topic == topic {
			return ms[i].Payload, true
		}
	}
	return "", false
}

// TestSysTopics: $SYS/broker/... topics arrive retained and on every
// interval, with Mosquitto's names and formats; their values follow the
// traffic; a "#" subscriber never sees them [MQTT-4.7.2-1]; a client
// cannot publish under $SYS/.
func TestSysTopics(t *testing.T) {
	o := startObserved(t, broker.Options{SysInterval: 200 * time.Millisecond, Version: "1.2.3"})
	all := newV3Sink()
	allc, _ := v3Paho(t, o.Addr, "sys-all", true, all, nil)
	v3Sub(t, allc, "#", 0)
	sys := newV3Sink()
	sysc, _ := v3Paho(t, o.Addr, "sys-sub", true, sys, nil)
	v3Sub(t, sysc, "$SYS/broker/#", 0)

	// A fresh subscriber first gets the retained values.
	late := newV3Sink()
	v3WaitFor(t, "a first $SYS round", func() bool { return o.B.Stats().SysPublished > 0 })
	latec, _ := v3Paho(t, o.Addr, "sys-late", true, late, nil)
	v3Sub(t, latec, "$SYS/broker/version", 0)
	if ms := late.waitN(t, 1); ms[0].Payload != "mcutie version 1.2.3" || !ms[0].Retained {
		t.Fatalf("$SYS/broker/version on subscribe = %+v, want retained \"mcutie version 1.2.3\"", ms[0])
	}

	var first string
	v3WaitFor(t, "publish/messages/received", func() bool {
		var ok bool
		first, ok = sysValue(sys.snapshot(), "$SYS/broker/publish/messages/received")
		return ok
	})
	n0, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("publish/messages/received = %q: %v", first, err)
	}
	pub, _ := v3Paho(t, o.Addr, "sys-pub", true, nil, nil)
	for i := 0; i < 5; i++ {
		v3Pub(t, pub, "plain/topic", 0, false, "m")
	}
	v3WaitFor(t, "publish/messages/received to count the 5 messages", func() bool {
		v, _ := sysValue(sys.snapshot(), "$SYS/broker/publish/messages/received")
		n, err := strconv.Atoi(v)
		return err == nil && n >= n0+5
	})
	v3WaitFor(t, "clients/connected = 4", func() bool {
		v, _ := sysValue(sys.snapshot(), "$SYS/broker/clients/connected")
		return v == "4"
	})
	// Each loop's counts are as of its last tick: the loop that took
	// sys-late's SUBSCRIBE may publish them a round later than the
	// connection count. They must get there.
	v3WaitFor(t, "subscriptions/count = 3 (#, $SYS/broker/#, $SYS/broker/version)", func() bool {
		v, _ := sysValue(sys.snapshot(), "$SYS/broker/subscriptions/count")
		return v == "3"
	})

	ms := sys.snapshot()
	uptime := regexp.MustCompile(`^[0-9]+ seconds$`)
	load := regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)
	integer := regexp.MustCompile(`^[0-9]+$`)
	for topic, re := range map[string]*regexp.Regexp{
		"$SYS/broker/uptime":                       uptime,
		"$SYS/broker/version":                      regexp.MustCompile(`^mcutie version 1\.2\.3$`),
		"$SYS/broker/clients/total":                integer,
		"$SYS/broker/clients/maximum":              integer,
		"$SYS/broker/messages/received":            integer,
		"$SYS/broker/messages/sent":                integer,
		"$SYS/broker/publish/messages/sent":        integer,
		"$SYS/broker/bytes/received":               integer,
		"$SYS/broker/bytes/sent":                   integer,
		"$SYS/broker/subscriptions/count":          integer,
		"$SYS/broker/retained messages/count":      integer,
		"$SYS/broker/store/messages/count":         integer,
		"$SYS/broker/load/messages/received/1min":  load,
		"$SYS/broker/load/publish/sent/15min":      load,
		"$SYS/broker/load/bytes/received/5min":     load,
		"$SYS/broker/load/connections/1min":        load,
		"$SYS/broker/publish/messages/dropped":     integer,
		"$SYS/broker/clients/disconnected":         integer,
		"$SYS/broker/shared_subscriptions/count":   integer,
		"$SYS/broker/load/publish/received/1min":   load,
		"$SYS/broker/load/messages/sent/5min":      load,
		"$SYS/broker/publish/bytes/received":       integer,
		"$SYS/broker/load/publish/dropped/15min":   load,
		"$SYS/broker/load/bytes/sent/1min":         load,
		"$SYS/broker/publish/bytes/sent":           integer,
		"$SYS/broker/messages/inflight":            integer,
		"$SYS/broker/clients/expired":              integer,
		"$SYS/broker/messages/queued":              integer,
		"$SYS/broker/load/messages/received/15min": load,
	} {
		v, ok := sysValue(ms, topic)
		if !ok || !re.MatchString(v) {
			t.Errorf("%s = %q (received %v), want %v", topic, v, ok, re)
		}
	}

	// [MQTT-4.7.2-1] "#" does not match topics beginning with '$'.
	for _, m := range all.waitN(t, 5) {
		if strings.HasPrefix(m.Topic, "$") {
			t.Fatalf("a \"#\" subscriber received %s", m.Topic)
		}
	}
	if got := len(all.snapshot()); got != 5 {
		t.Fatalf("\"#\" subscriber received %d messages, want the 5 plain ones", got)
	}

	// A client cannot write under $SYS/: v5 learns it (0x87), nothing is
	// delivered and the retained value stays the broker's.
	r, _ := v5RawConnect(t, o.Addr, "sys-faker", nil)
	if code := r.publish(&codec.Publish{Topic: []byte("$SYS/broker/version"), Payload: []byte("fake"), QoS: 1, Retain: true}); code != codec.NotAuthorized {
		t.Fatalf("PUBLISH to $SYS/ answered 0x%x, want 0x87", byte(code))
	}
	late2 := newV3Sink()
	c2, _ := v3Paho(t, o.Addr, "sys-late2", true, late2, nil)
	v3Sub(t, c2, "$SYS/broker/version", 0)
	if ms := late2.waitN(t, 1); ms[0].Payload != "mcutie version 1.2.3" {
		t.Fatalf("$SYS/broker/version after a client's PUBLISH = %q", ms[0].Payload)
	}
	for _, m := range sys.snapshot() {
		if m.Payload == "fake" {
			t.Fatal("a client's PUBLISH to $SYS/ was delivered")
		}
	}
	v3WaitFor(t, "the refused PUBLISH to be counted", func() bool {
		return scrape(t, o)[`mcutie_acl_denied_total{access="publish"}`] == 1
	})
}

// TestSysTopicsMosquittoSub reads $SYS with mosquitto_sub: three values of
// $SYS/broker/bytes/sent, the retained one first, growing as the broker
// sends the subscriber its own $SYS messages.
func TestSysTopicsMosquittoSub(t *testing.T) {
	bin := mosqBin(t, "mosquitto_sub")
	o := startObserved(t, broker.Options{SysInterval: 200 * time.Millisecond})
	v3WaitFor(t, "a first $SYS round", func() bool { return o.B.Stats().SysPublished > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", mosqPort(o.testBroker), "-V", "mqttv311",
		"-t", "$SYS/broker/bytes/sent", "-t", "$SYS/broker/uptime", "-C", "6", "-W", "10", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out)
	}
	var sent []int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		topic, val, _ := strings.Cut(line, " ")
		switch topic {
		case "$SYS/broker/bytes/sent":
			n, err := strconv.Atoi(val)
			if err != nil {
				t.Fatalf("bytes/sent = %q", val)
			}
			sent = append(sent, n)
		case "$SYS/broker/uptime":
			if !regexp.MustCompile(`^[0-9]+ seconds$`).MatchString(val) {
				t.Fatalf("uptime = %q", val)
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	if len(sent) < 2 || sent[len(sent)-1] <= sent[0] {
		t.Fatalf("bytes/sent values %v: want at least two, growing", sent)
	}
}
