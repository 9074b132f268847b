package e2e

// Tests of what docs/install.md offers: the release build, the container
// image, the systemd unit, and the start-up order of the binary (a busy
// metrics port stops it before any MQTT listener is bound). The slow ones
// (a release build, building and running the image) run only with
// MCUTIE_PACKAGING_TEST=1 (make test-packaging) and where their tools are.

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// packagingSlow skips t unless MCUTIE_PACKAGING_TEST=1 (and not -short).
func packagingSlow(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping %s", what)
	}
	if os.Getenv("MCUTIE_PACKAGING_TEST") != "1" {
		t.Skipf("skipping %s (slow): set MCUTIE_PACKAGING_TEST=1 or run make test-packaging", what)
	}
}

// makeDryRun is `make -n ARGS...` in the repository root.
func makeDryRun(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on PATH")
	}
	cmd := exec.Command("make", append([]string{"-n", "-C", ".."}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackaging_MakeTargets checks the recipes without running them: make
// release builds the four platforms static and stamped, make run passes
// ARGS, make image builds FROM packaging/Containerfile.
func TestPackaging_MakeTargets(t *testing.T) {
	rel := makeDryRun(t, "release", "VERSION=v1.2.3-test")
	for _, want := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "CGO_ENABLED=0", "-X main.version=v1.2.3-test", "-buildvcs=auto", "SHA256SUMS"} {
		if !strings.Contains(rel, want) {
			t.Errorf("make -n release: no %q in\n%s", want, rel)
		}
	}
	run := makeDryRun(t, "run", `ARGS=--listen tcp://127.0.0.1:1884`)
	if !strings.Contains(run, "./bin/mcutie --listen tcp://127.0.0.1:1884") {
		t.Errorf("make -n run ARGS=...: the broker is not started with ARGS:\n%s", run)
	}
	img := makeDryRun(t, "image", "CONTAINER=podman", "IMAGE=mcutie:t")
	for _, want := range []string{"CGO_ENABLED=0", "packaging/Containerfile", "-t mcutie:t"} {
		if !strings.Contains(img, want) {
			t.Errorf("make -n image: no %q in\n%s", want, img)
		}
	}
	// The Kubernetes manifests and the Helm chart are checked by the
	// nested module packaging/check, which ./... does not reach: make test
	// (what CI runs) and make test-packaging must run it.
	for _, target := range []string{"test", "test-packaging"} {
		if out := makeDryRun(t, target); !strings.Contains(out, "cd packaging/check && ") || !strings.Contains(out, " test ") {
			t.Errorf("make -n %s does not run packaging/check's tests:\n%s", target, out)
		}
	}
}

// TestPackaging_Release runs make release for this machine's platform and
// checks the binary: static, stamped with VERSION, listed in SHA256SUMS.
func TestPackaging_Release(t *testing.T) {
	packagingSlow(t, "the release build")
	dist := t.TempDir()
	target := "linux/" + runtime.GOARCH
	cmd := exec.Command("make", "-C", "..", "release", "DIST="+dist, "RELEASE_TARGETS="+target, "VERSION=v0.0.0-e2e")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	name := "mcutie-linux-" + runtime.GOARCH
	bin := filepath.Join(dist, name)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: not static", name, libs)
	}
	f.Close()
	if runtime.GOOS == "linux" {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "mcutie v0.0.0-e2e\n") {
			t.Errorf("%s --version: %v\n%s", name, err, out)
		}
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  " + name + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}
}

// TestPackaging_MetricsPortBusyRefusesStart: with --metrics-listen on a
// taken port the binary exits 1 naming the address, and its MQTT port
// never accepts a connection in the meantime.
func TestPackaging_MetricsPortBusyRefusesStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := freePort(t)
	p := durRun(t, t.TempDir(), port, "--metrics-listen", busy.Addr().String())
	accepted := false
	for done := false; !done; {
		select {
		case <-p.exited:
			done = true
		case <-time.After(20 * time.Second):
			t.Fatalf("mcutie still running 20s after start with a busy metrics port:\n%s", p.log())
		default:
			if c, err := net.DialTimeout("tcp", p.Addr, 50*time.Millisecond); err == nil {
				accepted = true
				c.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", p.err)
	}
	log := p.log()
	if !strings.Contains(log, "cannot serve metrics and health") || !strings.Contains(log, busy.Addr().String()) {
		t.Errorf("the log does not say the metrics address is taken:\n%s", log)
	}
	if strings.Contains(log, `msg="mcutie started"`) {
		t.Errorf("the broker logged that it started:\n%s", log)
	}
	if accepted {
		t.Errorf("the MQTT port %s accepted a connection before the broker gave up", p.Addr)
	}
}

// TestPackaging_SystemdUnitVerifies runs systemd-analyze verify on
// packaging/mcutie.service (ExecStart pointed at a built binary) and
// checks the hardening it promises is there.
func TestPackaging_SystemdUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("../packaging/mcutie.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=mcutie", "--data-dir /var/lib/mcutie", "ProtectSystem=strict",
		"ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "\nCapabilityBoundingSet=\n",
		"LimitNOFILE=", "Restart=on-failure"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("mcutie.service: no %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on PATH: the unit is not verified")
	}
	const exe = "ExecStart=/usr/local/bin/mcutie "
	if !bytes.Contains(unit, []byte(exe)) {
		t.Fatalf("mcutie.service: no %q", exe)
	}
	bin := durBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "mcutie.service")
	if err := os.WriteFile(path, bytes.Replace(unit, []byte(exe), []byte("ExecStart="+bin+" "), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", path)
	out, err := cmd.CombinedOutput()
	// verify exits 0 on unknown keys and bad values: it only warns, so
	// any output is a failure too.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// containerTool is a working podman, else docker with a daemon (buildah
// cannot run the image); "" when there is none.
func containerTool() (string, string) {
	var why []string
	for _, c := range []string{"podman", "docker"} {
		p, err := exec.LookPath(c)
		if err != nil {
			why = append(why, c+": not installed")
			continue
		}
		if out, err := exec.Command(p, "info").CombinedOutput(); err != nil {
			why = append(why, fmt.Sprintf("%s info: %v: %s", c, err, firstLine(out)))
			continue
		}
		return c, ""
	}
	return "", strings.Join(why, "; ")
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// TestPackaging_Image builds the image with make image, runs it (host
// network, free ports, a user from MCUTIE_USER_alice), connects MQTT
// clients, runs its health check and stops it.
func TestPackaging_Image(t *testing.T) {
	packagingSlow(t, "building and running the container image")
	tool, why := containerTool()
	if tool == "" {
		t.Skipf("no working container tool (%s): apt-get install -y podman runc", why)
	}
	env := os.Environ()
	var global []string // flags before podman's subcommand
	if tool == "podman" {
		// What these machines need (docs/install.md, BUILDING-BLOCKS §7):
		// no default ulimits, and runc where it is installed.
		if os.Getenv("CONTAINERS_CONF") == "" {
			conf := filepath.Join(t.TempDir(), "containers.conf")
			if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			env = append(env, "CONTAINERS_CONF="+conf)
		}
		if _, err := exec.LookPath("runc"); err == nil {
			global = []string{"--runtime", "runc"}
		}
	}
	ctr := func(args ...string) (string, error) {
		cmd := exec.Command(tool, append(append([]string{}, global...), args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	image := fmt.Sprintf("localhost/mcutie-e2e:%d", os.Getpid())
	mk := exec.Command("make", "-C", "..", "image", "CONTAINER="+tool, "IMAGE="+image, "VERSION=v0.0.0-e2e")
	mk.Env = env
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = ctr("rmi", "-f", image) })

	cfg, err := ctr("image", "inspect", "--format", "{{.Config.User}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{json .Config.Healthcheck}}", image)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, cfg)
	}
	for _, want := range []string{"10001:10001", `"1883/tcp"`, `"9100/tcp"`, `"/data"`, "/healthcheck"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("image config %s: no %s", strings.TrimSpace(cfg), want)
		}
	}

	port, mport := freePort(t), freePort(t)
	name := fmt.Sprintf("mcutie-e2e-%d", os.Getpid())
	args := []string{"run", "-d", "--name", name, "--network", "host", "-e", "MCUTIE_USER_alice=s3cret"}
	if tool == "podman" {
		// The image's check asks port 9100; this run's metrics are elsewhere.
		args = append(args, "--health-cmd", fmt.Sprintf(`["/healthcheck", "http://127.0.0.1:%d/readyz"]`, mport))
	}
	args = append(args, image, "--listen", fmt.Sprintf("tcp://0.0.0.0:%d", port), "--metrics-listen", fmt.Sprintf("0.0.0.0:%d", mport))
	out, err := ctr(args...)
	if err != nil {
		t.Fatalf("%s run: %v\n%s", tool, err, out)
	}
	t.Cleanup(func() { _, _ = ctr("rm", "-f", "-v", name) })
	logs := func() string { s, _ := ctr("logs", name); return s }
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs(), `msg="mcutie started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("not started within 30s:\n%s", logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	// Listening on 0.0.0.0 turns anonymous access off.
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("anon").SetAutoReconnect(false).SetConnectTimeout(v3Wait)
	anon := mqtt.NewClient(o)
	if tok := anon.Connect(); tok.WaitTimeout(v3Wait) && tok.Error() == nil {
		anon.Disconnect(0)
		t.Errorf("an anonymous client was let in by the image's broker")
	}
	creds := func(o *mqtt.ClientOptions) { o.SetUsername("alice").SetPassword("s3cret") }
	sink := newV3Sink()
	sub, _ := v3Paho(t, addr, "sub", true, sink, creds)
	v3Sub(t, sub, "demo/#", 1)
	pub, _ := v3Paho(t, addr, "pub", true, nil, creds)
	v3Pub(t, pub, "demo/hello", 1, false, "world")
	if got := sink.waitPayload(t, "world"); got[len(got)-1].Topic != "demo/hello" {
		t.Errorf("got %+v", got)
	}

	if tool == "podman" {
		if out, err := ctr("healthcheck", "run", name); err != nil {
			t.Errorf("podman healthcheck run: %v\n%s", err, out)
		}
	}
	if out, err := ctr("exec", name, "/mcutie", "--version"); err != nil || !strings.Contains(out, "mcutie v0.0.0-e2e\n") {
		t.Errorf("mcutie --version in the container: %v\n%s", err, out)
	}
	if out, err := ctr("stop", "-t", "15", name); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	code, err := ctr("inspect", "--format", "{{.State.ExitCode}}", name)
	if err != nil || strings.TrimSpace(code) != "0" {
		t.Errorf("exit code after stop: %q (%v)\n%s", code, err, logs())
	}
	if l := logs(); !strings.Contains(l, `msg=stopped`) {
		t.Errorf("no clean stop in the log:\n%s", l)
	}
}
