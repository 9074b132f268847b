package auth

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// benchConn is a broker.Conn that discards what is written.
type benchConn struct{}

func (benchConn) Writev(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n, nil
}
func (benchConn) OutboundBuffered() int { return 0 }
func (benchConn) Close() error          { return nil }
func (benchConn) RemoteAddr() string    { return "127.0.0.1:1" }
func (benchConn) Wake() error           { return nil }

// benchACL is a realistic file: 100 users with a few rules each and a
// few patterns; the publisher's own rule is near the end. u98 may read
// everything under home/ (the benchmark's subscriber).
func benchACL(tb testing.TB) *ACL {
	tb.Helper()
	var b strings.Builder
	b.WriteString("topic read public/#\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "user u%d\ntopic readwrite home/u%d/#\ntopic read shared/+/status\ntopic deny home/u%d/secret\n", i, i, i)
	}
	b.WriteString("user u98\ntopic read home/#\n")
	b.WriteString("pattern readwrite devices/%c/#\npattern read users/%u/inbox\n")
	a, err := ParseACL(strings.NewReader(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// BenchmarkPublishACL: one QoS 0 PUBLISH decoded, write-checked, routed,
// read-checked and encoded to one local subscriber, without an
// Authorizer and with an ACL file (verdicts cached per session and
// topic after the first message). ns/op is per PUBLISH.
func BenchmarkPublishACL(b *testing.B) {
	for _, mode := range []string{"none", "acl"} {
		b.Run(mode, func(b *testing.B) {
			o := broker.Options{Loops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if mode == "acl" {
				o.Authorizer = NewACLAuthorizer(benchACL(b))
			}
			br := broker.New(o)
			defer br.Shutdown()
			l := br.Loop(0)
			l.Bind(func(fn func()) error { fn(); return nil })
			conn := func(id, user string) *broker.Client {
				c := l.NewClient(benchConn{})
				p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, ClientID: []byte(id), KeepAlive: 60,
					UsernameFlag: true, Username: []byte(user)}
				c.Feed(p.Append(nil))
				return c
			}
			sub := conn("sub", "u98")
			sub.Feed((&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("home/u99/+")}}}).Append(nil, codec.V311))
			pub := conn("pub", "u99")
			raw := (&codec.Publish{Topic: []byte("home/u99/temp"), Payload: make([]byte, 64)}).Append(nil, codec.V311)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raw)
			}
			b.StopTimer()
			l.Tick()
			if st := br.Stats(); st.ACLDenied["read"]+st.ACLDenied["publish"] != 0 || st.PublishOut[0] < uint64(b.N) {
				b.Fatalf("benchmark messages were denied: %v", st.ACLDenied)
			}
		})
	}
}

// BenchmarkACLAllow: one uncached verdict (what a cache miss costs): a
// user's own rule, and a pattern that needs %c expanded.
func BenchmarkACLAllow(b *testing.B) {
	a := benchACL(b)
	id := &broker.Identity{ClientID: "dev-7", Username: "u99", HasUsername: true}
	for _, c := range []struct{ name, topic string }{{"user-rule", "home/u99/temp"}, {"pattern", "devices/dev-7/up"}} {
		b.Run(c.name, func(b *testing.B) {
			topic := []byte(c.topic)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if !a.Allow(id, topic, broker.AccessWrite) {
					b.Fatal("denied")
				}
			}
		})
	}
}

// BenchmarkPasswordCheck: one $7$ check at mosquitto_passwd's 101
// iterations (what every CONNECT with a password costs, on the auth
// worker pool), an unknown user (the dummy entry: the same cost), and a
// legacy $6$ entry.
func BenchmarkPasswordCheck(b *testing.B) {
	p, err := LoadPasswords("testdata/mosquitto.passwd")
	if err != nil {
		b.Fatal(err)
	}
	p.Seal()
	for _, c := range [][3]string{{"pbkdf2-101", "alice", "secret"}, {"unknown-user", "nobody", "secret"}, {"sha512-legacy", "bob", "hunter2"}} {
		b.Run(c[0], func(b *testing.B) {
			pw := []byte(c[2])
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.Check(c[1], pw)
			}
		})
	}
}
