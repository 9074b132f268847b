package codec

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets. Each FuzzDecode<Packet> takes a protocol version, the first
// byte of the fixed header (its flags; for Ack also the type) and a body,
// and checks that decoding never panics, fails only with a *ReasonError,
// never writes to its input, and that whatever decodes re-encodes to bytes
// that decode to an equal packet and re-encode identically. FuzzFrame feeds
// every prefix of the input (the split-buffer case of a stream reader) and
// decodes whatever frames with every version.

// seedDecode adds the corpus packets of the given types as seeds.
func seedDecode(f *testing.F, types ...Type) {
	for _, c := range corpus {
		h, err := Frame(c.Raw, 0)
		if err != nil || h.Len() != len(c.Raw) {
			continue
		}
		for _, t := range types {
			if h.Type == t {
				f.Add(byte(c.V), c.Raw[0], h.Body(c.Raw))
			}
		}
	}
}

// fuzzDecode is the body of every FuzzDecode<Packet> target.
func fuzzDecode(t *testing.T, typ Type, ver, first byte, body []byte) {
	v := Version(ver)
	h := FixedHeader{Type: typ, Flags: first & 0x0f, Remaining: len(body), HeaderLen: 1 + varintLen(len(body))}
	body = body[:len(body):len(body)]
	orig := bytes.Clone(body)
	pkt, err := decodeBody(h, body, v)
	if !bytes.Equal(body, orig) {
		t.Fatalf("decode wrote to its input")
	}
	if err != nil {
		if AsReasonError(err) == nil {
			t.Fatalf("error %v is not a *ReasonError", err)
		}
		return
	}
	enc := encodePacket(pkt, v)
	got, err := decodePacket(enc, v)
	if err != nil {
		t.Fatalf("re-encoded % x does not decode: %v\npacket %+v", enc, err, pkt)
	}
	if enc2 := encodePacket(got, v); !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding unstable\n% x\n% x", enc, enc2)
	}
	if !samePacket(pkt, got) {
		t.Fatalf("round trip differs\nwant %+v\ngot  %+v", pkt, got)
	}
}

func FuzzFrame(f *testing.F) {
	for _, c := range corpus {
		f.Add(c.Raw, 0)
		f.Add(append(bytes.Clone(c.Raw), c.Raw...), len(c.Raw))
	}
	f.Add(raw(0x30, 0xff, 0xff, 0xff, 0x7f), 1024)
	f.Add(raw(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		h, err := Frame(data, max)
		switch {
		case err == nil:
			if h.Len() > len(data) || h.HeaderLen < 2 || h.HeaderLen > 5 || h.Type == 0 {
				t.Fatalf("bad header %+v for %d bytes", h, len(data))
			}
			if max > 0 && h.Len() > max {
				t.Fatalf("header %+v over max %d", h, max)
			}
		case err == ErrIncomplete:
			if h != (FixedHeader{}) && h.Len() <= len(data) {
				t.Fatalf("incomplete, yet header %+v fits %d bytes", h, len(data))
			}
		default:
			if AsReasonError(err) == nil {
				t.Fatalf("error %v is not a *ReasonError", err)
			}
		}
		// Every prefix: incomplete with no or the same header, or the same
		// verdict once the header is complete.
		limit := len(data)
		if err == nil {
			limit = h.Len() // data may hold more after the packet
		}
		for n := range limit {
			hp, errp := Frame(data[:n], max)
			if errp == nil {
				t.Fatalf("prefix %d of a packet framed", n)
			}
			if errp == ErrIncomplete {
				if hp != (FixedHeader{}) && hp != h {
					t.Fatalf("prefix %d: header %+v; full %+v", n, hp, h)
				}
				continue
			}
			if err == nil || err == ErrIncomplete || errp.Error() != err.Error() || hp != h {
				t.Fatalf("prefix %d: %+v %v; full %+v %v", n, hp, errp, h, err)
			}
		}
		if err != nil {
			return
		}
		for _, v := range allVersions {
			if _, err := decodeBody(h, h.Body(data), v); err != nil && AsReasonError(err) == nil {
				t.Fatalf("%s: error %v is not a *ReasonError", versionName(v), err)
			}
		}
	})
}

func FuzzDecodeConnect(f *testing.F) {
	seedDecode(f, CONNECT)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, CONNECT, ver, first, body) })
}

func FuzzDecodeConnack(f *testing.F) {
	seedDecode(f, CONNACK)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, CONNACK, ver, first, body) })
}

func FuzzDecodePublish(f *testing.F) {
	seedDecode(f, PUBLISH)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, PUBLISH, ver, first, body) })
}

func FuzzDecodeAck(f *testing.F) {
	seedDecode(f, PUBACK, PUBREC, PUBREL, PUBCOMP)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) {
		fuzzDecode(t, PUBACK+Type(first>>4)%4, ver, first, body)
	})
}

func FuzzDecodeSubscribe(f *testing.F) {
	seedDecode(f, SUBSCRIBE)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, SUBSCRIBE, ver, first, body) })
}

func FuzzDecodeSuback(f *testing.F) {
	seedDecode(f, SUBACK)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, SUBACK, ver, first, body) })
}

func FuzzDecodeUnsubscribe(f *testing.F) {
	seedDecode(f, UNSUBSCRIBE)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, UNSUBSCRIBE, ver, first, body) })
}

func FuzzDecodeUnsuback(f *testing.F) {
	seedDecode(f, UNSUBACK)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, UNSUBACK, ver, first, body) })
}

func FuzzDecodeDisconnect(f *testing.F) {
	seedDecode(f, DISCONNECT)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, DISCONNECT, ver, first, body) })
}

func FuzzDecodeAuth(f *testing.F) {
	seedDecode(f, AUTH)
	f.Fuzz(func(t *testing.T, ver, first byte, body []byte) { fuzzDecode(t, AUTH, ver, first, body) })
}

// TestWriteFuzzSeeds regenerates the committed seed corpus under
// testdata/fuzz from the wire corpus: MCUTIE_WRITE_FUZZ_SEEDS=1 go test
// -run TestWriteFuzzSeeds ./codec. Files found by fuzzing are kept.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MCUTIE_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MCUTIE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	targets := map[Type]string{CONNECT: "FuzzDecodeConnect", CONNACK: "FuzzDecodeConnack", PUBLISH: "FuzzDecodePublish",
		PUBACK: "FuzzDecodeAck", PUBREC: "FuzzDecodeAck", PUBREL: "FuzzDecodeAck", PUBCOMP: "FuzzDecodeAck",
		SUBSCRIBE: "FuzzDecodeSubscribe", SUBACK: "FuzzDecodeSuback", UNSUBSCRIBE: "FuzzDecodeUnsubscribe",
		UNSUBACK: "FuzzDecodeUnsuback", DISCONNECT: "FuzzDecodeDisconnect", AUTH: "FuzzDecodeAuth"}
	write := func(target string, n int, content string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, fmt.Sprintf("seed-%03d", n))
		if err := os.WriteFile(name, []byte("go test fuzz v1\n"+content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A few seeds per target: the first valid packets of each type and a
	// few failures; f.Add seeds the whole corpus anyway.
	const valid, failing = 4, 3
	count := map[string]int{}
	kept := map[string]int{} // per target and kind
	frames := map[Type]bool{}
	for _, c := range corpus {
		h, err := Frame(c.Raw, 0)
		if err != nil {
			continue
		}
		if c.Packet != nil && !frames[h.Type] {
			frames[h.Type] = true
			count["FuzzFrame"]++
			write("FuzzFrame", count["FuzzFrame"], fmt.Sprintf("[]byte(%q)\nint(0)\n", c.Raw))
		}
		target, ok := targets[h.Type]
		key, limit := target+"/valid", valid
		if c.Packet == nil {
			key, limit = target+"/failing", failing
		}
		if !ok || kept[key] >= limit {
			continue
		}
		kept[key]++
		count[target]++
		write(target, count[target], fmt.Sprintf("byte(%q)\nbyte(%q)\n[]byte(%q)\n", byte(c.V), c.Raw[0], h.Body(c.Raw)))
	}
	for _, extra := range []string{
		"[]byte(\"0\\xff\\xff\\xff\\x7f\")\nint(1024)\n",         // too large, header only
		"[]byte(\"0\\x80\\x80\\x80\\x80\\x01\")\nint(0)\n",       // 5th continuation byte
		"[]byte(\"0\\x03\\x00\\x01t\\xc0\\x00\\xd0\")\nint(0)\n", // back to back, partial third
	} {
		count["FuzzFrame"]++
		write("FuzzFrame", count["FuzzFrame"], extra)
	}
}
