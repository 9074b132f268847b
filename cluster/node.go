package cluster

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/mcutie/mcutie/router"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure a node.
type Options struct {
	// NodeID names this node; unique in the cluster (the broker's node id).
	NodeID string
	// Name is the cluster's name: nodes with another name do not join.
	Name string
	// Listen is host:port for the routes from the other nodes.
	Listen string
	// Join are host:port of other nodes (seeds); a node that is the first
	// of its cluster has none. Listing itself is harmless.
	Join []string
	// Secret authenticates the routes: every node must have the same one.
	// Empty: routes are not authenticated (only for a Listen on loopback,
	// or with TLS).
	Secret string
	// TLS, when set, is mutual TLS on the routes (RouteTLS): a node
	// without a certificate the CA signed cannot join.
	TLS *tls.Config
	// QueueSize bounds the messages waiting to be sent to other nodes
	// (default 65536); beyond it they are dropped and counted.
	QueueSize int
	// HeartbeatInterval is how often a node announces its interest
	// version (default 1 s); PeerTimeout forgets a silent node (default
	// 3 × HeartbeatInterval).
	HeartbeatInterval time.Duration
	PeerTimeout       time.Duration
	// Hold is how long the other nodes keep an absent node's durable
	// interest and hold the QoS 1/2 messages for it (hold.go; default
	// DefaultHold, negative: no hold). HoldMessages and HoldBytes bound
	// each absent node's hold queue (defaults DefaultHoldMessages,
	// DefaultHoldBytes); beyond them messages are dropped and counted.
	Hold         time.Duration
	HoldMessages int
	HoldBytes    int
	Logger       *slog.Logger

	// Session ownership (ownership.go, move.go), on with Ownership
	// (--cluster-sessions, which the mcutie binary turns on by default;
	// an embedder sets it): JetStream runs, CONNECTs claim their client
	// id, sessions move on takeover. Off: none of it (the claim notice
	// alone ends a session taken over elsewhere).
	Ownership bool
	//
	// StoreDir holds JetStream's files (the owners bucket and its Raft
	// logs): <data-dir>/cluster. Empty: a temporary directory removed at
	// Stop, and the bucket in memory (a broker without a data dir).
	StoreDir string
	// Replicas is how many nodes keep the owners bucket (default 3); a
	// claim needs a majority of them. While fewer nodes are up the bucket
	// has as many replicas as nodes, raised as nodes join.
	Replicas int
	// ClaimTimeout bounds a claim of a client id (default 3 s): past it
	// the CONNECT is refused with 0x88 Server unavailable.
	ClaimTimeout time.Duration
	// MoveTimeout bounds the wait for the previous owner's session
	// (default 2 s): past it the client starts clean.
	MoveTimeout time.Duration
	// MaxSessionBytes bounds a session moved between nodes (default 8
	// MiB, at most 60 MiB); a larger one is discarded, not moved.
	MaxSessionBytes int
	// Credit is how many QoS 1/2 messages each other node may have on
	// their way here or waiting for a subscriber far behind before it
	// holds its publishers' acknowledgements (flow.go; default
	// DefaultCredit, at most a quarter of the broker's MaxQueued;
	// negative: none granted, the other nodes' publishers are not slowed
	// for this node's subscribers).
	Credit int
	// WillAfter is how long a node's liveness must stay unchanged before
	// the others publish its wills (wills.go; default DefaultWillAfter;
	// negative: wills are not replicated, a dead node's wills are
	// published when it restarts). Only with Ownership.
	WillAfter time.Duration
	// ConfirmAcks holds every QoS 1/2 publisher's PUBACK/PUBREC until
	// each other node that got the message confirmed it routed and
	// stored it (flow.go), not only beyond the credit: nothing this node
	// acknowledged is lost when it is killed before sending it on. It
	// costs a round trip between the nodes (and up to 2 ms of batching)
	// on every such acknowledgement. Nodes that grant no credit (older
	// versions, Credit negative there) confirm nothing and are not
	// waited for.
	ConfirmAcks bool
}

// Node is this broker's membership in a cluster. It implements
// broker.Peers. Make it with New, pass it as broker.Options.Peers, then
// Start it with the broker.
type Node struct {
	o   Options
	log *slog.Logger

	ns *server.Server
	nc *nats.Conn
	b  *broker.Broker

	local   localInterest
	hold    holdState
	holdEv  chan holdEvent
	epoch   int64           // this run (hold.go)
	acc     *server.Account // the embedded server's account (reachable)
	remote  atomic.Pointer[remoteIndex]
	peersMu sync.Mutex
	peers   map[string]*peer // by node id

	queue   chan outItem
	dirty   chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
	routing atomic.Bool // n.b is set: loops may forward and claim

	matchPool sync.Pool // *[]router.Entry[uint8]
	bufPool   sync.Pool // *[]byte
	sharePool sync.Pool // *shareScratch

	// turns are the shared subscriptions' round-robin counters, kept
	// across index rebuilds (peersMu); rxListed is onMessage's scratch.
	turns    map[string]*atomic.Uint64
	rxListed []byte
	// v3 is the sender's scratch for a version 3 copy (flow.go).
	v3 []byte
	// rxHeld: by node, the last held message's sequence delivered from
	// it (holdack.go); onMessage's.
	rxHeld map[string]uint64

	claims chan string  // client ids connected here, to announce
	rs     retainedSync // anti-entropy of the retained set (retained.go)
	own    ownership
	wills  willsState // wills once cluster-wide (wills.go)
	// memoryJS: JetStream's directory is a temporary one (no StoreDir)
	// and the bucket is in memory.
	memoryJS bool
	jsDir    string
	// lastMembership is the last <sys-prefix>/broker/cluster/nodes
	// payload published (announce's goroutine only).
	lastMembership string

	// Flow control (flow.go): flowIns by sending node (flowInMu),
	// confirmWake wakes confirmLoop.
	flowInMu    sync.Mutex
	flowIns     map[string]*flowIn
	confirmWake chan struct{}

	forwarded, sent, dropped, received, badIn atomic.Uint64
	flowHeld, flowConfirms, flowGivenUp       atomic.Uint64
	takenOver, claimsDropped, retainedCopies  atomic.Uint64
	sharedAssigned, sharedRerouted            atomic.Uint64
}

// outItem is one encoded message for the peers in the bit set to (bit i:
// ix.subjects[i]).
//
// counted: the peers for which it goes with a sequence number and waits
// for their confirmation, held: those for which the publisher's
// acknowledgement ack is held meanwhile (flow.go).
type outItem struct {
	to              uint64
	ix              *remoteIndex
	buf             *[]byte
	counted, heldBy uint64
	ack             broker.PeerAck
}

// New checks o and returns a node, not started.
func New(o Options) (*Node, error) {
	if !validNodeID(o.NodeID) {
		return nil, fmt.Errorf("cluster: node id %q: want 1 to 64 letters, digits, '-' or '_' (it names the node's NATS subject)", o.NodeID)
	}
	if o.Name == "" {
		o.Name = "mcutie"
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: --cluster-listen %q: want host:port: %w", o.Listen, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("cluster: --cluster-listen %q: bad port", o.Listen)
	}
	if o.Secret == "" && o.TLS == nil && !loopback(host) {
		return nil, fmt.Errorf("cluster: --cluster-listen %s is not a loopback address: give --cluster-secret (or MCUTIE_CLUSTER_SECRET), which every node must share, or route TLS (--cluster-tls-*), so that no one else can join", o.Listen)
	}
	for _, j := range o.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return nil, fmt.Errorf("cluster: --cluster-join %q: want host:port: %w", j, err)
		}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.PeerTimeout <= 0 {
		o.PeerTimeout = 3 * o.HeartbeatInterval
	}
	if o.Hold == 0 {
		o.Hold = DefaultHold
	}
	if o.HoldMessages <= 0 {
		o.HoldMessages = DefaultHoldMessages
	}
	if o.HoldBytes <= 0 {
		o.HoldBytes = DefaultHoldBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.ClaimTimeout <= 0 {
		o.ClaimTimeout = 3 * time.Second
	}
	if o.MoveTimeout <= 0 {
		o.MoveTimeout = moveTimeoutDefault
	}
	if o.MaxSessionBytes <= 0 {
		o.MaxSessionBytes = 8 << 20
	}
	if o.Credit == 0 {
		o.Credit = DefaultCredit
	}
	if o.WillAfter == 0 {
		o.WillAfter = DefaultWillAfter
	}
	if o.MaxSessionBytes > 60<<20 {
		return nil, fmt.Errorf("cluster: --cluster-max-session-bytes %d: at most 60 MiB (a NATS message is at most 64 MiB)", o.MaxSessionBytes)
	}
	n := &Node{o: o, log: o.Logger.With("cluster", o.Name, "node", o.NodeID), peers: map[string]*peer{},
		queue: make(chan outItem, o.QueueSize), claims: make(chan string, 4096), dirty: make(chan struct{}, 1), stop: make(chan struct{})}
	n.local.counts = map[string]int{}
	n.local.durable = map[string]int{}
	n.holdEv = make(chan holdEvent, 64)
	n.flowIns = map[string]*flowIn{}
	n.confirmWake = make(chan struct{}, 1)
	n.hold.holds = map[string]*hold{}
	n.hold.unacked = map[string]*released{}
	n.rxHeld = map[string]uint64{}
	n.hold.acks = make(chan string, maxPeers)
	n.epoch = time.Now().UnixNano()
	n.hold.seq = uint64(n.epoch) // increasing across runs (holdack.go)
	n.local.groups = map[string]*localGroup{}
	n.own.owned = map[string]uint64{}
	n.own.seconds = promtext.NewHistogram(promtext.ExponentialBounds(0.0001, 2, 16)...)
	n.own.reqs = make(chan *claimReq, claimQueue)
	n.initWills()
	n.remote.Store(&remoteIndex{shard: router.NewShard[uint8]()})
	n.matchPool.New = func() any { s := make([]router.Entry[uint8], 0, 16); return &s }
	n.bufPool.New = func() any { s := make([]byte, 0, 512); return &s }
	n.sharePool.New = func() any {
		return &shareScratch{matches: make([]router.Entry[uint16], 0, 8), assign: make([]assignment, 0, 8)}
	}
	return n, nil
}

func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start runs the embedded NATS server, joins the seeds and starts
// exchanging interest and messages for b.
func (n *Node) Start(b *broker.Broker) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("cluster: started twice")
	}
	n.b = b
	n.routing.Store(true) // publishes n.b to the loops (Forward, Connected)
	host, port, _ := net.SplitHostPort(n.o.Listen)
	p, _ := strconv.Atoi(port)
	if p == 0 && len(n.o.Join) == 0 && n.o.Ownership {
		// The first node routes to itself (below), so it needs its port
		// before NATS listens: one the kernel picks now.
		free, err := freePort(host)
		if err != nil {
			return fmt.Errorf("cluster: --cluster-listen %s: %w", n.o.Listen, err)
		}
		p = free
	}
	if p == 0 {
		p = server.RANDOM_PORT // NATS reads 0 as "no cluster"
	}
	token := randomToken()
	jsDir := n.o.StoreDir
	if jsDir == "" && n.o.Ownership {
		d, err := os.MkdirTemp("", "mcutie-cluster-")
		if err != nil {
			return fmt.Errorf("cluster: a directory for JetStream: %w", err)
		}
		jsDir, n.jsDir, n.memoryJS = d, d, true
	}
	so := &server.Options{
		ServerName:    n.o.NodeID,
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: token,
		NoLog:         true,
		NoSigs:        true,
		Cluster: server.ClusterOpts{
			Name: n.o.Name,
			Host: host,
			Port: p,
		},
		// Messages up to the largest MQTT packet mcutie takes by default
		// cross; larger ones are dropped and counted (NATS caps a message
		// at 64 MiB).
		MaxPayload: 64 << 20,
		// A partition is noticed within PingInterval × MaxPingsOut.
		PingInterval: 2 * time.Second,
		MaxPingsOut:  3,
		// JetStream keeps the session owners (ownership.go).
		JetStream: n.o.Ownership,
		StoreDir:  jsDir,
	}
	if n.o.Secret != "" {
		so.Cluster.Username, so.Cluster.Password = "mcutie", n.o.Secret
	}
	if n.o.TLS != nil {
		so.Cluster.TLSConfig = n.o.TLS.Clone()
		so.Cluster.TLSTimeout = 2 // seconds
	}
	join := n.o.Join
	if len(join) == 0 && n.o.Ownership {
		// Clustered JetStream wants a route configured; a seed node's
		// route to itself is what NATS expects (it is ignored once the
		// server sees it is itself), and lets later nodes join it.
		join = []string{net.JoinHostPort(host, strconv.Itoa(p))}
	}
	for _, j := range join {
		u := &url.URL{Scheme: "nats-route", Host: j}
		if n.o.Secret != "" {
			u.User = url.UserPassword("mcutie", n.o.Secret)
		}
		so.Routes = append(so.Routes, u)
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("cluster: the embedded NATS server did not start (is --cluster-listen %s free?)", n.o.Listen)
	}
	n.ns = ns
	n.acc = ns.GlobalAccount()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Token(token), nats.Name("mcutie-"+n.o.NodeID),
		nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		ns.Shutdown()
		return fmt.Errorf("cluster: connecting to the embedded server: %w", err)
	}
	n.nc = nc
	if _, err := nc.Subscribe(subjectMsg(n.o.NodeID), n.onMessage); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectInterest, n.onInterest); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectWant(n.o.NodeID), func(*nats.Msg) { n.signalDirty() }); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectClaim, n.onClaim); err != nil {
		n.shutdownNATS()
		return err
	}
	if err := n.startRetainedSync(); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectTake(n.o.NodeID), n.onTake); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectMoved(n.o.NodeID), n.onMoved); err != nil {
		n.shutdownNATS()
		return err
	}
	if _, err := nc.Subscribe(subjectConfirm(n.o.NodeID), n.onConfirm); err != nil {
		n.shutdownNATS()
		return err
	}
	n.wg.Add(4)
	go n.confirmLoop()
	go n.send()
	go n.announce()
	go n.sendClaims()
	if n.o.Ownership {
		if n.own.js, err = jetstream.New(nc); err != nil {
			n.shutdownNATS()
			return fmt.Errorf("cluster: %w", err)
		}
		n.wg.Add(1 + claimWorkers)
		go n.keepBucket()
		for range claimWorkers {
			go n.claimWorker()
		}
		if n.wills.on {
			n.wg.Add(1 + willShards)
			go n.keepWills()
			for i := range n.wills.shards {
				go n.willWorker(&n.wills.shards[i])
			}
		}
	}
	n.log.Info("cluster node started", "listen", n.o.Listen, "join", n.o.Join)
	return nil
}

// freePort is a port free on host now (the kernel's pick).
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stop leaves the cluster: the senders stop, the NATS server shuts down.
// Call it after the broker stopped routing.
func (n *Node) Stop() {
	if !n.started.Load() {
		return
	}
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	n.wg.Wait()
	n.shutdownNATS()
}

func (n *Node) shutdownNATS() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	if n.jsDir != "" {
		_ = os.RemoveAll(n.jsDir)
	}
}

// Ready reports nil once the node runs, has a route when it was given
// seeds, and the session owners bucket answers with a quorum (claims can
// be made); for /readyz.
func (n *Node) Ready() error {
	if n.ns == nil || !n.ns.Running() {
		return errors.New("cluster: not running")
	}
	if len(n.o.Join) > 0 && n.ns.NumRoutes() == 0 {
		return errors.New("cluster: no route to any other node yet")
	}
	// No quorum for the session owners: CONNECTs are refused here, so
	// a load balancer should send new clients elsewhere.
	if !n.o.Ownership {
		return nil
	}
	return n.kvReady()
}

// PeerInfo describes another node as this one sees it.
type PeerInfo struct {
	NodeID   string
	Filters  int       // filters in its announced interest
	Known    bool      // its current interest is known (else asked for)
	LastSeen time.Time // its last heartbeat
}

// Peers lists the nodes heard from within PeerTimeout; not those away
// (leaving, silent or unreachable), whose messages are held (hold.go).
func (n *Node) Peers() []PeerInfo {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	out := make([]PeerInfo, 0, len(n.peers))
	for id, p := range n.peers {
		if !p.away.IsZero() {
			continue
		}
		out = append(out, PeerInfo{NodeID: id, Filters: len(p.filters), Known: p.known, LastSeen: p.seen})
	}
	return out
}

// ClusterAddr is the address the routes listen on (the port chosen, when
// Listen's was 0); empty before Start.
func (n *Node) ClusterAddr() string {
	if n.ns == nil {
		return ""
	}
	if a := n.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Routes is the number of NATS routes up (to other nodes).
func (n *Node) Routes() int {
	if n.ns == nil {
		return 0
	}
	return n.ns.NumRoutes()
}

const (
	subjectInterest = "mcutie.interest"
)

func subjectMsg(node string) string  { return "mcutie.msg." + node }
func subjectWant(node string) string { return "mcutie.want." + node }

// ClusterStats implements broker.Peers: the nodes this one hears from,
// for broker.Stats.
func (n *Node) ClusterStats() broker.ClusterStats {
	n.local.mu.Lock()
	own := len(n.local.counts) + len(n.local.groups)
	n.local.mu.Unlock()
	cs := broker.ClusterStats{Routes: n.Routes(), Forwarded: n.sent.Load(), Received: n.received.Load(), Dropped: n.dropped.Load(),
		Nodes: []broker.ClusterNode{{ID: n.o.NodeID, Self: true, LastSeen: time.Now(), Filters: own}}}
	for _, p := range n.Peers() {
		cs.Nodes = append(cs.Nodes, broker.ClusterNode{ID: p.NodeID, LastSeen: p.LastSeen, Filters: p.Filters})
	}
	sort.Slice(cs.Nodes, func(i, j int) bool { return cs.Nodes[i].ID < cs.Nodes[j].ID })
	return cs
}
