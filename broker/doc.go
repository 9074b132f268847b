// Package broker is the MQTT protocol core of mcutie: sessions, the QoS 1/2
// state machines, routing, retained messages, wills, expiry and flow
// control, for MQTT 3.1, 3.1.1 and 5.0. It does no I/O: a transport
// (package reactor) binds each Loop to an event loop and feeds each
// Client the bytes of its connection.
//
// # Ownership (the whole concurrency contract)
//
//   - A Broker has a fixed set of Loops, one per event loop. A Loop owns a
//     router shard, the sessions of the client ids it owns, its connections (Clients)
//     and a bounded lock-free inbox. Everything a Loop owns is touched
//     only on that loop ("Loop-only" in the docs).
//   - A client id is owned by one loop (clientDir, directory.go): the loop
//     its first CONNECT arrived on, for as long as it has a session there.
//     A CONNECT for an id another loop owns makes the transport move the
//     connection there, so session takeover, resume, expiry and wills
//     never cross loops; a new client is never moved. Restore puts a
//     stored session on a loop chosen by a hash of its id.
//   - A PUBLISH is matched against the publishing loop's shard and
//     delivered there at once; every other loop that holds subscriptions
//     gets a reference to the message through its inbox and matches its
//     own shard. Per-publisher order holds because each inbox is FIFO.
//     No mutex is taken on this path.
//   - Shared subscriptions ($share/group/filter) are broker-wide
//     (router.Shared, lock-free reads): the publishing loop picks one
//     member and posts the message to the member's loop when needed. In
//     a cluster the groups other nodes serve are skipped (peershared.go).
//   - Retained messages are broker-wide (router.Retained, RWMutex): taken
//     only by PUBLISHes with RETAIN set and by SUBSCRIBE.
//   - A Message is copied once out of the read buffer, reference counted,
//     and shared by every delivery; per subscriber only the PUBLISH header
//     is encoded and the payload is written as a second vector.
//
// # Durability
//
// What is acknowledged is durable first: store operations are gathered per
// loop pass and committed as one unit (commit.go), acknowledgements wait
// on a latch until their operations are done (ack.go), and QoS 2 from
// persistent sessions is exactly-once across loops and restarts by the
// protocol of qos2.go. DURABILITY.md in this directory describes it once,
// with the invariants the crash tests check.
//
// # Authentication and authorization
//
// An Authenticator is asked on the loop that owns the client id after the
// CONNECT (and after every v5 AUTH of an enhanced exchange). It answers
// inline or later from any goroutine; a late verdict comes back as an
// inbox item, the connection reads nothing meanwhile (its CONNECT is kept
// as a copy and run again once accepted), and Options.AuthTimeout bounds
// the wait (Tick). An Authorizer is asked on the loops, concurrently; each
// session caches its verdicts by topic until the Authorizer's generation
// changes, so the publish path pays a hash, a map lookup and no
// allocation. Bans (ban.go) are broker-wide behind a mutex taken only at
// accept, around authentications and on failed CONNECTs. With an
// Authenticator a session belongs to the identity that created it.
//
// # Bounds
//
// Every queue is bounded: the inbox (Options.InboxSize: QoS 0 dropped and
// counted when full, QoS 1/2 wait with bounded back-pressure), the outbound
// bytes of a connection (Options.MaxOutboundBytes: QoS 0 dropped, QoS 1/2
// held in the session queue), and a session's QoS 1/2 messages
// (Options.MaxQueued, MaxQueuedBytes, and MaxQueuedBytesTotal for all of
// them: newer messages dropped and counted). State is bounded too:
// sessions (MaxSessions), retained messages (MaxRetainedMessages,
// MaxRetainedBytes), one session's filters (MaxSubscriptions,
// MaxSubscriptionBytes, and MaxWildcardLevels, which bounds the matching
// work a session adds to every PUBLISH), what a connection is owed of
// retained messages (MaxRetainedOwed) and user properties per message.
//
// # Limits and hostile input
//
// Connection limits (total, per source address, new connections per
// second per address) are checked by Broker.Admit, which the transport
// calls when it accepts a connection; it is safe for concurrent use and
// keeps per-address state in a sharded map (limits.go). Every other
// limit is checked on the connection's loop with loop-owned state: the
// publish rate buckets of a Client, the subscription count and queued
// bytes of a Session. A protocol violation or a limit closes only that
// connection, with a v5 reason code where the protocol has one, and a
// throttled log line naming the client, its address and the rule.
package broker
