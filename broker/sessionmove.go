package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
	"github.com/mcutie/mcutie/store"
)

// One client id, one owner cluster-wide (docs/clustering.md, "Session
// ownership"). When Options.Peers also implements SessionClaimer, every
// CONNECT claims its client id before its session is opened: the
// connection is parked as while an Authenticator decides (stateAuthPending,
// nothing is read, the CONNECT is copied and runs again once the claim is
// settled), so no loop ever waits on the cluster. The claim may bring the
// session from the node that owned it (moved: its records in a
// store.DecodeTransfer transfer); the broker installs it, stores it, and
// only then tells the old owner (ClaimResult.Confirm), which deletes its
// copy (ConfirmMoved): moved, not copied twice.

// SessionClaimer is implemented by a Peers that keeps one owner per client
// id across a cluster (package cluster: a replicated KV bucket).
type SessionClaimer interface {
	// Claims reports whether CONNECTs claim their client id at all
	// (fixed for the claimer's life).
	Claims() bool
	// ClaimSession makes this node the owner of clientID. An error means
	// the claim could not even start (its queue is full): the CONNECT is
	// refused. Otherwise done is called exactly once, on another
	// goroutine than the caller's, within a bounded time (the claimer's
	// timeouts), and must not block.
	ClaimSession(clientID string, cleanStart bool, done func(ClaimResult)) error
}

// ClaimResult is how a claim ended.
type ClaimResult struct {
	// Err: no claim (no quorum, the store of owners unreachable): the
	// CONNECT is refused with 0x88 Server unavailable (3.x: 0x03).
	Err error
	// Stale: the id was owned by another node, so a session this node
	// still holds for it is out of date: it is discarded.
	Stale bool
	// Moved is the session the previous owner handed over (a
	// store.AppendTransfer transfer); nil: none (the client starts clean
	// unless this node owned it already).
	Moved []byte
	// Confirm, set with Moved, is called once Moved is stored here (nil)
	// or could not be taken (the error); the previous owner deletes its
	// copy on nil.
	Confirm func(error)
}

// ErrNoSession is returned by TakeSession when the id has no session here.
var ErrNoSession = errors.New("broker: no session for that client id")

// claimCall is one outstanding ClaimSession. Its fields are set before
// the claim starts and read on the loop.
type claimCall struct {
	c     *Client
	clean bool
}

// claimDeadline is the safety net of a parked CONNECT: a claimer bounds
// its own calls, this catches one that never answers.
const claimDeadline = 30 * time.Second

// claimSession claims the client id cluster-wide before the session is
// opened (once: not when the CONNECT runs again with the claim settled).
// stop says the CONNECT ends here with res: refused, or parked until the
// claim ends (resumeClaim). An assigned id is new everywhere: not claimed.
func (c *Client) claimSession(p *codec.Connect, assigned bool, raw []byte) (res FeedResult, stop bool) {
	cl, ok := c.l.b.opts.Peers.(SessionClaimer)
	if !ok || assigned || c.inProcess() || !cl.Claims() {
		return 0, false
	}
	af := c.flow()
	if af.claimSettled {
		return 0, false
	}
	call := &claimCall{c: c, clean: p.CleanStart}
	if af.connectRaw == nil {
		af.connectRaw = append([]byte(nil), raw...)
	}
	af.claim = call
	c.state = stateAuthPending
	af.authDeadline = c.l.now + int64(claimDeadline)
	err := cl.ClaimSession(c.id, p.CleanStart, func(r ClaimResult) {
		if err := c.l.runSoon(func() { c.resumeClaim(call, r) }); err != nil && r.Confirm != nil {
			r.Confirm(err) // the loop is gone: nothing was taken
		}
	})
	if err != nil {
		af.claim = nil
		c.state = stateAwaitConnect
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ServerUnavailable, Reason: "cluster: " + err.Error()})
		return FeedClose, true
	}
	return FeedContinue, true
}

// resumeClaim acts on a settled claim, on the connection's loop: the
// CONNECT runs again, or is refused. A session moved here is installed
// even when the connection is gone meanwhile: this node owns it now.
// Loop-only.
func (c *Client) resumeClaim(call *claimCall, r ClaimResult) {
	l := c.l
	l.tick()
	live := c.auth != nil && c.auth.claim == call && c.state == stateAuthPending
	if !live {
		if r.Moved != nil {
			l.adoptOrphan(c.id, r)
		}
		return
	}
	if r.Err != nil {
		c.auth.claim = nil
		c.state = stateAwaitConnect
		c.refuseConnect(c.version, &codec.ReasonError{Code: codec.ServerUnavailable, Reason: "cluster: client id not claimed: " + r.Err.Error()})
		l.flush()
		return
	}
	if r.Stale {
		l.dropStale(c.id)
	}
	if r.Moved != nil && !call.clean {
		s, ops, err := l.importSession(c.id, r.Moved)
		if err != nil {
			l.b.opts.Logger.Warn("cluster: a moved session could not be taken; the client starts clean", slog.String("client", c.id), slog.Any("err", err))
			r.Confirm(err)
		} else {
			l.storeMoved(s, ops, func(err error) {
				r.Confirm(err)
				if c.auth != nil && c.auth.claim == call && c.state == stateAuthPending {
					c.continueClaimed()
				}
			})
			return
		}
	} else if r.Confirm != nil {
		r.Confirm(errors.New("clean start: the session is not taken"))
	}
	c.continueClaimed()
}

// continueClaimed runs the parked CONNECT again, its id claimed.
// Loop-only.
func (c *Client) continueClaimed() {
	c.auth.claim = nil
	c.auth.claimSettled = true
	c.state = stateAwaitConnect
	c.finishConnect()
	c.l.flush()
	if c.state == stateConnected || c.state == stateAuthContinue {
		_ = c.conn.Wake() // bytes sent after the CONNECT wait in the transport
	}
}

// claimExpired refuses a connection whose claim never ended (a claimer
// bounds its calls: this is the safety net). Loop-only.
func (c *Client) claimExpired() {
	c.auth.claim = nil
	c.state = stateAwaitConnect
	c.refuseConnect(c.version, &codec.ReasonError{Code: codec.ServerUnavailable, Reason: "cluster: claiming the client id timed out"})
}

// adoptOrphan installs a session moved here for a connection that went
// away before the move ended: this node owns the id now. Loop-only.
func (l *Loop) adoptOrphan(id string, r ClaimResult) {
	b := l.b
	k := b.dir.keyString(id)
	if b.dir.claim(k, l.idx) != l.idx {
		r.Confirm(errors.New("client id busy on another loop"))
		return
	}
	defer b.dir.release(k, l.idx)
	if l.sessions[id] != nil {
		r.Confirm(errors.New("a newer session for the client id is here"))
		return
	}
	s, ops, err := l.importSession(id, r.Moved)
	if err != nil {
		r.Confirm(err)
		return
	}
	l.storeMoved(s, ops, r.Confirm)
}

// dropStale discards this node's session for id, if any: another node
// owned the id since (docs/clustering.md, "Partitions"), so it is out of
// date. Its will is not published: the client lives on elsewhere.
// Loop-only.
func (l *Loop) dropStale(id string) {
	s := l.sessions[id]
	if s == nil {
		return
	}
	s.dropWill()
	if s.c != nil {
		s.takeOver(false)
	}
	s.sessionEnding(hooks.SessionTakenOut)
	s.end(false)
	l.b.moves.stale.Add(1)
}

// importSession builds the session moved here from its transfer and
// installs it on l (offline; the CONNECT resumes it), returning the store
// ops that record it. The client holds the id's directory reference on l.
// Loop-only.
func (l *Loop) importSession(id string, moved []byte) (*Session, []store.Op, error) {
	b := l.b
	var (
		sess  *store.Session
		subs  []store.Subscription
		outs  []store.Outbound
		inb   []uint16
		will  *store.Will
		other bool
	)
	err := store.DecodeTransfer(moved, store.Visitor{
		Session: func(s store.Session) { sess = &s; other = s.ClientID != id },
		Sub:     func(s store.Subscription) { subs = append(subs, s) },
		Outbound: func(o store.Outbound) {
			outs = append(outs, o)
		},
		Inbound: func(i store.InboundQoS2) { inb = append(inb, i.PacketID) },
		Will:    func(w store.Will) { will = &w },
	})
	switch {
	case err != nil:
		return nil, nil, err
	case other:
		return nil, nil, fmt.Errorf("cluster: the session moved here is %q's, not %q's", sess.ClientID, id)
	case l.sessions[id] != nil:
		return nil, nil, errors.New("cluster: a session for the client id is here already")
	}
	if b.dir.claim(b.dir.keyString(id), l.idx) != l.idx {
		return nil, nil, errors.New("cluster: the client id is on another loop")
	}
	s := newSession(l, id)
	s.version = codec.Version(sess.Version)
	s.expiry = sess.ExpiryInterval
	s.discAt = l.now
	if sess.OwnerKind != store.OwnerUnknown {
		s.extra().owner, s.extra().ownerKind = sess.Owner, sess.OwnerKind
	}
	l.sessions[id] = s
	if s.expiry != store.ExpiryNever {
		l.wait(s) // offline until the CONNECT resumes it
	}
	ops := []store.Op{{Session: &store.Session{ClientID: id, Version: sess.Version, ExpiryInterval: sess.ExpiryInterval,
		DisconnectedAt: l.now, QoS2Mark: s.qos2Mark, Owner: sess.Owner, OwnerKind: sess.OwnerKind}}}
	for i := range subs {
		sub := &subs[i]
		s.addSub(sub.Filter, router.SubOptions{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, ID: sub.ID})
		ops = append(ops, store.Op{Sub: sub})
	}
	for i := range outs {
		ob := &outs[i]
		ob.Origin, ob.OriginMark = "", 0 // QoS 2 marks are the old node's
		if !s.importOutbound(ob) {
			continue
		}
		ops = append(ops, store.Op{Outbound: ob})
	}
	if len(inb) > 0 {
		q := s.qos()
		q.inboundQoS2 = append(q.inboundQoS2, inb...)
		for _, pid := range inb {
			ops = append(ops, store.Op{Inbound: &store.InboundQoS2{ClientID: id, PacketID: pid}})
		}
	}
	if will != nil {
		if m, err := messageFromStore(&will.Msg); err == nil {
			s.will = &sessionWill{m: m, at: will.PublishAt}
			s.replicateWill() // this node's copy now: the old owner withdrew its own
			ops = append(ops, store.Op{Will: will})
		}
	}
	b.moves.in.Add(1)
	return s, ops, nil
}

// importOutbound puts one moved QoS 1/2 message in place: a queued one
// (never sent) in the queue, a sent one in flight, resent with DUP=1 and
// its packet id when the client resumes [MQTT-4.4.0-1]; false: dropped
// (undecodable). Loop-only.
func (s *Session) importOutbound(ob *store.Outbound) bool {
	q := s.qos()
	if ob.Seq >= q.nextSeq {
		q.nextSeq = ob.Seq + 1
	}
	om := &outMsg{seq: ob.Seq, qos: ob.Msg.QoS}
	if ob.State == store.OutboundReleased {
		om.state, om.qos = outPubrec, 2
	} else {
		m, err := messageFromStore(&ob.Msg)
		if err != nil {
			return false
		}
		om.m, om.retain, om.state = m, ob.Msg.Retain, outSent
		if len(ob.Msg.Props) > 0 {
			var pp codec.Properties
			if pp.DecodePublishProps(ob.Msg.Props) == nil {
				om.nids = uint8(copy(om.ids[:], pp.SubscriptionIDs))
			}
		}
		s.chargeQueued(om, len(m.Topic)+len(m.Payload))
	}
	if ob.State == store.OutboundQueued || !s.takePID(om) {
		om.state = outQueued
		q.queue.pushBack(om)
		return true
	}
	q.inflight.pushBack(om)
	return true
}

// storeMoved stores a moved session's records and calls done (on the
// loop) once they are durable, or with the error that kept them out; a
// session that is not persistent here (no store, or expiry 0) is done at
// once. The client stays parked meanwhile, so no later operation on the
// session can overtake these. Loop-only.
func (l *Loop) storeMoved(s *Session, ops []store.Op, done func(error)) {
	st := l.b.opts.Store
	if st == nil || !s.persistent() {
		done(nil)
		return
	}
	s.stored = true
	if st.DoneInline() {
		var res error
		if err := st.Apply(ops, func(e error) { res = e }); err != nil {
			res = err
		}
		done(res)
		return
	}
	if err := st.Apply(ops, func(e error) {
		if l.runSoon(func() { done(e) }) != nil {
			done(e) // the loop is gone; done must still be told
		}
	}); err != nil {
		done(err)
	}
}

// moveState counts the moves and holds the sessions this node handed over
// whose new owner has not confirmed yet: their stored copy stays until it
// does (ConfirmMoved).
type moveState struct {
	mu      sync.Mutex
	pending map[string]bool // client id → a stored copy waits for the new owner's word
	in, out atomic.Uint64
	stale   atomic.Uint64
}

// MoveStats counts sessions moved between nodes (for the cluster's
// metrics).
type MoveStats struct {
	In, Out uint64 // sessions moved here from another node, and away
	// Stale counts sessions discarded because another node owned their
	// client id since.
	Stale uint64
}

// MoveStats reports the moves so far. Safe for concurrent use.
func (b *Broker) MoveStats() MoveStats {
	return MoveStats{In: b.moves.in.Load(), Out: b.moves.out.Load(), Stale: b.moves.stale.Load()}
}

// HasSession reports whether client id may have a session or connection on
// this node: a cheap check (the client directory, no loop is asked)
// before DropStale. Safe for concurrent use.
func (b *Broker) HasSession(id string) bool {
	_, ok := b.dir.owner(b.dir.keyString(id))
	return ok
}

// onOwnerLoop runs fn on the loop that holds client id's state, if any
// (found false: none does), and waits for it or ctx. Not on a loop.
func (b *Broker) onOwnerLoop(ctx context.Context, id string, fn func(l *Loop)) (found bool, err error) {
	i, ok := b.dir.owner(b.dir.keyString(id))
	if !ok {
		return false, nil
	}
	l := b.loops[i]
	if !l.bound() {
		return false, ErrNotServing
	}
	done := make(chan struct{})
	if err := l.runSoon(func() {
		l.tick()
		fn(l)
		l.flush()
		close(done)
	}); err != nil {
		return false, ErrNotServing
	}
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// TakeSession hands client id's session over to another node of the
// cluster, which claimed the id: its connection, if any, is sent
// DISCONNECT 0x8E Session taken over (v5; 3.x is closed) [MQTT-3.1.4-3],
// and the session (subscriptions with their options and identifiers,
// QoS 1/2 messages in flight and queued, inbound QoS 2 ids, a pending
// will) is returned as a store transfer and leaves this node's memory.
// Its stored copy stays until ConfirmMoved says the new owner stored it
// (a restart meanwhile finds it, and the cluster drops it as not owned).
// A session larger than maxBytes (0: no bound) is not handed over: it is
// discarded and ErrTooLarge returned. ErrNoSession: none here. Safe for
// concurrent use; not on a loop.
func (b *Broker) TakeSession(ctx context.Context, id string, maxBytes int) ([]byte, error) {
	var (
		out   []byte
		err   error
		found bool
	)
	ok, lerr := b.onOwnerLoop(ctx, id, func(l *Loop) {
		s := l.sessions[id]
		if s == nil {
			return
		}
		found = true
		out, err = s.handOver(maxBytes)
	})
	switch {
	case lerr != nil:
		return nil, lerr
	case !ok || !found:
		return nil, ErrNoSession
	}
	return out, err
}

// ErrTooLarge is returned by TakeSession for a session above its bound.
var ErrTooLarge = errors.New("broker: session too large to move")

// handOver ends s here for the node that claimed it and returns its
// records (TakeSession). Loop-only.
func (s *Session) handOver(maxBytes int) ([]byte, error) {
	l := s.l
	if s.c != nil {
		if s.will != nil && s.will.delay > 0 {
			// The connection ends abnormally for the session: its will is
			// due after the delay, unless the client resumes on the new
			// node first (it does, on the CONNECT that claimed it:
			// [MQTT-3.1.3-9]). Without a delay takeOver publishes it.
			s.will.at = l.now + int64(s.will.delay)*int64(time.Second)
		}
		s.takeOver(false)
	}
	ops := s.transferOps()
	raw, err := store.AppendTransfer(nil, ops)
	if err == nil && maxBytes > 0 && len(raw) > maxBytes {
		err = fmt.Errorf("%w: %d bytes, above --cluster-max-session-bytes %d", ErrTooLarge, len(raw), maxBytes)
	}
	stored := s.stored
	if err == nil {
		s.stored = false // the stored copy stays until the new owner confirms
		l.b.moves.mu.Lock()
		if l.b.moves.pending == nil {
			l.b.moves.pending = map[string]bool{}
		}
		l.b.moves.pending[s.id] = stored
		l.b.moves.mu.Unlock()
		l.b.moves.out.Add(1)
	}
	s.dropWill() // moved with the session (or, refused, not published: the client lives on elsewhere)
	s.sessionEnding(hooks.SessionTakenOut)
	s.end(false)
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// transferOps is s as store records, the session first. Loop-only.
func (s *Session) transferOps() []store.Op {
	ops := []store.Op{{Session: &store.Session{ClientID: s.id, Version: byte(s.version), ExpiryInterval: s.expiry, DisconnectedAt: s.l.now}}}
	if s.extras != nil {
		ops[0].Session.Owner, ops[0].Session.OwnerKind = s.extras.owner, s.extras.ownerKind
	}
	for f, o := range s.subscriptions() {
		ops = append(ops, store.Op{Sub: &store.Subscription{ClientID: s.id, Filter: f, QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling, ID: o.ID}})
	}
	if q := s.qosState; q != nil {
		add := func(om *outMsg) {
			ob := &store.Outbound{ClientID: s.id, Seq: om.seq, PacketID: om.pid, State: store.OutboundSent}
			switch {
			case om.state == outPubrec:
				ob.State = store.OutboundReleased
			case om.m == nil:
				return
			default:
				if om.state == outQueued {
					ob.State, ob.PacketID = store.OutboundQueued, 0
				}
				ob.Msg = storeMessage(om.m)
				ob.Msg.QoS, ob.Msg.Retain = om.qos, om.retain
				if om.nids > 0 {
					var props codec.Properties
					if om.m.Props != nil {
						props = *om.m.Props
					}
					props.SubscriptionIDs = om.ids[:om.nids]
					ob.Msg.Props = props.Append(nil)
				}
			}
			ops = append(ops, store.Op{Outbound: ob})
		}
		for i := 0; i < q.inflight.len(); i++ {
			add(q.inflight.at(i))
		}
		for i := 0; i < q.queue.len(); i++ {
			add(q.queue.at(i))
		}
		for _, pid := range q.inboundQoS2 {
			ops = append(ops, store.Op{Inbound: &store.InboundQoS2{ClientID: s.id, PacketID: pid}})
		}
	}
	if w := s.will; w != nil && w.at != 0 {
		ops = append(ops, store.Op{Will: &store.Will{ClientID: s.id, Msg: storeMessage(w.m), PublishAt: w.at}})
	}
	return ops
}

// ConfirmMoved is the new owner's word on a session TakeSession handed
// over: stored there (err nil), so this node deletes its stored copy; or
// not (the copy stays, and goes when the cluster finds this node no
// longer owns the id). Safe for concurrent use.
func (b *Broker) ConfirmMoved(id string, err error) {
	b.moves.mu.Lock()
	stored, ok := b.moves.pending[id]
	delete(b.moves.pending, id)
	b.moves.mu.Unlock()
	if !ok || err != nil || !stored || b.opts.Store == nil {
		return
	}
	if b.HasSession(id) {
		// The client came back here meanwhile: its new session's records
		// replace the old ones; a delete now would take them too.
		return
	}
	if aerr := b.opts.Store.Apply([]store.Op{{Delete: true, Session: &store.Session{ClientID: id}}}, nil); aerr != nil {
		b.opts.Logger.Warn("cluster: the stored copy of a moved session could not be deleted", slog.String("client", id), slog.Any("err", aerr))
	}
}

// DropStale discards client id's session on this node, its connection
// first (DISCONNECT 0x8E on v5), because another node owns the id
// (docs/clustering.md, "Partitions"); its will is not published. It
// reports whether there was one. Safe for concurrent use; not on a loop.
func (b *Broker) DropStale(ctx context.Context, id string) (bool, error) {
	had := false
	_, err := b.onOwnerLoop(ctx, id, func(l *Loop) {
		if l.sessions[id] != nil {
			had = true
			l.dropStale(id)
		}
	})
	return had, err
}
