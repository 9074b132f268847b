package broker

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/store"
)

// Options configures a Broker. The zero value of a field means its default
// (see Defaults); cmd/mcutie maps flags and the config file onto it.
type Options struct {
	Loops int // event loops (and router shards); default: number of CPUs

	MaxPacketSize     int    // largest packet accepted and advertised (v5 Maximum Packet Size); default 1 MiB
	MaxTopicLength    int    // bytes; default 65535
	MaxTopicLevels    int    // default 128
	MaxKeepAlive      uint16 // seconds; a v5 client asking for more (or 0) is told the Server Keep Alive, a 3.x one asking for more is refused (CONNACK 0x02, as Mosquitto), one asking for 0 is held to it unknowingly; default 0 = no limit
	MinKeepAlive      uint16 // seconds; a v5 client asking for less (not 0) is told the Server Keep Alive, a 3.x one is refused (CONNACK 0x02); default 0 = no limit
	MaxInflight       uint16 // QoS 1/2 messages sent and not yet acknowledged, per session (and our v5 Receive Maximum); default 1024
	MaxQueued         int    // QoS 1/2 messages queued per session beyond the inflight window or while offline; default 10000
	MaxOutboundBytes  int    // bytes buffered for one connection before it counts as a slow consumer (QoS 0 dropped); default 4 MiB
	TopicAliasMaximum uint16 // inbound topic aliases accepted from v5 clients; default 64 (NoTopicAliases for none)
	MaxSessionExpiry  uint32 // seconds; caps a v5 client's Session Expiry Interval; default 0xFFFFFFFF (never; NoSessionExpiry for 0)
	// NoTopicAliases accepts no inbound topic alias (Topic Alias Maximum
	// 0), and NoSessionExpiry caps every session's expiry at 0 (sessions
	// end with their connection): the zero values of TopicAliasMaximum and
	// MaxSessionExpiry mean their defaults.
	NoTopicAliases, NoSessionExpiry bool
	// OutboundTopicAliases is the most topic aliases the broker assigns
	// per v5 connection to the topics it sends (never more than the
	// client's Topic Alias Maximum), least recently sent first reassigned.
	// Default 0: none. Off by default because client libraries that
	// advertise a Topic Alias Maximum do not all resolve the aliases they
	// receive: libmosquitto 2.0.11 (mosquitto_sub -D connect
	// topic-alias-maximum N) drops the connection at the first PUBLISH
	// that carries only an alias.
	OutboundTopicAliases uint16
	// ResponseInformation is sent in the CONNACK of a v5 client that sets
	// Request Response Information (MQTT-3.1.2-28), with %c replaced by
	// its client id: the basis of its response topics (e.g. "reply/%c/").
	// Empty: never sent.
	ResponseInformation string
	// P2P turns on point-to-point messages (p2p.go): a PUBLISH to
	// $p2p/{clientid}/{topic} goes to that client's session only, as a
	// PUBLISH to {topic}. Off: such a topic is an ordinary one.
	P2P bool
	// DelayedPublish turns on delayed messages (delayed.go): a PUBLISH to
	// $delayed/{seconds}/{topic} is published to {topic} after the delay,
	// kept in the store meanwhile. MaxDelayedMessages bounds how many
	// wait (beyond it: v5 PUBACK 0x97; 3.x dropped, counted and logged;
	// default 100,000), MaxDelay the delay (beyond it: v5 0x83; default
	// 24h).
	// AutoSubscribe are subscriptions made for a client when it connects
	// (autosub.go), in order; each rule must pass AutoSubscribeRule.Check.
	AutoSubscribe      []AutoSubscribeRule
	DelayedPublish     bool
	MaxDelayedMessages int
	MaxDelay           time.Duration
	MaxQueuedBytes     int // bytes (topic + payload) of the QoS 1/2 messages held per session; beyond it new messages are dropped and counted (v5 publisher: 0x97); default 32 MiB
	// MaxQueuedBytesTotal bounds the bytes (topic + payload) held in all
	// sessions' QoS 1/2 queues and inflight windows, each event loop
	// holding an equal share; beyond it new messages are dropped and
	// counted as for MaxQueuedBytes. Default 1 GiB.
	MaxQueuedBytesTotal int64
	ConnectTimeout      time.Duration
	InboxSize           int // cross-loop inbox capacity per loop; default 16384
	// CoalesceWindow is the longest a loop pauses after a batch of
	// traffic to let more arrive, while its connections send more than
	// two messages per window (Loop.coalesce): fewer wake-ups and writes
	// per message at the cost of up to one window of latency. 0 (the
	// default here; the mcutie command's --coalesce-window sets 1 ms):
	// never pause.
	CoalesceWindow time.Duration
	// CommitBacklog bounds, per loop, the store operations kept while the
	// store's commit queue is full (see commit.go); beyond it new durable
	// operations are refused. Default 65536.
	CommitBacklog int

	// Authenticator decides who may connect; nil lets everyone in (and
	// refuses v5 enhanced authentication with 0x8C).
	Authenticator Authenticator
	// DenyAnonymous refuses a CONNECT without a user name (and without a
	// v5 Authentication Method): CONNACK 0x87 Not authorized (3.x 0x05).
	// Otherwise such a client is let in without asking the Authenticator.
	DenyAnonymous bool
	// AuthTimeout bounds how long an Authenticator may take; past it the
	// connection is refused with 0x88 Server unavailable (3.x 0x03).
	// Default 5s.
	AuthTimeout time.Duration
	// Authorizer decides what clients may publish, subscribe to and
	// receive; nil allows everything (publishing to $SYS is refused
	// either way).
	Authorizer Authorizer
	// ACLCacheSize is how many topics' verdicts a session keeps (default
	// 256); beyond it the cache starts over.
	ACLCacheSize int
	// BanThreshold failed authentications from one source IP (or for one
	// client id) within BanWindow ban it for BanDuration; 0 turns bans
	// off. BanMaxTracked bounds the IPs and client ids tracked (each).
	BanThreshold  int
	BanWindow     time.Duration // default 1m
	BanDuration   time.Duration // default 5m
	BanMaxTracked int           // default 100000
	// MaxPendingAuthPerIP bounds the authentications in progress from one
	// source address; a CONNECT beyond it is refused with 0x89 Server
	// busy (3.x 0x03). Default 16.
	MaxPendingAuthPerIP int
	// Limits on clients (see limits.go and docs/security.md). 0 means
	// no limit unless a default is named.
	MaxConnections      int     // open connections in total; more are closed at accept
	MaxConnectionsPerIP int     // open connections per source address; more are closed at accept
	ConnectRatePerIP    float64 // new connections per second per source address (token bucket); more are closed at accept
	ConnectBurstPerIP   int     // bucket size of ConnectRatePerIP; default max(1, 2 × rate)
	MaxClientIDLength   int     // bytes; a longer client id is refused (CONNACK 0x85 / 0x02); default 256
	MaxSubscriptions    int     // subscriptions per session; a filter beyond it gets SUBACK 0x97 (v5) / 0x80; default 10000
	// MaxWildcardLevels bounds the sum of the levels of one session's
	// filters that hold a '+' (a filter beyond it gets SUBACK 0x97 / 0x80):
	// each such level can add a branch to every PUBLISH's walk through the
	// router, so this bounds the matching work one session adds per
	// message. Default DefaultMaxWildcardLevels.
	MaxWildcardLevels int
	// MaxRetainedOwed: a SUBSCRIBE whose connection is still owed more
	// retained messages than this from earlier subscriptions (it does not
	// read them) closes it as a slow reader. One subscription's matches
	// are always owed in full. Default 100,000.
	MaxRetainedOwed int
	// MaxUserProperties bounds the v5 user properties of one PUBLISH (and
	// of a will): beyond it a QoS 1/2 PUBLISH is answered 0x83, a QoS 0
	// one ends the connection with DISCONNECT 0x83, a will is refused at
	// CONNECT. Default 128.
	MaxUserProperties int
	// MaxRetainedMessages and MaxRetainedBytes (topic + payload) bound the
	// retained index: a message for a new retained topic beyond either is
	// delivered but not retained (v5 publisher: 0x97); replacing or
	// clearing one is always possible. Defaults 2,000,000 and 1 GiB.
	MaxRetainedMessages int
	MaxRetainedBytes    int64
	// MaxSessions bounds the sessions, connected and offline, each event
	// loop holding an equal share: a CONNECT that needs a new session
	// beyond it is refused (v5 0x97, 3.x 0x03). Default 1,000,000.
	MaxSessions int
	// MaxSubscriptionBytes bounds the bytes of one session's filters
	// together; a filter beyond it gets SUBACK 0x97 / 0x80. Default 1 MiB.
	MaxSubscriptionBytes int
	PublishRate          float64 // PUBLISH packets per second per connection (token bucket); beyond it the connection is closed (v5 DISCONNECT 0x96)
	PublishBurst         int     // bucket size of PublishRate; default max(1, 2 × rate)
	PublishByteRate      float64 // PUBLISH bytes per second per connection (token bucket); beyond it the connection is closed (v5 DISCONNECT 0x97)
	PublishByteBurst     int     // bucket size of PublishByteRate, bytes; default max(MaxPacketSize, 2 × rate)

	// SysInterval is how often the $SYS/broker/... topics are published
	// (retained); 0 turns them off (the binary's default is 10s).
	SysInterval time.Duration
	// Version is published on $SYS/broker/version; default "dev".
	Version string
	// NodeID names this broker (Broker.ID): stable across restarts when
	// the caller keeps it (cmd/mcutie keeps it in --data-dir/node-id).
	// Empty: a random one is made at New.
	NodeID string
	// SysPrefix is the root of the broker's own topics (default "$SYS");
	// it must start with '$', so no '#' or '+' filter matches it
	// [MQTT-4.7.2-1], and clients may not publish under it.
	SysPrefix string
	// SysClientEvents publishes a JSON event on
	// <SysPrefix>/brokers/<node id>/clients/<client id>/connected and
	// …/disconnected (the names EMQX uses) when a client connects and when
	// its connection ends. Off by default.
	SysClientEvents bool
	// KeepIdentity keeps every session's user name (otherwise kept only
	// when ACLs, hooks or $SYS client events need it), so the management
	// API (SessionInfo.Username, Query.Match) can show and search it.
	// Costs each session the small allocation that holds it.
	KeepIdentity bool

	// Store keeps persistent sessions, their QoS 1/2 messages and the
	// retained messages; nil keeps everything in memory only.
	Store store.Store

	// Hooks are the extensions the broker calls (package hooks); nil:
	// none. The caller owns the Registry: it stops it after the broker.
	Hooks *hooks.Registry

	// Peers are the other nodes of a cluster (package cluster); nil: a
	// single node.
	Peers Peers
	// RetainedTombstoneTTL is how long a cluster node remembers that a
	// retained message was cleared (default 24h), and MaxRetainedTombstones
	// how many clears it remembers at most (default 100,000): an older
	// copy of a cleared message offered within that time is not kept
	// (retainedsync.go). Unused without Peers.
	RetainedTombstoneTTL  time.Duration
	MaxRetainedTombstones int

	Logger *slog.Logger
	// Now is the broker's clock; default time.Now. A loop calls it once
	// per callback, so a test that moves it is seen at once.
	Now func() time.Time
}

// DefaultMaxWildcardLevels is Options.MaxWildcardLevels' default: e.g.
// 1,000 filters such as devices/+/telemetry/# (4 levels), while one
// session's filters add at most about 0.2 ms of matching per PUBLISH.
const DefaultMaxWildcardLevels = 4096

// Defaults fills unset fields.
func (o *Options) Defaults() {
	if o.RetainedTombstoneTTL <= 0 {
		o.RetainedTombstoneTTL = 24 * time.Hour
	}
	if o.MaxRetainedTombstones <= 0 {
		o.MaxRetainedTombstones = 100000
	}
	if o.Loops <= 0 {
		o.Loops = runtime.NumCPU()
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = 1 << 20
	}
	if o.MaxPacketSize > codec.MaxPacketSize {
		o.MaxPacketSize = codec.MaxPacketSize // nothing larger can be framed
	}
	if o.MaxTopicLength <= 0 || o.MaxTopicLength > 65535 {
		o.MaxTopicLength = 65535
	}
	if o.MaxTopicLevels <= 0 {
		o.MaxTopicLevels = 128
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 1024
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 10000
	}
	if o.MaxOutboundBytes <= 0 {
		o.MaxOutboundBytes = 4 << 20
	}
	if o.TopicAliasMaximum == 0 {
		o.TopicAliasMaximum = 64
	}
	if o.NoTopicAliases {
		o.TopicAliasMaximum = 0
	}
	if o.MaxSessionExpiry == 0 {
		o.MaxSessionExpiry = store.ExpiryNever
	}
	if o.NoSessionExpiry {
		o.MaxSessionExpiry = 0
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxClientIDLength <= 0 {
		o.MaxClientIDLength = 256
	}
	// [MQTT-3.1.3-5] A server must accept ids of 1 to 23 bytes.
	o.MaxClientIDLength = max(o.MaxClientIDLength, 23)
	if o.MaxKeepAlive > 0 && o.MinKeepAlive > o.MaxKeepAlive {
		o.MinKeepAlive = o.MaxKeepAlive
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 32 << 20
	}
	if o.MaxQueuedBytesTotal <= 0 {
		o.MaxQueuedBytesTotal = 1 << 30
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 10000
	}
	if o.MaxRetainedMessages <= 0 {
		o.MaxRetainedMessages = 2000000
	}
	if o.MaxRetainedBytes <= 0 {
		o.MaxRetainedBytes = 1 << 30
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000000
	}
	if o.MaxSubscriptionBytes <= 0 {
		o.MaxSubscriptionBytes = 1 << 20
	}
	if o.MaxUserProperties <= 0 {
		o.MaxUserProperties = 128
	}
	if o.MaxRetainedOwed <= 0 {
		o.MaxRetainedOwed = 100000
	}
	if o.MaxWildcardLevels <= 0 {
		o.MaxWildcardLevels = DefaultMaxWildcardLevels
	}
	if o.ConnectRatePerIP > 0 && o.ConnectBurstPerIP <= 0 {
		o.ConnectBurstPerIP = max(1, int(2*o.ConnectRatePerIP))
	}
	if o.PublishRate > 0 && o.PublishBurst <= 0 {
		o.PublishBurst = max(1, int(2*o.PublishRate))
	}
	if o.PublishByteRate > 0 && o.PublishByteBurst <= 0 {
		o.PublishByteBurst = max(o.MaxPacketSize, int(2*o.PublishByteRate))
	}
	if o.InboxSize <= 0 {
		o.InboxSize = 16384
	}
	if o.CommitBacklog <= 0 {
		o.CommitBacklog = 65536
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 5 * time.Second
	}
	if o.ACLCacheSize <= 0 {
		o.ACLCacheSize = 256
	}
	if o.BanWindow <= 0 {
		o.BanWindow = time.Minute
	}
	if o.BanDuration <= 0 {
		o.BanDuration = 5 * time.Minute
	}
	if o.MaxPendingAuthPerIP <= 0 {
		o.MaxPendingAuthPerIP = 16
	}
	if o.MaxDelayedMessages <= 0 {
		o.MaxDelayedMessages = 100000
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 24 * time.Hour
	}
	if o.BanMaxTracked <= 0 {
		o.BanMaxTracked = 100000
	}
	if o.SysPrefix == "" || o.SysPrefix[0] != '$' {
		o.SysPrefix = "$SYS"
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}
