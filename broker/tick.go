package broker

import (
	"log/slog"
	"time"

	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/store"
)

// Tick runs the loop's timers: keep-alive [MQTT-3.1.2-22], the connect
// timeout, will delays [MQTT-3.1.3-9] and session expiry [MQTT-4.1.0-2].
// The transport calls it about once a second on every loop, so timers cost
// no goroutine per connection; a sweep touches each connection once.
// Loop-only.
func (l *Loop) Tick() {
	l.tick()
	// Flushed below: a batch flush whose wake-up was lost (a transport
	// shutting down) must not keep later batches from posting theirs.
	l.batchPosted = false
	if l.failedFrom.Load() != 0 {
		l.resolveFailed() // its posted call was lost to a full inbox
	}
	now := l.now
	connectTimeout := int64(l.b.opts.ConnectTimeout)
	for i := 0; i < len(l.clients); i++ {
		c := l.clients[i]
		switch c.state {
		case stateAwaitConnect:
			if now-c.lastSeen > connectTimeout { // lastSeen: when it opened
				// Never-speaking and half-open connections end here.
				c.closeFor(closeConnectTimeout, 0, "", slog.Duration("timeout", l.b.opts.ConnectTimeout))
			}
		case stateAuthPending, stateAuthContinue:
			if now > c.flow().authDeadline {
				c.authExpired()
			}
		case stateConnected:
			if c.reauthing && now > c.auth.authDeadline { // reauthing: af is set
				c.reauthExpired()
				continue
			}
			if c.keepAlive > 0 && now-c.lastSeen > int64(c.keepAlive)*int64(time.Second)*3/2 {
				// [MQTT-3.1.2-22] 1.5 × Keep Alive without a packet.
				c.willOnClose = true
				c.closeFor(closeKeepAlive, 0, "keep alive timeout", slog.String("rule", "MQTT-3.1.2-22"), slog.Int("keep_alive", int(c.keepAlive)))
			} else if c.s != nil && (c.s.queuedLen() > 0 || c.retPending()) {
				c.s.pump() // a slow consumer may have drained
			}
		}
	}
	for i := 0; i < len(l.waiting); i++ {
		s := l.waiting[i]
		if s.c != nil {
			continue
		}
		if at := s.willAt(); at != 0 && now >= at {
			s.publishWill()
		}
		if s.expiry != store.ExpiryNever && now-s.discAt >= int64(s.expiry)*int64(time.Second) {
			l.counters.sessionsExpired++
			s.sessionEnding(hooks.SessionExpired)
			s.end(true) // removes s from l.waiting
			i--
			continue
		}
		if s.willAt() == 0 && s.expiry == store.ExpiryNever {
			l.unwait(s)
			i--
		}
	}
	l.releasePending()
	l.sysTick()
	l.flush()
	l.trimOut()
	l.snapshot()
}
