package store

import (
	"errors"
	"fmt"
)

// Durability says when Apply's done callback runs relative to the disk.
type Durability int

const (
	// DurabilityCommit acks after the batch is committed to Badger: the write
	// is in Badger's memory-mapped write-ahead log, so it survives kill -9 of
	// the broker but not the loss of power.
	DurabilityCommit Durability = iota
	// DurabilitySync acks after the batch is msynced to disk (one sync per
	// Badger transaction, and a batch is one transaction unless it exceeds
	// Badger's transaction size limit). It survives power loss.
	DurabilitySync
	// DurabilityNone acks as soon as the committer takes the ops off the
	// queue, before they are written; the write still happens behind.
	DurabilityNone
)

// ParseDurability parses "commit", "sync" or "none".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "commit":
		return DurabilityCommit, nil
	case "sync":
		return DurabilitySync, nil
	case "none":
		return DurabilityNone, nil
	}
	return 0, fmt.Errorf("store: unknown durability %q; want commit, sync or none", s)
}

// String returns the flag spelling of d.
func (d Durability) String() string {
	switch d {
	case DurabilityCommit:
		return "commit"
	case DurabilitySync:
		return "sync"
	case DurabilityNone:
		return "none"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// Message is an application message as the store keeps it.
type Message struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props is the MQTT 5 property block as encoded on the wire; the store
	// does not look inside it.
	Props []byte
	// ExpireAt is in unix nanoseconds; 0 means never. Load skips (and
	// deletes) expired retained messages, wills and queued outbound messages.
	ExpireAt int64
	// Created is in unix nanoseconds.
	Created int64
	// Version and VersionNode order the retained message of one topic
	// across the nodes of a cluster (last writer wins: the higher Version,
	// then the higher VersionNode). 0 (what a single node and records
	// written before clustering have): unversioned. A retained record with
	// a Version and an empty Payload is a tombstone: the topic was cleared
	// at that version (its ExpireAt bounds how long it is kept).
	Version     uint64
	VersionNode []byte
}

// Session is the persistent part of a client session.
type Session struct {
	ClientID string
	Version  byte
	// ExpiryInterval is in seconds; 0xFFFFFFFF means never.
	ExpiryInterval uint32
	// DisconnectedAt is in unix nanoseconds, 0 while connected. Load drops a
	// session, and everything stored under its client id (its will too),
	// once DisconnectedAt+ExpiryInterval has passed: time spent while the
	// broker was down counts.
	DisconnectedAt int64
	// QoS2Mark is the highest Outbound.OriginMark whose inbound QoS 2
	// record this client's session has made durable (see Outbound.Origin).
	QoS2Mark uint64
	// Owner is who created the session, when the broker authenticates
	// clients: another identity may not resume it. OwnerKind says whether
	// there is one (records written before owners were kept have none).
	Owner     string
	OwnerKind OwnerKind
}

// OwnerKind says who owns a Session.
type OwnerKind uint8

const (
	OwnerUnknown   OwnerKind = iota // not recorded: anyone may resume it
	OwnerAnonymous                  // created without a user name
	OwnerUser                       // created by the user named Owner
)

// ExpiryNever is the Session.ExpiryInterval that never expires.
const ExpiryNever = 0xFFFFFFFF

// Subscription is one subscription of a session.
type Subscription struct {
	ClientID          string
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32
}

// Outbound is one outbound QoS 1/2 message of a session, in flight or
// queued; Seq orders them per client (monotonic, chosen by the broker).
type Outbound struct {
	ClientID string
	Seq      uint64
	PacketID uint16 // 0 while queued (not yet sent)
	// State is OutboundQueued, OutboundSent or OutboundReleased.
	State byte
	Msg   Message
	// Origin and OriginMark name the publisher of a QoS 2 message that
	// came from a persistent session, and the broker-wide mark its
	// publish was given. A message is delivered at most once per
	// subscriber only if its publisher's inbound record is durable: Load's
	// caller drops a record whose OriginMark is above the publisher's
	// Session.QoS2Mark (the publisher never got PUBREC and will resend).
	// Empty Origin: always kept.
	Origin     string
	OriginMark uint64
}

// Outbound states.
const (
	OutboundQueued   = 0 // not yet sent; dropped by Load once Msg.ExpireAt passed
	OutboundSent     = 1 // sent, awaiting PUBACK / PUBREC
	OutboundReleased = 2 // PUBREC received, awaiting PUBCOMP; the body may be empty
)

// InboundQoS2 is a received QoS 2 packet id awaiting PUBREL.
type InboundQoS2 struct {
	ClientID string
	PacketID uint16
}

// Will is a will message waiting to be published.
type Will struct {
	ClientID  string
	Msg       Message
	PublishAt int64 // unix ns
}

// Delayed is a message published to $delayed/{seconds}/{topic}, kept until
// PublishAt (docs/delivery.md). Msg.Topic is the target topic.
type Delayed struct {
	ID        uint64 // chosen by the broker, unique among stored delayed messages
	PublishAt int64  // unix ns
	// Origin is the client id of the publisher, for logs and the embedding
	// API; it may be empty.
	Origin string
	Msg    Message
}

// Op is one change. Exactly one of the pointer fields is set; Delete means
// remove that record, and for a delete only the key fields are read
// (Session.ClientID; Sub.ClientID and Filter; Outbound.ClientID and Seq;
// Inbound.ClientID and PacketID; Retained.Topic; Will.ClientID; Delayed.ID
// and PublishAt).
type Op struct {
	Delete bool
	// Session: deleting a session also deletes all its subscriptions,
	// outbound and inbound records and its will, as they stood before this
	// op; records written after it, in the same Apply or a later one, stay.
	Session  *Session
	Sub      *Subscription
	Outbound *Outbound
	Inbound  *InboundQoS2
	Retained *Message // keyed by Topic
	Will     *Will
	Delayed  *Delayed
}

// Store is durable broker state.
type Store interface {
	// Apply submits ops as one unit. Safe for concurrent use; never blocks on
	// disk.
	//
	// The ops of one call are written in the same Badger transaction (unless
	// they alone exceed Badger's transaction size limit), and calls are
	// applied in the order they were made. Apply copies what it needs before
	// it returns, so the caller may reuse every slice at once.
	//
	// done(err) is called exactly once, when the ops are durable as the
	// durability mode says (DurabilityNone: as soon as the committer takes
	// them, before the write), and in the order of the Apply calls. Where
	// it runs is fixed per store and told by DoneInline: either always on
	// the caller's goroutine before Apply returns (Memory), or always on a
	// store goroutine, possibly before Apply has returned (Badger); never a
	// mix. On a store goroutine it must not block: post the result to the
	// owning loop. done may be nil.
	//
	// Apply returns, without calling done, ErrQueueFull when the bounded
	// commit queue is full, ErrClosed after Close, and an error wrapping
	// ErrInvalidOp or ErrTooLarge for an op it cannot store.
	Apply(ops []Op, done func(error)) error
	// DoneInline reports where Apply calls done: true, on the caller's
	// goroutine before Apply returns; false, on a store goroutine.
	DoneInline() bool
	// Load streams all non-expired state, in key order: sessions, then
	// subscriptions, outbound (by client id, then Seq), inbound, retained
	// messages, wills, delayed messages (by PublishAt). Expired records are skipped and deleted. Not safe for
	// concurrent use with Apply; it waits for earlier Apply calls to be
	// written. The visited values are owned by the caller. A nil callback
	// skips that record type. A record that cannot be decoded stops Load
	// with an error naming its key.
	Load(v Visitor) error
	// Stats returns counters for metrics. Safe for concurrent use.
	Stats() Stats
	// Healthy reports why the store cannot take writes right now: ErrClosed
	// after Close, or the error of the last commit when it failed (a later
	// successful commit clears it). nil means healthy. Readiness probes
	// (/readyz) call it. Safe for concurrent use.
	Healthy() error
	// Close flushes the queue, commits, and closes. Call it once; later
	// calls return ErrClosed.
	Close() error
}

// Visitor receives the records Load streams.
type Visitor struct {
	Session  func(Session)
	Sub      func(Subscription)
	Outbound func(Outbound)
	Inbound  func(InboundQoS2)
	Retained func(Message)
	Will     func(Will)
	Delayed  func(Delayed)
}

// Stats are the store's counters.
type Stats struct {
	QueueLen, QueueCap int    // ops waiting for the committer, and the bound
	Batches            uint64 // batches committed (one or more Badger txns each)
	Ops                uint64 // ops committed
	Errors             uint64 // failed batches (done got the error)
	Rejected           uint64 // ops refused with ErrQueueFull
	LastBatchOps       int    // ops in the last committed batch
	MaxBatchOps        int    // largest batch so far
	Txns               uint64 // Badger transactions committed
	Syncs              uint64 // disk syncs (DurabilitySync: one per txn)
	InFlight           int    // Badger transactions submitted, not yet done (≤ 2)
	BytesWritten       uint64 // key and value bytes handed to Badger
	GCRuns             uint64 // value-log GC rewrites that reclaimed a file
	// CommitSeconds is the time batches took to commit, in all (the
	// mean latency over an interval: its growth over Batches').
	CommitSeconds float64
}

// Errors returned by Apply.
var (
	// ErrQueueFull is returned by Apply when the bounded commit queue is full.
	ErrQueueFull = errors.New("store: commit queue full")
	// ErrClosed is returned by Apply and Load after Close, and by a second Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidOp is wrapped by Apply's error for an op that is malformed:
	// not exactly one record, a client id, filter or topic containing U+0000,
	// an empty topic or filter, or a state or QoS out of range.
	ErrInvalidOp = errors.New("store: invalid op")
	// ErrTooLarge is wrapped by Apply's error for a key or value larger than
	// the store can hold.
	ErrTooLarge = errors.New("store: record too large")
	// ErrCorrupt is wrapped by Load's error for a stored record that cannot
	// be decoded; the error names the key.
	ErrCorrupt = errors.New("store: corrupt record")
)
