//go:build linux

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// scenario is one bench invocation, run against every target of a suite.
type scenario struct {
	ID    string   // short key, e.g. "fanin-q0"
	Title string   // what it measures, for the report
	Args  []string // bench flags (without --addr, --pid, --json)
	// OwnTargets: only targets whose Only lists this id run it.
	OwnTargets bool
	// RefScenario: the other brokers' rows of this scenario are shown as
	// the reference for an OwnTargets scenario (Badger vs in-memory).
	RefScenario string
	// FixedRate: the offered load is fixed, so latency is the headline and
	// the delivered rate only confirms the load was carried.
	FixedRate bool
	// HalfOfRef: --rate is set per publisher to half of the delivered
	// rate Mosquitto (or the first target) reached in scenario "fanin-q0",
	// divided over Publishers.
	HalfOfRef  bool
	Publishers int
	Duration   time.Duration // the run's --duration, for its time bound
}

// args returns the bench flags, with the rate resolved for HalfOfRef.
func (s scenario) args(halfRate float64) []string {
	a := append([]string{}, s.Args...)
	if s.HalfOfRef {
		per := halfRate / float64(s.Publishers)
		a = append(a, "--rate", strconv.FormatFloat(per, 'f', 0, 64))
	}
	return append(a, "--duration", s.Duration.String())
}

// suiteConfig sets the scenario lengths.
type suiteConfig struct {
	Duration  time.Duration // throughput scenarios
	LatDur    time.Duration // fixed-rate latency scenarios
	IdleConns int
	Loops     []int  // scaling: the --loops values
	Only      string // comma-separated scenario ids to keep (empty: all)
}

func pubsub(id, title string, d time.Duration, args ...string) scenario {
	return scenario{ID: id, Title: title, Args: args, Duration: d}
}

// compareScenarios are the standard scenarios of `make bench-compare`;
// they cover every target of issue 5.
func compareScenarios(c suiteConfig) []scenario {
	d, ld := c.Duration, c.LatDur
	return []scenario{
		pubsub("fanin-q0", "QoS 0, 64 B, fan-in 10 → 1, as fast as possible", d, "--scenario", "fanin", "--qos", "0"),
		pubsub("fanout-q0", "QoS 0, 64 B, fan-out 1 → 50, as fast as possible", d, "--scenario", "fanout", "--qos", "0"),
		pubsub("p2p-q0", "QoS 0, 64 B, 50 publisher → subscriber pairs, as fast as possible", d, "--scenario", "p2p", "--qos", "0"),
		pubsub("fanin-q1", "QoS 1, 64 B, fan-in 10 → 1, window 64 per publisher; mcutie --store memory", d, "--scenario", "fanin", "--qos", "1"),
		{ID: "fanin-q1-badger", Title: "QoS 1, 64 B, fan-in 10 → 1 with persistent sessions (--session-expiry: 3.1.1 Clean Session 0), so every message in flight is stored; mcutie on Badger with the default --durability commit (a PUBACK waits for its batch's commit), against the others' in-memory fanin-q1",
			Args: []string{"--scenario", "fanin", "--qos", "1", "--session-expiry", "300"}, Duration: d, OwnTargets: true, RefScenario: "fanin-q1"},
		{ID: "lat-1k", Title: "latency at a fixed 1,000 msg/s: QoS 0, 64 B, fan-in 10 × 100 msg/s → 1",
			Args: []string{"--scenario", "fanin", "--qos", "0", "--rate", "100"}, Duration: ld, FixedRate: true},
		{ID: "lat-half", Title: "latency at half of Mosquitto's fan-in maximum (fanin-q0): QoS 0, 64 B, fan-in 10 → 1",
			Args: []string{"--scenario", "fanin", "--qos", "0"}, Duration: ld, FixedRate: true, HalfOfRef: true, Publishers: 10},
		pubsub("shared-q0", "QoS 0, 64 B, 10 publishers → $share group of 5, as fast as possible", d, "--scenario", "shared", "--qos", "0"),
		pubsub("wildcard-q0", "QoS 0, 64 B, 10 publishers over 1,000 topics → 10 subscribers on + and # filters", d, "--scenario", "wildcard", "--qos", "0"),
		{ID: "retained", Title: "10,000 retained topics, then one subscriber on # receives them all (msg/s of that delivery)",
			Args: []string{"--scenario", "retained"}, Duration: 30 * time.Second},
		{ID: "connect", Title: "connect storm: 1,000 connections, 256 at a time (connections/s; CPU per connection; CONNACK latency)",
			Args: []string{"--scenario", "connect", "--conns", "1000"}, Duration: 30 * time.Second},
		{ID: "idle", Title: fmt.Sprintf("%s idle connections (keep-alive 60 s) over 4 source addresses; broker RSS per connection", num(uint64(c.IdleConns))),
			Args: []string{"--scenario", "idle", "--conns", strconv.Itoa(c.IdleConns), "--source-addrs", "4"}, Duration: 5 * time.Second},
	}
}

func compareTargets() []target {
	return []target{
		{Label: "Mosquitto", Kind: "mosquitto"},
		{Label: "mochi-mqtt", Kind: "mochi"},
		{Label: "mcutie", Kind: "mcutie"},
		{Label: "mcutie (Badger)", Kind: "mcutie", Badger: true, Only: []string{"fanin-q1-badger", "idle-badger"}},
	}
}

// scalingScenarios: fan-in and fan-out (and p2p, QoS 1 fan-in) for the
// --loops scaling table.
func scalingScenarios(c suiteConfig) []scenario {
	all := compareScenarios(c)
	return pick(all, "fanin-q0", "fanout-q0", "p2p-q0", "fanin-q1")
}

func scalingTargets(loops []int) []target {
	var ts []target
	for _, n := range loops {
		ts = append(ts, target{Label: fmt.Sprintf("mcutie --loops %d", n), Kind: "mcutie", Args: []string{"--loops", strconv.Itoa(n)}})
	}
	return ts
}

// profileScenarios measure what --profile changes: throughput and CPU,
// latency at two fixed loads, and memory per idle connection.
func profileScenarios(c suiteConfig) []scenario {
	all := compareScenarios(c)
	out := pick(all, "fanin-q0", "fanout-q0", "fanin-q1", "lat-1k")
	out = append(out, scenario{ID: "lat-20k", Title: "latency at a fixed 20,000 msg/s: QoS 0, 64 B, fan-in 10 × 2,000 msg/s → 1",
		Args: []string{"--scenario", "fanin", "--qos", "0", "--rate", "2000"}, Duration: c.LatDur, FixedRate: true})
	return append(out, pick(all, "idle")...)
}

func profileTargets() []target {
	ts := []target{{Label: "no profile", Kind: "mcutie"}}
	for _, p := range []string{"throughput", "latency", "low-memory"} {
		ts = append(ts, target{Label: "--profile " + p, Kind: "mcutie", Args: []string{"--profile", p}})
	}
	return ts
}

// pick returns the scenarios with the given ids, in that order.
func pick(all []scenario, ids ...string) []scenario {
	var out []scenario
	for _, id := range ids {
		for _, s := range all {
			if s.ID == id {
				out = append(out, s)
			}
		}
	}
	return out
}

// filter keeps the scenarios named in a comma-separated list (all when
// the list is empty); unknown names are an error.
func filter(all []scenario, list string) ([]scenario, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	var out []scenario
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		p := pick(all, id)
		if len(p) == 0 {
			var ids []string
			for _, s := range all {
				ids = append(ids, s.ID)
			}
			return nil, fmt.Errorf("compare: unknown scenario %q (this suite has %s)", id, strings.Join(ids, ", "))
		}
		out = append(out, p...)
	}
	return out, nil
}

// deviceScenarios are the paced, many-connection scenarios of `make
// bench-devices`: each device sends on its own topic at its own rate, one
// PUBLISH per write, phases spread so messages arrive alone, as in the
// field; the total rate is fixed, so CPU per message, latency and context
// switches per message are the headline, not throughput.
func deviceScenarios(c suiteConfig) []scenario {
	var ss []scenario
	add := func(devices, subs, qos, total int) {
		fan := "fan-in to 2 subscribers on dev/+/telemetry"
		id := fmt.Sprintf("dev%s-q%d-%s", kilo(devices), qos, kilo(total))
		if subs != 2 {
			fan = fmt.Sprintf("fan-out: each message to %d subscribers on dev/+/telemetry", subs)
			id = fmt.Sprintf("dev%s-fanout%d-q%d-%s", kilo(devices), subs, qos, kilo(total))
		}
		ss = append(ss, scenario{ID: id,
			Title: fmt.Sprintf("%s devices at %s msg/s in all (%s msg/s each), QoS %d, 64 B, one PUBLISH per write; %s",
				num(uint64(devices)), num(uint64(total)), strconv.FormatFloat(float64(total)/float64(devices), 'g', 3, 64), qos, fan),
			Args: []string{"--scenario", "device", "--publishers", strconv.Itoa(devices), "--subscribers", strconv.Itoa(subs),
				"--qos", strconv.Itoa(qos), "--total-rate", strconv.Itoa(total)},
			Duration: c.LatDur, FixedRate: true})
	}
	for _, q := range []int{0, 1} {
		for _, total := range []int{1000, 5000, 20000, 50000} {
			add(1000, 2, q, total)
		}
	}
	for _, q := range []int{0, 1} {
		for _, total := range []int{5000, 20000} {
			add(10000, 2, q, total)
		}
	}
	add(1000, 50, 0, 1000)
	add(1000, 50, 0, 5000)
	add(10000, 50, 0, 1000)
	// The broker at rest with no clients first (after 12 s: mcutie on
	// Badger stops Badger's compactors after 10 s without a write), then
	// the idle connections.
	idle := []string{"--scenario", "idle", "--conns", strconv.Itoa(c.IdleConns), "--source-addrs", "4", "--rest", "10s"}
	ss = append(ss,
		scenario{ID: "idle", Title: fmt.Sprintf("the broker at rest with no client for 10 s, then %s idle connections (keep-alive 60 s) held 10 s: CPU per second at rest and with them, broker RSS per connection", num(uint64(c.IdleConns))),
			Args: idle, Duration: 10 * time.Second},
		scenario{ID: "idle-badger", Title: "the same idle connections, mcutie with the default Badger store (the others as in idle)",
			Args: idle, Duration: 10 * time.Second, OwnTargets: true, RefScenario: "idle"})
	return ss
}

// kilo writes 1000 as 1k, 50000 as 50k.
func kilo(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
