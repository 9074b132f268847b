package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/mcutie/mcutie/internal/redistest"
)

// The conformance suite (store_test.go) also runs on Redis: each test gets
// its own redis-server (skipped when it is not installed).
func init() {
	moreBackends = append(moreBackends, backend{
		name: "redis",
		open: func(t *testing.T) Store {
			srv := redistest.Start(t, redistest.Options{})
			return openTestRedis(t, RedisOptions{Addr: srv.Addr})
		},
		reopen: func(t *testing.T, s Store) Store {
			r := s.(*Redis)
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openTestRedis(t, r.opt)
		},
	})
}

func openTestRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	r, err := OpenRedis(o)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// testKeys lists the record keys in the index, checking that the hash
// holds the same keys (rawKeys in store_test.go calls it).
func (r *Redis) testKeys(t testing.TB) []string {
	t.Helper()
	if err := r.flushWait(&unit{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	idx, err := r.c.ZRange(ctx, r.index, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields, err := r.c.HKeys(ctx, r.data).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(fields)
	if !slices.Equal(idx, fields) {
		t.Fatalf("redis index %q and hash %q differ", idx, fields)
	}
	return idx
}

// Redis itself restarts from its append-only file.
func TestRedisRestart(t *testing.T) {
	for _, d := range durabilities {
		t.Run(d.String(), func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{AOF: true, Fsync: "always"})
			o := RedisOptions{Addr: srv.Addr, Durability: d}
			testRestart(t, openTestRedis(t, o), d, func() Store {
				srv.Stop(t)
				srv.Restart(t)
				return openTestRedis(t, o)
			})
		})
	}
}

// The committer groups concurrent units into MULTI/EXEC batches.
func TestRedisGroupCommit(t *testing.T) {
	for _, d := range durabilities {
		t.Run(d.String(), func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{AOF: true, Fsync: "always"})
			testGroupCommit(t, openTestRedis(t, RedisOptions{Addr: srv.Addr, Durability: d}))
		})
	}
}

// Load pages through ranges larger than one round trip, in key order, and
// a session delete clears more records than the script's chunk.
func TestRedisLoadPagesAndBigDrop(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := openTestRedis(t, RedisOptions{Addr: srv.Addr})
	const n = 2*redisLoadPage + 345
	var ops []Op
	for i := range n {
		ops = append(ops,
			Op{Retained: &Message{Topic: fmt.Appendf(nil, "t/%05d", n-i), Payload: []byte("x")}},
			Op{Sub: &Subscription{ClientID: "big", Filter: fmt.Sprintf("f/%05d", i)}})
	}
	apply(t, r, ops...)
	apply(t, r, Op{Session: &Session{ClientID: "big", Version: 5}}, Op{Session: &Session{ClientID: "bi", Version: 5}},
		Op{Sub: &Subscription{ClientID: "bi", Filter: "keep"}})
	d := load(t, r)
	if len(d.Retained) != n || len(d.Subs) != n+1 {
		t.Fatalf("loaded %d retained, %d subs; want %d, %d", len(d.Retained), len(d.Subs), n, n+1)
	}
	if !slices.IsSortedFunc(d.Retained, func(a, b Message) int { return bytes.Compare(a.Topic, b.Topic) }) {
		t.Fatal("retained messages not in key order")
	}
	apply(t, r, Op{Delete: true, Session: &Session{ClientID: "big"}})
	d = load(t, r)
	equal(t, "subs after the session delete", d.Subs, []Subscription{{ClientID: "bi", Filter: "keep"}})
	equal(t, "stored keys", len(r.testKeys(t)), n+2)
}

// Brokers sharing one Redis with different prefixes do not see each
// other's records.
func TestRedisPrefixesShareOneServer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTestRedis(t, RedisOptions{Addr: srv.Addr, Prefix: "a:"})
	b := openTestRedis(t, RedisOptions{Addr: srv.Addr, Prefix: "b:"})
	apply(t, a, fixture("c")...)
	apply(t, b, fixture("c")...)
	apply(t, b, Op{Delete: true, Session: &Session{ClientID: "c"}})
	if d := load(t, a); len(d.Sessions) != 1 || len(d.Subs) != 2 {
		t.Fatalf("store a after b deleted its session: %+v", d)
	}
	if d := load(t, b); d.Order != "" {
		t.Fatalf("store b after its session delete: %q", d.Order)
	}
}

func TestRedisUnreachableAtOpen(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	start := time.Now()
	_, err := OpenRedis(RedisOptions{Addr: addr, Logger: quietLogger(), Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "cannot reach redis at "+addr) {
		t.Fatalf("OpenRedis of a closed port = %v, want a 'cannot reach redis' error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("OpenRedis took %v to fail", d)
	}
}

// --durability sync needs appendonly yes and appendfsync always.
func TestRedisSyncNeedsAOFAlways(t *testing.T) {
	f := func(o redistest.Options, ok bool) {
		t.Helper()
		srv := redistest.Start(t, o)
		r, err := OpenRedis(RedisOptions{Addr: srv.Addr, Durability: DurabilitySync, Logger: quietLogger()})
		if ok {
			if err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
			apply(t, r, fixture("c")...)
			if st := r.Stats(); st.Syncs != 1 || st.Txns != 1 {
				t.Fatalf("stats %+v, want 1 sync and 1 transaction", st)
			}
			_ = r.Close()
			return
		}
		if err == nil || !strings.Contains(err.Error(), "appendfsync always") {
			t.Fatalf("%+v: OpenRedis = %v, want a refusal naming appendfsync always", o, err)
		}
	}
	f(redistest.Options{}, false)
	f(redistest.Options{AOF: true, Fsync: "everysec"}, false)
	f(redistest.Options{AOF: true, Fsync: "always"}, true)
}

// Redis killed (kill -9) and started again: writes are refused while it is
// down and Healthy says so; the store reconnects by itself, and everything
// acknowledged before (appendfsync always) is still there.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true, Fsync: "always"})
	set := metrics.NewSet()
	r := openTestRedis(t, RedisOptions{Addr: srv.Addr, Durability: DurabilitySync, Timeout: time.Second, Metrics: set})
	apply(t, r, fixture("before")...)
	srv.Kill(t)

	ch := make(chan error, 1)
	if err := r.Apply(fixture("during"), func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		if err == nil {
			t.Fatal("a write with Redis killed was acknowledged")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s with Redis down")
	}
	if err := r.Healthy(); err == nil {
		t.Fatal("Healthy = nil with Redis down")
	}
	// Refused at once while down, without waiting for a timeout.
	t0 := time.Now()
	if err := r.Apply(fixture("during2"), func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err == nil || time.Since(t0) > 500*time.Millisecond {
		t.Fatalf("second write while down: %v after %v, want a quick refusal", err, time.Since(t0))
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), "mcutie_store_redis_up 0") {
		t.Fatalf("metrics while down lack mcutie_store_redis_up 0")
	}

	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for r.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store not healthy 10s after Redis came back: %v", r.Healthy())
		}
		time.Sleep(20 * time.Millisecond)
	}
	apply(t, r, fixture("after")...)
	var sessions []string
	for _, s := range load(t, r).Sessions {
		sessions = append(sessions, s.ClientID)
	}
	equal(t, "sessions", sessions, []string{"after", "before"})
	if st := r.Stats(); st.Errors < 2 {
		t.Fatalf("Stats.Errors = %d, want at least 2", st.Errors)
	}
}

// Readiness turns false without traffic when Redis goes away.
func TestRedisHealthWithoutTraffic(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := openTestRedis(t, RedisOptions{Addr: srv.Addr, Timeout: time.Second})
	srv.Kill(t)
	deadline := time.Now().Add(5 * time.Second)
	for r.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Healthy still nil 5s after Redis was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisCloseFlushes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := RedisOptions{Addr: srv.Addr, MaxDelay: time.Hour}
	testCloseFlushes(t, openTestRedis(t, o), func() Store { return openTestRedis(t, o) })
}

func TestRedisMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	set := metrics.NewSet()
	r := openTestRedis(t, RedisOptions{Addr: srv.Addr, Metrics: set})
	testMetrics(t, r, set, "mcutie_store_txns_total 1", "mcutie_store_redis_up 1")
}

// A value that does not decode stops Load with an error naming its key.
func TestRedisCorruptValueFailsLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := openTestRedis(t, RedisOptions{Addr: srv.Addr})
	ctx := context.Background()
	if err := r.c.HSet(ctx, r.data, "tbad", "\x09junk").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.c.ZAdd(ctx, r.index, redis.Z{Member: "tbad"}).Err(); err != nil {
		t.Fatal(err)
	}
	err := r.Load(Visitor{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("Load = %v, want ErrCorrupt naming the key", err)
	}
}
