package e2e

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Helpers for the durability tests (durable_test.go). Names carry a dur
// prefix.

// TestMain removes the broker binary that durBinary builds.
func TestMain(m *testing.M) {
	code := m.Run()
	if durBin.dir != "" {
		os.RemoveAll(durBin.dir)
	}
	os.Exit(code)
}

// ---- in-process broker on a Badger store ----

// durServer is a broker on a Badger store in dir, served on a loopback port.
type durServer struct {
	B    *broker.Broker
	St   *store.Badger
	Addr string
	RS   broker.RestoreStats
	srv  *reactor.Server
	done bool
}

// durStart opens the Badger store in dir, restores the broker's state from
// it and serves it on a new port, as cmd/mcutie does; the test's end stops
// it unless stop did.
func durStart(t testing.TB, dir string, d store.Durability) *durServer {
	t.Helper()
	return durStartWith(t, dir, d, broker.Options{})
}

// durStartWith is durStart with broker options (Loops, Store and Logger
// are filled in).
func durStartWith(t testing.TB, dir string, d store.Durability, bo broker.Options) *durServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir, Durability: d, Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	bo.Loops, bo.Store, bo.Logger = 2, st, log
	b := broker.New(bo)
	rs, err := b.Restore()
	if err != nil {
		st.Close()
		t.Fatalf("restore: %v", err)
	}
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: log, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		st.Close()
		t.Fatalf("start broker: %v", err)
	}
	ds := &durServer{B: b, St: st, Addr: srv.Addrs()[0].String(), RS: rs, srv: srv}
	t.Cleanup(func() { ds.stop(t) })
	return ds
}

// stop stops the server, then closes the store (which writes what is
// queued). Stopping twice is harmless.
func (ds *durServer) stop(t testing.TB) {
	t.Helper()
	if ds.done {
		return
	}
	ds.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ds.srv.Stop(ctx); err != nil {
		t.Errorf("stop broker: %v", err)
	}
	if err := ds.St.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}

// waitIdle waits until the broker has no client connection left, so
// every close has been handled (and its store operations submitted).
func (ds *durServer) waitIdle(t testing.TB) {
	t.Helper()
	v5Wait(t, "every connection closed", func() bool { return ds.B.Stats().Clients == 0 })
}

// ---- the real binary ----

var durBin struct {
	mu   sync.Mutex
	dir  string
	path string
}

// durBinary builds cmd/mcutie once per test run and returns its path. It
// builds again if the binary went missing: a long run on a shared machine
// has seen its temporary directory cleaned away under it.
func durBinary(t testing.TB) string {
	t.Helper()
	durBin.mu.Lock()
	defer durBin.mu.Unlock()
	if durBin.path != "" {
		if _, err := os.Stat(durBin.path); err == nil {
			return durBin.path
		}
		t.Logf("%s is gone: building it again", durBin.path)
	}
	dir, err := os.MkdirTemp("", "mcutie-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	if durBin.dir != "" {
		os.RemoveAll(durBin.dir)
	}
	durBin.dir, durBin.path = dir, ""
	path := dir + "/mcutie"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/mcutie/mcutie/cmd/mcutie")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mcutie: %v\n%s", err, out)
	}
	durBin.path = path
	return path
}

// durProc is one run of the mcutie binary.
type durProc struct {
	cmd     *exec.Cmd
	Addr    string
	mu      sync.Mutex
	lines   []string      // stderr, the first lines (bounded)
	started chan struct{} // closed at the "mcutie started" log line
	loaded  chan string   // gets the "state loaded" log line
	exited  chan struct{} // closed once the process is reaped
	err     error         // Wait's result, valid after exited
}

// durRun starts the binary on dir and port with the default durability
// (commit) plus extra flags. It does not wait for the broker to be ready.
func durRun(t testing.TB, dir string, port int, extra ...string) *durProc {
	t.Helper()
	bin := durBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"--store", "badger", "--data-dir", dir, "--listen", "tcp://" + addr,
		"--metrics-listen", "", "--loops", "2"}, extra...)
	return durSpawn(t, exec.Command(bin, args...), addr)
}

// durSpawn starts cmd (mcutie, or a wrapper that execs it in place, such
// as ip netns exec) and follows its log; addr is where it serves MQTT.
func durSpawn(t testing.TB, cmd *exec.Cmd, addr string) *durProc {
	t.Helper()
	// The broker dies with the test process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &durProc{cmd: cmd, Addr: addr, started: make(chan struct{}), loaded: make(chan string, 1), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if len(p.lines) < 200 {
				p.lines = append(p.lines, line)
			}
			p.mu.Unlock()
			switch {
			case strings.Contains(line, "msg=\"state loaded\""):
				select {
				case p.loaded <- line:
				default:
				}
			case strings.Contains(line, "msg=\"mcutie started\""):
				close(p.started)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanDone // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// durStartProc starts the binary and waits until it serves.
func durStartProc(t testing.TB, dir string, port int, extra ...string) *durProc {
	t.Helper()
	p := durRun(t, dir, port, extra...)
	p.waitStarted(t, 20*time.Second)
	return p
}

func (p *durProc) waitStarted(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-p.started:
	case <-p.exited:
		t.Fatalf("mcutie exited during start-up (%v):\n%s", p.err, p.log())
	case <-time.After(d):
		t.Fatalf("mcutie not started within %v:\n%s", d, p.log())
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be reaped.
func (p *durProc) kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("mcutie pid %d not reaped 10s after SIGKILL", p.cmd.Process.Pid)
	}
}

// term sends SIGTERM and waits for a clean exit.
func (p *durProc) term(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("mcutie exited with %v after SIGTERM:\n%s", p.err, p.log())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("mcutie did not exit within 15s of SIGTERM")
		p.kill(t)
	}
}

func (p *durProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// ---- a raw client that reports errors instead of failing the test ----

// durConn is a raw MQTT connection for clients that run on their own
// goroutines and must survive the broker being killed under them: every
// method returns the error instead of failing the test. Writes are
// serialized, so one goroutine may read while others write.
type durConn struct {
	c   net.Conn
	v   codec.Version
	buf []byte
	tmp []byte
	wmu sync.Mutex
}

// durDial connects with cp (its Version is set to v) and returns the
// CONNACK; a non-zero CONNACK code is an error.
func durDial(addr string, v codec.Version, cp *codec.Connect) (*durConn, *codec.Connack, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &durConn{c: nc, v: v, tmp: make([]byte, 64<<10)}
	cp.Version = v
	cp.ProtocolName = []byte("MQTT")
	if err := c.write(cp.Append(nil)); err != nil {
		nc.Close()
		return nil, nil, err
	}
	h, body, err := c.read(5 * time.Second)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	var ack codec.Connack
	if h.Type != codec.CONNACK {
		nc.Close()
		return nil, nil, fmt.Errorf("want CONNACK, got packet type %d", h.Type)
	}
	if err := ack.Decode(h, body, v); err != nil {
		nc.Close()
		return nil, nil, err
	}
	if ack.Code != 0 {
		nc.Close()
		return nil, &ack, fmt.Errorf("CONNACK code 0x%02x", ack.Code)
	}
	return c, &ack, nil
}

func (c *durConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.c.Write(b)
	return err
}

// buffered reports whether a whole packet is already buffered.
func (c *durConn) buffered() bool {
	_, err := codec.Frame(c.buf, 0)
	return err == nil
}

// read returns the next packet; the body is valid until the next read.
func (c *durConn) read(d time.Duration) (codec.FixedHeader, []byte, error) {
	deadline := time.Now().Add(d)
	for {
		if h, err := codec.Frame(c.buf, 0); err == nil {
			body := c.buf[h.HeaderLen:h.Len()]
			c.buf = c.buf[h.Len():]
			return h, body, nil
		} else if !errors.Is(err, codec.ErrIncomplete) {
			return h, nil, err
		}
		if len(c.buf) == 0 {
			c.buf = c.buf[:0:0] // let the old backing array go
		}
		_ = c.c.SetReadDeadline(deadline)
		n, err := c.c.Read(c.tmp)
		c.buf = append(c.buf, c.tmp[:n]...)
		if err != nil && n == 0 {
			return codec.FixedHeader{}, nil, err
		}
	}
}

func (c *durConn) close() { c.c.Close() }

// durTimeout reports whether err is a read deadline passing.
func durTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ---- a pipelined v5 publisher that resumes its flows ----

// durWindow is how many QoS 1/2 flows a durPublisher keeps in flight.
const durWindow = 256

// durPublisher is a v5 publisher that keeps up to durWindow QoS 1/2 flows
// in flight, writing several PUBLISHes per syscall. With persistent set
// its session lasts an hour and, like any client with a session, it keeps
// its unfinished flows across connections: on reconnecting it resends
// them in their original order [MQTT-4.4.0-1], unacknowledged PUBLISHes
// with DUP=1 and the PUBREL of those that got their PUBREC.
type durPublisher struct {
	cid        string
	persistent bool
	// ack is called for every PUBACK, PUBREC and PUBCOMP with the tag of
	// the message; resent for every PUBLISH sent again.
	ack    func(tag int, t codec.Type, code codec.ReasonCode)
	resent func(tag int)

	mu      sync.Mutex
	flights map[uint16]*durFlight
	seq     uint64
	// present is the Session Present flag of the last CONNACK.
	present bool
}

type durFlight struct {
	tag int
	pid uint16
	seq uint64
	pkt []byte // the PUBLISH as first sent
	rec bool   // PUBREC received: the PUBREL is what is resent
}

// run connects to addr, resumes the unfinished flows, then publishes what
// next returns (the message and its tag; false: no more). It returns nil
// once next is exhausted and every flow completed, or the error that ended
// the connection; either way its goroutines have ended.
func (dp *durPublisher) run(addr string, next func() (codec.Publish, int, bool)) error {
	cp := &codec.Connect{ClientID: []byte(dp.cid), CleanStart: !dp.persistent, KeepAlive: 60}
	if dp.persistent {
		durPersistent(cp)
	}
	c, ack, err := durDial(addr, codec.V5, cp)
	if err != nil {
		return err
	}
	defer c.close()

	// Resume: everything unfinished, in the order first sent.
	dp.mu.Lock()
	dp.present = ack.SessionPresent
	if dp.flights == nil || !dp.persistent {
		dp.flights = map[uint16]*durFlight{}
	}
	slots := make(chan uint16, durWindow)
	for pid := uint16(1); pid <= durWindow; pid++ {
		if dp.flights[pid] == nil {
			slots <- pid
		}
	}
	resume := slices.SortedFunc(maps.Values(dp.flights), func(a, b *durFlight) int { return cmp.Compare(a.seq, b.seq) })
	var out []byte
	for _, f := range resume {
		if f.rec {
			out = (&codec.Ack{Type: codec.PUBREL, PacketID: f.pid}).Append(out, codec.V5)
			continue
		}
		start := len(out)
		out = append(out, f.pkt...)
		out[start] |= 0x08 // DUP
		if dp.resent != nil {
			dp.resent(f.tag)
		}
	}
	dp.mu.Unlock()
	if len(out) > 0 {
		if err := c.write(out); err != nil {
			return err
		}
	}

	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	defer func() {
		c.close()
		<-readDone
	}()
	go func() {
		defer close(readDone)
		readErr <- dp.read(c, slots)
	}()
	for more := true; more; {
		var pid uint16
		select {
		case pid = <-slots:
		case err := <-readErr:
			return err
		}
		out = out[:0]
		for k := 0; ; k++ {
			p, tag, ok := next()
			if !ok {
				more = false
				slots <- pid
				break
			}
			p.PacketID = pid
			start := len(out)
			out = p.Append(out, codec.V5)
			dp.mu.Lock()
			dp.seq++
			dp.flights[pid] = &durFlight{tag: tag, pid: pid, seq: dp.seq, pkt: slices.Clone(out[start:])}
			dp.mu.Unlock()
			if k == 63 {
				break
			}
			got := false
			select {
			case pid = <-slots:
				got = true
			default:
			}
			if !got {
				break
			}
		}
		if len(out) > 0 {
			if err := c.write(out); err != nil {
				return err
			}
		}
	}
	// Wait for every flow to complete.
	for n := 0; n < durWindow; n++ {
		select {
		case <-slots:
		case err := <-readErr:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("flows not completed within 30s")
		}
	}
	return c.write((&codec.Disconnect{}).Append(nil, codec.V5))
}

// read handles the acknowledgements until the connection ends.
func (dp *durPublisher) read(c *durConn, slots chan<- uint16) error {
	var a codec.Ack
	for {
		h, body, err := c.read(time.Minute)
		if err != nil {
			return err
		}
		switch h.Type {
		case codec.PUBACK, codec.PUBREC, codec.PUBCOMP:
			if err := a.Decode(h, body, codec.V5); err != nil {
				return err
			}
		case codec.DISCONNECT:
			return errors.New("DISCONNECT from the server")
		default:
			continue
		}
		dp.mu.Lock()
		f := dp.flights[a.PacketID]
		wrong := f == nil || (a.Type == codec.PUBCOMP) != f.rec
		finished := a.Type != codec.PUBREC || a.Code.IsError()
		if !wrong {
			if finished {
				delete(dp.flights, a.PacketID)
			} else {
				f.rec = true
			}
		}
		dp.mu.Unlock()
		if wrong {
			return fmt.Errorf("unexpected ack type %d for packet id %d", a.Type, a.PacketID)
		}
		dp.ack(f.tag, a.Type, a.Code)
		if !finished {
			if err := c.write((&codec.Ack{Type: codec.PUBREL, PacketID: a.PacketID}).Append(nil, codec.V5)); err != nil {
				return err
			}
			continue
		}
		slots <- a.PacketID
	}
}

// procExit waits for p to exit by itself (20 s at most) and returns its
// non-zero exit status and its log.
func procExit(t *testing.T, p *durProc) (int, string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("mcutie did not exit:\n%s", p.log())
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		t.Fatalf("mcutie exited with %v, want a non-zero status:\n%s", p.err, p.log())
	}
	return ee.ExitCode(), p.log()
}
