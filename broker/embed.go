package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
)

// The embedding API's small parts: the node id, exact statistics and the
// cheap getters. Server-side publishing is publishmsg.go's, server-side
// subscriptions serversub.go's. See docs/embedding.md.

// NewNodeID returns a fresh random node id: 16 lowercase hex digits.
func NewNodeID() string {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// ID is the broker's node id: Options.NodeID, or the one made at New.
// Safe for concurrent use.
func (b *Broker) ID() string { return b.nodeID }

// Closed reports whether Shutdown has been called. Safe for concurrent
// use.
func (b *Broker) Closed() bool { return b.closed.Load() }

// ConnectedClients is the number of sessions with a connection (CONNACK
// sent, not yet gone), server-side subscriptions included: exact at the
// call, one atomic load. Safe for concurrent use.
func (b *Broker) ConnectedClients() int { return int(max(b.online.Load(), 0)) }

// StatsNow is Stats with every loop's figures taken at the call: it asks
// each bound loop for a snapshot (through its inbox) and waits for all of
// them, or until ctx is done (then it returns ctx's error and the figures
// as they were). Counters a loop keeps for itself (messages, bytes,
// connections, subscriptions, inflight, queued) are then exact as of the
// moment that loop ran the request. Safe for concurrent use; it must not
// be called on a loop (it would wait for itself).
func (b *Broker) StatsNow(ctx context.Context) (Stats, error) {
	var wg sync.WaitGroup
	for _, l := range b.loops {
		if !l.bound() {
			continue
		}
		l := l
		wg.Add(1)
		fn := func() {
			defer wg.Done()
			l.tick()
			l.snapshot()
		}
		if !l.post(inboxItem{kind: itemFunc, fn: fn}, true) {
			// The inbox stayed full: run it through the executor.
			if err := l.exec(fn); err != nil {
				wg.Done()
			}
		}
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return b.Stats(), nil
	case <-ctx.Done():
		return b.Stats(), ctx.Err()
	}
}
