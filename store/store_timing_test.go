package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApplyQoS1 stores one outbound QoS 1 message per Apply, as the
// broker does for a persistent subscriber, from many producers at once.
// Each producer keeps up to benchWindow Applies awaiting done (a loop with
// many publishers waiting for their PUBACK). Reported: ops/s, the mean batch
// size, and (sync) messages per disk sync.
func BenchmarkApplyQoS1(b *testing.B) {
	for _, d := range []Durability{DurabilityCommit, DurabilitySync, DurabilityNone} {
		b.Run(d.String(), func(b *testing.B) { benchApplyQoS1(b, d) })
	}
}

const benchWindow = 64

func benchApplyQoS1(b *testing.B, d Durability) {
	s := openTestBadger(b, BadgerOptions{Durability: d, GCInterval: -1})
	payload := bytes.Repeat([]byte("x"), 64)
	var producer atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS producers
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		cid := "client-" + strconv.FormatInt(producer.Add(1), 10)
		window := make(chan struct{}, benchWindow)
		release := func(err error) {
			if err != nil {
				panic(err)
			}
			<-window
		}
		o := &Outbound{ClientID: cid, Msg: Message{Topic: []byte("sensors/room-1/temp"), Payload: payload, QoS: 1}}
		ops := []Op{{Outbound: o}}
		for seq := uint64(0); pb.Next(); seq++ {
			window <- struct{}{}
			o.Seq = seq
			o.Msg.Created = int64(seq)
			for {
				err := s.Apply(ops, release)
				if !errors.Is(err, ErrQueueFull) {
					if err != nil {
						panic(err)
					}
					break
				}
				runtime.Gosched()
			}
		}
		for range benchWindow {
			window <- struct{}{}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Ops)/float64(st.Batches), "ops/batch")
	}
	if st.Syncs > 0 {
		b.ReportMetric(float64(st.Ops)/float64(st.Syncs), "msgs/sync")
	}
}

// BenchmarkApplyLatency is one producer waiting for each done: the
// latency of a lone op (an idle committer writes at once, no MaxDelay).
func BenchmarkApplyLatency(b *testing.B) {
	for _, d := range []Durability{DurabilityCommit, DurabilitySync, DurabilityNone} {
		b.Run(d.String(), func(b *testing.B) {
			s := openTestBadger(b, BadgerOptions{Durability: d, GCInterval: -1})
			o := &Outbound{ClientID: "c", Msg: Message{Topic: []byte("sensors/room-1/temp"), Payload: bytes.Repeat([]byte("x"), 64), QoS: 1}}
			ops := []Op{{Outbound: o}}
			ch := make(chan error, 1)
			done := func(err error) { ch <- err }
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				o.Seq = uint64(i)
				if err := s.Apply(ops, done); err != nil {
					b.Fatal(err)
				}
				if err := <-ch; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryApply is the baseline without a disk.
func BenchmarkMemoryApply(b *testing.B) {
	s := NewMemory()
	payload := bytes.Repeat([]byte("x"), 64)
	o := &Outbound{ClientID: "c", Msg: Message{Topic: []byte("sensors/room-1/temp"), Payload: payload, QoS: 1}}
	ops := []Op{{Outbound: o}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Seq = uint64(i)
		if err := s.Apply(ops, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeOps is the cost Apply puts on the caller's goroutine.
func BenchmarkEncodeOps(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 64)
	ops := []Op{{Outbound: &Outbound{ClientID: "client-1", Seq: 1, Msg: Message{Topic: []byte("sensors/room-1/temp"), Payload: payload, QoS: 1}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeOps(ops, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenEmpty reports the Go heap an opened, empty Badger store
// holds (mostly the memtable arena, allocated up front but not touched:
// resident memory grows far less; see TestOpenFootprint).
func BenchmarkOpenEmpty(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		heap0 := heapInUse()
		s, err := OpenBadger(BadgerOptions{Dir: b.TempDir(), Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ReportMetric(float64(heapInUse()-heap0)/(1<<20), "heap-MiB")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenFootprint logs what opening an empty store costs this process:
// Go heap, resident memory (Linux) and goroutines.
func TestOpenFootprint(t *testing.T) {
	runtime.GC()
	heap0, rss0, g0 := heapInUse(), rssBytes(), runtime.NumGoroutine()
	b := openTestBadger(t, BadgerOptions{})
	apply(t, b, fixture("c")...)
	runtime.GC()
	t.Logf("open empty store: heap +%.1f MiB, rss +%.1f MiB, goroutines +%d",
		float64(heapInUse()-heap0)/(1<<20), float64(rssBytes()-rss0)/(1<<20), runtime.NumGoroutine()-g0)
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// rssBytes reads VmRSS from /proc (Linux); 0 elsewhere.
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
