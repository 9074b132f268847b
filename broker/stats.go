package broker

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mcutie/mcutie/codec"
)

// loopCounters are plain per-loop counters, written only by their loop (no
// atomics and no shared cache line on the hot path: an increment is one
// add to memory the loop already owns). The loop copies them into a
// snapshot on every Tick, so readers never race with the writer; metrics
// are at most one tick old.
type loopCounters struct {
	connectionsOpened, connectionsClosed uint64
	migrated                             uint64 // connections moved to their home loop (opened twice, closed once)
	connects, connectsRefused            uint64
	refusedCode                          [256]uint64 // refused CONNECTs by reason code
	takeovers                            uint64
	packetsIn, packetsOut                [16]uint64 // by packet type
	publishIn, publishOut                [3]uint64  // PUBLISH by QoS (out: the delivered QoS)
	payloadIn, payloadOut                [3]uint64  // PUBLISH payload bytes by QoS
	bytesIn, bytesOut                    uint64     // bytes on the wire, every packet
	queued                               uint64
	willsPublished, sessionsExpired      uint64
	slowConsumerStalls                   uint64
	storeRefused                         uint64
	storeBacklogged, storeShed           uint64
	retainedSent, retainedStalls         uint64
	acksDeferred                         uint64
	aclDeniedPublish, aclDeniedSubscribe uint64
	aclDeniedRead, aclDeniedWill         uint64
	inboxItems                           uint64 // items taken from this loop's inbox
	sysPublished                         uint64 // $SYS messages published by this loop
	sessionsRefused                      uint64
	clientIDTooLong, keepAliveRefused    uint64
	sessionOwnerRefused                  uint64
	aliasHits, aliasAssigned             uint64 // outbound topic aliases: sent instead of the topic / assigned
	aliasBytesSaved                      uint64
	dropped                              [numDropReasons]uint64
	closed                               [numCloseReasons]uint64
	subsRefused                          [numSubRefusals]uint64

	// Gauges, refreshed at snapshot time.
	conns, clients, sessions, subscriptions, inflight, queuedNow, inboxLen, inboxRejected uint64
	queuedBytes                                                                           uint64
	backlogOps                                                                            uint64
}

type counterSnapshot struct {
	mu sync.Mutex
	c  loopCounters
}

// snapshot publishes the loop's counters for readers. Loop-only.
func (l *Loop) snapshot() {
	c := &l.counters
	c.conns = uint64(len(l.clients))
	c.sessions = uint64(len(l.sessions))
	c.subscriptions = uint64(l.subCount.Load())
	var inflight, queued, online uint64
	for _, s := range l.sessions {
		inflight += uint64(s.inflightLen())
		queued += uint64(s.queuedLen())
		if s.c != nil {
			online++
		}
	}
	c.inflight, c.queuedNow, c.clients = inflight, queued, online
	c.queuedBytes = uint64(l.queuedBytes)
	c.inboxLen = uint64(l.inbox.len())
	c.backlogOps = uint64(len(l.backlog.ops))
	c.inboxRejected = l.inbox.rejected.Load()
	l.snap.mu.Lock()
	l.snap.c = *c
	l.snap.mu.Unlock()
}

// Stats is a snapshot of the broker's counters, summed over loops. Counts
// are as of each loop's last tick.
type Stats struct {
	// NodeID is Broker.ID; StartTime when the broker was made (New);
	// Uptime the time since then, at the call.
	NodeID                               string
	StartTime                            time.Time
	Uptime                               time.Duration
	ConnectionsOpened, ConnectionsClosed uint64
	Connects, ConnectsRefused, Takeovers uint64
	RefusedByCode                        [256]uint64 // refused CONNECTs by CONNACK reason code
	ConnectTimeouts, KeepAliveTimeouts   uint64
	ProtocolErrors                       uint64
	PacketsIn, PacketsOut                [16]uint64 // by packet type (codec.Type)
	PublishIn, PublishOut                [3]uint64
	PayloadIn, PayloadOut                [3]uint64
	BytesIn, BytesOut                    uint64
	Clients                              uint64 // open network connections (including those before CONNECT)
	Connected                            uint64 // sessions with a connection (CONNACK sent)
	Sessions, Subscriptions              uint64
	SharedSubscriptions, Retained        uint64
	Inflight, Queued                     uint64
	QueuedBytes                          uint64 // topic + payload bytes held in QoS 1/2 queues and inflight windows
	RetainedBytes                        uint64 // topic + payload bytes of the retained messages
	// TopicAliasHits counts PUBLISHes sent with an outbound topic alias
	// instead of their topic, TopicAliasAssigned the aliases assigned,
	// TopicAliasBytesSaved the bytes the hits saved (topic minus alias).
	TopicAliasHits, TopicAliasAssigned, TopicAliasBytesSaved uint64
	WillsPublished, SessionsExpired                          uint64
	AcksDeferred, StoreRefused                               uint64
	StoreErrors                                              uint64
	// StoreBacklogged counts passes whose operations the store's full
	// commit queue refused (kept in the loop's backlog and retried);
	// StoreShed the operations refused once a backlog reached
	// Options.CommitBacklog; StoreBacklogOps is the backlogs' size now.
	StoreBacklogged, StoreShed, StoreBacklogOps uint64
	// RetainedSent counts retained messages sent after SUBSCRIBEs;
	// RetainedStalls the times such sending waited for a connection.
	RetainedSent, RetainedStalls uint64
	SysPublished                 uint64
	Dropped                      map[string]uint64
	// ACLDenied counts refusals by the Authorizer (and of $SYS
	// publishes): "publish", "subscribe", "read" (a delivery skipped),
	// "will" (a CONNECT refused for its will topic).
	ACLDenied map[string]uint64
	Auth      AuthStats
	Loops     []LoopStats
	// Rejected counts connections refused or closed by a limit, by the
	// reason label of mcutie_connections_rejected_total.
	Rejected map[string]uint64
	// SubscriptionsRefused counts SUBSCRIBE filters refused by a limit.
	SubscriptionsRefused map[string]uint64
	OpenConnections      int64 // admitted and not yet closed (Broker.Admit)
	// ClientIDsOwned counts client ids a loop owns (directory.go): those
	// with a session, authenticating or whose ended session's store
	// operations are not finished yet.
	ClientIDsOwned uint64
}

// AuthStats counts authentication outcomes and bans.
type AuthStats struct {
	Succeeded, Failed, TimedOut            uint64
	AnonymousRefused, MethodRefused        uint64
	BusyRefused                            uint64 // MaxPendingAuthPerIP
	BansIP, BansClientID                   uint64 // bans issued
	RefusedBannedIP, RefusedBannedClientID uint64 // connections refused while banned
	BanTrackingFull                        uint64
}

// LoopStats are one loop's figures.
type LoopStats struct {
	Index                            int
	Connections, Sessions            uint64
	InboxLen, InboxCap               uint64
	InboxRejected, InboxItems        uint64
	MessagesIn, MessagesOut          uint64 // PUBLISH packets received / sent on this loop
	BytesIn, BytesOut                uint64 // wire bytes
	SlowConsumerStalls, Queued       uint64
	ConnectionsOpened, Migrated      uint64
	ConnectionsClosed, Subscriptions uint64
}

// Stats sums the loops' latest snapshots, taken at each Tick: at most a
// tick old (StatsNow asks the loops for figures exact at the call). Safe
// for concurrent use.
func (b *Broker) Stats() Stats {
	var st Stats
	st.NodeID = b.nodeID
	st.StartTime = time.Unix(0, b.started)
	st.Uptime = b.opts.Now().Sub(st.StartTime) // not the coarse clock: it may be paused while idle
	st.Dropped = make(map[string]uint64, numDropReasons)
	st.ACLDenied = map[string]uint64{}
	st.Rejected = map[string]uint64{}
	st.SubscriptionsRefused = map[string]uint64{}
	for i, r := range admitReasons {
		st.Rejected[r] = b.admit.refused[i].Load()
	}
	st.OpenConnections = b.admit.open.Load()
	owned := b.dir.len()
	st.Loops = make([]LoopStats, len(b.loops))
	for i, l := range b.loops {
		l.snap.mu.Lock()
		c := l.snap.c
		l.snap.mu.Unlock()
		st.ConnectionsOpened += c.connectionsOpened - c.migrated
		st.ConnectionsClosed += c.connectionsClosed
		st.Connects += c.connects
		st.ConnectsRefused += c.connectsRefused
		for k, n := range c.refusedCode {
			st.RefusedByCode[k] += n
		}
		st.Takeovers += c.takeovers
		var msgIn, msgOut uint64
		for q := 0; q < 3; q++ {
			st.PublishIn[q] += c.publishIn[q]
			st.PublishOut[q] += c.publishOut[q]
			st.PayloadIn[q] += c.payloadIn[q]
			st.PayloadOut[q] += c.payloadOut[q]
			msgIn += c.publishIn[q]
			msgOut += c.publishOut[q]
		}
		for t := range c.packetsIn {
			st.PacketsIn[t] += c.packetsIn[t]
			st.PacketsOut[t] += c.packetsOut[t]
		}
		st.BytesIn += c.bytesIn
		st.BytesOut += c.bytesOut
		st.Clients += c.conns
		st.Connected += c.clients
		st.Sessions += c.sessions
		st.Subscriptions += c.subscriptions
		st.Inflight += c.inflight
		st.Queued += c.queuedNow
		st.WillsPublished += c.willsPublished
		st.SessionsExpired += c.sessionsExpired
		st.AcksDeferred += c.acksDeferred
		st.StoreRefused += c.storeRefused
		st.StoreBacklogged += c.storeBacklogged
		st.StoreShed += c.storeShed
		st.RetainedSent += c.retainedSent
		st.RetainedStalls += c.retainedStalls
		st.StoreBacklogOps += c.backlogOps
		st.SysPublished += c.sysPublished
		for r, n := range c.dropped {
			st.Dropped[dropLabels[r]] += n
		}
		for r, n := range c.closed {
			st.Rejected[closeReasons[r].label] += n
		}
		for r, n := range c.subsRefused {
			st.SubscriptionsRefused[subRefusalLabels[r]] += n
		}
		st.ConnectTimeouts += c.closed[closeConnectTimeout]
		st.KeepAliveTimeouts += c.closed[closeKeepAlive]
		st.ProtocolErrors += c.closed[closeProtocolError]
		st.QueuedBytes += c.queuedBytes
		st.TopicAliasHits += c.aliasHits
		st.TopicAliasAssigned += c.aliasAssigned
		st.TopicAliasBytesSaved += c.aliasBytesSaved
		st.Rejected["max_sessions"] += c.sessionsRefused
		st.Rejected["connect_refused"] += c.connectsRefused
		st.Rejected["client_id_too_long"] += c.clientIDTooLong
		st.Rejected["session_owner"] += c.sessionOwnerRefused
		st.Rejected["keepalive_out_of_range"] += c.keepAliveRefused
		st.ACLDenied["publish"] += c.aclDeniedPublish
		st.ACLDenied["subscribe"] += c.aclDeniedSubscribe
		st.ACLDenied["read"] += c.aclDeniedRead
		st.ACLDenied["will"] += c.aclDeniedWill
		st.Loops[i] = LoopStats{
			Index: l.idx, Connections: c.conns, Sessions: c.sessions,
			InboxLen: c.inboxLen, InboxCap: l.inbox.mask + 1, InboxRejected: c.inboxRejected, InboxItems: c.inboxItems,
			MessagesIn: msgIn, MessagesOut: msgOut, BytesIn: c.bytesIn, BytesOut: c.bytesOut,
			SlowConsumerStalls: c.slowConsumerStalls, Queued: c.queued,
			ConnectionsOpened: c.connectionsOpened, Migrated: c.migrated, ConnectionsClosed: c.connectionsClosed,
			Subscriptions: c.subscriptions,
		}
	}
	st.Auth = AuthStats{
		Succeeded: b.auth.ok.Load(), Failed: b.auth.failed.Load(), TimedOut: b.auth.timeouts.Load(),
		AnonymousRefused: b.auth.anonymousRefused.Load(), MethodRefused: b.auth.methodRefused.Load(),
		BusyRefused: b.auth.busyRefused.Load(),
		BansIP:      b.bans.issuedIP.Load(), BansClientID: b.bans.issuedID.Load(),
		RefusedBannedIP: b.bans.refusedIP.Load(), RefusedBannedClientID: b.bans.refusedID.Load(),
		BanTrackingFull: b.bans.trackingFull.Load(),
	}
	st.Dropped["inbox_full"] += b.droppedOffLoop.Load()
	st.SharedSubscriptions = uint64(b.shared.Len())
	st.Retained = uint64(b.retained.Len())
	st.RetainedBytes = uint64(max(b.retainedBytes.Load(), 0))
	st.StoreErrors = b.storeErrors.Load()
	st.ClientIDsOwned = uint64(owned)
	if owned < 0 { // one loop: no directory; every id is its session's
		st.ClientIDsOwned = st.Sessions
	}
	return st
}

// packetTypeLabel is the label value of a packet type in metrics.
func packetTypeLabel(t int) string { return strings.ToLower(typeName(codec.Type(t))) }

// refusedReasons are the reason labels of mcutie_connections_rejected_total
// that are not closeReasons': connections refused at accept and CONNECTs
// refused (connect_refused counts them all).
var refusedReasons = []string{
	"max_connections", "max_connections_per_ip", "connection_rate", "pre_connect_hook", // at accept (Admit)
	"connect_refused", "client_id_too_long", "keepalive_out_of_range", "session_owner", "max_sessions",
}

// WriteMetrics writes the broker's metrics in Prometheus text format; pass
// it to metrics.RegisterMetricsWriter. It formats names at scrape time, so
// counting costs the hot path nothing but the loops' plain increments.
// Safe for concurrent use.
func (b *Broker) WriteMetrics(w io.Writer) {
	st := b.Stats()
	metrics.WriteGaugeUint64(w, "mcutie_connections", st.Clients)
	metrics.WriteGaugeUint64(w, "mcutie_clients_connected", st.Connected)
	metrics.WriteCounterUint64(w, "mcutie_connections_opened_total", st.ConnectionsOpened)
	metrics.WriteCounterUint64(w, "mcutie_connections_closed_total", st.ConnectionsClosed)
	metrics.WriteCounterUint64(w, "mcutie_connects_total", st.Connects)
	for code, n := range st.RefusedByCode {
		if n > 0 {
			name := strings.ReplaceAll(codec.ReasonCode(code).String(), " ", "_")
			metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_connects_refused_total{code="0x%02x",reason=%q}`, code, name), n)
		}
	}
	metrics.WriteGaugeUint64(w, "mcutie_connections_admitted", uint64(max(st.OpenConnections, 0)))
	for _, r := range refusedReasons {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_connections_rejected_total{reason=%q}`, r), st.Rejected[r])
	}
	for _, r := range closeReasons {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_connections_rejected_total{reason=%q}`, r.label), st.Rejected[r.label])
	}
	for _, r := range subRefusalLabels {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_subscriptions_refused_total{reason=%q}`, r), st.SubscriptionsRefused[r])
	}
	metrics.WriteCounterUint64(w, "mcutie_session_takeovers_total", st.Takeovers)
	for t := 1; t < 16; t++ {
		if t != int(codec.CONNACK) && t != int(codec.SUBACK) && t != int(codec.UNSUBACK) && t != int(codec.PINGRESP) {
			metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_packets_received_total{type=%q}`, packetTypeLabel(t)), st.PacketsIn[t])
		}
		if t != int(codec.CONNECT) && t != int(codec.SUBSCRIBE) && t != int(codec.UNSUBSCRIBE) && t != int(codec.PINGREQ) {
			metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_packets_sent_total{type=%q}`, packetTypeLabel(t)), st.PacketsOut[t])
		}
	}
	for q := 0; q < 3; q++ {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_messages_received_total{qos="%d"}`, q), st.PublishIn[q])
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_messages_sent_total{qos="%d"}`, q), st.PublishOut[q])
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_payload_bytes_received_total{qos="%d"}`, q), st.PayloadIn[q])
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_payload_bytes_sent_total{qos="%d"}`, q), st.PayloadOut[q])
	}
	metrics.WriteCounterUint64(w, "mcutie_bytes_received_total", st.BytesIn)
	metrics.WriteCounterUint64(w, "mcutie_bytes_sent_total", st.BytesOut)
	metrics.WriteGaugeUint64(w, "mcutie_sessions", st.Sessions)
	metrics.WriteGaugeUint64(w, "mcutie_client_ids_owned", st.ClientIDsOwned)
	metrics.WriteGaugeUint64(w, "mcutie_subscriptions", st.Subscriptions)
	metrics.WriteGaugeUint64(w, "mcutie_shared_subscriptions", st.SharedSubscriptions)
	metrics.WriteGaugeUint64(w, "mcutie_retained_messages", st.Retained)
	metrics.WriteGaugeUint64(w, "mcutie_inflight_messages", st.Inflight)
	metrics.WriteGaugeUint64(w, "mcutie_queued_messages", st.Queued)
	metrics.WriteGaugeUint64(w, "mcutie_queued_bytes", st.QueuedBytes)
	metrics.WriteGaugeUint64(w, "mcutie_retained_bytes", st.RetainedBytes)
	metrics.WriteCounterUint64(w, `mcutie_outbound_topic_aliases_total{result="hit"}`, st.TopicAliasHits)
	metrics.WriteCounterUint64(w, `mcutie_outbound_topic_aliases_total{result="assigned"}`, st.TopicAliasAssigned)
	metrics.WriteCounterUint64(w, "mcutie_outbound_topic_alias_bytes_saved_total", st.TopicAliasBytesSaved)
	metrics.WriteCounterUint64(w, "mcutie_wills_published_total", st.WillsPublished)
	metrics.WriteCounterUint64(w, "mcutie_sessions_expired_total", st.SessionsExpired)
	metrics.WriteCounterUint64(w, "mcutie_acks_deferred_total", st.AcksDeferred)
	metrics.WriteCounterUint64(w, "mcutie_store_acks_refused_total", st.StoreRefused)
	metrics.WriteCounterUint64(w, "mcutie_broker_store_errors_total", st.StoreErrors)
	metrics.WriteCounterUint64(w, "mcutie_store_backlogged_passes_total", st.StoreBacklogged)
	metrics.WriteCounterUint64(w, "mcutie_store_shed_ops_total", st.StoreShed)
	metrics.WriteGaugeUint64(w, "mcutie_store_backlog_ops", st.StoreBacklogOps)
	metrics.WriteCounterUint64(w, "mcutie_retained_sent_on_subscribe_total", st.RetainedSent)
	metrics.WriteCounterUint64(w, "mcutie_retained_send_stalls_total", st.RetainedStalls)
	metrics.WriteCounterUint64(w, "mcutie_sys_messages_published_total", st.SysPublished)
	for _, r := range dropLabels {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_messages_dropped_total{reason=%q}`, r), st.Dropped[r])
	}
	for _, a := range []string{"publish", "subscribe", "read", "will"} {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`mcutie_acl_denied_total{access=%q}`, a), st.ACLDenied[a])
	}
	b.hooks.WriteMetrics(w)
	au := &st.Auth
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="success"}`, au.Succeeded)
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="failed"}`, au.Failed)
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="timeout"}`, au.TimedOut)
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="anonymous_refused"}`, au.AnonymousRefused)
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="bad_method"}`, au.MethodRefused)
	metrics.WriteCounterUint64(w, `mcutie_auth_total{result="busy"}`, au.BusyRefused)
	metrics.WriteCounterUint64(w, `mcutie_bans_total{kind="ip"}`, au.BansIP)
	metrics.WriteCounterUint64(w, `mcutie_bans_total{kind="client_id"}`, au.BansClientID)
	metrics.WriteCounterUint64(w, `mcutie_connections_rejected_total{reason="banned_ip"}`, au.RefusedBannedIP)
	metrics.WriteCounterUint64(w, `mcutie_connections_rejected_total{reason="banned_client_id"}`, au.RefusedBannedClientID)
	metrics.WriteCounterUint64(w, "mcutie_ban_tracking_full_total", au.BanTrackingFull)
	for _, ls := range st.Loops {
		lbl := fmt.Sprintf(`{loop="%d"}`, ls.Index)
		metrics.WriteGaugeUint64(w, "mcutie_loop_connections"+lbl, ls.Connections)
		metrics.WriteGaugeUint64(w, "mcutie_loop_sessions"+lbl, ls.Sessions)
		metrics.WriteGaugeUint64(w, "mcutie_loop_inbox_len"+lbl, ls.InboxLen)
		metrics.WriteGaugeUint64(w, "mcutie_loop_inbox_capacity"+lbl, ls.InboxCap)
		metrics.WriteCounterUint64(w, "mcutie_loop_inbox_items_total"+lbl, ls.InboxItems)
		metrics.WriteCounterUint64(w, "mcutie_loop_inbox_rejected_total"+lbl, ls.InboxRejected)
		metrics.WriteCounterUint64(w, "mcutie_loop_messages_received_total"+lbl, ls.MessagesIn)
		metrics.WriteCounterUint64(w, "mcutie_loop_messages_sent_total"+lbl, ls.MessagesOut)
		metrics.WriteCounterUint64(w, "mcutie_loop_bytes_received_total"+lbl, ls.BytesIn)
		metrics.WriteCounterUint64(w, "mcutie_loop_bytes_sent_total"+lbl, ls.BytesOut)
		metrics.WriteCounterUint64(w, "mcutie_loop_connections_migrated_total"+lbl, ls.Migrated)
		metrics.WriteCounterUint64(w, "mcutie_loop_slow_consumer_stalls_total"+lbl, ls.SlowConsumerStalls)
		metrics.WriteGaugeUint64(w, "mcutie_loop_subscriptions"+lbl, ls.Subscriptions)
	}
}
