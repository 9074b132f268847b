//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// config is the parsed command line.
type config struct {
	Scenario           string
	Addr               string
	addr               netip.AddrPort
	QoS                int
	Payload            int
	payloadFlag        string
	Publishers         int
	Subscribers        int
	Rate               float64
	TotalRate          float64
	Duration           time.Duration
	Count              uint64
	MQTT               int
	PID                int
	JSON               bool
	Topics             int
	Conns              int
	KeepAlive          int
	Loops              int
	Window             int
	ConnectConcurrency int
	ConnectRate        float64
	ConnectTimeout     time.Duration
	SourceAddrs        int
	Drain              time.Duration
	Rest               time.Duration
	RestSettle         time.Duration
	Progress           bool
	SessionExpiry      uint
}

// preset holds a scenario's defaults for the flags the user did not give.
type preset struct {
	summary                  string
	publishers, subscribers  int
	topics, conns, keepAlive int
}

var presets = map[string]preset{
	"fanin":    {summary: "N publishers → 1 subscriber, one topic", publishers: 10, subscribers: 1},
	"fanout":   {summary: "1 publisher → N subscribers, one topic", publishers: 1, subscribers: 50},
	"p2p":      {summary: "N pairs, one topic each (--publishers pairs)", publishers: 50, subscribers: 50},
	"shared":   {summary: "N publishers → one $share group of M subscribers", publishers: 10, subscribers: 5},
	"wildcard": {summary: "N publishers over --topics topics → M subscribers on + and # filters", publishers: 10, subscribers: 10, topics: 1000},
	"retained": {summary: "set --topics retained messages, then time a # subscriber receiving them all", publishers: 1, subscribers: 1, topics: 10000},
	"connect":  {summary: "connect storm: --conns connections, connections/s and CONNACK latency", conns: 1000},
	"idle":     {summary: "hold --conns connections with keep-alive; broker RSS per connection (needs --pid)", conns: 1000, keepAlive: 60},
	"device":   {summary: "N devices, each on its own topic at its own paced rate (--total-rate), one PUBLISH per write, → M subscribers on a + filter", publishers: 1000, subscribers: 2},
}

var scenarioOrder = []string{"fanin", "fanout", "p2p", "shared", "wildcard", "retained", "connect", "idle", "device"}

// Bounds every run stays within.
const (
	maxDuration = time.Hour
	maxConns    = 500_000
	maxPayload  = 64 << 10
)

const usageHead = `bench — load generator for MQTT brokers (mcutie and others), loopback only.

Usage: go run ./bench --scenario NAME [flags]

Every run is bounded in time and count, stops by itself, and only connects
to --addr, which must be a loopback address (127.0.0.0/8 or [::1]).

Scenarios (each a preset of the flags below; flags given win):
`

const usageTail = `
Reports messages sent and received per second (received is the headline),
latency p50/p90/p99/p99.9/max from a send timestamp carried in each payload
(with --rate: from the scheduled send time), lost / duplicated / out-of-order
deliveries (the payload carries publisher id and sequence number), connect
errors and, with --pid, the broker's CPU seconds over the measured window,
CPU µs per delivered message, RSS and peak RSS.

With --rate 0, QoS 0 publishers send as fast as their sockets take bytes:
an overload test of how the broker sheds load, whose latencies include time
queued in socket buffers. For latency at a given load, give --rate.

Exit status: 0 after a completed run, whatever it measured; 1 when the run
could not be made (e.g. no connection came up); 2 on a bad flag.

Examples:
  go run ./bench --scenario fanin --qos 1 --pid $(pgrep -n mcutie)
  go run ./bench --scenario fanout --subscribers 200 --rate 1000 --json
  go run ./bench --scenario device --publishers 1000 --total-rate 20000 --qos 1 --pid $(pgrep -n mcutie)
  go run ./bench --scenario idle --conns 70000 --source-addrs 4 --pid $(pgrep -n mcutie)

Flags:
`

// newFlagSet declares every flag into c.
func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Scenario, "scenario", "fanin", "scenario: "+strings.Join(scenarioOrder, ", "))
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:1883", "broker address host:port; must be loopback (127.0.0.0/8, [::1] or localhost)")
	fs.IntVar(&c.QoS, "qos", 0, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.StringVar(&c.payloadFlag, "payload", "64", "payload size: 16 B … 64 KiB (e.g. 16, 1KiB, 64KiB); the first 16 bytes carry timestamp, publisher id and sequence")
	fs.IntVar(&c.Publishers, "publishers", 0, "publishers (p2p: pairs) (0: the scenario's preset)")
	fs.IntVar(&c.Subscribers, "subscribers", 0, "subscribers (shared: group members) (0: the scenario's preset)")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second per publisher; 0: as fast as possible, with at most --window unacknowledged QoS 1/2 messages per publisher")
	fs.Float64Var(&c.TotalRate, "total-rate", 0, "messages per second over all publishers, spread evenly (sets --rate to it / --publishers); device needs it or --rate")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the measured window, at most 1h (retained: bound on delivery; connect: bound on the storm; idle: how long connections are held)")
	fs.Uint64Var(&c.Count, "count", 0, "messages per publisher; the run ends when every publisher has sent and had acknowledged this many, or at --duration (0: --duration only)")
	fs.IntVar(&c.MQTT, "mqtt", 4, "MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0)")
	fs.IntVar(&c.PID, "pid", 0, "broker process id: report its CPU (from /proc/PID/stat) and RSS (from /proc/PID/status) (0: off)")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON instead of a table")
	fs.IntVar(&c.Topics, "topics", 0, "topics (wildcard: topic space size; retained: retained messages K) (0: the scenario's preset)")
	fs.IntVar(&c.Conns, "conns", 0, "connections for connect and idle (0: the scenario's preset, 1000)")
	fs.IntVar(&c.KeepAlive, "keepalive", 0, "keep-alive seconds in CONNECT; PINGREQ is sent after half of it without traffic (0: the preset: 60 for idle, 30 otherwise)")
	fs.IntVar(&c.Loops, "loops", 0, "client event loops (0: GOMAXPROCS, at most 8)")
	fs.IntVar(&c.Window, "window", 64, "most unacknowledged QoS 1/2 messages per publisher (also capped by the broker's v5 Receive Maximum)")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 256, "connections in their handshake at once")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "new connections per second (0: as fast as --connect-concurrency allows)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "per connection: dial, CONNACK and SUBACK within this")
	fs.IntVar(&c.SourceAddrs, "source-addrs", 0, "bind connections round-robin to source addresses 127.0.0.1 … 127.0.0.N, each good for ~28k connections to one port (0: enough for the connection count)")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "after the window, wait at most this for messages in flight to arrive before counting losses")
	fs.UintVar(&c.SessionExpiry, "session-expiry", 0, "0: clean sessions; N > 0: persistent sessions (3.x Clean Session 0, kept as long as the broker keeps them; v5 Clean Start 0 with Session Expiry Interval N s), so a broker with durable state stores the QoS 1/2 messages in flight")
	fs.DurationVar(&c.Rest, "rest", 0, "idle: first measure the broker at rest, with no connection from the bench, for this long: CPU ms and context switches per second (needs --pid; 0: skip)")
	fs.DurationVar(&c.RestSettle, "rest-settle", 12*time.Second, "idle with --rest: wait this long before the rest window (mcutie on Badger stops Badger's compactors after 10 s without a write)")
	fs.BoolVar(&c.Progress, "progress", true, "print a progress line on stderr every second for runs longer than 3s")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, usageHead)
		for _, n := range scenarioOrder {
			fmt.Fprintf(w, "  %-9s %s\n", n, presets[n].summary)
		}
		fmt.Fprint(w, usageTail)
		fs.PrintDefaults()
	}
	return fs
}

// parseConfig parses args and applies the scenario's preset.
func parseConfig(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	p, ok := presets[c.Scenario]
	if !ok {
		return nil, fmt.Errorf("bench: unknown scenario %q (want one of %s)", c.Scenario, strings.Join(scenarioOrder, ", "))
	}
	if c.Publishers == 0 {
		c.Publishers = p.publishers
	}
	if c.Subscribers == 0 {
		c.Subscribers = p.subscribers
	}
	if c.Scenario == "p2p" {
		switch {
		case set["publishers"] && !set["subscribers"]:
			c.Subscribers = c.Publishers
		case set["subscribers"] && !set["publishers"]:
			c.Publishers = c.Subscribers
		case c.Publishers != c.Subscribers:
			return nil, fmt.Errorf("bench: p2p runs pairs: --publishers (%d) and --subscribers (%d) must match", c.Publishers, c.Subscribers)
		}
	}
	if c.Topics == 0 {
		c.Topics = p.topics
	}
	if c.Conns == 0 {
		c.Conns = p.conns
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = p.keepAlive
		if c.KeepAlive == 0 {
			c.KeepAlive = 30
		}
	}
	if c.TotalRate > 0 {
		if set["rate"] {
			return nil, errors.New("bench: give --rate (per publisher) or --total-rate, not both")
		}
		c.Rate = c.TotalRate / float64(max(c.Publishers, 1))
	}
	if c.Scenario == "device" && c.Rate == 0 {
		return nil, errors.New("bench: device paces each device: give --total-rate (or --rate per device)")
	}
	var err error
	if c.addr, err = loopbackAddr(c.Addr); err != nil {
		return nil, err
	}
	if c.Payload, err = parseSize(c.payloadFlag); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("bench: "+format, a...))
		}
	}
	check(c.QoS >= 0 && c.QoS <= 2, "--qos %d: want 0, 1 or 2", c.QoS)
	check(c.SessionExpiry <= math.MaxUint32, "--session-expiry %d: at most 4294967295", c.SessionExpiry)
	check(c.MQTT >= 3 && c.MQTT <= 5, "--mqtt %d: want 3, 4 or 5", c.MQTT)
	check(c.Payload >= 16 && c.Payload <= maxPayload, "--payload %d: want 16 B … 64 KiB", c.Payload)
	check(c.Duration > 0 && c.Duration <= maxDuration, "--duration %v: want more than 0 and at most %v", c.Duration, maxDuration)
	check(c.Count <= math.MaxUint32, "--count %d: at most %d", c.Count, uint64(math.MaxUint32))
	check(c.Rate >= 0 && c.Rate <= 10_000_000, "--rate %v: want 0 … 10,000,000", c.Rate)
	check(c.TotalRate >= 0 && c.TotalRate <= 10_000_000, "--total-rate %v: want 0 … 10,000,000", c.TotalRate)
	if c.Scenario == "connect" || c.Scenario == "idle" {
		check(c.Conns >= 1, "--conns %d: want at least 1", c.Conns)
	} else {
		check(c.Publishers >= 1 && c.Publishers <= 100_000, "--publishers %d: want 1 … 100000", c.Publishers)
		check(c.Subscribers >= 1 && c.Subscribers <= 100_000, "--subscribers %d: want 1 … 100000", c.Subscribers)
		check(c.Publishers+c.Subscribers <= maxConns, "--publishers + --subscribers: at most %d connections", maxConns)
	}
	check(c.Topics >= 0 && c.Topics <= 1_000_000, "--topics %d: want 1 … 1000000", c.Topics)
	check(c.Conns >= 0 && c.Conns <= maxConns, "--conns %d: want 1 … %d", c.Conns, maxConns)
	check(c.KeepAlive >= 0 && c.KeepAlive <= 65535, "--keepalive %d: want 0 … 65535", c.KeepAlive)
	check(c.Loops >= 0 && c.Loops <= 64, "--loops %d: want 0 … 64", c.Loops)
	check(c.Window >= 1 && c.Window <= 65535, "--window %d: want 1 … 65535", c.Window)
	check(c.ConnectConcurrency >= 1 && c.ConnectConcurrency <= 100_000, "--connect-concurrency %d: want 1 … 100000", c.ConnectConcurrency)
	check(c.ConnectRate >= 0, "--connect-rate %v: want 0 or more", c.ConnectRate)
	check(c.ConnectTimeout > 0 && c.ConnectTimeout <= 5*time.Minute, "--connect-timeout %v: want more than 0 and at most 5m", c.ConnectTimeout)
	check(c.SourceAddrs >= 0 && c.SourceAddrs <= 254, "--source-addrs %d: want 0 … 254", c.SourceAddrs)
	check(c.Drain >= 0 && c.Drain <= 5*time.Minute, "--drain %v: want 0 … 5m", c.Drain)
	check(c.PID >= 0, "--pid %d: want a process id", c.PID)
	check(c.Rest >= 0 && c.Rest <= maxDuration, "--rest %v: want 0 … %v", c.Rest, maxDuration)
	check(c.RestSettle >= 0 && c.RestSettle <= maxDuration, "--rest-settle %v: want 0 … %v", c.RestSettle, maxDuration)
	if (c.Scenario == "wildcard" || c.Scenario == "retained") && c.Topics < 1 {
		errs = append(errs, fmt.Errorf("bench: --topics must be at least 1 for %s", c.Scenario))
	}
	if c.SourceAddrs > 1 && !c.addr.Addr().Is4() {
		errs = append(errs, errors.New("bench: --source-addrs needs an IPv4 --addr"))
	}
	return errors.Join(errs...)
}

// loopbackAddr parses host:port and refuses anything but a loopback
// address: this tool sends load, and load goes to this machine only.
func loopbackAddr(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bench: --addr %q: %v (want host:port, e.g. 127.0.0.1:1883)", s, err)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1" // no resolver: localhost is loopback by definition here
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bench: --addr %q: the host must be an IP literal or localhost (no name resolution), got %q", s, host)
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("bench: --addr %s is not a loopback address: this load generator only targets 127.0.0.0/8 or [::1]", s)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return netip.AddrPort{}, fmt.Errorf("bench: --addr %q: bad port %q", s, port)
	}
	return netip.AddrPortFrom(ip, uint16(pn)), nil
}

// parseSize parses a byte count: a number with an optional B, K/KB/KiB or
// M/MB/MiB suffix (binary multiples either way).
func parseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	mult := 1
	lower := strings.ToLower(t)
	for _, suf := range []struct {
		s string
		m int
	}{{"kib", 1 << 10}, {"kb", 1 << 10}, {"k", 1 << 10}, {"mib", 1 << 20}, {"mb", 1 << 20}, {"m", 1 << 20}, {"b", 1}} {
		if strings.HasSuffix(lower, suf.s) {
			t, mult = strings.TrimSpace(t[:len(t)-len(suf.s)]), suf.m
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bench: --payload %q: want a size such as 64, 1KiB or 64KiB", s)
	}
	return n * mult, nil
}
