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
// other loops can run work there with EventLoop.Execute.
//
// A client id's state lives on its home loop (broker.Broker.homeLoop). When
// a CONNECT arrives on another loop, the connection is moved: its socket is
// duplicated and enrolled on the home loop with the unconsumed bytes
// carried along, and the original is closed. After that nothing about a
// client ever crosses loops except messages through the loops' inboxes.
//
// Nothing from gnet's inbound buffer outlives OnTraffic: Feed consumes
// whole packets and copies whatever must outlive the call; the reactor
// discards exactly what was consumed.
package reactor
