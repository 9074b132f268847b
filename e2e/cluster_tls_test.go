package e2e

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
	"github.com/mcutie/mcutie/internal/testpki"
)

// addTLSClusterNode starts an in-process node whose routes use tc
// (nil: plain), joining seed.
func addTLSClusterNode(t *testing.T, id, seed string, tc *tls.Config) *clusterNode {
	t.Helper()
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	cn, err := cluster.New(cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join, TLS: tc,
		HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{NodeID: id, Peers: cn})
	if err := cn.Start(tb.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Stop)
	return &clusterNode{testBroker: tb, id: id, node: cn}
}

// TestClusterRouteTLS: two nodes with mutual TLS on their routes (each
// certificate signed by the cluster's CA) join and carry a QoS 1 message
// from a publisher on one to a subscriber on the other; their route
// port asks for TLS before anything else; a node whose certificate
// another CA signed, and a node without TLS, cannot join: they get no
// route and the cluster does not hear of them. Half a TLS configuration
// is refused.
func TestClusterRouteTLS(t *testing.T) {
	ca := testpki.NewPeerCA(t, "cluster CA")
	cfg := func(name string, ca *testpki.PeerCA, caFile string) *tls.Config {
		cert, key := ca.Issue(t, name)
		tc, err := cluster.RouteTLS(cert, key, caFile)
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	a := addTLSClusterNode(t, "tls-a", "", cfg("a", ca, ca.CAFile))
	b := addTLSClusterNode(t, "tls-b", a.node.ClusterAddr(), cfg("b", ca, ca.CAFile))
	nodes := []*clusterNode{a, b}
	waitKnown(t, nodes)

	sub, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "tls-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "tls/#", QoS: 1}}})
	waitInterest(t, nodes, b, "tls/#")
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "tls-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "tls/x", QoS: 1, Payload: []byte("sealed")})
	if got := sub.recv(t); got.Topic != "tls/x" || string(got.Payload) != "sealed" {
		t.Fatalf("got %q %q", got.Topic, got.Payload)
	}

	// The route port speaks TLS first, and only to a certificate the CA
	// signed: a handshake with one succeeds, one without fails.
	dial := func(tc *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: v5Timeout}, "tcp", a.node.ClusterAddr(), tc)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(v5Timeout))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the server checks the client's certificate after the client's handshake ends
		return err
	}
	good := cfg("probe", ca, ca.CAFile)
	if err := dial(good); err != nil {
		t.Fatalf("a TLS handshake with a certificate the CA signed: %v", err)
	}
	anon := good.Clone()
	anon.Certificates = nil
	if err := dial(anon); err == nil {
		t.Fatal("the route port accepted a TLS client without a certificate")
	}

	// A certificate from another CA (trusting ours), and no TLS at all.
	rogue := testpki.NewPeerCA(t, "rogue CA")
	bad := addTLSClusterNode(t, "tls-rogue", a.node.ClusterAddr(), cfg("rogue", rogue, ca.CAFile))
	plain := addTLSClusterNode(t, "tls-plain", a.node.ClusterAddr(), nil)
	// NATS tries a seed again every second: two tries each.
	time.Sleep(2 * time.Second)
	for _, n := range []*clusterNode{bad, plain} {
		if r := n.node.Routes(); r != 0 {
			t.Errorf("%s has %d routes into the TLS cluster", n.id, r)
		}
		for _, m := range nodes {
			for _, p := range m.node.Peers() {
				if p.NodeID == n.id {
					t.Errorf("%s heard from %s", m.id, n.id)
				}
			}
		}
	}
	if len(a.node.Peers()) != 1 || len(b.node.Peers()) != 1 {
		t.Errorf("the TLS nodes know %d and %d peers, want 1 each", len(a.node.Peers()), len(b.node.Peers()))
	}

	for _, half := range [][3]string{{"c.pem", "", ""}, {"c.pem", "c.key", ""}, {"", "", "ca.pem"}} {
		if _, err := cluster.RouteTLS(half[0], half[1], half[2]); err == nil || !strings.Contains(err.Error(), "all of") {
			t.Errorf("RouteTLS(%q) = %v, want a refusal of half a configuration", half, err)
		}
	}
}
