package reactor

import (
	"io"
	"sync/atomic"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// transportCounters count what the transports refuse before a connection
// reaches the broker (the broker counts everything after). Safe for
// concurrent use.
type transportCounters struct {
	proxyRejected   atomic.Uint64    // bad or missing PROXY header on a ?proxy= listener
	proxyVersion    atomic.Uint64    // a PROXY header of the version a ?proxy=v1 or v2 listener refuses
	tlsFailed       atomic.Uint64    // TLS handshakes that failed or timed out
	wsUpgradeFailed atomic.Uint64    // HTTP requests on a WebSocket path that were not a valid upgrade
	forwarded       [4]atomic.Uint64 // ws/wss upgrades by what became of their forwarding headers (forwardResult)
	goOpen          atomic.Int64     // connections on the goroutine transport (tls, ws, wss), prelude included
	packetTimeouts  atomic.Uint64    // connections closed holding a partial packet past Options.PacketTimeout
	lingering       atomic.Uint64    // closes that lingered (shut the write side, then drained) before closing
}

// The transport's metric families (docs/observability.md).
var (
	mTransportRejected = promtext.Counter("mcutie_transport_rejected_total", "Connections refused before MQTT, by reason: a bad PROXY header or one of the wrong version, a failed TLS handshake, a failed WebSocket upgrade.")
	mForwardedHeaders  = promtext.Counter("mcutie_transport_forwarded_headers_total", "WebSocket upgrades carrying X-Forwarded-For or Forwarded headers, by result: used (from a trusted proxy), untrusted (ignored), malformed.")
	mPacketTimeouts    = promtext.Counter("mcutie_transport_packet_timeouts_total", "Connections closed holding a partial packet longer than --packet-timeout.")
	mLingeringCloses   = promtext.Counter("mcutie_transport_lingering_closes_total", "Closes that lingered: output sent, write side shut, input drained before closing.")
	mGoroutineConns    = promtext.Gauge("mcutie_transport_goroutine_connections", "Open tls://, ws:// and wss:// connections, handshakes included.")
)

// WriteMetrics writes the transport's metrics in Prometheus text format.
// Safe for concurrent use.
func (s *Server) WriteMetrics(w io.Writer) {
	mTransportRejected.Header(w)
	mTransportRejected.Sample(w, `{reason="proxy_header"}`, s.ctr.proxyRejected.Load())
	mTransportRejected.Sample(w, `{reason="proxy_version"}`, s.ctr.proxyVersion.Load())
	mTransportRejected.Sample(w, `{reason="tls_handshake"}`, s.ctr.tlsFailed.Load())
	mTransportRejected.Sample(w, `{reason="websocket_upgrade"}`, s.ctr.wsUpgradeFailed.Load())
	mForwardedHeaders.Header(w)
	mForwardedHeaders.Sample(w, `{result="used"}`, s.ctr.forwarded[forwardUsed].Load())
	mForwardedHeaders.Sample(w, `{result="untrusted"}`, s.ctr.forwarded[forwardUntrusted].Load())
	mForwardedHeaders.Sample(w, `{result="malformed"}`, s.ctr.forwarded[forwardMalformed].Load())
	mPacketTimeouts.Write(w, s.ctr.packetTimeouts.Load())
	mLingeringCloses.Write(w, s.ctr.lingering.Load())
	mGoroutineConns.Write(w, uint64(max(s.ctr.goOpen.Load(), 0)))
}
