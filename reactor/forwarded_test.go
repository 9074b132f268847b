package reactor

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestForwardedClient(t *testing.T) {
	tp := trustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	f := func(peer string, hdr http.Header, want string, wantRes forwardResult) {
		t.Helper()
		got, res := tp.forwardedClient(hdr, netip.MustParseAddrPort(peer))
		if res != wantRes || hopString(got) != want {
			t.Fatalf("peer %s, %v: got %s (%d), want %s (%d)", peer, hdr, hopString(got), res, want, wantRes)
		}
	}
	h := func(kv ...string) http.Header {
		hdr := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hdr.Add(kv[i], kv[i+1])
		}
		return hdr
	}
	// No header: the peer.
	f("10.0.0.1:5", h(), "10.0.0.1:5", forwardNone)
	// From an untrusted peer the header is ignored, however plausible.
	f("192.0.2.1:5", h("X-Forwarded-For", "203.0.113.9"), "192.0.2.1:5", forwardUntrusted)
	f("192.0.2.1:5", h("Forwarded", "for=203.0.113.9"), "192.0.2.1:5", forwardUntrusted)
	// One trusted proxy.
	f("10.0.0.1:5", h("X-Forwarded-For", "203.0.113.9"), "203.0.113.9", forwardUsed)
	f("[::ffff:10.0.0.1]:5", h("X-Forwarded-For", "203.0.113.9:4711"), "203.0.113.9:4711", forwardUsed)
	// Right-most untrusted hop: what the client wrote left of it is ignored.
	f("10.0.0.1:5", h("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.1.1"), "203.0.113.9", forwardUsed)
	f("10.0.0.1:5", h("X-Forwarded-For", "6.6.6.6, 203.0.113.9", "X-Forwarded-For", "10.1.1.1"), "203.0.113.9", forwardUsed)
	// Every hop trusted: the left-most.
	f("10.0.0.1:5", h("X-Forwarded-For", "10.9.9.9, 10.1.1.1"), "10.9.9.9", forwardUsed)
	// RFC 7239, with its quoting, IPv6 and ports; preferred to X-Forwarded-For.
	f("10.0.0.1:5", h("Forwarded", `for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1`), "[2001:db8:cafe::17]:4711", forwardUsed)
	f("10.0.0.1:5", h("Forwarded", `For="[2001:db8:cafe::17]"`, "X-Forwarded-For", "6.6.6.6"), "2001:db8:cafe::17", forwardUsed)
	f("[2001:db8:ffff::2]:5", h("Forwarded", `proto=http;for=198.51.100.7, for="[2001:db8:ffff::1]:_p"`), "198.51.100.7", forwardUsed)
	// Unreadable from a trusted proxy: the peer, counted malformed.
	for _, bad := range []http.Header{
		h("X-Forwarded-For", "203.0.113.9, not-an-ip"),
		h("X-Forwarded-For", ""),
		h("X-Forwarded-For", "fe80::1%eth0"),
		h("Forwarded", "for=unknown"),
		h("Forwarded", "for=_hidden"),
		h("Forwarded", "proto=https"),
		h("Forwarded", "for=1.2.3.4;for=5.6.7.8"),
		h("Forwarded", `for="[2001:db8::1"`),
		h("Forwarded", "garbage"),
	} {
		f("10.0.0.1:5", bad, "10.0.0.1:5", forwardMalformed)
	}
	// No trusted proxies configured: always ignored.
	got, res := trustedProxies(nil).forwardedClient(h("X-Forwarded-For", "203.0.113.9"), netip.MustParseAddrPort("10.0.0.1:5"))
	if res != forwardUntrusted || got.String() != "10.0.0.1:5" {
		t.Fatalf("no trusted proxies: %s %d", got, res)
	}
}

// FuzzForwarded: no panic, and a used address is never a trusted proxy's
// unless every hop is one.
func FuzzForwarded(f *testing.F) {
	f.Add("for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\"", "1.2.3.4, 10.0.0.2")
	f.Add("", "203.0.113.9:1")
	f.Fuzz(func(t *testing.T, fwd, xff string) {
		tp := trustedProxies{netip.MustParsePrefix("10.0.0.0/8")}
		hdr := http.Header{}
		if fwd != "" {
			hdr.Set("Forwarded", fwd)
		}
		if xff != "" {
			hdr.Set("X-Forwarded-For", xff)
		}
		got, res := tp.forwardedClient(hdr, netip.MustParseAddrPort("10.0.0.1:5"))
		if res != forwardUsed && got.String() != "10.0.0.1:5" {
			t.Fatalf("result %d but address %s", res, got)
		}
		if res == forwardUsed && !got.Addr().IsValid() {
			t.Fatal("used an invalid address")
		}
	})
}
