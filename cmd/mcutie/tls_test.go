package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
