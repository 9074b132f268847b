// Command bench is mcutie's load generator: it drives thousands of MQTT
// connections from one process against a broker on this machine and
// reports throughput, latency percentiles, losses and the broker's CPU and
// memory cost.
//
// # Usage
//
//	go run ./bench --scenario NAME [flags]
//	go run ./bench --help
//
// Scenarios, each a preset of the flags (flags given on the command line win):
//
//	fanin     N publishers → 1 subscriber on one topic (default 10 → 1)
//	fanout    1 publisher → N subscribers on one topic (default 1 → 50)
//	p2p       N publisher/subscriber pairs, one topic each (default 50 pairs)
//	shared    N publishers → one $share group of M subscribers (default 10 → 5)
//	wildcard  N publishers cycling over --topics topics bench/<run>/w/<a>/<b>,
//	          M subscribers on "w/#", "w/<a>/+" and "w/+/<b>" (default 10, 10, 1000)
//	retained  one or more publishers set --topics retained messages (default
//	          10000); then subscribers on "#" are timed until they hold all of
//	          them; then the topics are cleared again with empty retained messages
//	connect   connect storm: --conns connections (default 1000), --connect-concurrency
//	          at a time; connections per second and CONNACK latency
//	idle      hold --conns connections (default 1000) with --keepalive (default 60 s)
//	          for --duration; with --pid the broker's RSS per connection, from
//	          VmRSS before connecting and after
//
// Common flags: --addr (default 127.0.0.1:1883), --qos 0|1|2, --payload
// (16 B … 64 KiB), --publishers, --subscribers, --rate (messages/s per
// publisher; 0 = as fast as possible), --window (unacknowledged QoS 1/2
// messages per publisher when --rate is 0), --duration (default 10s, at
// most 1h), --count (messages per publisher), --mqtt 3|4|5, --pid (the
// broker's process id), --json. `--help` lists every flag.
//
// Example, against a broker started by hand:
//
//	go build -o bin/mcutie ./cmd/mcutie
//	bin/mcutie --listen tcp://127.0.0.1:18830 --metrics-listen '' &
//	go run ./bench --addr 127.0.0.1:18830 --scenario fanin --qos 1 --pid $!
//
// # What is reported
//
// Every run reports messages sent and received per second over the measured
// window (received, counting every delivery to every subscriber, is the
// headline); latency percentiles p50/p90/p99/p99.9/max from the send time
// carried in each payload; lost, duplicated and out-of-order deliveries
// (each payload carries its publisher's id and sequence number; losses are
// counted after a drain of at most --drain); connection failures and drops
// with their reasons; and with --pid the broker's CPU seconds over the
// window (utime+stime from /proc/PID/stat), its CPU µs per delivered
// message, its RSS and peak RSS (VmRSS, VmHWM). The table is for people;
// --json prints the same report for machines. Runs longer than 3 s print a
// progress line on stderr every second.
//
// With --rate 0, QoS 0 publishers send as fast as their sockets take bytes:
// that is an overload test, and what it measures is how the broker sheds
// load (a broker may drop QoS 0 to a subscriber that does not keep up, and
// the payload's send time then includes the time spent queued in socket
// buffers). For latency under a given load, use --rate: latency is then
// measured from each message's scheduled send time, so a stall anywhere,
// the load generator included, shows as latency rather than as fewer
// samples (coordinated omission corrected).
//
// # Bounds and safety
//
// Every run is bounded: --duration at most 1 h, --count at most 2³²−1,
// connections at most 500,000, a drain of at most 5 min, a connect phase of
// at most 30 s plus 1 ms per connection. It stops by itself and connects
// only to --addr, which must be a loopback address (127.0.0.0/8 or [::1];
// "localhost" is taken as 127.0.0.1 without asking a resolver); anything
// else is refused before a socket is opened. Topics and client ids carry a
// random run id, so runs never see each other's messages.
//
// More than ~28,000 connections to one broker port need more than one
// source address: --source-addrs N (default: enough for the count) binds
// connections round-robin to 127.0.0.1 … 127.0.0.N, with
// IP_BIND_ADDRESS_NO_PORT so the kernel picks ports per destination. bench
// raises its own file descriptor limit as far as it may; the broker's must
// be raised by whoever starts it.
//
// # Design choices
//
// The client engine (package bench/client) is a small epoll event loop on
// golang.org/x/sys/unix, not gnet's client mode, though gnet is in go.mod:
//
//   - gnet's Client.Dial and Enroll go through net.Dial, a blocking dial on
//     a goroutine, and then dup the descriptor into gnet and close the
//     original: a goroutine and two descriptors per connection while it
//     connects, and a cross-goroutine hand-off inside the CONNACK latency a
//     connect storm measures. Our loop issues a non-blocking connect(2)
//     itself, after bind(2) to the chosen loopback source address.
//   - "As fast as possible" needs to know when a socket has room again. gnet
//     has no writable event; our loop registers EPOLLOUT exactly while a
//     connection has bytes pending, and a publisher waits for it.
//   - Paced publishers need per-loop deadlines finer than a millisecond;
//     gnet's ticker is one engine-wide OnTick. Each of our loops has a
//     timerfd set to its next deadline.
//
// It costs a few hundred lines and ties bench to Linux, which reading
// /proc already does. See the package doc of bench/client for its shape.
//
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go):
// constant memory (about 190 KB for 1 µs … 1 h at 3 significant digits),
// constant-time recording without locks (one histogram per loop, merged at
// the end), and no sampling, so p99.9 and max are exact to 3 significant
// digits however many messages a run has. valyala/histogram, already in
// go.mod through VictoriaMetrics/metrics, keeps a 1,000-value random
// reservoir: its p99.9 would rest on one sample.
package main
