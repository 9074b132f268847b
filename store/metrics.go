package store

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// storeMetrics are the store's counters (Badger's and Redis's). The
// counters always exist (Stats reads them); they are registered, with the
// histograms and gauges, only when the options' Metrics set is given.
// For Redis a transaction is one MULTI/EXEC, and with DurabilitySync each
// is one fsync by Redis; its value-log GC counter stays 0.
type storeMetrics struct {
	batchOps      *metrics.Histogram // nil when not registered
	commitSeconds *metrics.Histogram // nil when not registered

	rejected *metrics.Counter // mcutie_store_ops_rejected_total
	errors   *metrics.Counter // mcutie_store_errors_total
	syncs    *metrics.Counter // mcutie_store_syncs_total
	batches  *metrics.Counter // mcutie_store_batches_total
	ops      *metrics.Counter // mcutie_store_ops_total
	txns     *metrics.Counter // mcutie_store_txns_total
	bytes    *metrics.Counter // mcutie_store_written_bytes_total
	gcRuns   *metrics.Counter // mcutie_store_vlog_gc_rewrites_total
}

// gauge is a store's own gauge, registered by newStoreMetrics.
type gauge struct {
	name string
	f    func() float64
}

// newStoreMetrics registers the store's metrics on set (nil: none): the
// counters and histograms, the gauges of f's queue and transactions in
// flight, and the store's own gauges. The names are fixed, so a set takes
// one store; a second would panic in VictoriaMetrics/metrics ("already
// registered").
func newStoreMetrics(set *metrics.Set, f *commitFront, gauges ...gauge) *storeMetrics {
	if set == nil {
		return &storeMetrics{
			rejected: new(metrics.Counter), errors: new(metrics.Counter), syncs: new(metrics.Counter),
			batches: new(metrics.Counter), ops: new(metrics.Counter), txns: new(metrics.Counter),
			bytes: new(metrics.Counter), gcRuns: new(metrics.Counter),
		}
	}
	m := &storeMetrics{
		// Ops per committed batch.
		batchOps: set.NewHistogram("mcutie_store_commit_batch_ops"),
		// From the start of a batch's commit to its completion (all its
		// transactions written, and synced with DurabilitySync).
		commitSeconds: set.NewHistogram("mcutie_store_commit_seconds"),

		rejected: set.NewCounter("mcutie_store_ops_rejected_total"),
		errors:   set.NewCounter("mcutie_store_errors_total"),
		syncs:    set.NewCounter("mcutie_store_syncs_total"),
		batches:  set.NewCounter("mcutie_store_batches_total"),
		ops:      set.NewCounter("mcutie_store_ops_total"),
		txns:     set.NewCounter("mcutie_store_txns_total"),
		bytes:    set.NewCounter("mcutie_store_written_bytes_total"),
		gcRuns:   set.NewCounter("mcutie_store_vlog_gc_rewrites_total"),
	}
	set.NewGauge("mcutie_store_queue_len", func() float64 { return float64(f.q.len()) })
	set.NewGauge("mcutie_store_queue_capacity", func() float64 { return float64(f.q.cap) })
	set.NewGauge("mcutie_store_inflight_txns", func() float64 { return float64(f.inflight.Load()) })
	for _, g := range gauges {
		set.NewGauge(g.name, g.f)
	}
	return m
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
