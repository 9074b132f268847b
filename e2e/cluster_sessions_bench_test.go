package e2e

import (
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
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

// BenchmarkClusterConnectWill: sequential cycles of a v5 client with a
// will (QoS 1, 64-byte payload, a new client id each): CONNECT →
// CONNACK → DISCONNECT 0x00 → closed, on one node of a three-node
// in-process cluster, with the wills replicated (each will copied into
// the wills bucket, then withdrawn) and without (--cluster-will-after 0),
// and on a single broker. Reports cycles/s and the CONNACK latency's p50
// and p99; "copies-left" is how many copies were still in the bucket when
// the run ended (withdrawals still queued) (docs/clustering.md, "Wills").
//
//	go test -run '^$' -bench ClusterConnectWill -benchtime 2000x ./e2e
func BenchmarkClusterConnectWill(b *testing.B) {
	payload := make([]byte, 64)
	run := func(b *testing.B, addr string) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			r := dialRaw(b, addr, codec.V5)
			t0 := time.Now()
			ack := r.connect(&codec.Connect{ClientID: []byte("bw-" + strconv.Itoa(i)), CleanStart: true, KeepAlive: 30,
				WillFlag: true, WillQoS: 1, WillTopic: []byte("bench/will/" + strconv.Itoa(i)), WillPayload: payload})
			lat = append(lat, time.Since(t0))
			if ack.Code != 0 {
				b.Fatalf("CONNACK 0x%02x", ack.Code)
			}
			r.send((&codec.Disconnect{Code: codec.NormalDisconnection}).Append(nil, codec.V5))
			_, _ = r.c.Read(make([]byte, 1)) // until the broker closes it
			r.c.Close()
		}
		el := time.Since(start)
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(b.N)/el.Seconds(), "cycles/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("single", func(b *testing.B) {
		tb := start(b, broker.Options{})
		run(b, tb.Addr)
	})
	b.Run("cluster3-no-replication", func(b *testing.B) {
		nodes := startCluster(b, 3, func(o *cluster.Options) { o.WillAfter = -1 })
		run(b, nodes[1].Addr)
	})
	b.Run("cluster3-replicated", func(b *testing.B) {
		nodes := startCluster(b, 3)
		run(b, nodes[1].Addr)
		b.ReportMetric(metricValue(b, nodes[1].node, "mcutie_cluster_wills"), "copies-left")
	})
}

// BenchmarkClusterWillFire: how long a will takes from its connection's
// abrupt close to a subscriber on the same node, one at a time: a v5
// client with a will (QoS 1) connects, its socket is closed, a v5
// subscriber on the same node waits for the will. On one node of a
// three-node in-process cluster with the wills replicated (the node
// deletes the will's copy before publishing it) and without, and on a
// single broker. Reports the p50 and p99 of close → delivery.
//
//	go test -run '^$' -bench ClusterWillFire -benchtime 500x ./e2e
func BenchmarkClusterWillFire(b *testing.B) {
	run := func(b *testing.B, addr string) {
		sub := dialRaw(b, addr, codec.V5)
		if ack := sub.connect(&codec.Connect{ClientID: []byte("bwf-sub"), CleanStart: true, KeepAlive: 60}); ack.Code != 0 {
			b.Fatalf("CONNACK 0x%02x", ack.Code)
		}
		sub.send((&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("bwf/#"), QoS: 0}}}).Append(nil, codec.V5))
		if h, _ := sub.read(v5Timeout); h.Type != codec.SUBACK {
			b.Fatalf("got %v, want SUBACK", h.Type)
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			r := dialRaw(b, addr, codec.V5)
			if ack := r.connect(&codec.Connect{ClientID: []byte("bwf-" + strconv.Itoa(i)), CleanStart: true, KeepAlive: 30,
				WillFlag: true, WillQoS: 1, WillTopic: []byte("bwf/" + strconv.Itoa(i)), WillPayload: []byte("gone")}); ack.Code != 0 {
				b.Fatalf("CONNACK 0x%02x", ack.Code)
			}
			t0 := time.Now()
			r.c.Close()
			if h, _ := sub.read(v5Timeout); h.Type != codec.PUBLISH {
				b.Fatalf("got %v, want the will", h.Type)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("single", func(b *testing.B) {
		tb := start(b, broker.Options{})
		run(b, tb.Addr)
	})
	b.Run("cluster3-no-replication", func(b *testing.B) {
		nodes := startCluster(b, 3, func(o *cluster.Options) { o.WillAfter = -1 })
		run(b, nodes[1].Addr)
	})
	b.Run("cluster3-replicated", func(b *testing.B) {
		nodes := startCluster(b, 3)
		run(b, nodes[1].Addr)
	})
}
