package e2e

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// floodConns is the number of hostile connections; with the test's own
// ends that is twice as many descriptors, well under the 20000 hard limit
// (Go raises the soft limit to the hard one at start).
const floodConns = 3000

// floodHeapBound is the most the broker's heap may grow during the flood.
// The flood makes 500 connections claim a CONNECT of almost
// --max-packet-size (1 MiB) and send 8 KiB of it: a broker that sized a
// buffer by the claim would need 500 MiB; one that holds what arrived
// needs about 4 MiB, plus a few KiB of state per connection.
const floodHeapBound = 96 << 20

// TestFlood_GarbageConnections opens floodConns loopback connections in six
// kinds: never speaking; random bytes; half a CONNECT; a header claiming
// more than the maximum packet size; a CONNECT claiming almost the maximum
// with only 8 KiB sent; a valid CONNECT followed by a malformed packet.
// While they are open and after they are gone, a paho client must still
// publish and receive; every hostile connection must be closed by the
// broker (at once, or by the connect timeout); the broker's heap must stay
// within floodHeapBound of where it started.
func TestFlood_GarbageConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test in -short mode")
	}
	tb := start(t, broker.Options{ConnectTimeout: time.Second, MaxPacketSize: 1 << 20})

	sink := newV3Sink()
	good, _ := v3Paho(t, tb.Addr, "good", true, sink, nil)
	v3Sub(t, good, "ok/#", 1)
	v3Pub(t, good, "ok/before", 1, false, "before")
	sink.waitPayload(t, "before")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()

	conns := make([]net.Conn, floodConns)
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	const dialers = 8
	for d := 0; d < dialers; d++ {
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(d), 1))
			for i := d; i < floodConns; i += dialers {
				c, err := net.DialTimeout("tcp", tb.Addr, 5*time.Second)
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				conns[i] = c
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(floodBytes(i%6, rng))
			}
		}(d)
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%d of %d dials failed", n, floodConns)
	}

	// The broker serves a normal client while the flood is open.
	v3Pub(t, good, "ok/during", 1, false, "during")
	sink.waitPayload(t, "during")

	// Every hostile connection is closed by the broker: garbage at once,
	// the silent and the incomplete ones by the connect timeout.
	deadline := time.Now().Add(10 * time.Second)
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
		c.Close()
	}
	close(stopSampling)
	<-sampled
	if open > 0 {
		t.Fatalf("%d hostile connections still open after the connect timeout", open)
	}

	v3Pub(t, good, "ok/after", 1, false, "after")
	sink.waitPayload(t, "after")

	grown := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("%d hostile connections; heap %d MiB before, peak %d MiB (+%d MiB; bound %d MiB)",
		floodConns, base.HeapAlloc>>20, peak.Load()>>20, grown>>20, floodHeapBound>>20)
	if grown > floodHeapBound {
		t.Fatalf("heap grew by %d MiB during the flood, bound %d MiB", grown>>20, floodHeapBound>>20)
	}
	st := tb.B.Stats()
	if st.Rejected["protocol_error"] == 0 || st.Rejected["connect_timeout"] == 0 {
		t.Fatalf("closes not counted: %v", st.Rejected)
	}
}

// floodBytes is what hostile connection kind k sends.
func floodBytes(k int, rng *rand.Rand) []byte {
	switch k {
	case 0: // never speaks
		return nil
	case 1: // garbage
		b := make([]byte, 1+rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case 2: // half a CONNECT
		p := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, ClientID: []byte("half"), CleanStart: true}).Append(nil)
		return p[:len(p)/2]
	case 3: // a PUBLISH header claiming 200 MiB: refused from the header
		return binary.AppendUvarint([]byte{byte(codec.PUBLISH) << 4}, 200<<20)
	case 4: // a CONNECT claiming almost 1 MiB, 8 KiB of it sent
		b := []byte{byte(codec.CONNECT) << 4}
		b = binary.AppendUvarint(b, 1<<20-16)
		return append(b, make([]byte, 8<<10)...)
	default: // a valid CONNECT, then a PUBLISH with QoS 3 (malformed)
		p := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, ClientID: []byte("bad-" + string(rune('a'+rng.IntN(26)))), CleanStart: true, KeepAlive: 30}).Append(nil)
		return append(p, 0x36, 0x03, 0x00, 0x01, 'x')
	}
}
