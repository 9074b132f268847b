package promtext

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"testing"
)

func BenchmarkHistogramObserveParallel(b *testing.B) {
	h := NewHistogram(ExponentialBounds(0.00005, 2, 17)...)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := 0.0
		for pb.Next() {
			v += 0.0001
			if v > 5 {
				v = 0
			}
			h.Observe(v)
		}
	})
}

// BenchmarkMerge: one scrape's worth (about 700 lines, as a broker with 4
// loops and a store writes) through Merge.
func BenchmarkMerge(b *testing.B) {
	var src bytes.Buffer
	for i := range 100 {
		f := Counter(fmt.Sprintf("bench_family_%d_total", i), "A family.")
		f.Header(&src)
		for l := range 6 {
			f.Sample(&src, Labels("loop", strconv.Itoa(l)), uint64(i*l))
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(src.Len()))
	for b.Loop() {
		if err := Merge(io.Discard, src.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
