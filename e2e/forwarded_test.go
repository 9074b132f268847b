package e2e

import (
	"net/http"
	"net/netip"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
)

// X-Forwarded-For and Forwarded (RFC 7239) on ws:// listeners, with paho
// 3.1.1 clients sending the headers a reverse proxy would add.

// wsConnectWith connects a paho 3.1.1 client over ws:// with the extra
// upgrade headers hdr; it returns the client, or nil and the error.
func wsConnectWith(t *testing.T, addr, cid string, hdr http.Header) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("ws://" + addr + "/mqtt").SetClientID(cid).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait).SetHTTPHeaders(hdr)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(v3Wait) {
		t.Fatalf("%s: connect timed out", cid)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// From a trusted proxy the right-most untrusted hop is the client: the
// address in the logs, and the one the per-IP connection limit counts
// (the proxy's own address is not counted: every client comes through it).
func TestWSForwarded_TrustedProxy(t *testing.T) {
	tb := startTransportOpts(t, broker.Options{MaxConnectionsPerIP: 1},
		reactor.Options{WSTrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "ws")
	// What the client itself wrote (6.6.6.6) is left of the hop the
	// trusted proxy (127.0.0.2) vouches for.
	xff := http.Header{"X-Forwarded-For": {"6.6.6.6, 203.0.113.77, 127.0.0.2"}}
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "fwd-a", xff); err != nil {
		t.Fatal(err)
	}
	tb.Log.waitFor(t, "client connected", "client=fwd-a", "remote=203.0.113.77")
	// The same client address through RFC 7239: over the per-IP limit.
	fwd := http.Header{"Forwarded": {`for="203.0.113.77:5555";proto=http`}}
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "fwd-b", fwd); err == nil {
		t.Fatal("a second connection from the same forwarded address passed --max-connections-per-ip 1")
	}
	tb.waitMetric(t, `mcutie_connections_rejected_total{reason="max_connections_per_ip"}`, "1")
	// Another client behind the same proxy is let in.
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "fwd-c", http.Header{"Forwarded": {`for="[2001:db8::7]:4711"`}}); err != nil {
		t.Fatal(err)
	}
	tb.Log.waitFor(t, "client connected", "client=fwd-c", "remote=[2001:db8::7]:4711")
	tb.waitMetric(t, `mcutie_transport_forwarded_headers_total{result="used"}`, "3")
	// A header the proxy wrote wrong is not guessed at: the proxy's address.
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "fwd-d", http.Header{"Forwarded": {"for=unknown"}}); err != nil {
		t.Fatal(err)
	}
	tb.Log.waitFor(t, "client connected", "client=fwd-d", "remote=127.0.0.1:")
	tb.Log.waitFor(t, "malformed forwarding header", "for=unknown")
	tb.waitMetric(t, `mcutie_transport_forwarded_headers_total{result="malformed"}`, "1")
}

// From a peer that is not a trusted proxy the header is ignored (anyone
// could claim any address) and counted.
func TestWSForwarded_UntrustedIgnored(t *testing.T) {
	tb := startTransportOpts(t, broker.Options{MaxConnectionsPerIP: 1},
		reactor.Options{WSTrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "ws")
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "spoof-a", http.Header{"X-Forwarded-For": {"203.0.113.1"}}); err != nil {
		t.Fatal(err)
	}
	tb.Log.waitFor(t, "client connected", "client=spoof-a", "remote=127.0.0.1:")
	// Claiming another address does not escape the per-IP limit.
	if _, err := wsConnectWith(t, tb.Addrs["ws"], "spoof-b", http.Header{"X-Forwarded-For": {"203.0.113.2"}}); err == nil {
		t.Fatal("a spoofed X-Forwarded-For escaped --max-connections-per-ip")
	}
	tb.waitMetric(t, `mcutie_transport_forwarded_headers_total{result="untrusted"}`, "1")
	tb.waitMetric(t, `mcutie_transport_forwarded_headers_total{result="used"}`, "0")
}
