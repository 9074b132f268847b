//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is one broker configuration a suite runs scenarios against.
type target struct {
	Label string   // column and row label, e.g. "mcutie", "Mosquitto"
	Kind  string   // "mcutie", "mosquitto" or "mochi"
	Args  []string // extra flags (mcutie only), e.g. --loops 2
	// Badger runs mcutie on a Badger store in a fresh temporary directory
	// with the default durability (commit) instead of --store memory.
	Badger bool
	// Only lists the scenario ids this target runs (nil: every scenario
	// that does not name its own targets).
	Only []string
}

func (t target) runs(s scenario) bool {
	if len(t.Only) > 0 {
		for _, id := range t.Only {
			if id == s.ID {
				return true
			}
		}
		return false
	}
	return !s.OwnTargets
}

// mosquittoConf is the configuration Mosquitto runs with: anonymous, no
// persistence, and queue and inflight limits above anything a scenario
// needs, so a QoS 1 scenario never loses to a limit (max_queued_messages
// and max_queued_bytes 0 are unlimited in Mosquitto 2.0). Nagle is off, as
// it is in mcutie (gnet sets TCP_NODELAY) and mochi (Go's default), so
// latencies compare the brokers and not Nagle's algorithm.
const mosquittoConf = `listener %d 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1024
max_queued_messages 0
max_queued_bytes 0
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`

// running is a started broker process.
type running struct {
	cmd    *exec.Cmd
	pid    int
	addr   string
	log    string // path of its stderr/stdout
	dir    string // temporary directory, removed by stop
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// env is what every run of a suite shares.
type env struct {
	bin        string // directory with mcutie, mcutie-bench, mochi
	mosquitto  string // path of the mosquitto binary
	pin        bool
	brokerCPUs string // taskset list for brokers, e.g. "1"
	benchCPUs  string // taskset list for the generator, e.g. "0"
	nice       int    // niceness of brokers and generator (0: inherit)
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the broker binds it; start then fails clearly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// command returns path and args, behind taskset when pinning and nice
// when a niceness is set. Both exec the next program, so the pid is the
// broker's (or bench's), and every thread it starts inherits the CPU
// affinity and the niceness (both are per thread on Linux: setting them
// on a running Go process would miss the threads it already has).
func (e *env) command(cpus, path string, args ...string) *exec.Cmd {
	argv := append([]string{path}, args...)
	if e.pin {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	if e.nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(e.nice)}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// start launches t on a free port and waits until it accepts connections.
func (e *env) start(t target) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("compare: no free port: %w", err)
	}
	dir, err := os.MkdirTemp("", "mcutie-compare-*")
	if err != nil {
		return nil, err
	}
	r := &running{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, log: filepath.Join(dir, "broker.log"), exited: make(chan struct{})}
	var path string
	var args []string
	switch t.Kind {
	case "mcutie":
		path = filepath.Join(e.bin, "mcutie")
		args = []string{"--listen", "tcp://" + r.addr, "--metrics-listen", "", "--log-level", "warn"}
		if t.Badger {
			args = append(args, "--store", "badger", "--data-dir", filepath.Join(dir, "data"))
		} else {
			args = append(args, "--store", "memory")
		}
		args = append(args, t.Args...)
	case "mosquitto":
		conf := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(mosquittoConf, port)), 0o600); err != nil {
			return nil, err
		}
		path, args = e.mosquitto, []string{"-c", conf}
	case "mochi":
		path, args = filepath.Join(e.bin, "mochi"), []string{"--addr", r.addr}
	default:
		return nil, fmt.Errorf("compare: unknown broker kind %q", t.Kind)
	}
	logf, err := os.Create(r.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r.cmd = e.command(e.brokerCPUs, path, args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on the terminal reaches the driver,
	// which then stops the broker in order, not both at once; if the driver
	// dies, the kernel kills the broker (Pdeathsig).
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("compare: cannot start %s: %w", t.Label, err)
	}
	r.pid = r.cmd.Process.Pid // taskset execs the broker: same pid
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			// taskset has exec'd by now (the broker is listening), so
			// /proc/pid is the broker's.
			return r, nil
		}
		select {
		case <-r.exited:
			msg := tail(r.log)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("compare: %s exited during start-up: %s", t.Label, msg)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return nil, fmt.Errorf("compare: %s did not accept connections on %s within 15s: %s", t.Label, r.addr, tail(r.log))
		}
	}
}

// stop sends SIGTERM, waits at most 10 s, then kills; it removes the
// temporary directory. It returns an error when the broker had already
// died, or did not exit cleanly on SIGTERM (a crash while the load
// generator disconnected counts against the run).
func (r *running) stop() error {
	var err error
	select {
	case <-r.exited:
		err = fmt.Errorf("exited before it was stopped (%v): %s", r.err, tail(r.log))
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
			if r.err != nil {
				err = fmt.Errorf("did not exit cleanly on SIGTERM (%v): %s", r.err, tail(r.log))
			}
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
			err = fmt.Errorf("did not exit within 10s of SIGTERM: %s", tail(r.log))
		}
	}
	os.RemoveAll(r.dir)
	return err
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// findMosquitto returns the mosquitto binary: on PATH or in /usr/sbin
// (where Debian installs it, outside a normal user's PATH).
func findMosquitto(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("compare: mosquitto not found on PATH or in /usr/sbin: install it (apt-get install -y mosquitto; `make bench-compare` does) or pass --mosquitto, or leave it out with --brokers mcutie,mochi")
}

// versionOf returns a one-line version of the broker kind, best effort.
func (e *env) versionOf(kind, repo string) string {
	switch kind {
	case "mosquitto":
		out, _ := exec.Command(e.mosquitto, "-h").CombinedOutput()
		first, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(strings.TrimPrefix(first, "mosquitto version "))
	case "mochi":
		b, err := os.ReadFile(filepath.Join(repo, "bench", "mochi", "go.mod"))
		if err != nil {
			return "?"
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[len(f)-2] == "github.com/mochi-mqtt/server/v2" {
				return f[len(f)-1]
			}
		}
		return "?"
	case "mcutie":
		out, err := exec.Command("git", "-C", repo, "describe", "--always", "--dirty").Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(out))
	}
	return "?"
}

// benchRun runs the load generator against addr and decodes its report.
func (e *env) benchRun(ctx context.Context, addr string, pid int, args []string, bound time.Duration) (*report, string, error) {
	full := append([]string{"--addr", addr, "--pid", strconv.Itoa(pid), "--json", "--progress=false"}, args...)
	cmd := e.command(e.benchCPUs, filepath.Join(e.bin, "mcutie-bench"), full...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		err = fmt.Errorf("killed after %v", bound)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		err = ctx.Err()
	}
	cmdline := "mcutie-bench " + strings.Join(args, " ")
	if err != nil {
		return nil, cmdline, fmt.Errorf("%s: %v: %s", cmdline, err, strings.TrimSpace(stderr.String()))
	}
	rep, err := decodeReport([]byte(stdout.String()))
	if err != nil {
		return nil, cmdline, fmt.Errorf("%s: %v", cmdline, err)
	}
	return rep, cmdline, nil
}
