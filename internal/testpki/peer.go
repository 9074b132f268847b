package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PeerCA is a CA for the certificates cluster nodes present to each
// other on their routes (mutual TLS), written to a temporary directory.
type PeerCA struct {
	dir    string
	CAFile string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

// NewPeerCA makes a fresh CA named cn.
func NewPeerCA(t testing.TB, cn string) *PeerCA {
	t.Helper()
	c := &PeerCA{dir: t.TempDir()}
	c.cert, c.key = SelfSignedCA(t, cn)
	c.CAFile = filepath.Join(c.dir, "ca.pem")
	if err := os.WriteFile(c.CAFile, pemCert(c.cert.Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue writes a node certificate for 127.0.0.1 and localhost, usable
// both to accept and to dial a route (serverAuth and clientAuth).
func (c *PeerCA) Issue(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(c.dir, name+".pem"), filepath.Join(c.dir, name+".key")
	if err := os.WriteFile(certFile, pemCert(der), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
