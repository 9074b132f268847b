package promtext

import (
	"math"
	"sort"
	"strconv"
	"sync/atomic"
)

// Histogram counts observations into fixed buckets, written as a
// Prometheus histogram (cumulative _bucket{le="…"} series, _sum and
// _count) so that histogram_quantile works on it.
//
// Observe is lock-free and allocates nothing. A scrape reads the buckets
// one by one while observations go on, so _sum may lead or lag _count by
// the observations in progress; _count always equals the +Inf bucket.
type Histogram struct {
	bounds []float64       // upper bounds, strictly increasing, +Inf implied
	counts []atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	sum    atomic.Uint64   // math.Float64bits of the sum
}

// NewHistogram returns a histogram with the given upper bounds (strictly
// increasing and finite; +Inf is implied). Bad bounds are a BUG.
func NewHistogram(bounds ...float64) *Histogram {
	if len(bounds) == 0 {
		panic("BUG: promtext: a histogram needs at least one bucket")
	}
	for i, b := range bounds {
		if math.IsInf(b, 0) || math.IsNaN(b) || i > 0 && b <= bounds[i-1] {
			panic("BUG: promtext: histogram bounds must be finite and strictly increasing, at " + strconv.FormatFloat(b, 'g', -1, 64))
		}
	}
	return &Histogram{bounds: append([]float64(nil), bounds...), counts: make([]atomic.Uint64, len(bounds)+1)}
}

// ExponentialBounds returns count bounds: start, start*factor, ….
func ExponentialBounds(start, factor float64, count int) []float64 {
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// Observe adds v (in the family's unit: seconds, not nanoseconds). NaN is
// ignored. Safe for concurrent use.
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	// The first bound >= v: a value equal to a bound is in that bucket (le).
	h.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum is the sum of the observations.
func (h *Histogram) Sum() float64 { return math.Float64frombits(h.sum.Load()) }

func (h *Histogram) snapshot() ([]uint64, float64) {
	c := make([]uint64, len(h.counts))
	for i := range h.counts {
		c[i] = h.counts[i].Load()
	}
	return c, h.Sum()
}
