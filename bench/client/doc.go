// Package client is the load generator's MQTT client engine: one process
// drives thousands of MQTT connections from a few event loops, without a
// goroutine (or two) per connection.
//
// # Shape
//
// An Engine owns a fixed number of loops (Options.Loops). Each loop is one
// goroutine around its own epoll instance, an eventfd that wakes it for
// commands and a timerfd for its next deadline (the next paced publish, the
// next dial a connect rate allows, the once-a-second keep-alive and timeout
// sweep). A connection belongs to one loop for its whole life and is a
// state machine driven from that loop only:
//
//	dialing → CONNECT sent → (SUBSCRIBE sent) → ready → closed
//
// Sockets are non-blocking; connect() is issued non-blocking and completes
// on EPOLLOUT. Each loop reads into one shared buffer, decodes every
// complete packet with codec (only a partial packet is copied, into the
// connection's carry buffer), appends replies and publishes to the
// connection's output buffer, and writes every dirty connection once per
// iteration, so acknowledgements and publishes are coalesced into few
// write(2) calls. A socket that cannot take more gets EPOLLOUT and its
// publisher waits; nothing is buffered without bound.
//
// Publishers run in one of two modes. With a rate, a publisher sits in the
// loop's deadline heap and sends each message at its scheduled time; the
// payload carries the scheduled time, so latency is measured from when the
// message should have left (coordinated omission corrected: a stalled
// publisher shows as latency, not as fewer samples). With rate 0 it sends
// as fast as the socket takes bytes and, for QoS 1/2, as its window of
// unacknowledged messages allows (bounded by the broker's v5 Receive
// Maximum); the payload then carries the time the message was encoded.
//
// # Tracking
//
// Every tracked payload begins with a 16-byte header: send time, publisher
// id and sequence number (see HeaderLen). Each subscriber keeps, per
// publisher, a bitmap of the sequence numbers it got, so the engine reports
// duplicates, out-of-order arrivals and, at the end, losses: the number a
// subscriber (or a shared-subscription group together) should have got,
// computed from each publisher's sent count, its topics and the
// subscriber's filters, minus what arrived. QoS 2 deliveries are
// deduplicated by packet identifier until PUBREL, as the protocol requires
// of a receiver, so a duplicate counted at QoS 2 is the broker's.
//
// # Concurrency
//
// Engine methods are safe for concurrent use unless their comment says
// otherwise. Everything a connection holds is touched only on its loop;
// other goroutines reach a loop by posting a function to it (loop.post),
// and read the per-loop counters through atomics.
package client
