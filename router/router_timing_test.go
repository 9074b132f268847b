package router

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// GlobalSink keeps benchmark results alive against dead-code elimination.
var GlobalSink int

type benchSession struct{ id int }

// BenchmarkShardMatch100kSubs: 100k subscriptions, 80% exact, 10% '+', 10%
// '#', for 100k sessions over 1000 sites.
func BenchmarkShardMatch100kSubs(b *testing.B) {
	const n = 100_000
	sessions := make([]benchSession, n)
	before := heapAlloc()
	s := NewShard[*benchSession]()
	var buf []byte
	for i := range n {
		k := &sessions[i]
		site := strconv.Itoa(i % 1000)
		buf = append(buf[:0], "site/"...)
		buf = append(buf, site...)
		switch i % 10 {
		case 0:
			buf = append(buf, "/dev/+/temp"...)
		case 1:
			buf = append(buf, "/#"...)
		default:
			buf = append(buf, "/dev/"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, "/temp"...)
		}
		s.Subscribe(buf, k, SubOptions{QoS: 1})
	}
	heap := heapAlloc() - before
	topics := [][]byte{
		[]byte("site/42/dev/42042/temp"), // exact + '+' + '#' hits
		[]byte("site/43/dev/43/temp"),    // exact + '#'
		[]byte("site/999/dev/0/humidity"),
		[]byte("nosuch/topic"),
	}
	dst := make([]Entry[*benchSession], 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dst = s.Match(topics[i%len(topics)], dst[:0])
		GlobalSink += len(dst)
	}
	b.StopTimer()
	runtime.KeepAlive(s)
	b.ReportMetric(float64(heap)/n, "heap-B/sub")
}

// heapAlloc returns the live heap after a full collection.
func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkShardSubscribe subscribes distinct filters "dev/<i%1000>/<i>/temp".
func BenchmarkShardSubscribe(b *testing.B) {
	s := NewShard[*benchSession]()
	k := &benchSession{}
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = append(buf[:0], "dev/"...)
		buf = strconv.AppendInt(buf, int64(i%1000), 10)
		buf = append(buf, '/')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "/temp"...)
		s.Subscribe(buf, k, SubOptions{})
	}
	GlobalSink += s.Len()
}

// BenchmarkSharedMatch: 1000 groups of 10 members over exact, '+' and '#'
// filters; a publish matches 3 groups.
func BenchmarkSharedMatch(b *testing.B) {
	s := NewShared[*benchSession]()
	var g, f []byte
	for i := range 10_000 {
		k := &benchSession{id: i}
		grp := i / 10
		g = strconv.AppendInt(append(g[:0], 'g'), int64(grp), 10)
		f = strconv.AppendInt(append(f[:0], "jobs/"...), int64(grp), 10)
		switch grp % 10 {
		case 0:
			f = append(f, "/+"...)
		case 1:
			f = append(f, "/#"...)
		default:
			f = append(f, "/run"...)
		}
		s.Subscribe(g, f, k, SubOptions{QoS: 1})
		s.Subscribe([]byte("all"), []byte("jobs/+/run"), k, SubOptions{})
	}
	topic := []byte("jobs/42/run")
	accept := func(k *benchSession) bool { return k.id%3 != 0 }
	dst := make([]Entry[*benchSession], 0, 16)
	b.ReportAllocs()
	b.Run("accept=nil", func(b *testing.B) {
		for b.Loop() {
			dst = s.Match(topic, dst[:0], nil)
			GlobalSink += len(dst)
		}
	})
	b.Run("accept=func", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dst = s.Match(topic, dst[:0], accept)
			GlobalSink += len(dst)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			d := make([]Entry[*benchSession], 0, 16)
			for pb.Next() {
				d = s.Match(topic, d[:0], nil)
			}
		})
	})
}

// BenchmarkRetainedMatch1M builds 1M retained topics
// "dev/<i/1000>/<i%1000>/temp", reports the build time and heap size, and
// matches "dev/42/+/temp" (1000 results).
func BenchmarkRetainedMatch1M(b *testing.B) {
	if testing.Short() {
		b.Skip("1M topics: skipped with -short")
	}
	const n = 1_000_000
	before := heapAlloc()
	start := time.Now()
	r := NewRetained[*benchSession]()
	v := &benchSession{}
	var buf []byte
	for i := range n {
		buf = append(buf[:0], "dev/"...)
		buf = strconv.AppendInt(buf, int64(i/1000), 10)
		buf = append(buf, '/')
		buf = strconv.AppendInt(buf, int64(i%1000), 10)
		buf = append(buf, "/temp"...)
		r.Set(buf, v)
	}
	build := time.Since(start)
	heap := heapAlloc() - before

	filter := []byte("dev/42/+/temp")
	dst := make([]*benchSession, 0, 1024)
	if got := len(r.Match(filter, dst)); got != 1000 {
		b.Fatalf("Match(%q) = %d results; want 1000", filter, got)
	}
	b.ReportAllocs()
	for b.Loop() {
		dst = r.Match(filter, dst[:0])
		GlobalSink += len(dst)
	}
	b.StopTimer()
	runtime.KeepAlive(r)
	// After the loop: ResetTimer (which b.Loop calls) drops reported metrics.
	b.ReportMetric(float64(build.Milliseconds()), "build-ms")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(heap)/n, "heap-B/topic")
}

// BenchmarkRetainedSet replaces values of existing topics (the steady state
// of a retained publish).
func BenchmarkRetainedSet(b *testing.B) {
	r := NewRetained[int]()
	topics := make([][]byte, 10_000)
	for i := range topics {
		topics[i] = []byte("dev/" + strconv.Itoa(i/100) + "/" + strconv.Itoa(i%100) + "/temp")
		r.Set(topics[i], i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Set(topics[i%len(topics)], i)
	}
}
