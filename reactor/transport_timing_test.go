package reactor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/internal/testpki"
)

// TLS design benchmark: a QoS 0 fan-in (fanInPubs publishers, one
// subscriber, all on the transport under test) through
//
//	tcp           the gnet event loops, plain TCP (baseline)
//	tls-goroutine crypto/tls on the goroutine transport (what ships: goconn.go)
//	tls-onloop    prototype: crypto/tls driven on the event loop through an
//	              in-memory net.Conn (onLoopTLS below; the handshake runs on a
//	              goroutine, every record after it on the loop)
//
// The clients run in a child process (this test binary re-executed), so
// the CPU time measured here (getrusage of this process) is the broker's
// alone. Reported: delivered msgs/s, broker CPU µs per published message,
// and the share of messages delivered (QoS 0 may be dropped for a slow
// subscriber). Run:
//
//	go test ./reactor -run '^$' -bench FanIn -benchtime 200000x -count 3

const (
	fanInPubs    = 4
	fanInPayload = 64
	fanInBatch   = 64 // PUBLISH packets per client write
)

func BenchmarkFanIn(b *testing.B) {
	for _, rate := range []int{0, 50000} {
		for _, mode := range []string{"tcp", "tls-goroutine"} {
			name := mode + "/max"
			if rate > 0 {
				name = fmt.Sprintf("%s/%dmsgs", mode, rate)
			}
			b.Run(name, func(b *testing.B) { benchFanIn(b, mode, rate) })
		}
	}
}

// benchFanIn runs b.N messages; rate > 0 paces the publishers to rate
// messages/s in total, so the CPU per message is compared at equal load
// (unpaced, a transport that reads faster than the subscriber drains has
// more QoS 0 dropped, which is cheaper).
func benchFanIn(b *testing.B, mode string, rate int) {
	pki := testpki.New(b)
	ca, cert, key := pki.CA, pki.ServerCert, pki.ServerKey
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	br := broker.New(broker.Options{Loops: 2, Logger: logger, MaxOutboundBytes: 64 << 20})
	port := benchFreePort(b)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	o := Options{Logger: logger, TLS: TLSOptions{CertFile: cert, KeyFile: key}}
	switch mode {
	case "tcp":
		o.Listen = []string{"tcp://" + addr}
	case "tls-goroutine":
		o.Listen = []string{"tls://" + addr}
	}
	benchRun(b, New(br, o), mode, addr, ca, rate)
}

func benchRun(b *testing.B, srv *Server, mode, addr, ca string, rate int) {
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()
	perPub := max(b.N/fanInPubs, fanInBatch)
	tlsMode := "tls"
	if mode == "tcp" {
		tlsMode = "tcp"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanInClients$", "-test.v")
	cmd.Env = append(os.Environ(), "MCUTIE_FANIN_CLIENT=1", "FANIN_ADDR="+addr, "FANIN_MODE="+tlsMode,
		"FANIN_CA="+ca, "FANIN_PER_PUB="+strconv.Itoa(perPub), "FANIN_RATE="+strconv.Itoa(rate))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	waitLine := func(prefix string) string {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return sc.Text()
			}
		}
		b.Fatalf("client process ended before %q", prefix)
		return ""
	}
	waitLine("READY")
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	fmt.Fprintln(stdin, "GO")
	res := waitLine("RESULT")
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b.StopTimer()
	var got, sent int
	var elapsed time.Duration
	if _, err := fmt.Sscanf(res, "RESULT %d %d %d", &got, &sent, &elapsed); err != nil {
		b.Fatalf("bad result line %q: %v", res, err)
	}
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()) - time.Duration(ru0.Utime.Nano()+ru0.Stime.Nano())
	b.ReportMetric(float64(got)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(sent), "broker-cpu-µs/msg")
	b.ReportMetric(float64(got)/float64(sent), "delivered-share")
}

// TestFanInClients is the client process of BenchmarkFanIn; it does
// nothing unless started by it.
func TestFanInClients(t *testing.T) {
	if os.Getenv("MCUTIE_FANIN_CLIENT") != "1" {
		t.Skip("client process of BenchmarkFanIn")
	}
	addr, mode := os.Getenv("FANIN_ADDR"), os.Getenv("FANIN_MODE")
	perPub, _ := strconv.Atoi(os.Getenv("FANIN_PER_PUB"))
	rate, _ := strconv.Atoi(os.Getenv("FANIN_RATE"))
	var every time.Duration // between two batches of one publisher
	if rate > 0 {
		every = time.Duration(float64(time.Second) * fanInBatch * fanInPubs / float64(rate))
	}
	pool := x509.NewCertPool()
	if pemBytes, err := os.ReadFile(os.Getenv("FANIN_CA")); err == nil {
		pool.AppendCertsFromPEM(pemBytes)
	}
	dial := func() net.Conn {
		var c net.Conn
		var err error
		if mode == "tls" {
			c, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	connect := func(c net.Conn, r *bufio.Reader) {
		cp := codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), CleanStart: true}
		if _, err := c.Write(cp.Append(nil)); err != nil {
			t.Fatal(err)
		}
		if h := readPacket(t, r); h != codec.CONNACK {
			t.Fatalf("want CONNACK, got %d", h)
		}
	}
	sub := dial()
	sr := bufio.NewReaderSize(sub, 256<<10)
	connect(sub, sr)
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("fan/in")}}}
	if _, err := sub.Write(s.Append(nil, codec.V311)); err != nil {
		t.Fatal(err)
	}
	if h := readPacket(t, sr); h != codec.SUBACK {
		t.Fatalf("want SUBACK, got %d", h)
	}
	pubs := make([]net.Conn, fanInPubs)
	readers := make([]*bufio.Reader, fanInPubs)
	for i := range pubs {
		pubs[i] = dial()
		readers[i] = bufio.NewReader(pubs[i])
		connect(pubs[i], readers[i])
	}
	var batch []byte
	for range fanInBatch {
		batch = (&codec.Publish{Topic: []byte("fan/in"), Payload: make([]byte, fanInPayload)}).Append(batch, codec.V311)
	}
	fmt.Println("READY")
	in := bufio.NewScanner(os.Stdin)
	in.Scan()
	start := time.Now()
	total := fanInPubs * (perPub / fanInBatch) * fanInBatch
	var last atomic.Int64
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got.Load() < int64(total) {
			_ = sub.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			h, err := readHeader(sr)
			if err != nil {
				return // idle: everything that was not dropped has arrived
			}
			if h == codec.PUBLISH {
				got.Add(1)
				last.Store(int64(time.Since(start)))
			}
		}
	}()
	var wg sync.WaitGroup
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for range perPub / fanInBatch {
				if every > 0 {
					next = next.Add(every)
					time.Sleep(time.Until(next))
				}
				if _, err := c.Write(batch); err != nil {
					t.Error(err)
					return
				}
			}
			_, _ = c.Write([]byte{0xC0, 0}) // PINGREQ: answered after every PUBLISH before it
			if h := readPacket(t, readers[i]); h != codec.PINGRESP {
				t.Errorf("want PINGRESP, got %d", h)
			}
		}()
	}
	wg.Wait()
	<-done
	fmt.Printf("RESULT %d %d %d\n", got.Load(), total, last.Load())
}

func readPacket(t *testing.T, r *bufio.Reader) codec.Type {
	t.Helper()
	h, err := readHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// readHeader reads one packet and returns its type.
func readHeader(r *bufio.Reader) (codec.Type, error) {
	b0, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	n, mul := 0, 1
	for {
		x, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(x&127) * mul
		if x < 128 {
			break
		}
		mul *= 128
	}
	if _, err := r.Discard(n); err != nil {
		return 0, err
	}
	return codec.Type(b0 >> 4), nil
}

func benchFreePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
