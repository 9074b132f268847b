package main

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// connLog is the built-in hook that logs every connect and disconnect at
// info, as Mosquitto does ("New client connected from … as …", "Client …
// disconnected"): client id, address, user name, protocol version,
// listener, and on disconnect why the connection ended.
//
// It cannot flood the disk: a token bucket lets --log-connections-rate
// lines a second through (burst as large); the others are counted, and
// one line a second says how many were left out.
//
// Concurrency: OnConnected and OnDisconnected run on the event loops,
// several at once (package hooks). They never wait on the log's writer:
// a line that has a token is handed over a bounded channel to the writer
// goroutine without blocking; when the channel is full (the writer is
// stuck on a slow disk) the line is counted as left out, like one over
// the rate. The bucket's mutex is held for a few arithmetic operations,
// once per connect or disconnect, never per message. With
// --log-connections-rate 0 the hook is not registered at all.
type connLog struct {
	log *slog.Logger

	mu     sync.Mutex
	rate   float64 // lines a second, the bucket's size too
	tokens float64
	last   time.Time

	off        atomic.Bool // rate 0 after a SIGHUP: lines dropped, not counted
	lines      chan connLine
	suppressed atomic.Uint64
	kick       chan struct{} // a line was left out: summarise within a second
	stop, done chan struct{}
}

// connLineQueue bounds the lines waiting for the writer.
const connLineQueue = 1024

// connLine is one connect or disconnect, copied off the loop's scratch
// (hooks.Client is valid only during the call; its strings are not
// changed by the broker afterwards, so copying the struct is enough).
type connLine struct {
	c          hooks.Client
	disconnect bool
	present    bool   // session present (connect)
	reason     string // disconnect
}

func newConnLog(log *slog.Logger, rate float64) *connLog {
	return &connLog{log: log, rate: rate, tokens: rate, last: time.Now(),
		lines: make(chan connLine, connLineQueue), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (*connLog) Name() string { return "connlog" }

func (*connLog) Provides() hooks.Events {
	return hooks.EventsOf(hooks.Connected, hooks.Disconnected)
}

// Start starts the writer (Registry.Add calls it).
func (l *connLog) Start() error {
	go l.write()
	return nil
}

// Stop writes what is queued and the last count left out, and stops the
// writer (Registry.Stop calls it, after the broker stopped).
func (l *connLog) Stop() error {
	close(l.stop)
	<-l.done
	return nil
}

func (l *connLog) OnConnected(c *hooks.Client, present bool) {
	l.offer(connLine{c: *c, present: present})
}

func (l *connLog) OnDisconnected(c *hooks.Client, reason string) {
	l.offer(connLine{c: *c, disconnect: true, reason: reason})
}

// offer queues ln if the bucket has a token and the queue room; else it
// counts it. Called on the loops: never blocks.
func (l *connLog) offer(ln connLine) {
	if l.off.Load() {
		return
	}
	if !l.take(time.Now()) {
		l.suppress()
		return
	}
	select {
	case l.lines <- ln:
	default:
		l.suppress()
	}
}

// suppress counts a line left out; the first since the last summary
// starts the writer's one-second summary timer, so an idle broker's
// writer sleeps instead of waking every second.
func (l *connLog) suppress() {
	if l.suppressed.Add(1) == 1 {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// take refills the bucket for the time since the last call and takes a
// token if there is one.
func (l *connLog) take(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := now.Sub(l.last).Seconds(); el > 0 {
		l.tokens = math.Min(l.rate, l.tokens+el*l.rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// setRate changes the rate (SIGHUP); 0 leaves every line out.
func (l *connLog) setRate(r float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = r
	l.tokens = math.Min(l.tokens, r)
	l.off.Store(r <= 0)
}

func (l *connLog) currentRate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// write is the writer goroutine: it logs the queued lines, and a second
// after a line was left out the count of those left out since the last
// summary.
func (l *connLog) write() {
	defer close(l.done)
	var tick <-chan time.Time // armed while lines are being left out
	for {
		select {
		case ln := <-l.lines:
			l.emit(ln)
		case <-l.kick:
			if tick == nil {
				tick = time.After(time.Second)
			}
		case <-tick:
			tick = nil
			l.summary()
		case <-l.stop:
			for {
				select {
				case ln := <-l.lines:
					l.emit(ln)
				default:
					l.summary()
					return
				}
			}
		}
	}
}

func (l *connLog) summary() {
	if n := l.suppressed.Swap(0); n > 0 {
		l.log.Info("connection log lines left out (--log-connections-rate)", "suppressed", n, "rate", l.currentRate())
	}
}

func (l *connLog) emit(ln connLine) {
	c := &ln.c
	attrs := []slog.Attr{
		slog.String("client", c.ID),
		slog.String("remote", c.Remote),
		slog.String("user", c.Username),
		slog.String("protocol", protocolName(c.Version)),
		slog.String("listener", c.Listener),
	}
	if ln.disconnect {
		attrs = append(attrs, slog.String("reason", ln.reason))
		l.log.LogAttrs(context.Background(), slog.LevelInfo, "client disconnected", attrs...)
		return
	}
	attrs = append(attrs, slog.Bool("session_present", ln.present))
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "client connected", attrs...)
}

// protocolName is the MQTT version as people write it.
func protocolName(v codec.Version) string {
	switch v {
	case codec.V31:
		return "3.1"
	case codec.V311:
		return "3.1.1"
	case codec.V5:
		return "5.0"
	}
	return "unknown"
}

// addConnLog registers the connection log as a built-in hook, on the
// registry of --plugins or on one of its own (stopped with the plugins'),
// unless --log-connections-rate is 0. Call before the broker is made.
func addConnLog(cfg *config, plugs *plugins, log *slog.Logger) (*connLog, error) {
	if cfg.logging.connRate <= 0 {
		return nil, nil
	}
	if plugs.reg == nil {
		plugs.reg = hooks.New(hooks.Options{Logger: log})
		cfg.opts.Hooks = plugs.reg // the broker writes the registry's metrics (broker.WriteMetrics)
	}
	cl := newConnLog(log, cfg.logging.connRate)
	if err := plugs.reg.Add(cl); err != nil {
		return nil, err
	}
	return cl, nil
}
