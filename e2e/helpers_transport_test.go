package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Helpers for the transport tests (transport_test.go, browser_test.go):
// a throw-away PKI made at run time, a broker with several listeners and a
// log that tests can wait on.

// testPKI is a CA, a server certificate for 127.0.0.1/localhost, a client
// certificate (CN "alice") signed by the CA, and a client certificate
// (CN "mallory") signed by another CA. Keys are fresh ECDSA P-256 keys
// written to a temporary directory; nothing is committed.
type testPKI struct {
	dir                       string
	CA, ServerCert, ServerKey string
	ClientCert, ClientKey     string
	RogueCert, RogueKey       string
	Pool                      *x509.CertPool
	caCert                    *x509.Certificate
	caKey                     *ecdsa.PrivateKey
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), Pool: x509.NewCertPool()}
	p.caCert, p.caKey = selfSigned(t, "mcutie test CA")
	p.Pool.AddCert(p.caCert)
	p.CA = p.write(t, "ca.pem", pemCert(p.caCert.Raw))
	p.ServerCert, p.ServerKey = p.issue(t, "server", "mcutie-server", true)
	p.ClientCert, p.ClientKey = p.issue(t, "alice", "alice", false)
	rogueCA, rogueKey := selfSigned(t, "rogue CA")
	cert, key := leaf(t, "mallory", false, rogueCA, rogueKey)
	p.RogueCert = p.write(t, "mallory.pem", cert)
	p.RogueKey = p.write(t, "mallory.key", key)
	return p
}

// issue signs a new leaf with the test CA and writes name.pem and name.key.
func (p *testPKI) issue(t testing.TB, name, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	cert, key := leaf(t, cn, server, p.caCert, p.caKey)
	return p.write(t, name+".pem", cert), p.write(t, name+".key", key)
}

func (p *testPKI) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientTLS is a client configuration trusting the test CA, with the
// given client certificate files (none when empty).
func (p *testPKI) clientTLS(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	c := &tls.Config{RootCAs: p.Pool, ServerName: "127.0.0.1"}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(time.Now().UnixNano() + serial.n)
}

func selfSigned(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// leaf returns PEM certificate and key signed by ca.
func leaf(t testing.TB, cn string, server bool, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// logBuf is a debug-level log the tests can search.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until a log line contains every one of parts.
func (l *logBuf) waitFor(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(v3Wait)
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v; log:\n%s", parts, v3Wait, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// transportBroker is a broker with one listener per entry of schemes
// ("tcp", "tcp?proxy=true", "tls", "ws", "wss", "ws/custom", …), each on
// its own loopback port, logging at debug level into Log.
type transportBroker struct {
	*testBroker
	Addrs map[string]string // scheme entry → host:port
	Log   *logBuf
}

func startTransport(t testing.TB, tlsOpts reactor.TLSOptions, schemes ...string) *transportBroker {
	t.Helper()
	return startTransportWith(t, broker.Options{ConnectTimeout: 3 * time.Second}, tlsOpts, schemes...)
}

// startTransportWith is startTransport with broker options (Loops 2, a
// memory store and the debug log are filled in).
func startTransportWith(t testing.TB, bo broker.Options, tlsOpts reactor.TLSOptions, schemes ...string) *transportBroker {
	t.Helper()
	lb := &logBuf{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(lb), &slog.HandlerOptions{Level: slog.LevelDebug}))
	bo.Loops, bo.Store, bo.Logger = 2, store.NewMemory(), logger
	b := broker.New(bo)
	tb := &transportBroker{Addrs: map[string]string{}, Log: lb}
	var listen []string
	for _, sc := range schemes {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		tb.Addrs[sc] = addr
		scheme, rest, _ := strings.Cut(sc, "/")
		scheme, query, _ := strings.Cut(scheme, "?")
		u := scheme + "://" + addr
		if rest != "" {
			u += "/" + rest
		}
		if query != "" {
			u += "?" + query
		}
		listen = append(listen, u)
	}
	srv := reactor.New(b, reactor.Options{Listen: listen, TLS: tlsOpts, Logger: logger, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		t.Fatalf("start broker on %v: %v", listen, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	tb.testBroker = &testBroker{B: b, Addr: tb.Addrs[schemes[0]], srv: srv}
	return tb
}

// at is a testBroker view whose Addr is the listener of scheme, for the
// helpers that take a *testBroker (mosquitto).
func (tb *transportBroker) at(scheme string) *testBroker {
	return &testBroker{B: tb.B, Addr: tb.Addrs[scheme], srv: tb.srv}
}

// metric returns the value of one transport metric line, or "" if absent.
func (tb *transportBroker) metric(name string) string {
	var b bytes.Buffer
	tb.srv.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// waitMetric waits until metric name has value want.
func (tb *transportBroker) waitMetric(t testing.TB, name, want string) {
	t.Helper()
	deadline := time.Now().Add(v3Wait)
	for tb.metric(name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %s", name, tb.metric(name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
