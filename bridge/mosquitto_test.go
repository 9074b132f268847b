package bridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// The remote of these tests is a real Mosquitto (Debian's package),
// started by the test on a loopback port with a config file of its own,
// persistence in the test's directory, and stopped by the test.

const mosquittoBin = "/usr/sbin/mosquitto"

// mosquitto is one Mosquitto process, restartable on the same port.
type mosquitto struct {
	t    testing.TB
	dir  string
	port int
	conf string
	cmd  *exec.Cmd
	exit chan struct{}
}

// newMosquitto writes a config and starts Mosquitto; listener is the
// listener's lines with %d for the port (empty: plain TCP). The test's
// end stops it.
func newMosquitto(t testing.TB, listener string) *mosquitto {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skip("mosquitto is not installed (Debian package mosquitto; .ci/run installs it)")
	}
	m := &mosquitto{t: t, dir: t.TempDir(), port: freePort(t)}
	if listener == "" {
		listener = "listener %d 127.0.0.1\n"
	}
	listener = fmt.Sprintf(listener, m.port)
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	conf := listener + `allow_anonymous true
user root
persistence true
persistence_location ` + m.dir + `/
autosave_interval 3600
max_queued_messages 1000000
max_inflight_messages 1000
log_dest file ` + m.dir + `/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
`
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	return m
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// start runs Mosquitto and waits until it accepts connections.
func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(mosquittoBin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = io.Discard, io.Discard
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mosquitto: %v", err)
	}
	m.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) {
		_ = cmd.Wait()
		close(exit)
	}(m.cmd, m.exit)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.exit:
			b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			m.t.Fatalf("mosquitto exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto does not listen on %s", m.addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends Mosquitto with SIGTERM (it writes its persistence file) and
// waits for it.
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exit:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exit
	}
	m.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// local is an mcutie broker on a loopback port.
type local struct {
	b    *broker.Broker
	addr string
	srv  *reactor.Server
}

func newLocal(t testing.TB, opts broker.Options) *local {
	t.Helper()
	if opts.Loops == 0 {
		opts.Loops = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Store == nil {
		opts.Store = store.NewMemory()
	}
	b := broker.New(opts)
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: opts.Logger, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	l := &local{b: b, addr: srv.Addrs()[0].String(), srv: srv}
	t.Cleanup(l.stop)
	return l
}

func (l *local) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Stop(ctx)
}

// startBridges starts cfgs against l; the test's end stops them.
func startBridges(t testing.TB, l *local, yaml string) *Manager {
	t.Helper()
	cfgs, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("bridges file: %v\n%s", err, yaml)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, l.b, cfgs, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client connects a paho 3.1.1 client to addr; col (when not nil) gets
// the messages a resumed session receives before Subscribe.
func client(t testing.TB, addr, id string, clean bool, col ...*collector) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetOrderMatters(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetResumeSubs(true)
	if len(col) > 0 {
		o.SetDefaultPublishHandler(col[0].handle)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// collector gathers the messages a subscription receives.
type collector struct {
	mu   sync.Mutex
	msgs []mqtt.Message
	sig  chan struct{}
}

func newCollector() *collector { return &collector{sig: make(chan struct{}, 1)} }

func (c *collector) handle(_ mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds over the messages (bounded: it fails the
// test after d).
func (c *collector) waitFor(t testing.TB, d time.Duration, what string, cond func([]mqtt.Message) bool) []mqtt.Message {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		msgs := append([]mqtt.Message(nil), c.msgs...)
		c.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-c.sig:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("waiting for %s: got %d messages", what, len(msgs))
		}
	}
}

func subscribe(t testing.TB, c mqtt.Client, filter string, qos byte, col *collector) {
	t.Helper()
	if tok := c.Subscribe(filter, qos, col.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

func publish(t testing.TB, c mqtt.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	if tok := c.Publish(topic, qos, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitUntil polls cond (bounded).
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPKI makes a CA, a server certificate for 127.0.0.1/localhost and a
// client certificate, as PEM files in dir.
func testPKI(t testing.TB, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcutie test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) ([]byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return der, kb
	}
	sd, sk := leaf(2, "localhost", x509.ExtKeyUsageServerAuth, true)
	cd, ck := leaf(3, "bridge", x509.ExtKeyUsageClientAuth, false)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", sd), write("server.key", "EC PRIVATE KEY", sk),
		write("client.pem", "CERTIFICATE", cd), write("client.key", "EC PRIVATE KEY", ck)
}
