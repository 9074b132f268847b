package reactor

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
)

func TestParseListener(t *testing.T) {
	good := map[string]listener{
		"tcp://0.0.0.0:1883":                   {scheme: "tcp", addr: "0.0.0.0:1883"},
		"tcp://0.0.0.0:1883?proxy=true":        {scheme: "tcp", addr: "0.0.0.0:1883", proxy: proxyAny},
		"tcp://0.0.0.0:1883?proxy=v1":          {scheme: "tcp", addr: "0.0.0.0:1883", proxy: proxyV1},
		"tls://0.0.0.0:8883?proxy=V2":          {scheme: "tls", addr: "0.0.0.0:8883", proxy: proxyV2},
		"tls://[::1]:8883":                     {scheme: "tls", addr: "[::1]:8883"},
		"ws://127.0.0.1:8080":                  {scheme: "ws", addr: "127.0.0.1:8080", path: "/mqtt"},
		"wss://127.0.0.1:8443/x/y?proxy=1":     {scheme: "wss", addr: "127.0.0.1:8443", path: "/x/y", proxy: proxyAny},
		"tcp6://[::]:1883":                     {scheme: "tcp6", addr: "[::]:1883"},
		"ws://localhost:9001/mqtt?proxy=false": {scheme: "ws", addr: "localhost:9001", path: "/mqtt"},
	}
	for in, want := range good {
		got, err := parseListener(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want.raw = in
		if got != want {
			t.Fatalf("%s: got %+v, want %+v", in, got, want)
		}
	}
	for _, in := range []string{"udp://1.2.3.4:5", "tcp://1.2.3.4", "tls://h:1/path", "ws://h:1?proxy=maybe", "tcp://h:1?proxy=v3", "ws://h:1?tls=1", "1.2.3.4:1883"} {
		if _, err := parseListener(in); err == nil {
			t.Fatalf("%s: accepted", in)
		}
	}
}

func TestListenerMatches(t *testing.T) {
	any4, _ := parseListener("tcp://0.0.0.0:1883")
	lo, _ := parseListener("tcp://127.0.0.1:1883")
	at := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
	other := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1883}
	if !any4.matches(at) || !any4.matches(other) || !lo.matches(at) || lo.matches(other) {
		t.Fatal("address matching is wrong")
	}
	if lo.matches(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1884}) {
		t.Fatal("another port matched")
	}
}

func proxyV(t testing.TB, v byte, src string) []byte {
	sa, _ := net.ResolveTCPAddr("tcp", src)
	dst := "10.0.0.1:1883"
	if strings.HasPrefix(src, "[") {
		dst = "[2001:db8::2]:1883" // a header names one address family
	}
	da, _ := net.ResolveTCPAddr("tcp", dst)
	b, err := proxyproto.HeaderProxyFromAddrs(v, sa, da).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every prefix of a header is incomplete; the header alone and with MQTT
// bytes after it parse to the same length and address.
func TestProxyHeaderIncrementally(t *testing.T) {
	for _, v := range []byte{1, 2} {
		for _, src := range []string{"203.0.113.9:4242", "[2001:db8::1]:65535"} {
			h := proxyV(t, v, src)
			for i := 0; i < len(h); i++ {
				if _, _, err := parseProxyHeader(h[:i], proxyAny); err != errProxyIncomplete {
					t.Fatalf("v%d %s: prefix of %d bytes: %v", v, src, i, err)
				}
			}
			full := append(append([]byte(nil), h...), 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T')
			n, addr, err := parseProxyHeader(full, proxyAny)
			if err != nil || n != len(h) || addr.String() != src {
				t.Fatalf("v%d: n=%d (want %d) addr=%v err=%v", v, n, len(h), addr, err)
			}
		}
	}
	// LOCAL (a balancer's health check) keeps the socket's address.
	local := append(append([]byte(nil), proxyproto.SIGV2...), 0x20, 0x00, 0, 0)
	if n, addr, err := parseProxyHeader(local, proxyAny); err != nil || n != 16 || addr != nil {
		t.Fatalf("LOCAL: %d %v %v", n, addr, err)
	}
	for name, b := range map[string][]byte{
		"MQTT":          {0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T'},
		"v1 no CRLF":    []byte("PROXY TCP4 " + strings.Repeat("9", 100)),
		"v2 huge":       append(append([]byte(nil), proxyproto.SIGV2...), 0x21, 0x11, 0xff, 0xff),
		"v1 bad family": []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
	} {
		if _, _, err := parseProxyHeader(b, proxyAny); err == nil || err == errProxyIncomplete {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// A listener pinned to one version refuses the other as soon as its
// signature has arrived (errProxyVersion, counted apart), and takes its own.
func TestProxyHeaderVersionPinned(t *testing.T) {
	f := func(m proxyMode, v byte, wantOK bool) {
		t.Helper()
		h := proxyV(t, v, "203.0.113.9:4242")
		n, addr, err := parseProxyHeader(h, m)
		if wantOK {
			if err != nil || n != len(h) || addr.String() != "203.0.113.9:4242" {
				t.Fatalf("proxy=%s, v%d: n=%d addr=%v err=%v", m, v, n, addr, err)
			}
			return
		}
		if !errors.Is(err, errProxyVersion) {
			t.Fatalf("proxy=%s, v%d: %v, want errProxyVersion", m, v, err)
		}
		// Refused from the signature alone, before the rest arrives.
		sig := len(proxyproto.SIGV1)
		if v == 2 {
			sig = len(proxyproto.SIGV2)
		}
		if _, _, err := parseProxyHeader(h[:sig], m); !errors.Is(err, errProxyVersion) {
			t.Fatalf("proxy=%s, v%d signature only: %v", m, v, err)
		}
	}
	f(proxyAny, 1, true)
	f(proxyAny, 2, true)
	f(proxyV1, 1, true)
	f(proxyV1, 2, false)
	f(proxyV2, 2, true)
	f(proxyV2, 1, false)
}

// FuzzProxyHeader: no panic, the length never exceeds the input or the
// bound, and a parsed header parses the same with more bytes after it.
func FuzzProxyHeader(f *testing.F) {
	f.Add(proxyV(f, 1, "1.2.3.4:5"))
	f.Add(proxyV(f, 2, "1.2.3.4:5"))
	f.Add(proxyV(f, 2, "[::1]:5"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(append(append([]byte(nil), proxyproto.SIGV2...), 0x20, 0x00, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, addr, err := parseProxyHeader(b, proxyAny)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) || n > proxyMaxLen {
			t.Fatalf("length %d for %d bytes", n, len(b))
		}
		more := append(append([]byte(nil), b...), 0x10, 0x02, 0, 0)
		n2, addr2, err2 := parseProxyHeader(more, proxyAny)
		if err2 != nil || n2 != n || (addr == nil) != (addr2 == nil) || (addr != nil && addr.String() != addr2.String()) {
			t.Fatalf("with trailing bytes: %d %v %v, alone: %d %v", n2, addr2, err2, n, addr)
		}
		if !bytes.Equal(b[:n], more[:n]) {
			t.Fatal("unreachable")
		}
	})
}
