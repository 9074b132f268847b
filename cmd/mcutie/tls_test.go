package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/internal/testpki"
)

// The binary re-reads --tls-cert and --tls-key on SIGHUP: a new handshake
// sees the new certificate, and the process keeps running. TLS settings
// come from the YAML config file, as an operator would write them.
func TestSIGHUPReloadsTLSCertificates(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	testpki.WriteSelfSigned(t, "first", cert, key)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgFile := filepath.Join(dir, "mcutie.yaml")
	yaml := fmt.Sprintf("listen:\n  - tls://%s\ntls-cert: %s\ntls-key: %s\ntls-min-version: \"1.3\"\nstore: memory\nmetrics-listen: \"\"\nlog-level: error\n", addr, cert, key)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"--config", cfgFile}) }()

	serverCN := func() (string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return "", err
		}
		defer c.Close()
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			return "", fmt.Errorf("negotiated %#x despite tls-min-version 1.3", v)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	waitCN := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cn, err := serverCN()
			if err == nil && cn == want {
				return
			}
			if err != nil && strings.Contains(err.Error(), "negotiated") {
				t.Fatal(err)
			}
			select {
			case code := <-exit:
				t.Fatalf("mcutie exited with %d", code)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("server certificate CN %q (err %v), want %q", cn, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCN("first")
	testpki.WriteSelfSigned(t, "second", cert, key)
	if cn, _ := serverCN(); cn != "first" {
		t.Fatalf("certificate changed to %q before SIGHUP", cn)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitCN("second")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mcutie did not stop after SIGTERM")
	}
}

func TestTLSMinVersionFlag(t *testing.T) {
	for in, want := range map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := parseTLSVersion(in); err != nil || got != want {
			t.Fatalf("%s: %#x, %v", in, got, err)
		}
	}
	if _, err := parseTLSVersion("1.1"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

// TestReadmeMTLSExampleAdmitsItsClients (issue 21 item 21): the mTLS
// example of docs/transports.md (moved there from the README), run as
// written (addresses and file paths aside), lets the client shown there
// in: its certificate names the user, whose password is checked. It used
// to refuse every client (anonymous access off, no users). A certificate
// with the right name but a wrong password, and a client without a
// certificate, stay out.
func TestReadmeMTLSExampleAdmitsItsClients(t *testing.T) {
	readme, err := os.ReadFile("../../docs/transports.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "Example: MQTT over TLS on 8883 with client certificates")
	if !ok {
		t.Fatal("docs/transports.md has no mTLS example")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	p := testpki.New(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code := runPasswd([]string{"-c", "-b", pw, "alice", "alice-pw"}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
		t.Fatalf("passwd exit %d", code)
	}
	tlsAddr, wssAddr, tcpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	yaml := strings.NewReplacer(
		"0.0.0.0:8883", tlsAddr, "0.0.0.0:8443", wssAddr, "10.0.0.5:1883", tcpAddr,
		"/etc/mcutie/server.pem", p.ServerCert, "/etc/mcutie/server.key", p.ServerKey,
		"/etc/mcutie/clients-ca.pem", p.CA, "/etc/mcutie/passwd", pw,
	).Replace(block)
	if strings.Contains(yaml, "/etc/mcutie") {
		t.Fatalf("unreplaced path in the docs/transports.md example:\n%s", yaml)
	}
	cfgFile := filepath.Join(dir, "mcutie.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"--config", cfgFile, "--store", "memory", "--metrics-listen", "", "--log-level", "error"})
	}()
	defer func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case <-exit:
		case <-time.After(15 * time.Second):
			t.Error("mcutie did not stop after SIGTERM")
		}
	}()
	connect := func(certFile, keyFile, user, password string) (byte, error) {
		tc := p.ClientTLS(t, certFile, keyFile)
		var nc net.Conn
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if nc, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", tlsAddr, tc); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		c := paho.NewClient(paho.ClientConfig{Conn: nc})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "readme-" + user, CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(password)})
		if ack == nil {
			return 0, err
		}
		_ = c.Disconnect(&paho.Disconnect{})
		return ack.ReasonCode, nil
	}
	// As in docs/transports.md: -u alice -P <alice's password> with alice's certificate.
	if code, err := connect(p.ClientCert, p.ClientKey, "alice", "alice-pw"); err != nil || code != 0 {
		t.Fatalf("the example's client: CONNACK %#x, %v", code, err)
	}
	if code, err := connect(p.ClientCert, p.ClientKey, "alice", "wrong"); err != nil || code != 0x86 {
		t.Fatalf("alice's certificate with a wrong password: CONNACK %#x, %v; want 0x86", code, err)
	}
	if code, err := connect("", "", "alice", "alice-pw"); err == nil && code == 0 {
		t.Fatal("a client without a certificate got in")
	}
}
