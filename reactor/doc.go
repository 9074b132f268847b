// Package reactor is mcutie's transport: a fixed pool of gnet event loops,
// the listeners, per-connection buffers, writes and the timer tick. It knows
// nothing of MQTT beyond handing bytes to broker.Client.Feed.
//
// # Ownership
//
// Every gnet event loop is bound to one broker.Loop. At start-up the server
// registers one "anchor" connection per event loop (through
// gnet.Engine.Register, which the round-robin balancer spreads over the
// loops) to learn each loop's handle, and binds broker loop i to it, so
// other loops can run work there with EventLoop.Execute. gnet may accept
// before that (its listeners exist before its loops run): such connections
// are opened but not fed until every loop is bound (Server.hold), so a
// CONNECT never has to move to a loop that is not bound yet.
//
// A client id's state lives on the loop that owns the id (the one its first
// connection landed on; see broker's clientDir). When a CONNECT for an id
// owned elsewhere arrives (a resume or takeover that landed on another
// loop), the connection is moved: its socket is duplicated and enrolled on
// the owner with the unconsumed bytes carried along, and the original is
// closed. After that nothing about a
// client ever crosses loops except messages through the loops' inboxes.
//
// # Transports
//
// tcp:// listeners are gnet's. tls://, ws:// and wss:// run on the
// goroutine transport (goconn.go, golisten.go): crypto/tls and
// gorilla/websocket connections with a reader and a writer goroutine each,
// logically owned by a loop — the reader hands chunks to the loop with
// EventLoop.Execute and waits for each to be consumed, the broker's writes
// go to a buffer the writer drains. ?proxy=true on a listener expects a
// PROXY protocol v1/v2 header first (proxy.go); its client address becomes
// the connection's RemoteAddr. TLS certificates are served from an atomic
// pointer that ReloadTLS swaps (tlsconfig.go).
//
// # Admission
//
// A new connection is admitted by broker.Broker.Admit (bans, connection
// limits) before anything else: in OnOpen on a gnet listener, after the
// PROXY header when one is expected (proxyPrelude), before the TLS
// handshake on the goroutine transport. Its ticket follows it through a
// move and is released when it closes (OnClose; ticketConn.Close). While
// the buffered bytes are only the start of a packet
// (broker.Client.NeedMore), OnTraffic waits for more without feeding the
// broker.
//
// Nothing from gnet's inbound buffer outlives OnTraffic: Feed consumes
// whole packets and copies whatever must outlive the call; the reactor
// discards exactly what was consumed.
//
// # Deadlines
//
// Everything before CONNECT is bounded by the broker's connect timeout:
// the PROXY header and the wait for CONNECT by the broker's tick, the TLS
// handshake and the WebSocket upgrade by socket deadlines (preludeConn
// keeps http.Server's own deadlines within them, and an HTTP connection
// carries one request). After CONNECT, a packet must arrive within
// Options.PacketTimeout of its first byte, whatever the keep-alive: each
// loop keeps a watch list of its connections holding a partial packet,
// swept on every tick.
//
// A connection the broker closes lingers (Server.linger, goConn.lingerClose):
// the broker is told at once, its output is sent, the write side is shut,
// and what still arrives is discarded for up to 2 s and 64 KiB before the
// socket is closed, so the reset a close with unread input causes does
// not destroy the DISCONNECT or CONNACK that says why.
//
// # Writes
//
// While a loop batches (broker's batch.go: its connections send at least
// 2 messages per --coalesce-window), the broker writes what a whole batch
// of callbacks produced once the batch ends, and asks for that end with
// one byte on the loop's anchor connection (loopState.bindWake): the
// anchor's OnTraffic runs broker.Loop.FlushBatch after the socket events
// of the poll that follows.
//
// The broker hands each connection's output of a pass as vectors (a
// PUBLISH header, then the shared payload). The reactor writes them as
// plain writes of up to 64 KiB, copied into its loop's scratch buffer, not
// with writev: golang.org/x/sys/unix.Writev under gnet allocates its iovec
// array beyond 8 vectors, once per flush, which was all the garbage the
// publish path made (see gnetConn.Writev). A vector larger than that is
// written where it is, without a copy.
//
// # Files
//
//   - engine.go: Server, Options, New, Start and Stop, Ready, ReloadTLS.
//   - loops.go: binding each gnet event loop to a broker loop (anchors,
//     Server.hold), the per-loop state and the tick.
//   - conn.go: the gnet connection callbacks (OnOpen, OnTraffic, OnClose),
//     the per-connection state, the PROXY prelude and moving a connection.
//   - inbound.go: the bytes received and not consumed yet, fed to the
//     broker by both transports, and the packet-timeout clock.
//   - deadlines.go: the watch list, the packet timeout and the lingering
//     close of gnet connections.
//   - write.go: gnetConn, the broker's side of a gnet connection (writes).
//   - goconn.go, golisten.go: the goroutine transport (tls, ws, wss).
//   - listen.go, proxy.go, tlsconfig.go, metrics.go: listener addresses,
//     PROXY headers, certificates, counters.
package reactor
