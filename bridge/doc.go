// Package bridge connects mcutie to other MQTT brokers, as Mosquitto's
// bridges do: topic mappings in, out or both ways with local and remote
// prefixes and a QoS (0 or 1), MQTT 5 or 3.1.1 to the remote, TLS and
// username/password, a clean or persistent remote session, reconnects
// with exponential backoff and jitter. docs/bridges.md is the reference.
//
// # Design
//
// The local side is an in-process client of the broker
// (broker.ConnectBridge, client id $mcutie/bridge/NAME) with a persistent
// session subscribed to the out mappings at their QoS. A message it
// receives is acknowledged to the broker (broker.SubscribeAck) only once
// the remote has PUBACKed it. The session is connected only while the
// remote is: while the remote is down it is an offline persistent
// session, so the broker's own bounded, durable session queue
// (--max-queued-messages, --max-queued-bytes) holds what the remote has
// not taken, across outages and broker restarts, without slowing local
// publishers; the bridge holds no queue of its own beyond MaxInflight.
// On each connection the broker sends the session's unacknowledged
// messages again first, in order (Dup), then the queued ones: one
// publisher's QoS 1 messages keep their order across the bridge and
// across reconnects; what was in flight at a cut may arrive twice.
//
// The remote side is one connection at a time, made by paho.golang (v5)
// or paho.mqtt.golang (3.1.1), each a new client without a reconnect of
// its own and with empty session state, so only the broker's session
// resends. Remote messages are published locally by the same in-process
// client and PUBACKed to the remote only once the local broker has
// acknowledged them.
//
// Loops: the local subscriptions have No Local, so what the in side
// publishes (as the bridge's session) is not sent back out; on an MQTT 5
// remote the subscriptions have No Local too. A 3.1.1 remote has no No
// Local: an echo filter (echo.go) drops the copies of the bridge's own
// messages that come back.
//
// # Concurrency
//
// Per bridge: one goroutine (run) connects the local session and the
// remote, reconnects with backoff and is the only sender on the remote
// connection. The local client's goroutine calls the out handler in
// delivery order; it only puts the message on the connection's channel,
// whose capacity (MaxInflight per out mapping) the local window bounds,
// so it never waits. One goroutine per connection (collect) waits for
// the PUBACKs in sending order and acknowledges locally. The remote
// client's goroutine calls inbound, which waits for the local PUBACK.
// Counters are atomics; the current local connection is behind
// Bridge.localMu. Manager and Bridge methods are safe for concurrent
// use; Start and Stop must not be called on a broker loop (they wait for
// the broker).
package bridge
