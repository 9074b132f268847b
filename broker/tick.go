package broker

import (
	"log/slog"
	"math"
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
	// next is when the earliest of the timers below is due, for Quiesce;
	// busy: something was done or needs every tick.
	next, busy := int64(math.MaxInt64), false
	for i := 0; i < len(l.clients); i++ {
		c := l.clients[i]
		switch c.state {
		case stateAwaitConnect:
			if now-c.lastSeen > connectTimeout { // lastSeen: when it opened
				// Never-speaking and half-open connections end here.
				c.closeFor(closeConnectTimeout, 0, "", slog.Duration("timeout", l.b.opts.ConnectTimeout))
				busy = true
			} else {
				next = min(next, c.lastSeen+connectTimeout+1)
			}
		case stateAuthPending, stateAuthContinue:
			if at := c.flow().authDeadline; now > at {
				if c.auth.claim != nil {
					c.claimExpired()
				} else {
					c.authExpired()
				}
				busy = true
			} else {
				next = min(next, at+1)
			}
		case stateConnected:
			if c.reauthing { // reauthing: af is set
				if now > c.auth.authDeadline {
					c.reauthExpired()
					busy = true
					continue
				}
				next = min(next, c.auth.authDeadline+1)
			}
			ka := int64(c.keepAlive) * int64(time.Second) * 3 / 2
			if c.keepAlive > 0 && now-c.lastSeen > ka {
				// [MQTT-3.1.2-22] 1.5 × Keep Alive without a packet.
				c.willOnClose = true
				c.closeFor(closeKeepAlive, 0, "keep alive timeout", slog.String("rule", "MQTT-3.1.2-22"), slog.Int("keep_alive", int(c.keepAlive)))
				busy = true
			} else if c.s != nil && (c.s.queuedLen() > 0 || c.retPending()) {
				c.s.pump() // a slow consumer may have drained
				busy = true
			} else if c.keepAlive > 0 {
				next = min(next, c.lastSeen+ka+1)
			}
		default:
			busy = true // closing: keep ticking until it is gone
		}
	}
	for i := 0; i < len(l.waiting); i++ {
		s := l.waiting[i]
		if s.c != nil {
			continue // online again: its connection's timers apply
		}
		if at := s.willAt(); at != 0 {
			if now >= at {
				s.publishWill()
				busy = true
			} else {
				next = min(next, at)
			}
		}
		if s.expiry != store.ExpiryNever {
			at := s.discAt + int64(s.expiry)*int64(time.Second)
			if now >= at {
				l.counters.sessionsExpired++
				s.sessionEnding(hooks.SessionExpired)
				s.end(true) // removes s from l.waiting
				busy = true
				i--
				continue
			}
			next = min(next, at)
		}
		if s.willAt() == 0 && s.expiry == store.ExpiryNever {
			l.unwait(s)
			busy = true
			i--
		}
	}
	l.tickNext, l.tickBusy = next, busy
	l.releasePending()
	l.sysTick()
	l.flush()
	l.trimOut()
	l.snapshot()
}

// OnActive sets fn, called on the loop when work arrives on a loop that
// Quiesce had found quiet: the transport ticks it again. fn must not
// block. Call it before the loop runs.
func (l *Loop) OnActive(fn func()) { l.onActive = fn }

// Quiesce reports whether Tick has nothing to do on this loop until a
// deadline or the next callback that brings work, and if so marks the
// loop quiet until then (Quiet). Nothing to do means: the last Tick did
// nothing and found only timers (the keep-alive and connect timeout of
// its connections, authentication deadlines, wills and expiries of
// offline sessions; the earliest is the deadline, as is loop 0's next
// $SYS publication), and nothing in the inbox, no output pending or held
// for a commit, no store operation queued, in the backlog or in flight
// (their completions are no callbacks of their own), no directory
// reference waiting, no spare output buffer left to trim, no connection
// waiting for retained messages. A packet, a new connection or anything
// else run on the loop ends the quiet spell (tick), so a timer that only
// such work can move earlier is never missed. Loop-only; call it right
// after Tick.
func (l *Loop) Quiesce() bool {
	if l.tickBusy || len(l.dirty) > 0 || len(l.held) > 0 ||
		len(l.dirPending) > 0 || len(l.freeOut) > 0 || len(l.retStalled) > 0 ||
		len(l.pass.ops) > 0 || len(l.backlog.ops) > 0 || len(l.afterApply) > 0 ||
		l.failedFrom.Load() != 0 || l.durableN.Load() != l.applyN || l.inbox.len() > 0 {
		return false
	}
	wake := l.tickNext
	if l.sys != nil && l.idx == 0 && l.b.opts.SysInterval > 0 {
		wake = min(wake, l.sys.next)
	}
	if wake == math.MaxInt64 {
		wake = 0 // nothing timed: only work wakes it
	}
	l.quietWake.Store(wake)
	l.quiet.Store(true)
	return true
}

// Quiet reports whether the loop is quiet (Quiesce) and until when: wake
// is the unix ns at which its Tick has something to do again (0: only
// when work arrives, which calls the OnActive function). Safe for
// concurrent use.
func (l *Loop) Quiet() (quiet bool, wake int64) {
	if !l.quiet.Load() {
		return false, 0
	}
	return true, l.quietWake.Load()
}
