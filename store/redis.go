package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// RedisOptions configure OpenRedis. Zero values take the defaults.
type RedisOptions struct {
	// Addr is host:port, default 127.0.0.1:6379.
	Addr     string
	Username string // ACL user; empty: the default user
	Password string
	DB       int
	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// Prefix starts the names of the two Redis keys the store uses
	// (<Prefix>data and <Prefix>keys), default "mcutie:". Brokers sharing a
	// Redis need distinct prefixes.
	Prefix     string
	Durability Durability
	// MaxBatch, MaxDelay and QueueSize are as in BadgerOptions.
	MaxBatch  int
	MaxDelay  time.Duration
	QueueSize int
	// Timeout bounds dialing and each read and write, default 3s.
	Timeout time.Duration
	// Logger receives the store's warnings and errors; default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, gets the store's metrics (the mcutie_store_* names
	// Badger uses). A set takes one store.
	Metrics *metrics.Set
}

const (
	defaultRedisAddr    = "127.0.0.1:6379"
	defaultRedisPrefix  = "mcutie:"
	defaultRedisTimeout = 3 * time.Second
	// redisMaxValue is Redis's default proto-max-bulk-len (512 MiB), and
	// more than an MQTT packet can carry.
	redisMaxValue = 512 << 20
	// redisLoadPage is how many records one Load round trip fetches.
	redisLoadPage = 1000
	// The reconnect backoff, and how often a healthy store checks Redis
	// (so that readiness turns false without traffic).
	redisBackoffMin = 50 * time.Millisecond
	redisBackoffMax = 2 * time.Second
	redisCheckEvery = time.Second
)

func (o *RedisOptions) setDefaults() {
	if o.Addr == "" {
		o.Addr = defaultRedisAddr
	}
	if o.Prefix == "" {
		o.Prefix = defaultRedisPrefix
	}
	setFrontDefaults(&o.MaxBatch, &o.MaxDelay, &o.QueueSize, &o.Logger)
	if o.Timeout <= 0 {
		o.Timeout = defaultRedisTimeout
	}
}

// Redis is a Store in a Redis server: the same keys and values as Badger,
// behind the same group-commit queue. See the package documentation.
type Redis struct {
	commitFront // Apply, Stats; inflight counts batches handed to the writer
	c           *redis.Client
	opt         RedisOptions
	data        string // hash: record key → value
	index       string // sorted set, all scores 0: the record keys in byte order

	// committer → writer: at most maxInflight batches, written in order.
	work   chan *redisBatch
	doneCh chan struct{} // writer → committer: one batch finished

	watchStop chan struct{}
	watchDone chan struct{}
	kick      chan struct{} // wakes the watcher after a failed write

	down    atomic.Pointer[error] // why Redis is unusable; nil while it is reachable
	logDown throttle
}

var _ Store = (*Redis)(nil)

// redisBatch is one MULTI/EXEC: the units it completes and its commands.
type redisBatch struct {
	batchHead
	cmds [][]any // each a command and its arguments
}

// mRedisUp is the Redis store's own gauge.
var mRedisUp = promtext.Gauge("mcutie_store_redis_up", "1 while the Redis server answers, 0 while the store has marked it down.")

// OpenRedis connects to Redis and checks it can serve as the store: it
// fails when Redis cannot be reached or authenticated, or, with
// DurabilitySync, when Redis does not fsync its append-only file on every
// write (appendonly yes, appendfsync always).
func OpenRedis(o RedisOptions) (*Redis, error) {
	o.setDefaults()
	if o.Durability < DurabilityCommit || o.Durability > DurabilityNone {
		return nil, fmt.Errorf("store: invalid durability %d", int(o.Durability))
	}
	c := redis.NewClient(&redis.Options{
		Addr:            o.Addr,
		Username:        o.Username,
		Password:        o.Password,
		DB:              o.DB,
		TLSConfig:       o.TLS,
		Protocol:        2,
		DialTimeout:     o.Timeout,
		ReadTimeout:     o.Timeout,
		WriteTimeout:    o.Timeout,
		DialerRetries:   1,
		MaxRetries:      -1, // a failed batch is reported, never sent twice
		PoolSize:        4,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
	log := o.Logger.With("component", "store", "redis", o.Addr)
	r := &Redis{
		commitFront: newCommitFront(log, o.Durability, o.MaxBatch, o.MaxDelay, o.QueueSize,
			redisMaxValue, "give Redis a faster disk or network path"),
		c:         c,
		opt:       o,
		data:      o.Prefix + "data",
		index:     o.Prefix + "keys",
		work:      make(chan *redisBatch, maxInflight),
		doneCh:    make(chan struct{}, maxInflight),
		watchStop: make(chan struct{}),
		watchDone: make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	if err := r.check(context.Background(), true); err != nil {
		_ = c.Close()
		return nil, err
	}
	// The same metrics as Badger's, and whether Redis is reachable.
	r.m = newStoreMetrics(o.Metrics, &r.commitFront, gauge{mRedisUp, func() float64 {
		if r.down.Load() != nil {
			return 0
		}
		return 1
	}})
	go r.commit()
	go r.watch()
	return r, nil
}

// check probes Redis: it answers a command on the store's keys (not
// during loading), and with DurabilitySync it fsyncs every write. At open
// it also warns when Redis persists nothing.
func (r *Redis) check(ctx context.Context, open bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	if err := r.c.Exists(ctx, r.index).Err(); err != nil {
		var re redis.Error
		if errors.As(err, &re) {
			return fmt.Errorf("store: redis %s refuses commands: %w", r.opt.Addr, err)
		}
		return fmt.Errorf("store: cannot reach redis at %s (is it running? check --redis-addr, --redis-tls): %w", r.opt.Addr, err)
	}
	if r.opt.Durability != DurabilitySync && !open {
		return nil
	}
	cfg, err := r.c.ConfigGet(ctx, "*").Result()
	if err != nil {
		if r.opt.Durability == DurabilitySync {
			return fmt.Errorf("store: --durability sync needs Redis's appendonly and appendfsync settings, and CONFIG GET failed on %s: %w", r.opt.Addr, err)
		}
		return nil
	}
	if r.opt.Durability == DurabilitySync {
		if cfg["appendonly"] != "yes" || cfg["appendfsync"] != "always" {
			return fmt.Errorf("store: --durability sync needs Redis at %s to fsync every write to its append-only file, but it has appendonly %q, appendfsync %q; set appendonly yes and appendfsync always in redis.conf, or use --durability commit",
				r.opt.Addr, cfg["appendonly"], cfg["appendfsync"])
		}
	} else if open && cfg["appendonly"] != "yes" && strings.TrimSpace(cfg["save"]) == "" {
		r.log.Warn("store: Redis persists nothing (appendonly no, no save points): a Redis restart loses the broker's state; set appendonly yes")
	}
	return nil
}

// DoneInline is false: done runs on the store's writer goroutine.
func (r *Redis) DoneInline() bool { return false }

// loadScript returns up to ARGV[3] records of the index range
// [ARGV[1], ARGV[2]] as key, value, key, value…; a key without a value
// (never written so by the store) comes with a nil value.
var loadScript = redis.NewScript(`
local ks = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ks == 0 then return {} end
local vs = redis.call('HMGET', KEYS[2], unpack(ks))
local out = {}
for i = 1, #ks do
  out[2*i-1] = ks[i]
  out[2*i] = vs[i]
end
return out
`)

// dropScript deletes every record of the clients ARGV[2..] whose key type
// is one of the bytes of ARGV[1]; it runs inside the batch's MULTI, before
// the batch's writes.
const dropScript = `
local idx, data, pfx = KEYS[1], KEYS[2], ARGV[1]
local n = 0
for a = 2, #ARGV do
  for j = 1, #pfx do
    local p = string.sub(pfx, j, j)
    local lo, hi = '[' .. p .. ARGV[a] .. '\0', '(' .. p .. ARGV[a] .. '\1'
    local ks = redis.call('ZRANGEBYLEX', idx, lo, hi)
    for s = 1, #ks, 1000 do
      redis.call('HDEL', data, unpack(ks, s, math.min(s + 999, #ks)))
    end
    if #ks > 0 then redis.call('ZREMRANGEBYLEX', idx, lo, hi) end
    n = n + #ks
  end
end
return n
`

// Load streams the stored state; see Store.Load. It first waits for every
// earlier Apply to be written, and must not be called from a done callback.
// Each key range is read in pages of redisLoadPage records, one round trip
// each, the next page fetched while the current one is visited.
func (r *Redis) Load(v Visitor) error {
	if err := r.flushWait(&unit{}); err != nil {
		return err
	}
	if p := r.down.Load(); p != nil {
		return *p
	}
	l := newLoader(v, time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pages := make(chan redisPage, 2)
	go r.readPages(ctx, pages)
	for pg := range pages {
		if pg.err != nil {
			return fmt.Errorf("store: load from redis %s: %w", r.opt.Addr, pg.err)
		}
		for i := 0; i+1 < len(pg.kv); i += 2 {
			key := []byte(pg.kv[i].(string))
			val, ok := pg.kv[i+1].(string)
			if !ok {
				// Only a hand edit makes an index entry without a value.
				r.log.Warn("store: redis index names a record that is not stored; dropping it", "key", quoteShort(key))
				l.dels = append(l.dels, key)
				continue
			}
			if err := l.visit(key, []byte(val)); err != nil {
				return err
			}
		}
	}
	return r.deleteExpired(l)
}

type redisPage struct {
	kv  []any
	err error
}

// readPages sends the pages of every key range, in loadOrder, then closes
// out; it stops at the first error (sent as the last page) or when ctx ends.
func (r *Redis) readPages(ctx context.Context, out chan<- redisPage) {
	defer close(out)
	keys := []string{r.index, r.data}
	for _, p := range loadOrder {
		lo, hi := "["+string(rune(p)), "("+string(rune(p+1))
		for {
			res, err := loadScript.Run(ctx, r.c, keys, lo, hi, redisLoadPage).Slice()
			if err != nil && !errors.Is(err, redis.Nil) {
				select {
				case out <- redisPage{err: err}:
				case <-ctx.Done():
				}
				return
			}
			if len(res) > 0 {
				select {
				case out <- redisPage{kv: res}:
				case <-ctx.Done():
					return
				}
			}
			if len(res)/2 < redisLoadPage {
				break
			}
			lo = "(" + res[len(res)-2].(string)
		}
	}
}

// Healthy returns ErrClosed after Close, an error while Redis is
// unreachable or the last batch failed, and nil otherwise. Safe for
// concurrent use.
func (r *Redis) Healthy() error {
	return r.health(r.down.Load())
}

// Close stops taking ops, writes everything queued (calling its done
// callbacks; with Redis unreachable they get the error) and disconnects.
// Later calls return ErrClosed.
func (r *Redis) Close() error {
	err := ErrClosed
	r.closeOnce.Do(func() {
		r.drain()
		close(r.watchStop)
		<-r.watchDone
		err = r.c.Close()
		if err != nil {
			err = fmt.Errorf("store: close redis connection: %w", err)
		}
	})
	return err
}

// commit is the committer goroutine: runCommitter's loop, handing batches
// to the writer goroutine and keeping at most maxInflight handed over.
func (r *Redis) commit() {
	defer close(r.committerDone)
	writerDone := make(chan struct{})
	go r.write(writerDone)
	defer func() { close(r.work); <-writerDone }()
	runCommitter(&r.commitFront, &redisCommitter{r: r}, r.doneCh)
}

// redisCommitter is the committer's side of the writer: how many batches
// it has handed over that the writer has not finished.
type redisCommitter struct {
	r        *Redis
	inflight int
}

func (c *redisCommitter) room() bool { return c.inflight < maxInflight }
func (c *redisCommitter) idle() bool { return c.inflight == 0 }

func (c *redisCommitter) hand(units []*unit, ops int) {
	c.inflight++
	c.r.inflight.Store(int32(c.inflight))
	c.r.work <- c.r.build(units, ops)
}

func (c *redisCommitter) written(struct{}) {
	c.inflight--
	c.r.inflight.Store(int32(c.inflight))
}

// build coalesces the units' entries (the last write per key wins; a
// session delete turns the client's earlier writes into deletes) and makes
// the batch's commands: the session deletes' script first (it deletes the
// clients' stored records), then the writes and the deletes.
func (r *Redis) build(units []*unit, ops int) *redisBatch {
	bt := &redisBatch{batchHead: batchHead{units: units, ops: ops, start: time.Now()}}
	var tb txnBuilder
	tb.reset()
	for _, u := range units {
		bt.bytes += u.bytes
		for i := range u.ents {
			tb.apply(&u.ents[i])
		}
	}
	if len(tb.drops) > 0 {
		cmd := make([]any, 0, 5+len(tb.drops))
		cmd = append(cmd, "EVAL", dropScript, 2, r.index, r.data, string(clientPrefixes[:]))
		for _, cid := range tb.drops {
			cmd = append(cmd, cid)
		}
		bt.cmds = append(bt.cmds, cmd)
	}
	var hset, zadd, hdel, zrem []any
	for i := range tb.ents {
		e := &tb.ents[i]
		if e.del {
			if hdel == nil {
				hdel, zrem = []any{"HDEL", r.data}, []any{"ZREM", r.index}
			}
			hdel = append(hdel, e.key)
			zrem = append(zrem, e.key)
			continue
		}
		if hset == nil {
			hset, zadd = []any{"HSET", r.data}, []any{"ZADD", r.index}
		}
		hset = append(hset, e.key, e.val)
		zadd = append(zadd, 0, e.key)
	}
	for _, c := range [][]any{hset, zadd, hdel, zrem} {
		if c != nil {
			bt.cmds = append(bt.cmds, c)
		}
	}
	return bt
}

// write is the writer goroutine: it sends each batch as one MULTI/EXEC, in
// order, and completes it.
func (r *Redis) write(done chan<- struct{}) {
	defer close(done)
	for bt := range r.work {
		if len(bt.cmds) > 0 {
			bt.err = r.exec(bt)
		}
		r.finish(bt)
		r.doneCh <- struct{}{}
	}
}

// exec runs bt's commands in one MULTI/EXEC, or fails at once while Redis
// is known to be unreachable.
func (r *Redis) exec(bt *redisBatch) error {
	if p := r.down.Load(); p != nil {
		return *p
	}
	ctx := context.Background()
	cmds, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range bt.cmds {
			p.Do(ctx, c...)
		}
		return nil
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("store: redis %s: %w", r.opt.Addr, err)
		r.markDown(err)
		return err
	}
	return nil
}

// markDown records that Redis failed a write: later batches fail at once
// until the watcher has reached Redis again.
func (r *Redis) markDown(err error) {
	if r.down.CompareAndSwap(nil, &err) {
		r.log.Error("store: Redis failed a write; refusing writes until it answers again", "err", err)
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Redis) finish(bt *redisBatch) {
	txns := 0 // the MULTI/EXEC, when there was one and it succeeded
	if len(bt.cmds) > 0 && bt.err == nil {
		txns = 1
	}
	r.record(&bt.batchHead, txns)
	r.complete(&bt.batchHead)
}

// watch is the watcher goroutine. While Redis is reachable it checks it
// every redisCheckEvery, so readiness turns false without traffic; once a
// write or a check failed it retries with a growing backoff (50 ms to 2 s)
// until Redis answers and passes its checks (DurabilitySync: the
// append-only file is still fsynced on every write), then lets writes
// through again.
func (r *Redis) watch() {
	defer close(r.watchDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-r.watchStop; cancel() }()
	backoff := redisBackoffMin
	var since time.Time
	for {
		wait := redisCheckEvery
		if r.down.Load() != nil {
			wait = backoff
			if since.IsZero() {
				since = time.Now()
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-r.watchStop:
			t.Stop()
			return
		case <-r.kick:
			t.Stop()
			continue // down now: wait out the backoff first
		case <-t.C:
		}
		err := r.check(ctx, false)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if r.down.Load() == nil {
				r.markDown(err)
				continue
			}
			r.down.Store(&err)
			r.logDown.log(r.log, slog.LevelWarn, "store: Redis still unusable; retrying", "backoff", backoff.String(), "err", err)
			backoff = min(2*backoff, redisBackoffMax)
			continue
		}
		if r.down.Load() != nil {
			r.lastErr.Store(nil)
			r.down.Store(nil)
			r.log.Info("store: Redis answers again; writes resume", "down_for", time.Since(since).Round(time.Millisecond).String())
		}
		backoff, since = redisBackoffMin, time.Time{}
	}
}

// redisLogOnce routes go-redis's own log lines (a failed dial for every
// attempt while Redis is down) to slog at debug level: the store logs the
// outage itself, once, throttled.
var redisLogOnce sync.Once

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+strings.TrimSpace(fmt.Sprintf(format, v...)))
}
