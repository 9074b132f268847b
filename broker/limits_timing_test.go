package broker

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// BenchmarkBucketTake: one token bucket charge, as made per PUBLISH when
// --publish-rate or --publish-byte-rate is set.
func BenchmarkBucketTake(b *testing.B) {
	var k bucket
	k.fill(0, 1e9)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !k.take(int64(i), 1e9, 1e9, 1) {
			b.Fatal("bucket empty")
		}
	}
}

// BenchmarkAdmitRelease: Admit and Release of one connection with every
// connection limit set, from parallel goroutines over 256 addresses (as
// event loops accepting at once).
func BenchmarkAdmitRelease(b *testing.B) {
	br := limitBroker(b, Options{MaxConnections: 1 << 30, MaxConnectionsPerIP: 1 << 20, ConnectRatePerIP: 1e12, ConnectBurstPerIP: 1 << 30})
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ip := netip.AddrFrom4([4]byte{10, 1, 0, byte(next.Add(1))})
		for pb.Next() {
			t, err := br.Admit(ip)
			if err != nil {
				b.Fatal(err)
			}
			t.Release()
		}
	})
}
