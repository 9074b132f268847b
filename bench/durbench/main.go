// Command durbench measures mcutie's persistence: persistent QoS 1
// throughput per durability mode, 1M retained messages, and a churn
// workload for compaction. The run_*.sh scripts next to it drive it
// against bin/mcutie (make bench-durable, bench-retained-1m, bench-churn).
//
//	durbench -mode pub    -addr A -pubs 10 -dur 10s      persistent QoS 1 throughput, 1 persistent subscriber
//	durbench -mode fill   -addr A -n 1000000             publish n retained QoS 0 messages to dev/<i/1000>/<i%1000>
//	durbench -mode rsub   -addr A -n 1000000             time a # subscriber receiving n retained messages
//	durbench -mode churn  -addr A -dur 10m -dir D        replace retained messages and cycle persistent sessions; du -sh D every 30 s
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
)

type conn struct {
	c   net.Conn
	v   codec.Version
	buf []byte
	tmp []byte
	wmu sync.Mutex
}

func dial(addr, cid string, clean bool, v codec.Version) (*conn, *codec.Connack, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &conn{c: nc, v: v, tmp: make([]byte, 256<<10)}
	cp := codec.Connect{Version: v, ProtocolName: []byte("MQTT"), ClientID: []byte(cid), CleanStart: clean, KeepAlive: 120}
	if err := c.write(cp.Append(nil)); err != nil {
		return nil, nil, err
	}
	h, body, err := c.read(10 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	var ack codec.Connack
	if h.Type != codec.CONNACK || ack.Decode(h, body, v) != nil || ack.Code != 0 {
		return nil, nil, fmt.Errorf("bad CONNACK (type %d code %d)", h.Type, ack.Code)
	}
	return c, &ack, nil
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.c.Write(b)
	return err
}

func (c *conn) buffered() bool { _, err := codec.Frame(c.buf, 0); return err == nil }

func (c *conn) read(d time.Duration) (codec.FixedHeader, []byte, error) {
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
			c.buf = c.buf[:0:0]
		}
		_ = c.c.SetReadDeadline(deadline)
		n, err := c.c.Read(c.tmp)
		c.buf = append(c.buf, c.tmp[:n]...)
		if err != nil && n == 0 {
			return codec.FixedHeader{}, nil, err
		}
	}
}

func timeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func subscribe(c *conn, filter string, qos byte) error {
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(filter), QoS: qos}}}
	if err := c.write(s.Append(nil, c.v)); err != nil {
		return err
	}
	for {
		h, _, err := c.read(10 * time.Second)
		if err != nil {
			return err
		}
		if h.Type == codec.SUBACK {
			return nil
		}
	}
}

// drain reads and acknowledges until quiet passes or stop is closed; it
// returns the number of PUBLISHes.
func drain(c *conn, quiet time.Duration, stop <-chan struct{}, count *atomic.Int64) (int, error) {
	var p codec.Publish
	var a codec.Ack
	var out []byte
	n := 0
	for {
		if len(out) > 0 && !c.buffered() {
			if err := c.write(out); err != nil {
				return n, err
			}
			out = out[:0]
		}
		select {
		case <-stop:
			return n, nil
		default:
		}
		h, body, err := c.read(quiet)
		if err != nil {
			if timeout(err) {
				return n, nil
			}
			return n, err
		}
		switch h.Type {
		case codec.PUBLISH:
			if err := p.Decode(h, body, c.v); err != nil {
				return n, err
			}
			n++
			if count != nil {
				count.Add(1)
			}
			switch p.QoS {
			case 1:
				out = (&codec.Ack{Type: codec.PUBACK, PacketID: p.PacketID}).Append(out, c.v)
			case 2:
				out = (&codec.Ack{Type: codec.PUBREC, PacketID: p.PacketID}).Append(out, c.v)
			}
		case codec.PUBREL:
			if err := a.Decode(h, body, c.v); err != nil {
				return n, err
			}
			out = (&codec.Ack{Type: codec.PUBCOMP, PacketID: a.PacketID}).Append(out, c.v)
		}
	}
}

// publisher sends QoS 1 PUBLISHes from next with up to window in flight
// until stop; it records PUBACK latencies.
func publisher(addr, cid string, retain bool, window int, next func() (string, []byte, bool), stop <-chan struct{}, acked *atomic.Int64, lat *[]time.Duration, latMu *sync.Mutex) error {
	c, _, err := dial(addr, cid, true, codec.V311)
	if err != nil {
		return err
	}
	defer c.c.Close()
	slots := make(chan uint16, window)
	for i := 1; i <= window; i++ {
		slots <- uint16(i)
	}
	sent := make([]time.Time, window+1)
	var smu sync.Mutex
	var mine []time.Duration
	rerr := make(chan error, 1)
	go func() {
		var a codec.Ack
		for {
			h, body, err := c.read(time.Minute)
			if err != nil {
				rerr <- err
				return
			}
			if h.Type != codec.PUBACK || a.Decode(h, body, c.v) != nil {
				continue
			}
			smu.Lock()
			d := time.Since(sent[a.PacketID])
			smu.Unlock()
			if len(mine) < 1<<20 {
				mine = append(mine, d)
			}
			acked.Add(1)
			slots <- a.PacketID
		}
	}()
	var out []byte
	done := false
	for !done {
		var pid uint16
		select {
		case <-stop:
			done = true
			continue
		case err := <-rerr:
			return err
		case pid = <-slots:
		}
		out = out[:0]
		now := time.Now()
		for k := 0; ; k++ {
			topic, payload, ok := next()
			if !ok {
				done = true
				slots <- pid
				break
			}
			p := codec.Publish{Topic: []byte(topic), Payload: payload, QoS: 1, PacketID: pid, Retain: retain}
			out = p.Append(out, c.v)
			smu.Lock()
			sent[pid] = now
			smu.Unlock()
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
	// Wait for outstanding acks (bounded).
	deadline := time.After(30 * time.Second)
	for n := 0; n < window; n++ {
		select {
		case <-slots:
		case <-rerr:
			n = window
		case <-deadline:
			n = window
		}
	}
	latMu.Lock()
	*lat = append(*lat, mine...)
	latMu.Unlock()
	return nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func main() {
	mode := flag.String("mode", "pub", "pub, fill, rsub, churn")
	addr := flag.String("addr", "127.0.0.1:1883", "broker")
	pubs := flag.Int("pubs", 10, "publishers")
	dur := flag.Duration("dur", 10*time.Second, "duration")
	size := flag.Int("payload", 64, "payload bytes")
	window := flag.Int("window", 64, "QoS 1 window per publisher")
	n := flag.Int("n", 1000000, "retained messages")
	dir := flag.String("dir", "", "data dir (churn: du -sh)")
	flag.Parse()
	var err error
	switch *mode {
	case "pub":
		err = runPub(*addr, *pubs, *dur, *size, *window)
	case "fill":
		err = runFill(*addr, *n, *size)
	case "fill1":
		err = runFill1(*addr, *n, *size)
	case "rsub":
		err = runRsub(*addr, *n, *dur)
	case "churn":
		err = runChurn(*addr, *dur, *dir)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "durbench:", err)
		os.Exit(1)
	}
}

func runPub(addr string, pubs int, dur time.Duration, size, window int) error {
	sub, ack, err := dial(addr, "bench-sub", false, codec.V311)
	if err != nil {
		return err
	}
	if err := subscribe(sub, "bench/#", 1); err != nil {
		return err
	}
	fmt.Printf("subscriber bench-sub: session present %v\n", ack.SessionPresent)
	var received, acked atomic.Int64
	stopSub := make(chan struct{})
	subDone := make(chan error, 1)
	go func() {
		_, err := drain(sub, time.Hour, stopSub, &received)
		subDone <- err
	}()
	payload := make([]byte, size)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lat []time.Duration
	var latMu sync.Mutex
	errs := make(chan error, pubs)
	start := time.Now()
	for i := 0; i < pubs; i++ {
		wg.Add(1)
		topic := fmt.Sprintf("bench/%d", i)
		go func() {
			defer wg.Done()
			next := func() (string, []byte, bool) { return topic, payload, true }
			if err := publisher(addr, fmt.Sprintf("bench-pub-%d", i), false, window, next, stop, &acked, &lat, &latMu); err != nil {
				errs <- err
			}
		}()
	}
	time.Sleep(dur)
	a0, r0 := acked.Load(), received.Load()
	el := time.Since(start)
	close(stop)
	wg.Wait()
	// Let the subscriber drain (bounded).
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < acked.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stopSub)
	sub.c.Close()
	select {
	case err := <-errs:
		return err
	default:
	}
	slices.Sort(lat)
	fmt.Printf("window %.1fs: publishes acked %d (%.0f/s), received %d (%.0f/s); after drain acked %d received %d; PUBACK latency p50 %v p99 %v max %v\n",
		el.Seconds(), a0, float64(a0)/el.Seconds(), r0, float64(r0)/el.Seconds(), acked.Load(), received.Load(),
		pct(lat, 0.5).Round(time.Microsecond), pct(lat, 0.99).Round(time.Microsecond), pct(lat, 1).Round(time.Microsecond))
	return nil
}

func runFill(addr string, n, size int) error {
	const conns = 4
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	payload := make([]byte, size)
	for k := 0; k < conns; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := dial(addr, fmt.Sprintf("fill-%d", k), true, codec.V311)
			if err != nil {
				errs <- err
				return
			}
			defer c.c.Close()
			// Drain anything the broker sends (nothing expected but the final PUBACK).
			var out []byte
			for i := k; i < n; i += conns {
				p := codec.Publish{Topic: []byte(fmt.Sprintf("dev/%d/%d", i/1000, i%1000)), Payload: payload, Retain: true}
				out = p.Append(out, c.v)
				if len(out) > 64<<10 {
					if err := c.write(out); err != nil {
						errs <- err
						return
					}
					out = out[:0]
				}
			}
			p := codec.Publish{Topic: []byte("fill/done"), Payload: []byte("x"), QoS: 1, PacketID: 1}
			out = p.Append(out, c.v)
			if err := c.write(out); err != nil {
				errs <- err
				return
			}
			for {
				h, _, err := c.read(5 * time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if h.Type == codec.PUBACK {
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	el := time.Since(start)
	fmt.Printf("published %d retained messages (%d B) over %d connections in %v (%.0f/s)\n", n, size, conns, el.Round(time.Millisecond), float64(n)/el.Seconds())
	return nil
}

func runRsub(addr string, n int, dur time.Duration) error {
	c, _, err := dial(addr, "rsub", true, codec.V311)
	if err != nil {
		return err
	}
	defer c.c.Close()
	start := time.Now()
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("#"), QoS: 0}}}
	if err := c.write(s.Append(nil, c.v)); err != nil {
		return err
	}
	got := 0
	var first, last time.Time
	deadline := time.Now().Add(dur)
	for got < n && time.Now().Before(deadline) {
		h, _, err := c.read(10 * time.Second)
		if err != nil {
			return fmt.Errorf("after %d messages: %w", got, err)
		}
		if h.Type == codec.PUBLISH {
			if got == 0 {
				first = time.Now()
			}
			got++
			last = time.Now()
		}
	}
	fmt.Printf("# subscriber: %d retained messages; first after %v, all after %v (%.0f msg/s)\n", got, first.Sub(start).Round(time.Millisecond), last.Sub(start).Round(time.Millisecond), float64(got)/last.Sub(start).Seconds())
	return nil
}

// runChurn replaces retained messages (10,000 topics, 64–1024 B, QoS 1)
// and cycles 50 persistent sessions that get QoS 1 messages while
// offline; every 20th visit starts a session clean. du -sh every 30 s.
func runChurn(addr string, dur time.Duration, dir string) error {
	const topics, sessions, cyclers = 10000, 50, 5
	stop := make(chan struct{})
	var retAcked, qAcked, delivered, visits, cleans atomic.Int64
	var lat []time.Duration
	var latMu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	// Subscribe every session once.
	for j := 0; j < sessions; j++ {
		c, _, err := dial(addr, fmt.Sprintf("sess-%d", j), false, codec.V311)
		if err != nil {
			return err
		}
		if err := subscribe(c, fmt.Sprintf("q/%d", j), 1); err != nil {
			return err
		}
		c.c.Close()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var rmu sync.Mutex
	payloads := make([][]byte, 16)
	for i := range payloads {
		payloads[i] = make([]byte, 64+i*64)
	}
	// Retained replacer: ~1000 msg/s.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		next := func() (string, []byte, bool) {
			select {
			case <-stop:
				return "", nil, false
			case <-tick.C:
			}
			rmu.Lock()
			k, p := rng.IntN(topics), payloads[rng.IntN(len(payloads))]
			rmu.Unlock()
			return fmt.Sprintf("ret/%d/%d", k/100, k%100), p, true
		}
		if err := publisherRetained(addr, "churn-ret", next, stop, &retAcked); err != nil {
			errs <- err
		}
	}()
	// Queue feeder: ~2000 msg/s QoS 1 to q/<j>.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		i := 0
		payload := make([]byte, 64)
		next := func() (string, []byte, bool) {
			select {
			case <-stop:
				return "", nil, false
			case <-tick.C:
			}
			i++
			return fmt.Sprintf("q/%d", i%sessions), payload, true
		}
		if err := publisher(addr, "churn-q", false, 64, next, stop, &qAcked, &lat, &latMu); err != nil {
			errs <- err
		}
	}()
	// Session cyclers.
	for w := 0; w < cyclers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := 0; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				j := (v*cyclers + w) % sessions
				cid := fmt.Sprintf("sess-%d", j)
				visits.Add(1)
				if v%20 == 19 {
					// Start clean (drops the session and its queue), then
					// make it persistent again.
					c, _, err := dial(addr, cid, true, codec.V311)
					if err != nil {
						errs <- err
						return
					}
					c.c.Close()
					c, _, err = dial(addr, cid, false, codec.V311)
					if err != nil {
						errs <- err
						return
					}
					if err := subscribe(c, fmt.Sprintf("q/%d", j), 1); err != nil {
						errs <- err
						return
					}
					c.c.Close()
					cleans.Add(1)
					continue
				}
				c, _, err := dial(addr, cid, false, codec.V311)
				if err != nil {
					errs <- err
					return
				}
				visit := make(chan struct{})
				tm := time.AfterFunc(time.Second, func() { close(visit) })
				go func() {
					select {
					case <-stop:
						c.c.SetReadDeadline(time.Now())
					case <-visit:
						c.c.SetReadDeadline(time.Now())
					}
				}()
				_, _ = drain(c, 300*time.Millisecond, visit, &delivered)
				tm.Stop()
				_ = c.write([]byte{0xE0, 0})
				c.c.Close()
			}
		}()
	}
	start := time.Now()
	du := func() string {
		out, err := exec.Command("du", "-sh", dir).Output()
		if err != nil {
			return "?"
		}
		app, err := exec.Command("du", "-sh", "--apparent-size", dir).Output()
		if err != nil {
			return "?"
		}
		return strings.Fields(string(out))[0] + " (apparent " + strings.Fields(string(app))[0] + ")"
	}
	fmt.Printf("t=0s du=%s\n", du())
	t := time.NewTicker(30 * time.Second)
	end := time.After(dur)
loop:
	for {
		select {
		case <-t.C:
			fmt.Printf("t=%.0fs du=%s retained-acked=%d queued-acked=%d delivered=%d visits=%d clean-starts=%d\n",
				time.Since(start).Seconds(), du(), retAcked.Load(), qAcked.Load(), delivered.Load(), visits.Load(), cleans.Load())
		case err := <-errs:
			close(stop)
			return err
		case <-end:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	fmt.Printf("end t=%.0fs du=%s retained-acked=%d queued-acked=%d delivered=%d visits=%d clean-starts=%d\n",
		time.Since(start).Seconds(), du(), retAcked.Load(), qAcked.Load(), delivered.Load(), visits.Load(), cleans.Load())
	return nil
}

// publisherRetained is publisher with RETAIN set, window 64.
func publisherRetained(addr, cid string, next func() (string, []byte, bool), stop <-chan struct{}, acked *atomic.Int64) error {
	var lat []time.Duration
	var mu sync.Mutex
	return publisher(addr, cid, true, 64, next, stop, acked, &lat, &mu)
}

// runFill1 publishes n retained QoS 1 messages over 4 connections, window
// 64 each: every PUBACK waits for the store, so the store paces it.
func runFill1(addr string, n, size int) error {
	const conns = 4
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	payload := make([]byte, size)
	var acked atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	for k := 0; k < conns; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := k
			next := func() (string, []byte, bool) {
				if i >= n {
					return "", nil, false
				}
				t := fmt.Sprintf("dev/%d/%d", i/1000, i%1000)
				i += conns
				return t, payload, true
			}
			if err := publisher(addr, fmt.Sprintf("fill-%d", k), true, 64, next, nil, &acked, &lat, &mu); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	el := time.Since(start)
	fmt.Printf("published %d retained QoS 1 messages (%d B) over %d connections in %v (%.0f/s), %d acknowledged\n", n, size, conns, el.Round(time.Millisecond), float64(n)/el.Seconds(), acked.Load())
	return nil
}
