// Command mcutie is the MQTT broker binary: flags and config file, signals,
// wiring. The broker itself is package broker; this file stays thin.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
	"github.com/mcutie/mcutie/tuning"
)

// version is set at build time with -ldflags "-X main.version=…".

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

type config struct {
	// opts are the broker's options, most set by their flags directly.
	opts broker.Options

	listen        listFlag
	dataDir       string
	nodeID        string
	storeKind     string
	redis         redisConfig
	delivery      deliveryConfig
	admin         adminConfig
	cluster       clusterConfig
	durability    string
	commitBatch   int
	commitDelay   time.Duration
	commitQueue   int
	metricsListen string
	sysInterval   time.Duration
	logLevel      string
	logging       logConfig
	configFile    string
	pprof         bool

	// loaded says where the settings came from (config.go).
	loaded loaded

	// pluginsFile is --plugins; hookMetrics are the plugins' metrics
	// writers (plugins.go).
	pluginsFile string
	hookMetrics []func(io.Writer)
	bridges     bridgesConfig // --bridges (bridges.go)
	// storeMetrics is the store's metrics set, one per run (the default
	// set would refuse a second store's names in the same process).
	storeMetrics *metrics.Set

	outboundAliases  uint
	maxKeepAlive     uint
	maxInflight      uint
	topicAliasMax    uint
	maxSessionExpiry uint
	packetTimeout    time.Duration
	wsRequireProto   bool

	minKeepAlive uint

	readBufferCap    int
	writeBufferCap   int
	socketRecvBuffer int
	socketSendBuffer int
	lockOSThread     bool

	tlsCert           string
	tlsKey            string
	tlsClientCA       string
	tlsMinVersion     string
	tlsUsernameFromCN bool

	gomaxprocs  int
	gogc        int
	memoryLimit int64
	profile     string

	passwordFile       string
	aclFile            string
	allowAnonymous     bool
	clientIDPrefixUser bool
	authWorkers        int
	authQueue          int
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("mcutie", flag.ContinueOnError)
	fs.Var(&cfg.listen, "listen", "listener address, repeatable: tcp://host:port, tls://host:port, ws://host:port[/path], wss://host:port[/path] (WebSocket path default /mqtt); append ?proxy=true to expect a PROXY protocol v1/v2 header, ?proxy=v1 or ?proxy=v2 for that version only (default tcp://127.0.0.1:1883)")
	fs.IntVar(&cfg.opts.Loops, "loops", 0, "event loops and router shards (0: number of CPUs)")
	fs.StringVar(&cfg.dataDir, "data-dir", "./data", "directory of the embedded store")
	fs.StringVar(&cfg.nodeID, "node-id", "", "this broker's node id (in $SYS topics and the embedding API); empty: the one kept in --data-dir/node-id, made there on first start (--store badger), else a new random one per start")
	fs.StringVar(&cfg.storeKind, "store", "badger", "state store: badger (embedded, in --data-dir), redis (see --redis-addr; docs/redis.md) or memory (nothing written to disk)")
	redisFlags(fs, &cfg.redis)
	deliveryFlags(fs, &cfg.delivery, &cfg.opts)
	clusterFlags(fs, &cfg.cluster)
	fs.StringVar(&cfg.durability, "durability", "commit", "when a QoS 1/2 PUBACK/PUBREC/SUBACK is sent: commit (after the Badger commit: survives kill -9), sync (after fsync: survives power loss), none (at once, written behind)")
	fs.IntVar(&cfg.commitBatch, "commit-max-batch", 1024, "store operations written in one Badger batch at most")
	fs.DurationVar(&cfg.commitDelay, "commit-max-delay", 2*time.Millisecond, "longest wait to fill a batch once one operation is queued (an idle committer writes at once)")
	fs.IntVar(&cfg.commitQueue, "commit-queue-size", 65536, "store operations waiting for the committer, at most; beyond it event loops keep theirs in a backlog and retry")
	fs.IntVar(&cfg.opts.CommitBacklog, "commit-backlog", 65536, "store operations one event loop keeps while the commit queue is full; beyond it new QoS 1/2 publishes and subscriptions are refused (v5 0x80, 3.x close) and QoS 0 retained updates are not stored")
	adminFlags(fs, &cfg.admin)
	fs.StringVar(&cfg.metricsListen, "metrics-listen", "127.0.0.1:9100", "address of the HTTP endpoint serving /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&cfg.sysInterval, "sys-interval", 10*time.Second, "how often the $SYS/broker/... topics are published (retained); 0 turns them off")
	fs.StringVar(&cfg.opts.SysPrefix, "sys-prefix", "$SYS", "root of the broker's own topics (<prefix>/broker/..., <prefix>/<node id>/heartbeat); must start with '$', clients may not publish under it")
	fs.BoolVar(&cfg.opts.SysClientEvents, "sys-client-events", false, "publish a JSON event on <sys-prefix>/brokers/<node id>/clients/<client id>/connected and .../disconnected (EMQX's names) for every client")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error; changed by SIGHUP")
	logFlags(fs, &cfg.logging)
	fs.BoolVar(&cfg.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on --metrics-listen (for go tool pprof; off: they expose internals)")
	fs.StringVar(&cfg.configFile, "config", "", "YAML config file; keys are flag names without dashes (e.g. max-inflight: 100); the command line and the environment win over it; re-read on SIGHUP. A Mosquitto config (mosquitto.conf) is recognised and run too (docs/mosquitto.md)")
	bridgesFlags(fs, &cfg.bridges)
	fs.StringVar(&cfg.pluginsFile, "plugins", "", "YAML file of the plugins to run (httpauth, webhook, aggregate, rewrite) and their settings; see docs/hooks.md (empty: none)")

	bytesVar(fs, &cfg.opts.MaxPacketSize, "max-packet-size", 1<<20, "largest MQTT packet accepted, bytes (advertised to v5 clients as Maximum Packet Size)")
	fs.IntVar(&cfg.opts.MaxTopicLength, "max-topic-length", 65535, "longest topic name or filter, bytes")
	fs.IntVar(&cfg.opts.MaxTopicLevels, "max-topic-levels", 128, "most levels in a topic name or filter")
	fs.UintVar(&cfg.maxKeepAlive, "max-keepalive", 0, "largest keep-alive, seconds; v5 clients asking for more (or for none) get Server Keep Alive; 3.x clients asking for more are refused with CONNACK 0x02, those asking for none are accepted and closed when silent for 1.5 × this (0: no limit)")
	fs.UintVar(&cfg.minKeepAlive, "min-keepalive", 0, "smallest keep-alive, seconds; v5 clients asking for less (but not 0) get Server Keep Alive, 3.x clients are refused with CONNACK 0x02 (0: no limit)")
	fs.UintVar(&cfg.maxInflight, "max-inflight", 1024, "unacknowledged QoS 1/2 messages per session, both directions (v5 Receive Maximum)")
	fs.IntVar(&cfg.opts.MaxQueued, "max-queued-messages", 10000, "QoS 1/2 messages held per session (inflight + queued, also while offline); newer messages are dropped and counted")
	bytesVar(fs, &cfg.opts.MaxOutboundBytes, "max-outbound-bytes", 4<<20, "bytes buffered for one connection before it is a slow consumer: QoS 0 dropped, QoS 1/2 wait in the session queue")
	fs.UintVar(&cfg.topicAliasMax, "topic-alias-maximum", 64, "inbound topic aliases accepted per v5 connection (0: none)")
	fs.UintVar(&cfg.maxSessionExpiry, "max-session-expiry", store.ExpiryNever, "cap on a session's expiry interval, seconds (4294967295: never expires; 0: every session ends with its connection)")
	fs.DurationVar(&cfg.opts.ConnectTimeout, "connect-timeout", 10*time.Second, "a connection that sends no CONNECT within this is closed")
	fs.DurationVar(&cfg.packetTimeout, "packet-timeout", reactor.DefaultPacketTimeout, "longest a packet may take to arrive once its first byte has: a connection holding a partial packet longer is closed, whatever its keep-alive (the default lets a 1 MiB packet arrive at 35 KB/s) (0: no limit)")
	fs.BoolVar(&cfg.wsRequireProto, "ws-require-subprotocol", true, "refuse (HTTP 400) a WebSocket upgrade that does not offer the \"mqtt\" subprotocol (or \"mqttv3.1\"), which MQTT requires of clients (false: accept it)")
	fs.IntVar(&cfg.opts.InboxSize, "inbox-size", 16384, "cross-loop inbox capacity per event loop, messages")
	bytesVar(fs, &cfg.opts.MaxQueuedBytes, "max-queued-bytes", 32<<20, "topic + payload bytes of the QoS 1/2 messages held per session; newer messages are dropped and counted (v5 publisher told 0x97)")
	bytesVar(fs, &cfg.opts.MaxQueuedBytesTotal, "max-queued-bytes-total", 1<<30, "topic + payload bytes held in all sessions' QoS 1/2 queues together, each event loop taking an equal share; newer messages are dropped and counted (v5 publisher told 0x97)")
	fs.IntVar(&cfg.opts.MaxConnections, "max-connections", 0, "open connections in total; more are closed at accept (0: no limit but the process's open files limit)")
	fs.IntVar(&cfg.opts.MaxConnectionsPerIP, "max-connections-per-ip", 0, "open connections per source IP address; more are closed at accept (0: no limit)")
	fs.Float64Var(&cfg.opts.ConnectRatePerIP, "connection-rate-per-ip", 0, "new connections per second per source IP address (token bucket); more are closed at accept (0: no limit)")
	fs.IntVar(&cfg.opts.ConnectBurstPerIP, "connection-burst-per-ip", 0, "bucket size of --connection-rate-per-ip (0: twice the rate)")
	fs.IntVar(&cfg.opts.MaxClientIDLength, "max-client-id-length", 256, "longest client identifier, bytes (at least 23); a longer one is refused with CONNACK 0x85 (v5) / 0x02 (3.x)")
	fs.IntVar(&cfg.opts.MaxSubscriptions, "max-subscriptions", 10000, "subscriptions per session; a new filter beyond it is refused in the SUBACK (v5 0x97, 3.x 0x80)")
	fs.IntVar(&cfg.opts.MaxWildcardLevels, "max-wildcard-levels", broker.DefaultMaxWildcardLevels, "sum of the levels of one session's filters that contain '+'; a filter beyond it is refused in the SUBACK (v5 0x97, 3.x 0x80). Bounds the topic-matching work one session adds to every PUBLISH")
	fs.IntVar(&cfg.opts.MaxRetainedMessages, "max-retained-messages", 2000000, "retained topics held; a message for a new topic beyond it is delivered but not retained (v5 publisher told 0x97)")
	bytesVar(fs, &cfg.opts.MaxRetainedBytes, "max-retained-bytes", 1<<30, "topic + payload bytes of the retained messages; a new one beyond it is delivered but not retained (v5 publisher told 0x97)")
	fs.IntVar(&cfg.opts.MaxSessions, "max-sessions", 1000000, "sessions, connected and offline, each event loop holding an equal share; a CONNECT that needs a new one beyond it is refused (v5 0x97, 3.x 0x03)")
	bytesVar(fs, &cfg.opts.MaxSubscriptionBytes, "max-subscription-bytes", 1<<20, "bytes of one session's filters together; a filter beyond it is refused in the SUBACK (v5 0x97, 3.x 0x80)")
	fs.UintVar(&cfg.outboundAliases, "outbound-topic-aliases", 0, "topic aliases the broker assigns per v5 connection to the topics it sends (at most the client's Topic Alias Maximum; least recently sent reassigned first); saves the topic's bytes on repeated topics. 0: off (libmosquitto 2.0 clients advertise aliases they cannot receive)")
	fs.StringVar(&cfg.opts.ResponseInformation, "response-information", "", "v5 Response Information sent to clients that request it, %c replaced by the client id, e.g. reply/%c/ (the basis of their response topics; empty: none)")
	fs.IntVar(&cfg.opts.MaxUserProperties, "max-user-properties", 128, "v5 user properties in one PUBLISH or will; beyond it a QoS 1/2 PUBLISH is answered 0x83, a QoS 0 one ends the connection (DISCONNECT 0x83), a will is refused at CONNECT")
	fs.IntVar(&cfg.opts.MaxRetainedOwed, "max-retained-owed", 100000, "retained messages a connection may still be owed (not read yet) when it subscribes again; beyond it the connection is closed as a slow reader")
	fs.Float64Var(&cfg.opts.PublishRate, "publish-rate", 0, "PUBLISH packets per second per connection (token bucket); beyond it the connection is closed, v5 after DISCONNECT 0x96 (0: no limit)")
	fs.IntVar(&cfg.opts.PublishBurst, "publish-burst", 0, "bucket size of --publish-rate, packets (0: twice the rate)")
	bytesVar(fs, &cfg.opts.PublishByteRate, "publish-byte-rate", 0, "PUBLISH bytes per second per connection (token bucket); beyond it the connection is closed, v5 after DISCONNECT 0x97 (0: no limit)")
	bytesVar(fs, &cfg.opts.PublishByteBurst, "publish-byte-burst", 0, "bucket size of --publish-byte-rate, bytes (0: twice the rate, at least --max-packet-size)")

	bytesVar(fs, &cfg.readBufferCap, "read-buffer-cap", 0, "gnet read buffer per loop and inbound cap per connection, bytes (0: 64 KiB)")
	bytesVar(fs, &cfg.writeBufferCap, "write-buffer-cap", 0, "gnet outbound ring per connection, bytes (0: 64 KiB)")
	bytesVar(fs, &cfg.socketRecvBuffer, "socket-recv-buffer", 0, "SO_RCVBUF per connection, bytes (0: kernel default)")
	bytesVar(fs, &cfg.socketSendBuffer, "socket-send-buffer", 0, "SO_SNDBUF per connection, bytes (0: kernel default)")
	fs.BoolVar(&cfg.lockOSThread, "lock-os-thread", false, "pin each event loop to an OS thread")
	fs.DurationVar(&cfg.opts.CoalesceWindow, "coalesce-window", 0, "longest an event loop pauses after a batch of traffic to let more arrive, only while its connections send more than 2 messages per window: fewer wake-ups and writes per message (about 40% less CPU per message at 20k msg/s paced) for about 2 ms more latency at p50 (Go's timers make a pause at least ~1 ms) (0: never pause; try 1ms where CPU matters more than latency)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate chain (leaf first) of the tls:// and wss:// listeners; re-read on SIGHUP")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of --tls-cert; re-read on SIGHUP")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca", "", "PEM CA certificates: clients of tls:// and wss:// must present a certificate they signed (mutual TLS); re-read on SIGHUP (empty: no client certificates)")
	fs.StringVar(&cfg.tlsMinVersion, "tls-min-version", "1.2", "lowest TLS version accepted: 1.2 or 1.3")
	fs.BoolVar(&cfg.tlsUsernameFromCN, "tls-username-from-cn", false, "use the Common Name of the verified client certificate as the username, replacing the CONNECT's (needs --tls-client-ca)")
	fs.IntVar(&cfg.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS (0: Go's default, the CPU count or the GOMAXPROCS variable)")
	fs.IntVar(&cfg.gogc, "gogc", 0, "GOGC percent; -1 turns the collector off (use with --memory-limit) (0: Go's default 100 or the GOGC variable)")
	bytesVar(fs, &cfg.memoryLimit, "memory-limit", 0, "soft memory limit, e.g. 512MiB (GOMEMLIMIT) (0: none)")
	fs.StringVar(&cfg.profile, "profile", "", "preset for the tuning flags not given: throughput, latency or low-memory (see docs/configuration.md)")

	fs.StringVar(&cfg.passwordFile, "password-file", "", "Mosquitto-compatible password file (mosquitto_passwd or mcutie passwd); reread on SIGHUP")
	fs.StringVar(&cfg.aclFile, "acl-file", "", "Mosquitto-compatible ACL file (user/topic/pattern lines); reread on SIGHUP (empty: every client may use every topic)")
	fs.BoolVar(&cfg.allowAnonymous, "allow-anonymous", false, "let clients in without a user name (default: on only when every listener is a loopback tcp:// or tls:// one without ?proxy=true and no users are configured; off otherwise)")
	fs.BoolVar(&cfg.clientIDPrefixUser, "client-id-prefix-user", false, "bind client ids to user names: a client id must be <user> or <user>:<suffix>, else CONNACK 0x85 (3.x 0x02); makes %c ACL patterns safe; turns anonymous access off")
	fs.DurationVar(&cfg.opts.AuthTimeout, "auth-timeout", 5*time.Second, "longest an authentication may take; then CONNACK 0x88 server unavailable (3.x 0x03)")
	fs.IntVar(&cfg.authWorkers, "auth-workers", 2, "goroutines checking passwords (PBKDF2), off the event loops")
	fs.IntVar(&cfg.authQueue, "auth-queue", 1024, "password checks waiting for a worker at most; beyond it CONNACK 0x89 server busy (3.x 0x03)")
	fs.IntVar(&cfg.opts.ACLCacheSize, "acl-cache-size", 256, "ACL verdicts cached per session (one per topic); beyond it the cache starts over")
	fs.IntVar(&cfg.opts.BanThreshold, "ban-threshold", 10, "failed authentications from one IP (or for one client id) within --ban-window that ban it (0: no bans)")
	fs.DurationVar(&cfg.opts.BanWindow, "ban-window", time.Minute, "window in which --ban-threshold failures are counted")
	fs.DurationVar(&cfg.opts.BanDuration, "ban-duration", 5*time.Minute, "how long a banned IP is refused at accept and at CONNECT; a banned client id only turns a failed authentication's code into 0x8A (anyone can name an id: valid credentials are never refused by it)")
	fs.IntVar(&cfg.opts.BanMaxTracked, "ban-max-tracked", 100000, "IPs and client ids tracked for bans, each; when full, new sources are not tracked (counted)")
	fs.IntVar(&cfg.opts.MaxPendingAuthPerIP, "max-pending-auth-per-ip", 16, "authentications in progress from one source address; more CONNECTs are refused with 0x89 server busy (3.x 0x03) until one finishes")
	checkValues(fs)
	return fs
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == "convert-mosquitto-conf" {
		return runConvertMosquittoConf(args[1:], os.Stdout, os.Stderr)
	}
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		printVersion(os.Stdout)
		return 0
	}
	var cfg config
	fs, code := parseConfig(args, &cfg)
	if code >= 0 {
		return code
	}
	// Signals are caught from here on: a SIGHUP during start-up must not
	// kill the process (its default action).
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	rt, log, code := setupProcess(&cfg)
	if code >= 0 {
		return code
	}
	plugs, code := loadPlugins(&cfg, log)
	if code >= 0 {
		return code
	}
	defer plugs.stop(log) // after the broker stopped: deferred calls run last
	clog, err := addConnLog(&cfg, plugs, log)
	if err != nil {
		log.Error("cannot start the connection log", "err", err)
		return 1
	}
	st, code := openStore(&cfg, log)
	if code >= 0 {
		return code
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	b, sec, code := newBroker(&cfg, fs, st, log)
	if code >= 0 {
		return code
	}
	defer sec.close()
	plugs.attach(b)
	brs, code := loadBridges(&cfg)
	if code >= 0 {
		return code
	}
	if code := setupAdmin(&cfg, fs, b, log); code >= 0 {
		return code
	}
	srv, mon, code := serve(&cfg, b, st, log)
	if code >= 0 {
		return code
	}
	if code := brs.start(b, log); code >= 0 { // the loops run now
		return code
	}
	defer brs.stop() // after the broker stopped: its sessions keep what the remotes have not acknowledged
	log.Info("mcutie started", "version", version, "gomaxprocs", rt.GOMAXPROCS, "gogc", rt.GOGC, "profile", cfg.profile, "listen", cfg.listen.String(), "loops", b.NumLoops(), "store", cfg.storeKind, "metrics", cfg.metricsListen)
	s := waitForStop(sig, &reloader{args: args, fs: fs, cfg: &cfg, conn: clog, b: b, log: log}, sec, srv, log)
	log.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if mon != nil {
		_ = mon.Shutdown(ctx)
	}
	cfg.admin.shutdown(ctx)
	leaveCluster(&cfg, log)
	if err := srv.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("stop", "err", err)
	}
	stopCluster(&cfg)
	log.Info("stopped")
	return 0
}

// parseConfig reads the flags, the environment, the config file and the
// profile into cfg and checks the bounds; code is the exit code when it
// ends the run (-1: go on).
func parseConfig(args []string, cfg *config) (fs *flag.FlagSet, code int) {
	fs = newFlagSet(cfg)
	// Usage errors are one line; --help prints the whole usage, to stdout.
	fs.SetOutput(io.Discard)
	ld, err := loadConfig(fs, args, os.Environ(), cfg)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(os.Stdout, fs)
		return fs, 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcutie: %v; see mcutie --help\n", err)
		return fs, 2
	}
	cfg.loaded = ld
	return fs, -1
}

// setupProcess applies the runtime knobs and makes the logger.
func setupProcess(cfg *config) (tuning.Runtime, *slog.Logger, int) {
	rt := tuning.Runtime{GOMAXPROCS: cfg.gomaxprocs, GOGC: cfg.gogc, MemoryLimit: cfg.memoryLimit}
	level, err := parseLevel(cfg.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return rt, nil, 2
	}
	cfg.logging.level = new(slog.LevelVar)
	cfg.logging.level.Set(level)
	log, err := newLogger(os.Stderr, cfg.logging.format, cfg.logging.level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return rt, nil, 2
	}
	rt = rt.Apply()
	slog.SetDefault(log)
	logLoaded(log, cfg.loaded)
	return rt, log, -1
}

// openStore opens the --store.
func openStore(cfg *config, log *slog.Logger) (store.Store, int) {
	cfg.storeMetrics = metrics.NewSet()
	switch cfg.storeKind {
	case "memory":
		return store.NewMemory(), -1
	case "badger":
		d, err := store.ParseDurability(cfg.durability)
		if err != nil {
			log.Error("bad --durability", "err", err)
			return nil, 2
		}
		bs, err := store.OpenBadger(store.BadgerOptions{Dir: cfg.dataDir, Durability: d, MaxBatch: cfg.commitBatch, MaxDelay: cfg.commitDelay, QueueSize: cfg.commitQueue, Logger: log, Metrics: cfg.storeMetrics})
		if err != nil {
			log.Error("cannot open the store", "dir", cfg.dataDir, "err", err)
			return nil, 1
		}
		return bs, -1
	case "redis":
		d, err := store.ParseDurability(cfg.durability)
		if err != nil {
			log.Error("bad --durability", "err", err)
			return nil, 2
		}
		return openRedis(cfg, d, log)
	}
	log.Error("unsupported --store (want badger, redis or memory)", "store", cfg.storeKind)
	return nil, 2
}

// newBroker makes the broker with its security and restores its state.
func newBroker(cfg *config, fs *flag.FlagSet, st store.Store, log *slog.Logger) (*broker.Broker, *security, int) {
	anonGiven := false
	fs.Visit(func(f *flag.Flag) { anonGiven = anonGiven || f.Name == "allow-anonymous" })
	bopts := brokerOptions(cfg)
	bopts.Version = version
	bopts.Store = st
	if cfg.storeKind == "memory" {
		// Nothing survives the process either way: without a store the
		// broker's own messages are the only copy, where a Memory store
		// kept a second one of every retained and queued payload (issue
		// 21.22). st stays for /readyz and the store metrics.
		bopts.Store = nil
	}
	bopts.Logger = log
	id, err := nodeID(cfg)
	if err != nil {
		log.Error("cannot keep the node id", "dir", cfg.dataDir, "err", err)
		return nil, nil, 1
	}
	bopts.NodeID = id
	if err := setupCluster(cfg, &bopts, log); err != nil {
		log.Error("cannot set up the cluster", "err", err)
		return nil, nil, 2
	}
	sec, err := setupSecurity(cfg, anonGiven, os.Environ(), &bopts, log)
	if err != nil {
		log.Error("cannot set up authentication", "err", err)
		return nil, nil, 2
	}
	if cfg.delivery.autoSubscribe != "" {
		if bopts.AutoSubscribe, err = loadAutoSubscribe(cfg.delivery.autoSubscribe); err != nil {
			sec.close()
			log.Error("bad --auto-subscribe file", "err", err)
			return nil, nil, 2
		}
		log.Info("auto-subscribe rules loaded", "file", cfg.delivery.autoSubscribe, "rules", len(bopts.AutoSubscribe))
	}
	b := broker.New(bopts)
	rs, err := b.Restore()
	if err != nil {
		sec.close()
		log.Error("cannot load the stored state", "dir", cfg.dataDir, "err", err)
		return nil, nil, 1
	}
	log.Info("state loaded", "sessions", rs.Sessions, "subscriptions", rs.Subscriptions, "outbound", rs.Outbound, "retained", rs.Retained, "wills", rs.Wills, "delayed", rs.Delayed, "unconfirmed_qos2_dropped", rs.Unconfirmed, "took", rs.Took)
	if err := startCluster(cfg, b); err != nil {
		sec.close()
		log.Error("cannot join the cluster", "err", err)
		return nil, nil, 1
	}
	return b, sec, -1
}

// nodeID is --node-id, else (--store badger) the id kept in
// --data-dir/node-id, written there on first start so that it survives
// restarts; else "" (the broker makes one).
func nodeID(cfg *config) (string, error) {
	if cfg.nodeID != "" || cfg.storeKind != "badger" {
		return cfg.nodeID, nil
	}
	path := filepath.Join(cfg.dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := broker.NewNodeID()
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// serve starts the listeners and the metrics and health endpoint.
func serve(cfg *config, b *broker.Broker, st store.Store, log *slog.Logger) (*reactor.Server, *monitor.Server, int) {
	tlsMin, err := parseTLSVersion(cfg.tlsMinVersion)
	if err != nil {
		log.Error("bad --tls-min-version", "err", err)
		return nil, nil, 2
	}
	srv := reactor.New(b, reactor.Options{
		Listen: cfg.listen,
		TLS: reactor.TLSOptions{
			CertFile:       cfg.tlsCert,
			KeyFile:        cfg.tlsKey,
			ClientCAFile:   cfg.tlsClientCA,
			MinVersion:     tlsMin,
			UsernameFromCN: cfg.tlsUsernameFromCN,
		},
		ReadBufferCap:    cfg.readBufferCap,
		WriteBufferCap:   cfg.writeBufferCap,
		SocketRecvBuffer: cfg.socketRecvBuffer,
		SocketSendBuffer: cfg.socketSendBuffer,
		LockOSThread:     cfg.lockOSThread,
		Logger:           log,

		PacketTimeout:        packetTimeout(cfg.packetTimeout),
		WSAllowNoSubprotocol: !cfg.wsRequireProto,
		WSTrustedProxies:     cfg.delivery.wsTrustedProxies,
	})
	// The metrics and health endpoint is bound first: a busy port must
	// stop the start before any MQTT client could connect, not kill a
	// broker that has taken clients. Until srv starts, /readyz answers
	// 503 (listeners not running).
	mon, code := startMonitor(cfg, b, srv, st, log)
	if code >= 0 {
		cfg.admin.shutdown(context.Background())
		return nil, nil, code
	}
	if err := srv.Start(); err != nil {
		log.Error("cannot start", "err", err)
		if mon != nil {
			_ = mon.Shutdown(context.Background())
		}
		cfg.admin.shutdown(context.Background())
		return nil, nil, 1
	}
	cfg.admin.started(cfg, srv)
	return srv, mon, -1
}

// startMonitor starts the metrics and health endpoint on --metrics-listen
// (nil when it is empty); code is the exit code when it cannot (-1: go on).
func startMonitor(cfg *config, b *broker.Broker, srv *reactor.Server, st store.Store, log *slog.Logger) (*monitor.Server, int) {
	if cfg.metricsListen == "" {
		return nil, -1
	}
	writers, checks := clusterMonitor(cfg, append([]func(io.Writer){b.WriteMetrics, srv.WriteMetrics, writeBuildInfo, cfg.storeMetrics.WritePrometheus}, cfg.hookMetrics...),
		[]monitor.Check{
			{Name: "listeners", Fn: srv.Ready},
			{Name: "store", Fn: func(context.Context) error { return st.Healthy() }},
		})
	mon := monitor.New(monitor.Options{Addr: cfg.metricsListen, Writers: writers, Checks: checks})
	cfg.admin.attach(mon)
	if cfg.pprof {
		mon.Handle(registerPprof)
	}
	if err := mon.Start(); err != nil {
		log.Error("cannot serve metrics and health (--metrics-listen; empty turns it off); not starting", "addr", cfg.metricsListen, "err", err)
		return nil, 1
	}
	return mon, -1
}

// waitForStop serves SIGHUP (re-read the settings, reload the password
// and ACL files and the TLS certificates; connections stay) until another
// signal comes, which it returns.
func waitForStop(sig <-chan os.Signal, r *reloader, sec *security, srv *reactor.Server, log *slog.Logger) os.Signal {
	cfg := r.cfg
	for s := range sig {
		if s != syscall.SIGHUP {
			return s
		}
		log.Info("SIGHUP: reloading")
		r.reload()
		sec.reload()
		if err := srv.ReloadTLS(); err != nil {
			log.Error("TLS reload failed; the previous certificates stay in force", "err", err)
		} else if cfg.tlsCert != "" {
			log.Info("TLS certificates reloaded", "cert", cfg.tlsCert, "client_ca", cfg.tlsClientCA)
		}
	}
	return nil
}

// parseTLSVersion maps --tls-min-version to a crypto/tls constant.
func parseTLSVersion(v string) (uint16, error) {
	switch v {
	case "1.2", "":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q (want 1.2 or 1.3)", v)
}

// brokerOptions maps the flags onto broker.Options (store and logger
// aside).
func brokerOptions(cfg *config) broker.Options {
	o := cfg.opts
	// What a flag cannot set directly: narrower integer types (their
	// bounds checked by checkLimits, never cut here), and zero meaning
	// none where the Options' zero means the default.
	o.MaxKeepAlive = uint16(cfg.maxKeepAlive)
	o.MinKeepAlive = uint16(cfg.minKeepAlive)
	o.MaxInflight = uint16(cfg.maxInflight)
	o.TopicAliasMaximum = uint16(cfg.topicAliasMax)
	o.NoTopicAliases = cfg.topicAliasMax == 0
	o.OutboundTopicAliases = uint16(cfg.outboundAliases)
	o.KeepIdentity = cfg.admin.enabled() // user names in the management API
	o.MaxSessionExpiry = uint32(cfg.maxSessionExpiry)
	o.NoSessionExpiry = cfg.maxSessionExpiry == 0
	o.SysInterval = cfg.sysInterval
	return o
}

// applyProfile sets the profile's values for tuning flags that were not
// given on the command line or in the config file.
func applyProfile(fs *flag.FlagSet, name string) error {
	p, ok, err := tuning.LookupProfile(name)
	if err != nil || !ok {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	set := func(k, v string) {
		if !given[k] {
			_ = fs.Set(k, v)
		}
	}
	set("gogc", fmt.Sprint(p.GOGC))
	set("read-buffer-cap", fmt.Sprint(p.ReadBufferCap))
	set("write-buffer-cap", fmt.Sprint(p.WriteBufferCap))
	set("max-outbound-bytes", fmt.Sprint(p.MaxOutbound))
	set("inbox-size", fmt.Sprint(p.InboxSize))
	set("lock-os-thread", fmt.Sprint(p.LockOSThread))
	return nil
}

// packetTimeout maps --packet-timeout to reactor.Options.PacketTimeout,
// where 0 means the default and a negative value no limit.
func packetTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
