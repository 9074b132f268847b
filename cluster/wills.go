package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/nats-io/nats.go/jetstream"
)

// Wills once cluster-wide (docs/clustering.md, "Wills").
//
// Every will a connection sets is copied into the JetStream KV bucket
// mcutie_wills (the owners bucket's replicas, so every write needs a
// quorum) under w.<node>.<client key>; the copy is updated when its
// connection ends and a delay runs, and deleted when the will goes
// without being published (DISCONNECT 0x00, the session resumed or moved,
// and so on). A will is published by whoever deletes its copy at the
// revision it read (compare-and-delete): the node that holds it when it
// is due, or, when that node is lost, one of the others; the delete can
// succeed once, so the will is published once.
//
// Each node writes its liveness, n.<node> = up, every willBeat, and left
// on a graceful leave (Leave: it comes back and publishes its own). A
// node whose liveness did not change for WillAfter, while this node held
// a quorum all along, is lost: the others read its will copies and
// publish each at its due time, the lowest node id first, the next one
// willGrace later should the first not have done it, and so on.
//
// A node that restarts reads its own copies left from before: those of
// the sessions it restored with a will stay, and its restored wills are
// published only if their copy is still there (another node may have
// published them while it was down); the others (their sessions ended
// with the crash) it publishes at their due time, as a surviving node
// would.
//
// Concurrency: WillSet, WillGone and WillFire queue an operation on one
// of willShards workers, picked by the client id, so one id's operations
// run in order; each worker owns its shard's entries. The keeper
// goroutine (keepWills) binds the bucket, writes the liveness, reads its
// own copies once and decides which nodes are lost; lost.mu guards what
// it shares with the workers and the liveness polls.

const (
	bucketWills = "mcutie_wills"
	// DefaultWillAfter is how long a node must be unheard before the
	// others publish its wills (Options.WillAfter).
	DefaultWillAfter = 10 * time.Second
	willShards       = 4
	willQueue        = 4096 // operations waiting per shard
	willBeat         = time.Second
	// willGrace is how long each node waits after the one ranked before
	// it to publish a lost node's will: one node does it, not all of them
	// at once, yet a second one steps in should the first die too.
	willGrace = 2 * time.Second
	// willTimeout bounds one KV call of the wills.
	willTimeout = 2 * time.Second
	// willEndSlack is how long after its last liveness write a lost node
	// is taken to have ended (its connections with it): the writes are
	// willBeat apart, checked every willBeat/2, so a delayed will is not
	// published before its delay has passed since the node died.
	willEndSlack = willBeat + willBeat/2
)

// willOpKind is what a worker does for one client id.
type willOpKind uint8

const (
	willSet   willOpKind = iota // copy the will into the bucket
	willGone                    // delete the copy: the will went unpublished
	willFire                    // the will is due here: publish it if this node wins its copy
	willAdopt                   // a copy of this node left from before it restarted
)

type willOp struct {
	kind willOpKind
	id   string
	rec  *broker.WillRecord // willSet
	fire func(bool)         // willFire
	left *lostWill          // willAdopt
}

// willEntry is what a worker knows of one client id's copy.
type willEntry struct {
	rev   uint64 // the copy's revision (0: not in the bucket)
	local bool   // the copy could not be written: published here without asking
}

type willShard struct {
	ops     chan willOp
	entries map[string]*willEntry // worker only
	// firedLocal: published without the bucket (this node alone) before
	// its old copies were read: their copies are deleted, not published.
	firedLocal map[string]bool // worker only
	mu         sync.Mutex
	overflow   map[string]bool // WillSet not queued (full): published here without asking
}

// lostWill is a copy this node may publish: of a lost node, or of its own
// previous run.
type lostWill struct {
	key    string
	node   string
	client string
	rev    uint64
	epoch  int64 // the run of the node that wrote it
	due    time.Time
	rec    broker.WillRecord
}

// liveNode is what this node saw of another's liveness.
type liveNode struct {
	seen time.Time // when it last changed, by this node's clock
	left bool      // it said it left (graceful): it publishes its own
	rev  uint64    // its liveness key's revision then
}

type willsState struct {
	on     bool
	kv     atomic.Pointer[jetstream.KeyValue]
	shards [willShards]willShard
	ready  chan struct{} // closed once this node's old copies were read
	quorum atomic.Bool   // the last liveness write succeeded

	beatMu sync.Mutex // the liveness writes (beatWills, leaveWills)
	left   bool       // Leave was called (beatMu)

	lost struct {
		mu       sync.Mutex
		live     map[string]*liveNode
		nodes    map[string]time.Time // lost nodes → their last liveness
		pending  map[string]*lostWill // by key
		prevBeat time.Time            // this node's last liveness before it restarted
	}

	replicated, failed, fired, firedLost, skipped atomic.Uint64
	held                                          atomic.Int64 // copies of this node's wills in the bucket
}

// initWills sets the wills' state up (New).
func (n *Node) initWills() {
	w := &n.wills
	w.on = n.o.Ownership && n.o.WillAfter > 0
	w.ready = make(chan struct{})
	for i := range w.shards {
		w.shards[i] = willShard{ops: make(chan willOp, willQueue), entries: map[string]*willEntry{}, firedLocal: map[string]bool{}, overflow: map[string]bool{}}
	}
	w.lost.live = map[string]*liveNode{}
	w.lost.nodes = map[string]time.Time{}
	w.lost.pending = map[string]*lostWill{}
}

// ReplicatesWills implements broker.WillPeers: wills are replicated with
// session ownership (the bucket lives in the same JetStream) and a
// positive WillAfter.
func (n *Node) ReplicatesWills() bool { return n.wills.on }

func (n *Node) willShard(id string) *willShard {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &n.wills.shards[h.Sum32()%willShards]
}

func (n *Node) stopped() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}

// WillSet implements broker.WillPeers. Never blocks: a full queue leaves
// the will unreplicated (published here without asking, counted).
func (n *Node) WillSet(id string, w *broker.WillRecord) {
	sh := n.willShard(id)
	select {
	case sh.ops <- willOp{kind: willSet, id: id, rec: w}:
	default:
		n.wills.failed.Add(1)
		sh.mu.Lock()
		sh.overflow[id] = true
		sh.mu.Unlock()
	}
}

// WillGone implements broker.WillPeers. Never blocks: a full queue
// leaves the copy (should this node die, the will is published by
// another: counted as failed).
func (n *Node) WillGone(id string) {
	select {
	case n.willShard(id).ops <- willOp{kind: willGone, id: id}:
	default:
		n.wills.failed.Add(1)
	}
}

// WillFire implements broker.WillPeers. Never blocks: with a full queue
// the will is published here without asking (at least once, rather than
// not at all); after Stop it is not (this node is gone from the cluster:
// the others publish it).
func (n *Node) WillFire(id string, fire func(bool)) {
	if n.stopped() {
		go fire(false)
		return
	}
	select {
	case n.willShard(id).ops <- willOp{kind: willFire, id: id, fire: fire}:
	default:
		n.wills.failed.Add(1)
		go fire(true)
	}
}

// willKey is the key of client id's will copy held by node.
func willKey(node, id string) string { return "w." + node + "." + ownerKey(id) }

func liveKey(node string) string { return "n." + node }

// willWorker applies one shard's operations in order until Stop, then
// answers what is left (not published here).
func (n *Node) willWorker(sh *willShard) {
	defer n.wg.Done()
	for {
		select {
		case op := <-sh.ops:
			n.applyWillOp(sh, op)
		case <-n.stop:
			for {
				select {
				case op := <-sh.ops:
					if op.kind == willFire {
						op.fire(false)
					}
				default:
					return
				}
			}
		}
	}
}

// willKV waits until the bucket can be used for this node's wills: its
// old copies were read (kv set), or this node is alone (nil: no bucket,
// wills stay local). false: stopping.
func (n *Node) willKV() (jetstream.KeyValue, bool) {
	for {
		select {
		case <-n.wills.ready:
			return *n.wills.kv.Load(), true
		default:
		}
		if n.alone() {
			return nil, true
		}
		select {
		case <-n.wills.ready:
		case <-time.After(50 * time.Millisecond):
		case <-n.stop:
			return nil, false
		}
	}
}

// setEntry records id's entry (worker only), counting the copies held.
func (n *Node) setEntry(sh *willShard, id string, e *willEntry) {
	if old := sh.entries[id]; old != nil && old.rev != 0 {
		n.wills.held.Add(-1)
	}
	if e.rev != 0 {
		n.wills.held.Add(1)
	}
	sh.entries[id] = e
}

// takeEntry removes and returns id's entry (worker only).
func (n *Node) takeEntry(sh *willShard, id string) *willEntry {
	e := sh.entries[id]
	if e != nil {
		delete(sh.entries, id)
		if e.rev != 0 {
			n.wills.held.Add(-1)
		}
	}
	return e
}

// willsReady waits until this node's old copies were read (false:
// stopping).
func (n *Node) willsReady() (jetstream.KeyValue, bool) {
	select {
	case <-n.wills.ready:
		return *n.wills.kv.Load(), true
	case <-n.stop:
		return nil, false
	}
}

func (n *Node) applyWillOp(sh *willShard, op willOp) {
	kv, ok := n.willKV()
	if !ok {
		if op.kind == willFire {
			op.fire(false)
		}
		return
	}
	key := willKey(n.o.NodeID, op.id)
	switch op.kind {
	case willSet:
		sh.mu.Lock()
		delete(sh.overflow, op.id)
		sh.mu.Unlock()
		if kv == nil {
			n.setEntry(sh, op.id, &willEntry{local: true})
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		rev, err := kv.Put(ctx, key, encodeWill(nil, n.o.NodeID, n.epoch, op.id, op.rec))
		cancel()
		if err != nil {
			n.wills.failed.Add(1)
			n.setEntry(sh, op.id, &willEntry{local: true})
			return
		}
		n.wills.replicated.Add(1)
		n.setEntry(sh, op.id, &willEntry{rev: rev})
	case willGone:
		e := n.takeEntry(sh, op.id)
		if kv == nil || e == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		if e.rev != 0 {
			// Another node may have published it (this one lost): then
			// the revision moved on and nothing is deleted.
			_ = kv.Delete(ctx, key, jetstream.LastRevision(e.rev))
		} else {
			_ = kv.Delete(ctx, key) // a write that failed may have happened
		}
		cancel()
	case willFire:
		e := n.takeEntry(sh, op.id)
		sh.mu.Lock()
		over := sh.overflow[op.id]
		delete(sh.overflow, op.id)
		sh.mu.Unlock()
		if kv == nil && e == nil && !over {
			// A restored will, this node alone: whether another node
			// published it while this one was down only the bucket
			// knows, so it waits for it (for the cluster to be back).
			if kv, ok = n.willsReady(); !ok {
				op.fire(false)
				return
			}
		}
		switch {
		case over || e != nil && e.local:
			if kv == nil {
				sh.firedLocal[op.id] = true
			}
			n.wills.fired.Add(1)
			op.fire(true)
		case e == nil:
			// Its copy is gone: another node published it while this
			// one was down (a restored will), or it was never written.
			n.wills.skipped.Add(1)
			op.fire(false)
		default:
			won := n.winWill(kv, key, e.rev)
			if won {
				n.wills.fired.Add(1)
			} else {
				n.wills.skipped.Add(1)
			}
			op.fire(won)
		}
	case willAdopt:
		lw := op.left
		if sh.firedLocal[op.id] {
			delete(sh.firedLocal, op.id)
			ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
			_ = kv.Delete(ctx, lw.key, jetstream.LastRevision(lw.rev))
			cancel()
			return
		}
		if sh.entries[op.id] != nil {
			return // set again in this run: that copy replaced this one
		}
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		has, err := n.b.HasWill(ctx, op.id)
		cancel()
		if err == nil && has {
			// A session restored with its will: published by the broker
			// when due, if this copy is still there then.
			n.setEntry(sh, op.id, &willEntry{rev: lw.rev})
			return
		}
		// Its session ended with this node's previous run: published
		// here at its due time, as another node would have.
		n.wills.lost.mu.Lock()
		n.wills.lost.pending[lw.key] = lw
		n.wills.lost.mu.Unlock()
	}
}

// winWill deletes key at rev; true: this node publishes the will. Without
// a quorum it tries again until the bucket answers (or Stop: false).
func (n *Node) winWill(kv jetstream.KeyValue, key string, rev uint64) bool {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		err := kv.Delete(ctx, key, jetstream.LastRevision(rev))
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			return false
		}
		select {
		case <-time.After(kvProbe):
		case <-n.stop:
			return false
		}
	}
}

// keepWills binds the wills bucket, writes this node's liveness, reads
// its old copies once, and publishes the wills of lost nodes when due,
// until Stop.
func (n *Node) keepWills() {
	defer n.wg.Done()
	t := time.NewTicker(willBeat / 2)
	defer t.Stop()
	var quorumSince time.Time
	var lastRaise time.Time
	polls := 0
	beat := encodeLive(true, n.epoch)
	nextBeat := time.Time{}
	prevRead := false
	for {
		select {
		case <-t.C:
		case <-n.stop:
			return
		}
		if n.alone() {
			continue
		}
		kvp := n.wills.kv.Load()
		if kvp == nil {
			kv := n.bindWills()
			if kv == nil {
				continue
			}
			n.wills.kv.Store(&kv)
			kvp = &kv
		}
		kv := *kvp
		now := time.Now()
		if now.After(nextBeat) {
			nextBeat = now.Add(willBeat)
			if !prevRead {
				// Before this run's first liveness replaces it.
				if prevRead = n.readPrevBeat(kv); !prevRead {
					continue
				}
			}
			err := n.beatWills(kv, beat)
			if err != nil {
				quorumSince = time.Time{}
				n.wills.quorum.Store(false)
			} else {
				if quorumSince.IsZero() {
					quorumSince = now
				}
				n.wills.quorum.Store(true)
			}
			if err == nil && now.Sub(lastRaise) > 5*time.Second {
				lastRaise = now
				n.raiseWillReplicas(kv)
			}
		}
		if quorumSince.IsZero() {
			continue
		}
		polls++
		n.pollLiveness(kv, polls%livenessList == 1)
		select {
		case <-n.wills.ready:
		default:
			if n.adoptOwn(kv) {
				close(n.wills.ready)
			}
			continue
		}
		n.findLost(kv, quorumSince)
		n.fireDue(kv)
	}
}

// bindWills finds the wills bucket or creates it; nil while JetStream
// cannot tell.
func (n *Node) bindWills() jetstream.KeyValue {
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	kv, err := n.own.js.KeyValue(ctx, bucketWills)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = n.own.js.CreateKeyValue(ctx, n.willsConfig(n.replicasNow()))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = n.own.js.KeyValue(ctx, bucketWills)
		}
	}
	if err != nil {
		return nil
	}
	return kv
}

func (n *Node) willsConfig(replicas int) jetstream.KeyValueConfig {
	cfg := n.bucketConfig(replicas)
	cfg.Bucket, cfg.Description = bucketWills, "mcutie: the wills of connected clients, published once cluster-wide"
	return cfg
}

// raiseWillReplicas raises the bucket's replicas as nodes join, as for
// the owners bucket.
func (n *Node) raiseWillReplicas(kv jetstream.KeyValue) {
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo().Config.Replicas >= n.replicasNow() {
		return
	}
	_, _ = n.own.js.UpdateKeyValue(ctx, n.willsConfig(n.replicasNow()))
}

// readPrevBeat remembers when this node's previous run last wrote its
// liveness (its old copies are due from then on).
// false: the bucket did not answer (try again).
func (n *Node) readPrevBeat(kv jetstream.KeyValue) bool {
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	e, err := kv.Get(ctx, liveKey(n.o.NodeID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true // the first run of this node id
	}
	if err != nil {
		return false
	}
	if _, epoch, ok := decodeLive(e.Value()); ok && epoch != n.epoch {
		n.wills.lost.mu.Lock()
		n.wills.lost.prevBeat = e.Created()
		n.wills.lost.mu.Unlock()
	}
	return true
}

// pollLiveness reads each node's liveness key and notes, by this node's
// clock, when its revision last changed. Keys are listed anew every
// livenessList polls (a node that joined); in between only the known
// ones are read. Reads, not a watch: a watch's consumer lives on one
// server, and was seen to stall for seconds when that server left,
// which made every node look lost.
func (n *Node) pollLiveness(kv jetstream.KeyValue, list bool) {
	ls := &n.wills.lost
	ls.mu.Lock()
	ids := make([]string, 0, len(ls.live))
	for id := range ls.live {
		ids = append(ids, id)
	}
	ls.mu.Unlock()
	if list || len(ids) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		if kl, err := kv.ListKeysFiltered(ctx, "n.*"); err == nil {
			ids = ids[:0]
			for k := range kl.Keys() {
				ids = append(ids, strings.TrimPrefix(k, "n."))
			}
		}
		cancel()
	}
	for _, id := range ids {
		if id == n.o.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		e, err := kv.Get(ctx, liveKey(id))
		cancel()
		if err != nil {
			continue // unknown now: judged on what was seen
		}
		up, _, ok := decodeLive(e.Value())
		if !ok {
			continue
		}
		ls.mu.Lock()
		ln := ls.live[id]
		if ln == nil || ln.rev != e.Revision() {
			ls.live[id] = &liveNode{seen: time.Now(), left: !up, rev: e.Revision()}
		}
		ls.mu.Unlock()
	}
}

// livenessList is how many liveness polls pass between two listings of
// the liveness keys.
const livenessList = 10

// readWills reads the copies under prefix (w.<node>.).
func readWills(kv jetstream.KeyValue, node string) ([]*lostWill, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*willTimeout)
	defer cancel()
	w, err := kv.Watch(ctx, "w."+node+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []*lostWill
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, errors.New("cluster: wills watch closed")
			}
			if e == nil {
				return out, nil // the initial values are all in
			}
			wr, err := decodeWill(e.Value())
			if err != nil {
				continue
			}
			out = append(out, &lostWill{key: e.Key(), node: wr.node, client: wr.client, rev: e.Revision(), rec: wr.rec, epoch: wr.epoch})
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// adoptOwn reads this node's copies left from before it restarted and
// hands each to its shard (willAdopt); true once done.
func (n *Node) adoptOwn(kv jetstream.KeyValue) bool {
	ws, err := readWills(kv, n.o.NodeID)
	if err != nil {
		return false
	}
	n.wills.lost.mu.Lock()
	prev := n.wills.lost.prevBeat
	n.wills.lost.mu.Unlock()
	if prev.IsZero() {
		prev = time.Now()
	}
	for _, lw := range ws {
		if lw.epoch == n.epoch {
			continue // written in this run
		}
		lw.due = willDue(&lw.rec, prev.Add(willEndSlack))
		sh := n.willShard(lw.client)
		select {
		case sh.ops <- willOp{kind: willAdopt, id: lw.client, left: lw}:
		case <-n.stop:
			return false
		}
	}
	return true
}

// willDue is when a will whose node ended at end is due: its time if it
// was pending, else after the smaller of its delay and its session's
// expiry (MQTT 5 §3.1.3.2.2).
func willDue(r *broker.WillRecord, end time.Time) time.Time {
	if r.At != 0 {
		return time.Unix(0, r.At)
	}
	return end.Add(time.Duration(min(r.Delay, r.SessionExpiry)) * time.Second)
}

// findLost marks the nodes whose liveness did not change for WillAfter
// (while this node held a quorum all along) as lost and reads their
// wills; a node heard again is lost no more.
func (n *Node) findLost(kv jetstream.KeyValue, quorumSince time.Time) {
	now := time.Now()
	var newly []string
	ls := &n.wills.lost
	ls.mu.Lock()
	for id, ln := range ls.live {
		if id == n.o.NodeID {
			continue
		}
		seen := ln.seen
		if seen.Before(quorumSince) {
			seen = quorumSince // not watched before then: not judged before then
		}
		_, isLost := ls.nodes[id]
		// A node that left gracefully publishes its own wills when it
		// is back; one that stays away longer than the others hold its
		// messages for (--cluster-hold) is not coming back soon: its
		// pending wills are published for it, as for a lost node.
		fresh := now.Sub(seen) <= n.o.WillAfter || ln.left && now.Sub(seen) <= n.leftGrace()
		switch {
		case fresh && isLost:
			delete(ls.nodes, id)
			for k, lw := range ls.pending {
				if lw.node == id {
					delete(ls.pending, k)
				}
			}
			n.log.Info("cluster: lost node heard again; it publishes its own wills", "peer", id)
		case !fresh && !isLost:
			ls.nodes[id] = ln.seen
			newly = append(newly, id)
		}
	}
	ls.mu.Unlock()
	for _, id := range newly {
		ws, err := readWills(kv, id)
		if err != nil {
			ls.mu.Lock()
			delete(ls.nodes, id) // read again next time
			ls.mu.Unlock()
			continue
		}
		ls.mu.Lock()
		end := ls.nodes[id].Add(willEndSlack)
		for _, lw := range ws {
			lw.due = willDue(&lw.rec, end)
			ls.pending[lw.key] = lw
		}
		ls.mu.Unlock()
		n.log.Warn("cluster: node lost (liveness unchanged for --cluster-will-after); publishing its wills when due", "peer", id, "wills", len(ws), "after", n.o.WillAfter)
	}
}

// leftGrace is how long a node that left gracefully may stay away
// before its pending wills are published by the others: the hold's time
// (DefaultHold's with the hold off), at least WillAfter.
func (n *Node) leftGrace() time.Duration {
	g := n.o.Hold
	if g <= 0 {
		g = DefaultHold
	}
	return max(g, n.o.WillAfter)
}

// rankLocked is this node's place among the nodes alive (lowest id
// first): how many willGrace it waits before publishing a lost node's
// will. lost.mu held.
func (n *Node) rankLocked() int {
	ids := []string{n.o.NodeID}
	for id, ln := range n.wills.lost.live {
		if _, lost := n.wills.lost.nodes[id]; !lost && !ln.left && id != n.o.NodeID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return sort.SearchStrings(ids, n.o.NodeID)
}

// fireDue publishes the due wills this node may publish and wins.
func (n *Node) fireDue(kv jetstream.KeyValue) {
	now := time.Now()
	ls := &n.wills.lost
	ls.mu.Lock()
	wait := time.Duration(n.rankLocked()) * willGrace
	var due []*lostWill
	for _, lw := range ls.pending {
		at := lw.due
		if lw.node != n.o.NodeID {
			at = at.Add(wait)
		}
		if !now.Before(at) {
			due = append(due, lw)
		}
	}
	ls.mu.Unlock()
	for _, lw := range due {
		ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
		err := kv.Delete(ctx, lw.key, jetstream.LastRevision(lw.rev))
		cancel()
		switch {
		case err == nil:
			msg := lw.rec.Msg
			if perr := n.b.PublishWill(lw.client, &msg); perr != nil {
				n.log.Warn("cluster: a lost node's will could not be published", "client", lw.client, "peer", lw.node, "err", perr)
			}
			n.wills.fired.Add(1)
			n.wills.firedLost.Add(1)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			n.wills.skipped.Add(1) // another node published it, or its node is back
		default:
			continue // no quorum now: again next time
		}
		ls.mu.Lock()
		delete(ls.pending, lw.key)
		ls.mu.Unlock()
	}
}

// errLeft: this node left; its liveness says so and is not written up
// again.
var errLeft = errors.New("cluster: left")

// beatWills writes this node's liveness, unless it left (leaveWills):
// the two writes never cross (beatMu).
func (n *Node) beatWills(kv jetstream.KeyValue, beat []byte) error {
	n.wills.beatMu.Lock()
	defer n.wills.beatMu.Unlock()
	if n.wills.left {
		return errLeft
	}
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	_, err := kv.Put(ctx, liveKey(n.o.NodeID), beat)
	return err
}

// leaveWills says this node left gracefully: the others do not publish
// its wills (it publishes those its closes make due, and its pending ones
// when it is back). Its liveness is not written up again in this run.
func (n *Node) leaveWills() {
	if !n.wills.on {
		return
	}
	n.wills.beatMu.Lock()
	defer n.wills.beatMu.Unlock()
	n.wills.left = true
	kvp := n.wills.kv.Load()
	if kvp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	if _, err := (*kvp).Put(ctx, liveKey(n.o.NodeID), encodeLive(false, n.epoch)); err != nil {
		n.log.Warn("cluster: could not say this node left to the wills bucket; the others may publish its wills after --cluster-will-after", "err", err)
	}
}

// ---- the records ----

const willVersion = 1

var errWillRecord = errors.New("cluster: malformed will record")

// decodedWill is a will copy as read back.
type decodedWill struct {
	node, client string
	epoch        int64
	rec          broker.WillRecord
}

// encodeWill: version (1) | varint epoch | node | client | flags (bit 0-1
// QoS, bit 2 retain) | uvarint delay | uvarint session expiry | varint at
// | varint created | varint expireAt | topic | payload | props; strings
// and byte fields a uvarint length and their bytes. epoch is the run of
// the node that wrote it (a restarted node tells its old copies from its
// new ones).
func encodeWill(dst []byte, node string, epoch int64, client string, w *broker.WillRecord) []byte {
	dst = append(dst, willVersion)
	dst = binary.AppendVarint(dst, epoch)
	dst = appendField(dst, []byte(node))
	dst = appendField(dst, []byte(client))
	flags := w.Msg.QoS & 3
	if w.Msg.Retain {
		flags |= 4
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(w.Delay))
	dst = binary.AppendUvarint(dst, uint64(w.SessionExpiry))
	dst = binary.AppendVarint(dst, w.At)
	dst = binary.AppendVarint(dst, w.Msg.Created)
	dst = binary.AppendVarint(dst, w.Msg.ExpireAt)
	dst = appendField(dst, w.Msg.Topic)
	dst = appendField(dst, w.Msg.Payload)
	return appendField(dst, w.Msg.Props)
}

func appendField(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// willReader reads encodeWill's fields; the first error sticks.
type willReader struct {
	b   []byte
	err bool
}

func (r *willReader) uvarint() uint64 {
	v, w := binary.Uvarint(r.b)
	if w <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *willReader) varint() int64 {
	v, w := binary.Varint(r.b)
	if w <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *willReader) field() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	f := r.b[:n:n]
	r.b = r.b[n:]
	return f
}

// decodeWill parses a will copy; it never panics, and what it returns
// does not alias b beyond the byte fields of the message (sub-slices).
func decodeWill(b []byte) (decodedWill, error) {
	var d decodedWill
	if len(b) < 1 || b[0] != willVersion {
		return d, errWillRecord
	}
	r := willReader{b: b[1:]}
	d.epoch = r.varint()
	node := r.field()
	client := r.field()
	if r.err || len(r.b) < 1 {
		return d, errWillRecord
	}
	flags := r.b[0]
	r.b = r.b[1:]
	delay, expiry := r.uvarint(), r.uvarint()
	d.rec.At = r.varint()
	d.rec.Msg.Created = r.varint()
	d.rec.Msg.ExpireAt = r.varint()
	d.rec.Msg.Topic = r.field()
	d.rec.Msg.Payload = r.field()
	d.rec.Msg.Props = r.field()
	if r.err || len(r.b) != 0 || flags&^7 != 0 || flags&3 == 3 || delay > 1<<32-1 || expiry > 1<<32-1 || !validNodeID(string(node)) {
		return decodedWill{}, errWillRecord
	}
	d.node, d.client = string(node), string(client)
	d.rec.Msg.QoS, d.rec.Msg.Retain = flags&3, flags&4 != 0
	d.rec.Delay, d.rec.SessionExpiry = uint32(delay), uint32(expiry)
	if len(d.rec.Msg.Props) == 0 {
		d.rec.Msg.Props = nil
	}
	return d, nil
}

// encodeLive is a liveness value: version | state (1 up, 0 left) | varint epoch.
func encodeLive(up bool, epoch int64) []byte {
	st := byte(0)
	if up {
		st = 1
	}
	return binary.AppendVarint([]byte{willVersion, st}, epoch)
}

func decodeLive(b []byte) (up bool, epoch int64, ok bool) {
	if len(b) < 3 || b[0] != willVersion || b[1] > 1 {
		return false, 0, false
	}
	e, w := binary.Varint(b[2:])
	if w <= 0 || w != len(b)-2 {
		return false, 0, false
	}
	return b[1] == 1, e, true
}

// ---- metrics ----

var (
	metricWillsRepl     = promtext.Counter("mcutie_cluster_wills_replicated_total", "Wills copied into the cluster's wills bucket (set by a CONNECT, or pending after their connection ended).")
	metricWillsFailed   = promtext.Counter("mcutie_cluster_wills_replication_failed_total", "Will operations that could not reach the wills bucket (no quorum, or a full queue): such a will is published by this node without asking, and would be lost with it.")
	metricWillsFired    = promtext.Counter("mcutie_cluster_wills_fired_total", "Wills this node published after winning their copy (its own, and those of lost nodes).")
	metricWillsFiredFor = promtext.Counter("mcutie_cluster_wills_fired_for_lost_total", "Wills this node published for a lost node (or for its own previous run, whose sessions ended with it).")
	metricWillsSkipped  = promtext.Counter("mcutie_cluster_wills_not_fired_total", "Wills due here not published because another node already had (their copy was gone).")
	metricWillsHeld     = promtext.Gauge("mcutie_cluster_wills", "Wills of this node's sessions with a copy in the cluster's wills bucket (another node publishes them should this one be lost).")
	metricLostNodes     = promtext.Gauge("mcutie_cluster_lost_nodes", "Nodes whose liveness has not changed for --cluster-will-after: their wills are published by the others.")
)

func (n *Node) writeWillMetrics(w io.Writer) {
	ws := &n.wills
	metricWillsRepl.Write(w, ws.replicated.Load())
	metricWillsFailed.Write(w, ws.failed.Load())
	metricWillsFired.Write(w, ws.fired.Load())
	metricWillsFiredFor.Write(w, ws.firedLost.Load())
	metricWillsSkipped.Write(w, ws.skipped.Load())
	metricWillsHeld.Write(w, uint64(max(ws.held.Load(), 0)))
	ws.lost.mu.Lock()
	lost := len(ws.lost.nodes)
	ws.lost.mu.Unlock()
	metricLostNodes.Write(w, uint64(lost))
}

var _ broker.WillPeers = (*Node)(nil)
