package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"
)

// The remote side: one connection to the remote broker, made by a
// well-kept client (github.com/eclipse/paho.golang for MQTT 5,
// github.com/eclipse/paho.mqtt.golang for 3.1.1), each connection a new
// client whose own session state starts empty, so the bridge alone
// decides what is sent again after a reconnect (its pending list, in
// order) and no message is resent twice by two layers.

// remote is one live connection to the remote broker.
type remote interface {
	// publish writes m to the connection; calls keep their order on the
	// wire. For QoS 1 the returned wait reports the PUBACK.
	publish(m *outItem) (ackWait, error)
	// done is closed when the connection has ended.
	done() <-chan struct{}
	// close ends the connection (done is closed once it has).
	close()
}

// ackWait waits for one message's acknowledgement, or for dead.
type ackWait func(dead <-chan struct{}) ackResult

type ackResult int

const (
	ackLost    ackResult = iota // the connection ended first: send it again
	ackOK                       // PUBACK
	ackRefused                  // PUBACK with a v5 error code: not sent again
)

// dialFunc connects to the remote and subscribes to the in mappings.
type dialFunc func(ctx context.Context, br *Bridge) (remote, error)

// tlsConfig builds the TLS settings of a tls:// remote (nil for tcp://).
func (c *Config) tlsConfig() (*tls.Config, error) {
	scheme, hostport, err := c.remote()
	if err != nil || scheme != "tls" {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(hostport)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLS.InsecureSkipVerify}
	if c.TLS.ServerName != "" {
		tc.ServerName = c.TLS.ServerName
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// dialNet opens the network connection (TCP, then TLS when configured)
// within ctx and ConnectTimeout.
func (br *Bridge) dialNet(ctx context.Context) (net.Conn, error) {
	_, hostport, _ := br.cfg.remote()
	// ConnectTimeout bounds the dial and the handshake: a remote that
	// drops SYNs would otherwise hold an attempt for minutes.
	nd := &net.Dialer{Timeout: br.cfg.ConnectTimeout, KeepAlive: br.cfg.KeepAlive}
	if br.tls == nil {
		return nd.DialContext(ctx, "tcp", hostport)
	}
	d := tls.Dialer{NetDialer: nd, Config: br.tls}
	return d.DialContext(ctx, "tcp", hostport)
}

// backoff is the wait before reconnect attempt n (0 first): Min doubled
// n times, at most Max, then drawn between half and all of it so that
// bridges cut off together do not come back together.
func backoff(b Backoff, n int) time.Duration {
	d := b.Max
	if n < 30 {
		if s := b.Min << n; s > 0 && s < b.Max {
			d = s
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

var errNotConnected = errors.New("bridge: the remote connection has ended")
