package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/store"
)

var protocols = []string{"5", "3.1.1"}

func bridgeYAML(name, addr, protocol, extra, topics string) string {
	return fmt.Sprintf(`bridges:
  - name: %s
    address: %s
    protocol: "%s"
    reconnect: {min: 20ms, max: 200ms}
%s    topics:
%s`, name, addr, protocol, extra, topics)
}

// TestOutAndIn: out and in mappings with prefixes, QoS 0 and 1, against
// Mosquitto, with MQTT 5 and 3.1.1 remotes; the state in /metrics and
// $SYS.
func TestOutAndIn(t *testing.T) {
	for _, proto := range protocols {
		t.Run("v"+proto, func(t *testing.T) {
			mq := newMosquitto(t, "")
			l := newLocal(t, broker.Options{})
			m := startBridges(t, l, bridgeYAML("edge", "tcp://"+mq.addr(), proto, "", `      - {pattern: "sensors/#", direction: out, qos: 1, local_prefix: site/, remote_prefix: edge1/}
      - {pattern: "cmd/#", direction: in, qos: 1, local_prefix: in/, remote_prefix: cloud/}
      - {pattern: "", direction: out, qos: 0, local_prefix: local/one, remote_prefix: remote/one}
`))
			br := m.Bridges()[0]
			waitUntil(t, 10*time.Second, "the bridge up", func() bool { return br.Status().Up })

			remoteSub := newCollector()
			subscribe(t, client(t, mq.addr(), "remote-sub", true), "#", 1, remoteSub)
			localSub := newCollector()
			lc := client(t, l.addr, "local-sub", true)
			subscribe(t, lc, "in/#", 1, localSub)
			sysSub := newCollector()
			subscribe(t, lc, "$SYS/broker/+/edge/state", 0, sysSub)

			// Out: local site/sensors/x -> remote edge1/sensors/x.
			pub := client(t, l.addr, "local-pub", true)
			publish(t, pub, "site/sensors/t1", 1, false, "q1")
			publish(t, pub, "site/sensors/t2", 0, false, "q0")
			publish(t, pub, "local/one", 1, false, "single")
			publish(t, pub, "elsewhere/x", 1, false, "not bridged")
			got := remoteSub.waitFor(t, 10*time.Second, "3 messages on the remote", func(ms []mqtt.Message) bool { return len(ms) >= 3 })
			want := map[string]string{"edge1/sensors/t1": "q1", "edge1/sensors/t2": "q0", "remote/one": "single"}
			for _, msg := range got {
				if want[msg.Topic()] != string(msg.Payload()) {
					t.Errorf("remote got %s %q, want one of %v", msg.Topic(), msg.Payload(), want)
				}
				delete(want, msg.Topic())
			}

			// In: remote cloud/cmd/x -> local in/cmd/x, QoS kept at 1.
			rp := client(t, mq.addr(), "remote-pub", true)
			publish(t, rp, "cloud/cmd/reboot", 1, false, "now")
			publish(t, rp, "cloud/other", 1, false, "not bridged")
			in := localSub.waitFor(t, 10*time.Second, "the inbound message", func(ms []mqtt.Message) bool { return len(ms) >= 1 })
			if in[0].Topic() != "in/cmd/reboot" || string(in[0].Payload()) != "now" || in[0].Qos() != 1 {
				t.Errorf("local got %s %q QoS %d, want in/cmd/reboot \"now\" QoS 1", in[0].Topic(), in[0].Payload(), in[0].Qos())
			}

			sysSub.waitFor(t, 10*time.Second, "$SYS state 1 on both topics", func(ms []mqtt.Message) bool {
				seen := map[string]bool{}
				for _, msg := range ms {
					seen[msg.Topic()+"="+string(msg.Payload())] = true
				}
				return seen["$SYS/broker/bridges/edge/state=1"] && seen["$SYS/broker/connection/edge/state=1"]
			})
			// The counters move at the acknowledgements, which may follow
			// the deliveries.
			waitUntil(t, 10*time.Second, "sent >= 3 and received 1", func() bool {
				st := br.Status()
				return st.Sent >= 3 && st.Received == 1
			})
			var w bytes.Buffer
			m.WriteMetrics(&w)
			for _, line := range []string{`mcutie_bridge_up{bridge="edge"} 1`, `mcutie_bridge_messages_received_total{bridge="edge"} 1`} {
				if !strings.Contains(w.String(), line+"\n") {
					t.Errorf("metrics lack %q:\n%s", line, w.String())
				}
			}
		})
	}
}

// TestTLS: a tls:// remote with the test's own CA and a client
// certificate Mosquitto requires.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, sc, sk, cc, ck := testPKI(t, dir)
	mq := newMosquitto(t, "listener %d 127.0.0.1\ncafile "+ca+"\ncertfile "+sc+"\nkeyfile "+sk+"\nrequire_certificate true\n")
	port := mq.port
	l := newLocal(t, broker.Options{})
	// secure has the test's CA; untrusted not (insecure_skip_verify is
	// off by default): its remote's certificate must be refused.
	m := startBridges(t, l, bridgeYAML("secure", "tls://localhost:"+strconv.Itoa(port), "5",
		fmt.Sprintf("    tls: {ca_file: %s, cert_file: %s, key_file: %s}\n", ca, cc, ck),
		"      - {pattern: \"t/#\", direction: both, qos: 1}\n")+
		fmt.Sprintf("  - {name: untrusted, address: \"tls://localhost:%d\", reconnect: {min: 20ms, max: 200ms}, tls: {cert_file: %s, key_file: %s}, topics: [{pattern: \"u/#\", qos: 1}]}\n", port, cc, ck))
	br := m.Bridges()[0]
	waitUntil(t, 10*time.Second, "the TLS bridge up", func() bool { return br.Status().Up })
	localSub := newCollector()
	lc := client(t, l.addr, "local-sub", true)
	subscribe(t, lc, "t/#", 1, localSub)
	publish(t, lc, "t/out", 1, false, "over tls")
	waitUntil(t, 10*time.Second, "the message acknowledged by the TLS remote", func() bool { return br.Status().Sent >= 1 })
	if st := br.Status(); st.ConnectErrors != 0 {
		t.Errorf("connect errors %d, want 0", st.ConnectErrors)
	}

	untrusted := m.Bridges()[1]
	waitUntil(t, 10*time.Second, "failed TLS attempts", func() bool { return untrusted.Status().ConnectErrors >= 2 })
	if untrusted.Status().Up {
		t.Fatal("up with a certificate from an unknown CA")
	}
}

// TestRemoteRestart: the remote restarts in the middle of a QoS 1
// stream; every message the local broker acknowledged reaches the
// remote's subscriber, the first copies in order; duplicates (QoS 1
// allows them) are counted and reported.
func TestRemoteRestart(t *testing.T) {
	for _, proto := range protocols {
		t.Run("v"+proto, func(t *testing.T) {
			const n = 3000
			mq := newMosquitto(t, "")
			l := newLocal(t, broker.Options{})
			m := startBridges(t, l, bridgeYAML("edge", "tcp://"+mq.addr(), proto, "    max_inflight: 32\n",
				"      - {pattern: \"stream/#\", direction: out, qos: 1, remote_prefix: edge/}\n"))
			br := m.Bridges()[0]
			waitUntil(t, 10*time.Second, "the bridge up", func() bool { return br.Status().Up })
			// The remote's subscriber has a persistent session: what
			// Mosquitto acknowledged before its restart is kept for it.
			recv := newCollector()
			rs := client(t, mq.addr(), "stream-sub", false, recv)
			subscribe(t, rs, "edge/stream/#", 1, recv)

			pub := client(t, l.addr, "stream-pub", true)
			restarted := make(chan struct{})
			go func() {
				defer close(restarted)
				recv.waitFor(t, 30*time.Second, "a third of the stream", func(ms []mqtt.Message) bool { return len(ms) >= n/3 })
				mq.stop()
				mq.start()
			}()
			for i := 1; i <= n; i++ {
				// Each PUBACK from mcutie: the message is the broker's
				// (queued for the bridge's session) from then on.
				publish(t, pub, "stream/x", 1, false, strconv.Itoa(i))
			}
			<-restarted
			msgs := recv.waitFor(t, 60*time.Second, "every message on the remote", func(ms []mqtt.Message) bool {
				seen := map[string]bool{}
				for _, m := range ms {
					seen[string(m.Payload())] = true
				}
				return len(seen) >= n
			})
			last, dups := 0, 0
			seen := map[int]bool{}
			for _, msg := range msgs {
				v, err := strconv.Atoi(string(msg.Payload()))
				if err != nil {
					t.Fatalf("payload %q", msg.Payload())
				}
				if seen[v] {
					dups++
					continue
				}
				seen[v] = true
				if v != last+1 {
					t.Fatalf("message %d came after %d: out of order or lost", v, last)
				}
				last = v
			}
			st := br.Status()
			if st.Reconnects < 1 {
				t.Errorf("reconnects %d, want >= 1", st.Reconnects)
			}
			t.Logf("v%s: sent %d, received %d distinct in order, %d duplicates (QoS 1 at least once), bridge reconnects %d, connect errors %d",
				proto, n, len(seen), dups, st.Reconnects, st.ConnectErrors)
		})
	}
}

// TestLoopPrevention: a both mapping sends nothing back where it came
// from, either way.
func TestLoopPrevention(t *testing.T) {
	for _, proto := range protocols {
		t.Run("v"+proto, func(t *testing.T) {
			mq := newMosquitto(t, "")
			l := newLocal(t, broker.Options{})
			m := startBridges(t, l, bridgeYAML("loop", "tcp://"+mq.addr(), proto, "",
				"      - {pattern: \"loop/#\", direction: both, qos: 1}\n"))
			br := m.Bridges()[0]
			waitUntil(t, 10*time.Second, "the bridge up", func() bool { return br.Status().Up })
			localSub, remoteSub := newCollector(), newCollector()
			lc := client(t, l.addr, "local", true)
			subscribe(t, lc, "loop/#", 1, localSub)
			rc := client(t, mq.addr(), "remote", true)
			subscribe(t, rc, "loop/#", 1, remoteSub)

			// Local -> remote. Then a marker from the remote side: the
			// bridge receives the remote's messages in order, so an echo
			// of loop/a would reach the local subscriber before it.
			publish(t, lc, "loop/a", 1, false, "from local")
			remoteSub.waitFor(t, 10*time.Second, "loop/a on the remote", func(ms []mqtt.Message) bool { return len(ms) >= 1 })
			publish(t, rc, "loop/z", 1, false, "marker from remote")
			got := localSub.waitFor(t, 10*time.Second, "the remote's marker locally", func(ms []mqtt.Message) bool {
				return len(ms) > 0 && ms[len(ms)-1].Topic() == "loop/z"
			})
			if n := count(got, "loop/a"); n != 1 {
				t.Errorf("the local subscriber got loop/a %d times, want 1 (no echo from the remote)", n)
			}
			// Remote -> local (loop/z above). Then a marker from the
			// local side: a bounce of loop/z would reach the remote
			// before it.
			publish(t, lc, "loop/y", 1, false, "marker from local")
			rgot := remoteSub.waitFor(t, 10*time.Second, "the local marker on the remote", func(ms []mqtt.Message) bool {
				return len(ms) > 0 && ms[len(ms)-1].Topic() == "loop/y"
			})
			if n := count(rgot, "loop/z"); n != 1 {
				t.Errorf("the remote subscriber got loop/z %d times, want 1 (not sent back out)", n)
			}
			if n := count(rgot, "loop/a"); n != 1 {
				t.Errorf("the remote subscriber got loop/a %d times, want 1", n)
			}
			st := br.Status()
			if proto == "3.1.1" && st.Echoes < 1 {
				t.Errorf("3.1.1: echoes dropped %d, want >= 1 (the remote sends the bridge's own messages back)", st.Echoes)
			}
			t.Logf("v%s: sent %d received %d echoes dropped %d", proto, st.Sent, st.Received, st.Echoes)
		})
	}
}

func count(ms []mqtt.Message, topic string) int {
	n := 0
	for _, m := range ms {
		if m.Topic() == topic {
			n++
		}
	}
	return n
}

// preparedRemote starts Mosquitto, makes a persistent subscriber
// session on it (edge/#, QoS 1) and stops it again: when it comes back,
// what the bridge sends is kept for that subscriber.
func preparedRemote(t *testing.T) *mosquitto {
	mq := newMosquitto(t, "")
	c := client(t, mq.addr(), "late-sub", false)
	subscribe(t, c, "edge/#", 1, newCollector())
	c.Disconnect(0)
	mq.stop()
	return mq
}

// TestRemoteDownAtStart: a bridge whose remote is down at start keeps
// trying, and delivers what was published meanwhile once it is up.
func TestRemoteDownAtStart(t *testing.T) {
	mq := preparedRemote(t)
	l := newLocal(t, broker.Options{})
	m := startBridges(t, l, bridgeYAML("late", "tcp://"+mq.addr(), "5", "",
		"      - {pattern: \"#\", direction: out, qos: 1, local_prefix: data/, remote_prefix: edge/}\n"))
	br := m.Bridges()[0]
	waitUntil(t, 10*time.Second, "failed attempts", func() bool { return br.Status().ConnectErrors >= 2 })
	if br.Status().Up {
		t.Fatal("up with the remote down")
	}
	pub := client(t, l.addr, "pub", true)
	for i := 1; i <= 20; i++ {
		publish(t, pub, "data/x", 1, false, strconv.Itoa(i))
	}
	waitUntil(t, 10*time.Second, "20 queued", func() bool { return br.Status().Queued == 20 })
	mq.start()
	recv := newCollector()
	client(t, mq.addr(), "late-sub", false, recv).Subscribe("edge/#", 1, recv.handle).Wait()
	msgs := recv.waitFor(t, 20*time.Second, "the 20 messages", func(ms []mqtt.Message) bool { return distinct(ms) >= 20 })
	checkOrder(t, msgs, 20)
	if !br.Status().Up {
		t.Error("not up after the remote came")
	}
}

func distinct(ms []mqtt.Message) int {
	seen := map[string]bool{}
	for _, m := range ms {
		seen[string(m.Payload())] = true
	}
	return len(seen)
}

// checkOrder checks that the first copies of 1..n came in order.
func checkOrder(t *testing.T, ms []mqtt.Message, n int) {
	t.Helper()
	last := 0
	seen := map[int]bool{}
	for _, m := range ms {
		v, _ := strconv.Atoi(string(m.Payload()))
		if seen[v] {
			continue
		}
		seen[v] = true
		if v != last+1 {
			t.Fatalf("message %d after %d", v, last)
		}
		last = v
	}
	if last != n {
		t.Fatalf("last message %d, want %d", last, n)
	}
}

// TestBoundedQueue: while the remote is down the bridge's session holds
// --max-queued-messages; past it messages are dropped and counted, and
// the publisher is told (v5 0x97 here: ErrQuotaExceeded).
func TestBoundedQueue(t *testing.T) {
	mq := preparedRemote(t)
	l := newLocal(t, broker.Options{MaxQueued: 10})
	m := startBridges(t, l, bridgeYAML("bounded", "tcp://"+mq.addr(), "5", "    max_inflight: 4\n",
		"      - {pattern: \"#\", direction: out, qos: 1, local_prefix: data/, remote_prefix: edge/}\n"))
	br := m.Bridges()[0]
	const n, bound = 30, 10
	refused := 0
	for i := 1; i <= n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.b.PublishMessage(ctx, broker.Publication{Topic: "data/x", Payload: []byte(strconv.Itoa(i)), QoS: 1})
		cancel()
		switch {
		case errors.Is(err, broker.ErrQuotaExceeded):
			refused++
		case err != nil:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if refused != n-bound {
		t.Errorf("publishes told 0x97 (queue full): %d, want %d", refused, n-bound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, _ := l.b.StatsNow(ctx)
	if d := st.Dropped["queue_full"]; d != uint64(n-bound) {
		t.Errorf("mcutie_messages_dropped_total{reason=\"queue_full\"} %d, want %d", d, n-bound)
	}
	waitUntil(t, 5*time.Second, "the queued gauge at the bound", func() bool { return br.Status().Queued == bound })
	mq.start()
	recv := newCollector()
	client(t, mq.addr(), "late-sub", false, recv).Subscribe("edge/#", 1, recv.handle).Wait()
	msgs := recv.waitFor(t, 20*time.Second, "the queued messages", func(ms []mqtt.Message) bool { return distinct(ms) >= bound })
	checkOrder(t, msgs, bound)
}

// TestBrokerRestart: the bridge's session and what it queued survive a
// restart of mcutie itself (Badger store) while the remote is down.
func TestBrokerRestart(t *testing.T) {
	mq := preparedRemote(t)
	dir := t.TempDir()
	yaml := bridgeYAML("durable", "tcp://"+mq.addr(), "5", "",
		"      - {pattern: \"#\", direction: out, qos: 1, local_prefix: data/, remote_prefix: edge/}\n")
	open := func() (*local, store.Store) {
		st, err := store.OpenBadger(store.BadgerOptions{Dir: filepath.Join(dir, "data")})
		if err != nil {
			t.Fatal(err)
		}
		l := newLocal(t, broker.Options{Store: st})
		if _, err := l.b.Restore(); err != nil {
			t.Fatal(err)
		}
		return l, st
	}
	l, st := open()
	m := startBridges(t, l, yaml)
	for i := 1; i <= 25; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := l.b.PublishMessage(ctx, broker.Publication{Topic: "data/x", Payload: []byte(strconv.Itoa(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	m.Stop()
	l.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	l, st = open()
	defer st.Close()
	m = startBridges(t, l, yaml)
	defer l.stop()
	defer m.Stop()
	mq.start()
	recv := newCollector()
	client(t, mq.addr(), "late-sub", false, recv).Subscribe("edge/#", 1, recv.handle).Wait()
	msgs := recv.waitFor(t, 20*time.Second, "the 25 messages queued before the restart", func(ms []mqtt.Message) bool { return distinct(ms) >= 25 })
	checkOrder(t, msgs, 25)
}

// TestRemovedBridgeSession: a bridge taken out of the file has its
// session (and what it queued) removed at the next start; a bridge
// still configured keeps its own.
func TestRemovedBridgeSession(t *testing.T) {
	l := newLocal(t, broker.Options{})
	down := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)) // nothing listens there
	both := bridgeYAML("old", down, "5", "", "      - {pattern: \"a/#\", qos: 1}\n") +
		"  - {name: kept, address: \"" + down + "\", topics: [{pattern: \"a/#\", qos: 1}]}\n"
	m := startBridges(t, l, both)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.b.PublishMessage(ctx, broker.Publication{Topic: "a/x", Payload: []byte("held"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"old", "kept"} {
		si, found, err := l.b.SessionInfo(ctx, broker.BridgeClientIDPrefix+name)
		if err != nil || !found || si.Queued+si.Inflight != 1 {
			t.Fatalf("%s: session %+v found %v err %v, want 1 message held", name, si, found, err)
		}
	}
	m.Stop()
	startBridges(t, l, "bridges:\n  - {name: kept, address: \""+down+"\", topics: [{pattern: \"a/#\", qos: 1}]}\n")
	if _, found, err := l.b.SessionInfo(ctx, broker.BridgeClientIDPrefix+"old"); err != nil || found {
		t.Fatalf("the removed bridge's session is still there (err %v)", err)
	}
	if si, found, _ := l.b.SessionInfo(ctx, broker.BridgeClientIDPrefix+"kept"); !found || si.Queued+si.Inflight != 1 {
		t.Fatalf("the kept bridge's session: %+v found %v, want its message", si, found)
	}
}

// TestRemoteRefuses: Mosquitto's ACL refuses one topic (v5 PUBACK 0x87):
// that message is dropped and counted, and the stream goes on (a refusal
// is not sent again for ever).
func TestRemoteRefuses(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("topic readwrite ok/#\ntopic read denied/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mq := newMosquitto(t, "listener %d 127.0.0.1\nacl_file "+acl+"\n")
	l := newLocal(t, broker.Options{})
	m := startBridges(t, l, bridgeYAML("acl", "tcp://"+mq.addr(), "5", "", "      - {pattern: \"#\", direction: out, qos: 1}\n"))
	br := m.Bridges()[0]
	waitUntil(t, 10*time.Second, "the bridge up", func() bool { return br.Status().Up })
	recv := newCollector()
	subscribe(t, client(t, mq.addr(), "acl-sub", true), "#", 1, recv)
	pub := client(t, l.addr, "acl-pub", true)
	publish(t, pub, "denied/x", 1, false, "refused")
	publish(t, pub, "ok/x", 1, false, "after")
	got := recv.waitFor(t, 10*time.Second, "the allowed message", func(ms []mqtt.Message) bool { return len(ms) >= 1 })
	if got[0].Topic() != "ok/x" {
		t.Fatalf("remote got %s first, want ok/x (denied/x refused)", got[0].Topic())
	}
	waitUntil(t, 10*time.Second, "the refusal counted", func() bool { return br.Status().DroppedRemote == 1 })
	if st := br.Status(); st.Reconnects != 0 {
		t.Errorf("reconnects %d: a refusal must not cut the connection", st.Reconnects)
	}
}
