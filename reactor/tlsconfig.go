package reactor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSOptions configures the tls:// and wss:// listeners.
type TLSOptions struct {
	CertFile string // PEM certificate chain, leaf first
	KeyFile  string // PEM private key of the leaf
	// ClientCAFile, when set, turns on mutual TLS: every client must
	// present a certificate that chains to one of these PEM CAs, or the
	// handshake fails.
	ClientCAFile string
	// MinVersion is the lowest TLS version accepted: tls.VersionTLS12
	// (the default) or tls.VersionTLS13.
	MinVersion uint16
	// UsernameFromCN makes the Common Name of the verified client
	// certificate the connection's username (broker.IdentifiedConn):
	// whatever User Name the CONNECT carries is replaced. Needs
	// ClientCAFile.
	UsernameFromCN bool
}

// tlsState is the certificate material in force; Reload swaps it whole,
// so a handshake sees either the old or the new files, never a mix.
type tlsState struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool
}

// tlsConfig serves the listeners' handshakes from an atomic pointer, so
// certificates can be replaced (SIGHUP) without touching connections that
// are already established. Safe for concurrent use.
type tlsConfig struct {
	opts TLSOptions
	cur  atomic.Pointer[tlsState]
	base *tls.Config
}

func newTLSConfig(o TLSOptions) (*tlsConfig, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("reactor: a tls:// or wss:// listener needs --tls-cert and --tls-key")
	}
	if o.UsernameFromCN && o.ClientCAFile == "" {
		return nil, errors.New("reactor: --tls-username-from-cn needs --tls-client-ca (the CN of an unverified certificate proves nothing)")
	}
	switch o.MinVersion {
	case 0:
		o.MinVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("reactor: TLS minimum version %#x not supported (want 1.2 or 1.3)", o.MinVersion)
	}
	tc := &tlsConfig{opts: o}
	if err := tc.reload(); err != nil {
		return nil, err
	}
	tc.base = &tls.Config{
		MinVersion:         o.MinVersion,
		GetConfigForClient: tc.configForClient,
	}
	return tc, nil
}

// reload reads the files again; on error the old material stays in force.
func (tc *tlsConfig) reload() error {
	cert, err := tls.LoadX509KeyPair(tc.opts.CertFile, tc.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("reactor: TLS certificate: %w", err)
	}
	st := &tlsState{cert: &cert}
	if tc.opts.ClientCAFile != "" {
		pem, err := os.ReadFile(tc.opts.ClientCAFile)
		if err != nil {
			return fmt.Errorf("reactor: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("reactor: TLS client CA %s: no PEM certificate in it", tc.opts.ClientCAFile)
		}
		st.clientCA = pool
	}
	tc.cur.Store(st)
	return nil
}

// configForClient returns the configuration of one handshake, built from
// the material in force when the ClientHello arrived.
func (tc *tlsConfig) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	st := tc.cur.Load()
	c := &tls.Config{
		MinVersion:   tc.opts.MinVersion,
		Certificates: []tls.Certificate{*st.cert},
	}
	if st.clientCA != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = st.clientCA
	}
	return c, nil
}

// peerCN is the Common Name of the verified client certificate, or noCN
// when there is none (a SAN-only or SPIFFE certificate): such a connection
// must be refused, never fall back to the CONNECT's user name (issue 21).
func peerCN(cs tls.ConnectionState) (string, bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return noCN, false
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return noCN, false
	}
	return cn, true
}

// noCN stands for "the user name comes from a certificate that has none":
// goConn.Username reports it as an empty name with ok, which the broker
// refuses (CONNACK 0x87 / 0x05). A CA-signed CN of one NUL byte is refused
// the same way.
const noCN = "\x00"
