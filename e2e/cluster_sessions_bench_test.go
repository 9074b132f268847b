package e2e

import (
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// BenchmarkClusterConnect: sequential CONNECT → CONNACK round trips (raw
// v5 client, a new client id each, clean start) on one node of a
// three-node in-process cluster, where each CONNECT claims its client id
// in the replicated owners bucket, against a single broker with no
// cluster. Reports connects/s and the CONNACK latency's p50 and p99
// (docs/clustering.md, "Session ownership").
//
//	go test -run '^$' -bench ClusterConnect -benchtime 2000x ./e2e
func BenchmarkClusterConnect(b *testing.B) {
	run := func(b *testing.B, addr string) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			r := dialRaw(b, addr, codec.V5)
			t0 := time.Now()
			ack := r.connect(&codec.Connect{ClientID: []byte("bench-" + strconv.Itoa(i)), CleanStart: true, KeepAlive: 30})
			lat = append(lat, time.Since(t0))
			if ack.Code != 0 {
				b.Fatalf("CONNACK 0x%02x", ack.Code)
			}
			r.c.Close()
		}
		el := time.Since(start)
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(b.N)/el.Seconds(), "connects/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("single", func(b *testing.B) {
		tb := start(b, broker.Options{})
		run(b, tb.Addr)
	})
	b.Run("cluster3-claims", func(b *testing.B) {
		nodes := startCluster(b, 3)
		run(b, nodes[1].Addr)
	})
}
