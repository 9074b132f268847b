package reactor

import (
	"io"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
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

// WriteMetrics writes the transport's metrics in Prometheus text format.
// Safe for concurrent use.
func (s *Server) WriteMetrics(w io.Writer) {
	metrics.WriteCounterUint64(w, `mcutie_transport_rejected_total{reason="proxy_header"}`, s.ctr.proxyRejected.Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_rejected_total{reason="proxy_version"}`, s.ctr.proxyVersion.Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_rejected_total{reason="tls_handshake"}`, s.ctr.tlsFailed.Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_rejected_total{reason="websocket_upgrade"}`, s.ctr.wsUpgradeFailed.Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_forwarded_headers_total{result="used"}`, s.ctr.forwarded[forwardUsed].Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_forwarded_headers_total{result="untrusted"}`, s.ctr.forwarded[forwardUntrusted].Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_forwarded_headers_total{result="malformed"}`, s.ctr.forwarded[forwardMalformed].Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_packet_timeouts_total`, s.ctr.packetTimeouts.Load())
	metrics.WriteCounterUint64(w, `mcutie_transport_lingering_closes_total`, s.ctr.lingering.Load())
	metrics.WriteGaugeUint64(w, "mcutie_transport_goroutine_connections", uint64(max(s.ctr.goOpen.Load(), 0)))
}
