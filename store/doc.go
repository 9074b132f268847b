// Package store keeps the broker's durable state: sessions, subscriptions,
// outbound QoS 1/2 messages (in flight or queued), inbound QoS 2 packet ids,
// retained messages, wills and delayed messages ($delayed/…).
//
// It has one job: durable state behind one interface, Store, with two
// implementations. Badger (the embedded default) is Badger v4 behind a
// group-commit queue; Memory keeps the same keys and values in maps, for
// tests and for running without persistence. The store stores opaque bytes
// and plain structs and imports no other mcutie package.
//
// # Concurrency
//
// Apply is safe for concurrent use and never blocks on disk: it validates the
// ops, encodes and copies them into one buffer (so the caller may reuse every
// slice at once) and appends them to a bounded queue under a mutex. When the
// queue is full it returns ErrQueueFull at once, counts the ops in
// mcutie_store_ops_rejected_total and logs (throttled) what to do; the broker
// decides the policy (fail the PUBACK, disconnect, retry).
//
// One committer goroutine owns everything after the queue. It takes whole
// Apply units, up to MaxBatch ops, and writes them into one Badger
// transaction. A batch is written at once when nothing is being written (no
// added latency under light load); while a transaction is being written, the
// next batch fills until it is full or its first op has waited MaxDelay. At
// most two transactions are in flight: Badger's write channel keeps their
// order, and Badger runs in managed mode with the committer choosing the
// commit timestamps, because in normal mode starting a transaction waits for
// every earlier commit. The done callbacks run on the committer, in the order
// of the Apply calls, each exactly once; they must not block (post the result
// to the owning event loop) and must not call Load or Close.
//
// Within one transaction writes are coalesced: the last write per key wins,
// so a message put and then deleted (its PUBACK came within the batch)
// leaves one small delete and its body is never written. The delete is kept,
// not dropped with the put, because the store cannot know whether an older
// version of the key is already on disk. A batch is split into several
// transactions only at Apply boundaries when it exceeds Badger's transaction
// limit (15% of the memtable); a single Apply larger than that is split too,
// and is then not atomic across a crash.
//
// Deleting a session deletes every record of its client (subscriptions,
// outbound, inbound, will) as of that op: earlier writes in the same
// transaction become deletes, and the client's keys on disk are found with a
// prefix scan once the transactions before are written. It does not use
// Badger's DropPrefix, which stops all writes and flushes the memtables.
//
// Load runs at start-up, not concurrently with Apply: it waits for earlier
// Apply calls, streams the records in key order (sessions, subscriptions,
// outbound by client and Seq, inbound, retained, wills, delayed), skips what has
// expired and deletes it in one batch. A session expires once
// DisconnectedAt+ExpiryInterval has passed (downtime counts; a session still
// marked connected has not started to expire), and its subscriptions,
// outbound and inbound records and its will go with it. (A will whose
// session ended while the broker was down was due then [MQTT-3.1.2-8]; the
// broker only restores wills of live sessions, so the store drops it rather
// than keep an orphan.) Retained
// messages, wills and queued (never sent) outbound messages past ExpireAt are
// dropped [MQTT-3.3.2-5]; an outbound message whose delivery started is kept.
//
// # Durability
//
//   - DurabilityCommit (default): done runs once the batch is committed to
//     Badger, that is copied into its memory-mapped write-ahead log. It
//     survives kill -9 of the broker, not the loss of power.
//   - DurabilitySync: Badger runs with SyncWrites, so each transaction is
//     msynced before it completes: one sync per batch, shared by all its
//     ops (mcutie_store_syncs_total). It survives power loss.
//   - DurabilityNone: done runs as soon as the committer takes the ops off
//     the queue, before they are written. A write error is then only logged
//     and counted.
//
// With every mode, Close writes whatever is queued before it returns.
//
// # Keys
//
// One type byte, then for records owned by a client the client id and a 0x00
// separator ([MQTT-1.5.4-2] forbids U+0000 in a client id, so client "ab"
// never shares a key prefix with "ab:x" or "ab\x01"); integers big-endian,
// so keys sort by sequence:
//
//	s<cid>\x00                 session
//	u<cid>\x00<filter>         subscription
//	i<cid>\x00<seq:be64>       outbound message (the packet id is in the value)
//	r<cid>\x00<pid:be16>       inbound QoS 2 id awaiting PUBREL
//	t<topic>                   retained message
//	w<cid>\x00                 will
//	d<at:be64><id:be64>        delayed message, due at unix ns at (not a client's)
//
// The delayed record kind came after the others, in the same format 1: a
// store written before it has no 'd' keys, and a broker older than it
// neither loads nor deletes them, so a downgrade leaves them untouched for
// the next upgrade. Load streams them last, in the order they are due, and
// drops one whose Message Expiry passed (not one merely past its time:
// the broker publishes it at once).
//
// # Values
//
// A small binary encoding whose first byte is the format version (1); a
// decoder refuses any other. Integers are big-endian, lengths unsigned
// varints; a message is flags (QoS, retain), ExpireAt, Created, topic (not
// for retained: it is the key), the MQTT 5 property block as on the wire,
// then the payload as the rest of the value. The layouts are in values.go.
// Decoding never panics: a corrupt value makes Load fail with an error
// wrapping ErrCorrupt that names the key (FuzzDecodeValues checks this).
//
// # Memory and disk
//
// Badger is tuned for a small machine (BUILDING-BLOCKS §2): two 16 MiB
// memtables, two level-0 tables, no compression and no block cache, a
// 16 MiB index cache, two compactors, 64 MiB value-log files. An opened,
// empty store takes about 21 MiB of Go heap (the memtable arena, mostly
// untouched pages: resident memory grows by about 2.5 MiB) and 16
// goroutines (14 of them Badger's). Values under 1 MiB live in the LSM tree,
// so small messages never reach the value log; its GC runs every GCInterval
// and after every GCAfterBytes written. Badger keeps every table and value-log file open:
// the file-descriptor limit must cover them and the connections.
package store
