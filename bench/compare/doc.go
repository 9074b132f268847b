// Command compare is `make bench-compare`: it starts mcutie, Mosquitto and
// mochi-mqtt in turn on this machine, runs the same bench scenarios against
// each with the load generator (bin/mcutie-bench, package bench), and writes
// a Markdown report with ratios and target checks plus an SVG chart.
//
// # Usage
//
//	make bench-compare                          # builds, installs Mosquitto if missing, runs, writes bench/results/
//	go run ./bench/compare --help
//	go run ./bench/compare --suite scaling      # mcutie --loops 1 vs 2, bench/results/scaling.md
//	go run ./bench/compare --suite profiles     # mcutie --profile …, bench/results/profiles.md
//
// The driver expects the binaries built by `make bench-bin`: bin/mcutie,
// bin/mcutie-bench and bin/mochi (the nested module bench/mochi), and
// Mosquitto on PATH or in /usr/sbin.
//
// # Fairness
//
// Each broker runs alone: one is started, every scenario runs against it,
// it is stopped, then the next. Every broker gets the same scenario flags.
// By default (--pin) the broker is bound to the last CPU and the load
// generator to CPU 0 with taskset(1), so on a 2-core machine each broker
// has exactly one core whatever its threading (Mosquitto is single
// threaded; Go brokers size GOMAXPROCS and mcutie its event loops from the
// CPU affinity) and the generator never competes with it. The figure that
// does not depend on the generator is broker CPU µs per delivered message
// (utime+stime from /proc/PID/stat over the measured window ÷ deliveries).
// On a machine shared with other work, --nice runs brokers and generator
// at a higher priority (the same for every broker). A broker that dies
// during a run, or does not exit cleanly on SIGTERM afterwards, is
// reported as that run's error.
//
// The Badger row (fanin-q1-badger) uses persistent sessions
// (bench --session-expiry), so every QoS 1 message in flight is stored
// and its PUBACK waits for the commit; it is compared with the other
// brokers' in-memory fanin-q1, as issue 5's target is worded.
//
// # Design choices
//
// The driver runs the bench binary as a child process with --json instead
// of linking its code: the generator then has its own process, CPU
// affinity and file-descriptor budget, and what is measured is exactly
// what a person running bin/mcutie-bench by hand would see. The JSON
// fields it reads are declared in report.go; a test decodes a report the
// real tool printed (testdata/) so a renamed field shows up.
//
// The chart is a small hand-written SVG (chart.go): two log-scale grouped
// bar panels. A plotting library (gonum/plot and its font and image
// dependencies) would join the root module's dependency graph for one
// picture of twenty bars; the SVG needs no dependency and diffs as text.
//
// Every run is bounded: each scenario by bench's own bounds (--duration,
// --drain, connect timeouts) plus a kill after duration + 90 s; the whole
// compare suite takes about 7 minutes with the defaults.
package main
