package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
	"github.com/mcutie/mcutie/monitor"
)

// clusterConfig holds the --cluster-* flags and, once set up, the node.
type clusterConfig struct {
	listen      string
	join        listFlag
	name        string
	secret      string
	secretFile  string
	queue       int
	credit      int
	confirmAcks bool
	hold        time.Duration
	holdQueue   int
	holdBytes   int
	tlsCert     string
	tlsKey      string
	tlsCA       string
	tombTTL     time.Duration
	tombs       int

	sessions        bool
	replicas        int
	claimTimeout    time.Duration
	moveTimeout     time.Duration
	maxSessionBytes int
	willAfter       time.Duration

	node *cluster.Node
}

// clusterSecretEnv is read when neither --cluster-secret nor
// --cluster-secret-file is given.
const clusterSecretEnv = "MCUTIE_CLUSTER_SECRET"

func clusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	fs.StringVar(&c.listen, "cluster-listen", "", "host:port the other nodes of a cluster connect to (embedded NATS routes; docs/clustering.md) (empty: a single node, no cluster)")
	fs.Var(&c.join, "cluster-join", "host:port of another node's --cluster-listen to join, repeatable (seeds: one live node is enough)")
	fs.StringVar(&c.name, "cluster-name", "mcutie", "the cluster's name: nodes with another name do not join")
	fs.StringVar(&c.secret, "cluster-secret", "", "shared secret every node of the cluster presents on its routes (required when --cluster-listen is not loopback); prefer --cluster-secret-file or "+clusterSecretEnv)
	fs.StringVar(&c.secretFile, "cluster-secret-file", "", "file holding --cluster-secret (one line)")
	fs.BoolVar(&c.sessions, "cluster-sessions", true, "one owner per client id cluster-wide, kept with a quorum (JetStream KV in --data-dir/cluster): a CONNECT without a quorum is refused with 0x88, a persistent session moves to the node its client connects to (docs/clustering.md); applies with --cluster-listen only; false: no JetStream, a takeover ends the old node's session and a partition's minority keeps accepting CONNECTs")
	fs.IntVar(&c.replicas, "cluster-replicas", 3, "nodes that keep the replicated record of which node owns each client id; a CONNECT needs a majority of them (fewer while fewer nodes are up; docs/clustering.md)")
	fs.DurationVar(&c.claimTimeout, "cluster-claim-timeout", 3*time.Second, "longest a CONNECT waits to claim its client id cluster-wide; then it is refused with 0x88 Server unavailable (mcutie_cluster_claims_refused_total)")
	fs.DurationVar(&c.moveTimeout, "cluster-move-timeout", 2*time.Second, "longest a CONNECT waits for its session from the node that had it; then the client starts clean (mcutie_cluster_session_moves_failed_total)")
	fs.IntVar(&c.maxSessionBytes, "cluster-max-session-bytes", 8<<20, "largest session (subscriptions and queued messages, encoded) moved to another node; a larger one is discarded (mcutie_cluster_session_moves_refused_total); at most 60 MiB")
	fs.DurationVar(&c.willAfter, "cluster-will-after", cluster.DefaultWillAfter, "with --cluster-sessions (the default): how long a node must be unheard (its liveness in the cluster's KV unchanged) before the others publish the wills of its clients, once, at their due time; a graceful leave is never such a loss; 0: wills are not replicated (a dead node's wills are published when it restarts) (docs/clustering.md)")
	fs.IntVar(&c.queue, "cluster-queue", 65536, "messages waiting to be sent to other nodes at most; beyond it they are dropped and counted (mcutie_cluster_dropped_messages_total)")
	fs.IntVar(&c.credit, "cluster-credit", cluster.DefaultCredit, "QoS 1/2 messages each other node may have on their way here, or waiting for a subscriber here far behind, before its publishers' PUBACK/PUBREC wait for this node (back-pressure across nodes; at most a quarter of --max-queued-messages; 0: none, their publishers are not slowed and this node may drop at full session queues; docs/clustering.md)")
	fs.BoolVar(&c.confirmAcks, "cluster-confirm-acks", false, "a QoS 1/2 publisher's PUBACK/PUBREC waits until every other node with a matching subscriber confirmed it routed and stored the message: nothing acknowledged is lost when this node is killed before sending it on; costs a round trip between the nodes (and up to 2 ms) per acknowledgement (docs/clustering.md)")
	fs.DurationVar(&c.hold, "cluster-hold", cluster.DefaultHold, "how long the other nodes hold QoS 1/2 messages for a node that is away (restarting) for its persistent sessions; a node that left gracefully and stays away longer has its pending wills published by the others; 0: no hold (the wills still wait 5m) (docs/clustering.md)")
	fs.IntVar(&c.holdQueue, "cluster-hold-queue", cluster.DefaultHoldMessages, "messages held at most per absent node; beyond it they are dropped and counted (mcutie_cluster_hold_dropped_messages_total)")
	fs.StringVar(&c.tlsCert, "cluster-tls-cert", "", "PEM certificate this node presents on the routes (mutual TLS; with --cluster-tls-key and --cluster-tls-ca, all or none): needs serverAuth and clientAuth usages and the addresses the others dial")
	fs.StringVar(&c.tlsKey, "cluster-tls-key", "", "PEM private key of --cluster-tls-cert")
	fs.StringVar(&c.tlsCA, "cluster-tls-ca", "", "PEM CA that signs every node's route certificate: a node without one it signed cannot join")
	fs.IntVar(&c.holdBytes, "cluster-hold-bytes", cluster.DefaultHoldBytes, "bytes held at most per absent node (in memory); beyond it messages are dropped and counted")
	fs.DurationVar(&c.tombTTL, "cluster-retained-tombstone-ttl", 24*time.Hour, "how long a node remembers that a retained message was cleared, so that an older copy (a node down longer) does not bring it back; longer than any node stays down")
	fs.IntVar(&c.tombs, "cluster-retained-tombstones", 100000, "cleared retained topics remembered at most; beyond it the oldest are forgotten early (mcutie_cluster_retained_tombstones_evicted_total)")
}

// setupCluster makes the node when --cluster-listen is given and sets it
// as the broker's peers.
func setupCluster(cfg *config, bopts *broker.Options, log *slog.Logger) error {
	c := &cfg.cluster
	if c.listen == "" {
		if len(c.join) > 0 || c.tlsCert != "" || c.tlsKey != "" || c.tlsCA != "" {
			return fmt.Errorf("--cluster-join and --cluster-tls-* need --cluster-listen")
		}
		return nil
	}
	secret := c.secret
	if secret == "" && c.secretFile != "" {
		raw, err := os.ReadFile(c.secretFile)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(raw))
	}
	if secret == "" {
		secret = os.Getenv(clusterSecretEnv)
	}
	if c.credit < 0 {
		return fmt.Errorf("--cluster-credit must be >= 0")
	}
	credit := c.credit
	if credit == 0 {
		credit = -1 // cluster.Options: negative is none, 0 the default
	}
	if c.willAfter < 0 {
		return fmt.Errorf("--cluster-will-after must be >= 0")
	}
	willAfter := c.willAfter
	if willAfter == 0 {
		willAfter = -1 // cluster.Options: negative is off, 0 the default
	}
	if c.hold < 0 || c.holdQueue <= 0 || c.holdBytes <= 0 {
		return fmt.Errorf("--cluster-hold must be >= 0, --cluster-hold-queue and --cluster-hold-bytes > 0")
	}
	routeTLS, err := cluster.RouteTLS(c.tlsCert, c.tlsKey, c.tlsCA)
	if err != nil {
		return err
	}
	hold := c.hold
	if hold == 0 {
		hold = -1 // cluster.Options: negative is off, 0 the default
	}
	storeDir := ""
	if cfg.storeKind == "badger" {
		storeDir = filepath.Join(cfg.dataDir, "cluster") // else: in memory, like the broker's state
	}
	n, err := cluster.New(cluster.Options{NodeID: bopts.NodeID, Name: c.name, Listen: c.listen, Join: c.join,
		Secret: secret, QueueSize: c.queue, Credit: credit, Hold: hold, HoldMessages: c.holdQueue, HoldBytes: c.holdBytes, TLS: routeTLS, Logger: log,
		Ownership: c.sessions, StoreDir: storeDir, Replicas: c.replicas, ClaimTimeout: c.claimTimeout, MoveTimeout: c.moveTimeout, MaxSessionBytes: c.maxSessionBytes,
		WillAfter: willAfter, ConfirmAcks: c.confirmAcks})
	if err != nil {
		return err
	}
	c.node = n
	bopts.Peers = n
	bopts.RetainedTombstoneTTL, bopts.MaxRetainedTombstones = c.tombTTL, c.tombs
	return nil
}

// startCluster joins the cluster once the broker holds its state.
func startCluster(cfg *config, b *broker.Broker) error {
	if cfg.cluster.node == nil {
		return nil
	}
	if err := cfg.cluster.node.Start(b); err != nil {
		return err
	}
	// Open the listeners once the other nodes' interest is known (a
	// publisher's first messages must reach their subscribers), but do
	// not wait for ever for seeds that are not there yet.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cfg.cluster.node.WaitJoined(ctx); err != nil {
		slog.Warn(err.Error())
	}
	return nil
}

// leaveCluster tells the other nodes this one is going (SIGTERM), so
// that they hold for its persistent sessions until it is back; before
// the listeners stop.
func leaveCluster(cfg *config, log *slog.Logger) {
	if cfg.cluster.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := cfg.cluster.node.Leave(ctx); err != nil {
		log.Warn("leaving the cluster", "err", err)
	}
}

// stopCluster leaves it, after the broker stopped.
func stopCluster(cfg *config) {
	if cfg.cluster.node != nil {
		cfg.cluster.node.Stop()
	}
}

// clusterMonitor adds the cluster's metrics and readiness to the endpoint.
func clusterMonitor(cfg *config, writers []func(io.Writer), checks []monitor.Check) ([]func(io.Writer), []monitor.Check) {
	n := cfg.cluster.node
	if n == nil {
		return writers, checks
	}
	return append(writers, n.WriteMetrics), append(checks, monitor.Check{Name: "cluster", Fn: func(context.Context) error { return n.Ready() }})
}
