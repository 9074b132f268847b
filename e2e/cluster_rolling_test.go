package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// rollRec is what one subscriber received from one publisher.
type rollRec struct {
	seq int
	dup bool // the DUP flag was set
}

// rollSub is a persistent-session subscriber that follows its node
// through restarts.
type rollSub struct {
	name string
	mu   sync.Mutex
	got  map[int][]rollRec // by publisher
	// connects counts successful CONNECTs; resumedWithout counts the
	// reconnections whose CONNACK said no session was present.
	connects, resumedWithout atomic.Int64
}

func (s *rollSub) add(payload []byte, dup bool) {
	pub, seq, ok := strings.Cut(string(payload), ":")
	if !ok {
		return // a probe
	}
	p, err1 := strconv.Atoi(pub)
	n, err2 := strconv.Atoi(seq)
	if err1 != nil || err2 != nil {
		return
	}
	s.mu.Lock()
	s.got[p] = append(s.got[p], rollRec{seq: n, dup: dup})
	s.mu.Unlock()
}

func (s *rollSub) has(pub, upto int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[int]bool, upto)
	for _, r := range s.got[pub] {
		seen[r.seq] = true
	}
	for i := 1; i <= upto; i++ {
		if !seen[i] {
			return false
		}
	}
	return true
}

// runV5RollSub keeps a paho.golang v5 subscriber (clean start false,
// session expiry 300 s) connected to addr until ctx ends.
func runV5RollSub(ctx context.Context, wg *sync.WaitGroup, s *rollSub, addr, id string, probes chan<- string) {
	defer wg.Done()
	first := true
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := paho.NewClient(paho.ClientConfig{
			Conn: &lockedConn{Conn: nc},
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				if strings.HasPrefix(pr.Packet.Topic, "roll/probe/") {
					select {
					case probes <- s.name + " " + pr.Packet.Topic:
					default:
					}
				}
				s.add(pr.Packet.Payload, pr.Packet.Duplicate())
				return true, nil
			}},
			PacketTimeout: v5Timeout,
		})
		cctx, cancel := context.WithTimeout(ctx, v5Timeout)
		ack, err := c.Connect(cctx, &paho.Connect{ClientID: id, CleanStart: first, KeepAlive: 5,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
		cancel()
		if err != nil || ack.ReasonCode != 0 {
			nc.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.connects.Add(1)
		if !first && !ack.SessionPresent {
			s.resumedWithout.Add(1)
		}
		if first {
			cctx, cancel := context.WithTimeout(ctx, v5Timeout)
			_, err := c.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "roll/#", QoS: 1}}})
			cancel()
			if err != nil {
				_ = c.Disconnect(&paho.Disconnect{})
				continue
			}
			first = false
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}
}

// runV3RollSub is the same with paho.mqtt.golang and MQTT 3.1.1, clean
// session false.
func runV3RollSub(ctx context.Context, wg *sync.WaitGroup, s *rollSub, addr, id string, probes chan<- string) {
	defer wg.Done()
	lost := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(time.Second).SetWriteTimeout(v3Wait).SetKeepAlive(5 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			if strings.HasPrefix(m.Topic(), "roll/probe/") {
				select {
				case probes <- s.name + " " + m.Topic():
				default:
				}
			}
			s.add(m.Payload(), m.Duplicate())
		}).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			select {
			case lost <- struct{}{}:
			default:
			}
		})
	c := mqtt.NewClient(o)
	first := true
	for ctx.Err() == nil {
		tok := c.Connect()
		if !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.connects.Add(1)
		if !first && !tok.(*mqtt.ConnectToken).SessionPresent() {
			s.resumedWithout.Add(1)
		}
		if first {
			st := c.Subscribe("roll/#", 1, nil)
			if !st.WaitTimeout(v3Wait) || st.Error() != nil {
				c.Disconnect(0)
				continue
			}
			first = false
		}
		select {
		case <-lost:
		case <-ctx.Done():
			c.Disconnect(0)
		}
	}
}

// rollPub publishes "<node>:<seq>" at QoS 1 on roll/<node> to its node,
// one message in flight, reconnecting after the node restarts and
// sending an unacknowledged message again.
type rollPub struct {
	node    int
	acked   atomic.Int64 // highest seq acknowledged (PUBACK); all below are too
	resends atomic.Int64 // sends that failed after the PUBLISH may have reached the broker
}

func (p *rollPub) run(ctx context.Context, wg *sync.WaitGroup, addr string, probing *atomic.Bool) {
	defer wg.Done()
	seq := 1
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// A PUBLISH waiting for its PUBACK ends when the connection does
		// (the node stopped), not only at its timeout.
		connCtx, connGone := context.WithCancel(ctx)
		c := paho.NewClient(paho.ClientConfig{Conn: &lockedConn{Conn: nc}, PacketTimeout: v5Timeout,
			OnServerDisconnect: func(*paho.Disconnect) { connGone() },
			OnClientError:      func(error) { connGone() }})
		cctx, cancel := context.WithTimeout(ctx, v5Timeout)
		ack, err := c.Connect(cctx, &paho.Connect{ClientID: fmt.Sprintf("roll-pub-%d", p.node), CleanStart: true, KeepAlive: 5})
		cancel()
		if err != nil || ack.ReasonCode != 0 {
			connGone()
			nc.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go func() { // Done is set by Connect
			select {
			case <-c.Done():
				connGone()
			case <-connCtx.Done():
			}
		}()
		for ctx.Err() == nil {
			topic, payload := fmt.Sprintf("roll/%d", p.node), fmt.Sprintf("%d:%d", p.node, seq)
			if probing.Load() {
				topic, payload = fmt.Sprintf("roll/probe/%d", p.node), "probe"
			}
			pctx, cancel := context.WithTimeout(connCtx, v5Timeout)
			_, err := c.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
			cancel()
			if err != nil {
				if ctx.Err() == nil && topic != "roll/probe/"+strconv.Itoa(p.node) {
					p.resends.Add(1) // the same seq goes again
				}
				break
			}
			if !probing.Load() && topic != "roll/probe/"+strconv.Itoa(p.node) {
				p.acked.Store(int64(seq))
				seq++
			}
			time.Sleep(4 * time.Millisecond)
		}
		_ = c.Disconnect(&paho.Disconnect{})
		connGone()
	}
}

// scrapeMetric reads one unlabelled metric from a node's /metrics (-1:
// not there).
func scrapeMetric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// TestClusterRollingRestart: three mcutie processes (Badger stores)
// joined by flags, a QoS 1 publisher and two persistent-session
// subscribers (MQTT 5 clean start false with a session expiry; 3.1.1
// clean session false) on each, every subscriber on roll/#. Each node in
// turn is stopped with SIGTERM and started again with the same data dir
// and node id while the publishers go on; its clients connect to it
// again and resume their sessions. Then every message whose PUBACK a
// publisher got reached every subscriber: none lost [MQTT-4.3.3-1 ...
// the session's messages survive a restart, MQTT-3.1.2-4/-5]; first
// receipts per publisher in order [MQTT-4.6.0-5]; duplicates only where
// MQTT allows them: redeliveries with DUP set [MQTT-4.4.0-1], and copies
// of a message its publisher sent again after its connection dropped
// before the PUBACK (at most one per such resend) [MQTT-4.3.2].
var rollHold = "1m"

func TestClusterRollingRestart(t *testing.T) {
	if h := os.Getenv("ROLL_HOLD"); h != "" {
		rollHold = h
	}
	const nodes = 3
	durBinary(t) // built once per run: not part of the restart's time
	began := time.Now()
	mqttPorts, clusterPorts, metricPorts := make([]int, nodes), make([]int, nodes), make([]int, nodes)
	dirs := make([]string, nodes)
	for i := range nodes {
		mqttPorts[i], clusterPorts[i], metricPorts[i], dirs[i] = freePort(t), freePort(t), freePort(t), t.TempDir()
	}
	args := func(i int) []string {
		a := []string{"--node-id", fmt.Sprintf("roll%d", i), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]),
			"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricPorts[i]), "--cluster-hold", rollHold}
		for j := range nodes {
			if j != i {
				a = append(a, "--cluster-join", fmt.Sprintf("127.0.0.1:%d", clusterPorts[j]))
			}
		}
		return a
	}
	procs := make([]*durProc, nodes)
	for i := range nodes {
		procs[i] = durRun(t, dirs[i], mqttPorts[i], args(i)...)
	}
	for i := range nodes {
		procs[i].waitStarted(t, 20*time.Second)
	}
	t.Logf("started in %v", time.Since(began).Round(time.Millisecond))
	if os.Getenv("ROLL_DEBUG") != "" {
		for i := range nodes {
			t.Log(procs[i].log())
		}
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", mqttPorts[i]) }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subWG, pubWG sync.WaitGroup
	probes := make(chan string, 1024)
	var subs []*rollSub
	for i := range nodes {
		for _, v := range []string{"v5", "v3"} {
			s := &rollSub{name: fmt.Sprintf("%s-%d", v, i), got: map[int][]rollRec{}}
			subs = append(subs, s)
			subWG.Add(1)
			if v == "v5" {
				go runV5RollSub(ctx, &subWG, s, addr(i), "roll-"+s.name, probes)
			} else {
				go runV3RollSub(ctx, &subWG, s, addr(i), "roll-"+s.name, probes)
			}
		}
	}
	// Until every subscriber's interest reached every node, a message
	// stops at its node: probe until each subscriber heard each node.
	var probing atomic.Bool
	probing.Store(true)
	pubCtx, stopPubs := context.WithCancel(ctx)
	pubs := make([]*rollPub, nodes)
	for i := range nodes {
		pubs[i] = &rollPub{node: i}
		pubWG.Add(1)
		go pubs[i].run(pubCtx, &pubWG, addr(i), &probing)
	}
	heard := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(heard) < len(subs)*nodes {
		select {
		case p := <-probes:
			heard[p] = true
		case <-deadline:
			t.Fatalf("probes: only %d of %d (subscriber, node) pairs heard within 20 s: %v", len(heard), len(subs)*nodes, heard)
		}
	}
	probing.Store(false)
	start := time.Now()
	t.Logf("started and probed in %v", time.Since(began).Round(time.Millisecond))

	for i := range nodes {
		time.Sleep(700 * time.Millisecond)
		before := make([]int64, len(subs))
		for k, s := range subs {
			before[k] = s.connects.Load()
		}
		procs[i].term(t)
		procs[i] = durRun(t, dirs[i], mqttPorts[i], args(i)...)
		procs[i].waitStarted(t, 20*time.Second)
		// Its subscribers are back, on their own node, with their sessions.
		v5Wait(t, fmt.Sprintf("node %d's subscribers reconnected", i), func() bool {
			return subs[2*i].connects.Load() > before[2*i] && subs[2*i+1].connects.Load() > before[2*i+1]
		})
	}
	time.Sleep(700 * time.Millisecond)
	stopPubs()
	pubWG.Wait()
	// What was acknowledged must reach every subscriber.
	acked := make([]int, nodes)
	for i := range nodes {
		acked[i] = int(pubs[i].acked.Load())
	}
	// Bounded: what has not arrived within 10 s is counted as lost below.
	for wait := time.Now(); time.Since(wait) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		all := true
		for _, s := range subs {
			for p := range nodes {
				all = all && s.has(p, acked[p])
			}
		}
		if all {
			break
		}
	}
	elapsed := time.Since(start)
	time.Sleep(v5Quiet) // duplicates still on their way are counted too
	cancel()
	subWG.Wait()

	total, lost, dupFlagged, dupPlain := 0, 0, 0, 0
	for _, s := range subs {
		if n := s.resumedWithout.Load(); n != 0 {
			t.Errorf("%s: %d reconnections found no session [MQTT-3.2.2-2]", s.name, n)
		}
		s.mu.Lock()
		for p := range nodes {
			seen := map[int]int{}
			last := 0
			plain := 0
			for _, r := range s.got[p] {
				seen[r.seq]++
				if seen[r.seq] > 1 {
					if r.dup {
						dupFlagged++
					} else {
						plain++
					}
					continue
				}
				if r.seq < last {
					t.Errorf("%s: from publisher %d, message %d first arrived after %d: out of order", s.name, p, r.seq, last)
				}
				last = r.seq
			}
			for q := 1; q <= acked[p]; q++ {
				total++
				if seen[q] == 0 {
					lost++
				}
			}
			if int64(plain) > pubs[p].resends.Load() {
				t.Errorf("%s: %d duplicates from publisher %d without DUP, more than its %d resends", s.name, plain, p, pubs[p].resends.Load())
			}
			dupPlain += plain
		}
		s.mu.Unlock()
	}
	var held, released, holdDropped float64
	for i := range nodes {
		held += scrapeMetric(fmt.Sprintf("127.0.0.1:%d", metricPorts[i]), "mcutie_cluster_held_messages_total")
		released += scrapeMetric(fmt.Sprintf("127.0.0.1:%d", metricPorts[i]), "mcutie_cluster_released_messages_total")
		holdDropped += scrapeMetric(fmt.Sprintf("127.0.0.1:%d", metricPorts[i]), "mcutie_cluster_hold_dropped_messages_total")
	}
	if lost != 0 {
		t.Errorf("%d of %d acknowledged (message, subscriber) deliveries lost", lost, total)
	}
	if holdDropped != 0 {
		t.Errorf("%v messages dropped from hold queues", holdDropped)
	}
	if released <= 0 {
		// The publishers on the other nodes go on while each node is
		// down (a second or more): some of their messages must have been
		// held for it, or this run did not test the hold.
		t.Errorf("no held message was released (held %v): the hold was not exercised", held)
	}
	t.Logf("rolling restart of %d nodes: %d acknowledged messages (%v per publisher), %d deliveries expected, %d lost, %d duplicates with DUP, %d without (publisher resends: %d, %d, %d); held %v, released %v (since the last restarts' held count is per process); restarts took %v, whole test %v",
		nodes, acked[0]+acked[1]+acked[2], acked, total, lost, dupFlagged, dupPlain,
		pubs[0].resends.Load(), pubs[1].resends.Load(), pubs[2].resends.Load(), held, released, elapsed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
