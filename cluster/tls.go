package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// RouteTLS loads the files of --cluster-tls-cert, --cluster-tls-key and
// --cluster-tls-ca into the configuration of mutual TLS on the routes
// (Options.TLS): each node presents its certificate and accepts only a
// peer whose certificate the CA signed, both ways; a node dialing a
// route checks the address it dials against the peer's certificate (IP
// or DNS SAN). So every node's certificate needs both the serverAuth and
// clientAuth extended key usages and the addresses the others dial.
//
// All three empty: nil (no TLS). One or two of them: an error, never a
// half-secured cluster.
func RouteTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("cluster: route TLS needs all of --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca (mutual TLS: each node proves itself with a certificate the CA signed)")
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: --cluster-tls-cert/--cluster-tls-key: %w", err)
	}
	raw, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: --cluster-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("cluster: --cluster-tls-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{kp},
		RootCAs:      pool,                           // the peers we dial
		ClientCAs:    pool,                           // the peers that dial us
		ClientAuth:   tls.RequireAndVerifyClientCert, // mutual
		MinVersion:   tls.VersionTLS12,
	}, nil
}
