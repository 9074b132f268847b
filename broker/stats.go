package broker

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/monitor/promtext"
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
	batchFlushes, coalescePauses         uint64 // Loop.flushBatch runs, Loop.coalesce pauses
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
	NodeID string
	// Cluster is the cluster as this node sees it (nil: a single node,
	// no Options.Peers).
	Cluster                              *ClusterStats
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
	// StoreBatches and StoreCommitSeconds are the store's committed
	// batches and the time they took in all (store.Stats), zero without
	// a store: the mean commit latency over an interval is the growth of
	// one over the other's.
	StoreBatches       uint64
	StoreCommitSeconds float64
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
	BatchFlushes, CoalescePauses     uint64 // flushes at the end of a batch of callbacks; coalescing pauses (--coalesce-window)
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
	if b.opts.Peers != nil {
		cs := b.opts.Peers.ClusterStats()
		st.Cluster = &cs
	}
	st.StartTime = time.Unix(0, b.started)
	st.Uptime = b.opts.Now().Sub(st.StartTime)
	st.Dropped = make(map[string]uint64, numDropReasons)
	st.ACLDenied = map[string]uint64{}
	st.Rejected = map[string]uint64{}
	st.SubscriptionsRefused = map[string]uint64{}
	for i, r := range admitReasons {
		st.Rejected[r] = b.admit.refused[i].Load()
	}
	st.OpenConnections = b.admit.open.Load()
	if b.opts.Store != nil {
		ss := b.opts.Store.Stats()
		st.StoreBatches, st.StoreCommitSeconds = ss.Batches, ss.CommitSeconds
	}
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
			BatchFlushes: c.batchFlushes, CoalescePauses: c.coalescePauses,
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

// WriteMetrics writes the broker's metrics (and its hooks') in Prometheus
// text format, each family under its HELP and TYPE lines. It formats names
// at scrape time, so counting costs the hot path nothing but the loops'
// plain increments. Safe for concurrent use.
func (b *Broker) WriteMetrics(w io.Writer) {
	st := b.Stats()
	mConnections.Write(w, st.Clients)
	mClientsConnected.Write(w, st.Connected)
	mConnectionsOpened.Write(w, st.ConnectionsOpened)
	mConnectionsClosed.Write(w, st.ConnectionsClosed)
	mConnects.Write(w, st.Connects)
	mConnectsRefused.Header(w) // no sample until a CONNECT is refused: Merge drops the header then
	for code, n := range st.RefusedByCode {
		if n > 0 {
			name := strings.ReplaceAll(codec.ReasonCode(code).String(), " ", "_")
			mConnectsRefused.Sample(w, promtext.Labels("code", fmt.Sprintf("0x%02x", code), "reason", name), n)
		}
	}
	mConnectionsAdmitted.Write(w, uint64(max(st.OpenConnections, 0)))
	mConnectionsLimit.Write(w, uint64(max(b.opts.MaxConnections, 0)))
	mSessionsLimit.Write(w, uint64(max(b.opts.MaxSessions, 0)))
	mConnectionsRejected.Header(w)
	for _, r := range refusedReasons {
		mConnectionsRejected.Sample(w, promtext.Labels("reason", r), st.Rejected[r])
	}
	for _, r := range closeReasons {
		mConnectionsRejected.Sample(w, promtext.Labels("reason", r.label), st.Rejected[r.label])
	}
	mConnectionsRejected.Sample(w, `{reason="banned_ip"}`, st.Auth.RefusedBannedIP)
	mConnectionsRejected.Sample(w, `{reason="banned_client_id"}`, st.Auth.RefusedBannedClientID)
	mSubsRefused.Header(w)
	for _, r := range subRefusalLabels {
		mSubsRefused.Sample(w, promtext.Labels("reason", r), st.SubscriptionsRefused[r])
	}
	mTakeovers.Write(w, st.Takeovers)
	mPacketsReceived.Header(w)
	for t := 1; t < 16; t++ {
		if t != int(codec.CONNACK) && t != int(codec.SUBACK) && t != int(codec.UNSUBACK) && t != int(codec.PINGRESP) {
			mPacketsReceived.Sample(w, promtext.Labels("type", packetTypeLabel(t)), st.PacketsIn[t])
		}
	}
	mPacketsSent.Header(w)
	for t := 1; t < 16; t++ {
		if t != int(codec.CONNECT) && t != int(codec.SUBSCRIBE) && t != int(codec.UNSUBSCRIBE) && t != int(codec.PINGREQ) {
			mPacketsSent.Sample(w, promtext.Labels("type", packetTypeLabel(t)), st.PacketsOut[t])
		}
	}
	for _, f := range []struct {
		fam promtext.Family
		v   *[3]uint64
	}{{mMessagesReceived, &st.PublishIn}, {mMessagesSent, &st.PublishOut}, {mPayloadReceived, &st.PayloadIn}, {mPayloadSent, &st.PayloadOut}} {
		f.fam.Header(w)
		for q := 0; q < 3; q++ {
			f.fam.Sample(w, qosLabels[q], f.v[q])
		}
	}
	mReceivedBytes.Write(w, st.BytesIn)
	mSentBytes.Write(w, st.BytesOut)
	mSessions.Write(w, st.Sessions)
	mClientIDsOwned.Write(w, st.ClientIDsOwned)
	mSubscriptions.Write(w, st.Subscriptions)
	mSharedSubscriptions.Write(w, st.SharedSubscriptions)
	mRetainedMessages.Write(w, st.Retained)
	mRetainedBytes.Write(w, st.RetainedBytes)
	mInflightMessages.Write(w, st.Inflight)
	mQueuedMessages.Write(w, st.Queued)
	mQueuedBytes.Write(w, st.QueuedBytes)
	mTopicAliases.Header(w)
	mTopicAliases.Sample(w, `{result="hit"}`, st.TopicAliasHits)
	mTopicAliases.Sample(w, `{result="assigned"}`, st.TopicAliasAssigned)
	mTopicAliasSaved.Write(w, st.TopicAliasBytesSaved)
	mWillsPublished.Write(w, st.WillsPublished)
	mSessionsExpired.Write(w, st.SessionsExpired)
	mAcksDeferred.Write(w, st.AcksDeferred)
	mStoreAcksRefused.Write(w, st.StoreRefused)
	mStoreAppliesFailed.Write(w, st.StoreErrors)
	mStoreBacklogged.Write(w, st.StoreBacklogged)
	mStoreShed.Write(w, st.StoreShed)
	mStoreBacklogOps.Write(w, st.StoreBacklogOps)
	mRetainedSent.Write(w, st.RetainedSent)
	mRetainedStalls.Write(w, st.RetainedStalls)
	mSysPublished.Write(w, st.SysPublished)
	mDropped.Header(w)
	for _, r := range dropLabels {
		mDropped.Sample(w, promtext.Labels("reason", r), st.Dropped[r])
	}
	mACLDenied.Header(w)
	for _, a := range []string{"publish", "subscribe", "read", "will"} {
		mACLDenied.Sample(w, promtext.Labels("access", a), st.ACLDenied[a])
	}
	b.hooks.WriteMetrics(w)
	au := &st.Auth
	mAuthentications.Header(w)
	mAuthentications.Sample(w, `{result="success"}`, au.Succeeded)
	mAuthentications.Sample(w, `{result="failed"}`, au.Failed)
	mAuthentications.Sample(w, `{result="timeout"}`, au.TimedOut)
	mAuthentications.Sample(w, `{result="anonymous_refused"}`, au.AnonymousRefused)
	mAuthentications.Sample(w, `{result="bad_method"}`, au.MethodRefused)
	mAuthentications.Sample(w, `{result="busy"}`, au.BusyRefused)
	mBans.Header(w)
	mBans.Sample(w, `{kind="ip"}`, au.BansIP)
	mBans.Sample(w, `{kind="client_id"}`, au.BansClientID)
	mBanUntracked.Write(w, au.BanTrackingFull)
	for _, f := range []struct {
		fam promtext.Family
		v   func(*LoopStats) uint64
	}{
		{mLoopConnections, func(l *LoopStats) uint64 { return l.Connections }},
		{mLoopSessions, func(l *LoopStats) uint64 { return l.Sessions }},
		{mLoopSubscriptions, func(l *LoopStats) uint64 { return l.Subscriptions }},
		{mLoopInboxLength, func(l *LoopStats) uint64 { return l.InboxLen }},
		{mLoopInboxCapacity, func(l *LoopStats) uint64 { return l.InboxCap }},
		{mLoopInboxItems, func(l *LoopStats) uint64 { return l.InboxItems }},
		{mLoopBatchFlushes, func(l *LoopStats) uint64 { return l.BatchFlushes }},
		{mLoopCoalescePauses, func(l *LoopStats) uint64 { return l.CoalescePauses }},
		{mLoopInboxRejected, func(l *LoopStats) uint64 { return l.InboxRejected }},
		{mLoopMessagesRecv, func(l *LoopStats) uint64 { return l.MessagesIn }},
		{mLoopMessagesSent, func(l *LoopStats) uint64 { return l.MessagesOut }},
		{mLoopReceivedBytes, func(l *LoopStats) uint64 { return l.BytesIn }},
		{mLoopSentBytes, func(l *LoopStats) uint64 { return l.BytesOut }},
		{mLoopMigrated, func(l *LoopStats) uint64 { return l.Migrated }},
		{mLoopStalls, func(l *LoopStats) uint64 { return l.SlowConsumerStalls }},
	} {
		f.fam.Header(w)
		for i := range st.Loops {
			f.fam.Sample(w, promtext.Labels("loop", strconv.Itoa(st.Loops[i].Index)), f.v(&st.Loops[i]))
		}
	}
	b.writeDeliveryMetrics(w)
}

// qosLabels are the label sets of QoS 0, 1 and 2.
var qosLabels = [3]string{`{qos="0"}`, `{qos="1"}`, `{qos="2"}`}
