package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/internal/redistest"
)

// The binary on the Redis store (--store redis): each test starts its own
// redis-server (internal/redistest) and is skipped when there is none.

// redisArgs are the flags that put the binary on srv, under its own prefix.
func redisArgs(srv *redistest.Server, durability string) []string {
	return []string{"--store", "redis", "--redis-addr", srv.Addr, "--redis-prefix", "e2e:", "--durability", durability}
}

// The binary refuses to start, exit status 1 and a message saying why,
// when Redis cannot be reached, or when --durability sync is asked of a
// Redis that does not fsync every write.
func TestRedis_StartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker binary")
	}
	srv := redistest.Start(t, redistest.Options{})
	t.Run("unreachable", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		code, log := procExit(t, durRun(t, t.TempDir(), freePort(t), "--store", "redis", "--redis-addr", addr))
		if code != 1 || !strings.Contains(log, "cannot reach redis at "+addr) {
			t.Fatalf("exit %d, log:\n%s\nwant exit 1 and 'cannot reach redis'", code, log)
		}
	})
	t.Run("sync without appendfsync always", func(t *testing.T) {
		code, log := procExit(t, durRun(t, t.TempDir(), freePort(t), redisArgs(srv, "sync")...))
		if code != 1 || !strings.Contains(log, "appendfsync always") {
			t.Fatalf("exit %d, log:\n%s\nwant exit 1 and a message naming appendfsync always", code, log)
		}
	})
}

// TestRedis_CrashKill9 is TestDurable_CrashKill9 on the Redis store: the
// binary killed with SIGKILL under QoS 1 and 2 load and restarted, Redis
// staying up (AOF on, everysec): whatever was acknowledged is delivered,
// QoS 2 exactly once, and in the end everything sent.
func TestRedis_CrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary")
	}
	srv := redistest.Start(t, redistest.Options{AOF: true})
	durCrash(t, 2, true, 3, redisArgs(srv, "commit")...)
}

// TestRedis_KilledUnderLoad: Redis (AOF, appendfsync always) killed with
// SIGKILL while a publisher and a subscriber run, and started again; the
// broker (--durability sync) stays up. While Redis is down the broker
// refuses what it cannot store (v5 PUBACK/PUBREC 0x80) and /readyz fails;
// it reconnects by itself and serves on. Then the broker is killed and
// restarted from Redis: every message acknowledged before, during or
// after the outage is delivered.
//
// QoS 1 and 2, the subscriber offline during the outages. This found two
// defects of the broker's QoS 2 bookkeeping under a failing store (the
// same with Badger): a PUBREC refused for a store failure kept its packet
// id, so the publisher's resend was taken for a duplicate and the message
// acknowledged and lost; and a refused PUBCOMP carried 0x80, a code it may
// not carry. The publisher is v5 and reconnects when the broker ends its
// connection.
func TestRedis_KilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary")
	}
	srv := redistest.Start(t, redistest.Options{AOF: true, Fsync: "always"})
	dir, port, mport := t.TempDir(), freePort(t), freePort(t)
	flags := append(redisArgs(srv, "sync"), "--max-queued-messages", "10000000", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport))
	proc := durStartProc(t, dir, port, flags...)
	ready := func() bool {
		c := http.Client{Timeout: time.Second}
		r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", mport))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	}
	waitReady := func(want bool, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for ready() != want {
			if time.Now().After(deadline) {
				t.Fatalf("/readyz not %v within %v", want, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady(true, 10*time.Second)

	until := time.Now().Add(2 * time.Minute)
	led := newDurLedger()
	sub := &durSub{led: led, awaitRel: map[uint16]int{}}
	pub := &durPublisher{cid: "redis-pub", persistent: true, ack: led.ack, resent: led.resend}
	sc, _ := durSubConnect(t, proc.Addr)
	subscribe := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("crash/1"), QoS: 1}, {Filter: []byte("crash/2"), QoS: 2}}}
	if err := sc.write(subscribe.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	if h, _, err := sc.read(v5Timeout); err != nil || h.Type != codec.SUBACK {
		t.Fatalf("want SUBACK, got type %d, err %v", h.Type, err)
	}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 3))
	t.Logf("seed %d", seed)
	// QoS 1 and 2 (QoS 0 may be lost by design).
	qos12 := func() (codec.Publish, int, bool) {
		for {
			if p, n, ok := led.nextPublish(); p.QoS >= 1 || !ok {
				return p, n, ok
			}
		}
	}
	const cycles = 2
	for cycle := 1; cycle <= cycles; cycle++ {
		// The subscriber is offline during the outage: its messages are
		// queued in its session (stored, or refused with the publish).
		_ = sc.write((&codec.Disconnect{}).Append(nil, codec.V311))
		sc.close()
		// The publisher reconnects whenever its connection ends (the broker
		// closes it for an acknowledgement it cannot give), until the kill.
		var stop atomic.Bool
		pubDone := make(chan int, 1)
		go func(addr string) {
			runs := 0
			for !stop.Load() {
				runs++
				if pub.run(addr, qos12) != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
			pubDone <- runs
		}(proc.Addr)

		time.Sleep(200*time.Millisecond + time.Duration(rng.Int64N(int64(300*time.Millisecond))))
		srv.Kill(t)
		waitReady(false, 5*time.Second)
		time.Sleep(300 * time.Millisecond)
		led.mu.Lock()
		refusedDown := len(led.refused)
		led.mu.Unlock()
		srv.Restart(t)
		waitReady(true, 10*time.Second)
		time.Sleep(300 * time.Millisecond) // acknowledged again, through the new connection
		led.mu.Lock()
		acked := led.cAcked
		led.mu.Unlock()
		t.Logf("cycle %d: %d refused by the time Redis came back, %d acknowledged so far", cycle, refusedDown, acked)

		stop.Store(true)
		proc.kill(t)
		select {
		case runs := <-pubDone:
			t.Logf("cycle %d: the publisher connected %d times", cycle, runs)
		case <-time.After(10 * time.Second):
			t.Fatal("the publisher did not notice the broker's death within 10s")
		}
		proc = durStartProc(t, dir, port, flags...)
		var present bool
		sc, present = durSubConnect(t, proc.Addr)
		if !present {
			t.Fatalf("cycle %d: the subscriber resumed with Session Present 0", cycle)
		}
		if err := sub.run(sc, time.Second, until); err != nil {
			t.Fatalf("cycle %d: draining: %v", cycle, err)
		}
		led.check(t, cycle, "offline, Redis killed", len(sub.awaitRel), false)
	}
	led.mu.Lock()
	refused := len(led.refused)
	led.mu.Unlock()
	if refused == 0 {
		t.Errorf("nothing was refused while Redis was down: the outage was not seen")
	}
	sc.close()
	proc.term(t)
}
