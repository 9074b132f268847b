package store

import (
	"io"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// storeMetrics are the store's counters (Badger's and Redis's). They
// always exist (Stats reads them); they are written, with the histograms
// and gauges, only when the options' Metrics set is given: newStoreMetrics
// registers a writer on it. For Redis a transaction is one MULTI/EXEC, and
// with DurabilitySync each is one fsync by Redis; its value-log GC counter
// stays 0.
type storeMetrics struct {
	batchOps      *promtext.Histogram // ops per committed batch
	commitSeconds *promtext.Histogram // a batch's commit latency

	rejected *metrics.Counter // mcutie_store_ops_rejected_total
	errors   *metrics.Counter // mcutie_store_errors_total
	syncs    *metrics.Counter // mcutie_store_syncs_total
	batches  *metrics.Counter // mcutie_store_batches_total
	ops      *metrics.Counter // mcutie_store_ops_total
	txns     *metrics.Counter // mcutie_store_txns_total
	bytes    *metrics.Counter // mcutie_store_written_bytes_total
	gcRuns   *metrics.Counter // mcutie_store_vlog_gc_rewrites_total

	front  *commitFront
	gauges []gauge
}

// The store's metric families (docs/observability.md, docs/durability.md).
var (
	mBatchOps      = promtext.HistogramFamily("mcutie_store_commit_batch_ops", "Store operations per committed batch.")
	mCommitSeconds = promtext.HistogramFamily("mcutie_store_commit_seconds", "Time from the start of a batch's commit to its completion (fsync included with --durability=sync).")
	mRejected      = promtext.Counter("mcutie_store_ops_rejected_total", "Store operations refused because the commit queue was full.")
	mErrors        = promtext.Counter("mcutie_store_errors_total", "Batches whose commit failed.")
	mSyncs         = promtext.Counter("mcutie_store_syncs_total", "Transactions synced to disk (fsync) with --durability=sync.")
	mBatches       = promtext.Counter("mcutie_store_batches_total", "Batches committed.")
	mOps           = promtext.Counter("mcutie_store_ops_total", "Store operations committed.")
	mTxns          = promtext.Counter("mcutie_store_txns_total", "Store transactions committed (Redis: MULTI/EXEC blocks).")
	mWrittenBytes  = promtext.Counter("mcutie_store_written_bytes_total", "Bytes of keys and values written to the store.")
	mGCRewrites    = promtext.Counter("mcutie_store_vlog_gc_rewrites_total", "Badger value-log files rewritten by garbage collection.")
	mQueueLength   = promtext.Gauge("mcutie_store_queue_length", "Store operations waiting in the commit queue.")
	mQueueCapacity = promtext.Gauge("mcutie_store_queue_capacity", "Capacity of the commit queue, in operations (--commit-queue).")
	mInflightTxns  = promtext.Gauge("mcutie_store_inflight_txns", "Store transactions being committed now.")
)

// Histogram buckets: a batch holds 1 to MaxBatch (default 1024) ops; a
// commit takes tens of microseconds without fsync, a few milliseconds with
// it on an SSD, and seconds on a struggling disk or a distant Redis.
var (
	batchOpsBounds      = promtext.ExponentialBounds(1, 2, 14) // 1 … 8192
	commitSecondsBounds = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// gauge is a store's own gauge, written by storeMetrics.write.
type gauge struct {
	fam promtext.Family
	f   func() float64
}

// newStoreMetrics makes the store's metrics and, when set is not nil,
// registers their writer on it: the counters and histograms, the gauges of
// f's queue and transactions in flight, and the store's own gauges. A set
// takes one store (a second would write every family twice).
func newStoreMetrics(set *metrics.Set, f *commitFront, gauges ...gauge) *storeMetrics {
	m := &storeMetrics{
		batchOps:      promtext.NewHistogram(batchOpsBounds...),
		commitSeconds: promtext.NewHistogram(commitSecondsBounds...),
		rejected:      new(metrics.Counter), errors: new(metrics.Counter), syncs: new(metrics.Counter),
		batches: new(metrics.Counter), ops: new(metrics.Counter), txns: new(metrics.Counter),
		bytes: new(metrics.Counter), gcRuns: new(metrics.Counter),
		front: f, gauges: gauges,
	}
	if set != nil {
		set.RegisterMetricsWriter(m.write)
	}
	return m
}

// write writes the store's metrics in Prometheus text format. Safe for
// concurrent use.
func (m *storeMetrics) write(w io.Writer) {
	mBatchOps.Header(w)
	mBatchOps.Histogram(w, "", m.batchOps)
	mCommitSeconds.Header(w)
	mCommitSeconds.Histogram(w, "", m.commitSeconds)
	mRejected.Write(w, m.rejected.Get())
	mErrors.Write(w, m.errors.Get())
	mSyncs.Write(w, m.syncs.Get())
	mBatches.Write(w, m.batches.Get())
	mOps.Write(w, m.ops.Get())
	mTxns.Write(w, m.txns.Get())
	mWrittenBytes.Write(w, m.bytes.Get())
	mGCRewrites.Write(w, m.gcRuns.Get())
	mQueueLength.Write(w, uint64(m.front.q.len()))
	mQueueCapacity.Write(w, uint64(m.front.q.cap))
	mInflightTxns.Write(w, uint64(max(m.front.inflight.Load(), 0)))
	for _, g := range m.gauges {
		g.fam.WriteFloat(w, g.f())
	}
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
