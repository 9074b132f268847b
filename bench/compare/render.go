//go:build linux

package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

var suiteTitles = map[string]string{
	"compare":  "mcutie, Mosquitto and mochi-mqtt side by side",
	"devices":  "mcutie, Mosquitto and mochi-mqtt at paced load from many connections",
	"scaling":  "mcutie: event loops (--loops) scaling",
	"profiles": "mcutie: measured effect of --profile",
}

// renderMarkdown writes the report of ri; base names the chart file.
func renderMarkdown(ri *runInfo, base string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# %s\n\n", suiteTitles[ri.Suite])
	p("Written by `%s` (`make bench-%s` builds bin/ and runs it) on %s UTC; the run took %s.\n\n", ri.Command, ri.Suite, ri.Started.Format("2006-01-02 15:04"), (time.Duration(ri.TookSec) * time.Second).String())
	p("- Machine: %s; %s.\n", ri.Machine, ri.GoVersion)
	var vs []string
	for _, k := range []string{"mcutie", "mosquitto", "mochi"} {
		if v, ok := ri.Versions[k]; ok {
			vs = append(vs, fmt.Sprintf("%s %s", map[string]string{"mcutie": "mcutie", "mosquitto": "Mosquitto", "mochi": "mochi-mqtt"}[k], v))
		}
	}
	p("- Brokers: %s.\n", strings.Join(vs, ", "))
	if ri.Pinned {
		p("- CPU pinning (taskset): every broker on CPU %s, the load generator on CPU %s; so each broker has the same core(s) whatever its threading (Go brokers size GOMAXPROCS, and mcutie its event loops, from the affinity), and the generator does not compete with it.\n", ri.BrokerCPUs, ri.BenchCPUs)
	} else {
		p("- No CPU pinning: the broker and the load generator share every CPU.\n")
	}
	if ri.Nice != 0 {
		p("- Brokers and load generator ran under `nice -n %d`, the same for every broker.\n", ri.Nice)
	}
	p("- Each scenario ran against a freshly started broker, one broker at a time; every broker got the same bench flags.\n")
	p("- Load average (1/5/15 min) before: %s, after: %s.", ri.LoadBefore, ri.LoadAfter)
	if ri.Note != "" {
		p(" %s", ri.Note)
	}
	p("\n")
	if ri.HalfRate > 0 {
		p("- lat-half offered %s msg/s in all (half of %s).\n", num(uint64(ri.HalfRate+0.5)), ri.HalfFrom)
	}
	p("\n")
	switch ri.Suite {
	case "compare":
		renderSummary(&b, ri)
		renderTargets(&b, ri)
		p("## Chart\n\n![delivered msg/s and p99 latency per scenario and broker](%s.svg)\n\n", base)
	case "devices":
		renderSummary(&b, ri)
		renderDeviceTargets(&b, ri)
	case "scaling":
		renderScaling(&b, ri)
	case "profiles":
		renderProfiles(&b, ri)
	}
	p("## Results per scenario\n\n")
	p("Columns: **delivered** is messages received by subscribers per second over the measured window (every delivery to every subscriber counts); **CPU/msg** is the broker's user+system CPU time over the window (from /proc/PID/stat, 10 ms ticks) divided by the deliveries; **cores** the broker's CPU time ÷ window; latencies are from a timestamp in each payload (with a fixed rate: from the scheduled send time); **lost** counts messages not delivered after a drain of at most 5 s (QoS 0 may be dropped by a broker that sheds load; with \"as fast as possible\" publishers a broker that queues instead shows seconds of latency and counts as lost what was still queued after the drain); RSS is at the end of the window, peak since the broker started.\n\n")
	for _, s := range ri.Scenarios {
		renderScenario(&b, ri, s)
	}
	if ri.Suite == "compare" {
		p("## Settings\n\n")
		p("- mcutie: `bin/mcutie --listen tcp://127.0.0.1:PORT --metrics-listen '' --log-level warn --store memory` (defaults otherwise: --max-inflight 1024, --max-queued-messages 10000, --max-outbound-bytes 4 MiB, --inbox-size 16384); the Badger row: `--store badger --data-dir <fresh temp dir>` with the default --durability commit.\n")
		p("- Mosquitto: started as `mosquitto -c mosquitto.conf` with\n\n```\n%s```\n\n", fmt.Sprintf(mosquittoConf, 0))
		p("  (port 0 stands for the free port picked per run; max_queued_messages and max_queued_bytes 0 are unlimited, so QoS 1 never hits a queue limit).\n")
		p("- mochi-mqtt: `bin/mochi --addr 127.0.0.1:PORT` (bench/mochi: allow-all auth hook, one TCP listener, mochi's default capabilities: receive maximum 1024, 8192 inflight and 8192 pending writes per client, no storage hook).\n\n")
	}
	p("## Commands\n\n")
	p("Each row's bench command (the driver adds `--addr 127.0.0.1:PORT --pid BROKER_PID --json --progress=false`)")
	if ri.Pinned {
		p(" and runs it as `taskset -c %s bin/mcutie-bench …`", ri.BenchCPUs)
	}
	p(":\n\n")
	seen := map[string]bool{}
	for _, res := range ri.Results {
		if res.Command == "" || seen[res.Scenario+res.Command] {
			continue
		}
		seen[res.Scenario+res.Command] = true
		p("- %s: `%s`\n", res.Scenario, res.Command)
	}
	p("\nRaw reports: %s.json.\n", base)
	return b.String()
}

// renderScenario writes one scenario's table: a row per target that ran
// it (and, for an OwnTargets scenario, the reference rows).
func renderScenario(b *strings.Builder, ri *runInfo, s scenario) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	type row struct {
		label string
		res   *result
	}
	var rows []row
	for _, t := range ri.Targets {
		if r := ri.get(s.ID, t.Label); r != nil {
			rows = append(rows, row{t.Label, r})
		}
	}
	if s.RefScenario != "" {
		for _, t := range ri.Targets {
			if r := ri.get(s.RefScenario, t.Label); r != nil {
				rows = append(rows, row{t.Label + " (" + s.RefScenario + ")", r})
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	p("### %s\n\n%s\n\n", s.ID, s.Title)
	kind := "pubsub"
	for _, r := range rows {
		if r.res.rep != nil {
			switch {
			case r.res.rep.Idle != nil:
				kind = "idle"
			case r.res.rep.Retained != nil:
				kind = "retained"
			case r.res.rep.Messages == nil:
				kind = "connect"
			}
		}
	}
	switch kind {
	case "idle":
		p("| broker | held | RSS per connection | RSS before → after | peak RSS | broker CPU |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	case "connect":
		p("| broker | connections/s | CPU/conn µs | CONNACK p50 ms | CONNACK p99 ms | failed | RSS / peak |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	case "retained":
		p("| broker | delivered msg/s | CPU/msg µs | all delivered in | complete | p99 ms from SUBSCRIBE | RSS / peak |\n| --- | ---: | ---: | ---: | --- | ---: | ---: |\n")
	default:
		p("| broker | delivered msg/s | CPU/msg µs | cores | switches/msg | p50 ms | p99 ms | p99.9 ms | lost / dup / ooo | RSS / peak | bench cores |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	}
	for _, rw := range rows {
		r := rw.res.rep
		label := rw.label
		if rw.res.Repeated {
			label += " †"
		}
		if r == nil {
			p("| %s | error: %s |\n", label, strings.ReplaceAll(rw.res.Err, "|", "/"))
			continue
		}
		rss := "–"
		if r.Broker != nil {
			rss = size(r.Broker.RSS) + " / " + size(r.Broker.PeakRSS)
		}
		switch kind {
		case "idle":
			id := r.Idle
			if id == nil {
				p("| %s | no idle report |\n", label)
				continue
			}
			peak, cpu := "–", "–"
			if r.Broker != nil {
				peak, cpu = size(r.Broker.PeakRSS), fmt.Sprintf("%.2f s", r.Broker.CPUSec)
			}
			p("| %s | %s | %s | %s → %s | %s | %s |\n", label, num(id.Held), bytesPer(id.BytesPerConn), size(id.RSSBefore), size(id.RSSAfter), peak, cpu)
		case "connect":
			c := r.Connections
			p50, p99 := "–", "–"
			if c.Connack != nil {
				p50, p99 = ms(c.Connack.P50), ms(c.Connack.P99)
			}
			p("| %s | %s | %.1f | %s | %s | %s | %s |\n", label, num(uint64(c.PerSec+0.5)), r.cpuPer(), p50, p99, num(c.Failed), rss)
		case "retained":
			rt := r.Retained
			p99 := "–"
			if r.Latency != nil {
				p99 = ms(r.Latency.P99)
			}
			p("| %s | %s | %.2f | %.3f s | %v | %s | %s |\n", label, num(uint64(rt.PerSec+0.5)), r.cpuPer(), rt.DeliverSec, rt.Complete, p99, rss)
		default:
			m := r.Messages
			if m == nil {
				p("| %s | no message report |\n", label)
				continue
			}
			cores := "–"
			if r.Broker != nil {
				cores = fmt.Sprintf("%.2f", r.Broker.Cores)
			}
			p50, p99, p999 := "–", "–", "–"
			if r.Latency != nil {
				p50, p99, p999 = ms(r.Latency.P50), ms(r.Latency.P99), ms(r.Latency.P999)
			}
			switches := "–"
			if r.Broker != nil && r.Broker.CtxSwitchesPerMsg > 0 {
				switches = fmt.Sprintf("%.2f", r.Broker.CtxSwitchesPerMsg)
			}
			p("| %s | %s | %.2f | %s | %s | %s | %s | %s | %s / %s / %s | %s | %.2f |\n", label, num(uint64(m.ReceivedPerSec+0.5)), r.cpuPer(), cores, switches, p50, p99, p999, num(m.Lost), num(m.Duplicated), num(m.OutOfOrder), rss, r.Client.Cores)
		}
	}
	p("\n")
	for _, rw := range rows {
		if r := rw.res.rep; r != nil && len(r.Errors) > 0 {
			var es []string
			for _, e := range r.Errors {
				es = append(es, fmt.Sprintf("%s × %s (first: %s)", num(e.Count), e.Name, e.Sample))
			}
			p("Errors, %s: %s.\n\n", rw.label, strings.Join(es, "; "))
		}
	}
	if ri.Suite == "compare" || ri.Suite == "devices" {
		if line := ratioLine(ri, s, kind); line != "" {
			p("%s\n\n", line)
		}
	}
	for _, rw := range rows {
		if len(rw.res.P99s) > 1 {
			var ps []string
			for _, v := range rw.res.P99s {
				ps = append(ps, ms(v))
			}
			p("%s: %d runs, p99 %s ms; the table shows the median run.\n\n", rw.label, len(ps), strings.Join(ps, " / "))
		}
	}
	for _, rw := range rows {
		if rw.res.Repeated {
			p("† the first run looked off (nothing delivered or a connection failed) and was run again.\n\n")
			break
		}
	}
}

// ratioLine gives mcutie's figures as multiples of the other brokers'.
func ratioLine(ri *runInfo, s scenario, kind string) string {
	mc := ri.rep(s.ID, "mcutie")
	if mc == nil {
		mc = ri.rep(s.ID, "mcutie (Badger)")
	}
	if mc == nil {
		return ""
	}
	var parts []string
	for _, other := range []string{"Mosquitto", "mochi-mqtt"} {
		id := s.ID
		if s.RefScenario != "" {
			id = s.RefScenario
		}
		o := ri.rep(id, other)
		if o == nil {
			continue
		}
		var f []string
		switch kind {
		case "idle":
			if mc.Idle != nil && o.Idle != nil {
				f = append(f, "RSS per connection "+ratio(mc.Idle.BytesPerConn, o.Idle.BytesPerConn))
			}
		default:
			if !s.FixedRate {
				f = append(f, "rate "+ratio(mc.delivered(), o.delivered()))
			}
			f = append(f, "CPU per message "+ratio(mc.cpuPer(), o.cpuPer()))
			f = append(f, "p99 "+ratio(float64(mc.p99()), float64(o.p99())))
		}
		if len(f) > 0 {
			parts = append(parts, fmt.Sprintf("mcutie / %s: %s", other, strings.Join(f, ", ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Ratios: " + strings.Join(parts, "; ") + "."
}

// goal is one target of issue 5 checked against the run.
type goal struct {
	What     string
	Measured string
	Ratio    string
	Met      string // "yes", "no" or "–" (not measured)
}

// goals evaluates the targets of issue 5.
func goals(ri *runInfo) []goal {
	var gs []goal
	mq, mo, mc := "Mosquitto", "mochi-mqtt", "mcutie"
	add := func(what string, a, ref float64, measured string, ok func(r float64) bool) {
		g := goal{What: what, Measured: measured, Met: "–", Ratio: "–"}
		if a > 0 && ref > 0 {
			r := a / ref
			g.Ratio = fmt.Sprintf("%.2f×", r)
			g.Met = map[bool]string{true: "yes", false: "**no**"}[ok(r)]
		}
		gs = append(gs, g)
	}
	for _, id := range []string{"fanin-q0", "fanout-q0", "p2p-q0"} {
		c, q, m := ri.rep(id, mc), ri.rep(id, mq), ri.rep(id, mo)
		add(id+": CPU/msg ≤ ⅓ of Mosquitto's", c.cpuPer(), q.cpuPer(),
			fmt.Sprintf("%.2f vs %.2f µs", c.cpuPer(), q.cpuPer()), func(r float64) bool { return r <= 1.0/3 })
		add(id+": delivered/s ≥ 2× Mosquitto's", c.delivered(), q.delivered(),
			fmt.Sprintf("%s vs %s msg/s", rateStr(c), rateStr(q)), func(r float64) bool { return r >= 2 })
		add(id+": delivered/s ≥ 2× mochi-mqtt's", c.delivered(), m.delivered(),
			fmt.Sprintf("%s vs %s msg/s", rateStr(c), rateStr(m)), func(r float64) bool { return r >= 2 })
	}
	c, q := ri.rep("fanin-q1", mc), ri.rep("fanin-q1", mq)
	add("fanin-q1 (memory store): CPU/msg ≤ ½ of Mosquitto's", c.cpuPer(), q.cpuPer(),
		fmt.Sprintf("%.2f vs %.2f µs", c.cpuPer(), q.cpuPer()), func(r float64) bool { return r <= 0.5 })
	cb := ri.rep("fanin-q1-badger", "mcutie (Badger)")
	add("fanin-q1 on Badger (commit): delivered/s ≥ Mosquitto's in memory", cb.delivered(), q.delivered(),
		fmt.Sprintf("%s vs %s msg/s", rateStr(cb), rateStr(q)), func(r float64) bool { return r >= 1 })
	for _, id := range []string{"lat-1k", "lat-half"} {
		c, q := ri.rep(id, mc), ri.rep(id, mq)
		add(id+": p99 ≤ Mosquitto's", float64(c.p99()), float64(q.p99()),
			fmt.Sprintf("%s vs %s ms", ms(c.p99()), ms(q.p99())), func(r float64) bool { return r <= 1 })
	}
	if c := ri.rep("idle", mc); c != nil && c.Idle != nil {
		g := goal{What: fmt.Sprintf("idle: ≤ 1 KiB RSS per connection (%s connections)", num(c.Idle.Held)),
			Measured: bytesPer(c.Idle.BytesPerConn), Ratio: fmt.Sprintf("%.2f KiB", c.Idle.BytesPerConn/1024), Met: "–"}
		if c.Idle.BytesPerConn > 0 {
			g.Met = map[bool]string{true: "yes", false: "**no**"}[c.Idle.BytesPerConn <= 1024]
		}
		gs = append(gs, g)
	}
	return gs
}

// renderSummary is one table of every message scenario (delivered msg/s,
// CPU µs per message, p99 per broker) and one of the connection ones.
func renderSummary(b *strings.Builder, ri *runInfo) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	var ts []target
	for _, t := range ri.Targets {
		if len(t.Only) == 0 {
			ts = append(ts, t)
		}
	}
	p("## Summary\n\nDelivered msg/s · broker CPU µs per delivered message · p99 latency ms, per broker (details and ratios below).\n\n| scenario |")
	for _, t := range ts {
		p(" %s |", t.Label)
	}
	p("\n| --- |%s\n", strings.Repeat(" ---: |", len(ts)))
	cell := func(r *report) string {
		if r == nil {
			return "–"
		}
		return fmt.Sprintf("%s · %.2f · %s", rateStr(r), r.cpuPer(), ms(r.p99()))
	}
	var conn []scenario
	for _, s := range ri.Scenarios {
		if s.OwnTargets {
			continue
		}
		kind := ""
		for _, t := range ts {
			if r := ri.rep(s.ID, t.Label); r != nil && (r.Idle != nil || r.Messages == nil && r.Retained == nil) {
				kind = "conn"
			}
		}
		if kind == "conn" {
			conn = append(conn, s)
			continue
		}
		p("| %s |", s.ID)
		for _, t := range ts {
			p(" %s |", cell(ri.rep(s.ID, t.Label)))
		}
		p("\n")
		for _, o := range ri.Scenarios {
			if !o.OwnTargets || o.RefScenario != s.ID {
				continue
			}
			for _, t := range ri.Targets {
				r := ri.rep(o.ID, t.Label)
				if r == nil {
					continue
				}
				p("| %s: %s |", o.ID, t.Label)
				for _, col := range ts { // in the column of its own kind of broker
					if col.Kind == t.Kind {
						p(" %s |", cell(r))
					} else {
						p(" |")
					}
				}
				p("\n")
			}
		}
	}
	p("\n")
	if len(conn) == 0 {
		return
	}
	p("| scenario |")
	for _, t := range ts {
		p(" %s |", t.Label)
	}
	p("\n| --- |%s\n", strings.Repeat(" ---: |", len(ts)))
	for _, s := range conn {
		p("| %s |", s.ID)
		for _, t := range ts {
			r := ri.rep(s.ID, t.Label)
			switch {
			case r == nil:
				p(" – |")
			case r.Idle != nil:
				p(" %s per connection (%s held) |", bytesPer(r.Idle.BytesPerConn), num(r.Idle.Held))
			default:
				p(" %s conn/s · %.1f µs CPU each · CONNACK p99 %s ms |", rateStr(r), r.cpuPer(), ms(r.p99()))
			}
		}
		p("\n")
	}
	p("\n")
}

func renderTargets(b *strings.Builder, ri *runInfo) {
	fmt.Fprintf(b, "## Targets\n\nmcutie's figure against the reference; the ratio is mcutie ÷ reference.\n\n| target | mcutie vs reference | ratio | met |\n| --- | --- | ---: | --- |\n")
	for _, g := range goals(ri) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", g.What, g.Measured, g.Ratio, g.Met)
	}
	fmt.Fprintf(b, "\n")
}

// renderDeviceTargets checks the paced-load targets: at 20k msg/s from
// 1,000 devices CPU per message ≤ ⅓ of Mosquitto's, at 1k msg/s ≤ ½, and
// p99 ≤ Mosquitto's at both; nothing lost, duplicated or out of order
// anywhere.
func renderDeviceTargets(b *strings.Builder, ri *runInfo) {
	fmt.Fprintf(b, "## Targets\n\nmcutie's figure against Mosquitto's in the same run; the ratio is mcutie ÷ Mosquitto.\n\n| target | mcutie vs Mosquitto | ratio | met |\n| --- | --- | ---: | --- |\n")
	row := func(what, measured string, a, ref float64, ok func(float64) bool) {
		ratio, met := "–", "–"
		if a > 0 && ref > 0 {
			ratio = fmt.Sprintf("%.2f×", a/ref)
			met = map[bool]string{true: "yes", false: "**no**"}[ok(a/ref)]
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", what, measured, ratio, met)
	}
	for _, t := range []struct {
		id  string
		cpu float64
	}{{"dev1k-q0-20k", 1.0 / 3}, {"dev1k-q1-20k", 1.0 / 3}, {"dev1k-q0-1k", 0.5}, {"dev1k-q1-1k", 0.5}} {
		c, q := ri.rep(t.id, "mcutie"), ri.rep(t.id, "Mosquitto")
		frac := map[bool]string{true: "⅓", false: "½"}[t.cpu < 0.4]
		row(t.id+": CPU/msg ≤ "+frac+" of Mosquitto's", fmt.Sprintf("%.2f vs %.2f µs", c.cpuPer(), q.cpuPer()), c.cpuPer(), q.cpuPer(), func(r float64) bool { return r <= t.cpu })
		row(t.id+": p99 ≤ Mosquitto's", fmt.Sprintf("%s vs %s ms", ms(c.p99()), ms(q.p99())), float64(c.p99()), float64(q.p99()), func(r float64) bool { return r <= 1 })
	}
	var bad []string
	for _, s := range ri.Scenarios {
		if c := ri.rep(s.ID, "mcutie"); c != nil && c.Messages != nil {
			if m := c.Messages; m.Lost+m.Duplicated+m.OutOfOrder > 0 {
				bad = append(bad, fmt.Sprintf("%s (%d lost, %d duplicated, %d out of order)", s.ID, m.Lost, m.Duplicated, m.OutOfOrder))
			}
		}
	}
	for _, label := range []string{"mcutie", "mcutie (Badger)"} {
		id := map[string]string{"mcutie": "idle", "mcutie (Badger)": "idle-badger"}[label]
		c, q := ri.rep(id, label), ri.rep("idle", "Mosquitto")
		if c == nil || c.Idle == nil || c.Broker == nil || c.WindowSec <= 0 {
			continue
		}
		if c.Idle.RestSec > 0 {
			ref := ""
			if q != nil && q.Idle != nil && q.Idle.RestSec > 0 {
				ref = fmt.Sprintf(" (Mosquitto %.2f)", q.Idle.RestCPUMsPerSec)
			}
			fmt.Fprintf(b, "| %s at rest, no clients: ≤ 1 ms CPU per second | %.2f ms/s, %.1f context switches/s%s | | %s |\n", label, c.Idle.RestCPUMsPerSec, c.Idle.RestSwitchPerSec, ref,
				map[bool]string{true: "yes", false: "**no**"}[c.Idle.RestCPUMsPerSec <= 1])
		}
		perSec := c.Broker.CPUSec / c.WindowSec * 1e3
		ref := ""
		if q != nil && q.Broker != nil && q.WindowSec > 0 {
			ref = fmt.Sprintf(" (Mosquitto %.2f)", q.Broker.CPUSec/q.WindowSec*1e3)
		}
		fmt.Fprintf(b, "| %s at rest: ≤ 1 ms CPU per second | %.2f ms/s with %s idle connections%s | | %s |\n", label, perSec, num(c.Idle.Held), ref,
			map[bool]string{true: "yes", false: "**no**"}[perSec <= 1])
		if q != nil && q.Idle != nil {
			row(label+": idle RSS per connection ≤ Mosquitto's", bytesPer(c.Idle.BytesPerConn)+" vs "+bytesPer(q.Idle.BytesPerConn), c.Idle.BytesPerConn, q.Idle.BytesPerConn, func(r float64) bool { return r <= 1 })
		}
	}
	met := "yes"
	if len(bad) > 0 {
		met = "**no**: " + strings.Join(bad, "; ")
	}
	fmt.Fprintf(b, "| every scenario: 0 lost, 0 duplicated, 0 out of order (mcutie) | | | %s |\n\n", met)
}

// renderScaling is the --loops table: rate and CPU per message for each
// loops value, and the rate as a multiple of the first.
func renderScaling(b *strings.Builder, ri *runInfo) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## Summary\n\n| scenario |")
	for _, t := range ri.Targets {
		p(" %s: msg/s | CPU/msg µs | cores |", t.Label)
	}
	if len(ri.Targets) > 1 {
		p(" rate %s ÷ %s |", ri.Targets[len(ri.Targets)-1].Label, ri.Targets[0].Label)
	}
	p("\n| --- |%s", strings.Repeat(" ---: | ---: | ---: |", len(ri.Targets)))
	if len(ri.Targets) > 1 {
		p(" ---: |")
	}
	p("\n")
	for _, s := range ri.Scenarios {
		p("| %s |", s.ID)
		for _, t := range ri.Targets {
			r := ri.rep(s.ID, t.Label)
			cores := 0.0
			if r != nil && r.Broker != nil {
				cores = r.Broker.Cores
			}
			p(" %s | %.2f | %.2f |", rateStr(r), r.cpuPer(), cores)
		}
		if len(ri.Targets) > 1 {
			p(" %s |", ratio(ri.rep(s.ID, ri.Targets[len(ri.Targets)-1].Label).delivered(), ri.rep(s.ID, ri.Targets[0].Label).delivered()))
		}
		p("\n")
	}
	p("\n")
}

// renderProfiles is the --profile table: one row per profile.
func renderProfiles(b *strings.Builder, ri *runInfo) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("## Summary\n\n| profile | fanin-q0 msg/s | fanin-q0 CPU/msg µs | fanout-q0 msg/s | fanin-q1 msg/s | p99 at 1k msg/s ms | p99 at 20k msg/s ms | idle RSS per conn | idle peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range ri.Targets {
		idle, peak := "–", "–"
		if r := ri.rep("idle", t.Label); r != nil && r.Idle != nil {
			idle = bytesPer(r.Idle.BytesPerConn)
			if r.Broker != nil {
				peak = size(r.Broker.PeakRSS)
			}
		}
		p("| %s | %s | %.2f | %s | %s | %s | %s | %s | %s |\n", t.Label, rateStr(ri.rep("fanin-q0", t.Label)), ri.rep("fanin-q0", t.Label).cpuPer(),
			rateStr(ri.rep("fanout-q0", t.Label)), rateStr(ri.rep("fanin-q1", t.Label)),
			ms(ri.rep("lat-1k", t.Label).p99()), ms(ri.rep("lat-20k", t.Label).p99()), idle, peak)
	}
	p("\n")
}

func rateStr(r *report) string {
	if r == nil {
		return "–"
	}
	return num(uint64(r.delivered() + 0.5))
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "–"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func ms(us int64) string {
	if us <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", float64(us)/1000)
}

func bytesPer(f float64) string {
	if f <= 0 {
		return "–"
	}
	if f >= 1024 {
		return fmt.Sprintf("%.1f KiB", f/1024)
	}
	return fmt.Sprintf("%.0f B", f)
}

// num formats n with thousands separators.
func num(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func size(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
