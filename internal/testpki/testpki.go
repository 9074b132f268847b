package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// PKI is a CA, a server certificate for 127.0.0.1/localhost, a client
// certificate (CN "alice") signed by the CA, and a client certificate
// (CN "mallory") signed by another CA. Keys are fresh ECDSA P-256 keys
// written to a temporary directory; nothing is committed.
type PKI struct {
	dir                       string
	CA, ServerCert, ServerKey string
	ClientCert, ClientKey     string
	RogueCert, RogueKey       string
	Pool                      *x509.CertPool
	caCert                    *x509.Certificate
	caKey                     *ecdsa.PrivateKey
}

// New makes a PKI in a temporary directory of t.
func New(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{dir: t.TempDir(), Pool: x509.NewCertPool()}
	p.caCert, p.caKey = SelfSignedCA(t, "mcutie test CA")
	p.Pool.AddCert(p.caCert)
	p.CA = p.write(t, "ca.pem", pemCert(p.caCert.Raw))
	p.ServerCert, p.ServerKey = p.Issue(t, "server", "mcutie-server", true)
	p.ClientCert, p.ClientKey = p.Issue(t, "alice", "alice", false)
	rogueCA, rogueKey := SelfSignedCA(t, "rogue CA")
	cert, key := Leaf(t, "mallory", false, rogueCA, rogueKey)
	p.RogueCert = p.write(t, "mallory.pem", cert)
	p.RogueKey = p.write(t, "mallory.key", key)
	return p
}

// Issue signs a new leaf with the test CA and writes name.pem and name.key.
func (p *PKI) Issue(t testing.TB, name, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	cert, key := Leaf(t, cn, server, p.caCert, p.caKey)
	return p.write(t, name+".pem", cert), p.write(t, name+".key", key)
}

func (p *PKI) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientTLS is a client configuration trusting the test CA, with the
// given client certificate files (none when empty).
func (p *PKI) ClientTLS(t testing.TB, certFile, keyFile string) *tls.Config {
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

// SelfSignedCA returns a new self-signed CA certificate and its key.
func SelfSignedCA(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
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

// Leaf returns a PEM certificate and key for cn signed by ca: a server
// certificate for 127.0.0.1 and localhost, or a client certificate.
func Leaf(t testing.TB, cn string, server bool, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
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

// WriteSelfSigned writes a fresh self-signed server certificate for
// 127.0.0.1 with common name cn to certFile and keyFile.
func WriteSelfSigned(t testing.TB, cn, certFile, keyFile string) {
	t.Helper()
	ca, caKey := SelfSignedCA(t, cn+" CA")
	cert, key := Leaf(t, cn, true, ca, caKey)
	for f, data := range map[string][]byte{certFile: cert, keyFile: key} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
