package store

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is a Store that keeps everything in maps: nothing survives the
// process. It stores the same keys and encoded values as Badger, so the two
// behave alike (the conformance tests run on both).
//
// Unlike Badger, Memory calls done synchronously, on the caller's goroutine,
// before Apply returns: there is no disk to wait for. A caller that must not
// re-enter itself from done should post the result as it would for Badger.
type Memory struct {
	mu     sync.Mutex
	d      *memData
	closed bool

	batches, ops atomic.Uint64
	last, most   atomic.Int64
}

type memData struct {
	kv      map[string][]byte
	clients map[string]map[string]struct{} // client id → its keys
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{d: &memData{kv: make(map[string][]byte), clients: make(map[string]map[string]struct{})}}
}

// Reopen returns a new, open Memory holding m's data, as if the process had
// restarted with a persistent store. Call it after m.Close; tests use it.
func (m *Memory) Reopen() *Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Memory{d: m.d}
}

// DoneInline is true: Apply calls done on the caller's goroutine.
func (m *Memory) DoneInline() bool { return true }

// Apply applies ops at once and calls done(nil) before returning. Safe for
// concurrent use.
func (m *Memory) Apply(ops []Op, done func(error)) error {
	u, err := encodeOps(ops, 0)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	for i := range u.ents {
		m.d.apply(&u.ents[i])
	}
	m.mu.Unlock()
	m.batches.Add(1)
	m.ops.Add(uint64(len(ops)))
	m.last.Store(int64(len(ops)))
	storeMax(&m.most, int64(len(ops)))
	if done != nil {
		done(nil)
	}
	return nil
}

func (d *memData) apply(e *entry) {
	switch e.kind {
	case entPut:
		k := string(e.key)
		d.kv[k] = e.val
		if cid, ok := keyClient(e.key); ok {
			keys := d.clients[string(cid)]
			if keys == nil {
				keys = make(map[string]struct{})
				d.clients[string(cid)] = keys
			}
			keys[k] = struct{}{}
		}
	case entDel:
		delete(d.kv, string(e.key))
		if cid, ok := keyClient(e.key); ok {
			if keys := d.clients[string(cid)]; keys != nil {
				delete(keys, string(e.key))
				if len(keys) == 0 {
					delete(d.clients, string(cid))
				}
			}
		}
	case entDrop:
		cid, _ := keyClient(e.key)
		for k := range d.clients[string(cid)] {
			delete(d.kv, k)
		}
		delete(d.clients, string(cid))
	}
}

// Load streams a snapshot of the state; see Store.Load.
func (m *Memory) Load(v Visitor) error {
	type pair struct{ k, v []byte }
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	var ranges [len(loadOrder)][]pair
	for k, val := range m.d.kv {
		if len(k) == 0 {
			continue
		}
		i := slices.Index(loadOrder[:], k[0])
		if i < 0 {
			continue // not a record type Load knows
		}
		ranges[i] = append(ranges[i], pair{[]byte(k), bytes.Clone(val)})
	}
	m.mu.Unlock()

	l := newLoader(v, time.Now().UnixNano())
	for _, r := range ranges {
		slices.SortFunc(r, func(a, b pair) int { return bytes.Compare(a.k, b.k) })
		for _, p := range r {
			if err := l.visit(p.k, p.v); err != nil {
				return err
			}
		}
	}
	if len(l.dels) > 0 {
		u := l.deleteUnit()
		m.mu.Lock()
		for i := range u.ents {
			m.d.apply(&u.ents[i])
		}
		m.mu.Unlock()
	}
	return nil
}

// Stats returns the counters. Safe for concurrent use.
func (m *Memory) Stats() Stats {
	return Stats{
		Batches:      m.batches.Load(),
		Ops:          m.ops.Load(),
		LastBatchOps: int(m.last.Load()),
		MaxBatchOps:  int(m.most.Load()),
	}
}

// Healthy returns ErrClosed after Close and nil otherwise: a memory store
// has no disk to fail. Safe for concurrent use.
func (m *Memory) Healthy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close marks m closed; the data stays for Reopen.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	return nil
}

// putRaw stores a raw pair, bypassing encoding (tests use it to plant
// corrupt values).
func (m *Memory) putRaw(key, val []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.d.apply(&entry{key: bytes.Clone(key), val: bytes.Clone(val), kind: entPut})
}
