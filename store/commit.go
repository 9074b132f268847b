package store

import (
	"bytes"
	"errors"
	"hash/maphash"
	"math"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// maxInflight is the number of Badger transactions the committer keeps
// submitted at once: one being written while the next is submitted, so the
// disk never waits for the committer. Badger's write channel keeps their
// order.
const maxInflight = 2

// batch is one group of units committed together, in one Badger transaction
// unless it has to be split (ErrTxnTooBig).
type batch struct {
	batchHead
	txns    int    // non-empty transactions submitted
	pending int    // transactions submitted and not yet done
	sealed  bool   // every transaction of the batch is submitted
	lastTs  uint64 // commit timestamp of its last transaction
}

type txnDone struct {
	bt  *batch
	err error
}

// committer is the goroutine that turns queued units into Badger
// transactions: runCommitter's loop, with the committer as its writer.
// Every field is owned by it.
type committer struct {
	b *Badger

	fifo     []*batch // submitted batches, oldest first
	inflight int      // transactions submitted, not yet done
	ts       uint64   // last commit timestamp used
	tb       txnBuilder
	sinceGC  int64
	doneCh   chan txnDone
	maxTxnSz int64 // Badger's transaction limits, with a margin
	maxTxnN  int64
	vthresh  int64
}

func (c *committer) run() {
	defer close(c.b.committerDone)
	runCommitter(&c.b.commitFront, c, c.doneCh)
}

// room: another batch may be submitted while fewer than maxInflight
// transactions are.
func (c *committer) room() bool { return c.inflight < maxInflight }

// idle: no submitted batch is still being written.
func (c *committer) idle() bool { return len(c.fifo) == 0 }

// hand turns units into a batch of transactions and submits them.
func (c *committer) hand(units []*unit, ops int) {
	bt := &batch{batchHead: batchHead{units: units, ops: ops, start: time.Now()}}
	c.fifo = append(c.fifo, bt)
	tb := &c.tb
	tb.reset()
	for _, u := range bt.units {
		bt.bytes += u.bytes
		if len(tb.ents) > 0 && !c.fits(u) {
			c.flush(bt)
		}
		for i := range u.ents {
			e := &u.ents[i]
			tb.size += c.estimate(e)
			tb.count++
			tb.apply(e)
		}
	}
	c.flush(bt)
	bt.sealed = true
	c.finishReady()
}

// estimate is Badger's own size estimate of an entry (txn.checkSize).
func (c *committer) estimate(e *entry) int64 {
	k, v := int64(len(e.key)), int64(len(e.val))
	if v >= c.vthresh {
		v = 12 // a value pointer
	}
	return k + v + 2 + 10
}

func (c *committer) fits(u *unit) bool {
	size, n := c.tb.size, c.tb.count+int64(len(u.ents))
	for i := range u.ents {
		size += c.estimate(&u.ents[i])
	}
	return size < c.maxTxnSz && n < c.maxTxnN
}

// flush writes what tb gathered into Badger transactions and submits them.
func (c *committer) flush(bt *batch) {
	tb := &c.tb
	defer tb.reset()
	if len(tb.ents) == 0 {
		return
	}
	if len(tb.drops) > 0 {
		// A session delete also removes the client's records already on
		// disk: read them once everything submitted before is written.
		for c.inflight > 0 {
			c.written(<-c.doneCh)
		}
		if err := c.scanDrops(); err != nil {
			bt.fail(err)
			return
		}
	}
	c.b.cmp.resume()
	txn := c.b.db.NewTransactionAt(c.ts, true)
	for i := range tb.ents {
		e := &tb.ents[i]
		err := e.write(txn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			// Our estimate missed (a huge unit or session delete): split.
			c.submit(bt, txn)
			txn = c.b.db.NewTransactionAt(c.ts, true)
			err = e.write(txn)
		}
		if err != nil {
			txn.Discard()
			bt.fail(err)
			return
		}
	}
	c.submit(bt, txn)
}

// scanDrops adds a delete for every stored key of a dropped client that the
// builder does not already hold (a key it holds was either deleted by the
// drop or written after it).
func (c *committer) scanDrops() error {
	tb := &c.tb
	rt := c.b.db.NewTransactionAt(math.MaxUint64, false)
	defer rt.Discard()
	var prefix []byte
	for _, cid := range tb.drops {
		for _, p := range clientPrefixes {
			prefix = append(append(append(prefix[:0], p), cid...), 0)
			it := rt.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				k := it.Item().Key()
				if _, ok := tb.find(k); !ok {
					tb.add(bytes.Clone(k), nil, true)
					tb.size += int64(len(k)) + 12
					tb.count++
				}
			}
			it.Close()
		}
	}
	return nil
}

// submit commits txn asynchronously, keeping at most maxInflight in flight.
func (c *committer) submit(bt *batch, txn *badger.Txn) {
	for c.inflight >= maxInflight {
		c.written(<-c.doneCh)
	}
	c.ts++
	bt.lastTs = c.ts
	bt.pending++
	bt.txns++
	c.inflight++
	c.b.inflight.Store(int32(c.inflight))
	ch := c.doneCh
	// CommitAt runs the callback on a new goroutine, or on this one for a
	// failed precheck; doneCh has room for every transaction in flight.
	_ = txn.CommitAt(c.ts, func(err error) { ch <- txnDone{bt, err} })
}

// written takes the end of one submitted transaction.
func (c *committer) written(r txnDone) {
	c.inflight--
	c.b.inflight.Store(int32(c.inflight))
	r.bt.pending--
	if r.err != nil {
		r.bt.fail(r.err)
	}
	c.finishReady()
}

func (bt *batch) fail(err error) {
	if bt.err == nil {
		bt.err = err
	}
}

// finishReady completes the finished batches at the head of fifo, in order.
func (c *committer) finishReady() {
	for len(c.fifo) > 0 {
		bt := c.fifo[0]
		if !bt.sealed || bt.pending > 0 {
			return
		}
		c.fifo[0] = nil
		c.fifo = c.fifo[1:]
		c.finish(bt)
	}
}

func (c *committer) finish(bt *batch) {
	b := c.b
	b.record(&bt.batchHead, bt.txns)
	if bt.err == nil && bt.txns > 0 {
		b.db.SetDiscardTs(bt.lastTs)
	}
	b.complete(&bt.batchHead)
	if b.opt.GCAfterBytes > 0 {
		c.sinceGC += int64(bt.bytes)
		if c.sinceGC >= b.opt.GCAfterBytes {
			c.sinceGC = 0
			select {
			case b.gcKick <- struct{}{}:
			default:
			}
		}
	}
}

// txnBuilder coalesces the entries of one transaction: the last write per
// key wins, and a session delete turns the client's earlier writes into
// deletes.
type txnBuilder struct {
	ents  []centry
	idx   map[uint64]int32 // key hash → index in ents
	coll  map[string]int32 // keys whose hash is taken by another key
	drops [][]byte         // client ids deleted in this transaction
	size  int64            // Badger's size estimate
	count int64            // Badger's entry count estimate
	seed  maphash.Seed
}

type centry struct {
	key, val []byte
	del      bool
}

func (e *centry) write(txn *badger.Txn) error {
	if e.del {
		return txn.Delete(e.key)
	}
	return txn.SetEntry(badger.NewEntry(e.key, e.val))
}

// apply adds the change e.
func (t *txnBuilder) apply(e *entry) {
	switch e.kind {
	case entPut:
		t.set(e.key, e.val, false)
	case entDel:
		t.set(e.key, nil, true)
	case entDrop:
		t.drop(e.key)
	}
}

func (t *txnBuilder) reset() {
	if t.idx == nil {
		t.idx = make(map[uint64]int32)
		t.seed = maphash.MakeSeed()
	}
	clear(t.ents)
	t.ents = t.ents[:0]
	clear(t.idx)
	t.coll = nil
	t.drops = t.drops[:0]
	t.size, t.count = 0, 1 // Badger counts a txn marker entry
}

func (t *txnBuilder) find(key []byte) (int, bool) {
	i, ok := t.idx[maphash.Bytes(t.seed, key)]
	if !ok {
		return 0, false
	}
	if bytes.Equal(t.ents[i].key, key) {
		return int(i), true
	}
	i, ok = t.coll[string(key)]
	return int(i), ok
}

func (t *txnBuilder) add(key, val []byte, del bool) {
	h := maphash.Bytes(t.seed, key)
	n := int32(len(t.ents))
	t.ents = append(t.ents, centry{key: key, val: val, del: del})
	if _, taken := t.idx[h]; !taken {
		t.idx[h] = n
		return
	}
	if t.coll == nil {
		t.coll = make(map[string]int32)
	}
	t.coll[string(key)] = n
}

func (t *txnBuilder) set(key, val []byte, del bool) {
	if i, ok := t.find(key); ok {
		t.ents[i].val, t.ents[i].del = val, del
		return
	}
	t.add(key, val, del)
}

// drop deletes the session at sessionKey and every record of its client
// written before in this transaction; scanDrops adds those on disk.
func (t *txnBuilder) drop(sessionKey []byte) {
	cid := sessionKey[1 : len(sessionKey)-1]
	for i := range t.ents {
		if e := &t.ents[i]; !e.del && ownedBy(e.key, cid) {
			e.val, e.del = nil, true
		}
	}
	t.set(sessionKey, nil, true)
	for _, d := range t.drops {
		if bytes.Equal(d, cid) {
			return
		}
	}
	t.drops = append(t.drops, cid)
}

// ownedBy reports whether key is a record of client cid.
func ownedBy(key, cid []byte) bool {
	if len(key) < len(cid)+2 || key[len(cid)+1] != 0 || !bytes.Equal(key[1:len(cid)+1], cid) {
		return false
	}
	switch key[0] {
	case prefixSession, prefixSub, prefixOutbound, prefixInbound, prefixWill:
		return true
	}
	return false
}
