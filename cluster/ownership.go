package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
	"github.com/nats-io/nats.go/jetstream"
)

// Session ownership (docs/clustering.md, "Session ownership" and
// "Partitions"). Every client id connected in the cluster has one owner,
// kept in a JetStream KV bucket replicated on --cluster-replicas nodes:
// key = the client id (encoded: ownerKey), value = owner node, epoch,
// the previous owner (encodeOwner). A CONNECT claims the key with
// compare-and-set (Create, or Update at the revision read), which needs a
// quorum of the bucket's replicas: on the minority side of a partition
// no claim succeeds, the CONNECT is refused with 0x88 (3.x 0x03) and
// Ready fails. Every node watches the bucket: one that holds a session
// whose key another node owns drops it (the KV is the single source of
// ownership after a partition heals).
//
// Claims run on a bounded pool of goroutines (claimWorkers, a queue of
// claimQueue): the broker's loops never wait on them (broker.SessionClaimer).

const (
	bucketSessions = "mcutie_sessions"
	claimWorkers   = 8
	claimQueue     = 4096
	// kvProbe is how often the bucket's health is checked (Ready, fast
	// refusals) and its replicas raised towards Options.Replicas.
	kvProbe = 500 * time.Millisecond
)

var (
	errNoKV     = errors.New("no quorum for the session owners (the cluster's KV is unavailable)")
	errClaimsQ  = errors.New("too many claims in progress")
	errConflict = errors.New("the client id's owner changed under every attempt")
)

// owner is the value of a key in the owners bucket.
type owner struct {
	Node   string // the node that owns the client id
	Epoch  uint64 // 1 for the first claim, +1 for each claim after
	From   string // the owner before this claim ("" for the first)
	Client string // the client id itself (keys of long ids are hashes)
}

const ownerVersion = 1

// encodeOwner: version (1) | uvarint epoch | node | from | client, each
// string a uvarint length and its bytes.
func encodeOwner(dst []byte, o owner) []byte {
	dst = append(dst, ownerVersion)
	dst = binary.AppendUvarint(dst, o.Epoch)
	for _, s := range []string{o.Node, o.From, o.Client} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

var errOwner = errors.New("cluster: malformed session owner record")

// decodeOwner parses an owners bucket value; it never panics.
func decodeOwner(b []byte) (owner, error) {
	var o owner
	if len(b) < 1 || b[0] != ownerVersion {
		return o, errOwner
	}
	b = b[1:]
	e, w := binary.Uvarint(b)
	if w <= 0 {
		return o, errOwner
	}
	o.Epoch, b = e, b[w:]
	var fields [3]string
	for i := range fields {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return o, errOwner
		}
		fields[i], b = string(b[w:w+int(n)]), b[w+int(n):]
	}
	if len(b) != 0 || fields[0] == "" || !validNodeID(fields[0]) || fields[1] != "" && !validNodeID(fields[1]) {
		return o, errOwner
	}
	o.Node, o.From, o.Client = fields[0], fields[1], fields[2]
	return o, nil
}

// maxPlainKey bounds the client ids whose key is their base64 form; a
// longer one is keyed by its SHA-256 (a subject stays well inside NATS's
// 4 KiB control line).
const maxPlainKey = 512

// ownerKey is client id's key: base64url (letters, digits, '-' and '_',
// all legal in a KV key whatever the id holds), or "h." and the base64url
// SHA-256 of a long id ('.' never occurs in base64url, so the two forms
// never meet).
func ownerKey(id string) string {
	if len(id) <= maxPlainKey {
		return base64.RawURLEncoding.EncodeToString([]byte(id))
	}
	h := sha256.Sum256([]byte(id))
	return "h." + base64.RawURLEncoding.EncodeToString(h[:])
}

// ownership is a node's side of the owners bucket.
type ownership struct {
	js      jetstream.JetStream
	kv      atomic.Pointer[jetstream.KeyValue]
	healthy atomic.Bool // the bucket answered the last probe with a leader
	everOK  atomic.Bool // it was healthy once (before: claims wait for it)
	// routed: this node has had a route to another node since it
	// started (alone: claims).
	routed atomic.Bool

	mu    sync.Mutex
	owned map[string]uint64 // client id → revision of this node's claim

	reqs chan *claimReq

	claims, refused, conflicts, dropped, movedIn, movedOut, moveFailed, moveRefused atomic.Uint64
	seconds                                                                         *promtext.Histogram // claim durations
}

type claimReq struct {
	id    string
	clean bool
	done  func(broker.ClaimResult)
	at    time.Time
}

// Claims implements broker.SessionClaimer: whether CONNECTs claim their
// client id (Options.Ownership).
func (n *Node) Claims() bool { return n.o.Ownership }

// ClaimSession implements broker.SessionClaimer: it queues the claim of
// clientID for the claim workers. Never blocks.
func (n *Node) ClaimSession(clientID string, cleanStart bool, done func(broker.ClaimResult)) error {
	if !n.routing.Load() {
		return errNoKV
	}
	select {
	case n.own.reqs <- &claimReq{id: clientID, clean: cleanStart, done: done, at: time.Now()}:
		return nil
	default:
		n.own.refused.Add(1)
		return errClaimsQ
	}
}

// claimWorker runs queued claims until Stop.
func (n *Node) claimWorker() {
	defer n.wg.Done()
	for {
		select {
		case r := <-n.own.reqs:
			res := n.claim(r)
			n.own.seconds.Observe(time.Since(r.at).Seconds())
			r.done(res)
		case <-n.stop:
			return
		}
	}
}

// claim makes this node the owner of r.id and, when another node owned
// it and the client resumes its session, asks that node for it (move.go).
func (n *Node) claim(r *claimReq) broker.ClaimResult {
	if n.alone() {
		n.own.claims.Add(1)
		return broker.ClaimResult{}
	}
	deadline := r.at.Add(n.o.ClaimTimeout)
	var (
		prev owner
		rev  uint64
		err  error
	)
	for {
		kv := n.waitKV(deadline)
		if kv == nil {
			n.own.refused.Add(1)
			return broker.ClaimResult{Err: errNoKV}
		}
		// An attempt gets a third of ClaimTimeout: a request made while
		// the bucket changed leaders can go unanswered, and the next
		// attempt, to the new leader, is answered at once.
		ctx, cancel := context.WithTimeout(context.Background(), n.o.ClaimTimeout/3)
		prev, rev, err = n.casOwner(ctx, kv, r.id)
		cancel()
		if !errors.Is(err, errNoKV) {
			break
		}
		// The claim is a probe too, and a sooner one: until the next
		// probe says otherwise, /readyz and the owners-ready gauge agree
		// with it.
		n.own.healthy.Store(false)
		if !n.majorityInReach() || !time.Now().Before(deadline) {
			break
		}
		// This node hears a majority: the bucket is electing a leader
		// (its leader's node died or left), which takes seconds; the
		// claim waits for it (waitKV) up to ClaimTimeout rather than
		// refuse the clients that node's death sends here.
	}
	if err != nil {
		n.own.refused.Add(1)
		n.log.Info("cluster: CONNECT refused: the client id could not be claimed", "client", r.id, "err", err)
		return broker.ClaimResult{Err: err}
	}
	n.own.claims.Add(1)
	n.own.mu.Lock()
	n.own.owned[r.id] = rev
	n.own.mu.Unlock()
	res := broker.ClaimResult{Stale: prev.Node != "" && prev.Node != n.o.NodeID}
	if res.Stale && !r.clean {
		res.Moved, res.Confirm = n.fetchSession(prev.Node, r.id, rev)
	}
	return res
}

// casOwner writes this node as r.id's owner with compare-and-set, trying
// again (a few times) when another claim got in between.
func (n *Node) casOwner(ctx context.Context, kv jetstream.KeyValue, id string) (prev owner, rev uint64, err error) {
	key := ownerKey(id)
	for range 4 {
		prev = owner{}
		e, gerr := kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			rev, err = kv.Create(ctx, key, encodeOwner(nil, owner{Node: n.o.NodeID, Epoch: 1, Client: id}))
		case gerr != nil:
			return prev, 0, fmt.Errorf("%w: %w", errNoKV, gerr)
		default:
			if p, derr := decodeOwner(e.Value()); derr == nil {
				prev = p
			} else {
				n.badIn.Add(1) // overwritten: the claim needs no more than the revision
			}
			rev, err = kv.Update(ctx, key, encodeOwner(nil, owner{Node: n.o.NodeID, Epoch: prev.Epoch + 1, From: prev.Node, Client: id}), e.Revision())
		}
		if err == nil {
			return prev, rev, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			n.own.conflicts.Add(1)
			continue
		}
		return prev, 0, fmt.Errorf("%w: %w", errNoKV, err)
	}
	return prev, 0, errConflict
}

// alone reports whether this node is a seed (no --cluster-join) that has
// never had a route to another node since it started: the first node of
// a cluster, or a cluster of one. JetStream cannot form its Raft groups
// until a second node joins, and there is no one to contend with: claims
// are this node's without the bucket. Once a route came up, claims need
// the bucket for good (a partition later must not look like being alone).
// A session claimed while alone is not in the bucket: a claim elsewhere
// later finds no previous owner, and the notice (claim.go) ends it here
// rather than moving it.
func (n *Node) alone() bool {
	if n.own.routed.Load() || len(n.o.Join) > 0 || n.ns == nil {
		return false
	}
	if n.ns.NumRoutes() > 0 {
		n.own.routed.Store(true)
		return false
	}
	return true
}

// waitKV returns the bucket once it is healthy, nil if it is not by
// deadline. Once it has been healthy, an unhealthy bucket (the probe
// found no leader: no quorum) refuses at once unless this node hears
// from a majority of the nodes it knows (then the bucket is electing a
// leader again), so a node on the minority side of a partition answers
// its clients without delay.
func (n *Node) waitKV(deadline time.Time) jetstream.KeyValue {
	for {
		if kv := n.own.kv.Load(); kv != nil && n.own.healthy.Load() {
			return *kv
		}
		if n.own.everOK.Load() && !n.majorityInReach() || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-n.stop:
			return nil
		}
	}
}

// majorityInReach reports whether this node and the nodes it hears from
// are more than half of the nodes it knows (those away included, until
// they are forgotten after Options.Hold).
func (n *Node) majorityInReach() bool {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	up := 1
	for _, p := range n.peers {
		if p.away.IsZero() {
			up++
		}
	}
	return 2*up > len(n.peers)+1
}

// owns reports the revision of this node's claim on id (0: not owned).
func (n *Node) owns(id string) uint64 {
	n.own.mu.Lock()
	defer n.own.mu.Unlock()
	return n.own.owned[id]
}

// disown forgets this node's claim on id if it is older than rev.
func (n *Node) disown(id string, rev uint64) {
	n.own.mu.Lock()
	if r, ok := n.own.owned[id]; ok && r < rev {
		delete(n.own.owned, id)
	}
	n.own.mu.Unlock()
}

// keepBucket binds (or creates) the owners bucket, raises its replicas
// towards Options.Replicas as nodes join, probes its health and runs the
// watch, until Stop.
func (n *Node) keepBucket() {
	defer n.wg.Done()
	t := time.NewTicker(kvProbe)
	defer t.Stop()
	watchStop := func() {}
	defer func() { watchStop() }()
	watch := func(kv jetstream.KeyValue) {
		watchStop()
		var ctx context.Context
		ctx, watchStop = context.WithCancel(context.Background())
		n.wg.Add(1)
		go n.watchOwners(ctx, kv)
	}
	for {
		kvp := n.own.kv.Load()
		// Alone, JetStream waits for a second node before it has a
		// meta leader: nothing to bind yet.
		if !n.alone() {
			if kvp == nil {
				if kv := n.bindBucket(); kv != nil {
					n.own.kv.Store(&kv)
					watch(kv)
				}
			} else {
				was := n.own.healthy.Load()
				n.probeBucket(*kvp)
				if !was && n.own.healthy.Load() {
					// Back from a partition (or a quorum loss): a new
					// watch goes over every key again at once, rather
					// than the old one catching up after its own
					// back-off, so sessions this node no longer owns go
					// now (docs/clustering.md, Partitions).
					watch(*kvp)
				}
			}
		}
		select {
		case <-t.C:
		case <-n.stop:
			return
		}
	}
}

// replicasNow is the bucket's replica count for the nodes known now:
// Options.Replicas, at most the nodes up (JetStream cannot place more).
func (n *Node) replicasNow() int {
	return max(1, min(n.o.Replicas, len(n.Peers())+1))
}

func (n *Node) bucketConfig(replicas int) jetstream.KeyValueConfig {
	cfg := jetstream.KeyValueConfig{Bucket: bucketSessions, History: 1, Replicas: replicas, Storage: jetstream.FileStorage,
		Description: "mcutie: the owner node of each client id"}
	if n.memoryJS {
		cfg.Storage = jetstream.MemoryStorage
	}
	return cfg
}

// bindBucket finds the owners bucket or creates it; nil while JetStream
// cannot tell (no meta leader yet, no quorum).
func (n *Node) bindBucket() jetstream.KeyValue {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kv, err := n.own.js.KeyValue(ctx, bucketSessions)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = n.own.js.CreateKeyValue(ctx, n.bucketConfig(n.replicasNow()))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = n.own.js.KeyValue(ctx, bucketSessions)
		}
	}
	if err != nil {
		n.log.Debug("cluster: session owners bucket not available yet", "err", err)
		return nil
	}
	return kv
}

// probeKey is the key each node writes to probe the bucket's quorum
// (probeBucket); owner keys never start with "probe." (ownerKey).
func probeKey(node string) string { return "probe." + node }

// probeBucket checks that the bucket has a leader (a quorum of its
// replicas) and raises its replicas when more nodes are known than it
// has, up to Options.Replicas.
func (n *Node) probeBucket(kv jetstream.KeyValue) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*kvProbe)
	defer cancel()
	// A write is the only sure test of a quorum: a leader cut off from
	// its followers still answers reads for a while.
	_, err := kv.Put(ctx, probeKey(n.o.NodeID), nil)
	ok := err == nil
	var st jetstream.KeyValueStatus
	if ok {
		st, err = kv.Status(ctx)
		ok = err == nil
	}

	var info *jetstream.StreamInfo
	if ok {
		if bs, isKV := st.(*jetstream.KeyValueBucketStatus); isKV {
			info = bs.StreamInfo()
			ok = hasQuorum(info.Cluster)

		}
	}
	if ok {
		n.own.everOK.Store(true)
	}
	n.own.healthy.Store(ok)
	if ok && info != nil && info.Config.Replicas < n.replicasNow() {
		if _, err := n.own.js.UpdateKeyValue(ctx, n.bucketConfig(n.replicasNow())); err != nil {
			n.log.Debug("cluster: raising the session owners bucket's replicas", "err", err)
		} else {
			n.log.Info("cluster: session owners bucket replicas raised", "replicas", n.replicasNow())
		}
	}
}

// replicaSilence is how long a replica may go unheard before the probe
// stops counting it towards the quorum (NATS's Raft heartbeats are 1 s
// apart).
const replicaSilence = 3 * time.Second

// hasQuorum reports whether the bucket's Raft group has a leader and
// hears from a majority of its members. A leader cut off from the others
// keeps the title for a while; its writes already fail: this says so
// sooner.
func hasQuorum(ci *jetstream.ClusterInfo) bool {
	if ci == nil {
		return true // not clustered: one server
	}
	if ci.Leader == "" {
		return false
	}
	live := 1 // the leader
	for _, r := range ci.Replicas {
		if !r.Offline && r.Active < replicaSilence {
			live++
		}
	}
	return live > (len(ci.Replicas)+1)/2
}

// watchOwners follows every change of the owners bucket: this node's
// claims are remembered (owned); a key another node claimed ends this
// node's session for that id, if it holds one, unless the claim came
// from this node (From: the new owner asks for the session, move.go).
// The initial values (all keys, on start) end every session this node
// restored but no longer owns.
func (n *Node) watchOwners(ctx context.Context, kv jetstream.KeyValue) {
	defer n.wg.Done()
	for {
		w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(kvProbe):
				continue
			}
		}
		initial := true
	watch:
		for {
			select {
			case e, ok := <-w.Updates():
				switch {
				case !ok:
					break watch
				case e == nil:
					initial = false // the initial values are all in
				case strings.HasPrefix(e.Key(), "probe."):
				default:
					n.ownerChanged(e.Value(), e.Revision(), initial)
				}
			case <-ctx.Done():
				_ = w.Stop()
				return
			}
		}
		_ = w.Stop()
	}
}

// ownerChanged applies one owners bucket entry (watchOwners).
func (n *Node) ownerChanged(val []byte, rev uint64, initial bool) {
	o, err := decodeOwner(val)
	if err != nil {
		n.badIn.Add(1)
		return
	}
	if o.Node == n.o.NodeID {
		n.own.mu.Lock()
		if n.own.owned[o.Client] < rev {
			n.own.owned[o.Client] = rev
		}
		n.own.mu.Unlock()
		return
	}
	n.disown(o.Client, rev)
	if n.owns(o.Client) > rev || !n.b.HasSession(o.Client) {
		return // claimed here since, or nothing here
	}
	if o.From == n.o.NodeID && !initial {
		// Moved from here: the new owner asks for it (fetchSession).
		// Should it never ask, the copy goes once the move could have
		// ended.
		time.AfterFunc(2*(n.o.ClaimTimeout+n.o.MoveTimeout), func() {
			if n.owns(o.Client) == 0 && n.routing.Load() {
				n.dropStale(o.Client, o.Node)
			}
		})
		return
	}
	n.dropStale(o.Client, o.Node)
}

// dropStale ends this node's session for id, owned by node now.
func (n *Node) dropStale(id, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if had, err := n.b.DropStale(ctx, id); err == nil && had {
		n.own.dropped.Add(1)
		n.log.Info("cluster: session dropped: another node owns its client id", "client", id, "owner", node)
	}
}

// kvReady reports why claims cannot be made now (nil: they can).
func (n *Node) kvReady() error {
	if n.alone() {
		return nil
	}
	if n.own.kv.Load() == nil {
		return errors.New("cluster: the session owners bucket is not bound yet")
	}
	if !n.own.healthy.Load() {
		return errors.New("cluster: " + errNoKV.Error())
	}
	return nil
}

// The session ownership metric families (docs/observability.md).
var (
	metricClaims       = promtext.Counter("mcutie_cluster_claims_total", "Client ids claimed by this node in the session owners bucket (one per CONNECT).")
	metricClaimsRef    = promtext.Counter("mcutie_cluster_claims_refused_total", "CONNECTs refused (0x88, 3.x 0x03) because the client id could not be claimed: no quorum for the owners bucket, or too many claims in progress.")
	metricClaimConf    = promtext.Counter("mcutie_cluster_claim_conflicts_total", "Claims tried again because another node claimed the same client id in between.")
	metricClaimSeconds = promtext.HistogramFamily("mcutie_cluster_claim_duration_seconds", "Time from a CONNECT's claim being queued to its end (the session moved here included).")
	metricKVReady      = promtext.Gauge("mcutie_cluster_owners_ready", "1 while the session owners bucket answers with a quorum (claims can be made), else 0.")
	metricStale        = promtext.Counter("mcutie_cluster_sessions_dropped_not_owned_total", "Sessions dropped here because another node owns their client id (after a partition, or a move that never came).")
	metricMovedIn      = promtext.Counter("mcutie_cluster_sessions_moved_in_total", "Sessions handed over to this node by the client id's previous owner.")
	metricMovedOut     = promtext.Counter("mcutie_cluster_sessions_moved_out_total", "Sessions this node handed over to the node that claimed their client id.")
	metricMoveFailed   = promtext.Counter("mcutie_cluster_session_moves_failed_total", "Sessions that did not move: the previous owner did not answer within --cluster-move-timeout (the client started clean).")
	metricMoveRefused  = promtext.Counter("mcutie_cluster_session_moves_refused_total", "Sessions not moved because they were larger than --cluster-max-session-bytes (discarded).")
)

// writeOwnershipMetrics writes the session ownership metrics.
func (n *Node) writeOwnershipMetrics(w io.Writer) {
	metricClaims.Write(w, n.own.claims.Load())
	metricClaimsRef.Write(w, n.own.refused.Load())
	metricClaimConf.Write(w, n.own.conflicts.Load())
	metricClaimSeconds.Header(w)
	metricClaimSeconds.Histogram(w, "", n.own.seconds)
	ready := uint64(0)
	if n.kvReady() == nil {
		ready = 1
	}
	metricKVReady.Write(w, ready)
	stale := uint64(0)
	if n.routing.Load() {
		stale = n.b.MoveStats().Stale
	}
	metricStale.Write(w, stale)
	metricMovedIn.Write(w, n.own.movedIn.Load())
	metricMovedOut.Write(w, n.own.movedOut.Load())
	metricMoveFailed.Write(w, n.own.moveFailed.Load())
	metricMoveRefused.Write(w, n.own.moveRefused.Load())
}
