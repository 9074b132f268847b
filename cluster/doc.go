// Package cluster joins mcutie nodes into one broker over an embedded
// NATS server per node (docs/clustering.md says why NATS and what is
// built so far).
//
// Each node runs github.com/nats-io/nats-server/v2 in process: its routes
// (--cluster-listen, --cluster-join) are the links between nodes, and the
// broker talks to it through an in-process connection; its client port
// listens on loopback only, behind a random token.
//
// # What crosses
//
// Interest, not subscriptions: each node announces the set of filters its
// sessions hold (mcutie.interest), in full when it changes and as a
// version number in a heartbeat every HeartbeatInterval; a node that sees
// a version it does not have asks for the set. Each node keeps the others'
// sets in one topic index (router.Shard, node ids as keys) and forwards a
// message only to the nodes with a matching filter (mcutie.msg.<node id>),
// once per node whatever the number of its subscribers. Retained messages
// go to every node with their version, and nodes that meet exchange
// digests of their retained sets (retained.go), so every node's retained
// index converges on the newest message of each topic. A node that
// sends no heartbeat for PeerTimeout is forgotten until it does again.
//
// Shared subscriptions are announced with their member counts; the
// publishing node picks, per message, the one node that serves each
// matching group (weighted by members) and the message names the groups
// each node serves (shared.go).
//
// Matching stays MQTT's own: filters are not translated into NATS
// subjects (MQTT topics may hold '.', spaces and '$' where NATS subjects
// may not).
//
// # Order and back-pressure
//
// Forward runs on the publishing event loop. It encodes the message once
// and puts it on a bounded queue (Options.QueueSize; full: dropped and
// counted as mcutie_cluster_dropped_messages_total); one sender goroutine
// publishes the queue in order over the one NATS connection, so one
// publisher's messages reach a node in the order they were published, and
// that node routes everything from one peer on one of its loops, in order.
//
// # Concurrency
//
// Forward and Interest are safe for concurrent use and never block. The
// remote interest index is immutable once published (an atomic pointer,
// rebuilt on change), so matching takes no lock.
package cluster
