//go:build linux

package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixture(t *testing.T, name string) ([]byte, *report) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeReport(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b, r
}

// TestReportFieldsExistInBenchOutput checks every JSON key the driver
// reads against reports the real bench tool printed (testdata/, made with
// bin/mcutie-bench --json against bin/mcutie), so a renamed field in
// bench/report.go fails here instead of reading as zero. bench leaves
// empty parts out, so a key must appear in at least one of the fixtures.
func TestReportFieldsExistInBenchOutput(t *testing.T) {
	present := map[string]bool{}
	var collect func(path string, v any)
	collect = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, sub := range x {
				present[path+"."+k] = true
				collect(path+"."+k, sub)
			}
		case []any:
			for _, sub := range x {
				collect(path, sub)
			}
		}
	}
	// connect-refused: a connect storm against Mosquitto with
	// max_connections 50, for the errors list. device: --scenario device
	// with --pid, for the context switches.
	for _, name := range []string{"fanin", "idle", "connect", "retained", "connect-refused", "device"} {
		b, _ := fixture(t, name)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		collect("", m)
	}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !present[path+"."+key] {
				t.Errorf("%s.%s: in no report the bench tool printed", path, key)
				continue
			}
			walk(path+"."+key, f.Type)
		}
	}
	walk("", reflect.TypeOf(report{}))
}

func TestDecodeReportFigures(t *testing.T) {
	_, r := fixture(t, "fanin")
	if r.Messages == nil || r.Messages.Received == 0 || r.delivered() <= 0 || r.cpuPer() <= 0 || r.p99() <= 0 || r.Broker.RSS == 0 {
		t.Fatalf("fanin fixture decoded without its figures: %+v", r)
	}
	_, c := fixture(t, "connect")
	if c.Messages != nil || c.delivered() != c.Connections.PerSec || c.cpuPer() != c.Broker.CPUMicrosPerCon || c.p99() != c.Connections.Connack.P99 {
		t.Fatalf("connect: headline figures are not the connection ones: %+v", c)
	}
	_, rt := fixture(t, "retained")
	if rt.Retained == nil || rt.delivered() != rt.Retained.PerSec {
		t.Fatalf("retained: headline is not the retained delivery rate: %+v", rt.Retained)
	}
	_, id := fixture(t, "idle")
	if id.Idle == nil || id.Idle.Held == 0 || id.Idle.BytesPerConn <= 0 {
		t.Fatalf("idle: %+v", id.Idle)
	}
	if _, err := decodeReport([]byte(`{"foo": 1}`)); err == nil {
		t.Fatal("a JSON object without scenario decoded as a report")
	}
	if _, err := decodeReport([]byte(`fanin: 10 publishers`)); err == nil {
		t.Fatal("the human table decoded as a report")
	}
}

// synthetic returns a pub/sub report with the given headline figures.
func synthetic(t *testing.T, rate, cpu float64, p99 int64) *report {
	t.Helper()
	_, r := fixture(t, "fanin")
	r.Messages.ReceivedPerSec = rate
	r.Broker.CPUMicrosPerMsg = cpu
	r.Latency.P99 = p99
	return r
}

func fakeRun(t *testing.T) *runInfo {
	t.Helper()
	ri := &runInfo{Suite: "compare", Targets: compareTargets(), Scenarios: compareScenarios(suiteConfig{Duration: time.Second, LatDur: time.Second, IdleConns: 200}),
		Versions: map[string]string{"mcutie": "x", "mosquitto": "2.0.11", "mochi": "v2.7.9"}, Pinned: true, BrokerCPUs: "1", BenchCPUs: "0"}
	add := func(id, label string, r *report) {
		raw, _ := json.Marshal(r)
		ri.Results = append(ri.Results, result{Scenario: id, Target: label, Command: "mcutie-bench --scenario " + id, rep: r, Raw: raw})
	}
	for _, id := range []string{"fanin-q0", "fanout-q0", "p2p-q0", "fanin-q1", "lat-1k", "lat-half"} {
		add(id, "Mosquitto", synthetic(t, 30_000, 12, 1000))
		add(id, "mochi-mqtt", synthetic(t, 20_000, 17, 2000))
	}
	// Exactly at the bounds: ⅓ of the CPU, 2× the rate, equal p99.
	add("fanin-q0", "mcutie", synthetic(t, 60_000, 4, 1000))
	// Just past them.
	add("fanout-q0", "mcutie", synthetic(t, 59_999, 4.01, 1001))
	add("p2p-q0", "mcutie", synthetic(t, 600_000, 1, 100))
	add("fanin-q1", "mcutie", synthetic(t, 200_000, 6, 500))
	add("fanin-q1-badger", "mcutie (Badger)", synthetic(t, 29_999, 3, 500))
	add("lat-1k", "mcutie", synthetic(t, 1000, 30, 1000))
	add("lat-half", "mcutie", synthetic(t, 15_000, 3, 1001))
	_, idle := fixture(t, "idle")
	idle.Idle.BytesPerConn = 1024
	add("idle", "mcutie", idle)
	ri.Results = append(ri.Results, result{Scenario: "idle", Target: "Mosquitto", Err: "compare: Mosquitto exited during start-up: boom"})
	return ri
}

func TestGoalsAtTheirBounds(t *testing.T) {
	got := map[string]string{}
	for _, g := range goals(fakeRun(t)) {
		got[g.What] = g.Met
	}
	want := map[string]string{
		"fanin-q0: CPU/msg ≤ ⅓ of Mosquitto's":                             "yes",
		"fanin-q0: delivered/s ≥ 2× Mosquitto's":                           "yes",
		"fanin-q0: delivered/s ≥ 2× mochi-mqtt's":                          "yes",
		"fanout-q0: CPU/msg ≤ ⅓ of Mosquitto's":                            "**no**",
		"fanout-q0: delivered/s ≥ 2× Mosquitto's":                          "**no**",
		"fanout-q0: delivered/s ≥ 2× mochi-mqtt's":                         "yes",
		"p2p-q0: CPU/msg ≤ ⅓ of Mosquitto's":                               "yes",
		"fanin-q1 (memory store): CPU/msg ≤ ½ of Mosquitto's":              "yes",
		"fanin-q1 on Badger (commit): delivered/s ≥ Mosquitto's in memory": "**no**",
		"lat-1k: p99 ≤ Mosquitto's":                                        "yes",
		"lat-half: p99 ≤ Mosquitto's":                                      "**no**",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: met = %q, want %q", k, got[k], v)
		}
	}
	var idle string
	for k, v := range got {
		if strings.HasPrefix(k, "idle:") {
			idle = v
		}
	}
	if idle != "yes" {
		t.Errorf("idle at exactly 1 KiB per connection: met = %q, want yes", idle)
	}
}

func TestRenderCompare(t *testing.T) {
	ri := fakeRun(t)
	md := renderMarkdown(ri, "latest")
	for _, want := range []string{
		"| fanin-q0: CPU/msg ≤ ⅓ of Mosquitto's | 4.00 vs 12.00 µs | 0.33× | yes |",
		"| mcutie (Badger) | 29,999 |",
		"| Mosquitto (fanin-q1) | 30,000 |", // the reference rows of the Badger scenario
		"mcutie / Mosquitto: rate 2.00×, CPU per message 0.33×, p99 1.00×",
		"| Mosquitto | error: compare: Mosquitto exited during start-up: boom |",
		"![delivered msg/s and p99 latency per scenario and broker](latest.svg)",
		"listener 0 127.0.0.1", // the Mosquitto settings, verbatim
		"- fanin-q0: `mcutie-bench --scenario fanin-q0`",
		"| fanin-q0 | 30,000 · 12.00 · 1.000 | 20,000 · 17.00 · 2.000 | 60,000 · 4.00 · 1.000 |", // summary
		"| fanin-q1-badger: mcutie (Badger) | | | 29,999 · 3.00 · 0.500 |",
		"| idle | – | – | 1.0 KiB per connection (", // Mosquitto's idle run failed
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

// TestChartIsWellFormedSVG parses the chart and counts its bars: one per
// result with messages in the rate panel (fixed-rate scenarios left out)
// and one per result in the latency panel.
func TestChartIsWellFormedSVG(t *testing.T) {
	svg := renderChart(fakeRun(t))
	d := xml.NewDecoder(strings.NewReader(svg))
	bars := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "height" && a.Value != "12" && a.Value != "100%" {
					bars++
				}
			}
		}
	}
	// Rate panel: fanin-q0, fanout-q0, p2p-q0 ×3 brokers, fanin-q1 ×3 + Badger = 13.
	// Latency panel: the same 13, plus lat-1k and lat-half ×3 = 19.
	if bars != 32 {
		t.Fatalf("chart has %d bars, want 32", bars)
	}
}

func TestPlanAndTargets(t *testing.T) {
	o, err := parseOptions([]string{"--scenarios", "fanin-q1,fanin-q1-badger"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ts, ss, err := o.plan()
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string][]string{}
	for _, tg := range ts {
		for _, s := range ss {
			if tg.runs(s) {
				runs[tg.Label] = append(runs[tg.Label], s.ID)
			}
		}
	}
	if got := strings.Join(runs["mcutie (Badger)"], ","); got != "fanin-q1-badger" {
		t.Errorf("Badger target runs %q, want only fanin-q1-badger", got)
	}
	if got := strings.Join(runs["Mosquitto"], ","); got != "fanin-q1" {
		t.Errorf("Mosquitto runs %q, want only fanin-q1", got)
	}
	if _, err := parseOptions([]string{"--pin", "maybe"}, io.Discard); err == nil {
		t.Error("--pin maybe accepted")
	}
	o, _ = parseOptions([]string{"--scenarios", "nope"}, io.Discard)
	if _, _, err := o.plan(); err == nil || !strings.Contains(err.Error(), "fanin-q0") {
		t.Errorf("unknown scenario: err = %v, want one listing the suite's scenarios", err)
	}
	o, _ = parseOptions([]string{"--suite", "scaling", "--loops", "1,2,4"}, io.Discard)
	ts, _, _ = o.plan()
	if len(ts) != 3 || ts[2].Args[1] != "4" {
		t.Errorf("scaling targets: %+v", ts)
	}
	var half scenario
	for _, s := range compareScenarios(o.cfg) {
		if s.HalfOfRef {
			half = s
		}
	}
	if got := strings.Join(half.args(19_000), " "); !strings.Contains(got, "--rate 1900") {
		t.Errorf("lat-half args %q: want --rate 1900 (19,000 msg/s over 10 publishers)", got)
	}
}

// TestMosquittoStartsWithGeneratedConfig starts the real Mosquitto with
// the driver's configuration, connects over TCP and stops it.
func TestMosquittoStartsWithGeneratedConfig(t *testing.T) {
	path, err := findMosquitto("")
	if err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("no taskset")
	}
	e := &env{mosquitto: path, pin: true, brokerCPUs: "0", benchCPUs: "0"}
	b, err := e.start(target{Label: "Mosquitto", Kind: "mosquitto"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// CONNECT (3.1.1, clean session, client id "t") → CONNACK accepted:
	// allow_anonymous is on.
	if _, err := c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 't'}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x, err %v: want 20 02 00 00", ack, err)
	}
	c.Close()
	if err := b.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if v := e.versionOf("mosquitto", "."); v == "" || v == "?" {
		t.Errorf("mosquitto version %q", v)
	}
}

// TestDeviceSuite: the devices suite runs the paced scenarios on the
// three brokers, idle-badger on the Badger target only, and every
// scenario's flags are ones the bench accepts (its --help lists them).
func TestDeviceSuite(t *testing.T) {
	o, err := parseOptions([]string{"--suite", "devices", "--idle-conns", "1000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ts, ss, err := o.plan()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range ss {
		ids[s.ID] = true
		if s.ID != "idle" && s.ID != "idle-badger" && !s.FixedRate {
			t.Errorf("%s: a device scenario must be fixed-rate", s.ID)
		}
	}
	for _, want := range []string{"dev1k-q0-20k", "dev1k-q1-20k", "dev1k-q0-1k", "dev1k-q1-1k", "dev10k-q1-20k", "dev1k-fanout50-q0-5k", "idle", "idle-badger"} {
		if !ids[want] {
			t.Errorf("scenario %s missing (have %v)", want, ids)
		}
	}
	for _, tg := range ts {
		for _, s := range ss {
			if s.ID == "idle-badger" && tg.runs(s) != (tg.Label == "mcutie (Badger)") {
				t.Errorf("%s runs idle-badger: %v", tg.Label, tg.runs(s))
			}
		}
	}
	if got := strings.Join(deviceScenarios(o.cfg)[2].args(0), " "); !strings.Contains(got, "--total-rate 20000") || !strings.Contains(got, "--publishers 1000") {
		t.Errorf("dev1k-q0-20k args %q", got)
	}
}
