package broker

import (
	"fmt"
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// BenchmarkPublishLocal: one PUBLISH decoded, routed and encoded to one
// local subscriber (QoS 0, 64 B).
func BenchmarkPublishLocal(b *testing.B) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) {
			br := newTestBroker(b, 1)
			sub, _ := connectClient(b, br, "sub", v, false)
			subscribe(b, sub, v, "sensors/+/temp", 0)
			pub, _ := connectClient(b, br, "pub", v, false)
			p := codec.Publish{Topic: []byte("sensors/42/temp"), Payload: make([]byte, 64)}
			raw := p.Append(nil, v)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raw)
			}
		})
	}
}

// BenchmarkFanOut1000: one PUBLISH to 1000 local subscribers; ns/op is per
// publish (divide by 1000 for per delivery).
func BenchmarkFanOut1000(b *testing.B) {
	br := newTestBroker(b, 1)
	for i := 0; i < 1000; i++ {
		c, _ := connectClient(b, br, fmt.Sprintf("sub%d", i), codec.V311, false)
		subscribe(b, c, codec.V311, "fan/out", 0)
	}
	pub, _ := connectClient(b, br, "pub", codec.V311, false)
	p := codec.Publish{Topic: []byte("fan/out"), Payload: make([]byte, 64)}
	raw := p.Append(nil, codec.V311)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pub.Feed(raw)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/delivery")
}

// BenchmarkManyToOne: 1000 publishers on distinct topics, one subscriber
// on "in/#"; each op is one PUBLISH from the next publisher.
func BenchmarkManyToOne(b *testing.B) {
	br := newTestBroker(b, 1)
	sub, _ := connectClient(b, br, "sub", codec.V311, false)
	subscribe(b, sub, codec.V311, "in/#", 0)
	pubs := make([]*Client, 1000)
	raws := make([][]byte, 1000)
	for i := range pubs {
		pubs[i], _ = connectClient(b, br, fmt.Sprintf("pub%d", i), codec.V311, false)
		p := codec.Publish{Topic: []byte(fmt.Sprintf("in/%d", i)), Payload: make([]byte, 64)}
		raws[i] = p.Append(nil, codec.V311)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % 1000
		pubs[j].Feed(raws[j])
	}
}

// BenchmarkPublishLocalRateLimited is BenchmarkPublishLocal (v5) with
// --publish-rate and --publish-byte-rate set high enough never to close:
// the cost of charging both token buckets per PUBLISH.
func BenchmarkPublishLocalRateLimited(b *testing.B) {
	br := limitBroker(b, Options{PublishRate: 1e12, PublishByteRate: 1e15})
	sub, _ := connectClient(b, br, "sub", codec.V5, false)
	subscribe(b, sub, codec.V5, "sensors/+/temp", 0)
	pub, _ := connectClient(b, br, "pub", codec.V5, false)
	p := codec.Publish{Topic: []byte("sensors/42/temp"), Payload: make([]byte, 64)}
	raw := p.Append(nil, codec.V5)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pub.Feed(raw)
	}
}

// BenchmarkFanOutUserProperties: one v5 PUBLISH with 128 tiny user
// properties (forwarded as encoded once) to 100 local subscribers,
// against the same packet size as payload; ns/op is per publish.
func BenchmarkFanOutUserProperties(b *testing.B) {
	var pp codec.Properties
	for i := 0; i < 128; i++ {
		pp.User = append(pp.User, codec.UserProperty{Key: []byte("k"), Value: []byte("v")})
	}
	for _, bc := range []struct {
		name  string
		props codec.Properties
		pay   int
	}{{"user-properties", pp, 16}, {"payload", codec.Properties{}, 16 + pp.Len()}} {
		b.Run(bc.name, func(b *testing.B) {
			br := newTestBroker(b, 1)
			for i := 0; i < 100; i++ {
				c, _ := connectClient(b, br, fmt.Sprintf("sub%d", i), codec.V5, false)
				subscribe(b, c, codec.V5, "fan/out", 0)
			}
			pub, _ := connectClient(b, br, "pub", codec.V5, false)
			p := codec.Publish{Topic: []byte("fan/out"), Payload: make([]byte, bc.pay), Props: bc.props}
			raw := p.Append(nil, codec.V5)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raw)
			}
		})
	}
}

// BenchmarkOutboundTopicAliases: one v5 PUBLISH (QoS 0, 16 B payload, a
// 40-byte topic) to one local subscriber that allows topic aliases, with
// the broker's outbound aliases on and off; reports the bytes written per
// message besides ns/op.
func BenchmarkOutboundTopicAliases(b *testing.B) {
	for _, n := range []uint16{0, 16} {
		b.Run(fmt.Sprintf("aliases=%d", n), func(b *testing.B) {
			br := limitBroker(b, Options{OutboundTopicAliases: n})
			fc := &fakeConn{}
			sub := br.loops[0].NewClient(fc)
			cp := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: true, ClientID: []byte("sub"), KeepAlive: 60}
			cp.Props.Set(codec.PropTopicAliasMaximum)
			cp.Props.TopicAliasMaximum = 16
			sub.Feed(cp.Append(nil))
			subscribe(b, sub, codec.V5, "devices/+/telemetry/#", 0)
			pub, _ := connectClient(b, br, "pub", codec.V5, false)
			p := codec.Publish{Topic: []byte("devices/sensor-000042/telemetry/temp-01"), Payload: make([]byte, 16)}
			raw := p.Append(nil, codec.V5)
			pub.Feed(raw) // the alias is assigned here
			fc.out, fc.keep = nil, false
			b.ReportAllocs()
			b.ResetTimer()
			var written int
			for i := 0; i < b.N; i++ {
				before := fc.bytes
				pub.Feed(raw)
				written += fc.bytes - before
			}
			b.ReportMetric(float64(written)/float64(b.N), "bytes/msg")
		})
	}
}
