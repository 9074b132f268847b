package check

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	corev1 "k8s.io/api/core/v1"
)

// pod is the broker started as the kubelet would start the StatefulSet's
// container, on this machine: the same command, arguments and
// environment; each volume a directory under root (ConfigMaps and Secrets
// written out as the kubelet projects them); each container port a free
// loopback port.
type pod struct {
	cmd    *exec.Cmd
	root   string
	ports  map[int32]int // container port -> loopback port
	env    []string
	args   []string
	mounts map[string]string // mount path -> directory
	grace  time.Duration

	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
	err    error
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPod starts the bundle's broker. It stops by itself at the end of
// the test.
func startPod(t *testing.T, b *bundle) *pod {
	t.Helper()
	bin, _ := mcutieBinary(t)
	ss, err := b.statefulSet()
	if err != nil {
		t.Fatal(err)
	}
	spec := &ss.Spec.Template.Spec
	c, err := brokerContainer(ss)
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{root: t.TempDir(), ports: map[int32]int{}, mounts: map[string]string{}, exited: make(chan struct{})}
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		p.grace = time.Duration(*g) * time.Second
	}
	for _, cp := range c.Ports {
		p.ports[cp.ContainerPort] = freePort(t)
	}
	// Volumes.
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(p.root, filepath.FromSlash(m.MountPath))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p.mounts[m.MountPath] = dir
		v, ok := volume(spec, m.Name)
		if !ok {
			continue // a volumeClaimTemplate: an empty directory
		}
		files, err := volumeFiles(b, v)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			f := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, data, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Environment: exactly the pod's (a scratch image adds nothing).
	for _, ef := range c.EnvFrom {
		s := b.secret(ef.SecretRef.Name)
		if s == nil {
			t.Fatalf("envFrom Secret %s missing", ef.SecretRef.Name)
		}
		data := secretData(s)
		for _, k := range sortedKeys(data) {
			p.env = append(p.env, ef.Prefix+k+"="+string(data[k]))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s: valueFrom is not mapped by this test", e.Name)
		}
		p.env = append(p.env, e.Name+"="+e.Value)
	}
	// Arguments: paths into the volumes' directories, addresses onto the
	// loopback ports.
	for _, a := range c.Args {
		p.args = append(p.args, p.mapArg(t, a))
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = p.env
	p.cmd.Dir = p.root
	p.cmd.Stdout = io.Discard
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			if p.stderr.Len() < 64<<10 {
				p.stderr.WriteString(sc.Text() + "\n")
			}
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("mcutie %s\n%s", strings.Join(p.args, " "), p.log())
		}
	})
	return p
}

func (p *pod) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// mapArg rewrites one --name=value argument for this machine.
func (p *pod) mapArg(t *testing.T, a string) string {
	name, value, ok := strings.Cut(a, "=")
	if !ok {
		return a
	}
	switch strings.TrimLeft(name, "-") {
	case "listen", "metrics-listen":
		scheme, hp, hasScheme := strings.Cut(value, "://")
		if !hasScheme {
			hp, scheme = value, ""
		}
		_, port, err := hostPort(hp)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		local, ok := p.ports[port]
		if !ok {
			t.Fatalf("%s: port %d is not a container port", a, port)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", local)
		if hasScheme {
			addr = scheme + "://" + addr
		}
		return name + "=" + addr
	}
	if strings.HasPrefix(value, "/") {
		best := ""
		for mp := range p.mounts {
			if (value == mp || strings.HasPrefix(value, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
				best = mp
			}
		}
		if best == "" {
			t.Fatalf("%s: path outside every volume: the root filesystem is read-only", a)
		}
		return name + "=" + filepath.Join(p.mounts[best], filepath.FromSlash(strings.TrimPrefix(value, best)))
	}
	return a
}

// local returns the loopback address of a container port.
func (p *pod) local(containerPort int32) string {
	return fmt.Sprintf("127.0.0.1:%d", p.ports[containerPort])
}

// probe GETs a probe's path as the kubelet does and returns status and body.
func (p *pod) probe(t *testing.T, c *corev1.Container, pr *corev1.Probe) (int, string, error) {
	t.Helper()
	port, ok := containerPort(c, pr.HTTPGet.Port)
	if !ok {
		t.Fatalf("probe port %s is not a container port", pr.HTTPGet.Port.String())
	}
	cl := http.Client{Timeout: time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second}
	resp, err := cl.Get("http://" + p.local(port) + pr.HTTPGet.Path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// waitProbe polls a probe until it passes, as the kubelet does, bounded by
// its failureThreshold × periodSeconds (at most a minute here).
func (p *pod) waitProbe(t *testing.T, c *corev1.Container, sp *corev1.Probe) {
	t.Helper()
	limit := min(time.Duration(max(sp.FailureThreshold, 3)*max(sp.PeriodSeconds, 1))*time.Second, time.Minute)
	deadline := time.Now().Add(limit)
	for {
		code, _, err := p.probe(t, c, sp)
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("mcutie exited before its probe %s passed: %v", sp.HTTPGet.Path, p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe %s not 200 within %v: %d %v", sp.HTTPGet.Path, limit, code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, as the kubelet does, and waits the grace period; the
// broker must be gone by then and exit 0.
func (p *pod) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("mcutie exited with %v after SIGTERM", p.err)
		}
	case <-time.After(p.grace):
		t.Errorf("mcutie still running %v (terminationGracePeriodSeconds) after SIGTERM: the kubelet would SIGKILL it", p.grace)
	}
}

// mqttConnect connects a paho 3.1.1 client to addr as user (empty: no
// user name) and returns it, or the CONNECT's error.
func mqttConnect(addr, id, user, password string, tlsConf *tls.Config) (mqtt.Client, error) {
	scheme := "tcp://"
	if tlsConf != nil {
		scheme = "ssl://"
	}
	o := mqtt.NewClientOptions().AddBroker(scheme + addr).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetTLSConfig(tlsConf)
	if user != "" {
		o.SetUsername(user).SetPassword(password)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("CONNECT: no CONNACK within 10 s")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

// roundTrip subscribes and publishes one QoS 1 message through the broker
// with client c and waits for it.
func roundTrip(t *testing.T, c mqtt.Client, topic string) {
	t.Helper()
	got := make(chan string, 1)
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("SUBSCRIBE %s: %v", topic, tok.Error())
	}
	if tok := c.Publish(topic, 1, false, "hello from the pod"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("PUBLISH %s: %v", topic, tok.Error())
	}
	select {
	case m := <-got:
		if m != "hello from the pod" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the message on %s did not come back within 10 s", topic)
	}
}

// runChecks is what runPod checks beyond the probes.
type runChecks struct {
	users     map[string]string // user -> password that must get in
	anonymous bool              // whether a client without a user name gets in
	tls       *x509.CertPool    // when set: also connect to the mqtts port with TLS, trusting this pool
}

// runPod starts the bundle's broker, checks its probes, its MQTT port with
// want's credentials, its data on the data volume and its stop on SIGTERM.
func runPod(t *testing.T, b *bundle, want runChecks) {
	t.Helper()
	ss, err := b.statefulSet()
	if err != nil {
		t.Fatal(err)
	}
	c, err := brokerContainer(ss)
	if err != nil {
		t.Fatal(err)
	}
	p := startPod(t, b)
	// The startup probe passes first (/healthz answers once the store is
	// open, before the MQTT listeners run); then the readiness probe
	// (/readyz: the listeners run) lets the pod into the Services.
	p.waitProbe(t, c, c.StartupProbe)
	p.waitProbe(t, c, c.ReadinessProbe)
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
		body  string
	}{{"startup", c.StartupProbe, "ok\n"}, {"liveness", c.LivenessProbe, "ok\n"}, {"readiness", c.ReadinessProbe, "ready\n"}} {
		code, body, err := p.probe(t, c, pr.probe)
		if err != nil || code != http.StatusOK || body != pr.body {
			t.Errorf("%s probe GET %s: %d %q %v, want 200 %q", pr.kind, pr.probe.HTTPGet.Path, code, body, err, pr.body)
		}
	}
	mqttPort, _ := namedPort(c, "mqtt")
	addr := p.local(mqttPort)
	if len(want.users) == 0 && !want.anonymous {
		t.Fatal("BUG: nobody to connect as")
	}
	for _, user := range sortedKeys(want.users) {
		cl, err := mqttConnect(addr, "k8s-"+user, user, want.users[user], nil)
		if err != nil {
			t.Errorf("user %s with the Secret's password: %v", user, err)
			continue
		}
		roundTrip(t, cl, "k8s/check/"+user)
		cl.Disconnect(100)
		if _, err := mqttConnect(addr, "k8s-bad-"+user, user, want.users[user]+"x", nil); err == nil {
			t.Errorf("user %s with a wrong password got in", user)
		}
	}
	anon, err := mqttConnect(addr, "k8s-anonymous", "", "", nil)
	switch {
	case want.anonymous && err != nil:
		t.Errorf("anonymous client refused with --allow-anonymous: %v", err)
	case !want.anonymous && err == nil:
		t.Errorf("anonymous client got in: anonymous access must be off")
	}
	if anon != nil {
		anon.Disconnect(100)
	}
	if want.tls != nil {
		tlsPort, ok := namedPort(c, "mqtts")
		if !ok {
			t.Fatal("no mqtts container port")
		}
		user := sortedKeys(want.users)[0]
		cl, err := mqttConnect(p.local(tlsPort), "k8s-tls", user, want.users[user], &tls.Config{RootCAs: want.tls, ServerName: "mcutie.test"})
		if err != nil {
			t.Errorf("TLS: %v", err)
		} else {
			roundTrip(t, cl, "k8s/check/tls")
			cl.Disconnect(100)
		}
	}
	p.stop(t)
	// The store lives on the data volume: something is there now.
	if dd, ok := one(mustArgs(t, c), "data-dir"); ok {
		entries, err := os.ReadDir(p.mounts[dd])
		if err != nil || len(entries) == 0 {
			t.Errorf("--data-dir %s (volume data): nothing written (%v)", dd, err)
		}
	}
	log := p.log()
	if !strings.Contains(log, "mcutie started") {
		t.Errorf("no \"mcutie started\" in the log")
	}
	if _, ok := one(mustArgs(t, c), "config"); ok && !strings.Contains(log, "config file loaded") {
		t.Errorf("--config given, but no \"config file loaded\" in the log")
	}
	if strings.Contains(log, "names no flag") {
		t.Errorf("the pod's environment has MCUTIE_ variables that name no flag (see the log)")
	}
}

func mustArgs(t *testing.T, c *corev1.Container) []flagArg {
	t.Helper()
	a, err := parseArgs(c.Args)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
