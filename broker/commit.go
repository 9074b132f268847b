package broker

import (
	"errors"
	"slices"
	"sync/atomic"

	"github.com/mcutie/mcutie/store"
)

// The loop's commit pipeline. Each loop gathers the store operations of
// one pass (one Feed, one inbox drain, one tick) in l.pass and submits
// them as one Store.Apply at the end of the pass (commitOps), so the
// commit queue sees few, large units. The acknowledgements that wait for
// them (ack.go) are released when the store says they are done; the
// output held for a commit (Client.holdUntil) goes once durableN reaches
// it. A store whose commit queue is full refuses the unit: the loop keeps
// it in its backlog, in order, and submits it again before anything newer.
//
// Where done runs is the store's to say (Store.DoneInline): on this loop,
// inside Apply (committed), or on a store goroutine (committedOffLoop),
// which touches the loop only through atomics and its inbox.

// passOps are store operations with what waits for them.
type passOps struct {
	ops   []store.Op
	acks  []*ackWait   // parallel to ops: the acknowledgement waiting for each, or nil
	gates []*qos2Order // inbound records among ops whose messages wait for them (qos2.go)
}

func (p *passOps) append(q *passOps) {
	p.ops = append(p.ops, q.ops...)
	p.acks = append(p.acks, q.acks...)
	p.gates = append(p.gates, q.gates...)
}

// reset empties p, giving a burst's memory back.
func (p *passOps) reset() {
	clear(p.ops)
	clear(p.acks)
	clear(p.gates)
	p.ops, p.acks, p.gates = p.ops[:0], p.acks[:0], p.gates[:0]
	if cap(p.ops) > 4096 {
		*p = passOps{}
	}
}

// addOp queues a store operation for the end of this pass; aw (may be nil)
// waits for it. Loop-only.
func (l *Loop) addOp(op store.Op, aw *ackWait) {
	l.pass.ops = append(l.pass.ops, op)
	if aw != nil {
		aw.hold()
	}
	l.pass.acks = append(l.pass.acks, aw)
}

// maxCommitRounds bounds commitOps's rounds: operations added while a pass
// is submitted (an inline store's completion writes a SUBACK, whose
// retained messages are stored for a persistent session) go in the next
// round rather than waiting for the next pass.
const maxCommitRounds = 4

// commitOps submits the pass's operations, behind any backlog, as one
// unit. Loop-only.
func (l *Loop) commitOps() {
	if len(l.pass.ops) == 0 && len(l.backlog.ops) == 0 {
		return // most passes: nothing to store
	}
	for range maxCommitRounds {
		if !l.commitPass() || len(l.pass.ops) == 0 {
			return
		}
	}
}

// commitPass submits one pass and reports whether the store took it.
// Loop-only.
func (l *Loop) commitPass() bool {
	// Swap the pass out first: operations added while it is submitted
	// go to the fresh list, not into the one being cleared.
	p := l.pass
	l.pass, l.passSpare = l.passSpare, passOps{}
	defer func() {
		p.reset()
		l.passSpare = p
	}()
	bl := &l.backlog
	if len(bl.ops) > 0 {
		from := len(bl.ops)
		over := from >= l.b.opts.CommitBacklog
		bl.append(&p)
		if l.submit(bl) {
			bl.reset()
			return true
		}
		if over {
			l.shed(from)
		}
		return false
	}
	if len(p.ops) == 0 {
		return true
	}
	if !l.submit(&p) {
		bl.append(&p) // everything, in order, for the next pass or tick
		return false
	}
	return true
}

// submit hands p's operations to the store as one Apply. It reports false,
// having changed nothing, when the store's commit queue is full. p may be
// reused once it returns. Loop-only.
func (l *Loop) submit(p *passOps) bool {
	var acks []*ackWait
	for _, a := range p.acks {
		if a != nil {
			acks = append(acks, a)
		}
	}
	gates := slices.Clone(p.gates)
	// Every Apply made counts, so Client.holdUntil (applyN+1 when
	// recorded) names the unit that carries its operation, a later one
	// when the operation waited in the backlog. Counted before Apply: an
	// inline store completes inside it, and what that adds belongs to the
	// next unit.
	n := l.applyN + 1
	l.applyN = n
	st := l.b.opts.Store
	var done func(error)
	if st.DoneInline() {
		done = func(err error) { l.committed(n, acks, gates, err) }
	} else {
		done = func(err error) { l.committedOffLoop(n, acks, gates, err) }
	}
	err := st.Apply(p.ops, done)
	switch {
	case errors.Is(err, store.ErrQueueFull):
		l.applyN = n - 1
		l.counters.storeBacklogged++
		return false
	case err != nil:
		l.b.opts.Logger.Error("store refused operations", "err", err, "ops", len(p.ops))
		l.committed(n, acks, gates, err) // done will not be called
	}
	return true
}

// committed runs on the loop once Apply n's operations are done (err:
// they failed). Loop-only.
func (l *Loop) committed(n uint64, acks []*ackWait, gates []*qos2Order, err error) {
	l.noteDurable(n, err)
	if err != nil {
		l.resolveFailed()
	}
	for _, a := range acks {
		a.releaseOn(l, err)
	}
	openGates(gates)
	if len(gates) > 0 {
		l.b.wakeHolding(l)
	}
}

// committedOffLoop is committed on a store goroutine. Safe for concurrent
// use.
func (l *Loop) committedOffLoop(n uint64, acks []*ackWait, gates []*qos2Order, err error) {
	l.noteDurable(n, err)
	if err != nil && !l.post(inboxItem{kind: itemFunc, fn: l.resolveFailed}, true) {
		l.b.droppedOffLoop.Add(1) // resolved at the next tick
	}
	for _, a := range acks {
		if a.release(err) {
			a.fireOffLoop()
		}
	}
	if l.holding.Load() {
		l.post(inboxItem{kind: itemFunc, fn: func() {}}, true) // the drain's flush writes the held output
	}
	openGates(gates)
	if len(gates) > 0 {
		l.b.wakeHolding(nil)
	}
}

// noteDurable records that Apply n is done: output held for it may go
// now; after a failure, only once the loop has closed the connections
// whose output waited for the failed state (resolveFailed). Safe for
// concurrent use; done calls come in Apply order.
func (l *Loop) noteDurable(n uint64, err error) {
	if err != nil {
		l.b.storeErrors.Add(1)
		l.b.opts.Logger.Error("store operation failed", "err", err)
		l.failedFrom.CompareAndSwap(0, n)
		raiseTo(&l.durableLater, n)
		return
	}
	if l.failedFrom.Load() != 0 {
		raiseTo(&l.durableLater, n)
		if l.failedFrom.Load() != 0 {
			return // resolveFailed raises durableN
		}
	}
	raiseTo(&l.durableN, n)
}

// raiseTo raises v to n unless it is already there. Safe for concurrent
// use.
func raiseTo(v *atomic.Uint64, n uint64) {
	for {
		d := v.Load()
		if d >= n || v.CompareAndSwap(d, n) {
			return
		}
	}
}

// resolveFailed deals with a failed commit: every connection whose output
// waits for an Apply from the failed one on (Client.holdUntil: QoS 2
// state, a PUBLISH or a PUBREL) loses that output and is closed (v5
// DISCONNECT 0x80), so no client is told of state that was not stored; it
// resumes from what was. Then the held output of the others may go.
// Loop-only.
func (l *Loop) resolveFailed() {
	f := l.failedFrom.Load()
	if f == 0 {
		return
	}
	for _, list := range [][]*Client{l.dirty, l.held} {
		for _, c := range list {
			if c != nil && c.holdUntil >= f && c.state == stateConnected {
				c.abandonOutput()
				c.closeFor(closeStoreRefused, 0, "state not stored")
			}
		}
	}
	l.failedFrom.Store(0)
	raiseTo(&l.durableN, l.durableLater.Load())
	if l.holding.Load() || len(l.dirty) > 0 {
		l.flush()
	}
}

// openGates lets the messages whose inbound records are durable (or
// failed: holding would not store them) be sent.
func openGates(gates []*qos2Order) {
	for _, g := range gates {
		g.open.Store(true)
	}
}

// wakeHolding wakes every loop, other than except (nil: none), whose
// output waits for a commit or a gate, so it looks again. Safe for
// concurrent use.
func (b *Broker) wakeHolding(except *Loop) {
	for _, l := range b.loops {
		if l != except && l.holding.Load() {
			l.post(inboxItem{kind: itemFunc, fn: func() {}}, true) // the drain's flush writes them
		}
	}
}

// shed drops, from the operations of the latest pass (the backlog from
// index from on), once the backlog had reached Options.CommitBacklog and
// the store still refused it, what can be refused: operations an
// acknowledgement waits for (that acknowledgement then reports the
// failure: v5 0x80, 3.x close) and QoS 0 retained updates (the retained
// index in memory is right; a restart would bring back the older stored
// value). Other operations (deletes, session and state records) stay: they
// keep the stored state consistent and come only from acknowledgements
// and connections already counted. Loop-only.
func (l *Loop) shed(from int) {
	bl := &l.backlog
	kept := from
	for i := from; i < len(bl.ops); i++ {
		op, a := bl.ops[i], bl.acks[i]
		switch {
		case a != nil:
			if op.Inbound != nil && a.q2 != nil {
				a.q2.open.Store(true) // the record will not be written: do not hold its message
				l.b.wakeHolding(l)
			}
			a.releaseOn(l, store.ErrQueueFull)
		case op.Retained != nil:
		default:
			bl.ops[kept], bl.acks[kept] = op, nil
			kept++
			continue
		}
		l.counters.storeShed++
	}
	clear(bl.ops[kept:])
	clear(bl.acks[kept:])
	bl.ops, bl.acks = bl.ops[:kept], bl.acks[:kept]
	if ok, _ := l.shedLog.allow(l.now); ok {
		l.b.opts.Logger.Error("store commit queue full and loop backlog at its bound: refusing new durable operations", "loop", l.idx, "backlog_ops", len(bl.ops), "bound", l.b.opts.CommitBacklog)
	}
}
