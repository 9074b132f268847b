package codec

import "testing"

// Sink keeps benchmark results alive against dead-code elimination.
var Sink int

func benchmarkPublishDecode(b *testing.B, pub *Publish, v Version) {
	in := pub.Append(nil, v)
	var p Publish
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		h, err := Frame(in, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Decode(h, h.Body(in), v); err != nil {
			b.Fatal(err)
		}
	}
	Sink += len(p.Payload)
}

func BenchmarkPublishDecodeV311(b *testing.B) { benchmarkPublishDecode(b, allocPublishV311, V311) }

func BenchmarkPublishDecodeV5Props(b *testing.B) { benchmarkPublishDecode(b, allocPublishV5, V5) }

func benchmarkPublishHeaderEncode(b *testing.B, pub *Publish, v Version) {
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(pub.Len(v) - len(pub.Payload)))
	for b.Loop() {
		dst = AppendPublishHeader(dst[:0], pub, v)
	}
	Sink += len(dst)
}

func BenchmarkPublishHeaderEncodeV311(b *testing.B) {
	benchmarkPublishHeaderEncode(b, allocPublishV311, V311)
}

func BenchmarkPublishHeaderEncodeV5(b *testing.B) {
	benchmarkPublishHeaderEncode(b, allocPublishV5, V5)
}

func BenchmarkPublishEncodeV5(b *testing.B) {
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(allocPublishV5.Len(V5)))
	for b.Loop() {
		dst = allocPublishV5.Append(dst[:0], V5)
	}
	Sink += len(dst)
}

func BenchmarkConnectDecode(b *testing.B) {
	in := v5Connect.Raw
	var c Connect
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		h, err := Frame(in, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Decode(h, h.Body(in)); err != nil {
			b.Fatal(err)
		}
	}
	Sink += len(c.ClientID)
}

func BenchmarkConnectEncode(b *testing.B) {
	c := v5Connect.Packet.(*Connect)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(v5Connect.Raw)))
	for b.Loop() {
		dst = c.Append(dst[:0])
	}
	Sink += len(dst)
}
