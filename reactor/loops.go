package reactor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcutie/mcutie/broker"
	"github.com/panjf2000/gnet/v2"
)

// loopState is the reactor's state of one loop. Loop-only.
type loopState struct {
	s *Server
	// scratch is the buffer small writes are coalesced into
	// (gnetConn.Writev). A sync.Pool would hand out fresh 64 KiB buffers
	// after every GC cycle, and a backlogged subscriber makes GC cycles
	// frequent.
	scratch []byte
	// watch lists the loop's connections with a deadline: a partial
	// packet (Options.PacketTimeout) or a lingering close. Swept on
	// every tick.
	watch     []watched
	lingering int // connections of the loop in a lingering close

	// wake is the client end of one of the loop's anchor connections: a
	// byte written to it makes the anchor readable on the loop, whose
	// OnTraffic then runs broker.Loop.FlushBatch (bindWake). wakeWrite
	// writes it, with its result in wakeErr (both bound once, so that a
	// wake-up allocates nothing).
	wake      syscall.RawConn
	wakeWrite func(fd uintptr) bool
	wakeErr   error
}

// wakeByte is what bindWake's post writes.
var wakeByte = []byte{0}

// bindWake makes anchor, an anchor connection's client end, the way loop
// l's batch flush is posted (broker.Loop.BindFlush): one write of a byte
// on the loop's own goroutine, read by the loop after the socket events
// of its current poll. gnet's own ways to run something on a loop
// (Execute, Wake, AsyncWrite) allocate a task each time. Called once per
// loop, at start-up.
func (ls *loopState) bindWake(l *broker.Loop, anchor net.Conn) error {
	tc, ok := anchor.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("reactor: anchor is a %T, not TCP", anchor)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("reactor: cannot bind loops: %w", err)
	}
	ls.wake = rc
	ls.wakeWrite = func(fd uintptr) bool {
		_, ls.wakeErr = unix.Write(int(fd), wakeByte)
		return true // never wait for room: a full buffer means a byte is pending already
	}
	l.BindFlush(func() error {
		ls.wakeErr = nil
		if err := ls.wake.Write(ls.wakeWrite); err != nil {
			return err // closed: the broker flushes at once
		}
		if ls.wakeErr == unix.EAGAIN {
			return nil
		}
		return ls.wakeErr
	})
	return nil
}

// boundLoop pairs a gnet event loop with the broker loop bound to it
// (Server.loopFor).
type boundLoop struct {
	el   gnet.EventLoop
	loop *broker.Loop
}

// anchorCtx marks the internal connections used to discover the loops.
type anchorCtx struct{}

// OnTick binds the loops on its first call and starts the ticker
// (runTicker). It runs on gnet's ticker goroutine, never on a loop, so it
// only posts work; later calls do nothing (gnet's ticker sleeps an hour
// between them: a timer the ticker cannot shorten would keep a quiet
// broker waking, or a busy one waiting).
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	if !s.ticking.Swap(true) {
		if err := s.bindAll(); err != nil {
			s.runErr <- err
			return 0, gnet.Shutdown
		}
		s.releaseHeld()
		s.running.Store(true)
		s.tickStarted.Store(true)
		go s.runTicker()
		close(s.ready)
	}
	return time.Hour, gnet.None
}

// runTicker drives every loop's timers (broker.Loop.Tick, then the
// reactor's watch list) every TickInterval. A loop with nothing to time
// (broker.Loop.Quiesce: no connection, no offline session with a will or
// an expiry, nothing pending; and an empty watch list) is skipped until
// work arrives on it (broker.Loop.OnActive kicks the ticker) or its next
// deadline (loop 0's $SYS publication) is due. When every loop is quiet
// the ticker sleeps until the earliest deadline or a kick, so an idle
// broker costs no wake-ups beyond those: each wake of an event loop also
// keeps the Go runtime's sysmon thread polling for 10 ms while the loop's
// epoll_wait holds its P (docs/benchmarks.md, "Idle memory and idle CPU").
func (s *Server) runTicker() {
	defer close(s.tickDone)
	iv := s.opts.TickInterval
	t := time.NewTimer(iv)
	defer t.Stop()
	due := time.Now().UnixNano() + int64(iv) // when t fires; never: math.MaxInt64
	for {
		select {
		case <-s.tickStop:
			return
		case <-s.tickKick:
			// A quiet loop has work: tick it within an interval.
			if at := time.Now().UnixNano() + int64(iv); due > at {
				t.Reset(iv)
				due = at
			}
			continue
		case <-t.C:
		}
		now := time.Now().UnixNano()
		next := int64(math.MaxInt64)
		for _, bl := range *s.loops.Load() {
			l, ls := bl.loop, s.perLoop[bl.loop.Index()]
			if quiet, wake := l.Quiet(); quiet && (wake == 0 || now < wake) {
				if wake != 0 {
					next = min(next, wake)
				}
				continue
			}
			next = min(next, now+int64(iv))
			_ = s.exec(bl.el, func() {
				l.Tick()
				ls.sweep()
				if len(ls.watch) == 0 && ls.lingering == 0 {
					l.Quiesce()
				}
			})
		}
		due = next
		if next != math.MaxInt64 {
			t.Reset(time.Duration(max(next-now, int64(time.Millisecond))))
		}
	}
}

// kickTicker wakes the ticker: a quiet loop has work. Called on a loop
// (broker.Loop.OnActive); never blocks.
func (s *Server) kickTicker() {
	select {
	case s.tickKick <- struct{}{}:
	default: // a kick is pending already
	}
}

// stopTicker ends runTicker (if it started) and waits for it.
func (s *Server) stopTicker() {
	s.tickOnce.Do(func() { close(s.tickStop) })
	if s.tickStarted.Load() {
		<-s.tickDone
	}
}

// hold keeps c unfed until every loop is bound and reports true, or
// reports false if they are bound already. Loop-only (c's).
func (s *Server) hold(c gnet.Conn) bool {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.bound.Load() {
		return false
	}
	s.held = append(s.held, c)
	return true
}

// releaseHeld marks every loop bound and wakes the connections held until
// then: their buffered bytes are fed on their loops.
func (s *Server) releaseHeld() {
	s.heldMu.Lock()
	s.bound.Store(true)
	held := s.held
	s.held = nil
	s.heldMu.Unlock()
	for _, c := range held {
		_ = c.Wake(nil) // a connection closed meanwhile is ignored
	}
}

func (s *Server) exec(el gnet.EventLoop, fn func()) error {
	return el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// bindAll registers anchor connections until every loop is bound.
func (s *Server) bindAll() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("reactor: cannot bind loops: %w", err)
	}
	defer ln.Close()
	n := s.b.NumLoops()
	for attempt := 0; len(*s.loops.Load()) < n; attempt++ {
		if attempt > 64*n {
			return errors.New("reactor: could not reach every event loop")
		}
		dialed, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		accepted, err := ln.Accept()
		if err != nil {
			dialed.Close()
			return err
		}
		ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), anchorCtx{}), accepted)
		ch, err := s.eng.Register(ctx)
		if err != nil {
			dialed.Close()
			accepted.Close()
			return err
		}
		res := <-ch
		accepted.Close() // gnet holds its own dup
		if res.Err != nil {
			dialed.Close()
			return res.Err
		}
		s.anchors = append(s.anchors, dialed)
		l := s.loopFor(res.Conn.EventLoop())
		if ls := s.perLoop[l.Index()]; ls.wake == nil {
			if err := ls.bindWake(l, dialed); err != nil {
				return err
			}
		}
	}
	return nil
}

// loopFor returns the broker loop bound to el, binding the next free one
// if el is new.
func (s *Server) loopFor(el gnet.EventLoop) *broker.Loop {
	for _, bl := range *s.loops.Load() {
		if bl.el == el {
			return bl.loop
		}
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	cur := *s.loops.Load()
	for _, bl := range cur {
		if bl.el == el {
			return bl.loop
		}
	}
	if len(cur) >= s.b.NumLoops() {
		panic("BUG: reactor: more gnet event loops than broker loops")
	}
	l := s.b.Loop(len(cur))
	l.OnActive(s.kickTicker)
	l.Bind(func(fn func()) error { return s.exec(el, fn) })
	next := append(append([]boundLoop(nil), cur...), boundLoop{el: el, loop: l})
	s.loops.Store(&next)
	return l
}

func (s *Server) elFor(idx int) gnet.EventLoop {
	for _, bl := range *s.loops.Load() {
		if bl.loop.Index() == idx {
			return bl.el
		}
	}
	return nil
}
