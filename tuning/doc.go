// Package tuning turns runtime knobs into settings: GOMAXPROCS, GOGC,
// GOMEMLIMIT, and the named profiles (throughput, latency, low-memory) that
// set several knobs at once. It owns no state beyond the process-wide
// settings it applies, and imports only the standard library.
package tuning
