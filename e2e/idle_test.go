package e2e

import (
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// waitQuiet waits until every loop of tb is quiet (broker.Loop.Quiesce)
// and the reactor's ticker, started with start's 100 ms tick, has seen it
// and sleeps: what comes next must wake it.
func waitQuiet(t testing.TB, tb *testBroker) {
	t.Helper()
	quiet := func() bool {
		for i := range tb.B.NumLoops() {
			if q, _ := tb.B.Loop(i).Quiet(); !q {
				return false
			}
		}
		return true
	}
	v3WaitFor(t, "every loop quiet", quiet)
	time.Sleep(300 * time.Millisecond) // the ticker's round after the last Tick
	if !quiet() {
		t.Fatal("a loop became active with no client")
	}
}

// TestQuietBrokerKeepsItsTimers: a broker with no clients stops ticking
// its loops, and the first connection to arrive wakes the ticker again:
// the connect timeout closes a connection that never speaks, and the
// keep-alive [MQTT-3.1.2-24] closes a client that falls silent, each on
// a broker that was quiet just before.
func TestQuietBrokerKeepsItsTimers(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{ConnectTimeout: 300 * time.Millisecond})
	waitQuiet(t, tb)
	dialRaw(t, tb.Addr, codec.V311).refusedAtAccept()
	waitStat(t, tb, "connect timeout counted", func(s broker.Stats) uint64 { return s.Rejected["connect_timeout"] }, 1)

	waitQuiet(t, tb)
	r, _ := v3Raw(t, tb.Addr, codec.V311, "quiet-ka", true, func(p *codec.Connect) { p.KeepAlive = 1 })
	r.v3Closed()
	waitStat(t, tb, "keep-alive timeout counted", func(s broker.Stats) uint64 { return s.Rejected["keepalive_timeout"] }, 1)
	waitQuiet(t, tb) // and quiet again once it is gone
}

// TestQuietWithIdleClients: a loop whose connections are all idle is
// quiet until the earliest keep-alive deadline, and wakes for it: a client
// that falls silent is closed [MQTT-3.1.2-24] by the tick the deadline
// brings, with no packet or connection to wake the loop before.
func TestQuietWithIdleClients(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{Loops: 1})
	r, _ := v3Raw(t, tb.Addr, codec.V311, "quiet-idle", true, func(p *codec.Connect) { p.KeepAlive = 2 })
	waitQuiet(t, tb) // with the client connected: quiet until its deadline
	if q, wake := tb.B.Loop(0).Quiet(); !q || wake == 0 {
		t.Fatalf("loop quiet %v until %d with an idle client, want quiet until its keep-alive deadline", q, wake)
	}
	r.v3Closed()
	waitStat(t, tb, "keep-alive timeout counted", func(s broker.Stats) uint64 { return s.Rejected["keepalive_timeout"] }, 1)
}
