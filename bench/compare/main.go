//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stderr))
}

// options are the command line.
type options struct {
	suite     string
	out       string
	bin       string
	repo      string
	brokers   string
	mosquitto string
	note      string
	pin       string
	halfRate  float64
	nice      int
	latRuns   int
	loops     string
	cfg       suiteConfig
}

func parseOptions(args []string, w io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.StringVar(&o.suite, "suite", "compare", "compare (mcutie, Mosquitto, mochi-mqtt side by side), devices (the same brokers at paced load from many connections), scaling (mcutie --loops) or profiles (mcutie --profile)")
	fs.StringVar(&o.out, "out", "bench/results", "directory for the report (compare: latest.md, latest.svg, latest.json; scaling.md; profiles.md)")
	fs.StringVar(&o.bin, "bin", "bin", "directory holding mcutie, mcutie-bench and mochi (make bench-bin builds them)")
	fs.StringVar(&o.repo, "repo", ".", "repository root, for versions (git describe, bench/mochi/go.mod)")
	fs.StringVar(&o.brokers, "brokers", "mosquitto,mochi,mcutie", "compare: brokers to run, in this order (Mosquitto first: lat-half needs its fan-in maximum)")
	fs.StringVar(&o.mosquitto, "mosquitto", "", "path of the mosquitto binary (default: PATH, then /usr/sbin/mosquitto)")
	fs.StringVar(&o.note, "note", "", "free text for the report's header, e.g. what else ran on the machine")
	fs.StringVar(&o.pin, "pin", "auto", "bind the broker and the load generator to separate CPUs with taskset: auto (on for compare and profiles, off for scaling), on, off")
	fs.IntVar(&o.nice, "nice", 0, "run brokers and the load generator under nice -n N (e.g. -5 to be scheduled ahead of builds running at 0 or 10 on the same machine; negative needs root) (0: inherit)")
	fs.Float64Var(&o.halfRate, "half-rate", 0, "lat-half: total msg/s to offer (0: half of Mosquitto's fanin-q0 in this run, else of the first broker's)")
	fs.IntVar(&o.latRuns, "latency-runs", 3, "runs of each fixed-rate latency scenario per broker; the one with the median p99 is reported (one run's p99 on a shared machine is mostly the machine's noise)")
	fs.StringVar(&o.loops, "loops", "1,2", "scaling: the --loops values to compare, comma-separated")
	fs.StringVar(&o.cfg.Only, "scenarios", "", "comma-separated scenario ids to run (default: all of the suite)")
	fs.DurationVar(&o.cfg.Duration, "duration", 5*time.Second, "measured window of each throughput scenario")
	fs.DurationVar(&o.cfg.LatDur, "latency-duration", 10*time.Second, "measured window of each fixed-rate latency scenario")
	fs.IntVar(&o.cfg.IdleConns, "idle-conns", 0, "connections in the idle scenario; 0: as many as the hard RLIMIT_NOFILE allows (each side needs one descriptor per connection; 1,000 kept spare), at most 100,000")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "compare — run mcutie, Mosquitto and mochi-mqtt through the same bench scenarios and write a report.\n\nUsage: go run ./bench/compare [flags]   (make bench-compare)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("compare: unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(o.loops, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("compare: --loops %q: want a comma-separated list of counts such as 1,2,4", o.loops)
		}
		o.cfg.Loops = append(o.cfg.Loops, n)
	}
	if o.cfg.Duration <= 0 || o.cfg.Duration > 10*time.Minute || o.cfg.LatDur <= 0 || o.cfg.LatDur > 10*time.Minute {
		return nil, errors.New("compare: --duration and --latency-duration must be in (0, 10m]")
	}
	if o.latRuns < 1 || o.latRuns > 9 {
		return nil, errors.New("compare: --latency-runs must be in [1, 9]")
	}
	if o.nice < -20 || o.nice > 19 {
		return nil, errors.New("compare: --nice must be in [-20, 19]")
	}
	if o.cfg.IdleConns < 0 || o.cfg.IdleConns > 500_000 {
		return nil, errors.New("compare: --idle-conns must be in [0, 500000]")
	}
	if o.cfg.IdleConns == 0 {
		o.cfg.IdleConns = idleConnsAllowed()
	}
	switch o.pin {
	case "auto", "on", "off":
	default:
		return nil, fmt.Errorf("compare: --pin %q: want auto, on or off", o.pin)
	}
	return o, nil
}

// plan resolves the suite into targets and scenarios.
func (o *options) plan() ([]target, []scenario, error) {
	var ts []target
	var ss []scenario
	switch o.suite {
	case "compare", "devices":
		want := map[string]bool{}
		for _, b := range strings.Split(o.brokers, ",") {
			want[strings.TrimSpace(b)] = true
		}
		var order []string
		for _, b := range strings.Split(o.brokers, ",") {
			order = append(order, strings.TrimSpace(b))
		}
		all := compareTargets()
		for _, k := range order {
			found := false
			for _, t := range all {
				if t.Kind == k {
					ts, found = append(ts, t), true
				}
			}
			if !found {
				return nil, nil, fmt.Errorf("compare: --brokers: unknown broker %q (want mcutie, mosquitto, mochi)", k)
			}
		}
		ss = compareScenarios(o.cfg)
		if o.suite == "devices" {
			ss = deviceScenarios(o.cfg)
		}
	case "scaling":
		ts, ss = scalingTargets(o.cfg.Loops), scalingScenarios(o.cfg)
	case "profiles":
		ts, ss = profileTargets(), profileScenarios(o.cfg)
	default:
		return nil, nil, fmt.Errorf("compare: --suite %q: want compare, devices, scaling or profiles", o.suite)
	}
	ss, err := filter(ss, o.cfg.Only)
	return ts, ss, err
}

// result is one scenario run against one target.
type result struct {
	Scenario string          `json:"scenario"`
	Target   string          `json:"target"`
	Command  string          `json:"command"`
	Err      string          `json:"error,omitempty"`
	Repeated bool            `json:"repeated,omitempty"` // the first run looked off and was run again
	P99s     []int64         `json:"p99s_us,omitempty"`  // fixed-rate scenarios: every run's p99; the report is the median's
	Raw      json.RawMessage `json:"report,omitempty"`
	rep      *report
}

// runInfo is everything the report says about one run of a suite.
type runInfo struct {
	Suite      string            `json:"suite"`
	Started    time.Time         `json:"started"`
	TookSec    float64           `json:"took_s"`
	Machine    string            `json:"machine"`
	GoVersion  string            `json:"go"`
	Versions   map[string]string `json:"versions"`
	Pinned     bool              `json:"pinned"`
	Nice       int               `json:"nice,omitempty"`
	BrokerCPUs string            `json:"broker_cpus,omitempty"`
	BenchCPUs  string            `json:"bench_cpus,omitempty"`
	LoadBefore string            `json:"loadavg_before"`
	LoadAfter  string            `json:"loadavg_after"`
	Note       string            `json:"note,omitempty"`
	HalfRate   float64           `json:"half_rate,omitempty"`
	HalfFrom   string            `json:"half_rate_from,omitempty"`
	Targets    []target          `json:"targets"`
	Scenarios  []scenario        `json:"scenarios"`
	Results    []result          `json:"results"`
	Command    string            `json:"command"`
}

// get returns the result of scenario id on target label, or nil.
func (ri *runInfo) get(id, label string) *result {
	for i := range ri.Results {
		if ri.Results[i].Scenario == id && ri.Results[i].Target == label {
			return &ri.Results[i]
		}
	}
	return nil
}

// rep returns the report of scenario id on target label, or nil.
func (ri *runInfo) rep(id, label string) *report {
	if r := ri.get(id, label); r != nil {
		return r.rep
	}
	return nil
}

func realMain(args []string, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ts, ss, err := o.plan()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	e := &env{bin: o.bin, nice: o.nice}
	for _, t := range ts {
		if t.Kind == "mosquitto" {
			if e.mosquitto, err = findMosquitto(o.mosquitto); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
		}
	}
	need := []string{"mcutie-bench"}
	for _, t := range ts {
		if t.Kind == "mcutie" || t.Kind == "mochi" {
			need = append(need, t.Kind)
		}
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			fmt.Fprintf(stderr, "compare: %v (run `make bench-bin` first)\n", err)
			return 1
		}
	}
	ncpu := runtime.NumCPU()
	e.pin = o.pin == "on" || (o.pin == "auto" && o.suite != "scaling")
	if e.pin {
		if _, err := exec.LookPath("taskset"); err != nil || ncpu < 2 {
			fmt.Fprintf(stderr, "compare: not pinning (taskset found: %v, CPUs: %d)\n", err == nil, ncpu)
			e.pin = false
		} else {
			// The broker gets the upper half of the CPUs, the generator
			// the lower: on 2 cores, one each.
			half := ncpu / 2
			e.benchCPUs = cpuList(0, half-1)
			e.brokerCPUs = cpuList(half, ncpu-1)
		}
	}
	// Children inherit this process's descriptor limit (Go raises its own
	// soft limit at start but restores the original in children unless the
	// program sets it): brokers need one descriptor per connection.
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ri := &runInfo{
		Suite: o.suite, Started: time.Now().UTC(), Machine: machine(), GoVersion: runtime.Version(),
		Versions: map[string]string{}, Pinned: e.pin, Nice: e.nice, BrokerCPUs: e.brokerCPUs, BenchCPUs: e.benchCPUs,
		LoadBefore: loadavg(), Note: o.note, Targets: ts, Scenarios: ss,
		Command: "bin/compare " + strings.Join(args, " "),
	}
	for _, t := range ts {
		if _, ok := ri.Versions[t.Kind]; !ok {
			ri.Versions[t.Kind] = e.versionOf(t.Kind, o.repo)
		}
	}
	total := 0
	for _, t := range ts {
		for _, s := range ss {
			if t.runs(s) {
				total++
			}
		}
	}
	fmt.Fprintf(stderr, "compare: suite %s, %d runs, pinned: %v (broker CPUs %q, bench CPUs %q)\n", o.suite, total, e.pin, e.brokerCPUs, e.benchCPUs)
	n := 0
	for _, t := range ts {
		for _, s := range ss {
			if !t.runs(s) {
				continue
			}
			if ctx.Err() != nil {
				fmt.Fprintln(stderr, "compare: interrupted")
				return 1
			}
			n++
			if s.HalfOfRef && ri.HalfRate == 0 {
				ri.HalfRate, ri.HalfFrom = o.halfRateFor(ri, ts)
			}
			res := runOne(ctx, e, t, s, ri.HalfRate)
			if s.FixedRate && o.latRuns > 1 && res.Err == "" {
				res = medianOf(ctx, e, t, s, ri.HalfRate, res, o.latRuns)
			}
			ri.Results = append(ri.Results, res)
			fmt.Fprintf(stderr, "[%2d/%d] %-18s %-16s %s\n", n, total, t.Label, s.ID, summary(res))
		}
	}
	ri.TookSec = time.Since(ri.Started).Seconds()
	ri.LoadAfter = loadavg()
	if err := write(o, ri); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// halfRateFor is the total rate of lat-half: --half-rate, else half of
// Mosquitto's fanin-q0 delivered rate, else half of the first target's.
func (o *options) halfRateFor(ri *runInfo, ts []target) (float64, string) {
	if o.halfRate > 0 {
		return o.halfRate, "--half-rate"
	}
	for _, label := range append([]string{"Mosquitto"}, labels(ts)...) {
		if r := ri.rep("fanin-q0", label); r != nil && r.delivered() > 0 {
			return r.delivered() / 2, label + " fanin-q0"
		}
	}
	return 10_000, "default (no fanin-q0 result)"
}

func labels(ts []target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Label)
	}
	return out
}

// runOne starts a fresh broker, runs the scenario once (twice when the
// first run looks off: nothing delivered, or connections failed), and stops
// the broker. A fresh broker per scenario keeps RSS and peak RSS
// per scenario and keeps one scenario's leftovers out of the next.
func runOne(ctx context.Context, e *env, t target, s scenario, halfRate float64) result {
	res := result{Scenario: s.ID, Target: t.Label}
	args := s.args(halfRate)
	bound := s.Duration + 90*time.Second // connect phase, drain and start-up on top of the window
	for attempt := 0; attempt < 2; attempt++ {
		b, err := e.start(t)
		if err != nil {
			res.Err = err.Error()
			return res
		}
		rep, cmdline, err := e.benchRun(ctx, b.addr, b.pid, args, bound)
		// A broker that crashed under load (or as the clients left) is a
		// result, not noise: it is reported and not run again.
		if serr := b.stop(); serr != nil {
			res.Command, res.Err, res.rep, res.Raw = cmdline, t.Label+" "+serr.Error(), nil, nil
			return res
		}
		res.Command = cmdline
		if err != nil {
			res.Err = err.Error()
			res.rep, res.Raw = nil, nil
			continue
		}
		res.Err = ""
		res.rep = rep
		res.Raw, _ = json.Marshal(rep)
		if !looksOff(rep) {
			return res
		}
		res.Repeated = attempt == 0
	}
	return res
}

// medianOf runs a fixed-rate scenario until it has runs results and
// returns the one with the median p99, with every run's p99 noted.
func medianOf(ctx context.Context, e *env, t target, s scenario, halfRate float64, first result, runs int) result {
	all := []result{first}
	for len(all) < runs && ctx.Err() == nil {
		r := runOne(ctx, e, t, s, halfRate)
		if r.Err != "" {
			return r // a failed run is reported, not averaged away
		}
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rep.p99() < all[j].rep.p99() })
	m := all[len(all)/2]
	for _, r := range all {
		m.P99s = append(m.P99s, r.rep.p99())
	}
	sort.Slice(m.P99s, func(i, j int) bool { return m.P99s[i] < m.P99s[j] })
	return m
}

// looksOff says a run should be repeated: nothing was delivered, or some
// connections failed.
func looksOff(r *report) bool {
	if r.Connections.Failed > 0 {
		return true
	}
	return r.Messages != nil && r.Messages.Received == 0
}

func summary(res result) string {
	if res.Err != "" {
		return "ERROR " + res.Err
	}
	r := res.rep
	s := fmt.Sprintf("%s/s, %.2f µs CPU each", num(uint64(r.delivered()+0.5)), r.cpuPer())
	if r.p99() > 0 {
		s += ", p99 " + ms(r.p99()) + " ms"
	}
	if r.Idle != nil {
		s += fmt.Sprintf(", %s held, %.0f B RSS per connection", num(r.Idle.Held), r.Idle.BytesPerConn)
	}
	if res.Repeated {
		s += " (repeated)"
	}
	if len(res.P99s) > 1 {
		var ps []string
		for _, p := range res.P99s {
			ps = append(ps, ms(p))
		}
		s += " (median of p99s " + strings.Join(ps, ", ") + " ms)"
	}
	return s
}

func decodeReport(b []byte) (*report, error) {
	var r report
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("cannot decode the bench report: %v", err)
	}
	if r.Scenario == "" {
		return nil, errors.New("bench report has no scenario: not a bench --json report")
	}
	return &r, nil
}

func cpuList(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// machine describes the CPU, core count and kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	kernel := "?"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs, Linux %s", model, runtime.NumCPU(), kernel)
}

func loadavg() string {
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

// write puts the suite's report files into o.out.
func write(o *options, ri *runInfo) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	base := map[string]string{"compare": "latest", "devices": "devices", "scaling": "scaling", "profiles": "profiles"}[o.suite]
	js, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{base + ".json": append(js, '\n'), base + ".md": []byte(renderMarkdown(ri, base))}
	if o.suite == "compare" {
		files[base+".svg"] = []byte(renderChart(ri))
	}
	for name, b := range files {
		p := filepath.Join(o.out, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "compare: wrote", p)
	}
	return nil
}

// idleConnsAllowed is the idle scenario's default: as many connections as
// the hard descriptor limit allows each side (the driver raises the soft
// limit to it for the brokers it starts), 1,000 kept spare, at most
// 100,000.
func idleConnsAllowed() int {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Max < 2000 {
		return 1000
	}
	return int(min(rl.Max-1000, 100_000))
}
