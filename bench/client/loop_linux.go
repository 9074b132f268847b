//go:build linux

package client

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/mcutie/mcutie/codec"
	"golang.org/x/sys/unix"
)

// loop is one event loop: an epoll instance, an eventfd for posted
// commands, a timerfd for the next deadline, and the connections it owns.
// Everything but the command queue (mu, cmds) and st is loop-only.
type loop struct {
	e   *Engine
	idx int
	ep  int
	evfd,
	tfd int
	armed time.Duration // deadline the timerfd is set to; -1: disarmed

	mu     sync.Mutex
	cmds   []func()
	quit   bool
	exited chan struct{}

	fds    []*conn // by file descriptor
	all    []*conn // every connection this loop ever had, for Collect
	events []unix.EpollEvent
	rbuf   []byte
	dirty  []*conn
	paced  pacedHeap
	flood  []*conn
	due    []*conn // scratch for runPaced

	dialQ    []*conn
	dialHead int
	dialing  int // connections between dial and ready
	dialMax  int
	dialRate float64
	dialNext time.Duration
	batches  []*batch

	publishing bool
	closing    bool
	nextTick   time.Duration

	st   stats
	lat  *hdrhistogram.Histogram
	cack *hdrhistogram.Histogram
	errs errTable

	// Decode targets, reused for every packet.
	pubIn   codec.Publish
	ack     codec.Ack
	connack codec.Connack
	suback  codec.Suback
	disc    codec.Disconnect
}

func newLoop(e *Engine, idx int) (*loop, error) {
	l := &loop{e: e, idx: idx, ep: -1, evfd: -1, tfd: -1, armed: -1, exited: make(chan struct{}),
		events: make([]unix.EpollEvent, 512), rbuf: make([]byte, 256<<10),
		lat: NewLatencyHistogram(), cack: NewLatencyHistogram()}
	var err error
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("client: epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("client: eventfd: %w", err)
	}
	if l.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("client: timerfd_create: %w", err)
	}
	for _, fd := range []int{l.evfd, l.tfd} {
		if err = unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			l.closeFDs()
			return nil, fmt.Errorf("client: epoll_ctl: %w", err)
		}
	}
	return l, nil
}

func (l *loop) closeFDs() {
	for _, fd := range []int{l.tfd, l.evfd, l.ep} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// post queues fn to run on the loop and wakes it. Safe for concurrent use.
func (l *loop) post(fn func()) {
	l.mu.Lock()
	wake := len(l.cmds) == 0
	l.cmds = append(l.cmds, fn)
	l.mu.Unlock()
	if wake {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], 1)
		_, _ = unix.Write(l.evfd, b[:]) // EAGAIN only when the counter is saturated: it is already readable
	}
}

// call runs fn on the loop and waits for it (or for the loop's end). Safe
// for concurrent use; never call it from the loop itself.
func (l *loop) call(fn func()) {
	done := make(chan struct{})
	l.post(func() { fn(); close(done) })
	select {
	case <-done:
	case <-l.exited:
	}
}

// stop makes the loop close its connections and return, and waits for it.
func (l *loop) stop() {
	l.post(func() { l.quit = true })
	<-l.exited
}

func (l *loop) runCmds() {
	var b [8]byte
	_, _ = unix.Read(l.evfd, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, fn := range cmds {
		fn()
	}
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.exited)
	defer l.shutdown()
	for !l.quit {
		n, err := unix.EpollWait(l.ep, l.events, l.prepareWait())
		if err != nil && !errors.Is(err, unix.EINTR) {
			panic(fmt.Sprintf("BUG: client: epoll_wait: %v", err))
		}
		for i := 0; i < n; i++ {
			ev := l.events[i]
			switch fd := int(ev.Fd); fd {
			case l.evfd:
				l.runCmds()
			case l.tfd:
				var b [8]byte
				_, _ = unix.Read(l.tfd, b[:])
				l.armed = -1
			default:
				if fd < len(l.fds) && l.fds[fd] != nil {
					l.onEvent(l.fds[fd], ev.Events)
				}
			}
		}
		now := l.e.now()
		l.pumpDials(now)
		l.runPaced(now)
		l.runFlood()
		if now >= l.nextTick {
			l.tick(now)
			l.nextTick = now + time.Second
		}
		l.flush()
	}
}

// pacingSlack is how late a paced message may be sent so that it shares a
// wake-up with others.
const pacingSlack = 100 * time.Microsecond

// prepareWait returns the epoll_wait timeout: 0 when there is work to do
// at once, else -1 with the timerfd set to the next deadline.
func (l *loop) prepareWait() int {
	now := l.e.now()
	if len(l.flood) > 0 || len(l.dirty) > 0 {
		return 0
	}
	deadline := l.nextTick
	if l.dialHead < len(l.dialQ) && l.dialing < l.dialMax {
		if l.dialRate <= 0 || l.dialNext <= now {
			return 0
		}
		deadline = min(deadline, l.dialNext)
	}
	if len(l.paced) > 0 {
		// Wake no sooner than pacingSlack from now, so that messages due
		// within it go out together: fewer wake-ups and larger writes. The
		// lateness is measured (payloads carry the scheduled time).
		deadline = min(deadline, max(l.paced[0].pub.next, now+pacingSlack))
	}
	if deadline <= now {
		return 0
	}
	if deadline != l.armed {
		d := deadline - now
		ts := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
		if err := unix.TimerfdSettime(l.tfd, 0, &ts, nil); err != nil {
			return 1 // cannot arm: poll every millisecond instead
		}
		l.armed = deadline
	}
	return -1
}

// shutdown closes every connection (DISCONNECT first on ready ones) and
// the loop's own descriptors.
func (l *loop) shutdown() {
	l.closing = true
	var d codec.Disconnect
	for _, c := range l.all {
		switch c.state {
		case stClosed:
			continue
		case stReady:
			c.out = d.Append(c.out, l.e.o.Version)
			_, _ = unix.Write(c.fd, c.out) // best effort
		}
		l.close(c, ReasonTimeout, "engine closed")
	}
	l.closeFDs()
}

// startBatch queues one Connect call's connections on this loop.
func (l *loop) startBatch(b *batch, specs []*Spec) {
	for _, s := range specs {
		c := newConn(l, s, b)
		l.all = append(l.all, c)
		l.dialQ = append(l.dialQ, c)
	}
	l.batches = append(l.batches, b)
	l.dialMax, l.dialRate, l.dialNext = b.concurrency, b.rate, l.e.now()
}

// abortBatches fails every connection of an unfinished Connect call.
func (l *loop) abortBatches(why string) {
	for _, c := range l.all {
		if c.b != nil && c.state < stReady {
			l.close(c, ReasonTimeout, "connect phase ended: "+why)
		}
	}
	l.dialQ, l.dialHead = l.dialQ[:0], 0
}

// pumpDials starts queued dials within the concurrency and rate limits.
func (l *loop) pumpDials(now time.Duration) {
	for l.dialHead < len(l.dialQ) && l.dialing < l.dialMax {
		if l.dialRate > 0 {
			if l.dialNext > now {
				return
			}
			l.dialNext += time.Duration(float64(time.Second) / l.dialRate)
		}
		c := l.dialQ[l.dialHead]
		l.dialQ[l.dialHead] = nil
		l.dialHead++
		if c.state == stQueued {
			l.dial(c, now)
		}
	}
	if l.dialHead == len(l.dialQ) {
		l.dialQ, l.dialHead = l.dialQ[:0], 0
	}
}

// dial issues a non-blocking connect.
func (l *loop) dial(c *conn, now time.Duration) {
	c.state, c.dialAt = stDialing, now
	l.dialing++
	o := &l.e.o
	dst := o.Addr.Addr()
	family := unix.AF_INET
	if dst.Is6() && !dst.Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.fail(c, ReasonDial, "socket: "+err.Error()+fdHint(err))
		return
	}
	c.fd = fd
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]*conn, max(1024, len(l.fds)))...)
	}
	l.fds[fd] = c
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if len(o.SourceAddrs) > 0 {
		src := o.SourceAddrs[int(l.e.srcNext.Add(1)-1)%len(o.SourceAddrs)]
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
			l.fail(c, ReasonDial, fmt.Sprintf("bind %s: %v", src, err))
			return
		}
	}
	if err := unix.Connect(fd, sockaddr(o.Addr)); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		hint := ""
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			hint = " (out of source ports: spread over more source addresses with --source-addrs)"
		}
		l.fail(c, ReasonDial, fmt.Sprintf("connect %s: %v%s", o.Addr, err, hint))
		return
	}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		l.fail(c, ReasonDial, "epoll_ctl: "+err.Error())
		return
	}
	c.pollOut = true
}

func fdHint(err error) string {
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		return " (out of file descriptors: raise the hard limit, e.g. ulimit -Hn)"
	}
	return ""
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	ip := a.Addr()
	if ip.Is4() || ip.Is4In6() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: ip.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: ip.As16()}
}

// onEvent handles epoll readiness for a connection.
func (l *loop) onEvent(c *conn, ev uint32) {
	if c.state == stDialing {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.connected(c)
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		if !l.read(c) {
			return
		}
	}
	if ev&unix.EPOLLOUT != 0 {
		l.markDirty(c)
	}
}

// connected completes a non-blocking connect and writes CONNECT.
func (l *loop) connected(c *conn) {
	if v, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
		if err == nil {
			err = unix.Errno(v)
		}
		l.fail(c, ReasonDial, fmt.Sprintf("connect %s: %v", l.e.o.Addr, err))
		return
	}
	c.state = stConnecting
	c.appendConnect()
	c.lastSent = l.e.now()
	l.markDirty(c)
}

// maxReads is how many buffers-full read takes from one connection per
// readiness event: receiving is drained ahead of publishing, so a busy
// loop does not make its subscribers look slow.
const maxReads = 8

// read reads until the socket is empty (at most maxReads buffers) and
// processes every complete packet. It returns false once the connection is
// closed.
func (l *loop) read(c *conn) bool {
	for i := 0; i < maxReads; i++ {
		n, ok := l.readOnce(c)
		if !ok {
			return false
		}
		if n < len(l.rbuf) {
			return true
		}
	}
	return true
}

// readOnce does one read(2) and processes what it got.
func (l *loop) readOnce(c *conn) (int, bool) {
	n, err := unix.Read(c.fd, l.rbuf)
	now := l.e.now()
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return 0, true
	case err != nil:
		return 0, l.fail(c, ReasonIO, "read: "+err.Error())
	case n == 0:
		return 0, l.fail(c, ReasonPeerClosed, "the broker closed the connection in state "+c.state.String())
	}
	data := l.rbuf[:n]
	carried := len(c.in) > 0
	if carried {
		if len(c.in)+n > maxInbound+5 {
			return 0, l.fail(c, ReasonLimit, "inbound packet larger than 16 MiB")
		}
		c.in = append(c.in, data...)
		data = c.in
	}
	off := 0
	for off < len(data) {
		h, err := codec.Frame(data[off:], maxInbound)
		if errors.Is(err, codec.ErrIncomplete) {
			break
		}
		if err != nil {
			return 0, l.fail(c, ReasonProtocol, "framing: "+err.Error())
		}
		if !c.handle(h, h.Body(data[off:]), now) {
			return 0, false
		}
		off += h.Len()
	}
	rest := data[off:]
	switch {
	case len(rest) == 0:
		c.in = c.in[:0]
		if cap(c.in) > 1<<20 {
			c.in = nil
		}
	case carried:
		c.in = c.in[:copy(c.in, rest)]
	default:
		c.in = append(c.in[:0], rest...)
	}
	return n, true
}

// markDirty schedules c for the end-of-iteration write.
func (l *loop) markDirty(c *conn) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// flush writes every dirty connection once.
func (l *loop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.dirty = false
		if c.state != stClosed && c.state != stDialing {
			l.write(c)
		}
	}
	l.dirty = l.dirty[:0]
}

// write writes as much of c.out as the socket takes and sets EPOLLOUT
// interest to match what is left.
func (l *loop) write(c *conn) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			l.fail(c, ReasonIO, "write: "+err.Error())
			return
		}
		if n == len(c.out) {
			c.out = c.out[:0]
			break
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	want := len(c.out) > 0
	if want != c.pollOut {
		ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
		if want {
			ev |= unix.EPOLLOUT
		}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)}); err != nil {
			l.fail(c, ReasonIO, "epoll_ctl: "+err.Error())
			return
		}
		c.pollOut = want
	}
	if !want {
		if cap(c.out) > 4<<20 {
			c.out = nil
		}
		l.kick(c)
	}
}

// ready marks c ready: the end of its handshake.
func (l *loop) ready(c *conn, now time.Duration) {
	c.state, c.readyAt = stReady, now
	l.dialing--
	l.st.ready.Add(1)
	l.st.connected.Add(1)
	l.settle(c, ReasonNone, "")
	l.kick(c)
}

// settle reports c's outcome to its Connect batch.
func (l *loop) settle(c *conn, r Reason, detail string) {
	b := c.b
	if b == nil {
		return
	}
	c.b = nil
	if r == ReasonNone {
		b.ok++
	} else {
		b.failed++
		b.errs.add(r, detail)
	}
	if b.remaining--; b.remaining == 0 {
		close(b.done)
		for i, x := range l.batches {
			if x == b {
				l.batches = append(l.batches[:i], l.batches[i+1:]...)
				break
			}
		}
	}
}

// fail closes c for reason r and returns false (for handlers to return).
func (l *loop) fail(c *conn, r Reason, detail string) bool {
	l.close(c, r, detail)
	return false
}

// close closes c and accounts for it: a failure before ready, a drop after
// (unless the engine is closing).
func (l *loop) close(c *conn, r Reason, detail string) {
	if c.state == stClosed {
		return
	}
	switch {
	case c.state < stReady:
		if c.state > stQueued {
			l.dialing--
		}
		l.st.failed.Add(1)
		l.errs.add(r, detail)
		l.settle(c, r, detail)
	default: // ready
		l.st.connected.Add(-1)
		if !l.closing {
			l.st.dropped.Add(1)
			l.errs.add(r, detail)
		}
	}
	if p := c.pub; p != nil {
		if p.heapIdx >= 0 {
			heap.Remove(&l.paced, p.heapIdx)
		}
		if p.inFlood {
			l.removeFlood(c)
		}
		l.st.inflight.Add(-int64(p.inflight))
		p.inflight = 0
	}
	if c.fd >= 0 {
		l.fds[c.fd] = nil
		_ = unix.Close(c.fd)
	}
	c.state = stClosed
	c.out, c.in = nil, nil
}

func (l *loop) removeFlood(c *conn) {
	for i, x := range l.flood {
		if x == c {
			l.flood = append(l.flood[:i], l.flood[i+1:]...)
			break
		}
	}
	c.pub.inFlood = false
}

// startPublishing lets every ready publisher send. Loop-only.
func (l *loop) startPublishing() {
	l.publishing = true
	now := l.e.now()
	for _, c := range l.all {
		if p := c.pub; p != nil && c.state == stReady {
			p.start, p.next = now, now
			p.start -= time.Duration(float64(p.seq) * p.interval) // resume the schedule where it stopped
			if p.seq == 0 && p.spec.Phase > 0 {
				p.start += time.Duration(p.spec.Phase * p.interval)
				p.next = p.start
			}
			l.kick(c)
		}
	}
}

// stopPublishing stops every publisher. Loop-only.
func (l *loop) stopPublishing() {
	l.publishing = false
	for _, c := range l.flood {
		c.pub.inFlood = false
	}
	l.flood = l.flood[:0]
	for _, c := range l.paced {
		c.pub.heapIdx = -1
	}
	l.paced = l.paced[:0]
}

// kick puts a publisher that may send back on the flood list or the heap.
func (l *loop) kick(c *conn) {
	p := c.pub
	if p == nil || p.inFlood || p.heapIdx >= 0 || !c.canSend() {
		return
	}
	if p.spec.Rate > 0 {
		heap.Push(&l.paced, c)
		return
	}
	p.inFlood = true
	l.flood = append(l.flood, c)
}

// runFlood lets each rate-0 publisher encode one batch.
func (l *loop) runFlood() {
	keep := l.flood[:0]
	for _, c := range l.flood {
		now := l.e.now()
		for n := 0; n < floodBatch && len(c.out) < floodBytes && c.canSend(); n++ {
			c.publishOne(now, now)
		}
		// A full batch waits for its write: write kicks the publisher back
		// once the socket took everything, so a full socket costs no spin.
		if c.canSend() && len(c.out) < floodBytes {
			keep = append(keep, c)
		} else {
			c.pub.inFlood = false
		}
	}
	clear(l.flood[len(keep):])
	l.flood = keep
}

// runPaced sends the messages that are due from paced publishers, each
// stamped with its scheduled time.
func (l *loop) runPaced(now time.Duration) {
	due := l.due[:0]
	for len(l.paced) > 0 && l.paced[0].pub.next <= now {
		due = append(due, heap.Pop(&l.paced).(*conn))
	}
	for _, c := range due {
		p := c.pub
		for n := 0; n < pacedBatch && p.next <= now && c.canSend(); n++ {
			c.publishOne(now, p.next)
			p.next = p.start + time.Duration(float64(p.seq)*p.interval)
		}
		l.kick(c)
	}
	clear(due)
	l.due = due[:0]
}

// tick runs once a second: handshake timeouts and keep-alive.
func (l *loop) tick(now time.Duration) {
	timeout := l.e.o.ConnectTimeout
	for _, c := range l.all {
		switch {
		case c.state == stClosed || c.state == stQueued:
		case c.state < stReady:
			if now-c.dialAt > timeout {
				l.close(c, ReasonTimeout, fmt.Sprintf("still %s after %v", c.state, timeout))
			}
		case c.keepAlive > 0 && now-c.lastSent >= c.keepAlive/2:
			c.out = codec.AppendPingreq(c.out)
			c.pingsOut++
			l.st.pingsSent.Add(1)
			c.lastSent = now
			l.markDirty(c)
		}
	}
}

// pacedHeap orders paced publishers by their next scheduled send.
type pacedHeap []*conn

func (h pacedHeap) Len() int           { return len(h) }
func (h pacedHeap) Less(i, j int) bool { return h[i].pub.next < h[j].pub.next }
func (h pacedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pub.heapIdx = i
	h[j].pub.heapIdx = j
}
func (h *pacedHeap) Push(x any) {
	c := x.(*conn)
	c.pub.heapIdx = len(*h)
	*h = append(*h, c)
}
func (h *pacedHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.pub.heapIdx = -1
	return c
}
